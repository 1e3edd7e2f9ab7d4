# proto/: the wire schema, the protobuf-c code generated from it, and the
# SEQPACKET transport shared by the daemon and the client library.
#
# The generated vfiod.pb-c.[ch] live in the BUILD tree (never committed, never
# distributed): they are made from $(srcdir)/proto/vfiod.proto by $(PROTOC_C)
# before anything else is compiled (BUILT_SOURCES), so code anywhere includes
# them as "proto/vfiod.pb-c.h" through -I$(top_builddir).
EXTRA_DIST += proto/vfiod.proto

proto_generated = proto/vfiod.pb-c.c proto/vfiod.pb-c.h
BUILT_SOURCES += $(proto_generated)
CLEANFILES += $(proto_generated)

# protoc-c writes both files in one run. The header depends on the source so
# that a parallel make runs the generator once; if only the header went
# missing, the recipe regenerates both.
proto/vfiod.pb-c.c: $(srcdir)/proto/vfiod.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	  $(PROTOC_C) --proto_path=$(srcdir)/proto --c_out=proto $(srcdir)/proto/vfiod.proto
proto/vfiod.pb-c.h: proto/vfiod.pb-c.c
	@test -f $@ || { rm -f proto/vfiod.pb-c.c && $(MAKE) $(AM_MAKEFLAGS) proto/vfiod.pb-c.c; }

# Generated code + transport. The generated code builds cleanly under
# $(WARN_CFLAGS) with protoc-c 1.4.1, so no warning is switched off.
noinst_LTLIBRARIES += proto/libvfiod-proto.la
proto_libvfiod_proto_la_SOURCES = proto/transport.c proto/transport.h proto/macro.h \
	proto/envelope.c proto/envelope.h proto/names.c proto/names.h
nodist_proto_libvfiod_proto_la_SOURCES = $(proto_generated)
proto_libvfiod_proto_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
proto_libvfiod_proto_la_LIBADD = $(PROTOBUF_C_LIBS)
