# tests/load: a load generator against vfiod-fake (see tests/load/load.c).
# `make load` (as root; LOAD_ARGS = clients requests idle leasers devices) prints the
# latencies, the daemon's RSS and fd counts, and "N passed, N failed".
check_PROGRAMS += tests/load/load-vfiod
tests_load_load_vfiod_SOURCES = tests/load/load.c
tests_load_load_vfiod_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_load_load_vfiod_LDADD = tests/libfakesys.la proto/libvfiod-proto.la $(PROTOBUF_C_LIBS)

LOAD_ARGS = 1000 1000 10000 100 4096
load:
	$(MAKE) $(AM_MAKEFLAGS) $(BUILT_SOURCES)
	$(MAKE) $(AM_MAKEFLAGS) tests/load/load-vfiod tests/daemon/vfiod-fake
	tests/load/load-vfiod $(abs_builddir)/tests/daemon/vfiod-fake $(LOAD_ARGS)

.PHONY: load
