# tests/daemon: the daemon's suites. They link the daemon library with a fake
# of the ioctl layer (fake-kernel.c) and the REAL sysfs code
# (kernel/libkvfio-sysfs.la) on fake sysfs trees the tests build; with
# VFIOD_FAKE_UNITS set, a fake of the pid -> unit lookup (fake-units.c).
check_LTLIBRARIES += tests/daemon/libfake-kvfio.la tests/daemon/libdaemon-harness.la
tests_daemon_libfake_kvfio_la_SOURCES = tests/daemon/fake-kernel.c tests/daemon/fake-kernel.h \
	tests/daemon/fake-units.c
tests_daemon_libfake_kvfio_la_LIBADD = kernel/libkvfio-sysfs.la

tests_daemon_libdaemon_harness_la_SOURCES = tests/daemon/harness.c tests/daemon/harness.h
tests_daemon_libdaemon_harness_la_CFLAGS = $(suite_cflags) $(PROTOBUF_C_CFLAGS) $(SYSTEMD_CFLAGS)
tests_daemon_libdaemon_harness_la_LIBADD = \
	tests/librawclient.la \
	daemon/libvfiod-daemon.la \
	tests/daemon/libfake-kvfio.la \
	proto/libvfiod-proto.la \
	$(EV_LIBS) $(SYSTEMD_LIBS) $(INIH_LIBS) $(CHECK_LIBS)

daemon_suite_cflags = $(suite_cflags) $(PROTOBUF_C_CFLAGS) $(SYSTEMD_CFLAGS) $(INIH_CFLAGS)
daemon_suite_libs = tests/daemon/libdaemon-harness.la $(suite_libs)

daemon_tests = \
	tests/daemon/test-log \
	tests/daemon/test-policy \
	tests/daemon/test-policy-daemon \
	tests/daemon/test-client \
	tests/daemon/test-lease \
	tests/daemon/test-lease-iommufd \
	tests/daemon/test-group-lease \
	tests/daemon/test-memlock \
	tests/daemon/test-inventory \
	tests/daemon/test-domain \
	tests/daemon/test-server \
	tests/daemon/test-systemd
check_PROGRAMS += $(daemon_tests) tests/daemon/vfiod-fake
TESTS += $(daemon_tests)

tests_daemon_test_log_SOURCES = tests/daemon/test-log.c
tests_daemon_test_log_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_log_LDADD = $(daemon_suite_libs)

tests_daemon_test_policy_SOURCES = tests/daemon/test-policy.c
tests_daemon_test_policy_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_policy_LDADD = $(daemon_suite_libs)

tests_daemon_test_policy_daemon_SOURCES = tests/daemon/test-policy-daemon.c
tests_daemon_test_policy_daemon_CFLAGS = $(daemon_suite_cflags) -DVFIOD_FAKE_PATH='"$(abs_builddir)/tests/daemon/vfiod-fake"' \
	-DVFIOD_SRCDIR='"$(abs_top_srcdir)"'
tests_daemon_test_policy_daemon_LDADD = $(daemon_suite_libs)

tests_daemon_test_client_SOURCES = tests/daemon/test-client.c
tests_daemon_test_client_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_client_LDADD = $(daemon_suite_libs)

tests_daemon_test_lease_SOURCES = tests/daemon/test-lease.c
tests_daemon_test_lease_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_lease_LDADD = $(daemon_suite_libs)

tests_daemon_test_lease_iommufd_SOURCES = tests/daemon/test-lease-iommufd.c
tests_daemon_test_lease_iommufd_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_lease_iommufd_LDADD = $(daemon_suite_libs)
tests_daemon_test_group_lease_SOURCES = tests/daemon/test-group-lease.c
tests_daemon_test_group_lease_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_group_lease_LDADD = $(daemon_suite_libs)

tests_daemon_test_memlock_SOURCES = tests/daemon/test-memlock.c
tests_daemon_test_memlock_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_memlock_LDADD = $(daemon_suite_libs)

tests_daemon_test_inventory_SOURCES = tests/daemon/test-inventory.c
tests_daemon_test_inventory_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_inventory_LDADD = $(daemon_suite_libs)

tests_daemon_test_domain_SOURCES = tests/daemon/test-domain.c
tests_daemon_test_domain_CFLAGS = $(daemon_suite_cflags)
tests_daemon_test_domain_LDADD = $(daemon_suite_libs)

tests_daemon_test_server_SOURCES = tests/daemon/test-server.c
tests_daemon_test_server_CFLAGS = $(daemon_suite_cflags) -DVFIOD_FAKE_PATH='"$(abs_builddir)/tests/daemon/vfiod-fake"'
tests_daemon_test_server_LDADD = $(daemon_suite_libs)

# vfiod itself (main.c) on the fake ioctl layer: the daemon-level tests run it
# as a process, with a fake sysfs tree.
tests_daemon_vfiod_fake_SOURCES = daemon/main.c
tests_daemon_vfiod_fake_CFLAGS = $(daemon_suite_cflags)
tests_daemon_vfiod_fake_LDADD = \
	daemon/libvfiod-daemon.la \
	tests/daemon/libfake-kvfio.la \
	proto/libvfiod-proto.la \
	$(EV_LIBS) $(SYSTEMD_LIBS) $(INIH_LIBS)

# vfiod-fake started by systemd-socket-activate, its sd_notify messages read by the test.
tests_daemon_test_systemd_SOURCES = tests/daemon/test-systemd.c
tests_daemon_test_systemd_CFLAGS = $(daemon_suite_cflags) -DVFIOD_FAKE_PATH='"$(abs_builddir)/tests/daemon/vfiod-fake"'
tests_daemon_test_systemd_LDADD = $(daemon_suite_libs)

# The policy and fake machine of vfiod.conf(5) CHECKS (test-policy-daemon runs the checker on it).
EXTRA_DIST += tests/daemon/check-config-example
