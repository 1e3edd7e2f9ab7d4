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

void vfiod_registry_restore(struct vfiod_registry *d, int group, struct vfiod_bound *bound,
                            size_t n_bound)
{
        for (size_t i = 0; i < n_bound; i++) {
                const struct vfiod_bound *b = &bound[i];
                struct vfiod_log_about a = {.device = b->bdf, .group = group};
                int r = kvfio_pci_restore(d->sysfs_root, b->bdf, b->prev_driver);

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
        free(d->sysfs_root);
        free(d->vfio_dir);
        free(d->container_path);
        free(d->cdev_dir);
        free(d->iommufd_path);
        free(d);
}

int vfiod_registry_discover(struct vfiod_registry *d, struct kvfio_pci_list **ret)
{
        return kvfio_dev_discover(d->sysfs_root, ret);
}

int vfiod_registry_read(struct vfiod_registry *d, const char *bdf, struct kvfio_pci_dev *ret)
{
        return kvfio_dev_read(d->sysfs_root, bdf, ret);
}

int vfiod_registry_members(struct vfiod_registry *d, int group, struct kvfio_pci_list **ret)
{
        return kvfio_iommu_group_members(d->sysfs_root, group, ret);
}
