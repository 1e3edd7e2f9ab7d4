# client-lib/: libvfiod (the C API of vfiod; exports the vfiod_* names of
# vfiod.h only, through libvfiod.sym) and vfioctl, the command-line tool.
lib_LTLIBRARIES += client-lib/libvfiod.la
include_HEADERS += client-lib/vfiod.h
client_lib_libvfiod_la_SOURCES = \
	client-lib/connection.c \
	client-lib/requests.c \
	client-lib/helpers.c \
	client-lib/internal.h
client_lib_libvfiod_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
# proto/libvfiod-proto.la is a convenience library: its objects end up inside
# libvfiod.so, hidden by the version script.
client_lib_libvfiod_la_LIBADD = proto/libvfiod-proto.la $(PROTOBUF_C_LIBS)
# libvfiod.so.0 until the first release: struct vfiod_lease grew (irq_counts, grant)
# before it (vfiod.h, libvfiod(3) NOTES); a change after a release bumps this.
client_lib_libvfiod_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 -no-undefined \
	-Wl,--version-script=$(srcdir)/client-lib/libvfiod.sym
EXTRA_client_lib_libvfiod_la_DEPENDENCIES = $(srcdir)/client-lib/libvfiod.sym
EXTRA_DIST += client-lib/libvfiod.sym client-lib/libvfiod.pc.in

# libvfiod.pc, made from libvfiod.pc.in here rather than by configure.
pkgconfig_DATA += client-lib/libvfiod.pc
CLEANFILES += client-lib/libvfiod.pc
client-lib/libvfiod.pc: $(srcdir)/client-lib/libvfiod.pc.in Makefile
	$(AM_V_GEN)$(MKDIR_P) client-lib && \
	  $(SED) -e 's|@prefix[@]|$(prefix)|g' \
	         -e 's|@exec_prefix[@]|$(exec_prefix)|g' \
	         -e 's|@libdir[@]|$(libdir)|g' \
	         -e 's|@includedir[@]|$(includedir)|g' \
	         -e 's|@VERSION[@]|$(VERSION)|g' \
	         $(srcdir)/client-lib/libvfiod.pc.in > $@.tmp && mv $@.tmp $@

# vfioctl: the command-line tool, a plain client of the public API.
bin_PROGRAMS += client-lib/vfioctl
client_lib_vfioctl_SOURCES = client-lib/vfioctl.c client-lib/json.c client-lib/json.h
client_lib_vfioctl_LDADD = client-lib/libvfiod.la
# check-config runs vfiod from here when it is not on $PATH.
client_lib_vfioctl_CFLAGS = $(AM_CFLAGS) -DVFIOD_PATH='"$(sbindir)/vfiod"' \
	-DVFIOD_PRELOAD_PATH='"$(pkglibdir)/libvfiod-preload.so"'

dist_man_MANS += man/vfioctl.1 man/libvfiod.3

# libvfiod-preload.so: the LD_PRELOAD module that turns a program's open of
# /dev/vfio/N into a duplicate of a leased group fd (libvfiod-preload(7)).
# A module in $(pkglibdir), not a library to link: no version, no .la
# installed, and it exports the interposed open family only (preload.sym).
# Built without the sanitizers: it is loaded into programs built without them.
pkglib_LTLIBRARIES = client-lib/libvfiod-preload.la
client_lib_libvfiod_preload_la_SOURCES = client-lib/preload.c
client_lib_libvfiod_preload_la_CFLAGS = $(WARN_CFLAGS) -fvisibility=hidden
client_lib_libvfiod_preload_la_LIBADD = -ldl
client_lib_libvfiod_preload_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-Wl,--version-script=$(srcdir)/client-lib/preload.sym
EXTRA_client_lib_libvfiod_preload_la_DEPENDENCIES = $(srcdir)/client-lib/preload.sym
EXTRA_DIST += client-lib/preload.sym
install-exec-hook: install-preload-no-la
install-preload-no-la:
	rm -f '$(DESTDIR)$(pkglibdir)/libvfiod-preload.la'
uninstall-local: uninstall-preload-so
uninstall-preload-so:
	rm -f '$(DESTDIR)$(pkglibdir)/libvfiod-preload.so'
.PHONY: install-preload-no-la uninstall-preload-so

dist_man_MANS += man/libvfiod-preload.7
