/* SPDX-License-Identifier: MIT */
/*
 * The registry of PCI devices and IOMMU groups and what vfiod did with them.
 *
 * Concepts: the inventory is every PCI device and mdev (kvfio_dev_discover()
 * under the --sysfs-root prefix), read once when the registry is made and
 * then kept current one device at a time: the kernel's uevents
 * (vfiod_registry_uevent(), fed by daemon/monitor.h in the daemon and by the
 * suites after they change a fake tree) and vfiod's own Managed=yes binds and
 * restores re-read the one device they name. ListDevices, Acquire and the
 * release read the inventory, never sysfs. Each change is passed to
 * on_change (the server logs it and ends the leases it takes a device from).
 * What vfiod must remember is per IOMMU group, in an entry of `groups` for
 * every group that is not FREE; daemon/group.h owns those entries and their
 * states. This module owns the roots, the inventory, the Managed=yes restore
 * and the registry's teardown.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/list.h"
#include "kernel/sysfs.h"

/* A device vfiod bound to vfio-pci itself (Managed=yes) and the driver it had. */
struct vfiod_bound {
        char bdf[KVFIO_NAME_MAX];
        char prev_driver[KVFIO_DRIVER_MAX];
};

/*
 * One change of the inventory: old NULL when the device was added, now NULL
 * when it is gone; both set when its driver or IOMMU group changed. action
 * is the uevent's ("add", "remove", "bind", "unbind", "change"), "managed"
 * for vfiod's own bind or restore, "rescan" after a full scan. old and now
 * are copies, valid during the call; the inventory already shows now.
 */
typedef void (*vfiod_registry_change_fn)(void *userdata, const char *action,
                                         const struct kvfio_pci_dev *old,
                                         const struct kvfio_pci_dev *now);

struct vfiod_registry {
        char *sysfs_root;     /* discovery root, "/" in production */
        char *vfio_dir;       /* /dev/vfio */
        char *container_path; /* <vfio_dir>/vfio */
        char *cdev_dir;       /* <vfio_dir>/devices: the device cdevs */
        char *iommufd_path;   /* /dev/iommu: next to <vfio_dir> */
        struct list groups;   /* struct vfiod_group that are not FREE (daemon/group.h) */
        /* The inventory: sorted as kvfio_dev_discover() sorts (PCI by address, then mdevs). */
        struct kvfio_pci_list *inv;
        size_t inv_cap;
        int scan_error; /* of the last full scan, 0 if it worked (the inventory is then empty) */
        /* Indexes into inv->devs ordered by IOMMU group (then inventory order); NULL: stale. */
        size_t *by_group;
        vfiod_registry_change_fn on_change;
        void *on_change_data;
};

/* Makes the registry; its inventory is empty until the first vfiod_registry_scan(). */
int vfiod_registry_new(const char *sysfs_root, const char *vfio_dir, struct vfiod_registry **ret);

/*
 * Reads every device again (kvfio_dev_discover()) and passes each difference
 * with the inventory to on_change ("rescan"): at start, and when uevents were
 * lost. On failure the inventory is left as it was (empty at the first) and
 * the error is returned and kept in scan_error.
 */
int vfiod_registry_scan(struct vfiod_registry *devices);

/*
 * The kernel's uevent `action` for device `name` of `subsystem` ("pci" or
 * "mdev"; others are ignored): the device is read again (dropped, for
 * "remove" or when it can no longer be read) and a change is passed to
 * on_change. Returns 1 when the inventory changed, 0 when not (nothing to
 * see, another subsystem, a name that is not a device), -ENOMEM.
 */
int vfiod_registry_uevent(struct vfiod_registry *devices, const char *action, const char *subsystem,
                          const char *name);

/* vfiod bound or restored device `name` itself: as a uevent, action "managed". */
int vfiod_registry_refresh(struct vfiod_registry *devices, const char *name);

/* The inventory, borrowed: valid until the next change. */
const struct kvfio_pci_list *vfiod_registry_devices(struct vfiod_registry *devices);

/*
 * The members of IOMMU group `group` the inventory knows: *ret points at their
 * indexes into vfiod_registry_devices()->devs (valid until the next change);
 * returns how many (0 for an unknown group), or -ENOMEM.
 */
ssize_t vfiod_registry_group_index(struct vfiod_registry *devices, int group, const size_t **ret);

/*
 * kvfio_iommu_group_viable() on the inventory: the group's members, in
 * inventory order. -ENOENT: no device of the inventory is in the group.
 */
int vfiod_registry_viable(struct vfiod_registry *devices, int group,
                          struct kvfio_group_viability *ret);

/*
 * Paging: the index into vfiod_registry_devices()->devs of the first device
 * that sorts after `name` (a device name, present or not); 0 for "".
 * -EINVAL: name is neither a PCI address nor an mdev UUID.
 */
ssize_t vfiod_registry_after(struct vfiod_registry *devices, const char *name);
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
 * From the inventory: one device by name (a copy; -ENODEV when it has no such
 * device, -EINVAL for a malformed name), and a new list of the members of a
 * group (-ENOENT when it knows none; free with kvfio_pci_list_free()).
 */
int vfiod_registry_read(struct vfiod_registry *devices, const char *bdf, struct kvfio_pci_dev *ret);
int vfiod_registry_members(struct vfiod_registry *devices, int group, struct kvfio_pci_list **ret);
