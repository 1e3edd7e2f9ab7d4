# tests/bench: `make bench` (also `./bootstrap bench`) prints what going
# through vfiod costs compared to doing it yourself, as ratios measured in one
# run (see tests/bench/run-bench.sh). Never part of `make check`: timing is
# reported, not asserted. The programs are built with everything else (so
# they always compile) and run by `make bench` only.
noinst_PROGRAMS += tests/bench/bench-host tests/bench/guest-bench

tests_bench_bench_host_SOURCES = tests/bench/bench-host.c tests/bench/bench-util.c \
	tests/bench/bench-util.h
tests_bench_bench_host_LDADD = client-lib/libvfiod.la kernel/libkvfio-sysfs.la

# Runs in the guest: -no-install makes libtool write the real binary.
tests_bench_guest_bench_SOURCES = tests/bench/guest-bench.c tests/bench/bench-util.c \
	tests/bench/bench-util.h
tests_bench_guest_bench_LDFLAGS = $(AM_LDFLAGS) -no-install
tests_bench_guest_bench_LDADD = client-lib/libvfiod.la

bench: tests/bench/bench-host tests/bench/guest-bench daemon/vfiod tests/bench/bench-fake \
	tests/daemon/vfiod-fake
	$(srcdir)/tests/bench/run-bench.sh $(abs_builddir) $(BENCH_ARGS)

EXTRA_DIST += tests/bench/run-bench.sh tests/bench/guest-setup.sh
.PHONY: bench

# The instruction budget (callgrind): the client links the fake sysfs helpers,
# a check library, so it is built with the suites and by `make bench`.
check_PROGRAMS += tests/bench/bench-fake
tests_bench_bench_fake_SOURCES = tests/bench/bench-fake.c tests/bench/bench-util.c \
	tests/bench/bench-util.h
tests_bench_bench_fake_LDFLAGS = $(AM_LDFLAGS) -no-install
tests_bench_bench_fake_LDADD = client-lib/libvfiod.la tests/libfakesys.la
