/* SPDX-License-Identifier: MIT */
#include "daemon/group.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "kernel/container.h"
#include "kernel/group.h"
#include "proto/macro.h"

#define LOG_GROUP(prio, id, lease_id, ...)                                        \
        do {                                                                      \
                struct vfiod_log_about _a = {.group = (id), .lease = (lease_id)}; \
                vfiod_log_about((prio), &_a, __VA_ARGS__);                        \
        } while (0)

static const char *const group_state_table[_VFIOD_GROUP_STATE_MAX] = {
    [VFIOD_GROUP_FREE] = "free",
    [VFIOD_GROUP_LEASED] = "leased",
    [VFIOD_GROUP_RELEASING] = "releasing",
    [VFIOD_GROUP_QUARANTINED] = "quarantined",
    [VFIOD_GROUP_SANITIZING] = "sanitizing",
};

const char *vfiod_group_state_to_string(enum vfiod_group_state state)
{
        if ((unsigned)state >= ELEMENTSOF(group_state_table))
                return NULL;
        return group_state_table[state];
}

/* ---- the registry's entries ------------------------------------------------- */

void vfiod_registry_group_free(struct vfiod_group *g)
{
        if (!g)
                return;
        list_remove(&g->link);
        safe_close(g->fd);
        free(g->bound);
        free(g);
}

struct vfiod_group *vfiod_registry_group(struct vfiod_registry *d, int id)
{
        struct vfiod_group *g;

        list_for_each_safe (g, it, &d->groups, struct vfiod_group, link)
                if (g->id == id)
                        return g;
        return NULL;
}

int vfiod_registry_group_get(struct vfiod_registry *d, int id, struct vfiod_group **ret)
{
        struct vfiod_group *g = vfiod_registry_group(d, id);

        if (!g) {
                g = calloc(1, sizeof(*g));
                if (!g)
                        return -ENOMEM;
                g->id = id;
                g->fd = -EBADF;
                g->state = VFIOD_GROUP_FREE;
                list_add_tail(&d->groups, &g->link);
        }
        *ret = g;
        return 0;
}

struct vfiod_group *vfiod_registry_attached_to(struct vfiod_registry *d, uint64_t domain)
{
        struct vfiod_group *g;

        list_for_each_safe (g, it, &d->groups, struct vfiod_group, link) {
                if (g->state == VFIOD_GROUP_QUARANTINED &&
                    (g->wait == VFIOD_WAIT_UNSET || g->wait == VFIOD_WAIT_CDEV) &&
                    g->domain == domain)
                        return g;
        }
        return NULL;
}

enum vfiod_group_state vfiod_registry_group_state(struct vfiod_registry *d, int id)
{
        struct vfiod_group *g = vfiod_registry_group(d, id);

        return g ? g->state : VFIOD_GROUP_FREE;
}

size_t vfiod_registry_count(struct vfiod_registry *d, enum vfiod_group_state state)
{
        struct vfiod_group *g;
        size_t n = 0;

        list_for_each_safe (g, it, &d->groups, struct vfiod_group, link)
                n += g->state == state;
        return n;
}

/* ---- resets ------------------------------------------------------------------ */

/*
 * The hot reset of a device opened by its cdev and bound to an iommufd: the
 * kernel's info names device ids, and the reset takes no group fd (the kernel
 * checks that the iommufd owns every affected device). r: the device's own
 * answer, returned when the hot reset is not tried.
 */
static int hot_reset_cdev(int device_fd, const char *bdf, int group, int r,
                          const struct kvfio_hot_reset_info *info)
{
        struct vfiod_log_about a = {.device = bdf, .group = group};
        int h;

        if (!info->dev_ids) {
                vfiod_log_about(LOG_WARNING, &a,
                                "'%s' has no reset of its own and no hot reset through its "
                                "iommufd: the kernel answers with group ids, so its cdev is "
                                "not bound",
                                bdf);
                return r;
        }
        if (!info->owned) {
                for (size_t i = 0; i < info->n; i++)
                        if (info->devs[i].group_id == KVFIO_HOT_RESET_DEVID_NOT_OWNED) {
                                char other[16];

                                vfiod_log_about(LOG_WARNING, &a,
                                                "'%s' has no reset of its own and a hot reset "
                                                "would also reset '%s', which its iommufd "
                                                "does not own",
                                                bdf,
                                                kvfio_hot_reset_dep_bdf(&info->devs[i], other));
                                return r;
                        }
                vfiod_log_about(LOG_WARNING, &a,
                                "'%s' has no reset of its own and the kernel says a hot reset "
                                "would affect a device its iommufd does not own",
                                bdf);
                return r;
        }
        h = kvfio_device_hot_reset_cdev(device_fd);
        if (h < 0)
                vfiod_log_about(LOG_WARNING, &a,
                                "'%s' has no reset of its own and its hot reset through its "
                                "iommufd failed: %s",
                                bdf, strerror(-h));
        return h;
}

/* The hot reset of a device opened through its group, whose fd group_fd is; see hot_reset_cdev().
 */
static int hot_reset_group(int device_fd, const char *bdf, int group, int group_fd, int r,
                           const struct kvfio_hot_reset_info *info)
{
        struct vfiod_log_about a = {.device = bdf, .group = group};
        int h;

        if (info->dev_ids) {
                vfiod_log_about(LOG_WARNING, &a,
                                "'%s' has no reset of its own and no hot reset through group %d: "
                                "the kernel answers with device ids, so it was opened by its cdev",
                                bdf, group);
                return r;
        }
        for (size_t i = 0; i < info->n; i++)
                if ((int)info->devs[i].group_id != group) {
                        char other[16];

                        vfiod_log_about(LOG_WARNING, &a,
                                        "'%s' has no reset of its own and a hot reset would "
                                        "also reset '%s' (group %u)",
                                        bdf, kvfio_hot_reset_dep_bdf(&info->devs[i], other),
                                        info->devs[i].group_id);
                        return r;
                }
        h = kvfio_device_hot_reset(device_fd, &group_fd, 1);
        if (h < 0)
                vfiod_log_about(LOG_WARNING, &a,
                                "'%s' has no reset of its own and its hot reset through group "
                                "%d failed: %s",
                                bdf, group, strerror(-h));
        return h;
}

/*
 * group_fd < 0: device_fd is a device cdev bound to an iommufd (an IOMMUFD
 * lease holds no group fd), whose hot reset goes through the iommufd.
 */
int vfiod_group_reset_device(int device_fd, const char *bdf, int group, int group_fd)
{
        struct kvfio_hot_reset_info *info = NULL;
        int r, h;

        r = kvfio_device_reset(device_fd);
        if (r != -ENOTTY && r != -EINVAL)
                return r;
        h = kvfio_device_get_hot_reset_info(device_fd, &info);
        if (h < 0)
                return r; /* no hot reset either: the device's own answer */
        if (group_fd < 0)
                h = hot_reset_cdev(device_fd, bdf, group, r, info);
        else
                h = hot_reset_group(device_fd, bdf, group, group_fd, r, info);
        kvfio_hot_reset_info_free(info);
        return h;
}

bool vfiod_dev_plain_vfio_pci(const struct kvfio_pci_dev *m)
{
        return !m->mdev && strcmp(m->driver, KVFIO_VFIO_PCI_DRIVER) == 0;
}

bool vfiod_dev_reset_at_open(const struct kvfio_pci_dev *m, const struct kvfio_device_info *info)
{
        return vfiod_dev_plain_vfio_pci(m) && info->reset_supported;
}

/* ---- sanitize ---------------------------------------------------------------- */

/* Opens, resets (unless its open did) and closes one VFIO member; 0 or the failure. */
static int sanitize_member(int id, int group_fd, const struct kvfio_pci_dev *m)
{
        struct vfiod_log_about a = {.device = m->bdf, .group = id};
        struct kvfio_device_info info;
        int dfd, rr;

        dfd = kvfio_group_get_device_fd(group_fd, m->bdf);
        if (dfd < 0) {
                vfiod_log_about(LOG_WARNING, &a, "sanitize: cannot open device '%s': %s", m->bdf,
                                strerror(-dfd));
                return dfd;
        }
        if (kvfio_device_get_info(dfd, &info) == 0 && vfiod_dev_reset_at_open(m, &info)) {
                vfiod_log_about(LOG_DEBUG, &a, "sanitize: '%s' was reset as it opened", m->bdf);
                safe_close(dfd);
                return 0;
        }
        rr = vfiod_group_reset_device(dfd, m->bdf, id, group_fd);
        if (rr < 0)
                vfiod_log_about(LOG_WARNING, &a, "sanitize: resetting '%s' failed: %s", m->bdf,
                                strerror(-rr));
        else
                vfiod_log_about(LOG_DEBUG, &a, "sanitize: reset '%s'", m->bdf);
        safe_close(dfd);
        return 0;
}

int vfiod_group_sanitize(struct vfiod_registry *devices, int id, int group_fd,
                         const struct kvfio_pci_list *members)
{
        int cfd, r;

        cfd = kvfio_container_open(devices->container_path);
        if (cfd < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot open a scratch container: %s",
                          strerror(-cfd));
                return cfd;
        }
        r = kvfio_group_set_container(group_fd, cfd);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot attach the group: %s",
                          strerror(-r));
                goto out_close;
        }
        r = kvfio_container_set_iommu(cfd, KVFIO_IOMMU_AUTO);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot set the IOMMU model: %s",
                          strerror(-r));
                goto out_unset;
        }
        for (size_t i = 0; i < members->n; i++) {
                int o;

                if (!kvfio_dev_is_vfio(&members->devs[i]))
                        continue;
                o = sanitize_member(id, group_fd, &members->devs[i]);
                if (o < 0)
                        r = o;
        }
out_unset : {
        int u = kvfio_group_unset_container(group_fd);
        if (u < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: detaching the group failed: %s",
                          strerror(-u));
                if (r >= 0)
                        r = u;
        }
}
out_close:
        safe_close(cfd);
        return r < 0 ? r : 0;
}

/*
 * Not when every VFIO member is plain vfio-pci and the group stays on it:
 * whoever opens a device next opens the group first, which nobody else then
 * holds, so that device open is its first, and vfio-pci resets it there (the
 * acquire resets it itself when the open could not: see lease_open_devs()).
 * Yes for an mdev member or one on a *_vfio_pci variant (its open is its
 * vendor driver's), and for a group that goes back to other drivers
 * (Managed=).
 */
bool vfiod_group_needs_sanitize(const struct vfiod_group *g, const struct kvfio_pci_list *members)
{
        if (g->n_bound > 0)
                return true;
        for (size_t i = 0; i < members->n; i++)
                if (kvfio_dev_is_vfio(&members->devs[i]) &&
                    !vfiod_dev_plain_vfio_pci(&members->devs[i]))
                        return true;
        return false;
}

/* ---- release and quarantine ------------------------------------------------- */

void vfiod_group_release_begin(struct vfiod_group *g)
{
        g->state = VFIOD_GROUP_RELEASING;
}

void vfiod_group_quarantine(struct vfiod_group *g, uint64_t lease_id, int unset_r, int *group_fd,
                            uint64_t domain)
{
        g->state = VFIOD_GROUP_QUARANTINED;
        g->lease = NULL;
        g->last_lease = lease_id;
        g->checks = 0;
        if (unset_r == -EBUSY) {
                /* The group fd moves to the quarantine record. */
                g->wait = VFIOD_WAIT_UNSET;
                g->fd = TAKE_FD(*group_fd);
                g->domain = domain;
        } else
                g->wait = VFIOD_WAIT_REOPEN;
}

void vfiod_group_quarantine_cdev(struct vfiod_group *g, uint64_t lease_id, uint64_t domain)
{
        g->state = VFIOD_GROUP_QUARANTINED;
        g->lease = NULL;
        g->last_lease = lease_id;
        g->checks = 0;
        g->wait = VFIOD_WAIT_CDEV;
        g->domain = domain;
}

int vfiod_group_cdev_detach(struct vfiod_group *g, const char *vfio_dir)
{
        int id = g->id, fd;

        fd = kvfio_group_open(id, vfio_dir);
        if (fd == -EBUSY)
                return 1;
        /* vfiod_group_settle() opens it again to take it on. */
        safe_close(fd);
        LOG_GROUP(LOG_INFO, id, g->last_lease,
                  "group %d: no device cdev of it is bound any more, it left its domain", id);
        g->wait = VFIOD_WAIT_REOPEN;
        g->domain = 0;
        return 0;
}

int vfiod_group_detach(struct vfiod_group *g)
{
        int id = g->id, r;

        r = kvfio_group_unset_container(g->fd);
        if (r == -EBUSY)
                return 1;
        if (r < 0 && r != -EINVAL)
                LOG_GROUP(LOG_WARNING, id, g->last_lease, "detaching group %d: %s", id,
                          strerror(-r));
        else
                LOG_GROUP(LOG_INFO, id, g->last_lease,
                          "group %d: every device fd is closed, group detached", id);
        g->fd = safe_close(g->fd);
        g->wait = VFIOD_WAIT_REOPEN;
        g->domain = 0;
        return 0;
}

/* The group is FREE: forgets it and gives managed devices back to their drivers. */
static void group_free_restore(struct vfiod_registry *devices, struct vfiod_group *g)
{
        struct vfiod_bound *bound = g->bound;
        size_t n = g->n_bound;
        int id = g->id;

        /* The list moves out of the entry before it is freed. */
        g->bound = NULL;
        g->n_bound = 0;
        vfiod_registry_group_free(g);
        if (n)
                vfiod_registry_restore(devices, id, bound, n);
        else
                free(bound);
}

/* Nobody holds the group (fd is the daemon's, consumed): sanitized if it needs it, then FREE. */
static int group_clean_take(struct vfiod_registry *devices, struct vfiod_group *g, int fd)
{
        struct kvfio_pci_list *members = NULL;
        int id = g->id, r;
        uint64_t lease = g->last_lease;

        r = vfiod_registry_members(devices, id, &members);
        if (r < 0) {
                safe_close(fd);
                LOG_GROUP(LOG_WARNING, id, lease,
                          "group %d stays quarantined: cannot list its devices: %s", id,
                          strerror(-r));
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        if (!vfiod_group_needs_sanitize(g, members)) {
                kvfio_pci_list_free(members);
                safe_close(fd);
                LOG_GROUP(LOG_INFO, id, lease,
                          "group %d is free: nobody else holds it, and vfio-pci resets its "
                          "devices when they are next opened",
                          id);
                group_free_restore(devices, g);
                return 0;
        }
        g->state = VFIOD_GROUP_SANITIZING;
        r = vfiod_group_sanitize(devices, id, fd, members);
        kvfio_pci_list_free(members);
        safe_close(fd);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, lease,
                          "group %d stays quarantined: sanitizing failed: %s", id, strerror(-r));
                g->state = VFIOD_GROUP_QUARANTINED;
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        LOG_GROUP(LOG_INFO, id, lease, "group %d sanitized; it is free", id);
        group_free_restore(devices, g);
        return 0;
}

int vfiod_group_settle(struct vfiod_registry *devices, struct vfiod_group *g)
{
        int id = g->id, fd;
        uint64_t lease = g->last_lease;

        fd = kvfio_group_open(id, devices->vfio_dir);
        if (fd == -EBUSY) {
                if (g->wait != VFIOD_WAIT_REOPEN || g->checks == 0)
                        LOG_GROUP(LOG_NOTICE, id, lease,
                                  "group %d is still open elsewhere (a client holds its fd)", id);
                g->wait = VFIOD_WAIT_REOPEN;
                return 1;
        }
        if (fd == -ENOENT || fd == -ENODEV) {
                /* No longer a VFIO group (unbound from vfio-pci): nothing left to clean. */
                LOG_GROUP(LOG_NOTICE, id, lease, "group %d is gone from %s; forgetting it", id,
                          devices->vfio_dir);
                group_free_restore(devices, g);
                return 0;
        }
        if (fd < 0) {
                LOG_GROUP(LOG_WARNING, id, lease, "cannot open group %d again: %s", id,
                          strerror(-fd));
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        return group_clean_take(devices, g, fd);
}
