/* SPDX-License-Identifier: MIT */
/*
 * A lease: one client's hold on one IOMMU group, attached to one of its
 * domains (GROUP: to none, domain NULL), in one mode.
 *
 * Concepts: the daemon keeps the group fd and a device fd for every member
 * of the group VFIO drives (kvfio_dev_is_vfio(): vfio-pci, its *_vfio_pci
 * variants, bound mdevs), each of which the policy must allow the peer, for
 * the whole lease; the client gets duplicates (DIRECT: container, group and
 * the acquired device; BROKERED: the device only). GROUP: the client gets
 * the group fd alone, attached to no container, and sets it up itself; the
 * daemon keeps its group fd and the members' names only (devs[].fd -EBADF).
 * The daemon assigns its own eventfds to each device's REQ index (and ERR
 * when the device has one): REQ becomes ReleaseRequested (KERNEL_REQUEST),
 * ERR DeviceError, for clients that handle events.
 *
 * Release, whatever the cause, is always this sequence:
 *   1. interrupts off on every index (kvfio_irq_disable) and every held
 *      eventfd closed;
 *   2. when it is the domain's last lease: BROKERED, unmap and munmap every
 *      daemon mapping; DIRECT, VFIO_UNMAP_ALL when the container has it;
 *   3. close the daemon's device fds, then unset the container: EBUSY means a
 *      client still holds a device fd: QUARANTINED (waits for the unset);
 *   4. close the daemon's group fd and open /dev/vfio/N again: EBUSY means
 *      someone still holds the group fd: QUARANTINED (waits for the open);
 *   5. FREE, once nobody holds the group: the next open of each device,
 *      which is its first, is its reset. vfio-pci resets a device at its
 *      first open (and fails the open when the device lock is taken);
 *      VFIO_DEVICE_FLAGS_RESET then says the reset worked, and the acquire
 *      resets a device without it itself (VFIO_DEVICE_RESET, or a hot reset
 *      when the device has none and the reset stays inside the group).
 *      A group with an mdev member, or one going back to its drivers
 *      (Managed=), is sanitized first: attached to a scratch container,
 *      every device opened, reset (the open's own where vfio-pci did it) and
 *      closed, detached.
 * No reset before that: until step 4 succeeds a client may still hold a
 * descriptor and use the device after any reset; the one that counts comes
 * when nobody else can touch it. (Closing the last fd of a vfio-pci device
 * resets it too, when the kernel can take the device lock.)
 * Quarantined groups are checked every VFIOD_QUARANTINE_RECHECK_MS, and when
 * an Acquire asks for one, and go on from the step they wait at.
 * The group's side of steps 3 to 5 (its states, where a quarantined group
 * waits, the re-open and the sanitize) is daemon/group.h; this module tells
 * the domain when a group leaves it.
 *
 * A revoke (admin, policy change, REQ) sends ReleaseRequested to a client
 * that handles events and releases after the grace period (LeaseRevoked
 * follows); a client without events is released at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "daemon/group.h"
#include "daemon/list.h"
#include "daemon/log.h"
#include "daemon/policy.h"
#include "kernel/device.h"
#include "proto/vfiod.pb-c.h"

struct vfiod_client;
struct vfiod_domain;
struct vfiod_server;

/* The PCI interrupt indexes a lease knows: INTx, MSI, MSI-X, ERR, REQ. */
#define VFIOD_N_IRQ_INDEXES 5
/* Indexes a client may set (INTx, MSI, MSI-X); ERR and REQ are the daemon's. */
#define VFIOD_N_CLIENT_IRQ_INDEXES 3

struct vfiod_lease_dev {
        struct vfiod_lease *lease;
        char bdf[KVFIO_NAME_MAX];
        int fd; /* the daemon's device fd (owned) */
        struct kvfio_device_info info;
        struct kvfio_irq_info irqs[VFIOD_N_IRQ_INDEXES]; /* count 0 = none */
        /* Client eventfds the kernel signals, per vector (owned; -1 = none). */
        int *trigger_fds[VFIOD_N_CLIENT_IRQ_INDEXES];
        int unmask_fds[VFIOD_N_CLIENT_IRQ_INDEXES]; /* UNMASK eventfd of vector 0 */
        /* The daemon's REQ / ERR eventfds (owned) and their watchers. */
        int req_fd, err_fd;
        ev_io req_io, err_io;
};

struct vfiod_lease {
        struct list link_client; /* in client->leases */
        struct list link_server; /* in server->leases */
        uint64_t id;
        struct vfiod_client *client;
        struct vfiod_domain *domain; /* NULL: a GROUP lease */
        struct vfiod_group *group;
        int group_id;
        int group_fd; /* owned; -1 for an IOMMUFD lease */
        int mode;     /* Vfiod__Mode */
        /*
         * Vfiod__Interface: LEGACY, or IOMMUFD: the lease holds the group
         * (no other lease of any member) but opens only the acquired
         * device, through its cdev (devs[0], /dev/vfio/devices/vfio<cdev>),
         * and no group fd: the kernel refuses a cdev bind while the group
         * is open. DIRECT hands the cdev out unbound (the client binds it
         * to the domain's iommufd, as QEMU does), BROKERED binds and
         * attaches it to the domain's IOAS first. On release the daemon
         * binds its copy if nobody did (so that the kernel counts it),
         * detaches it and closes it: the group is quarantined
         * (VFIOD_WAIT_CDEV) while any copy is still open.
         */
        int iface;
        int cdev;
        char device[KVFIO_NAME_MAX]; /* the device acquired */
        struct vfiod_lease_dev *devs;
        size_t n_devs;
        Vfiod__LeaseStatus status;
        ev_timer grace;
        Vfiod__ReleaseReason revoke_reason;
        char *revoke_detail;
        /* What the policy grants: the stricter of the rules of every device of the group. */
        char rule[64]; /* the rule that granted the acquired device */
        struct vfiod_grant grant;
        /*
         * DIRECT and GROUP: the holder's RLIMIT_MEMLOCK as vfiod raised it at the grant
         * (UINT64_MAX unlimited; 0 not set) or why it could not ("" otherwise).
         */
        uint64_t memlock_bytes;
        char memlock_error[128];
};

/*
 * Takes the lease out of its client's and the server's lists and frees it
 * with its device array and grant. Its fds must be closed (or moved) first.
 */
void vfiod_lease_unlink(struct vfiod_lease *lease);

/*
 * A new, unlinked ACTIVE lease of the client in domain d on group group_id,
 * device `device` (normalised), with no fds yet (group_fd -EBADF, no devs)
 * and an empty grant. NULL when out of memory. Used by acquire and by the
 * restore after a restart.
 */
struct vfiod_lease *vfiod_lease_alloc(struct vfiod_client *c, struct vfiod_domain *d, int group_id,
                                      int mode, const char *device);

/*
 * Acquire: checks the device, the group and the policy, takes (or creates,
 * domain_id 0) the domain, opens the group, attaches it, opens the devices,
 * arms REQ/ERR. iface: a Vfiod__Interface (UNSPECIFIED = LEGACY; ANY =
 * IOMMUFD when the device has a cdev and the policy allows it). On success
 * *ret is the new lease, linked to the client.
 */
int vfiod_lease_acquire(struct vfiod_client *client, const char *device, uint64_t domain_id,
                        int mode, int iface, struct vfiod_lease **ret, struct vfiod_error *err);

/*
 * What Acquire would grant client c for dev, one of list (the inventory,
 * vfiod_registry_devices()), as ListDevices shows it: false when the policy
 * shows the peer nothing of dev. Else *ret_modes: the modes
 * (VFIOD_MODE_BIT_*) the policy allows the peer on dev and on every other
 * VFIO member of its group (0 when they share none); *ret_managed: dev is on
 * another driver and a Managed=yes rule gives it (Acquire would bind it to
 * vfio-pci).
 */
bool vfiod_lease_offer(struct vfiod_client *c, const struct kvfio_pci_list *list,
                       const struct kvfio_pci_dev *dev, unsigned *ret_modes, bool *ret_managed);

/*
 * Runs the release sequence and frees the lease. Returns 0 when the group is
 * FREE again, 1 when it is QUARANTINED.
 */
int vfiod_lease_release(struct vfiod_lease *lease, const char *why);

/*
 * Asks for the lease back: ReleaseRequested and a grace timer when the client
 * handles events (and grace_ms > 0), else the release at once followed by
 * LeaseRevoked. detail may be NULL.
 */
void vfiod_lease_revoke(struct vfiod_lease *lease, Vfiod__ReleaseReason reason, const char *detail);

/*
 * Takes the lease away now, without a grace period (a device of it is gone):
 * the release, then LeaseRevoked to a client that handles events. Nothing
 * when the lease is already being released. detail may be NULL.
 */
void vfiod_lease_end(struct vfiod_lease *lease, Vfiod__ReleaseReason reason, const char *detail);

/*
 * Checks the lease against policy (a reload): true when the rules still
 * allow the peer every device of the group in the lease's mode and
 * interface; then the
 * lease takes the new rules' quotas and IRQ types.
 */
bool vfiod_lease_policy_check(struct vfiod_lease *lease, const struct vfiod_policy *policy);

/*
 * Assigns the daemon's own eventfds to the device's REQ and ERR indexes (when
 * it has them) and watches them; not fatal when it fails (logged). Acquire
 * does it; a restart (daemon/state.c) does it again for a kept device fd.
 */
void vfiod_lease_dev_arm_events(struct vfiod_lease_dev *dev);

/* The device of a lease by PCI address ("" or NULL = the acquired one). */
struct vfiod_lease_dev *vfiod_lease_find_dev(struct vfiod_lease *lease, const char *bdf);

/*
 * One SetIrqs as a lease device takes it: the data is NONE (no bools, no
 * fds), BOOL (bools[count]) or EVENTFD (fds[count], the eventfds for
 * vectors [start, start+count), -1 = de-assign).
 */
struct vfiod_irq_set {
        uint32_t index, start, count;
        uint32_t action; /* Vfiod__IrqAction */
        const uint8_t *bools;
        int *fds;
};

/*
 * SetIrqs on a device of the lease, on the client's behalf. On success the
 * fds of set are owned by the lease (the _take: each is -EBADF after), on
 * failure closed.
 */
int vfiod_lease_set_irqs_take(struct vfiod_lease_dev *dev, struct vfiod_irq_set *set,
                              struct vfiod_error *err);

/*
 * Resets a device of the lease: VFIO_DEVICE_RESET, or a bus hot reset when
 * the device has no reset of its own and the reset touches no other group.
 */
int vfiod_lease_reset_dev(struct vfiod_lease_dev *dev);

/*
 * Whether domain d may take a new lease or mapping: not while a group of a
 * released lease is still attached to it (quarantined because a client still
 * holds one of its device fds), since the kernel would map what comes next
 * for that device too. 0, or -EBUSY with the reason in err. Acquire and
 * MapDma ask it first; it holds whatever ended the lease (Release, Revoke, a
 * policy reload, REQ, a disconnect) and ends when that group leaves.
 */
int vfiod_lease_domain_usable(struct vfiod_server *server, const struct vfiod_domain *domain,
                              struct vfiod_error *err);

/*
 * What MapDma allows in domain d of client c: the stricter of the grants of
 * its leases. Returns 0 with *ret set (vfiod_grant_done() it) and
 * *ret_first the first of those leases (NULL: none), or -ENOMEM.
 */
int vfiod_lease_domain_grant(struct vfiod_client *c, const struct vfiod_domain *d,
                             struct vfiod_grant *ret, struct vfiod_lease **ret_first);

/* "0x100000-0x4fffff 0x8000000-0x8ffffff" (cut with "..."), "any IOVA" or "none", into buf. */
const char *vfiod_grant_windows_name(const struct vfiod_grant *grant, char *buf, size_t size);

/* A lease's effective grant as the protocol says it (LeaseGrant), with its storage. */
struct vfiod_grant_msg {
        Vfiod__LeaseGrant msg;
        Vfiod__IovaWindow *windows, **ptrs;
        uint32_t irq_counts[VFIOD_N_IRQ_INDEXES];
        struct vfiod_grant grant;
};

/*
 * Fills *ret for lease l: its rule, the quotas and windows of its domain's
 * grant (vfiod_lease_domain_grant()) with the per-client limits, its IRQ
 * types and its device's vectors per index. Free with vfiod_grant_msg_done().
 * Returns 0 or -ENOMEM.
 */
int vfiod_lease_grant_msg(struct vfiod_lease *l, struct vfiod_grant_msg *ret);
void vfiod_grant_msg_done(struct vfiod_grant_msg *m);

/* Checks the quarantined groups again; re-arms the server's timer while any is left. */
void vfiod_quarantine_check(struct vfiod_server *server);

/* ---- restart (daemon/state.h): a lease saves and loads itself ---------------------- */

struct vfiod_save;

/*
 * Writes an ACTIVE or asked-back lease: "lease", "bound", "dev", "irq" and
 * "unmask" lines and its fds (group-L, device-L-K, irq-..., unmask-...).
 */
void vfiod_lease_save(const struct vfiod_lease *lease, struct vfiod_save *sv);
/* A restored lease: logged, checked against the policy in force, asked back if it was. */
void vfiod_lease_restored(struct vfiod_lease *lease);
/*
 * A planned stop that keeps the fd store: closes the lease's fds and frees it
 * without the release sequence (no ioctl, no driver given back).
 */
void vfiod_lease_abandon(struct vfiod_lease *lease);
