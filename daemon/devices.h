/* SPDX-License-Identifier: MIT */
/*
 * The registry of PCI devices and IOMMU groups and what vfiod did with them.
 *
 * Concepts: devices are not cached: every ListDevices and Acquire reads sysfs
 * again (under the --sysfs-root prefix), so binding changes are seen at once.
 * What vfiod must remember is per IOMMU group, in an entry of `groups` for
 * every group that is not FREE; daemon/group.h owns those entries and their
 * states. This module owns the roots, the Managed=yes restore and the
 * registry's teardown.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/list.h"
#include "kernel/sysfs.h"

/* A device vfiod bound to vfio-pci itself (Managed=yes) and the driver it had. */
struct vfiod_bound {
        char bdf[KVFIO_NAME_MAX];
        char prev_driver[KVFIO_DRIVER_MAX];
};

struct vfiod_registry {
        char *sysfs_root;     /* discovery root, "/" in production */
        char *vfio_dir;       /* /dev/vfio */
        char *container_path; /* <vfio_dir>/vfio */
        char *cdev_dir;       /* <vfio_dir>/devices: the device cdevs */
        char *iommufd_path;   /* /dev/iommu: next to <vfio_dir> */
        struct list groups;   /* struct vfiod_group that are not FREE (daemon/group.h) */
};

int vfiod_registry_new(const char *sysfs_root, const char *vfio_dir, struct vfiod_registry **ret);
/* Closes the fds of quarantined groups. NULL is fine. */
void vfiod_registry_free(struct vfiod_registry *devices);

/*
 * Gives the devices in bound[] back to the drivers they had
 * (kvfio_pci_restore(), which blocks while a device fd is open: call it only
 * when the group is out of every container), logs each, and frees bound.
 */
void vfiod_registry_restore(struct vfiod_registry *devices, int group, struct vfiod_bound *bound,
                            size_t n_bound);

/*
 * Thin wrappers over kernel/sysfs.h with the registry's root; discover and
 * read take PCI devices and mdevs (kvfio_dev_discover(), kvfio_dev_read()).
 */
int vfiod_registry_discover(struct vfiod_registry *devices, struct kvfio_pci_list **ret);
int vfiod_registry_read(struct vfiod_registry *devices, const char *bdf, struct kvfio_pci_dev *ret);
int vfiod_registry_members(struct vfiod_registry *devices, int group, struct kvfio_pci_list **ret);
