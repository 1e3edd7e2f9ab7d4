# tests/hostile: hostile input against a running vfiod through a raw socket
# (hostile.c: the cases, shared), on the host against vfiod-fake as a process
# (test-hostile) and in the VM against the real vfiod (guest-hostile, same
# boot as the other guest suites).
check_LTLIBRARIES += tests/hostile/libhostile.la
tests_hostile_libhostile_la_SOURCES = tests/hostile/hostile.c tests/hostile/hostile.h
tests_hostile_libhostile_la_CFLAGS = $(suite_cflags) $(PROTOBUF_C_CFLAGS)
tests_hostile_libhostile_la_LIBADD = tests/librawclient.la proto/libvfiod-proto.la $(PROTOBUF_C_LIBS) $(CHECK_LIBS)

check_PROGRAMS += tests/hostile/test-hostile
TESTS += tests/hostile/test-hostile
tests_hostile_test_hostile_SOURCES = tests/hostile/test-hostile.c
tests_hostile_test_hostile_CFLAGS = $(daemon_suite_cflags) \
	-DVFIOD_FAKE_PATH='"$(abs_builddir)/tests/daemon/vfiod-fake"'
tests_hostile_test_hostile_LDADD = tests/hostile/libhostile.la $(daemon_suite_libs)
EXTRA_tests_hostile_test_hostile_DEPENDENCIES = tests/daemon/vfiod-fake

# Fault injection through the fake ioctl layer, in-process (tests/daemon harness).
check_PROGRAMS += tests/hostile/test-faults
TESTS += tests/hostile/test-faults
tests_hostile_test_faults_SOURCES = tests/hostile/test-faults.c
tests_hostile_test_faults_CFLAGS = $(daemon_suite_cflags)
tests_hostile_test_faults_LDADD = $(daemon_suite_libs)

# The same cases in the VM against the real vfiod (broker-setup.sh starts it),
# in the same boot as the other guest suites (after guest-broker).
VM_GUESTS += tests/hostile/guest-hostile
VM_ARGS += --program tests/hostile/guest-hostile --test guest-hostile=guest-hostile
tests_hostile_guest_hostile_SOURCES = tests/hostile/guest-hostile.c
tests_hostile_guest_hostile_CFLAGS = $(suite_cflags) $(PROTOBUF_C_CFLAGS)
tests_hostile_guest_hostile_LDFLAGS = $(vm_ldflags)
tests_hostile_guest_hostile_LDADD = tests/hostile/libhostile.la $(suite_libs)

# make valgrind: the host suites (make check) with every test program, and
# vfiod-fake where a suite starts one (VFIOD_TEST_VALGRIND), under valgrind;
# a definite or indirect leak or any memory error fails the test (a test that
# is a shell script runs as it is: tests/hostile/valgrind.sh).
VALGRIND_CMD = valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=1
valgrind:
	env VFIOD_TEST_VALGRIND='$(VALGRIND_CMD)' VALGRIND_CMD='$(VALGRIND_CMD)' \
	  CK_TIMEOUT_MULTIPLIER=20 $(MAKE) $(AM_MAKEFLAGS) check \
	  LOG_COMPILER='$(srcdir)/tests/hostile/valgrind.sh' LOG_FLAGS='$(top_builddir)/libtool'

EXTRA_DIST += tests/hostile/valgrind.sh
.PHONY: valgrind
