# tests/: shared helpers, then each folder's suites.
# Fake sysfs trees (no check: load-vfiod and the fuzz targets use it too).
check_LTLIBRARIES += tests/libfakesys.la
tests_libfakesys_la_SOURCES = tests/fakesys.c tests/fakesys.h

check_LTLIBRARIES += tests/libtestutil.la
tests_libtestutil_la_SOURCES = tests/testutil.c tests/testutil.h
tests_libtestutil_la_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_libtestutil_la_LIBADD = tests/libfakesys.la $(CHECK_LIBS)

# The suites' raw-protocol client (tests/daemon's harness and tests/hostile link it).
check_LTLIBRARIES += tests/librawclient.la
tests_librawclient_la_SOURCES = tests/rawclient.c tests/rawclient.h
tests_librawclient_la_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_librawclient_la_LIBADD = proto/libvfiod-proto.la $(PROTOBUF_C_LIBS) $(CHECK_LIBS)

# Every check suite links these.
suite_cflags = $(AM_CFLAGS) $(CHECK_CFLAGS)
suite_libs = tests/libtestutil.la $(CHECK_LIBS)

include tests/proto/local.mk
include tests/client-lib/local.mk
include tests/kernel/local.mk
include tests/daemon/local.mk
include tests/vm/local.mk
include tests/bench/local.mk
include tests/fuzz/local.mk
include tests/vm-systemd/local.mk
include tests/hostile/local.mk
include tests/load/local.mk
