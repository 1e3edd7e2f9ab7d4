/* SPDX-License-Identifier: MIT */
/*
 * Checks the test VM itself (run-vm.sh and guest-init.sh) before the real
 * suites run: an IOMMU is on, the VFIO nodes exist, and every edu device is
 * bound to vfio-pci in an IOMMU group of its own. Uses no project code, so a
 * failure here points at the harness, not at kernel/.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

#define N_EDU 3

static unsigned read_hex(const char *dir, const char *file)
{
        char path[PATH_MAX];
        unsigned v = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, file);
        f = fopen(path, "re");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(fscanf(f, "%x", &v), 1);
        fclose(f);
        return v;
}

/* The last component of the symlink dir/name, in buf. */
static const char *link_name(const char *dir, const char *name, char *buf, size_t size)
{
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;
        const char *slash;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        n = readlink(path, target, sizeof(target) - 1);
        ck_assert_msg(n > 0, "readlink %s: %s", path, strerror(errno));
        target[n] = '\0';
        slash = strrchr(target, '/');
        slash = slash ? slash + 1 : target;
        ck_assert_uint_lt(strlen(slash), size);
        memcpy(buf, slash, strlen(slash) + 1);
        return buf;
}

START_TEST(test_iommu_present)
{
        DIR *d = opendir("/sys/class/iommu");
        struct dirent *de;
        int n = 0;

        ck_assert_msg(d != NULL, "/sys/class/iommu: %s", strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        ck_assert_msg(n >= 1, "no IOMMU registered (intel_iommu=on?)");
}
END_TEST

START_TEST(test_edus_bound)
{
        const char *base = "/sys/bus/pci/devices";
        int groups[N_EDU], n = 0;
        DIR *d = opendir(base);
        struct dirent *de;

        ck_assert_msg(d != NULL, "%s: %s", base, strerror(errno));
        while ((de = readdir(d))) {
                char dir[PATH_MAX], buf[64], node[PATH_MAX];
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(dir, sizeof(dir), "%s/%s", base, de->d_name);
                if (read_hex(dir, "vendor") != 0x1234 || read_hex(dir, "device") != 0x11e8)
                        continue;
                ck_assert_int_lt(n, N_EDU);
                ck_assert_str_eq(link_name(dir, "driver", buf, sizeof(buf)), "vfio-pci");
                groups[n] = atoi(link_name(dir, "iommu_group", buf, sizeof(buf)));
                for (int i = 0; i < n; i++)
                        ck_assert_int_ne(groups[i], groups[n]);
                snprintf(node, sizeof(node), "/dev/vfio/%d", groups[n]);
                ck_assert_msg(stat(node, &st) == 0 && S_ISCHR(st.st_mode), "%s missing", node);
                n++;
        }
        closedir(d);
        ck_assert_int_eq(n, N_EDU);
}
END_TEST

START_TEST(test_container_node)
{
        struct stat st;

        ck_assert_msg(stat("/dev/vfio/vfio", &st) == 0, "/dev/vfio/vfio: %s", strerror(errno));
        ck_assert(S_ISCHR(st.st_mode));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("guest-harness");
        TCase *tc = tcase_create("vm");
        SRunner *sr;
        int failed;

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_iommu_present);
        tcase_add_test(tc, test_container_node);
        tcase_add_test(tc, test_edus_bound);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        /* CK_ENV: CK_VERBOSITY=verbose (set by the VM's init) prints every test. */
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
