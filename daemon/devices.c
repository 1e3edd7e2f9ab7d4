/* SPDX-License-Identifier: MIT */
#include "daemon/devices.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/group.h"
#include "daemon/log.h"
#include "proto/macro.h"

int vfiod_registry_new(const char *sysfs_root, const char *vfio_dir, struct vfiod_registry **ret)
{
        struct vfiod_registry *d = calloc(1, sizeof(*d));
        const char *slash;

        if (!d)
                return -ENOMEM;
        list_init(&d->groups);
        d->sysfs_root = strdup(sysfs_root ? sysfs_root : "/");
        d->vfio_dir = strdup(vfio_dir ? vfio_dir : "/dev/vfio");
        if (!d->sysfs_root || !d->vfio_dir ||
            asprintf(&d->container_path, "%s/vfio", d->vfio_dir) < 0) {
                d->container_path = NULL;
                vfiod_registry_free(d);
                return -ENOMEM;
        }
        if (asprintf(&d->cdev_dir, "%s/devices", d->vfio_dir) < 0) {
                d->cdev_dir = NULL;
                vfiod_registry_free(d);
                return -ENOMEM;
        }
        /* /dev/vfio -> /dev/iommu: the iommufd node sits next to the VFIO folder. */
        slash = strrchr(d->vfio_dir, '/');
        if (asprintf(&d->iommufd_path, "%.*s/iommu", slash ? (int)(slash - d->vfio_dir) : 1,
                     slash ? d->vfio_dir : ".") < 0) {
                d->iommufd_path = NULL;
                vfiod_registry_free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

/* ---- the inventory ----------------------------------------------------------------------- */

/* The inventory's order: PCI devices by address, then mdevs by UUID. */
static int dev_order(const struct kvfio_pci_dev *a, const struct kvfio_pci_dev *b)
{
        if (a->mdev != b->mdev)
                return a->mdev ? 1 : -1;
        return a->mdev ? strcmp(a->bdf, b->bdf) : kvfio_pci_addr_compare(&a->addr, &b->addr);
}

/* The fields a uevent can change, or that tell two devices apart. */
static bool dev_same(const struct kvfio_pci_dev *a, const struct kvfio_pci_dev *b)
{
        return strcmp(a->bdf, b->bdf) == 0 && a->vendor == b->vendor && a->device == b->device &&
               a->subvendor == b->subvendor && a->subdevice == b->subdevice &&
               a->class == b->class && a->iommu_group == b->iommu_group &&
               a->vfio_cdev == b->vfio_cdev && strcmp(a->driver, b->driver) == 0 &&
               strcmp(a->mdev_type, b->mdev_type) == 0 && strcmp(a->parent, b->parent) == 0;
}

/* A key for dev_order() from a device name. -EINVAL when it is not one. */
static int name_key(const char *name, struct kvfio_pci_dev *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (kvfio_pci_addr_parse(name, &ret->addr) == 0) {
                kvfio_pci_addr_format(&ret->addr, ret->bdf);
                return 0;
        }
        if (kvfio_mdev_uuid_normalize(name, ret->bdf) < 0)
                return -EINVAL;
        ret->mdev = true;
        return 0;
}

/* The index of the first device not before key; *ret_found when it is key. */
static size_t inv_lower(const struct kvfio_pci_list *inv, const struct kvfio_pci_dev *key,
                        bool *ret_found)
{
        size_t lo = 0, hi = inv->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (dev_order(&inv->devs[mid], key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = lo < inv->n && dev_order(&inv->devs[lo], key) == 0;
        return lo;
}

/* Puts dev at pos (replacing the device there when found), or removes it (dev NULL). */
static int inv_put(struct vfiod_registry *d, size_t pos, bool found,
                   const struct kvfio_pci_dev *dev)
{
        struct kvfio_pci_list *inv = d->inv;

        if (dev && !found && inv->n == d->inv_cap) {
                size_t cap = d->inv_cap ? d->inv_cap * 2 : 64;
                struct kvfio_pci_dev *n = reallocarray(inv->devs, cap, sizeof(*n));

                if (!n)
                        return -ENOMEM;
                inv->devs = n;
                d->inv_cap = cap;
        }
        free(d->by_group);
        d->by_group = NULL;
        if (dev && found) {
                inv->devs[pos] = *dev;
                return 0;
        }
        if (dev) {
                memmove(&inv->devs[pos + 1], &inv->devs[pos], (inv->n - pos) * sizeof(*dev));
                inv->devs[pos] = *dev;
                inv->n++;
                return 0;
        }
        memmove(&inv->devs[pos], &inv->devs[pos + 1], (inv->n - pos - 1) * sizeof(*dev));
        inv->n--;
        return 0;
}

static void changed(struct vfiod_registry *d, const char *action, const struct kvfio_pci_dev *old,
                    const struct kvfio_pci_dev *now)
{
        if (d->on_change)
                d->on_change(d->on_change_data, action, old, now);
}

/* Reads the device named by key again (or drops it: gone) and records the change. */
static int refresh(struct vfiod_registry *d, const char *action, const struct kvfio_pci_dev *key,
                   bool gone)
{
        struct kvfio_pci_dev old, now;
        bool found;
        size_t pos;
        int r;

        if (!d->inv) /* not scanned yet: the first scan reads it */
                return 0;
        pos = inv_lower(d->inv, key, &found);

        if (!gone) {
                r = kvfio_dev_read(d->sysfs_root, key->bdf, &now);
                if (r == -ENOMEM)
                        return r;
                /* Not there, or no longer readable: kvfio_dev_discover() would skip it too. */
                gone = r < 0;
        }
        if (gone && !found)
                return 0;
        if (found)
                old = d->inv->devs[pos];
        if (!gone && found && dev_same(&old, &now))
                return 0;
        r = inv_put(d, pos, found, gone ? NULL : &now);
        if (r < 0)
                return r;
        changed(d, action, found ? &old : NULL, gone ? NULL : &now);
        return 1;
}

int vfiod_registry_uevent(struct vfiod_registry *d, const char *action, const char *subsystem,
                          const char *name)
{
        struct kvfio_pci_dev key;
        bool mdev;

        if (!action || !subsystem || !name)
                return 0;
        if (strcmp(subsystem, "pci") != 0 && strcmp(subsystem, "mdev") != 0)
                return 0;
        mdev = strcmp(subsystem, "mdev") == 0;
        if (name_key(name, &key) < 0 || key.mdev != mdev)
                return 0;
        return refresh(d, action, &key, strcmp(action, "remove") == 0);
}

int vfiod_registry_refresh(struct vfiod_registry *d, const char *name)
{
        struct kvfio_pci_dev key;

        if (name_key(name, &key) < 0)
                return -EINVAL;
        return refresh(d, "managed", &key, false);
}

/* One difference a scan found. */
struct diff {
        struct kvfio_pci_dev old, now;
        bool has_old, has_now;
};

int vfiod_registry_scan(struct vfiod_registry *d)
{
        struct kvfio_pci_list *list = NULL, *old;
        struct diff *diffs = NULL;
        size_t n = 0, i = 0, j = 0;
        int r;

        /* The first scan: an empty inventory, which stays if the tree cannot be read. */
        if (!d->inv && !(d->inv = calloc(1, sizeof(*d->inv))))
                return -ENOMEM;
        old = d->inv;
        r = kvfio_dev_discover(d->sysfs_root, &list);
        if (r < 0) {
                d->scan_error = r;
                return r;
        }
        /* At most one difference per device of either list. */
        diffs = calloc(old->n + list->n + 1, sizeof(*diffs));
        if (!diffs) {
                kvfio_pci_list_free(list);
                return -ENOMEM;
        }
        while (i < old->n || j < list->n) {
                int c = i == old->n    ? 1
                        : j == list->n ? -1
                                       : dev_order(&old->devs[i], &list->devs[j]);
                struct diff *df = &diffs[n];

                if (c == 0 && dev_same(&old->devs[i], &list->devs[j])) {
                        i++, j++;
                        continue;
                }
                if (c <= 0) {
                        df->old = old->devs[i++];
                        df->has_old = true;
                }
                if (c >= 0) {
                        df->now = list->devs[j++];
                        df->has_now = true;
                }
                n++;
        }
        d->scan_error = 0;
        d->inv = list;
        d->inv_cap = list->n;
        free(d->by_group);
        d->by_group = NULL;
        kvfio_pci_list_free(old);
        /* The inventory is whole before anybody hears of a change. */
        for (size_t k = 0; k < n; k++)
                changed(d, "rescan", diffs[k].has_old ? &diffs[k].old : NULL,
                        diffs[k].has_now ? &diffs[k].now : NULL);
        free(diffs);
        return 0;
}

const struct kvfio_pci_list *vfiod_registry_devices(struct vfiod_registry *d)
{
        static const struct kvfio_pci_list none;

        return d->inv ? d->inv : &none;
}

struct group_ref {
        int group;
        size_t idx;
};

static int group_ref_cmp(const void *a, const void *b)
{
        const struct group_ref *x = a, *y = b;

        if (x->group != y->group)
                return x->group < y->group ? -1 : 1;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* (Re)builds by_group. */
static int by_group_build(struct vfiod_registry *d)
{
        size_t n = d->inv->n;
        struct group_ref *refs = calloc(n ? n : 1, sizeof(*refs));
        size_t *idx = calloc(n ? n : 1, sizeof(*idx));

        if (!refs || !idx) {
                free(refs);
                free(idx);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                refs[i] = (struct group_ref){d->inv->devs[i].iommu_group, i};
        qsort(refs, n, sizeof(*refs), group_ref_cmp);
        for (size_t i = 0; i < n; i++)
                idx[i] = refs[i].idx;
        free(refs);
        d->by_group = idx;
        return 0;
}

ssize_t vfiod_registry_group_index(struct vfiod_registry *d, int group, const size_t **ret)
{
        size_t lo = 0, hi, first;

        if (!d->inv)
                return 0;
        if (!d->by_group && by_group_build(d) < 0)
                return -ENOMEM;
        hi = d->inv->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (d->inv->devs[d->by_group[mid]].iommu_group < group)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        first = lo;
        while (lo < d->inv->n && d->inv->devs[d->by_group[lo]].iommu_group == group)
                lo++;
        *ret = &d->by_group[first];
        return (ssize_t)(lo - first);
}

int vfiod_registry_viable(struct vfiod_registry *d, int group, struct kvfio_group_viability *ret)
{
        struct kvfio_group_viability v = {.viable = true};
        const size_t *idx;
        ssize_t n = vfiod_registry_group_index(d, group, &idx);

        if (n < 0)
                return (int)n;
        if (n == 0 || group < 0)
                return -ENOENT;
        v.n_members = (size_t)n;
        for (ssize_t k = 0; k < n; k++) {
                const struct kvfio_pci_dev *m = &d->inv->devs[idx[k]];

                if (kvfio_dev_keeps_group_viable(m))
                        continue;
                v.viable = false;
                snprintf(v.culprit, sizeof(v.culprit), "%s", m->bdf);
                snprintf(v.culprit_driver, sizeof(v.culprit_driver), "%s", m->driver);
                break;
        }
        *ret = v;
        return 0;
}

ssize_t vfiod_registry_after(struct vfiod_registry *d, const char *name)
{
        struct kvfio_pci_dev key;
        bool found;
        size_t pos;

        if (name_key(name ? name : "", &key) < 0)
                return !name || !*name ? 0 : -EINVAL;
        if (!d->inv)
                return 0;
        pos = inv_lower(d->inv, &key, &found);
        return (ssize_t)(found ? pos + 1 : pos);
}

void vfiod_registry_restore(struct vfiod_registry *d, int group, struct vfiod_bound *bound,
                            size_t n_bound)
{
        for (size_t i = 0; i < n_bound; i++) {
                const struct vfiod_bound *b = &bound[i];
                struct vfiod_log_about a = {.device = b->bdf, .group = group};
                int r = kvfio_pci_restore(d->sysfs_root, b->bdf, b->prev_driver);

                (void)vfiod_registry_refresh(d, b->bdf);

                if (r < 0)
                        vfiod_log_about(LOG_WARNING, &a,
                                        "managed: cannot give '%s' back to %s%s%s: %s", b->bdf,
                                        b->prev_driver[0] ? "driver '" : "no driver",
                                        b->prev_driver, b->prev_driver[0] ? "'" : "", strerror(-r));
                else
                        vfiod_log_about(LOG_NOTICE, &a, "managed: gave '%s' back to %s%s%s", b->bdf,
                                        b->prev_driver[0] ? "driver '" : "no driver",
                                        b->prev_driver, b->prev_driver[0] ? "'" : "");
        }
        free(bound);
}

void vfiod_registry_free(struct vfiod_registry *d)
{
        struct vfiod_group *g;

        if (!d)
                return;
        d->on_change = NULL; /* nobody to tell any more */
        list_for_each_safe (g, it, &d->groups, struct vfiod_group, link) {
                /* Managed devices go back to their drivers, unless that would block. */
                if (g->n_bound &&
                    !(g->state == VFIOD_GROUP_QUARANTINED && g->wait == VFIOD_WAIT_UNSET)) {
                        safe_close(g->fd);
                        g->fd = -EBADF;
                        vfiod_registry_restore(d, g->id, g->bound, g->n_bound);
                } else if (g->n_bound) {
                        struct vfiod_log_about a = {.group = g->id};
                        vfiod_log_about(LOG_WARNING, &a,
                                        "managed: group %d stays on vfio-pci: a client still "
                                        "holds one of its device fds",
                                        g->id);
                        free(g->bound);
                }
                g->bound = NULL;
                g->n_bound = 0;
                vfiod_registry_group_free(g);
        }
        kvfio_pci_list_free(d->inv);
        free(d->by_group);
        free(d->sysfs_root);
        free(d->vfio_dir);
        free(d->container_path);
        free(d->cdev_dir);
        free(d->iommufd_path);
        free(d);
}

int vfiod_registry_read(struct vfiod_registry *d, const char *bdf, struct kvfio_pci_dev *ret)
{
        struct kvfio_pci_dev key;
        bool found;
        size_t pos;

        if (name_key(bdf, &key) < 0)
                return -EINVAL;
        if (!d->inv)
                return -ENODEV;
        pos = inv_lower(d->inv, &key, &found);
        if (!found)
                return -ENODEV;
        *ret = d->inv->devs[pos];
        return 0;
}

int vfiod_registry_members(struct vfiod_registry *d, int group, struct kvfio_pci_list **ret)
{
        struct kvfio_pci_list *list;
        const size_t *idx;
        ssize_t n = vfiod_registry_group_index(d, group, &idx);

        if (n < 0)
                return (int)n;
        if (n == 0)
                return -ENOENT;
        list = calloc(1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        list->devs = calloc((size_t)n, sizeof(*list->devs));
        if (!list->devs) {
                free(list);
                return -ENOMEM;
        }
        for (ssize_t k = 0; k < n; k++)
                list->devs[k] = d->inv->devs[idx[k]];
        list->n = (size_t)n;
        *ret = list;
        return 0;
}
