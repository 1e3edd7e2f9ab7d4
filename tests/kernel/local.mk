# tests/kernel: host suites of the VFIO driver layer. The ioctls themselves
# run against a real kernel in tests/vm.
check_PROGRAMS += tests/kernel/test-sysfs tests/kernel/test-ioctl
TESTS += tests/kernel/test-sysfs tests/kernel/test-ioctl

# test-sysfs fakes the kernel's side of sysfs writes behind write() (--wrap).
tests_kernel_test_sysfs_SOURCES = tests/kernel/test-sysfs.c
tests_kernel_test_sysfs_CFLAGS = $(suite_cflags)
tests_kernel_test_sysfs_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=write
tests_kernel_test_sysfs_LDADD = kernel/libkvfio-sysfs.la $(suite_libs)

tests_kernel_test_ioctl_SOURCES = tests/kernel/test-ioctl.c
tests_kernel_test_ioctl_CFLAGS = $(suite_cflags)
tests_kernel_test_ioctl_LDADD = kernel/libkvfio.la $(suite_libs)
