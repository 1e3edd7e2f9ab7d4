/* SPDX-License-Identifier: MIT */
/*
 * The registry of PCI devices and IOMMU groups and what vfiod did with them.
 *
 * Concepts: devices are not cached: every ListDevices and Acquire reads sysfs
 * again (under the --sysfs-root prefix), so binding changes are seen at once.
 * What vfiod must remember is per IOMMU group: LEASED (to which lease) or
 * QUARANTINED (released, but someone may still hold one of its fds, or it
 * could not be sanitized yet). A group with no entry is FREE. Quarantined
 * groups are never handed out; lease.c checks them again on a timer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/list.h"
#include "kernel/sysfs.h"

struct vfiod_lease;

/* A device vfiod bound to vfio-pci itself (Managed=yes) and the driver it had. */
struct vfiod_bound {
        char bdf[KVFIO_NAME_MAX];
        char prev_driver[KVFIO_DRIVER_MAX];
};

enum vfiod_group_state {
        VFIOD_GROUP_FREE,
        VFIOD_GROUP_LEASED,
        VFIOD_GROUP_QUARANTINED,
};

/* What a quarantined group waits for. */
enum vfiod_quarantine_wait {
        VFIOD_WAIT_UNSET,    /* VFIO_GROUP_UNSET_CONTAINER said EBUSY: a device fd is open */
        VFIOD_WAIT_REOPEN,   /* re-opening /dev/vfio/N said EBUSY: a group fd is open */
        VFIOD_WAIT_SANITIZE, /* sanitizing failed; try again */
};

struct vfiod_group {
        struct list link;
        int id;
        enum vfiod_group_state state;
        struct vfiod_lease *lease; /* LEASED */
        /* QUARANTINED: */
        enum vfiod_quarantine_wait wait;
        int fd;              /* VFIOD_WAIT_UNSET: the daemon's group fd (owned), else -1 */
        uint64_t domain;     /* VFIOD_WAIT_UNSET: the domain it is still attached to, else 0 */
        uint64_t last_lease; /* the lease it came from, for logs */
        unsigned checks;     /* re-checks so far */
        /* Managed=yes: the devices vfiod bound to vfio-pci, restored once the group is FREE. */
        struct vfiod_bound *bound;
        size_t n_bound;
};

struct vfiod_registry {
        char *sysfs_root;     /* discovery root, "/" in production */
        char *vfio_dir;       /* /dev/vfio */
        char *container_path; /* <vfio_dir>/vfio */
        struct list groups;   /* struct vfiod_group that are not FREE */
};

int vfiod_registry_new(const char *sysfs_root, const char *vfio_dir, struct vfiod_registry **ret);
/* Closes the fds of quarantined groups. NULL is fine. */
void vfiod_registry_free(struct vfiod_registry *devices);

/* The entry of group id, or NULL when it is FREE. */
struct vfiod_group *vfiod_registry_group(struct vfiod_registry *devices, int id);
/* The entry of group id, created FREE if missing (caller sets its state). */
int vfiod_registry_group_get(struct vfiod_registry *devices, int id, struct vfiod_group **ret);
/* Forgets the entry (the group is FREE); closes its fd. NULL is fine. */
void vfiod_registry_group_free(struct vfiod_group *group);

/*
 * Gives the devices in bound[] back to the drivers they had
 * (kvfio_pci_restore(), which blocks while a device fd is open: call it only
 * when the group is out of every container), logs each, and frees bound.
 */
void vfiod_registry_restore(struct vfiod_registry *devices, int group, struct vfiod_bound *bound,
                            size_t n_bound);

/*
 * The quarantined group a release left attached to domain `domain`
 * (VFIOD_WAIT_UNSET: a client still holds one of its device fds), or NULL.
 */
struct vfiod_group *vfiod_registry_attached_to(struct vfiod_registry *devices, uint64_t domain);

enum vfiod_group_state vfiod_registry_group_state(struct vfiod_registry *devices, int id);
size_t vfiod_registry_count(struct vfiod_registry *devices, enum vfiod_group_state state);

/*
 * Thin wrappers over kernel/sysfs.h with the registry's root; discover and
 * read take PCI devices and mdevs (kvfio_dev_discover(), kvfio_dev_read()).
 */
int vfiod_registry_discover(struct vfiod_registry *devices, struct kvfio_pci_list **ret);
int vfiod_registry_read(struct vfiod_registry *devices, const char *bdf, struct kvfio_pci_dev *ret);
int vfiod_registry_members(struct vfiod_registry *devices, int group, struct kvfio_pci_list **ret);
