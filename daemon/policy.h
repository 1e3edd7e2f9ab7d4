/* SPDX-License-Identifier: MIT */
/*
 * The configuration: who may lease which device, how, with which quotas; who
 * is admin; the daemon's limits.
 *
 * Concepts: INI files (libinih), by default /etc/vfiod/vfiod.conf and then
 * the drop-ins, the files named *.conf in /etc/vfiod/vfiod.conf.d, in lexical
 * order (the drop-in folder is always the main file's path plus ".d"):
 *
 *   [Daemon]
 *   AdminUsers=alice 1001          names or uids (root is always admin)
 *   AdminGroups=wheel              names or gids
 *   MaxLeasesPerClient=4           any key of daemon/limits.h
 *
 *   [Device gpu0]                  one rule; NAME is free text
 *   Match=0000:01:00.0             PCI addresses          \  at least one;
 *   MatchVendor=10de:* 8086:1521   vendor:device, * = any  | a device matches
 *   MatchClass=0x0300 0x02         class code prefix       | every kind given,
 *   MatchGroup=12                  IOMMU group numbers    /  any term of each
 *   Users=qemu 1000                names or uids          \  who: any of them
 *   Groups=kvm                     names or gids          /
 *   Units=vm@*.service             fnmatch globs          \  where: any of them
 *   Slices=machine.slice           fnmatch globs          /
 *   Modes=direct brokered group    default: all three
 *   MaxPinnedBytes=1G              brokered: MapDma quota of the domain; direct,
 *                                  group: the holder's RLIMIT_MEMLOCK, raised
 *                                  at the grant
 *   MaxPinnedBytesPerUser=4G       brokered MapDma quota of one uid under the rule
 *   MaxMappings=64                 brokered MapDma quota of the domain
 *   IovaWindows=0x0-0xfffffff      brokered MapDma IOVAs allowed (page-aligned)
 *   IrqTypes=msi msix              SetIrqs allowed (default: intx msi msix)
 *   Managed=yes                    vfiod binds the group to vfio-pci at Acquire
 *
 * A rule names a peer when the peer is one of who (if the rule says who)
 * and runs in one of where (if the rule says where); a rule that says
 * neither names nobody.
 *
 * Deny by default: root is not special for devices. Of the rules that
 * match a device and name the peer, only the most specific count: a rule
 * with Match= beats one with MatchGroup=, which beats MatchVendor=, which
 * beats MatchClass= (a rule ranks by its most specific key). Among those,
 * rules add up: the modes a peer has on a device are those of each of them;
 * the rule that governs a lease (quotas, IRQ types, Managed=) is the first
 * of them, in file order, that allows the mode.
 *
 * Within one file a [Device NAME] appears once and a repeated list key
 * appends; a later file's [Device NAME] with a NAME already seen overrides
 * that rule key by key: each key it gives replaces the earlier value, the
 * others stay. An empty value (Users=) empties a list. [Daemon] works the
 * same way. Unknown sections or keys, bad values, unknown users or groups
 * and syntax errors are reported as "FILE:LINE: message" and make the whole
 * configuration invalid.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "daemon/limits.h"
#include "daemon/log.h"
#include "kernel/sysfs.h"

#define VFIOD_DEFAULT_CONFIG "/etc/vfiod/vfiod.conf"

/* Mode bits: 1 << Vfiod__Mode value. */
#define VFIOD_MODE_BIT_DIRECT   (1u << 1)
#define VFIOD_MODE_BIT_BROKERED (1u << 2)
#define VFIOD_MODE_BIT_GROUP    (1u << 3)
#define VFIOD_MODE_BITS_ALL     (VFIOD_MODE_BIT_DIRECT | VFIOD_MODE_BIT_BROKERED | VFIOD_MODE_BIT_GROUP)
/* The modes whose holder maps DMA itself, against its own RLIMIT_MEMLOCK. */
#define VFIOD_MODE_BITS_SELF_PINNED (VFIOD_MODE_BIT_DIRECT | VFIOD_MODE_BIT_GROUP)

/* IRQ type bits: 1 << VFIO_PCI_*_IRQ_INDEX. */
#define VFIOD_IRQ_BIT_INTX (1u << 0)
#define VFIOD_IRQ_BIT_MSI  (1u << 1)
#define VFIOD_IRQ_BIT_MSIX (1u << 2)
#define VFIOD_IRQ_BITS_ALL (VFIOD_IRQ_BIT_INTX | VFIOD_IRQ_BIT_MSI | VFIOD_IRQ_BIT_MSIX)

/* "No quota" for the per-rule quotas. */
#define VFIOD_NO_QUOTA_BYTES    UINT64_MAX
#define VFIOD_NO_QUOTA_MAPPINGS UINT32_MAX

/* An IOVA window: [first, last], both inclusive. */
struct vfiod_window {
        uint64_t first, last;
};

/* A vendor:device term; -1 = any. */
struct vfiod_vendor_match {
        int32_t vendor, device;
};

/* A class prefix: the top `digits` hex digits (2, 4 or 6) of the 24-bit class. */
struct vfiod_class_match {
        uint32_t value;
        unsigned digits;
};

/* What a grant allows beyond the mode: the quotas and the rest. */
struct vfiod_grant {
        uint64_t max_pinned_bytes;          /* VFIOD_NO_QUOTA_BYTES = none */
        uint64_t max_pinned_bytes_per_user; /* VFIOD_NO_QUOTA_BYTES = none */
        uint32_t max_mappings;              /* VFIOD_NO_QUOTA_MAPPINGS = none */
        bool has_windows;                   /* false = any IOVA the IOMMU takes */
        struct vfiod_window *windows;
        size_t n_windows;
        unsigned irq_types; /* VFIOD_IRQ_BIT_* */
        bool managed;
        /* The rule each restriction comes from (for the reasons of refusals). */
        char pinned_rule[64], mappings_rule[64], windows_rule[64], irq_rule[64];
        char user_pinned_rule[64];
};

struct vfiod_rule {
        char *name;
        char *file;    /* where its [Device NAME] first appeared */
        unsigned line; /* of that header */
        char **match;  /* normalised PCI addresses */
        size_t n_match;
        struct vfiod_vendor_match *vendors;
        size_t n_vendors;
        struct vfiod_class_match *classes;
        size_t n_classes;
        int *iommu_groups;
        size_t n_iommu_groups;
        uid_t *users;
        size_t n_users;
        gid_t *groups;
        size_t n_groups;
        char **units; /* fnmatch globs */
        size_t n_units;
        char **slices; /* fnmatch globs */
        size_t n_slices;
        unsigned modes; /* VFIOD_MODE_BIT_*; 0 while parsing = not given */
        struct vfiod_grant grant;
        unsigned set_in[32]; /* parsing: 1 + index of the file that last set each key */
        /* Where each key was last set: 1 + index in policy->files (0 = not set), line. */
        unsigned key_file[32], key_line[32];
        bool bad_match, bad_windows; /* parsing: a term of these keys was refused */
};

struct vfiod_policy {
        char *path; /* the main file; NULL for the empty policy */
        size_t n_files;
        char **files; /* every file read, in order */
        struct vfiod_rule *rules;
        size_t n_rules;
        uid_t *admin_users;
        size_t n_admin_users;
        gid_t *admin_groups;
        size_t n_admin_groups;
        struct vfiod_config_limits limits;
};

/* A list of "FILE:LINE: message" strings. */
struct vfiod_errors {
        char **lines;
        size_t n;
};

void vfiod_errors_clear(struct vfiod_errors *errors);

/* The empty policy: no rule (nobody gets anything), default limits. */
int vfiod_policy_new(struct vfiod_policy **ret);

/*
 * Parses the file at path, then the drop-ins (*.conf in path.d) in lexical order.
 * Returns 0 and a new policy in *ret, or a negative errno with every problem
 * appended to errors (which may be NULL): -EINVAL: a file has errors;
 * -ENOENT etc.: the main file cannot be opened (when missing_ok and it does
 * not exist: as if it were empty; the drop-ins are still read).
 */
int vfiod_policy_load(const char *path, bool missing_ok, struct vfiod_policy **ret,
                      struct vfiod_errors *errors);

void vfiod_policy_free(struct vfiod_policy *policy);

/* True when the rule matches the device (every kind of Match key it has). */
bool vfiod_rule_matches(const struct vfiod_rule *rule, const struct kvfio_pci_dev *dev);
/* True when the rule names the peer: who (Users=, Groups=) and where (Units=, Slices=). */
bool vfiod_rule_names(const struct vfiod_rule *rule, const struct vfiod_peer *peer);

/* The modes (VFIOD_MODE_BIT_*) the most specific rules grant peer on dev; 0 = denied. */
unsigned vfiod_policy_modes(const struct vfiod_policy *policy, const struct vfiod_peer *peer,
                            const struct kvfio_pci_dev *dev);

/*
 * The rule that grants peer dev in mode (a VFIOD_MODE_BIT_*): the first in
 * order of the most specific rules that name peer. NULL = denied; then, when reason is not NULL, a
 * reason for the peer: the rules that name the peer and what they allow, or "no rule grants you
 * ..." (never other peers' rules).
 */
const struct vfiod_rule *vfiod_policy_grant(const struct vfiod_policy *policy,
                                            const struct vfiod_peer *peer,
                                            const struct kvfio_pci_dev *dev, unsigned mode,
                                            char *reason, size_t reason_size);

/* Root, or named by AdminUsers=/AdminGroups=. */
bool vfiod_policy_is_admin(const struct vfiod_policy *policy, const struct vfiod_peer *peer);

/* The names of the modes, space-separated ("direct group"), or "none": static strings. */
const char *vfiod_modes_name(unsigned modes);

/* ---- grants (what a lease keeps of its rules) -------------------------------------- */

/* No quota, every IRQ type, not managed. */
void vfiod_grant_init(struct vfiod_grant *grant);
void vfiod_grant_done(struct vfiod_grant *grant);
/* *into = the stricter of both (min quotas, common IRQ types, window intersection). */
int vfiod_grant_narrow(struct vfiod_grant *into, const struct vfiod_grant *with);
/* True when [iova, iova + size) lies inside one window (or there are none). */
bool vfiod_grant_iova_ok(const struct vfiod_grant *grant, uint64_t iova, uint64_t size);
/* "intx msi msix", "none", ...: written to buf. */
const char *vfiod_irq_types_name(unsigned types, char *buf, size_t size);

/*
 * What a valid policy probably does not mean, on the devices of list:
 * rules that widen others for the same device and peer, rules covering part
 * of an IOMMU group or no device, quota keys the rule's modes never use.
 * Appends "warning: FILE:LINE: message" lines to warnings.
 */
void vfiod_policy_warnings(const struct vfiod_policy *policy, const struct kvfio_pci_list *list,
                           struct vfiod_errors *warnings);

/*
 * --check-config: prints every rule (file:line, the condition it grants on,
 * modes, quotas; a key set in another file than the rule's header with that
 * file:line) and the devices under sysfs_root it matches, then the admins,
 * the limits and the warnings.
 */
void vfiod_policy_print(const struct vfiod_policy *policy, const char *sysfs_root, FILE *out);
