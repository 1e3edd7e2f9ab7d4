/* SPDX-License-Identifier: MIT */
/*
 * kernel/sysfs.c on fake sysfs trees.
 *
 * The trees mimic the real layout: device folders live under
 * sys/devices/pci0000:00/<BDF>, sys/bus/pci/devices/<BDF> links to them, and
 * the driver/iommu_group links are relative exactly as the kernel makes them.
 *
 * Binding is tested against a small fake of the kernel's side: this program
 * is linked with -Wl,--wrap=write, so every write() that kernel/sysfs.c makes
 * lands in __wrap_write() below, which logs it and, for writes into the fake
 * tree, does what the kernel would (unbind removes the driver link, bind and
 * drivers_probe create it, honouring driver_override).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/sysfs.h"
#include "tests/testutil.h"

/* ---- fake tree ---------------------------------------------------------- */

static char *root; /* realpath of the fake root, per test */

static void tree_setup(void)
{
        char *tmp = testutil_mkdtemp("kvfio-sysfs");

        root = realpath(tmp, NULL);
        ck_assert_ptr_nonnull(root);
        free(tmp);
}

static void tree_teardown(void)
{
        testutil_rmtree(root);
        free(root);
        root = NULL;
}

static void mkdirs(const char *rel)
{
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s/.keep", root, rel);
        testutil_write_file(root, path + strlen(root) + 1, "");
}

static void link_at(const char *target, const char *rel)
{
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        unlink(path);
        ck_assert_msg(symlink(target, path) == 0, "symlink %s: %s", path, strerror(errno));
}

static void add_driver(const char *name)
{
        char rel[256];

        snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/bind", name);
        testutil_write_file(root, rel, "");
        snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/unbind", name);
        testutil_write_file(root, rel, "");
}

/* Adds a device with all its files; driver NULL: unbound; group -1: none. */
static void add_dev_full(const char *bdf, const char *vendor, const char *device, const char *cls,
                         const char *driver, int group)
{
        char rel[256], target[PATH_MAX];

        if (vendor) {
                snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/vendor", bdf);
                testutil_write_file(root, rel, vendor);
        }
        if (device) {
                snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/device", bdf);
                testutil_write_file(root, rel, device);
        }
        if (cls) {
                snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/class", bdf);
                testutil_write_file(root, rel, cls);
        }
        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/subsystem_vendor", bdf);
        testutil_write_file(root, rel, "0x1af4\n");
        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/subsystem_device", bdf);
        testutil_write_file(root, rel, "0x1100\n");
        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/driver_override", bdf);
        testutil_write_file(root, rel, "(null)\n");

        mkdirs("sys/bus/pci/devices");
        testutil_write_file(root, "sys/bus/pci/drivers_probe", "");
        snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", bdf);
        link_at(target, rel);

        if (driver) {
                add_driver(driver);
                snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
                snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/driver", bdf);
                link_at(target, rel);
        }
        if (group >= 0) {
                snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices", group);
                mkdirs(rel);
                snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/.keep", group);
                snprintf(target, sizeof(target), "%s/%s", root, rel);
                unlink(target);
                snprintf(target, sizeof(target), "../../../../devices/pci0000:00/%s", bdf);
                snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", group, bdf);
                link_at(target, rel);
                snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", group);
                snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/iommu_group", bdf);
                link_at(target, rel);
        }
}

static void add_dev(const char *bdf, const char *cls, const char *driver, int group)
{
        add_dev_full(bdf, "0x8086\n", "0x10d3\n", cls, driver, group);
}

static char *read_rel(const char *rel)
{
        static char buf[256];
        char path[PATH_MAX];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
        n = read(fd, buf, sizeof(buf) - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = '\0';
        close(fd);
        return buf;
}

/* ---- fake kernel behind write() ------------------------------------------ */

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static char write_log[4096];          /* one line per write into the tree */
static const char *probe_driver = ""; /* what drivers_probe binds without override */
static const char *refused_driver;    /* a driver whose bind always fails */
static const char *override_only;     /* a driver with no id table (uio_pci_generic) */

__attribute__((format(printf, 1, 2))) static void log_write(const char *fmt, ...)
{
        size_t len = strlen(write_log);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(write_log + len, sizeof(write_log) - len, fmt, ap);
        va_end(ap);
}

static void current_driver(const char *bdf, char *out, size_t size)
{
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", root, bdf);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
                out[0] = '\0';
                return;
        }
        target[n] = '\0';
        snprintf(out, size, "%s", strrchr(target, '/') + 1);
}

static int fake_bind(const char *bdf, const char *driver)
{
        char path[PATH_MAX], target[PATH_MAX], override[256];
        struct stat st;
        char *o;

        current_driver(bdf, override, sizeof(override));
        if (override[0])
                return -EBUSY;
        snprintf(path, sizeof(path), "sys/bus/pci/devices/%s/driver_override", bdf);
        snprintf(override, sizeof(override), "%s", read_rel(path));
        o = strtok(override, "\n");
        if (o && strcmp(o, "(null)") != 0 && strcmp(o, driver) != 0)
                return -ENODEV;
        /* A driver without ids matches only a device whose override names it. */
        if (override_only && strcmp(driver, override_only) == 0 && (!o || strcmp(o, driver) != 0))
                return -ENODEV;
        snprintf(path, sizeof(path), "%s/sys/bus/pci/drivers/%s", root, driver);
        if (stat(path, &st) < 0 || (refused_driver && strcmp(driver, refused_driver) == 0))
                return -ENODEV;
        snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", root, bdf);
        ck_assert_int_eq(symlink(target, path), 0);
        return 0;
}

static int fake_kernel(const char *rel, const char *data)
{
        char drv[256], cur[256], override[256], path[PATH_MAX];
        const char *p;
        char *o;

        if ((p = strstr(rel, "/driver_override")) && !p[16]) {
                const char *bdf = strrchr(rel, '/');

                /* rel is sys/devices/pci0000:00/<BDF>/driver_override */
                snprintf(path, sizeof(path), "%.*s", (int)(bdf - rel), rel);
                log_write("override %s %s\n", strrchr(path, '/') + 1,
                          strcmp(data, "\n") == 0 ? "<clear>" : data);
                return 0;
        }
        if (strcmp(rel, "sys/bus/pci/drivers_probe") == 0) {
                log_write("probe %s\n", data);
                current_driver(data, cur, sizeof(cur));
                if (cur[0])
                        return 0;
                snprintf(path, sizeof(path), "sys/bus/pci/devices/%s/driver_override", data);
                snprintf(override, sizeof(override), "%s", read_rel(path));
                o = strtok(override, "\n");
                if (o && strcmp(o, "(null)") != 0)
                        (void)fake_bind(data, o);
                else if (probe_driver[0])
                        (void)fake_bind(data, probe_driver);
                return 0;
        }
        if (sscanf(rel, "sys/bus/pci/drivers/%255[^/]/", drv) == 1) {
                p = strrchr(rel, '/') + 1;
                log_write("%s %s %s\n", p, drv, data);
                if (strcmp(p, "unbind") == 0) {
                        current_driver(data, cur, sizeof(cur));
                        if (strcmp(cur, drv) != 0)
                                return -ENODEV;
                        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", root,
                                 data);
                        ck_assert_int_eq(unlink(path), 0);
                        return 0;
                }
                if (strcmp(p, "bind") == 0)
                        return fake_bind(data, drv);
        }
        return 0;
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
        char link[64], path[PATH_MAX], data[256];
        size_t rlen = root ? strlen(root) : 0;
        ssize_t len;
        int r;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        len = readlink(link, path, sizeof(path) - 1);
        if (!root || len <= (ssize_t)rlen || strncmp(path, root, rlen) != 0 || path[rlen] != '/')
                return __real_write(fd, buf, n);
        path[len] = '\0';
        snprintf(data, sizeof(data), "%.*s", (int)n, (const char *)buf);
        r = fake_kernel(path + rlen + 1, data);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return __real_write(fd, buf, n);
}

/* ---- addresses ----------------------------------------------------------- */

START_TEST(test_addr_parse)
{
        struct kvfio_pci_addr a;
        char bdf[KVFIO_BDF_MAX];

        ck_assert_int_eq(kvfio_pci_addr_parse("0000:00:04.0", &a), 0);
        ck_assert_uint_eq(a.domain, 0);
        ck_assert_uint_eq(a.bus, 0);
        ck_assert_uint_eq(a.slot, 4);
        ck_assert_uint_eq(a.func, 0);

        ck_assert_int_eq(kvfio_pci_addr_parse("00:1F.7", &a), 0);
        ck_assert_uint_eq(a.slot, 0x1f);
        ck_assert_uint_eq(a.func, 7);
        ck_assert_str_eq(kvfio_pci_addr_format(&a, bdf), "0000:00:1f.7");

        ck_assert_int_eq(kvfio_pci_addr_normalize("ABCD:EF:1a.3", bdf), 0);
        ck_assert_str_eq(bdf, "abcd:ef:1a.3");
        ck_assert_int_eq(kvfio_pci_addr_normalize("10000:01:00.0", bdf), 0);
        ck_assert_str_eq(bdf, "10000:01:00.0");
        ck_assert_int_eq(kvfio_pci_addr_normalize("0FFFFFFF:ff:1f.7", bdf), 0);
        ck_assert_str_eq(bdf, "fffffff:ff:1f.7");
        ck_assert_int_eq(kvfio_pci_addr_normalize("10000000:00:00.0", bdf), -EINVAL);
        ck_assert_int_eq(kvfio_pci_addr_normalize("1:2:3.4", bdf), 0);
        ck_assert_str_eq(bdf, "0001:02:03.4");

        static const char *const bad[] = {
            "",
            "0000:00:04",
            "0000:00:20.0",
            "0000:00:04.8",
            "0000:00:04.0 ",
            " 00:04.0",
            "g000:00:04.0",
            "000000000:00:04.0",
            "00:004.0",
            "0000:100:04.0",
            "0000:00:04.00",
            "0000::04.0",
            ":00:04.0",
            "0000:00:04.",
            "00.04.0",
            "0:0:0:00:04.0",
            "0000:00:04.0\n",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                a.domain = 0x55;
                ck_assert_msg(kvfio_pci_addr_parse(bad[i], &a) == -EINVAL, "accepted '%s'", bad[i]);
                ck_assert_uint_eq(a.domain, 0x55); /* untouched */
        }
        ck_assert_int_eq(kvfio_pci_addr_parse(NULL, &a), -EINVAL);
        strcpy(bdf, "keep");
        ck_assert_int_eq(kvfio_pci_addr_normalize("zz", bdf), -EINVAL);
        ck_assert_str_eq(bdf, "keep");
}
END_TEST

START_TEST(test_addr_compare)
{
        struct kvfio_pci_addr a, b;

        ck_assert_int_eq(kvfio_pci_addr_parse("0000:00:1f.0", &a), 0);
        ck_assert_int_eq(kvfio_pci_addr_parse("0000:01:00.0", &b), 0);
        ck_assert_int_lt(kvfio_pci_addr_compare(&a, &b), 0);
        ck_assert_int_gt(kvfio_pci_addr_compare(&b, &a), 0);
        ck_assert_int_eq(kvfio_pci_addr_compare(&a, &a), 0);
        ck_assert_int_eq(kvfio_pci_addr_parse("0001:00:00.0", &a), 0);
        ck_assert_int_gt(kvfio_pci_addr_compare(&a, &b), 0);
}
END_TEST

/* ---- discovery ----------------------------------------------------------- */

START_TEST(test_discover_fields)
{
        struct kvfio_pci_list *list = NULL;
        const struct kvfio_pci_dev *d;

        add_dev("0000:00:05.0", "0x020000\n", "e1000e", 7);
        add_dev_full("0000:00:04.0", "0x1234\n", "0x11e8\n", "0x00ff00\n", "vfio-pci", 3);
        add_dev("0000:00:1c.0", "0x060400\n", "pcieport", 3);
        add_dev("0000:01:00.0", "0x010802\n", NULL, -1);

        ck_assert_int_eq(kvfio_pci_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 4);
        ck_assert_uint_eq(list->n_skipped, 0);
        /* sorted by address */
        ck_assert_str_eq(list->devs[0].bdf, "0000:00:04.0");
        ck_assert_str_eq(list->devs[1].bdf, "0000:00:05.0");
        ck_assert_str_eq(list->devs[2].bdf, "0000:00:1c.0");
        ck_assert_str_eq(list->devs[3].bdf, "0000:01:00.0");

        d = &list->devs[0];
        ck_assert_uint_eq(d->vendor, 0x1234);
        ck_assert_uint_eq(d->device, 0x11e8);
        ck_assert_uint_eq(d->subvendor, 0x1af4);
        ck_assert_uint_eq(d->subdevice, 0x1100);
        ck_assert_uint_eq(d->class, 0x00ff00);
        ck_assert_str_eq(d->driver, "vfio-pci");
        ck_assert_int_eq(d->iommu_group, 3);
        ck_assert_uint_eq(d->addr.slot, 4);
        ck_assert(!kvfio_pci_dev_is_bridge(d));

        d = kvfio_pci_list_find(list, "00:05.0");
        ck_assert_ptr_eq(d, &list->devs[1]);
        ck_assert_uint_eq(d->vendor, 0x8086);
        ck_assert_uint_eq(d->device, 0x10d3);
        ck_assert_uint_eq(d->class, 0x020000);
        ck_assert_str_eq(d->driver, "e1000e");
        ck_assert_int_eq(d->iommu_group, 7);

        d = kvfio_pci_list_find(list, "0000:00:1C.0");
        ck_assert_ptr_nonnull(d);
        ck_assert(kvfio_pci_dev_is_bridge(d));
        ck_assert_str_eq(d->driver, "pcieport");

        d = kvfio_pci_list_find(list, "0000:01:00.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_str_eq(d->driver, "");
        ck_assert_int_eq(d->iommu_group, -1);

        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:00:06.0"));
        ck_assert_ptr_null(kvfio_pci_list_find(list, "garbage"));
        ck_assert_ptr_null(kvfio_pci_list_find(NULL, "0000:00:04.0"));
        kvfio_pci_list_free(list);
        kvfio_pci_list_free(NULL);
}
END_TEST

START_TEST(test_dev_read)
{
        struct kvfio_pci_dev d;

        add_dev("0000:00:05.0", "0x020000\n", "e1000e", 7);
        add_dev_full("0000:00:06.0", NULL, "0x10d3\n", "0x020000\n", NULL, -1);
        ck_assert_int_eq(kvfio_pci_dev_read(root, "00:05.0", &d), 0);
        ck_assert_str_eq(d.bdf, "0000:00:05.0");
        ck_assert_str_eq(d.driver, "e1000e");
        ck_assert_int_eq(d.iommu_group, 7);
        memset(&d, 0x5a, sizeof(d));
        ck_assert_int_eq(kvfio_pci_dev_read(root, "0000:00:09.0", &d), -ENODEV);
        ck_assert_int_eq(kvfio_pci_dev_read(root, "0000:00:06.0", &d), -EBADMSG);
        ck_assert_int_eq(kvfio_pci_dev_read(root, "nope", &d), -EINVAL);
        ck_assert_uint_eq(d.vendor, 0x5a5a); /* untouched on failure */
}
END_TEST

START_TEST(test_discover_odd_files)
{
        struct kvfio_pci_list *list = NULL;
        const struct kvfio_pci_dev *d;

        add_dev("0000:00:01.0", "0x030000\n", NULL, 1);                        /* good */
        add_dev_full("0000:00:02.0", NULL, "0x1\n", "0x030000\n", NULL, 2);    /* no vendor */
        add_dev("0000:00:03.0", "0xzz\n", NULL, 3);                            /* garbage class */
        add_dev_full("0000:00:04.0", "0x123456\n", "0x1\n", "0x0\n", NULL, 4); /* vendor too big */
        add_dev_full("0000:00:05.0", "", "0x1\n", "0x0\n", NULL, 5);           /* empty vendor */
        add_dev_full("0000:00:06.0", "8086", "10d3", "020000", NULL, -1);      /* no 0x, no \n */
        add_dev("0000:00:07.0", "0x020000\n", "vfio-pci", 9);
        add_dev("0000:00:08.0", "0x020000\n", NULL, -1);

        /* 07.0: dangling links (driver and group folders do not exist) */
        link_at("../../../bus/pci/drivers/gone-driver",
                "sys/devices/pci0000:00/0000:00:07.0/driver");
        link_at("../../../kernel/iommu_groups/42",
                "sys/devices/pci0000:00/0000:00:07.0/iommu_group");
        /* 08.0: a group link whose name is not a number; no subsystem files */
        link_at("../../../kernel/iommu_groups/x1",
                "sys/devices/pci0000:00/0000:00:08.0/iommu_group");
        {
                char path[PATH_MAX];

                snprintf(path, sizeof(path), "%s/sys/devices/pci0000:00/0000:00:08.0/%s", root,
                         "subsystem_vendor");
                ck_assert_int_eq(unlink(path), 0);
        }
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:08.0/subsystem_device", "junk");
        /* a device entry that is a dangling link, and entries that are not addresses */
        link_at("../../../devices/pci0000:00/0000:00:09.0", "sys/bus/pci/devices/0000:00:09.0");
        testutil_write_file(root, "sys/bus/pci/devices/not-a-device", "x");
        /* a second name for 01.0 */
        link_at("../../../devices/pci0000:00/0000:00:01.0", "sys/bus/pci/devices/00:01.0");

        ck_assert_int_eq(kvfio_pci_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 4);
        /* 02, 03, 04, 05, 09, not-a-device, duplicate 01 */
        ck_assert_uint_eq(list->n_skipped, 7);

        d = kvfio_pci_list_find(list, "0000:00:01.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(d->iommu_group, 1);
        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:00:02.0"));
        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:00:03.0"));

        d = kvfio_pci_list_find(list, "0000:00:06.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(d->vendor, 0x8086);
        ck_assert_uint_eq(d->class, 0x020000);
        ck_assert_int_eq(d->iommu_group, -1);

        d = kvfio_pci_list_find(list, "0000:00:07.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_str_eq(d->driver, "gone-driver");
        ck_assert_int_eq(d->iommu_group, 42);

        d = kvfio_pci_list_find(list, "0000:00:08.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(d->iommu_group, -1);
        ck_assert_uint_eq(d->subvendor, 0);
        ck_assert_uint_eq(d->subdevice, 0);
        kvfio_pci_list_free(list);
}
END_TEST

START_TEST(test_discover_modalias)
{
        struct kvfio_pci_list *list = NULL;
        const struct kvfio_pci_dev *d;

        /* modalias only: no separate id files at all */
        add_dev_full("0000:00:01.0", NULL, NULL, NULL, "vfio-pci", 1);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:01.0/modalias",
                            "pci:v00001234d000011E8sv00001AF5sd00001101bc00scffi01\n");
        /* modalias wins over the separate files */
        add_dev("0000:00:02.0", "0x020000\n", NULL, 2);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:02.0/modalias",
                            "pci:v0000DEADd0000BEEFsv00000000sd00000000bc06sc04i00");
        /* garbage modalias: the separate files are used */
        add_dev("0000:00:03.0", "0x030000\n", NULL, 3);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:03.0/modalias",
                            "pci:v00018086d000010D3sv00001AF4sd00001100bc02sc00i00\n");
        add_dev("0000:00:04.0", "0x030000\n", NULL, 4);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:04.0/modalias",
                            "pci:v00008086d000010D3sv00001AF4sd00001100bc02sc00i0\n");
        /* garbage modalias and no separate files: skipped */
        add_dev_full("0000:00:05.0", NULL, NULL, NULL, NULL, 5);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:05.0/modalias", "acpi:XYZ\n");

        ck_assert_int_eq(kvfio_pci_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 4);
        ck_assert_uint_eq(list->n_skipped, 1);
        d = kvfio_pci_list_find(list, "0000:00:01.0");
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(d->vendor, 0x1234);
        ck_assert_uint_eq(d->device, 0x11e8);
        ck_assert_uint_eq(d->subvendor, 0x1af5);
        ck_assert_uint_eq(d->subdevice, 0x1101);
        ck_assert_uint_eq(d->class, 0x00ff01);
        ck_assert_str_eq(d->driver, "vfio-pci");
        ck_assert_int_eq(d->iommu_group, 1);
        d = kvfio_pci_list_find(list, "0000:00:02.0");
        ck_assert_uint_eq(d->vendor, 0xdead);
        ck_assert_uint_eq(d->device, 0xbeef);
        ck_assert_uint_eq(d->subvendor, 0);
        ck_assert_uint_eq(d->class, 0x060400);
        ck_assert(kvfio_pci_dev_is_bridge(d));
        d = kvfio_pci_list_find(list, "0000:00:03.0");
        ck_assert_uint_eq(d->vendor, 0x8086);
        ck_assert_uint_eq(d->class, 0x030000);
        d = kvfio_pci_list_find(list, "0000:00:04.0");
        ck_assert_uint_eq(d->class, 0x030000);
        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:00:05.0"));
        kvfio_pci_list_free(list);
}
END_TEST

START_TEST(test_discover_empty_and_missing)
{
        struct kvfio_pci_list *list = (void *)0x1;
        char path[PATH_MAX];

        /* missing root / missing bus */
        snprintf(path, sizeof(path), "%s/does-not-exist", root);
        ck_assert_int_eq(kvfio_pci_discover(path, &list), -ENOENT);
        ck_assert_int_eq(kvfio_pci_discover(root, &list), -ENOENT);
        ck_assert_ptr_eq(list, (void *)0x1);
        ck_assert_int_eq(kvfio_pci_discover(NULL, &list), -EINVAL);
        ck_assert_int_eq(kvfio_pci_discover("", &list), -EINVAL);
        ck_assert_int_eq(kvfio_pci_discover(root, NULL), -EINVAL);

        /* devices is a file */
        testutil_write_file(root, "sys/bus/pci/devices", "");
        ck_assert_int_eq(kvfio_pci_discover(root, &list), -ENOTDIR);
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices", root);
        ck_assert_int_eq(unlink(path), 0);

        /* empty tree */
        mkdirs("sys/bus/pci/devices");
        ck_assert_int_eq(kvfio_pci_discover(root, &list), 0);
        ck_assert_ptr_ne(list, (void *)0x1);
        ck_assert_uint_eq(list->n, 0);
        ck_assert_uint_eq(list->n_skipped, 0);
        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:00:00.0"));
        kvfio_pci_list_free(list);
}
END_TEST

/* ---- groups -------------------------------------------------------------- */

START_TEST(test_group_members)
{
        struct kvfio_pci_list *list = NULL;

        add_dev("0000:00:05.1", "0x020000\n", "vfio-pci", 5);
        add_dev("0000:00:05.0", "0x020000\n", "e1000e", 5);
        add_dev("0000:00:06.0", "0x020000\n", "vfio-pci", 6);

        ck_assert_int_eq(kvfio_iommu_group_members(root, 5, &list), 0);
        ck_assert_uint_eq(list->n, 2);
        ck_assert_str_eq(list->devs[0].bdf, "0000:00:05.0");
        ck_assert_str_eq(list->devs[0].driver, "e1000e");
        ck_assert_str_eq(list->devs[1].bdf, "0000:00:05.1");
        ck_assert_int_eq(list->devs[1].iommu_group, 5);
        kvfio_pci_list_free(list);

        ck_assert_int_eq(kvfio_iommu_group_members(root, 6, &list), 0);
        ck_assert_uint_eq(list->n, 1);
        ck_assert_str_eq(list->devs[0].bdf, "0000:00:06.0");
        kvfio_pci_list_free(list);

        /* a member that is not a PCI device is left out, and counted */
        link_at("../../../../devices/platform/foo", "sys/kernel/iommu_groups/6/devices/foo");
        ck_assert_int_eq(kvfio_iommu_group_members(root, 6, &list), 0);
        ck_assert_uint_eq(list->n, 1);
        ck_assert_uint_eq(list->n_skipped, 1);
        kvfio_pci_list_free(list);

        list = NULL;
        ck_assert_int_eq(kvfio_iommu_group_members(root, 99, &list), -ENOENT);
        ck_assert_int_eq(kvfio_iommu_group_members(root, -1, &list), -EINVAL);
        ck_assert_int_eq(kvfio_iommu_group_members(NULL, 5, &list), -EINVAL);
        ck_assert_ptr_null(list);
}
END_TEST

static struct kvfio_group_viability viability(int group)
{
        struct kvfio_group_viability v;

        memset(&v, 0x5a, sizeof(v));
        ck_assert_int_eq(kvfio_iommu_group_viable(root, group, &v), 0);
        return v;
}

START_TEST(test_group_viable)
{
        struct kvfio_group_viability v;

        /* group 1: vfio-pci + unbound + bridge with pcieport -> viable */
        add_dev("0000:00:01.0", "0x020000\n", "vfio-pci", 1);
        add_dev("0000:00:01.1", "0x020000\n", NULL, 1);
        add_dev("0000:00:1c.0", "0x060400\n", "pcieport", 1);
        v = viability(1);
        ck_assert(v.viable);
        ck_assert_uint_eq(v.n_members, 3);
        ck_assert_str_eq(v.culprit, "");

        /* group 2: a bridge bound to some other driver and pci-stub -> viable */
        add_dev("0000:00:02.0", "0x060401\n", "shpchp", 2);
        add_dev("0000:00:02.1", "0x010802\n", "pci-stub", 2);
        add_dev("0000:00:02.2", "0x020000\n", "mlx5_vfio_pci", 2);
        v = viability(2);
        ck_assert(v.viable);

        /* group 3: one member bound to a host driver -> not viable, named */
        add_dev("0000:00:03.0", "0x020000\n", "vfio-pci", 3);
        add_dev("0000:00:03.2", "0x020000\n", "igb", 3);
        add_dev("0000:00:03.1", "0x020000\n", "e1000e", 3);
        add_dev("0000:00:03.3", "0x020000\n", "_vfio_pci", 3);
        add_dev("0000:00:03.4", "0x020000\n", "vfio_pci_not", 3);
        v = viability(3);
        ck_assert(!v.viable);
        ck_assert_uint_eq(v.n_members, 5);
        ck_assert_str_eq(v.culprit, "0000:00:03.1"); /* first in address order */
        ck_assert_str_eq(v.culprit_driver, "e1000e");

        /* group 4: a non-PCI member with a driver -> not viable */
        add_dev("0000:00:04.0", "0x020000\n", "vfio-pci", 4);
        mkdirs("sys/devices/platform/serial0");
        link_at("../../bus/platform/drivers/uart", "sys/devices/platform/serial0/driver");
        link_at("../../../../devices/platform/serial0",
                "sys/kernel/iommu_groups/4/devices/serial0");
        v = viability(4);
        ck_assert(!v.viable);
        ck_assert_str_eq(v.culprit, "serial0");
        ck_assert_str_eq(v.culprit_driver, "uart");

        /* group 5: a member whose files are garbage -> not viable */
        add_dev("0000:00:05.0", "0x020000\n", "vfio-pci", 5);
        add_dev_full("0000:00:05.1", "bogus", "0x1", "0x020000", "vfio-pci", 5);
        v = viability(5);
        ck_assert(!v.viable);
        ck_assert_str_eq(v.culprit, "0000:00:05.1");

        /* names that only look like vfio-pci variants */
        add_dev("0000:00:06.0", "0x020000\n", "vfio_pci_not", 6);
        v = viability(6);
        ck_assert(!v.viable);
        ck_assert_str_eq(v.culprit_driver, "vfio_pci_not");
        add_dev("0000:00:07.0", "0x020000\n", "_vfio_pci", 7);
        v = viability(7);
        ck_assert(!v.viable);
        ck_assert_str_eq(v.culprit, "0000:00:07.0");

        /* errors */
        memset(&v, 0x5a, sizeof(v));
        ck_assert_int_eq(kvfio_iommu_group_viable(root, 77, &v), -ENOENT);
        ck_assert_int_eq(kvfio_iommu_group_viable(root, -3, &v), -EINVAL);
        ck_assert_int_eq(kvfio_iommu_group_viable(root, 1, NULL), -EINVAL);
        mkdirs("sys/kernel/iommu_groups/8/devices");
        {
                char path[PATH_MAX];

                snprintf(path, sizeof(path), "%s/sys/kernel/iommu_groups/8/devices/.keep", root);
                ck_assert_int_eq(unlink(path), 0);
        }
        ck_assert_int_eq(kvfio_iommu_group_viable(root, 8, &v), -ENODEV);
        ck_assert_uint_eq(v.n_members, (size_t)0x5a5a5a5a5a5a5a5aull); /* untouched */
}
END_TEST

/* ---- mediated devices ----------------------------------------------------- */

/*
 * Adds an mdev as the kernel lays it out: its folder under its parent's,
 * sys/bus/mdev/devices/<uuid> linking there, driver/mdev_type/iommu_group
 * links, and the group's entry linking to the folder.
 */
static void add_mdev(const char *uuid, const char *parent, const char *type, const char *driver,
                     int group)
{
        char rel[512], target[PATH_MAX];

        snprintf(rel, sizeof(rel), "sys/devices/virtual/%s/%s/%s", parent, parent, uuid);
        mkdirs(rel);
        mkdirs("sys/bus/mdev/devices");
        snprintf(target, sizeof(target), "../../../devices/virtual/%s/%s/%s", parent, parent, uuid);
        snprintf(rel, sizeof(rel), "sys/bus/mdev/devices/%s", uuid);
        link_at(target, rel);
        snprintf(target, sizeof(target), "../mdev_supported_types/%s", type);
        snprintf(rel, sizeof(rel), "sys/devices/virtual/%s/%s/%s/mdev_type", parent, parent, uuid);
        link_at(target, rel);
        if (driver) {
                snprintf(target, sizeof(target), "../../../../../bus/mdev/drivers/%s", driver);
                snprintf(rel, sizeof(rel), "sys/devices/virtual/%s/%s/%s/driver", parent, parent,
                         uuid);
                link_at(target, rel);
        }
        if (group >= 0) {
                snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices", group);
                mkdirs(rel);
                snprintf(target, sizeof(target), "%s/%s/.keep", root, rel);
                unlink(target);
                snprintf(target, sizeof(target), "../../../../devices/virtual/%s/%s/%s", parent,
                         parent, uuid);
                snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", group, uuid);
                link_at(target, rel);
                snprintf(target, sizeof(target), "../../../../../kernel/iommu_groups/%d", group);
                snprintf(rel, sizeof(rel), "sys/devices/virtual/%s/%s/%s/iommu_group", parent,
                         parent, uuid);
                link_at(target, rel);
        }
}

#define UUID_A "6d646d61-0000-4000-8000-00000000000a"
#define UUID_B "6d646d61-0000-4000-8000-00000000000b"

START_TEST(test_uuid_normalize)
{
        char u[KVFIO_UUID_MAX], n[KVFIO_NAME_MAX];

        ck_assert_int_eq(kvfio_mdev_uuid_normalize("6D646D61-0000-4000-8000-00000000000A", u), 0);
        ck_assert_str_eq(u, UUID_A);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize(UUID_B, u), 0);
        ck_assert_str_eq(u, UUID_B);
        memset(u, 'x', sizeof(u));
        ck_assert_int_eq(kvfio_mdev_uuid_normalize(UUID_A " ", u), -EINVAL);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize("6d646d61-0000-4000-8000-00000000000", u),
                         -EINVAL);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize("6d646d610000-4000-8000-00000000000a0", u),
                         -EINVAL);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize("6d646d61-0000-4000-8000-00000000000g", u),
                         -EINVAL);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize("", u), -EINVAL);
        ck_assert_int_eq(kvfio_mdev_uuid_normalize(NULL, u), -EINVAL);
        ck_assert_int_eq(u[0], 'x'); /* untouched */

        ck_assert_int_eq(kvfio_dev_name_normalize("00:1F.7", n), 0);
        ck_assert_str_eq(n, "0000:00:1f.7");
        ck_assert_int_eq(kvfio_dev_name_normalize("6D646D61-0000-4000-8000-00000000000B", n), 0);
        ck_assert_str_eq(n, UUID_B);
        ck_assert_int_eq(kvfio_dev_name_normalize("mdma-1", n), -EINVAL);
        ck_assert_int_eq(kvfio_dev_name_normalize(NULL, n), -EINVAL);
}
END_TEST

START_TEST(test_mdev_discover)
{
        struct kvfio_pci_list *list = NULL;
        struct kvfio_pci_dev d;

        /* no mdev bus: no mdevs, not an error */
        add_dev("0000:00:04.0", "0x020000\n", "vfio-pci", 4);
        ck_assert_int_eq(kvfio_mdev_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 0);
        kvfio_pci_list_free(list);
        ck_assert_int_eq(kvfio_mdev_dev_read(root, UUID_A, &d), -ENODEV);

        add_mdev(UUID_B, "mdma", "mdma-1", "mdma", 12);
        add_mdev(UUID_A, "mdma", "mdma-1", "mdma", 11);
        add_mdev("6d646d61-0000-4000-8000-0000000000c0", "mtty", "mtty-2", NULL, -1);
        link_at("../../../devices/virtual/foo", "sys/bus/mdev/devices/not-a-uuid");

        ck_assert_int_eq(kvfio_mdev_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 3);
        ck_assert_uint_eq(list->n_skipped, 1);
        ck_assert_str_eq(list->devs[0].bdf, UUID_A); /* sorted by UUID */
        ck_assert(list->devs[0].mdev);
        ck_assert_str_eq(list->devs[0].driver, "mdma");
        ck_assert_str_eq(list->devs[0].mdev_type, "mdma-1");
        ck_assert_str_eq(list->devs[0].parent, "mdma");
        ck_assert_int_eq(list->devs[0].iommu_group, 11);
        ck_assert_uint_eq(list->devs[0].vendor, 0);
        ck_assert_uint_eq(list->devs[0].class, 0);
        ck_assert_str_eq(list->devs[1].bdf, UUID_B);
        ck_assert_int_eq(list->devs[1].iommu_group, 12);
        ck_assert_str_eq(list->devs[2].driver, "");
        ck_assert_str_eq(list->devs[2].mdev_type, "mtty-2");
        ck_assert_str_eq(list->devs[2].parent, "mtty");
        ck_assert_int_eq(list->devs[2].iommu_group, -1);
        kvfio_pci_list_free(list);

        /* PCI devices first (by address), then the mdevs; find takes either name */
        add_dev("0000:00:02.0", "0x020000\n", NULL, -1);
        ck_assert_int_eq(kvfio_dev_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 5);
        ck_assert_str_eq(list->devs[0].bdf, "0000:00:02.0");
        ck_assert_str_eq(list->devs[1].bdf, "0000:00:04.0");
        ck_assert(!list->devs[1].mdev);
        ck_assert_str_eq(list->devs[2].bdf, UUID_A);
        ck_assert_ptr_eq(kvfio_pci_list_find(list, "6D646D61-0000-4000-8000-00000000000B"),
                         &list->devs[3]);
        ck_assert_ptr_eq(kvfio_pci_list_find(list, "00:04.0"), &list->devs[1]);
        ck_assert_ptr_eq(kvfio_pci_list_find(list, "0000:00:00.0"), NULL);
        ck_assert_ptr_null(kvfio_pci_list_find(list, "6d646d61-0000-4000-8000-0000000000ff"));
        kvfio_pci_list_free(list);

        /* one by name, either case */
        ck_assert_int_eq(kvfio_mdev_dev_read(root, "6D646D61-0000-4000-8000-00000000000A", &d), 0);
        ck_assert_str_eq(d.bdf, UUID_A);
        ck_assert_str_eq(d.mdev_type, "mdma-1");
        ck_assert_int_eq(kvfio_dev_read(root, UUID_B, &d), 0);
        ck_assert(d.mdev);
        ck_assert_int_eq(d.iommu_group, 12);
        ck_assert_int_eq(kvfio_dev_read(root, "0000:00:04.0", &d), 0);
        ck_assert(!d.mdev);
        ck_assert_int_eq(kvfio_dev_read(root, "6d646d61-0000-4000-8000-0000000000ff", &d), -ENODEV);
        ck_assert_int_eq(kvfio_dev_read(root, "mdma-1", &d), -EINVAL);
        ck_assert_int_eq(kvfio_mdev_dev_read(root, "0000:00:04.0", &d), -EINVAL);
}
END_TEST

START_TEST(test_mdev_groups)
{
        struct kvfio_pci_list *list = NULL;
        struct kvfio_group_viability v;

        add_mdev(UUID_A, "mdma", "mdma-1", "mdma", 11);
        add_dev("0000:00:03.0", "0x020000\n", "vfio-pci", 3);

        /* an mdev's own group: the mdev is its member, read through the group's entry */
        ck_assert_int_eq(kvfio_iommu_group_members(root, 11, &list), 0);
        ck_assert_uint_eq(list->n, 1);
        ck_assert_uint_eq(list->n_skipped, 0);
        ck_assert_str_eq(list->devs[0].bdf, UUID_A);
        ck_assert(list->devs[0].mdev);
        ck_assert_str_eq(list->devs[0].driver, "mdma");
        ck_assert_str_eq(list->devs[0].mdev_type, "mdma-1");
        ck_assert_int_eq(list->devs[0].iommu_group, 11);
        kvfio_pci_list_free(list);

        /* bound to its vendor driver, the mdev is the VFIO device: viable */
        v = viability(11);
        ck_assert(v.viable);
        ck_assert_uint_eq(v.n_members, 1);

        /* an mdev next to a PCI device on a host driver: the PCI device is the culprit */
        add_mdev(UUID_B, "mdma", "mdma-1", "mdma", 3);
        add_dev("0000:00:03.1", "0x020000\n", "e1000e", 3);
        ck_assert_int_eq(kvfio_iommu_group_members(root, 3, &list), 0);
        ck_assert_uint_eq(list->n, 3);
        ck_assert_str_eq(list->devs[2].bdf, UUID_B); /* after the PCI members */
        kvfio_pci_list_free(list);
        v = viability(3);
        ck_assert(!v.viable);
        ck_assert_str_eq(v.culprit, "0000:00:03.1");
}
END_TEST

/*
 * The devices a group fd opens (VFIO_GROUP_GET_DEVICE_FD): vfio-pci, its vendor variants and
 * bound mdevs. Each is also a member that keeps its group viable.
 */
/*
 * The device cdev: vfio-dev/vfioN below a PCI device or an mdev (with the
 * dev file the kernel puts there), and which of /dev/vfio/vfio and
 * /dev/iommu the kernel offers (sys/class/misc).
 */
START_TEST(test_vfio_cdev)
{
        struct kvfio_pci_list *list = NULL;
        struct kvfio_pci_dev d;

        add_dev("0000:00:04.0", "0x00ff00\n", "vfio-pci", 3);
        add_dev("0000:00:05.0", "0x00ff00\n", "vfio-pci", 4);
        add_dev("0000:00:06.0", "0x020000\n", "e1000e", 5);
        add_dev("0000:00:07.0", "0x00ff00\n", "vfio-pci", 6);
        add_mdev(UUID_A, "mdma", "mdma-1", "mdma", 11);
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:04.0/vfio-dev/vfio0/dev",
                            "242:0\n");
        testutil_write_file(root, "sys/devices/pci0000:00/0000:00:05.0/vfio-dev/vfio17/dev",
                            "242:17\n");
        /* an empty vfio-dev folder, and one whose entry is not vfioN */
        mkdirs("sys/devices/pci0000:00/0000:00:06.0/vfio-dev");
        mkdirs("sys/devices/pci0000:00/0000:00:07.0/vfio-dev/vfiox");
        testutil_write_file(root, "sys/devices/virtual/mdma/mdma/" UUID_A "/vfio-dev/vfio2/dev",
                            "242:2\n");

        ck_assert_int_eq(kvfio_dev_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 5);
        ck_assert_int_eq(list->devs[0].vfio_cdev, 0);
        ck_assert_int_eq(list->devs[1].vfio_cdev, 17);
        ck_assert_int_eq(list->devs[2].vfio_cdev, -1);
        ck_assert_int_eq(list->devs[3].vfio_cdev, -1);
        ck_assert_str_eq(list->devs[4].bdf, UUID_A);
        ck_assert_int_eq(list->devs[4].vfio_cdev, 2);
        kvfio_pci_list_free(list);

        ck_assert_int_eq(kvfio_pci_dev_read(root, "00:05.0", &d), 0);
        ck_assert_int_eq(d.vfio_cdev, 17);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, "0000:00:05.0"), 17);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, "0000:00:04.0"), 0);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, UUID_A), 2);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, "0000:00:06.0"), -ENOENT);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, "0000:00:09.0"), -ENODEV);
        ck_assert_int_eq(kvfio_dev_vfio_cdev(root, "nope"), -EINVAL);

        /* the interfaces: none, then each */
        ck_assert_int_eq(kvfio_vfio_interfaces(root), 0);
        mkdirs("sys/class/misc/vfio");
        ck_assert_int_eq(kvfio_vfio_interfaces(root), KVFIO_IF_CONTAINER);
        link_at("../../devices/virtual/misc/iommu", "sys/class/misc/iommu");
        ck_assert_int_eq(kvfio_vfio_interfaces(root), KVFIO_IF_CONTAINER | KVFIO_IF_IOMMUFD);
        ck_assert_int_eq(kvfio_vfio_interfaces(""), -EINVAL);
        ck_assert_int_eq(kvfio_vfio_interfaces(NULL), -EINVAL);
}
END_TEST

START_TEST(test_dev_is_vfio)
{
        static const struct {
                const char *bdf, *cls, *driver;
                bool vfio;
        } devs[] = {
            {"0000:00:09.0", "0x020000\n", "vfio-pci", true},
            {"0000:00:09.1", "0x020000\n", "mlx5_vfio_pci", true},
            {"0000:00:09.2", "0x120000\n", "hisi_acc_vfio_pci", true},
            {"0000:00:09.3", "0x020000\n", NULL, false},
            {"0000:00:09.4", "0x020000\n", "pci-stub", false},
            {"0000:00:09.5", "0x060400\n", "pcieport", false},
        };
        struct kvfio_pci_list *list = NULL;
        struct kvfio_pci_dev dev;

        for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
                add_dev(devs[i].bdf, devs[i].cls, devs[i].driver, 9);
        add_mdev(UUID_A, "mdma", "mdma-1", "mdma", 9);
        add_mdev(UUID_B, "mdma", "mdma-1", NULL, 9);
        ck_assert(viability(9).viable);
        ck_assert_int_eq(kvfio_iommu_group_members(root, 9, &list), 0);
        ck_assert_uint_eq(list->n, 8);
        for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
                const struct kvfio_pci_dev *m = kvfio_pci_list_find(list, devs[i].bdf);

                ck_assert_ptr_nonnull(m);
                ck_assert_msg(kvfio_dev_is_vfio(m) == devs[i].vfio, "%s on '%s'", devs[i].bdf,
                              devs[i].driver ? devs[i].driver : "");
        }
        ck_assert(kvfio_dev_is_vfio(kvfio_pci_list_find(list, UUID_A)));
        ck_assert(!kvfio_dev_is_vfio(kvfio_pci_list_find(list, UUID_B))); /* no driver */
        kvfio_pci_list_free(list);

        /* names that only look like variants, and host drivers: not VFIO, not viable */
        add_dev("0000:00:0a.0", "0x020000\n", "_vfio_pci", 10);
        add_dev("0000:00:0a.1", "0x020000\n", "vfio_pci_not", 11);
        add_dev("0000:00:0a.2", "0x020000\n", "e1000e", 12);
        for (int g = 10; g <= 12; g++) {
                char bdf[KVFIO_BDF_MAX];

                snprintf(bdf, sizeof(bdf), "0000:00:0a.%d", g - 10);
                ck_assert_int_eq(kvfio_pci_dev_read(root, bdf, &dev), 0);
                ck_assert_msg(!kvfio_dev_is_vfio(&dev), "%s on '%s'", bdf, dev.driver);
                ck_assert(!viability(g).viable);
        }
}
END_TEST

/* ---- binding ------------------------------------------------------------- */

static void bind_setup(void)
{
        tree_setup();
        write_log[0] = '\0';
        probe_driver = "";
        refused_driver = NULL;
        override_only = NULL;
}

START_TEST(test_bind_and_restore)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];

        add_dev("0000:00:04.0", "0x020000\n", "e1000e", 4);
        add_driver("vfio-pci");

        ck_assert_int_eq(kvfio_pci_driver_get(root, "00:04.0", drv), 0);
        ck_assert_str_eq(drv, "e1000e");

        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "00:04.0", prev), 0);
        ck_assert_str_eq(prev, "e1000e");
        ck_assert_str_eq(write_log, "override 0000:00:04.0 vfio-pci\n"
                                    "unbind e1000e 0000:00:04.0\n"
                                    "probe 0000:00:04.0\n");
        ck_assert_str_eq(read_rel("sys/bus/pci/devices/0000:00:04.0/driver_override"), "vfio-pci");
        ck_assert_str_eq(read_rel("sys/bus/pci/drivers/e1000e/unbind"), "0000:00:04.0");
        ck_assert_str_eq(read_rel("sys/bus/pci/drivers_probe"), "0000:00:04.0");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "vfio-pci");

        write_log[0] = '\0';
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(write_log, "override 0000:00:04.0 e1000e\n"
                                    "unbind vfio-pci 0000:00:04.0\n"
                                    "bind e1000e 0000:00:04.0\n"
                                    "override 0000:00:04.0 <clear>\n");
        ck_assert_str_eq(read_rel("sys/bus/pci/devices/0000:00:04.0/driver_override"), "\n");
        ck_assert_str_eq(read_rel("sys/bus/pci/drivers/e1000e/bind"), "0000:00:04.0");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "e1000e");
}
END_TEST

/* A driver that matches only through driver_override gets the device back. */
START_TEST(test_restore_override_only_driver)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];

        add_dev("0000:00:04.0", "0x020000\n", "uio_pci_generic", 4);
        add_driver("vfio-pci");
        override_only = "uio_pci_generic";

        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(prev, "uio_pci_generic");
        write_log[0] = '\0';
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(write_log, "override 0000:00:04.0 uio_pci_generic\n"
                                    "unbind vfio-pci 0000:00:04.0\n"
                                    "bind uio_pci_generic 0000:00:04.0\n"
                                    "override 0000:00:04.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "uio_pci_generic");

        /* the rollback of a failed bind gives it back the same way */
        {
                char path[PATH_MAX];

                snprintf(path, sizeof(path), "%s/sys/bus/pci/drivers/vfio-pci", root);
                testutil_rmtree(path);
        }
        write_log[0] = '\0';
        strcpy(prev, "untouched");
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), -ENXIO);
        ck_assert_str_eq(prev, "untouched");
        ck_assert_str_eq(write_log, "override 0000:00:04.0 vfio-pci\n"
                                    "unbind uio_pci_generic 0000:00:04.0\n"
                                    "probe 0000:00:04.0\n"
                                    "override 0000:00:04.0 uio_pci_generic\n"
                                    "bind uio_pci_generic 0000:00:04.0\n"
                                    "override 0000:00:04.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "uio_pci_generic");
}
END_TEST

START_TEST(test_bind_unbound_device)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];

        add_dev("0000:00:04.0", "0x020000\n", NULL, 4);
        add_driver("vfio-pci");
        probe_driver = "e1000e"; /* must not matter: the override wins */
        add_driver("e1000e");

        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(prev, "");
        ck_assert_str_eq(write_log, "override 0000:00:04.0 vfio-pci\n"
                                    "probe 0000:00:04.0\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "vfio-pci");

        write_log[0] = '\0';
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(write_log, "override 0000:00:04.0 <clear>\n"
                                    "unbind vfio-pci 0000:00:04.0\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "");
}
END_TEST

START_TEST(test_bind_already_vfio)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched";

        add_dev("0000:00:04.0", "0x020000\n", "vfio-pci", 4);
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(prev, "vfio-pci");
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:04.0", prev), 0);
        ck_assert_str_eq(write_log, "");
        ck_assert_str_eq(read_rel("sys/bus/pci/devices/0000:00:04.0/driver_override"), "(null)\n");
}
END_TEST

START_TEST(test_bind_vfio_missing_rolls_back)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];

        add_dev("0000:00:04.0", "0x020000\n", "e1000e", 4);
        /* no vfio-pci driver folder: the probe binds nothing */
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), -ENXIO);
        ck_assert_str_eq(prev, "untouched");
        ck_assert_str_eq(write_log, "override 0000:00:04.0 vfio-pci\n"
                                    "unbind e1000e 0000:00:04.0\n"
                                    "probe 0000:00:04.0\n"
                                    "override 0000:00:04.0 e1000e\n"
                                    "bind e1000e 0000:00:04.0\n"
                                    "override 0000:00:04.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "e1000e");
}
END_TEST

START_TEST(test_bind_unbind_fails)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];
        char path[PATH_MAX];

        add_dev("0000:00:04.0", "0x020000\n", "e1000e", 4);
        add_driver("vfio-pci");
        snprintf(path, sizeof(path), "%s/sys/bus/pci/drivers/e1000e/unbind", root);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:04.0", prev), -ENOENT);
        ck_assert_str_eq(prev, "untouched");
        ck_assert_str_eq(write_log, "override 0000:00:04.0 vfio-pci\n"
                                    "override 0000:00:04.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:04.0", drv), 0);
        ck_assert_str_eq(drv, "e1000e");
}
END_TEST

START_TEST(test_restore_errors)
{
        char prev[KVFIO_DRIVER_MAX] = "untouched", drv[KVFIO_DRIVER_MAX];
        char path[PATH_MAX];

        add_dev("0000:00:04.0", "0x020000\n", "igb", 4);
        add_dev("0000:00:05.0", "0x020000\n", "vfio-pci", 5);
        add_driver("e1000e");

        /* bound to a third driver: nothing is touched */
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:04.0", "e1000e"), -EBUSY);
        ck_assert_str_eq(write_log, "");
        /* bad arguments */
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:05.0", "../e1000e"), -EINVAL);
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:05.0", NULL), -EINVAL);
        ck_assert_int_eq(kvfio_pci_restore(root, "bogus", "e1000e"), -EINVAL);
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:09.0", "e1000e"), -ENODEV);
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:09.0", prev), -ENODEV);
        ck_assert_int_eq(kvfio_pci_bind_vfio(root, "0000:00:09", prev), -EINVAL);
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:09.0", drv), -ENODEV);
        ck_assert_str_eq(prev, "untouched");
        ck_assert_str_eq(write_log, "");

        /* the previous driver has no bind file: fall back to drivers_probe */
        snprintf(path, sizeof(path), "%s/sys/bus/pci/drivers/e1000e/bind", root);
        ck_assert_int_eq(unlink(path), 0);
        probe_driver = "e1000e";
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:05.0", "e1000e"), 0);
        ck_assert_str_eq(write_log, "override 0000:00:05.0 e1000e\n"
                                    "unbind vfio-pci 0000:00:05.0\n"
                                    "probe 0000:00:05.0\n"
                                    "override 0000:00:05.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:05.0", drv), 0);
        ck_assert_str_eq(drv, "e1000e");

        /* the previous driver refuses the device */
        add_dev("0000:00:06.0", "0x020000\n", "vfio-pci", 6);
        testutil_write_file(root, "sys/bus/pci/drivers/e1000e/bind", "");
        refused_driver = "e1000e";
        probe_driver = "";
        write_log[0] = '\0';
        ck_assert_int_eq(kvfio_pci_restore(root, "0000:00:06.0", "e1000e"), -ENODEV);
        ck_assert_str_eq(write_log, "override 0000:00:06.0 e1000e\n"
                                    "unbind vfio-pci 0000:00:06.0\n"
                                    "bind e1000e 0000:00:06.0\n"
                                    "override 0000:00:06.0 <clear>\n");
        ck_assert_int_eq(kvfio_pci_driver_get(root, "0000:00:06.0", drv), 0);
        ck_assert_str_eq(drv, "");
}
END_TEST

/* ---- scale --------------------------------------------------------------- */

START_TEST(test_discover_4096)
{
        struct kvfio_pci_list *list = NULL;
        const struct kvfio_pci_dev *d;
        int i = 0;

        for (int bus = 15; bus >= 0; bus--) /* created out of order on purpose */
                for (int slot = 0; slot < 32; slot++)
                        for (int fn = 0; fn < 8; fn++, i++) {
                                char bdf[KVFIO_BDF_MAX], cls[16];

                                snprintf(bdf, sizeof(bdf), "0000:%02x:%02x.%x", bus, slot, fn);
                                snprintf(cls, sizeof(cls), "0x%06x\n", 0x020000 + fn);
                                add_dev(bdf, cls, fn % 2 ? "vfio-pci" : NULL,
                                        bus * 256 + slot * 8 + fn);
                                if (_i == 1) { /* the layout of a real system */
                                        char rel[128], alias[96];

                                        snprintf(rel, sizeof(rel),
                                                 "sys/devices/pci0000:00/%s/modalias", bdf);
                                        snprintf(alias, sizeof(alias),
                                                 "pci:v00008086d000010D3sv00001AF4sd00001100"
                                                 "bc02sc00i%02X\n",
                                                 fn);
                                        testutil_write_file(root, rel, alias);
                                }
                        }

        /* Correctness only: the time it takes is measured by `make bench`. */
        ck_assert_int_eq(kvfio_pci_discover(root, &list), 0);
        ck_assert_uint_eq(list->n, 4096);
        ck_assert_uint_eq(list->n_skipped, 0);
        ck_assert_str_eq(list->devs[0].bdf, "0000:00:00.0");
        ck_assert_str_eq(list->devs[4095].bdf, "0000:0f:1f.7");
        for (size_t k = 1; k < list->n; k++)
                ck_assert_int_lt(
                    kvfio_pci_addr_compare(&list->devs[k - 1].addr, &list->devs[k].addr), 0);

        d = kvfio_pci_list_find(list, "0000:07:13.5");
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(d->iommu_group, 7 * 256 + 0x13 * 8 + 5);
        ck_assert_str_eq(d->driver, "vfio-pci");
        ck_assert_uint_eq(d->class, 0x020005);
        ck_assert_uint_eq(d->vendor, 0x8086);
        ck_assert_uint_eq(d->device, 0x10d3);
        ck_assert_uint_eq(d->subvendor, 0x1af4);
        ck_assert_uint_eq(d->subdevice, 0x1100);
        d = kvfio_pci_list_find(list, "0a:1f.6");
        ck_assert_ptr_nonnull(d);
        ck_assert_str_eq(d->driver, "");
        ck_assert_int_eq(d->iommu_group, 10 * 256 + 31 * 8 + 6);
        ck_assert_ptr_null(kvfio_pci_list_find(list, "0000:10:00.0"));
        kvfio_pci_list_free(list);
}
END_TEST

static Suite *sysfs_suite(void)
{
        Suite *s = suite_create("kernel-sysfs");
        TCase *tc;

        tc = tcase_create("addr");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_addr_parse);
        tcase_add_test(tc, test_addr_compare);
        suite_add_tcase(s, tc);

        tc = tcase_create("discover");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
        tcase_add_test(tc, test_discover_fields);
        tcase_add_test(tc, test_dev_read);
        tcase_add_test(tc, test_vfio_cdev);
        tcase_add_test(tc, test_discover_odd_files);
        tcase_add_test(tc, test_discover_modalias);
        tcase_add_test(tc, test_discover_empty_and_missing);
        suite_add_tcase(s, tc);

        tc = tcase_create("groups");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
        tcase_add_test(tc, test_group_members);
        tcase_add_test(tc, test_group_viable);
        suite_add_tcase(s, tc);

        tc = tcase_create("mdev");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
        tcase_add_test(tc, test_uuid_normalize);
        tcase_add_test(tc, test_mdev_discover);
        tcase_add_test(tc, test_mdev_groups);
        tcase_add_test(tc, test_dev_is_vfio);
        suite_add_tcase(s, tc);

        tc = tcase_create("bind");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, bind_setup, tree_teardown);
        tcase_add_test(tc, test_bind_and_restore);
        tcase_add_test(tc, test_bind_unbound_device);
        tcase_add_test(tc, test_restore_override_only_driver);
        tcase_add_test(tc, test_bind_already_vfio);
        tcase_add_test(tc, test_bind_vfio_missing_rolls_back);
        tcase_add_test(tc, test_bind_unbind_fails);
        tcase_add_test(tc, test_restore_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("scale");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, tree_setup, tree_teardown);
        tcase_set_timeout(tc, 120);
        /* 0: the five separate id files only; 1: with modalias, as on a real system */
        tcase_add_loop_test(tc, test_discover_4096, 0, 2);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        return testutil_run_suite(sysfs_suite());
}
