/* SPDX-License-Identifier: MIT */
/*
 * The configuration: who may lease which device, who is admin, the limits.
 *
 * Concepts: one INI file (libinih), by default /etc/vfiod/vfiod.conf:
 *
 *   [Daemon]
 *   AdminUsers=alice 1001          names or uids (root is always admin)
 *   AdminGroups=wheel              names or gids
 *   MaxLeasesPerClient=4           any key of daemon/limits.h
 *
 *   [Device gpu0]                  one rule; NAME is free text, unique
 *   Match=0000:01:00.0 0000:01:00.1  PCI addresses (required)
 *   Users=qemu 1000                names or uids
 *   Groups=kvm                     names or gids: primary or supplementary
 *   Modes=direct brokered          default: both
 *
 * Deny by default: a peer may have a device only when a rule matching the
 * device names the peer's uid or one of its groups; root is not special
 * here. Repeating a key appends to it. Unknown sections or keys, bad values,
 * unknown users or groups and syntax errors are reported as
 * "FILE:LINE: message" and make the whole file invalid.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon/limits.h"
#include "daemon/log.h"

#define VFIOD_DEFAULT_CONFIG "/etc/vfiod/vfiod.conf"

/* Mode bits: 1 << Vfiod__Mode value. */
#define VFIOD_MODE_BIT_DIRECT   (1u << 1)
#define VFIOD_MODE_BIT_BROKERED (1u << 2)
#define VFIOD_MODE_BITS_ALL     (VFIOD_MODE_BIT_DIRECT | VFIOD_MODE_BIT_BROKERED)

struct vfiod_rule {
        char *name;
        unsigned line; /* of its [Device NAME] header */
        char **match;  /* normalised PCI addresses */
        size_t n_match;
        uid_t *users;
        size_t n_users;
        gid_t *groups;
        size_t n_groups;
        unsigned modes; /* VFIOD_MODE_BIT_* */
};

struct vfiod_policy {
        char *path; /* the file it came from; NULL for the empty policy */
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
 * Parses the file at path. Returns 0 and a new policy in *ret, or a negative
 * errno with every problem appended to errors (which may be NULL):
 * -EINVAL: the file has errors; -ENOENT etc.: it cannot be opened (when
 * missing_ok and the file does not exist: the empty policy and 0).
 */
int vfiod_policy_load(const char *path, bool missing_ok, struct vfiod_policy **ret,
                      struct vfiod_errors *errors);

void vfiod_policy_free(struct vfiod_policy *policy);

/*
 * The modes (VFIOD_MODE_BIT_*) the rules grant peer on the device at bdf
 * (normalised); 0 = denied.
 */
unsigned vfiod_policy_modes(const struct vfiod_policy *policy, const struct vfiod_peer *peer,
                            const char *bdf);

/* Root, or named by AdminUsers=/AdminGroups=. */
bool vfiod_policy_is_admin(const struct vfiod_policy *policy, const struct vfiod_peer *peer);

/* "direct", "brokered", "direct brokered", "none": static strings. */
const char *vfiod_modes_name(unsigned modes);
