/* SPDX-License-Identifier: MIT */
/*
 * An IOMMU group's life in the daemon, from its lease to FREE again.
 *
 * Concepts: the registry keeps an entry for every group that is not FREE.
 *
 *   FREE --acquire--> LEASED --release--> RELEASING --+--> FREE
 *                                                      |
 *                         QUARANTINED <--(a fd is still held elsewhere)
 *                              |  ^
 *                              v  | (it failed)
 *                          SANITIZING ----------------> FREE
 *
 * A release detaches the group (vfiod_group_quarantine()); whoever still
 * holds one of its fds keeps it QUARANTINED, waiting at one step (enum
 * vfiod_group_wait). vfiod_group_detach() and vfiod_group_settle() take it on
 * from there: on release, on a timer (VFIOD_QUARANTINE_RECHECK_MS) and when
 * an Acquire asks for it. Settling re-opens /dev/vfio/N, sanitizes the group
 * when its next device open would not reset it (vfiod_group_needs_sanitize())
 * and frees the entry, giving Managed=yes devices back to their drivers.
 * The domains a quarantined group is still attached to are the lease's
 * business (daemon/lease.c): the group only names the domain's id.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/devices.h"
#include "daemon/list.h"
#include "kernel/device.h"
#include "kernel/sysfs.h"

struct vfiod_lease;

enum vfiod_group_state {
        VFIOD_GROUP_FREE,        /* no entry in the registry */
        VFIOD_GROUP_LEASED,      /* ->lease holds it */
        VFIOD_GROUP_RELEASING,   /* its lease runs the release sequence */
        VFIOD_GROUP_QUARANTINED, /* released, waiting at ->wait */
        VFIOD_GROUP_SANITIZING,  /* nobody holds it: reset through a scratch container */
        _VFIOD_GROUP_STATE_MAX,
};

/* "free", "leased", "releasing", "quarantined", "sanitizing"; NULL when out of range. */
const char *vfiod_group_state_to_string(enum vfiod_group_state state);

/* What a quarantined group waits for. */
enum vfiod_quarantine_wait {
        VFIOD_WAIT_UNSET,    /* VFIO_GROUP_UNSET_CONTAINER said EBUSY: a device fd is open */
        VFIOD_WAIT_REOPEN,   /* re-opening /dev/vfio/N said EBUSY: a group fd is open */
        VFIOD_WAIT_SANITIZE, /* sanitizing failed; try again */
        /*
         * An IOMMUFD lease's device cdev is still bound (a client holds a copy
         * of it): the group cannot be opened (-EBUSY) and the device can still
         * reach the domain's IOAS (it may attach to it again).
         */
        VFIOD_WAIT_CDEV,
};

struct vfiod_group {
        struct list link; /* in registry::groups */
        int id;
        enum vfiod_group_state state;
        struct vfiod_lease *lease; /* LEASED, RELEASING */
        /* QUARANTINED: */
        enum vfiod_quarantine_wait wait;
        int fd;              /* VFIOD_WAIT_UNSET: the daemon's group fd (owned), else -1 */
        uint64_t domain;     /* VFIOD_WAIT_UNSET, _CDEV: the domain it still reaches, else 0 */
        uint64_t last_lease; /* the lease it came from, for logs */
        unsigned checks;     /* re-checks so far */
        /* Managed=yes: the devices vfiod bound to vfio-pci, restored once the group is FREE. */
        struct vfiod_bound *bound;
        size_t n_bound;
};

/* The entry of group id, or NULL when it is FREE. */
struct vfiod_group *vfiod_registry_group(struct vfiod_registry *devices, int id);
/* The entry of group id, created FREE if missing (caller sets its state). */
int vfiod_registry_group_get(struct vfiod_registry *devices, int id, struct vfiod_group **ret);
/* Forgets the entry (the group is FREE); closes its fd. NULL is fine. */
void vfiod_registry_group_free(struct vfiod_group *group);

/*
 * The quarantined group a release left attached to domain `domain`
 * (VFIOD_WAIT_UNSET: a client still holds one of its device fds), or NULL.
 */
struct vfiod_group *vfiod_registry_attached_to(struct vfiod_registry *devices, uint64_t domain);

enum vfiod_group_state vfiod_registry_group_state(struct vfiod_registry *devices, int id);
size_t vfiod_registry_count(struct vfiod_registry *devices, enum vfiod_group_state state);

/* Release begins: LEASED -> RELEASING. */
void vfiod_group_release_begin(struct vfiod_group *group);

/*
 * Release step 3 is done: RELEASING -> QUARANTINED, no lease, for lease
 * `lease_id`. unset_r is what VFIO_GROUP_UNSET_CONTAINER said: -EBUSY (a
 * device fd is open) makes it wait for the unset, attached to `domain`, and
 * takes *group_fd (the daemon's group fd moves to the entry); anything else
 * makes it wait for the re-open, and *group_fd stays the caller's.
 */
void vfiod_group_quarantine(struct vfiod_group *group, uint64_t lease_id, int unset_r,
                            int *group_fd, uint64_t domain);

/*
 * Release step 3 of an IOMMUFD lease is done (its device fds closed):
 * RELEASING -> QUARANTINED waiting at VFIOD_WAIT_CDEV in `domain`, until
 * vfiod_group_detach() finds no cdev bound.
 */
void vfiod_group_quarantine_cdev(struct vfiod_group *group, uint64_t lease_id, uint64_t domain);

/*
 * VFIOD_WAIT_UNSET: tries the unset again. 1 while a device fd is still
 * open; else 0 and the group waits for the re-open, out of its domain (the
 * caller tells the domain, whose id was in group->domain).
 */
int vfiod_group_detach(struct vfiod_group *group);
/*
 * VFIOD_WAIT_CDEV: whether a cdev of the group is still bound: opens the
 * group (vfio_dir/N), which the kernel refuses (-EBUSY) while one is. 1
 * while it is; else 0 and the group waits for the re-open (the caller tells
 * the domain, whose id was in group->domain).
 */
int vfiod_group_cdev_detach(struct vfiod_group *group, const char *vfio_dir);

/*
 * Takes a group out of its domain on from there: re-opens it, sanitizes it
 * when it needs it, and frees the entry. Returns 0 when it is FREE (the
 * entry is gone), 1 when it stays QUARANTINED.
 */
int vfiod_group_settle(struct vfiod_registry *devices, struct vfiod_group *group);

/*
 * Whether a group nobody holds any more needs the sanitize before it is FREE
 * (see group.c). members: the group's devices.
 */
bool vfiod_group_needs_sanitize(const struct vfiod_group *group,
                                const struct kvfio_pci_list *members);

/*
 * Sanitizes group `id` (its VFIO members among `members`) through a scratch
 * container; 0 = FREE, <0 = not (reason logged).
 */
int vfiod_group_sanitize(struct vfiod_registry *devices, int id, int group_fd,
                         const struct kvfio_pci_list *members);

/*
 * Resets one device of group `group`: VFIO_DEVICE_RESET, or, when the device
 * has no reset of its own, a bus hot reset: through the group (whose fd
 * group_fd is) if every device it affects is in the group; or, for a device
 * opened by its cdev and bound to an iommufd (group_fd < 0), through that
 * iommufd with no group fd, if the iommufd owns every device it affects.
 * Returns 0 or the first error.
 */
int vfiod_group_reset_device(int device_fd, const char *bdf, int group, int group_fd);

/*
 * Whether VFIO drives device m with vfio-pci itself, the only driver whose
 * open is trusted to reset (an mdev's open is its vendor driver's).
 */
bool vfiod_dev_plain_vfio_pci(const struct kvfio_pci_dev *m);

/*
 * Whether the open that gave a device fd reset the device: vfio-pci resets a
 * device at its first open (vfio_pci_core_enable) and fails the open when
 * the device lock is taken; VFIO_DEVICE_FLAGS_RESET (info, read after that
 * open) then says the reset worked.
 */
bool vfiod_dev_reset_at_open(const struct kvfio_pci_dev *m, const struct kvfio_device_info *info);
