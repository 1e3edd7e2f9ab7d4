# tests/proto: the transport (over socketpair) and the cleanup helpers.
proto_suite_cflags = $(suite_cflags) $(PROTOBUF_C_CFLAGS)
proto_suite_libs = proto/libvfiod-proto.la $(suite_libs)

check_PROGRAMS += tests/proto/test-transport tests/proto/test-macro
TESTS += tests/proto/test-transport tests/proto/test-macro

tests_proto_test_transport_SOURCES = tests/proto/test-transport.c
tests_proto_test_transport_CFLAGS = $(proto_suite_cflags)
tests_proto_test_transport_LDADD = tests/librawclient.la $(proto_suite_libs)
# The suite wraps sendmsg() to check the flags the transport passes.
tests_proto_test_transport_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=sendmsg

tests_proto_test_macro_SOURCES = tests/proto/test-macro.c
tests_proto_test_macro_CFLAGS = $(proto_suite_cflags)
tests_proto_test_macro_LDADD = $(proto_suite_libs)
