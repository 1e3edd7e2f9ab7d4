/* SPDX-License-Identifier: MIT */
/*
 * PCI discovery, IOMMU groups and driver binding through sysfs.
 *
 * Everything is read relative to directory fds (openat/readlinkat) so that a
 * device costs a handful of syscalls and nothing is quadratic. No ioctl here
 * (see local.mk: this file is a library of its own).
 */
#include "kernel/sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCI_DEVICES_DIR  "sys/bus/pci/devices"
#define PCI_DIR          "sys/bus/pci"
#define IOMMU_GROUPS     "sys/kernel/iommu_groups"
#define MDEV_DEVICES_DIR "sys/bus/mdev/devices"

/* ---- addresses ---------------------------------------------------------- */

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Parses exactly n_min..n_max hex digits at *p, advancing it. */
static int parse_hex_digits(const char **p, int n_min, int n_max, uint32_t *ret)
{
        uint32_t v = 0;
        int n = 0;

        while (n < n_max && hexval((*p)[n]) >= 0) {
                v = v << 4 | (uint32_t)hexval((*p)[n]);
                n++;
        }
        if (n < n_min || hexval((*p)[n]) >= 0)
                return -EINVAL;
        *p += n;
        *ret = v;
        return 0;
}

int kvfio_pci_addr_parse(const char *text, struct kvfio_pci_addr *ret_addr)
{
        uint32_t domain = 0, bus, slot, func;
        const char *p = text;
        int colons = 0;

        if (!text || !ret_addr)
                return -EINVAL;
        for (const char *q = text; *q; q++)
                colons += *q == ':';
        if (colons == 2) {
                if (parse_hex_digits(&p, 1, 8, &domain) < 0 || *p++ != ':')
                        return -EINVAL;
        } else if (colons != 1) {
                return -EINVAL;
        }
        if (parse_hex_digits(&p, 1, 2, &bus) < 0 || *p++ != ':')
                return -EINVAL;
        if (parse_hex_digits(&p, 1, 2, &slot) < 0 || *p++ != '.')
                return -EINVAL;
        if (parse_hex_digits(&p, 1, 1, &func) < 0 || *p != '\0')
                return -EINVAL;
        /* The domain bound keeps the normalised form inside KVFIO_BDF_MAX. */
        if (domain > KVFIO_PCI_DOMAIN_MAX || slot > 0x1f || func > 7)
                return -EINVAL;
        ret_addr->domain = domain;
        ret_addr->bus = (uint8_t)bus;
        ret_addr->slot = (uint8_t)slot;
        ret_addr->func = (uint8_t)func;
        return 0;
}

char *kvfio_pci_addr_format(const struct kvfio_pci_addr *addr, char buf[static KVFIO_BDF_MAX])
{
        snprintf(buf, KVFIO_BDF_MAX, "%04x:%02x:%02x.%x", (unsigned)addr->domain,
                 (unsigned)addr->bus, (unsigned)addr->slot, (unsigned)addr->func);
        return buf;
}

int kvfio_pci_addr_normalize(const char *text, char ret_bdf[static KVFIO_BDF_MAX])
{
        struct kvfio_pci_addr a;
        int r;

        r = kvfio_pci_addr_parse(text, &a);
        if (r < 0)
                return r;
        kvfio_pci_addr_format(&a, ret_bdf);
        return 0;
}

int kvfio_pci_addr_compare(const struct kvfio_pci_addr *a, const struct kvfio_pci_addr *b)
{
        if (a->domain != b->domain)
                return a->domain < b->domain ? -1 : 1;
        if (a->bus != b->bus)
                return a->bus < b->bus ? -1 : 1;
        if (a->slot != b->slot)
                return a->slot < b->slot ? -1 : 1;
        if (a->func != b->func)
                return a->func < b->func ? -1 : 1;
        return 0;
}

/* ---- small file helpers ------------------------------------------------- */

int kvfio_mdev_uuid_normalize(const char *text, char ret_uuid[static KVFIO_UUID_MAX])
{
        static const int groups[] = {8, 4, 4, 4, 12};
        char buf[KVFIO_UUID_MAX];
        size_t k = 0;

        if (!text)
                return -EINVAL;
        for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
                if (g > 0) {
                        if (text[k] != '-')
                                return -EINVAL;
                        buf[k] = '-';
                        k++;
                }
                for (int i = 0; i < groups[g]; i++, k++) {
                        int v = hexval(text[k]);

                        if (v < 0)
                                return -EINVAL;
                        buf[k] = "0123456789abcdef"[v];
                }
        }
        if (text[k] != '\0')
                return -EINVAL;
        buf[k] = '\0';
        memcpy(ret_uuid, buf, sizeof(buf));
        return 0;
}

int kvfio_dev_name_normalize(const char *text, char ret_name[static KVFIO_NAME_MAX])
{
        char bdf[KVFIO_BDF_MAX], uuid[KVFIO_UUID_MAX];

        if (kvfio_pci_addr_normalize(text, bdf) == 0) {
                memcpy(ret_name, bdf, sizeof(bdf));
                return 0;
        }
        if (kvfio_mdev_uuid_normalize(text, uuid) == 0) {
                memcpy(ret_name, uuid, sizeof(uuid));
                return 0;
        }
        return -EINVAL;
}

/* Copies src into dst of size bytes, truncating; always NUL-terminated. */
static void copy_trunc(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);

        memcpy(dst, src, n);
        dst[n] = '\0';
}

/* Opens ROOT/rel as a directory. */
static int open_root_dir(const char *root, const char *rel)
{
        char path[PATH_MAX];
        int n, fd;

        if (!root || !*root)
                return -EINVAL;
        n = snprintf(path, sizeof(path), "%s/%s", root, rel);
        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fd;
}

/* Reads a small text file below dirfd into buf, without its trailing newline. */
static int read_text_at(int dirfd, const char *name, char *buf, size_t size)
{
        ssize_t n;
        int fd, r;

        /*
         * O_NOATIME: on a test tree on a disk, the first read of a fresh
         * file would otherwise dirty its inode (relatime) and cost a
         * journal update per file. Only the owner or CAP_FOWNER may ask.
         */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOATIME);
        if (fd < 0 && errno == EPERM)
                fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        r = n < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                n--;
        buf[n] = '\0';
        return (int)n;
}

/* Reads "0x1234"-style hex (the 0x optional) no larger than max. */
static int read_hex_at(int dirfd, const char *name, uint32_t max, uint32_t *ret)
{
        char buf[32];
        const char *p = buf;
        uint32_t v;
        int r;

        r = read_text_at(dirfd, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                p += 2;
        if (parse_hex_digits(&p, 1, 8, &v) < 0 || *p != '\0' || v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/*
 * Reads the last path component of symlink dirfd/name into buf. A missing
 * link gives "" and returns 0. -ENAMETOOLONG when it does not fit.
 */
static int read_link_base_at(int dirfd, const char *name, char *buf, size_t size)
{
        char target[PATH_MAX];
        const char *base;
        ssize_t n;

        n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0) {
                if (errno == ENOENT)
                        goto none;
                return -errno;
        }
        target[n] = '\0';
        while (n > 1 && target[n - 1] == '/')
                target[--n] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strlen(base) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, base);
        return 0;
none:
        buf[0] = '\0';
        return 0;
}

/* Parses a non-negative decimal group number; -1 when it is not one. */
static int parse_group(const char *s)
{
        long v = 0;

        if (!*s)
                return -1;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -1;
                v = v * 10 + (*s - '0');
                if (v > INT_MAX)
                        return -1;
        }
        return (int)v;
}

/*
 * The N of the device folder dirfd's vfio-dev/vfioN (its VFIO cdev).
 * -ENOENT when it has none.
 */
static int read_vfio_cdev_at(int dirfd)
{
        struct dirent *de;
        int fd, r = -ENOENT, n;
        DIR *d;

        fd = openat(dirfd, "vfio-dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        d = fdopendir(fd); /* on success d owns fd */
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "vfio", 4) != 0)
                        continue;
                n = parse_group(de->d_name + 4);
                if (n >= 0) {
                        r = n;
                        break;
                }
        }
        closedir(d);
        return r;
}

/* ---- reading one device ------------------------------------------------- */

/* Expects literal text lit at *p, advancing past it. */
static bool skip_literal(const char **p, const char *lit)
{
        size_t n = strlen(lit);

        if (strncmp(*p, lit, n) != 0)
                return false;
        *p += n;
        return true;
}

/*
 * Parses exactly n hex digits at *p (whatever follows: in a modalias the next
 * field's letter may be a hex digit too) no larger than max, advancing.
 */
static bool take_hex(const char **p, int n, uint32_t max, uint32_t *ret)
{
        uint32_t v = 0;

        for (int i = 0; i < n; i++) {
                int h = hexval((*p)[i]);

                if (h < 0)
                        return false;
                v = v << 4 | (uint32_t)h;
        }
        if (v > max)
                return false;
        *p += n;
        *ret = v;
        return true;
}

/*
 * Fast path: one read of "modalias" ("pci:v00008086d000010D3sv00001AF4sd
 * 00001100bc02sc00i00") gives vendor, device, subsystem ids and class at
 * once, where the separate files cost five opens. -EBADMSG when the file is
 * missing or not in that form: the caller falls back to the separate files.
 */
static int read_modalias_at(int dirfd, struct kvfio_pci_dev *dev)
{
        uint32_t v, d, sv, sd, bc, sc, pi;
        char buf[128];
        const char *p = buf;

        if (read_text_at(dirfd, "modalias", buf, sizeof(buf)) < 0)
                return -EBADMSG;
        if (!skip_literal(&p, "pci:v") || !take_hex(&p, 8, 0xffff, &v) || !skip_literal(&p, "d") ||
            !take_hex(&p, 8, 0xffff, &d) || !skip_literal(&p, "sv") ||
            !take_hex(&p, 8, 0xffff, &sv) || !skip_literal(&p, "sd") ||
            !take_hex(&p, 8, 0xffff, &sd) || !skip_literal(&p, "bc") ||
            !take_hex(&p, 2, 0xff, &bc) || !skip_literal(&p, "sc") || !take_hex(&p, 2, 0xff, &sc) ||
            !skip_literal(&p, "i") || !take_hex(&p, 2, 0xff, &pi) || *p != '\0')
                return -EBADMSG;
        dev->vendor = (uint16_t)v;
        dev->device = (uint16_t)d;
        dev->subvendor = (uint16_t)sv;
        dev->subdevice = (uint16_t)sd;
        dev->class = bc << 16 | sc << 8 | pi;
        return 0;
}

/*
 * Reads device `name` (a folder or link below devices_fd) into *dev.
 * -ENODEV: no such folder; -EBADMSG: a required file missing or garbage.
 */
static int read_dev_at(int devices_fd, const char *name, const struct kvfio_pci_addr *addr,
                       struct kvfio_pci_dev *dev)
{
        char group[32];
        uint32_t v;
        int fd, r;

        /* O_PATH: only used as the base of the openat/readlinkat calls below. */
        fd = openat(devices_fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENODEV : -errno;

        memset(dev, 0, sizeof(*dev));
        dev->addr = *addr;
        kvfio_pci_addr_format(addr, dev->bdf);

        if (read_modalias_at(fd, dev) == 0)
                goto links;

        r = read_hex_at(fd, "vendor", 0xffff, &v);
        if (r < 0)
                goto err_bad;
        dev->vendor = (uint16_t)v;
        r = read_hex_at(fd, "device", 0xffff, &v);
        if (r < 0)
                goto err_bad;
        dev->device = (uint16_t)v;
        r = read_hex_at(fd, "class", 0xffffff, &v);
        if (r < 0)
                goto err_bad;
        dev->class = v;
        if (read_hex_at(fd, "subsystem_vendor", 0xffff, &v) == 0)
                dev->subvendor = (uint16_t)v;
        if (read_hex_at(fd, "subsystem_device", 0xffff, &v) == 0)
                dev->subdevice = (uint16_t)v;

links:
        /* Only the link's last component matters; its target is not followed. */
        if (read_link_base_at(fd, "driver", dev->driver, sizeof(dev->driver)) < 0)
                dev->driver[0] = '\0';
        dev->iommu_group = -1;
        if (read_link_base_at(fd, "iommu_group", group, sizeof(group)) == 0)
                dev->iommu_group = parse_group(group);
        r = read_vfio_cdev_at(fd);
        dev->vfio_cdev = r >= 0 ? r : -1;

        close(fd);
        return 0;

err_bad:
        close(fd);
        return r == -ENOMEM ? r : -EBADMSG;
}

/*
 * The name of the folder that holds the device folder entry `name` of
 * dirfd links to ("../../../devices/virtual/mdma/mdma/<uuid>" -> "mdma");
 * "" when the entry is no link or its target has no such component.
 */
static void read_link_parent_at(int dirfd, const char *name, char *buf, size_t size)
{
        char target[PATH_MAX];
        char *last, *prev;
        ssize_t n;

        buf[0] = '\0';
        n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n <= 0)
                return;
        target[n] = '\0';
        last = strrchr(target, '/');
        if (!last)
                return;
        *last = '\0';
        prev = strrchr(target, '/');
        prev = prev ? prev + 1 : target;
        if (strcmp(prev, "..") != 0 && strcmp(prev, ".") != 0)
                copy_trunc(buf, size, prev);
}

/*
 * Reads mdev `name` (a folder or link below dirfd whose name is a UUID) into
 * *dev. -ENODEV: no such folder.
 */
static int read_mdev_at(int dirfd, const char *name, struct kvfio_pci_dev *dev)
{
        char uuid[KVFIO_UUID_MAX], group[32];
        int fd, r;

        if (kvfio_mdev_uuid_normalize(name, uuid) < 0)
                return -EINVAL;
        fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENODEV : -errno;
        memset(dev, 0, sizeof(*dev));
        memcpy(dev->bdf, uuid, sizeof(uuid));
        dev->mdev = true;
        read_link_parent_at(dirfd, name, dev->parent, sizeof(dev->parent));
        if (read_link_base_at(fd, "driver", dev->driver, sizeof(dev->driver)) < 0)
                dev->driver[0] = '\0';
        if (read_link_base_at(fd, "mdev_type", dev->mdev_type, sizeof(dev->mdev_type)) < 0)
                dev->mdev_type[0] = '\0';
        dev->iommu_group = -1;
        if (read_link_base_at(fd, "iommu_group", group, sizeof(group)) == 0)
                dev->iommu_group = parse_group(group);
        r = read_vfio_cdev_at(fd);
        dev->vfio_cdev = r >= 0 ? r : -1;
        close(fd);
        return 0;
}

int kvfio_mdev_dev_read(const char *root, const char *uuid, struct kvfio_pci_dev *ret_dev)
{
        char name[KVFIO_UUID_MAX];
        struct kvfio_pci_dev dev;
        int devices_fd, r;

        if (!ret_dev || kvfio_mdev_uuid_normalize(uuid, name) < 0)
                return -EINVAL;
        devices_fd = open_root_dir(root, MDEV_DEVICES_DIR);
        if (devices_fd < 0)
                return devices_fd == -ENOENT ? -ENODEV : devices_fd;
        /* sysfs names the entry as it was created: lower case (mdev_device_create's %pUl). */
        r = read_mdev_at(devices_fd, name, &dev);
        close(devices_fd);
        if (r < 0)
                return r;
        *ret_dev = dev;
        return 0;
}

int kvfio_dev_vfio_cdev(const char *root, const char *name)
{
        struct kvfio_pci_dev dev;
        int r;

        r = kvfio_dev_read(root, name, &dev);
        if (r < 0)
                return r;
        return dev.vfio_cdev >= 0 ? dev.vfio_cdev : -ENOENT;
}

int kvfio_vfio_interfaces(const char *root)
{
        int fd, mask = 0;

        fd = open_root_dir(root, "sys/class/misc");
        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return fd;
        if (faccessat(fd, "vfio", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                mask |= KVFIO_IF_CONTAINER;
        if (faccessat(fd, "iommu", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                mask |= KVFIO_IF_IOMMUFD;
        close(fd);
        return mask;
}

int kvfio_dev_read(const char *root, const char *name, struct kvfio_pci_dev *ret_dev)
{
        char uuid[KVFIO_UUID_MAX];

        if (name && kvfio_mdev_uuid_normalize(name, uuid) == 0)
                return kvfio_mdev_dev_read(root, uuid, ret_dev);
        return kvfio_pci_dev_read(root, name, ret_dev);
}

int kvfio_pci_dev_read(const char *root, const char *bdf, struct kvfio_pci_dev *ret_dev)
{
        struct kvfio_pci_addr addr;
        struct kvfio_pci_dev dev;
        char name[KVFIO_BDF_MAX];
        int devices_fd, r;

        if (!ret_dev || kvfio_pci_addr_parse(bdf, &addr) < 0)
                return -EINVAL;
        kvfio_pci_addr_format(&addr, name);
        devices_fd = open_root_dir(root, PCI_DEVICES_DIR);
        if (devices_fd < 0)
                return devices_fd == -ENOENT ? -ENODEV : devices_fd;
        r = read_dev_at(devices_fd, name, &addr, &dev);
        close(devices_fd);
        if (r < 0)
                return r;
        *ret_dev = dev;
        return 0;
}

/* ---- lists -------------------------------------------------------------- */

/* PCI devices by address, then mdevs by UUID. */
static int dev_cmp(const void *a, const void *b)
{
        const struct kvfio_pci_dev *x = a, *y = b;

        if (x->mdev != y->mdev)
                return x->mdev ? 1 : -1;
        if (x->mdev)
                return strcmp(x->bdf, y->bdf);
        return kvfio_pci_addr_compare(&x->addr, &y->addr);
}

void kvfio_pci_list_free(struct kvfio_pci_list *list)
{
        if (!list)
                return;
        free(list->devs);
        free(list);
}

static int list_append(struct kvfio_pci_list *list, size_t *cap, const struct kvfio_pci_dev *dev)
{
        if (list->n == *cap) {
                size_t ncap = *cap ? *cap * 2 : 64;
                struct kvfio_pci_dev *n;

                n = reallocarray(list->devs, ncap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                list->devs = n;
                *cap = ncap;
        }
        list->devs[list->n++] = *dev;
        return 0;
}

/* Sorts the list and drops duplicates (two names for one address). */
static void list_finish(struct kvfio_pci_list *list)
{
        size_t i, j;

        if (list->n < 2)
                return;
        qsort(list->devs, list->n, sizeof(*list->devs), dev_cmp);
        for (i = 1, j = 1; i < list->n; i++) {
                if (dev_cmp(&list->devs[i], &list->devs[j - 1]) == 0) {
                        list->n_skipped++;
                        continue;
                }
                list->devs[j++] = list->devs[i];
        }
        list->n = j;
}

/*
 * Reads every entry of dir_fd (consumed: closed here) as a device found in
 * devices_fd, into a new list; an entry named by a UUID is read as an mdev
 * through dir_fd itself.
 */
static int list_from_dir_take(int dir_fd, int devices_fd, struct kvfio_pci_list **ret_list)
{
        struct kvfio_pci_list *list;
        struct dirent *de;
        size_t cap = 0;
        DIR *d;
        int r;

        list = calloc(1, sizeof(*list));
        if (!list) {
                r = -ENOMEM;
                goto err_close;
        }
        d = fdopendir(dir_fd);
        if (!d) {
                r = -errno;
                goto err_free;
        }
        /* From here on the fd belongs to d. */
        for (;;) {
                char uuid[KVFIO_UUID_MAX];
                struct kvfio_pci_addr addr;
                struct kvfio_pci_dev dev;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                r = -errno;
                                goto err_closedir;
                        }
                        break;
                }
                if (de->d_name[0] == '.')
                        continue;
                if (kvfio_pci_addr_parse(de->d_name, &addr) == 0)
                        r = read_dev_at(devices_fd, de->d_name, &addr, &dev);
                else if (kvfio_mdev_uuid_normalize(de->d_name, uuid) == 0)
                        r = read_mdev_at(dirfd(d), de->d_name, &dev);
                else
                        r = -EBADMSG;
                if (r == -ENOMEM)
                        goto err_closedir;
                if (r < 0) {
                        list->n_skipped++;
                        continue;
                }
                r = list_append(list, &cap, &dev);
                if (r < 0)
                        goto err_closedir;
        }
        closedir(d);
        list_finish(list);
        *ret_list = list;
        return 0;

err_closedir:
        closedir(d);
        kvfio_pci_list_free(list);
        return r;
err_free:
        kvfio_pci_list_free(list);
err_close:
        close(dir_fd);
        return r;
}

/*
 * Lists the devices of folder `dir` under root (the PCI or the mdev bus).
 * A missing folder is -ENOENT, or an empty list when missing_is_empty.
 */
static int discover_dir(const char *root, const char *dir, bool missing_is_empty,
                        struct kvfio_pci_list **ret_list)
{
        int devices_fd, dir_fd, r;

        if (!root || !*root || !ret_list)
                return -EINVAL;
        devices_fd = open_root_dir(root, dir);
        if (devices_fd == -ENOENT && missing_is_empty) {
                struct kvfio_pci_list *empty = calloc(1, sizeof(*empty));

                if (!empty)
                        return -ENOMEM;
                *ret_list = empty;
                return 0;
        }
        if (devices_fd < 0)
                return devices_fd;
        dir_fd = fcntl(devices_fd, F_DUPFD_CLOEXEC, 3);
        if (dir_fd < 0) {
                r = -errno;
                goto out;
        }
        r = list_from_dir_take(dir_fd, devices_fd, ret_list);
out:
        close(devices_fd);
        return r;
}

int kvfio_pci_discover(const char *root, struct kvfio_pci_list **ret_list)
{
        return discover_dir(root, PCI_DEVICES_DIR, false, ret_list);
}

/* No mdev bus (mdev.ko not loaded) simply means no mdevs. */
int kvfio_mdev_discover(const char *root, struct kvfio_pci_list **ret_list)
{
        return discover_dir(root, MDEV_DEVICES_DIR, true, ret_list);
}

int kvfio_dev_discover(const char *root, struct kvfio_pci_list **ret_list)
{
        struct kvfio_pci_list *pci = NULL, *mdevs = NULL;
        struct kvfio_pci_dev *all;
        int r;

        if (!ret_list)
                return -EINVAL;
        r = kvfio_pci_discover(root, &pci);
        if (r < 0)
                return r;
        r = kvfio_mdev_discover(root, &mdevs);
        if (r < 0)
                goto err;
        if (mdevs->n) {
                all = reallocarray(pci->devs, pci->n + mdevs->n, sizeof(*all));
                if (!all) {
                        r = -ENOMEM;
                        goto err;
                }
                memcpy(all + pci->n, mdevs->devs, mdevs->n * sizeof(*all));
                pci->devs = all;
                pci->n += mdevs->n;
        }
        pci->n_skipped += mdevs->n_skipped;
        kvfio_pci_list_free(mdevs);
        *ret_list = pci;
        return 0;
err:
        kvfio_pci_list_free(mdevs);
        kvfio_pci_list_free(pci);
        return r;
}

const struct kvfio_pci_dev *kvfio_pci_list_find(const struct kvfio_pci_list *list, const char *bdf)
{
        char uuid[KVFIO_UUID_MAX];
        struct kvfio_pci_addr addr;
        size_t lo = 0, hi;

        if (list && bdf && kvfio_mdev_uuid_normalize(bdf, uuid) == 0) {
                for (size_t i = 0; i < list->n; i++)
                        if (list->devs[i].mdev && strcmp(list->devs[i].bdf, uuid) == 0)
                                return &list->devs[i];
                return NULL;
        }
        if (!list || kvfio_pci_addr_parse(bdf, &addr) < 0)
                return NULL;
        /* The PCI devices come first, sorted; mdevs (if any) after them. */
        hi = list->n;
        while (hi > 0 && list->devs[hi - 1].mdev)
                hi--;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = kvfio_pci_addr_compare(&list->devs[mid].addr, &addr);

                if (c == 0)
                        return &list->devs[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

bool kvfio_pci_dev_is_bridge(const struct kvfio_pci_dev *dev)
{
        uint32_t cls = dev->class >> 8;

        return cls == 0x0604 || cls == 0x0609;
}

/* ---- IOMMU groups ------------------------------------------------------- */

/* Opens ROOT/sys/kernel/iommu_groups/<group>/devices. */
static int open_group_devices(const char *root, int group)
{
        char rel[64];

        snprintf(rel, sizeof(rel), IOMMU_GROUPS "/%d/devices", group);
        return open_root_dir(root, rel);
}

int kvfio_iommu_group_members(const char *root, int group, struct kvfio_pci_list **ret_list)
{
        int members_fd, devices_fd, r;

        if (!root || !*root || !ret_list || group < 0)
                return -EINVAL;
        members_fd = open_group_devices(root, group);
        if (members_fd < 0)
                return members_fd;
        devices_fd = open_root_dir(root, PCI_DEVICES_DIR);
        if (devices_fd < 0) {
                /*
                 * No PCI devices folder: read the members through the group's
                 * own entries (links to the device folders on a real system).
                 */
                devices_fd = fcntl(members_fd, F_DUPFD_CLOEXEC, 3);
                if (devices_fd < 0) {
                        r = -errno;
                        close(members_fd);
                        return r;
                }
        }
        /* members_fd is consumed by list_from_dir_take(). */
        r = list_from_dir_take(members_fd, devices_fd, ret_list);
        close(devices_fd);
        return r;
}

struct member {
        char name[256];
        struct kvfio_pci_addr addr;
        bool is_pci;
        bool is_mdev;
};

static int member_cmp(const void *a, const void *b)
{
        const struct member *x = a, *y = b;

        if (x->is_pci && y->is_pci)
                return kvfio_pci_addr_compare(&x->addr, &y->addr);
        if (x->is_pci != y->is_pci)
                return x->is_pci ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* Reads the names in dir_fd (consumed) into a sorted array. */
static int read_members_take(int dir_fd, struct member **ret, size_t *ret_n)
{
        struct member *m = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int r;

        d = fdopendir(dir_fd);
        if (!d) {
                r = -errno;
                close(dir_fd);
                return r;
        }
        for (;;) {
                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                r = -errno;
                                goto err;
                        }
                        break;
                }
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        struct member *nm = reallocarray(m, ncap, sizeof(*m));

                        if (!nm) {
                                r = -ENOMEM;
                                goto err;
                        }
                        m = nm;
                        cap = ncap;
                }
                copy_trunc(m[n].name, sizeof(m[n].name), de->d_name);
                m[n].is_pci = kvfio_pci_addr_parse(de->d_name, &m[n].addr) == 0;
                {
                        char uuid[KVFIO_UUID_MAX];

                        m[n].is_mdev =
                            !m[n].is_pci && kvfio_mdev_uuid_normalize(de->d_name, uuid) == 0;
                }
                n++;
        }
        closedir(d);
        if (n > 1)
                qsort(m, n, sizeof(*m), member_cmp);
        *ret = m;
        *ret_n = n;
        return 0;
err:
        closedir(d);
        free(m);
        return r;
}

/* vfio-pci or one of its vendor variants (mlx5_vfio_pci, hisi_acc_vfio_pci...). */
static bool is_vfio_pci_driver(const char *name)
{
        static const char suffix[] = "_vfio_pci";
        size_t len = strlen(name);

        return strcmp(name, KVFIO_VFIO_PCI_DRIVER) == 0 ||
               (len > sizeof(suffix) - 1 && strcmp(name + len - (sizeof(suffix) - 1), suffix) == 0);
}

bool kvfio_dev_is_vfio(const struct kvfio_pci_dev *dev)
{
        /* An mdev bound to its vendor's driver is a VFIO device of its own. */
        if (dev->mdev)
                return dev->driver[0] != '\0';
        return is_vfio_pci_driver(dev->driver);
}

bool kvfio_dev_keeps_group_viable(const struct kvfio_pci_dev *dev)
{
        return dev->mdev || dev->driver[0] == '\0' || kvfio_dev_is_vfio(dev) ||
               strcmp(dev->driver, "pci-stub") == 0 || strcmp(dev->driver, "pcieport") == 0 ||
               kvfio_pci_dev_is_bridge(dev);
}

int kvfio_iommu_group_viable(const char *root, int group, struct kvfio_group_viability *ret)
{
        struct kvfio_group_viability v = {.viable = true};
        int members_fd, devices_fd, dup_fd, r;
        struct member *m = NULL;
        size_t n = 0;

        if (!root || !*root || !ret || group < 0)
                return -EINVAL;
        members_fd = open_group_devices(root, group);
        if (members_fd < 0)
                return members_fd;
        dup_fd = fcntl(members_fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                r = -errno;
                goto out_members;
        }
        r = read_members_take(dup_fd, &m, &n);
        if (r < 0)
                goto out_members;
        if (n == 0) {
                r = -ENODEV;
                goto out_free;
        }
        devices_fd = open_root_dir(root, PCI_DEVICES_DIR);
        if (devices_fd < 0)
                devices_fd = fcntl(members_fd, F_DUPFD_CLOEXEC, 3);
        /* devices_fd < 0 still: every PCI member counts as unreadable below. */

        v.n_members = n;
        for (size_t i = 0; i < n; i++) {
                char bdf[KVFIO_BDF_MAX];
                struct kvfio_pci_dev dev;

                r = -ENODEV;
                if (m[i].is_pci && devices_fd >= 0)
                        r = read_dev_at(devices_fd, m[i].name, &m[i].addr, &dev);
                /* An mdev is the VFIO device itself, bound to its vendor's driver. */
                if (m[i].is_mdev)
                        r = read_mdev_at(members_fd, m[i].name, &dev);
                if (r == -ENOMEM)
                        goto out_devices;
                if (r == 0 && kvfio_dev_keeps_group_viable(&dev))
                        continue;

                v.viable = false;
                copy_trunc(v.culprit, sizeof(v.culprit),
                           m[i].is_pci ? kvfio_pci_addr_format(&m[i].addr, bdf) : m[i].name);
                if (r == 0) {
                        copy_trunc(v.culprit_driver, sizeof(v.culprit_driver), dev.driver);
                } else {
                        /* Unreadable or not PCI: take the driver from the group's own entry. */
                        char link[PATH_MAX];

                        snprintf(link, sizeof(link), "%s/driver", m[i].name);
                        if (read_link_base_at(members_fd, link, v.culprit_driver,
                                              sizeof(v.culprit_driver)) < 0)
                                v.culprit_driver[0] = '\0';
                }
                break;
        }
        *ret = v;
        r = 0;

out_devices:
        if (devices_fd >= 0)
                close(devices_fd);
out_free:
        free(m);
out_members:
        close(members_fd);
        return r;
}

/* ---- binding ------------------------------------------------------------ */

static bool driver_name_valid(const char *name)
{
        size_t len = strlen(name);

        return len < KVFIO_DRIVER_MAX && !strchr(name, '/') && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0;
}

/*
 * Writes text to the sysfs attribute pci_fd/rel in one write() (sysfs takes
 * an attribute in one go). Never creates the file.
 */
static int write_attr(int pci_fd, const char *rel, const char *text)
{
        size_t len = strlen(text);
        ssize_t n;
        int fd, r;

        fd = openat(pci_fd, rel, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = write(fd, text, len);
        if (n < 0)
                r = -errno;
        else
                r = (size_t)n == len ? 0 : -EIO;
        if (close(fd) < 0 && r == 0 && errno != EINTR)
                r = -errno;
        return r;
}

static int write_override(int pci_fd, const char *bdf, const char *text)
{
        char rel[128];

        snprintf(rel, sizeof(rel), "devices/%s/driver_override", bdf);
        return write_attr(pci_fd, rel, text);
}

/* Writes bdf to drivers/<driver>/<what> (what: "bind" or "unbind"). */
static int write_driver_attr(int pci_fd, const char *driver, const char *what, const char *bdf)
{
        char rel[KVFIO_DRIVER_MAX + 32];

        snprintf(rel, sizeof(rel), "drivers/%s/%s", driver, what);
        return write_attr(pci_fd, rel, bdf);
}

static int get_driver(int pci_fd, const char *bdf, char ret_driver[static KVFIO_DRIVER_MAX])
{
        char rel[64];

        snprintf(rel, sizeof(rel), "devices/%s/driver", bdf);
        return read_link_base_at(pci_fd, rel, ret_driver, KVFIO_DRIVER_MAX);
}

/*
 * Opens ROOT/sys/bus/pci and checks that device bdf (normalised into
 * ret_bdf) exists. Returns the dir fd.
 */
static int open_pci_for(const char *root, const char *bdf, char ret_bdf[static KVFIO_BDF_MAX])
{
        char rel[64];
        struct stat st;
        int pci_fd, r;

        if (!root || !*root || kvfio_pci_addr_normalize(bdf, ret_bdf) < 0)
                return -EINVAL;
        pci_fd = open_root_dir(root, PCI_DIR);
        if (pci_fd < 0)
                return pci_fd == -ENOENT ? -ENODEV : pci_fd;
        snprintf(rel, sizeof(rel), "devices/%s", ret_bdf);
        if (fstatat(pci_fd, rel, &st, 0) < 0) {
                r = errno == ENOENT || errno == ENOTDIR ? -ENODEV : -errno;
                close(pci_fd);
                return r;
        }
        return pci_fd;
}

int kvfio_pci_driver_get(const char *root, const char *bdf,
                         char ret_driver[static KVFIO_DRIVER_MAX])
{
        char name[KVFIO_BDF_MAX], drv[KVFIO_DRIVER_MAX];
        int pci_fd, r;

        if (!ret_driver)
                return -EINVAL;
        pci_fd = open_pci_for(root, bdf, name);
        if (pci_fd < 0)
                return pci_fd;
        r = get_driver(pci_fd, name, drv);
        close(pci_fd);
        if (r < 0)
                return r;
        memcpy(ret_driver, drv, sizeof(drv));
        return 0;
}

/*
 * Best effort: gives the device back to `prev` ("" = unbound). The override
 * names prev while it binds, so that drivers which match only through
 * driver_override (uio_pci_generic, pci-stub without ids) take it too; it
 * is cleared afterwards.
 */
static void rebind_prev(int pci_fd, const char *bdf, const char *prev)
{
        char now[KVFIO_DRIVER_MAX];

        (void)write_override(pci_fd, bdf, prev[0] ? prev : "\n");
        if (get_driver(pci_fd, bdf, now) == 0 && strcmp(now, prev) != 0 &&
            (!now[0] || write_driver_attr(pci_fd, now, "unbind", bdf) == 0) && prev[0])
                (void)write_driver_attr(pci_fd, prev, "bind", bdf);
        if (prev[0])
                (void)write_override(pci_fd, bdf, "\n");
}

int kvfio_pci_bind_vfio(const char *root, const char *bdf,
                        char ret_prev_driver[static KVFIO_DRIVER_MAX])
{
        char name[KVFIO_BDF_MAX], prev[KVFIO_DRIVER_MAX], now[KVFIO_DRIVER_MAX];
        int pci_fd, r;

        if (!ret_prev_driver)
                return -EINVAL;
        pci_fd = open_pci_for(root, bdf, name);
        if (pci_fd < 0)
                return pci_fd;
        r = get_driver(pci_fd, name, prev);
        if (r < 0)
                goto out;
        if (strcmp(prev, KVFIO_VFIO_PCI_DRIVER) == 0)
                goto done;

        r = write_override(pci_fd, name, KVFIO_VFIO_PCI_DRIVER);
        if (r < 0)
                goto out;
        if (prev[0]) {
                r = write_driver_attr(pci_fd, prev, "unbind", name);
                if (r < 0)
                        goto err_override;
        }
        r = write_attr(pci_fd, "drivers_probe", name);
        if (r < 0)
                goto err_unbind;
        r = get_driver(pci_fd, name, now);
        if (r < 0)
                goto err_unbind;
        if (strcmp(now, KVFIO_VFIO_PCI_DRIVER) != 0) {
                r = -ENXIO;
                goto err_unbind;
        }
done:
        memcpy(ret_prev_driver, prev, sizeof(prev));
        r = 0;
        goto out;

err_unbind:
        /* Clears the override too: it has to go before the old driver can bind. */
        rebind_prev(pci_fd, name, prev);
        goto out;
err_override:
        (void)write_override(pci_fd, name, "\n");
out:
        close(pci_fd);
        return r;
}

int kvfio_pci_restore(const char *root, const char *bdf, const char *prev_driver)
{
        char name[KVFIO_BDF_MAX], cur[KVFIO_DRIVER_MAX], now[KVFIO_DRIVER_MAX];
        int pci_fd, r;

        if (!prev_driver || !driver_name_valid(prev_driver))
                return -EINVAL;
        if (strcmp(prev_driver, KVFIO_VFIO_PCI_DRIVER) == 0) {
                /* Was bound before vfiod came: nothing to undo; still check the address. */
                pci_fd = open_pci_for(root, bdf, name);
                if (pci_fd < 0)
                        return pci_fd;
                close(pci_fd);
                return 0;
        }
        pci_fd = open_pci_for(root, bdf, name);
        if (pci_fd < 0)
                return pci_fd;
        r = get_driver(pci_fd, name, cur);
        if (r < 0)
                goto out;
        if (cur[0] && strcmp(cur, KVFIO_VFIO_PCI_DRIVER) != 0 && strcmp(cur, prev_driver) != 0) {
                r = -EBUSY;
                goto out;
        }

        /* The override names prev_driver while it binds (see rebind_prev()). */
        r = write_override(pci_fd, name, prev_driver[0] ? prev_driver : "\n");
        if (r < 0)
                goto out;
        if (strcmp(cur, KVFIO_VFIO_PCI_DRIVER) == 0) {
                r = write_driver_attr(pci_fd, KVFIO_VFIO_PCI_DRIVER, "unbind", name);
                if (r < 0)
                        goto err_override;
        }
        if (prev_driver[0] && strcmp(cur, prev_driver) != 0) {
                r = write_driver_attr(pci_fd, prev_driver, "bind", name);
                if (r == -ENOENT)
                        r = write_attr(pci_fd, "drivers_probe", name);
                if (r < 0)
                        goto err_override;
        }
        if (prev_driver[0]) {
                r = write_override(pci_fd, name, "\n");
                if (r < 0)
                        goto out;
        }
        r = get_driver(pci_fd, name, now);
        if (r < 0)
                goto out;
        r = strcmp(now, prev_driver) == 0 ? 0 : -ENXIO;
        goto out;

err_override:
        if (prev_driver[0])
                (void)write_override(pci_fd, name, "\n");
out:
        close(pci_fd);
        return r;
}
