/* SPDX-License-Identifier: MIT */
#include "daemon/policy.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "kernel/sysfs.h"
#include "proto/macro.h"

void vfiod_errors_clear(struct vfiod_errors *errors)
{
        if (!errors)
                return;
        for (size_t i = 0; i < errors->n; i++)
                free(errors->lines[i]);
        free(errors->lines);
        errors->lines = NULL;
        errors->n = 0;
}

static void errors_add(struct vfiod_errors *errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void errors_add(struct vfiod_errors *errors, const char *fmt, ...)
{
        char *line = NULL, **l;
        va_list ap;

        if (!errors)
                return;
        va_start(ap, fmt);
        if (vasprintf(&line, fmt, ap) < 0)
                line = NULL;
        va_end(ap);
        if (!line)
                return;
        l = realloc(errors->lines, (errors->n + 1) * sizeof(*l));
        if (!l) {
                free(line);
                return;
        }
        errors->lines = l;
        errors->lines[errors->n++] = line;
}

static void rule_done(struct vfiod_rule *r)
{
        free(r->name);
        for (size_t i = 0; i < r->n_match; i++)
                free(r->match[i]);
        free(r->match);
        free(r->users);
        free(r->groups);
}

void vfiod_policy_free(struct vfiod_policy *policy)
{
        if (!policy)
                return;
        for (size_t i = 0; i < policy->n_rules; i++)
                rule_done(&policy->rules[i]);
        free(policy->rules);
        free(policy->admin_users);
        free(policy->admin_groups);
        free(policy->path);
        free(policy);
}

int vfiod_policy_new(struct vfiod_policy **ret)
{
        struct vfiod_policy *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->limits = VFIOD_LIMITS_DEFAULT;
        *ret = p;
        return 0;
}

/* ---- parsing ------------------------------------------------------------ */

enum section_kind { SECTION_NONE, SECTION_DAEMON, SECTION_DEVICE, SECTION_BAD };

struct parser {
        const char *path;
        FILE *f;
        unsigned line; /* of the line inih is handling */
        struct vfiod_policy *policy;
        struct vfiod_errors *errors;
        size_t n_errors;
        enum section_kind kind;
        struct vfiod_rule *rule; /* current [Device] */
};

static void perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct parser *p, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        p->n_errors++;
        errors_add(p->errors, "%s:%u: %s", p->path, p->line, msg);
}

static char *strip(char *s)
{
        char *e;

        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

/* A section header starts here: open the section so empty ones are checked too. */
static void section_begin(struct parser *p, char *text)
{
        char *end = strchr(text, ']');
        char *name;

        p->rule = NULL;
        p->kind = SECTION_BAD;
        if (!end)
                return; /* inih reports the syntax error */
        *end = '\0';
        name = strip(text + 1);
        if (strcmp(name, "Daemon") == 0) {
                p->kind = SECTION_DAEMON;
                return;
        }
        if (strcmp(name, "Device") == 0) {
                perr(p, "[Device] needs a name: [Device NAME]");
                return;
        }
        if (strncmp(name, "Device", 6) == 0 && (name[6] == ' ' || name[6] == '\t')) {
                char *rname = strip(name + 6);
                struct vfiod_rule *rules;

                if (!*rname) {
                        perr(p, "[Device] needs a name: [Device NAME]");
                        return;
                }
                for (size_t i = 0; i < p->policy->n_rules; i++)
                        if (strcmp(p->policy->rules[i].name, rname) == 0) {
                                perr(p, "duplicate section [Device %s] (first at line %u)", rname,
                                     p->policy->rules[i].line);
                                return;
                        }
                rules = realloc(p->policy->rules, (p->policy->n_rules + 1) * sizeof(*rules));
                if (!rules) {
                        perr(p, "out of memory");
                        return;
                }
                p->policy->rules = rules;
                p->rule = &rules[p->policy->n_rules];
                *p->rule = (struct vfiod_rule){.line = p->line, .modes = 0};
                p->rule->name = strdup(rname);
                if (!p->rule->name) {
                        perr(p, "out of memory");
                        p->rule = NULL;
                        return;
                }
                p->policy->n_rules++;
                p->kind = SECTION_DEVICE;
                return;
        }
        perr(p, "unknown section [%s]", name);
}

/* Reader for inih: counts lines and sees section headers first. */
static char *reader(char *str, int num, void *stream)
{
        struct parser *p = stream;
        char *s;

        if (!fgets(str, num, p->f))
                return NULL;
        p->line++;
        s = str;
        while (isspace((unsigned char)*s))
                s++;
        if (*s == '[') {
                char copy[512];

                snprintf(copy, sizeof(copy), "%s", s);
                section_begin(p, copy);
        }
        return str;
}

static int parse_u64(const char *v, bool bytes, uint64_t *ret)
{
        char *end;
        unsigned long long n;
        uint64_t mul = 1;

        if (!*v || !isdigit((unsigned char)*v))
                return -EINVAL;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno)
                return -errno;
        if (bytes && *end) {
                switch (*end) {
                case 'K':
                        mul = 1ull << 10;
                        break;
                case 'M':
                        mul = 1ull << 20;
                        break;
                case 'G':
                        mul = 1ull << 30;
                        break;
                case 'T':
                        mul = 1ull << 40;
                        break;
                default:
                        return -EINVAL;
                }
                end++;
        }
        if (*end)
                return -EINVAL;
        if (n > UINT64_MAX / mul)
                return -ERANGE;
        *ret = n * mul;
        return 0;
}

static int parse_id(const char *tok, bool user, uint32_t *ret)
{
        uint64_t n;

        if (parse_u64(tok, false, &n) == 0) {
                if (n >= UINT32_MAX) /* (uid_t)-1 is "no id" */
                        return -ERANGE;
                *ret = (uint32_t)n;
                return 0;
        }
        if (user) {
                struct passwd *pw = getpwnam(tok);
                if (!pw)
                        return -ENOENT;
                *ret = pw->pw_uid;
        } else {
                struct group *gr = getgrnam(tok);
                if (!gr)
                        return -ENOENT;
                *ret = gr->gr_gid;
        }
        return 0;
}

/* Appends the ids of a space-separated list to *ids. */
static void parse_ids(struct parser *p, const char *key, const char *value, bool user,
                      uint32_t **ids, size_t *n)
{
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;

        if (!copy) {
                perr(p, "out of memory");
                return;
        }
        for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
                uint32_t id, *a;
                int r = parse_id(tok, user, &id);

                if (r < 0) {
                        perr(p, "%s=: %s '%s'", key,
                             r == -ENOENT ? (user ? "unknown user" : "unknown group")
                                          : "bad number",
                             tok);
                        continue;
                }
                a = realloc(*ids, (*n + 1) * sizeof(*a));
                if (!a) {
                        perr(p, "out of memory");
                        return;
                }
                *ids = a;
                a[(*n)++] = id;
        }
}

static void parse_match(struct parser *p, const char *value)
{
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;
        bool any = false;

        if (!copy) {
                perr(p, "out of memory");
                return;
        }
        for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
                char bdf[KVFIO_BDF_MAX];
                char **m;

                any = true;
                if (kvfio_pci_addr_normalize(tok, bdf) < 0) {
                        perr(p, "Match=: not a PCI address '%s'", tok);
                        continue;
                }
                m = realloc(p->rule->match, (p->rule->n_match + 1) * sizeof(*m));
                if (!m) {
                        perr(p, "out of memory");
                        return;
                }
                p->rule->match = m;
                m[p->rule->n_match] = strdup(bdf);
                if (!m[p->rule->n_match]) {
                        perr(p, "out of memory");
                        return;
                }
                p->rule->n_match++;
        }
        if (!any)
                perr(p, "Match= is empty");
}

static void parse_modes(struct parser *p, const char *value)
{
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;

        if (!copy) {
                perr(p, "out of memory");
                return;
        }
        for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
                if (strcmp(tok, "direct") == 0)
                        p->rule->modes |= VFIOD_MODE_BIT_DIRECT;
                else if (strcmp(tok, "brokered") == 0)
                        p->rule->modes |= VFIOD_MODE_BIT_BROKERED;
                else
                        perr(p, "Modes=: unknown mode '%s' (direct, brokered)", tok);
        }
}

struct limit_key {
        const char *key;
        size_t offset;
        bool is64, bytes;
        uint64_t min, max;
};

#define LIMIT32(k, f, lo, hi)                                                    \
        {                                                                        \
                k, offsetof(struct vfiod_config_limits, f), false, false, lo, hi \
        }

static const struct limit_key limit_keys[] = {
    LIMIT32("MaxConnections", max_connections, 1, 65536),
    LIMIT32("MaxDomainsPerClient", max_domains_per_client, 1, 4096),
    LIMIT32("MaxLeasesPerClient", max_leases_per_client, 1, 4096),
    LIMIT32("MaxMappingsPerClient", max_mappings_per_client, 1, 1u << 20),
    {"MaxPinnedBytesPerClient", offsetof(struct vfiod_config_limits, max_pinned_bytes_per_client),
     true, true, 4096, UINT64_MAX},
    LIMIT32("MaxRangesPerRequest", max_ranges_per_request, 1, 4096),
    LIMIT32("MaxFdsPerMessage", max_fds_per_message, 1, 253),
    LIMIT32("MaxQueuedBytesPerClient", max_queued_bytes_per_client, 65536, 1u << 30),
    LIMIT32("MaxQueuedMessagesPerClient", max_queued_messages_per_client, 1, 1u << 20),
    LIMIT32("MaxRequestsInFlight", max_requests_in_flight, 1, 1u << 16),
    LIMIT32("ReleaseGraceMs", release_grace_ms, 0, 3600000),
};

static void parse_daemon_key(struct parser *p, const char *name, const char *value)
{
        if (strcmp(name, "AdminUsers") == 0) {
                parse_ids(p, name, value, true, &p->policy->admin_users, &p->policy->n_admin_users);
                return;
        }
        if (strcmp(name, "AdminGroups") == 0) {
                parse_ids(p, name, value, false, &p->policy->admin_groups,
                          &p->policy->n_admin_groups);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(limit_keys); i++) {
                const struct limit_key *k = &limit_keys[i];
                uint64_t n;

                if (strcmp(name, k->key) != 0)
                        continue;
                if (parse_u64(value, k->bytes, &n) < 0 || n < k->min || n > k->max) {
                        perr(p, "%s=: bad value '%s' (a number from %" PRIu64 " to %" PRIu64 "%s)",
                             name, value, k->min, k->max, k->bytes ? ", suffix K M G T" : "");
                        return;
                }
                if (k->is64)
                        *(uint64_t *)((char *)&p->policy->limits + k->offset) = n;
                else
                        *(uint32_t *)((char *)&p->policy->limits + k->offset) = (uint32_t)n;
                return;
        }
        perr(p, "unknown key '%s' in [Daemon]", name);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
        struct parser *p = user;

        switch (p->kind) {
        case SECTION_NONE:
                perr(p, "key '%s' outside of a section", name);
                break;
        case SECTION_BAD:
                break; /* the section was reported already */
        case SECTION_DAEMON:
                parse_daemon_key(p, name, value);
                break;
        case SECTION_DEVICE:
                if (strcmp(name, "Match") == 0)
                        parse_match(p, value);
                else if (strcmp(name, "Users") == 0)
                        parse_ids(p, name, value, true, &p->rule->users, &p->rule->n_users);
                else if (strcmp(name, "Groups") == 0)
                        parse_ids(p, name, value, false, &p->rule->groups, &p->rule->n_groups);
                else if (strcmp(name, "Modes") == 0)
                        parse_modes(p, value);
                else
                        perr(p, "unknown key '%s' in [Device %s]", name, p->rule->name);
                break;
        }
        return 1; /* keep going: every problem is collected */
}

int vfiod_policy_load(const char *path, bool missing_ok, struct vfiod_policy **ret,
                      struct vfiod_errors *errors)
{
        struct vfiod_policy *policy = NULL;
        struct parser p = {.path = path, .errors = errors};
        int r;

        r = vfiod_policy_new(&policy);
        if (r < 0)
                return r;
        policy->path = strdup(path);
        if (!policy->path) {
                vfiod_policy_free(policy);
                return -ENOMEM;
        }
        p.f = fopen(path, "re");
        if (!p.f) {
                r = -errno;
                if (r == -ENOENT && missing_ok) {
                        *ret = policy;
                        return 0;
                }
                errors_add(errors, "%s: cannot open: %s", path, strerror(-r));
                vfiod_policy_free(policy);
                return r;
        }
        p.policy = policy;
        r = ini_parse_stream(reader, &p, handler, &p);
        fclose(p.f);
        if (r > 0) {
                p.line = (unsigned)r;
                perr(&p, "syntax error");
        } else if (r < 0) {
                errors_add(errors, "%s: cannot parse: %s", path,
                           r == -2 ? "out of memory" : "read error");
                p.n_errors++;
        }
        for (size_t i = 0; i < policy->n_rules; i++) {
                struct vfiod_rule *rule = &policy->rules[i];

                if (rule->n_match == 0) {
                        p.line = rule->line;
                        perr(&p, "[Device %s] has no Match=", rule->name);
                }
                if (rule->modes == 0)
                        rule->modes = VFIOD_MODE_BITS_ALL;
        }
        if (p.n_errors > 0) {
                vfiod_policy_free(policy);
                return -EINVAL;
        }
        *ret = policy;
        return 0;
}

/* ---- matching ----------------------------------------------------------- */

static bool peer_in_groups(const struct vfiod_peer *peer, const gid_t *gids, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (gids[i] == peer->gid)
                        return true;
                for (size_t j = 0; j < peer->n_groups; j++)
                        if (gids[i] == peer->groups[j])
                                return true;
        }
        return false;
}

static bool peer_in_users(const struct vfiod_peer *peer, const uid_t *uids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (uids[i] == peer->uid)
                        return true;
        return false;
}

unsigned vfiod_policy_modes(const struct vfiod_policy *policy, const struct vfiod_peer *peer,
                            const char *bdf)
{
        unsigned modes = 0;

        if (!policy || !peer || !bdf)
                return 0;
        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *r = &policy->rules[i];
                bool match = false;

                for (size_t j = 0; j < r->n_match && !match; j++)
                        match = strcmp(r->match[j], bdf) == 0;
                if (!match)
                        continue;
                if (peer_in_users(peer, r->users, r->n_users) ||
                    peer_in_groups(peer, r->groups, r->n_groups))
                        modes |= r->modes;
        }
        return modes;
}

bool vfiod_policy_is_admin(const struct vfiod_policy *policy, const struct vfiod_peer *peer)
{
        if (!peer)
                return false;
        if (peer->uid == 0)
                return true;
        if (!policy)
                return false;
        return peer_in_users(peer, policy->admin_users, policy->n_admin_users) ||
               peer_in_groups(peer, policy->admin_groups, policy->n_admin_groups);
}

const char *vfiod_modes_name(unsigned modes)
{
        switch (modes & VFIOD_MODE_BITS_ALL) {
        case VFIOD_MODE_BIT_DIRECT:
                return "direct";
        case VFIOD_MODE_BIT_BROKERED:
                return "brokered";
        case VFIOD_MODE_BITS_ALL:
                return "direct brokered";
        default:
                return "none";
        }
}
