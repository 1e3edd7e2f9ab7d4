# tests/client-lib: libvfiod against a scripted fake daemon, vfioctl against
# the same fake on a socket path, and the check that libvfiod exports its
# public names only.
client_lib_suite_cflags = $(suite_cflags) $(PROTOBUF_C_CFLAGS)
# The fake daemon uses the transport directly; the suites call libvfiod.
client_lib_suite_libs = client-lib/libvfiod.la tests/client-lib/libfakedaemon.la \
	proto/libvfiod-proto.la $(suite_libs)

check_LTLIBRARIES += tests/client-lib/libfakedaemon.la
tests_client_lib_libfakedaemon_la_SOURCES = \
	tests/client-lib/fake-daemon.c tests/client-lib/fake-daemon.h
tests_client_lib_libfakedaemon_la_CFLAGS = $(client_lib_suite_cflags)

check_PROGRAMS += tests/client-lib/test-libvfiod tests/client-lib/test-vfioctl
TESTS += tests/client-lib/test-libvfiod tests/client-lib/test-vfioctl \
	tests/client-lib/check-exports.sh tests/client-lib/check-man-pages.sh
EXTRA_DIST += tests/client-lib/check-exports.sh tests/client-lib/check-man-pages.sh

tests_client_lib_test_libvfiod_SOURCES = tests/client-lib/test-libvfiod.c
tests_client_lib_test_libvfiod_CFLAGS = $(client_lib_suite_cflags)
tests_client_lib_test_libvfiod_LDADD = $(client_lib_suite_libs)

# Runs the built client-lib/vfioctl (from the build folder, as `make check` does),
# and brokered-child as the COMMAND of `vfioctl acquire --brokered`.
check_PROGRAMS += tests/client-lib/brokered-child
tests_client_lib_brokered_child_SOURCES = tests/client-lib/brokered-child.c
tests_client_lib_brokered_child_LDADD = client-lib/libvfiod.la

tests_client_lib_test_vfioctl_SOURCES = tests/client-lib/test-vfioctl.c \
	client-lib/json.c client-lib/json.h
# test_acquire_preload_vfiod runs vfioctl against vfiod itself on the fake VFIO layer.
tests_client_lib_test_vfioctl_CFLAGS = $(client_lib_suite_cflags) \
	-DVFIOD_FAKE_PATH='"$(abs_builddir)/tests/daemon/vfiod-fake"'
tests_client_lib_test_vfioctl_LDADD = $(client_lib_suite_libs)

# libvfiod against the daemon's own code (daemon/ on the fake ioctl layer of
# tests/daemon), run by daemon-helper in a child process: a separate program,
# since daemon/ and libvfiod share a few names.
check_PROGRAMS += tests/client-lib/test-daemon tests/client-lib/daemon-helper
TESTS += tests/client-lib/test-daemon
tests_client_lib_test_daemon_SOURCES = tests/client-lib/test-daemon.c
tests_client_lib_test_daemon_CFLAGS = $(suite_cflags)
tests_client_lib_test_daemon_LDADD = client-lib/libvfiod.la $(suite_libs)

tests_client_lib_daemon_helper_SOURCES = tests/client-lib/daemon-helper.c
tests_client_lib_daemon_helper_CFLAGS = $(suite_cflags) $(PROTOBUF_C_CFLAGS) $(SYSTEMD_CFLAGS) \
	$(INIH_CFLAGS)
tests_client_lib_daemon_helper_LDADD = tests/daemon/libdaemon-harness.la $(suite_libs)

# libvfiod-preload.so on its own: test-preload runs preload-probe with and
# without it. The probe is built without the sanitizers (it is run with
# LD_PRELOAD, which would put the module before their runtime) and without
# _FORTIFY_SOURCE (it calls open and its fortify forms each by its name).
check_PROGRAMS += tests/client-lib/test-preload tests/client-lib/preload-probe
TESTS += tests/client-lib/test-preload tests/client-lib/check-preload-qemu.sh
EXTRA_DIST += tests/client-lib/check-preload-qemu.sh
tests_client_lib_test_preload_SOURCES = tests/client-lib/test-preload.c
tests_client_lib_test_preload_CFLAGS = $(suite_cflags)
tests_client_lib_test_preload_LDADD = $(suite_libs)
EXTRA_tests_client_lib_test_preload_DEPENDENCIES = client-lib/libvfiod-preload.la
tests_client_lib_preload_probe_SOURCES = tests/client-lib/preload-probe.c
tests_client_lib_preload_probe_CFLAGS = $(WARN_CFLAGS) -U_FORTIFY_SOURCE
tests_client_lib_preload_probe_LDFLAGS = -no-install
