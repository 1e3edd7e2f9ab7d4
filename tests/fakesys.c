/* SPDX-License-Identifier: MIT */
/* Fake sysfs trees for the suites; see fakesys.h. */
#include "tests/fakesys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define MDEV_PARENT "sys/devices/pci0000:00/0000:00:1f.0"

static int mkparents(const char *path)
{
        char buf[PATH_MAX];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        return 0;
}

/* root/rel into path (PATH_MAX bytes), its folders made. */
static int make_room(const char *root, const char *rel, char *path)
{
        int r = snprintf(path, PATH_MAX, "%s/%s", root, rel);

        if (r < 0 || r >= PATH_MAX)
                return -ENAMETOOLONG;
        return mkparents(path);
}

int fakesys_write(const char *root, const char *rel, const char *text)
{
        char path[PATH_MAX];
        FILE *f;
        int r = make_room(root, rel, path);

        if (r < 0)
                return r;
        f = fopen(path, "we");
        if (!f)
                return -errno;
        r = fputs(text, f) < 0 ? -EIO : 0;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}

int fakesys_link(const char *root, const char *target, const char *rel)
{
        char path[PATH_MAX];
        int r = make_room(root, rel, path);

        if (r < 0)
                return r;
        (void)unlink(path);
        return symlink(target, path) < 0 ? -errno : 0;
}

/* Each step below stops at the first failure. */
#define TRY(expr)                  \
        do {                       \
                int _r = (expr);   \
                if (_r < 0)        \
                        return _r; \
        } while (0)

int fakesys_add_pci(const char *root, const char *bdf, int group, const char *driver)
{
        char dev[256], rel[512], target[512];

        snprintf(dev, sizeof(dev), "sys/devices/pci0000:00/%s", bdf);
        snprintf(rel, sizeof(rel), "%s/vendor", dev);
        TRY(fakesys_write(root, rel, "0x1234\n"));
        snprintf(rel, sizeof(rel), "%s/device", dev);
        TRY(fakesys_write(root, rel, "0x11e8\n"));
        snprintf(rel, sizeof(rel), "%s/class", dev);
        TRY(fakesys_write(root, rel, "0x00ff00\n"));
        snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", bdf);
        TRY(fakesys_link(root, target, rel));
        if (driver) {
                snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/bind", driver);
                TRY(fakesys_write(root, rel, ""));
                snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
                snprintf(rel, sizeof(rel), "%s/driver", dev);
                TRY(fakesys_link(root, target, rel));
        }
        snprintf(target, sizeof(target), "../../../../devices/pci0000:00/%s", bdf);
        snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", group, bdf);
        TRY(fakesys_link(root, target, rel));
        snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", group);
        snprintf(rel, sizeof(rel), "%s/iommu_group", dev);
        return fakesys_link(root, target, rel);
}

int fakesys_add_cdev(const char *root, const char *bdf, int cdev)
{
        char rel[512], text[32];

        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/vfio-dev/vfio%d/dev", bdf, cdev);
        snprintf(text, sizeof(text), "511:%d\n", cdev);
        return fakesys_write(root, rel, text);
}

int fakesys_add_mdev(const char *root, const char *uuid, int group, const char *driver)
{
        char rel[512], target[512];

        snprintf(target, sizeof(target), "../../../devices/pci0000:00/0000:00:1f.0/%s", uuid);
        snprintf(rel, sizeof(rel), "sys/bus/mdev/devices/%s", uuid);
        TRY(fakesys_link(root, target, rel));
        if (driver) {
                snprintf(target, sizeof(target), "../../../../bus/mdev/drivers/%s", driver);
                snprintf(rel, sizeof(rel), MDEV_PARENT "/%s/driver", uuid);
                TRY(fakesys_link(root, target, rel));
        }
        snprintf(target, sizeof(target), "../../../../kernel/iommu_groups/%d", group);
        snprintf(rel, sizeof(rel), MDEV_PARENT "/%s/iommu_group", uuid);
        TRY(fakesys_link(root, target, rel));
        snprintf(target, sizeof(target), "../../../../devices/pci0000:00/0000:00:1f.0/%s", uuid);
        snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", group, uuid);
        return fakesys_link(root, target, rel);
}

int fakesys_set_driver(const char *root, const char *bdf, const char *driver)
{
        char rel[512], target[512], path[4096];

        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/driver", bdf);
        if (!driver) {
                if (snprintf(path, sizeof(path), "%s/%s", root, rel) >= (int)sizeof(path))
                        return -ENAMETOOLONG;
                return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
        }
        snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", driver);
        return fakesys_link(root, target, rel);
}

int fakesys_remove_pci(const char *root, const char *bdf, int group)
{
        static const char *const files[] = {"vendor", "device", "class", "driver", "iommu_group"};
        char path[4096];

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s/sys/devices/pci0000:00/%s/%s", root, bdf,
                         files[i]);
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        }
        snprintf(path, sizeof(path), "%s/sys/devices/pci0000:00/%s", root, bdf);
        if (rmdir(path) < 0 && errno != ENOENT)
                return -errno;
        snprintf(path, sizeof(path), "%s/sys/kernel/iommu_groups/%d/devices/%s", root, group, bdf);
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s", root, bdf);
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}
