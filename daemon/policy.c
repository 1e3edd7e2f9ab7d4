/* SPDX-License-Identifier: MIT */
#include "daemon/policy.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "kernel/sysfs.h"
#include "proto/macro.h"
#include "proto/names.h"
#include "proto/vfiod.pb-c.h"

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

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* ---- grants ---------------------------------------------------------------- */

void vfiod_grant_init(struct vfiod_grant *g)
{
        *g = (struct vfiod_grant){.max_pinned_bytes = VFIOD_NO_QUOTA_BYTES,
                                  .max_pinned_bytes_per_user = VFIOD_NO_QUOTA_BYTES,
                                  .max_mappings = VFIOD_NO_QUOTA_MAPPINGS,
                                  .irq_types = VFIOD_IRQ_BITS_ALL};
}

void vfiod_grant_done(struct vfiod_grant *g)
{
        if (!g)
                return;
        free(g->windows);
        g->windows = NULL;
        g->n_windows = 0;
}

int vfiod_grant_narrow(struct vfiod_grant *into, const struct vfiod_grant *with)
{
        if (with->max_pinned_bytes < into->max_pinned_bytes) {
                into->max_pinned_bytes = with->max_pinned_bytes;
                memcpy(into->pinned_rule, with->pinned_rule, sizeof(into->pinned_rule));
        }
        if (with->max_pinned_bytes_per_user < into->max_pinned_bytes_per_user) {
                into->max_pinned_bytes_per_user = with->max_pinned_bytes_per_user;
                memcpy(into->user_pinned_rule, with->user_pinned_rule,
                       sizeof(into->user_pinned_rule));
        }
        if (with->max_mappings < into->max_mappings) {
                into->max_mappings = with->max_mappings;
                memcpy(into->mappings_rule, with->mappings_rule, sizeof(into->mappings_rule));
        }
        if ((into->irq_types & with->irq_types) != into->irq_types)
                memcpy(into->irq_rule, with->irq_rule, sizeof(into->irq_rule));
        into->irq_types &= with->irq_types;
        into->managed = into->managed || with->managed;
        if (!with->has_windows)
                return 0;
        memcpy(into->windows_rule, with->windows_rule, sizeof(into->windows_rule));
        if (!into->has_windows) {
                struct vfiod_window *w =
                    malloc((with->n_windows ? with->n_windows : 1) * sizeof(*w));

                if (!w)
                        return -ENOMEM;
                if (with->n_windows)
                        memcpy(w, with->windows, with->n_windows * sizeof(*w));
                into->windows = w;
                into->n_windows = with->n_windows;
                into->has_windows = true;
                return 0;
        }
        {
                /* The intersection of two sets of windows: every pairwise overlap. */
                size_t n = 0, max = into->n_windows * with->n_windows;
                struct vfiod_window *w = malloc((max ? max : 1) * sizeof(*w));

                if (!w)
                        return -ENOMEM;
                for (size_t i = 0; i < into->n_windows; i++)
                        for (size_t j = 0; j < with->n_windows; j++) {
                                uint64_t lo = into->windows[i].first > with->windows[j].first
                                                  ? into->windows[i].first
                                                  : with->windows[j].first;
                                uint64_t hi = into->windows[i].last < with->windows[j].last
                                                  ? into->windows[i].last
                                                  : with->windows[j].last;

                                if (lo <= hi)
                                        w[n++] = (struct vfiod_window){lo, hi};
                        }
                free(into->windows);
                into->windows = w;
                into->n_windows = n;
        }
        return 0;
}

bool vfiod_grant_iova_ok(const struct vfiod_grant *g, uint64_t iova, uint64_t size)
{
        uint64_t last;

        if (!g->has_windows)
                return true;
        if (size == 0 || iova > UINT64_MAX - (size - 1))
                return false;
        last = iova + (size - 1);
        for (size_t i = 0; i < g->n_windows; i++)
                if (iova >= g->windows[i].first && last <= g->windows[i].last)
                        return true;
        return false;
}

const char *vfiod_irq_types_name(unsigned types, char *buf, size_t size)
{
        snprintf(buf, size, "%s%s%s%s", types & VFIOD_IRQ_BIT_INTX ? "intx " : "",
                 types & VFIOD_IRQ_BIT_MSI ? "msi " : "", types & VFIOD_IRQ_BIT_MSIX ? "msix " : "",
                 types & VFIOD_IRQ_BITS_ALL ? "" : "none");
        if (types & VFIOD_IRQ_BITS_ALL)
                buf[strlen(buf) - 1] = '\0'; /* the last space */
        return buf;
}

/* ---- the policy object --------------------------------------------------------- */

static void rule_done(struct vfiod_rule *r)
{
        free(r->name);
        free(r->file);
        strv_free(r->match, r->n_match);
        free(r->vendors);
        free(r->classes);
        free(r->iommu_groups);
        free(r->users);
        free(r->groups);
        strv_free(r->units, r->n_units);
        strv_free(r->slices, r->n_slices);
        vfiod_grant_done(&r->grant);
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
        strv_free(policy->files, policy->n_files);
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

/* The keys of a [Device] section; the index is the slot in rule->set_in. */
enum rule_key {
        KEY_HEADER, /* the [Device NAME] line itself: which file last opened it */
        KEY_MATCH,
        KEY_MATCH_VENDOR,
        KEY_MATCH_CLASS,
        KEY_MATCH_GROUP,
        KEY_USERS,
        KEY_GROUPS,
        KEY_UNITS,
        KEY_SLICES,
        KEY_MODES,
        KEY_MAX_PINNED,
        KEY_MAX_PINNED_PER_USER,
        KEY_MAX_MAPPINGS,
        KEY_IOVA_WINDOWS,
        KEY_IRQ_TYPES,
        KEY_MANAGED,
        _KEY_RULE_MAX,
};

enum section_kind { SECTION_NONE, SECTION_DAEMON, SECTION_DEVICE, SECTION_BAD };

enum daemon_key { DKEY_ADMIN_USERS, DKEY_ADMIN_GROUPS, _DKEY_MAX };

struct parser {
        const char *path;
        unsigned file; /* 1 + index of the file being read */
        FILE *f;
        unsigned line; /* of the line inih is handling */
        /* UTF-8 across a line inih reads in pieces (see utf8_step()). */
        unsigned utf8_need;
        unsigned char utf8_lo, utf8_hi;
        struct vfiod_policy *policy;
        struct vfiod_errors *errors;
        size_t n_errors;
        enum section_kind kind;
        size_t rule; /* index of the current [Device] */
        unsigned daemon_set_in[_DKEY_MAX];
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

static struct vfiod_rule *cur_rule(struct parser *p)
{
        return &p->policy->rules[p->rule];
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

static void rule_open(struct parser *p, const char *rname)
{
        struct vfiod_policy *pol = p->policy;
        struct vfiod_rule *rules, *r;

        for (size_t i = 0; i < pol->n_rules; i++) {
                r = &pol->rules[i];
                if (strcmp(r->name, rname) != 0)
                        continue;
                if (r->set_in[KEY_HEADER] == p->file) {
                        perr(p, "duplicate section [Device %s] (first at line %u)", rname, r->line);
                        return;
                }
                /* A later file: its keys override this rule's, key by key. */
                r->set_in[KEY_HEADER] = p->file;
                if (p->file == 1)
                        r->line = p->line;
                p->rule = i;
                p->kind = SECTION_DEVICE;
                return;
        }
        rules = realloc(pol->rules, (pol->n_rules + 1) * sizeof(*rules));
        if (!rules) {
                perr(p, "out of memory");
                return;
        }
        pol->rules = rules;
        r = &rules[pol->n_rules];
        *r = (struct vfiod_rule){.line = p->line};
        vfiod_grant_init(&r->grant);
        r->name = strdup(rname);
        r->file = strdup(p->path);
        if (!r->name || !r->file) {
                rule_done(r);
                perr(p, "out of memory");
                return;
        }
        r->set_in[KEY_HEADER] = p->file;
        p->rule = pol->n_rules++;
        p->kind = SECTION_DEVICE;
}

/* A section header starts here: open the section so empty ones are checked too. */
static void section_begin(struct parser *p, char *text)
{
        char *end = strchr(text, ']');
        char *name;

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

                if (!*rname) {
                        perr(p, "[Device] needs a name: [Device NAME]");
                        return;
                }
                rule_open(p, rname);
                return;
        }
        perr(p, "unknown section [%s]", name);
}

/*
 * One more byte of UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). need: how many continuation bytes are still
 * due; lo, hi: the range the next one must be in. False when b breaks it.
 */
static bool utf8_step(unsigned char b, unsigned *need, unsigned char *lo, unsigned char *hi)
{
        if (*need > 0) {
                if (b < *lo || b > *hi)
                        return false;
                (*need)--;
                *lo = 0x80;
                *hi = 0xbf;
                return true;
        }
        *lo = 0x80;
        *hi = 0xbf;
        if (b < 0x80)
                return true;
        if (b >= 0xc2 && b <= 0xdf)
                *need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
                *need = 2;
                if (b == 0xe0)
                        *lo = 0xa0; /* overlong below */
                else if (b == 0xed)
                        *hi = 0x9f; /* surrogates above */
        } else if (b >= 0xf0 && b <= 0xf4) {
                *need = 3;
                if (b == 0xf0)
                        *lo = 0x90; /* overlong below */
                else if (b == 0xf4)
                        *hi = 0x8f; /* above U+10FFFF */
        } else
                return false;
        return true;
}

/*
 * Reads one line (as fgets() would) and checks that it is text: no NUL byte
 * (inih would stop at it and silently read less than the file says) and
 * UTF-8. A line that is not is reported with its file:line and handed to
 * inih empty. False at the end of the file.
 */
static bool read_text_line(struct parser *p, char *str, int num)
{
        const char *bad = NULL;
        int n = 0, ch = EOF;

        while (n < num - 1 && (ch = getc(p->f)) != EOF) {
                str[n++] = (char)ch;
                if (ch == '\n')
                        break;
                if (!bad && ch == '\0')
                        bad = "a NUL byte: a configuration file is text";
                else if (!bad &&
                         !utf8_step((unsigned char)ch, &p->utf8_need, &p->utf8_lo, &p->utf8_hi))
                        bad = "not UTF-8";
        }
        if (n == 0 && p->utf8_need == 0)
                return false;
        str[n] = '\0';
        p->line += n > 0;
        /* A sequence cut by the line's end (or the file's); inih's own cut of a long line is not.
         */
        if (ch == '\n' || ch == EOF) {
                if (!bad && p->utf8_need > 0)
                        bad = "not UTF-8 (a sequence cut short)";
                p->utf8_need = 0;
        }
        if (bad) {
                perr(p, "%s", bad);
                str[0] = '\0';
        }
        return true;
}

/* Reader for inih: counts lines and sees section headers first. */
static char *reader(char *str, int num, void *stream)
{
        struct parser *p = stream;
        char *s;

        if (!read_text_line(p, str, num))
                return NULL;
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

/* A number in C notation (0x.. hex, else decimal), nothing after it. */
static int parse_c_u64(const char *v, uint64_t *ret)
{
        char *end;
        unsigned long long n;

        if (!*v || !isdigit((unsigned char)*v))
                return -EINVAL;
        errno = 0;
        n = strtoull(v, &end, 0);
        if (errno || *end)
                return -EINVAL;
        *ret = n;
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

/* Grows *array (of n elements of size) by one; returns the new element or NULL. */
static void *grow(struct parser *p, void **array, size_t *n, size_t size)
{
        char *a = realloc(*array, (*n + 1) * size);

        if (!a) {
                perr(p, "out of memory");
                return NULL;
        }
        *array = a;
        return a + (*n)++ * size;
}

#define GROW(p, arr, n) ((__typeof__(arr))grow((p), (void **)&(arr), &(n), sizeof(*(arr))))

/* Calls fn for each white-space separated word of value. */
static void for_words(struct parser *p, const char *value, void (*fn)(struct parser *, char *))
{
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;

        if (!copy) {
                perr(p, "out of memory");
                return;
        }
        for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
                fn(p, tok);
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
                a = grow(p, (void **)ids, n, sizeof(**ids));
                if (!a)
                        return;
                *a = id;
        }
}

static void word_match(struct parser *p, char *tok)
{
        struct vfiod_rule *r = cur_rule(p);
        char bdf[KVFIO_NAME_MAX];
        char **m;

        /* A PCI address or an mdev's UUID (stored in lower case, as sysfs names it). */
        if (kvfio_dev_name_normalize(tok, bdf) < 0) {
                perr(p, "Match=: not a PCI address '%s' (DDDD:BB:DD.F or BB:DD.F) nor an mdev UUID",
                     tok);
                r->bad_match = true;
                return;
        }
        m = GROW(p, r->match, r->n_match);
        if (m && !(*m = strdup(bdf))) {
                r->n_match--;
                perr(p, "out of memory");
        }
}

/* 1 to 4 hex digits, or "*" (-1). */
static int parse_id16(const char *s, size_t len, int32_t *ret)
{
        uint32_t v = 0;

        if (len == 1 && s[0] == '*') {
                *ret = -1;
                return 0;
        }
        if (len == 0 || len > 4)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (!isxdigit((unsigned char)s[i]))
                        return -EINVAL;
                v = v * 16 + (uint32_t)(isdigit((unsigned char)s[i])
                                            ? s[i] - '0'
                                            : tolower((unsigned char)s[i]) - 'a' + 10);
        }
        *ret = (int32_t)v;
        return 0;
}

static void word_vendor(struct parser *p, char *tok)
{
        struct vfiod_rule *r = cur_rule(p);
        const char *colon = strchr(tok, ':');
        struct vfiod_vendor_match m, *slot;

        if (!colon || parse_id16(tok, (size_t)(colon - tok), &m.vendor) < 0 ||
            parse_id16(colon + 1, strlen(colon + 1), &m.device) < 0) {
                perr(p, "MatchVendor=: not VENDOR:DEVICE (hex, or *) '%s'", tok);
                r->bad_match = true;
                return;
        }
        slot = GROW(p, r->vendors, r->n_vendors);
        if (slot)
                *slot = m;
}

static void word_class(struct parser *p, char *tok)
{
        struct vfiod_rule *r = cur_rule(p);
        const char *s = tok;
        struct vfiod_class_match m = {0}, *slot;
        size_t len;

        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                s += 2;
        len = strlen(s);
        for (size_t i = 0; i < len; i++)
                if (!isxdigit((unsigned char)s[i]))
                        len = 0;
        if (len != 2 && len != 4 && len != 6) {
                perr(p, "MatchClass=: not a class prefix of 2, 4 or 6 hex digits '%s'", tok);
                r->bad_match = true;
                return;
        }
        m.value = (uint32_t)strtoul(s, NULL, 16);
        m.digits = (unsigned)len;
        slot = GROW(p, r->classes, r->n_classes);
        if (slot)
                *slot = m;
}

static void word_group(struct parser *p, char *tok)
{
        struct vfiod_rule *r = cur_rule(p);
        uint64_t n;
        int *slot;

        if (parse_u64(tok, false, &n) < 0 || n > INT_MAX) {
                perr(p, "MatchGroup=: not an IOMMU group number '%s'", tok);
                r->bad_match = true;
                return;
        }
        slot = GROW(p, r->iommu_groups, r->n_iommu_groups);
        if (slot)
                *slot = (int)n;
}

static void add_glob(struct parser *p, const char *key, char *tok, char ***v, size_t *n)
{
        char **slot;

        if (strlen(tok) > 255) {
                perr(p, "%s=: name too long '%.32s...'", key, tok);
                return;
        }
        for (const char *c = tok; *c; c++)
                if (!isgraph((unsigned char)*c) || *c == '/') {
                        perr(p, "%s=: not a unit name or glob '%s'", key, tok);
                        return;
                }
        slot = grow(p, (void **)v, n, sizeof(**v));
        if (slot && !(*slot = strdup(tok))) {
                (*n)--;
                perr(p, "out of memory");
        }
}

static void word_unit(struct parser *p, char *tok)
{
        add_glob(p, "Units", tok, &cur_rule(p)->units, &cur_rule(p)->n_units);
}

static void word_slice(struct parser *p, char *tok)
{
        add_glob(p, "Slices", tok, &cur_rule(p)->slices, &cur_rule(p)->n_slices);
}

static void word_mode(struct parser *p, char *tok)
{
        int mode = vfiod_proto_mode_from_string(tok);

        if (mode < 0)
                perr(p, "Modes=: unknown mode '%s' (direct, brokered, group)", tok);
        else
                cur_rule(p)->modes |= 1u << mode; /* VFIOD_MODE_BIT_* */
}

static void word_irq(struct parser *p, char *tok)
{
        struct vfiod_grant *g = &cur_rule(p)->grant;

        if (strcmp(tok, "intx") == 0)
                g->irq_types |= VFIOD_IRQ_BIT_INTX;
        else if (strcmp(tok, "msi") == 0)
                g->irq_types |= VFIOD_IRQ_BIT_MSI;
        else if (strcmp(tok, "msix") == 0)
                g->irq_types |= VFIOD_IRQ_BIT_MSIX;
        else if (strcmp(tok, "none") != 0)
                perr(p, "IrqTypes=: unknown interrupt type '%s' (intx, msi, msix, none)", tok);
}

static void word_window(struct parser *p, char *tok)
{
        struct vfiod_grant *g = &cur_rule(p)->grant;
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        struct vfiod_window w, *slot;
        char *dash = strchr(tok, '-');

        if (dash)
                *dash = '\0';
        if (!dash || parse_c_u64(tok, &w.first) < 0 || parse_c_u64(dash + 1, &w.last) < 0 ||
            w.first > w.last) {
                if (dash)
                        *dash = '-';
                perr(p, "IovaWindows=: not FIRST-LAST (inclusive, FIRST <= LAST) '%s'", tok);
                cur_rule(p)->bad_windows = true;
                return;
        }
        *dash = '-';
        /* MapDma maps whole pages: a window with a partial page at either end misleads. */
        if (w.first % page || (w.last + 1) % page) {
                perr(p,
                     "IovaWindows=: '%s' is not page-aligned (FIRST and LAST + 1 multiples of "
                     "0x%" PRIx64 ")",
                     tok, page);
                cur_rule(p)->bad_windows = true;
                return;
        }
        slot = GROW(p, g->windows, g->n_windows);
        if (slot)
                *slot = w;
}

/* A key given in this file for the first time replaces what earlier files said. */
static bool key_fresh(struct parser *p, enum rule_key k)
{
        struct vfiod_rule *r = cur_rule(p);

        if (r->set_in[k] == p->file)
                return false;
        r->set_in[k] = p->file;
        return true;
}

static void rule_key_reset(struct vfiod_rule *r, enum rule_key k)
{
        switch (k) {
        case KEY_MATCH:
                strv_free(r->match, r->n_match);
                r->match = NULL;
                r->n_match = 0;
                break;
        case KEY_MATCH_VENDOR:
                free(r->vendors);
                r->vendors = NULL;
                r->n_vendors = 0;
                break;
        case KEY_MATCH_CLASS:
                free(r->classes);
                r->classes = NULL;
                r->n_classes = 0;
                break;
        case KEY_MATCH_GROUP:
                free(r->iommu_groups);
                r->iommu_groups = NULL;
                r->n_iommu_groups = 0;
                break;
        case KEY_USERS:
                free(r->users);
                r->users = NULL;
                r->n_users = 0;
                break;
        case KEY_GROUPS:
                free(r->groups);
                r->groups = NULL;
                r->n_groups = 0;
                break;
        case KEY_UNITS:
                strv_free(r->units, r->n_units);
                r->units = NULL;
                r->n_units = 0;
                break;
        case KEY_SLICES:
                strv_free(r->slices, r->n_slices);
                r->slices = NULL;
                r->n_slices = 0;
                break;
        case KEY_MODES:
                r->modes = 0;
                break;
        case KEY_MAX_PINNED:
                r->grant.max_pinned_bytes = VFIOD_NO_QUOTA_BYTES;
                break;
        case KEY_MAX_PINNED_PER_USER:
                r->grant.max_pinned_bytes_per_user = VFIOD_NO_QUOTA_BYTES;
                break;
        case KEY_MAX_MAPPINGS:
                r->grant.max_mappings = VFIOD_NO_QUOTA_MAPPINGS;
                break;
        case KEY_IOVA_WINDOWS:
                free(r->grant.windows);
                r->grant.windows = NULL;
                r->grant.n_windows = 0;
                r->grant.has_windows = false;
                break;
        case KEY_IRQ_TYPES:
                r->grant.irq_types = VFIOD_IRQ_BITS_ALL;
                break;
        case KEY_MANAGED:
                r->grant.managed = false;
                break;
        default:
                break;
        }
}

static int parse_bool(const char *v)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcmp(v, yes[i]) == 0)
                        return 1;
                if (strcmp(v, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

static const struct {
        const char *name;
        enum rule_key key;
        void (*word)(struct parser *, char *);
} rule_keys[] = {
    {"Match", KEY_MATCH, word_match},
    {"MatchVendor", KEY_MATCH_VENDOR, word_vendor},
    {"MatchClass", KEY_MATCH_CLASS, word_class},
    {"MatchGroup", KEY_MATCH_GROUP, word_group},
    {"Users", KEY_USERS, NULL},
    {"Groups", KEY_GROUPS, NULL},
    {"Units", KEY_UNITS, word_unit},
    {"Slices", KEY_SLICES, word_slice},
    {"Modes", KEY_MODES, word_mode},
    {"MaxPinnedBytes", KEY_MAX_PINNED, NULL},
    {"MaxPinnedBytesPerUser", KEY_MAX_PINNED_PER_USER, NULL},
    {"MaxMappings", KEY_MAX_MAPPINGS, NULL},
    {"IovaWindows", KEY_IOVA_WINDOWS, word_window},
    {"IrqTypes", KEY_IRQ_TYPES, word_irq},
    {"Managed", KEY_MANAGED, NULL},
};

static void parse_device_key(struct parser *p, const char *name, const char *value)
{
        struct vfiod_rule *r = cur_rule(p);
        enum rule_key k = _KEY_RULE_MAX;
        void (*word)(struct parser *, char *) = NULL;
        bool fresh;
        uint64_t n;

        for (size_t i = 0; i < ELEMENTSOF(rule_keys); i++)
                if (strcmp(name, rule_keys[i].name) == 0) {
                        k = rule_keys[i].key;
                        word = rule_keys[i].word;
                }
        if (k == _KEY_RULE_MAX) {
                perr(p, "unknown key '%s' in [Device %s]", name, r->name);
                return;
        }
        /* The first time in a file, or an empty value: start again from the default. */
        fresh = key_fresh(p, k);
        if (fresh) {
                /* Where it is set now (--check-config shows it); this file is the last read. */
                r->key_file[k] = (unsigned)p->policy->n_files;
                r->key_line[k] = p->line;
        }
        if (fresh || !*value)
                rule_key_reset(r, k);
        if (!*value)
                return;
        if (fresh && k == KEY_IRQ_TYPES)
                r->grant.irq_types = 0; /* a value lists what is allowed */
        if (k == KEY_IOVA_WINDOWS)
                r->grant.has_windows = true;
        switch (k) {
        case KEY_USERS:
                parse_ids(p, name, value, true, &r->users, &r->n_users);
                return;
        case KEY_GROUPS:
                parse_ids(p, name, value, false, &r->groups, &r->n_groups);
                return;
        case KEY_MAX_PINNED:
        case KEY_MAX_PINNED_PER_USER:
                if (strcmp(value, "infinity") == 0)
                        n = VFIOD_NO_QUOTA_BYTES;
                else if (parse_u64(value, true, &n) < 0 || n == 0) {
                        perr(p, "%s=: bad value '%s' (bytes, suffix K M G T, or infinity)", name,
                             value);
                        return;
                }
                if (k == KEY_MAX_PINNED)
                        r->grant.max_pinned_bytes = n;
                else
                        r->grant.max_pinned_bytes_per_user = n;
                return;
        case KEY_MAX_MAPPINGS:
                if (strcmp(value, "infinity") == 0)
                        n = VFIOD_NO_QUOTA_MAPPINGS;
                else if (parse_u64(value, false, &n) < 0 || n == 0 || n >= UINT32_MAX) {
                        perr(p, "MaxMappings=: bad value '%s' (a number from 1, or infinity)",
                             value);
                        return;
                }
                r->grant.max_mappings = (uint32_t)n;
                return;
        case KEY_MANAGED: {
                int b = parse_bool(value);

                if (b < 0) {
                        perr(p, "Managed=: bad value '%s' (yes or no)", value);
                        return;
                }
                r->grant.managed = b;
                return;
        }
        default:
                for_words(p, value, word);
                return;
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
    LIMIT32("MaxConnectionsPerUser", max_connections_per_user, 1, 65536),
    LIMIT32("MaxDomainsPerClient", max_domains_per_client, 1, 4096),
    LIMIT32("MaxLeasesPerClient", max_leases_per_client, 1, 4096),
    LIMIT32("MaxMappingsPerClient", max_mappings_per_client, 1, 1u << 20),
    {"MaxPinnedBytesPerClient", offsetof(struct vfiod_config_limits, max_pinned_bytes_per_client),
     true, true, 4096, UINT64_MAX},
    {"MaxPinnedBytesPerUser", offsetof(struct vfiod_config_limits, max_pinned_bytes_per_user), true,
     true, 4096, UINT64_MAX},
    LIMIT32("MaxRangesPerRequest", max_ranges_per_request, 1, 4096),
    LIMIT32("MaxFdsPerMessage", max_fds_per_message, 1, 253),
    LIMIT32("MaxFdsPerClient", max_fds_per_client, 1, 1u << 20),
    LIMIT32("MaxFdsPerUser", max_fds_per_user, 1, 1u << 20),
    LIMIT32("MaxQueuedBytesPerClient", max_queued_bytes_per_client, 65536, 1u << 30),
    LIMIT32("MaxQueuedMessagesPerClient", max_queued_messages_per_client, 1, 1u << 20),
    LIMIT32("MaxRequestsInFlight", max_requests_in_flight, 1, 1u << 16),
    LIMIT32("ReleaseGraceMs", release_grace_ms, 0, 3600000),
    LIMIT32("HelloTimeoutMs", hello_timeout_ms, 1, 3600000),
};

static void parse_daemon_key(struct parser *p, const char *name, const char *value)
{
        struct vfiod_policy *pol = p->policy;
        bool users = strcmp(name, "AdminUsers") == 0;

        if (users || strcmp(name, "AdminGroups") == 0) {
                enum daemon_key k = users ? DKEY_ADMIN_USERS : DKEY_ADMIN_GROUPS;
                uint32_t **ids = users ? &pol->admin_users : &pol->admin_groups;
                size_t *n = users ? &pol->n_admin_users : &pol->n_admin_groups;

                /* As for rules: a later file replaces the list; an empty value empties it. */
                if (p->daemon_set_in[k] != p->file || !*value) {
                        free(*ids);
                        *ids = NULL;
                        *n = 0;
                }
                p->daemon_set_in[k] = p->file;
                parse_ids(p, name, value, users, ids, n);
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
                        *(uint64_t *)((char *)&pol->limits + k->offset) = n;
                else
                        *(uint32_t *)((char *)&pol->limits + k->offset) = (uint32_t)n;
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
                parse_device_key(p, name, value);
                break;
        }
        return 1; /* keep going: every problem is collected */
}

/* Parses one file into p->policy. Returns 0, or -errno when it cannot be opened (reported). */
static int parse_file(struct parser *p, const char *path, bool missing_ok)
{
        char **files;
        int r;

        p->path = path;
        p->line = 0;
        p->utf8_need = 0;
        p->kind = SECTION_NONE;
        p->file++;
        p->f = fopen(path, "re");
        if (!p->f) {
                r = -errno;
                if (r == -ENOENT && missing_ok)
                        return 0;
                errors_add(p->errors, "%s: cannot open: %s", path, strerror(-r));
                p->n_errors++;
                return r;
        }
        files = realloc(p->policy->files, (p->policy->n_files + 1) * sizeof(*files));
        if (files) {
                p->policy->files = files;
                files[p->policy->n_files] = strdup(path);
                if (files[p->policy->n_files])
                        p->policy->n_files++;
        }
        r = ini_parse_stream(reader, p, handler, p);
        fclose(p->f);
        p->f = NULL;
        if (r > 0) {
                p->line = (unsigned)r;
                perr(p, "syntax error");
        } else if (r < 0) {
                errors_add(p->errors, "%s: cannot parse: %s", path,
                           r == -2 ? "out of memory" : "read error");
                p->n_errors++;
        }
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The drop-ins: the *.conf files in dir, sorted by name; no folder = none. */
static int list_dropins(const char *dir, char ***ret, size_t *ret_n)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        char **v = NULL;
        size_t n = 0;

        if (!d) {
                *ret = NULL;
                *ret_n = 0;
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char **nv;

                if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
                        continue;
                nv = realloc(v, (n + 1) * sizeof(*v));
                if (!nv || asprintf(&nv[n], "%s/%s", dir, de->d_name) < 0) {
                        if (nv)
                                v = nv;
                        strv_free(v, n);
                        closedir(d);
                        return -ENOMEM;
                }
                v = nv;
                n++;
        }
        closedir(d);
        if (n)
                qsort(v, n, sizeof(*v), cmp_str);
        *ret = v;
        *ret_n = n;
        return 0;
}

int vfiod_policy_load(const char *path, bool missing_ok, struct vfiod_policy **ret,
                      struct vfiod_errors *errors)
{
        struct vfiod_policy *policy = NULL;
        struct parser p = {.errors = errors};
        _cleanup_free_ char *dir = NULL;
        char **dropins = NULL;
        size_t n_dropins = 0;
        int r;

        r = vfiod_policy_new(&policy);
        if (r < 0)
                return r;
        policy->path = strdup(path);
        if (!policy->path || asprintf(&dir, "%s.d", path) < 0) {
                dir = NULL;
                vfiod_policy_free(policy);
                return -ENOMEM;
        }
        p.policy = policy;
        r = parse_file(&p, path, missing_ok);
        if (r < 0) {
                vfiod_policy_free(policy);
                return r;
        }
        r = list_dropins(dir, &dropins, &n_dropins);
        if (r < 0) {
                errors_add(errors, "%s: cannot list: %s", dir, strerror(-r));
                vfiod_policy_free(policy);
                return r;
        }
        for (size_t i = 0; i < n_dropins; i++)
                (void)parse_file(&p, dropins[i], false);
        strv_free(dropins, n_dropins);
        for (size_t i = 0; i < policy->n_rules; i++) {
                struct vfiod_rule *rule = &policy->rules[i];

                /* A refused term was reported already: no second error that follows from it. */
                if (rule->n_match + rule->n_vendors + rule->n_classes + rule->n_iommu_groups == 0 &&
                    !rule->bad_match) {
                        errors_add(errors,
                                   "%s:%u: [Device %s] has no Match=, MatchVendor=, MatchClass= "
                                   "or MatchGroup=",
                                   rule->file, rule->line, rule->name);
                        p.n_errors++;
                }
                if (rule->grant.has_windows && rule->grant.n_windows == 0 && !rule->bad_windows) {
                        errors_add(errors,
                                   "%s:%u: [Device %s] has an empty IovaWindows=", rule->file,
                                   rule->line, rule->name);
                        p.n_errors++;
                }
                if (rule->modes == 0)
                        rule->modes = VFIOD_MODE_BITS_ALL;
                snprintf(rule->grant.pinned_rule, sizeof(rule->grant.pinned_rule), "%s",
                         rule->name);
                memcpy(rule->grant.mappings_rule, rule->grant.pinned_rule,
                       sizeof(rule->grant.pinned_rule));
                memcpy(rule->grant.windows_rule, rule->grant.pinned_rule,
                       sizeof(rule->grant.pinned_rule));
                memcpy(rule->grant.irq_rule, rule->grant.pinned_rule,
                       sizeof(rule->grant.pinned_rule));
                memcpy(rule->grant.user_pinned_rule, rule->grant.pinned_rule,
                       sizeof(rule->grant.pinned_rule));
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

static bool glob_any(char *const *globs, size_t n, const char *name)
{
        if (!name)
                return false;
        for (size_t i = 0; i < n; i++)
                if (fnmatch(globs[i], name, 0) == 0)
                        return true;
        return false;
}

bool vfiod_rule_matches(const struct vfiod_rule *r, const struct kvfio_pci_dev *dev)
{
        bool any = false, ok;

        if (r->n_match) {
                ok = false;
                for (size_t i = 0; i < r->n_match && !ok; i++)
                        ok = strcmp(r->match[i], dev->bdf) == 0;
                if (!ok)
                        return false;
                any = true;
        }
        if (r->n_vendors) {
                ok = false;
                for (size_t i = 0; i < r->n_vendors && !ok; i++)
                        ok = (r->vendors[i].vendor < 0 || r->vendors[i].vendor == dev->vendor) &&
                             (r->vendors[i].device < 0 || r->vendors[i].device == dev->device);
                if (!ok)
                        return false;
                any = true;
        }
        if (r->n_classes) {
                ok = false;
                for (size_t i = 0; i < r->n_classes && !ok; i++)
                        ok = (dev->class & 0xffffffu) >> (24 - 4 * r->classes[i].digits) ==
                             r->classes[i].value;
                if (!ok)
                        return false;
                any = true;
        }
        if (r->n_iommu_groups) {
                ok = false;
                for (size_t i = 0; i < r->n_iommu_groups && !ok; i++)
                        ok = r->iommu_groups[i] == dev->iommu_group;
                if (!ok)
                        return false;
                any = true;
        }
        return any;
}

bool vfiod_rule_names(const struct vfiod_rule *r, const struct vfiod_peer *peer)
{
        bool who = r->n_users + r->n_groups > 0, where = r->n_units + r->n_slices > 0;

        /* Keys of one kind are alternatives; every kind the rule gives must hold. */
        if (!who && !where)
                return false;
        if (who && !peer_in_users(peer, r->users, r->n_users) &&
            !peer_in_groups(peer, r->groups, r->n_groups))
                return false;
        if (where && !glob_any(r->units, r->n_units, peer->unit) &&
            !glob_any(r->slices, r->n_slices, peer->slice))
                return false;
        return true;
}

/* How specific a rule is: by its most specific kind of match key. */
static int rule_rank(const struct vfiod_rule *r)
{
        return r->n_match ? 4 : r->n_iommu_groups ? 3 : r->n_vendors ? 2 : r->n_classes ? 1 : 0;
}

static const char *rank_key(int rank)
{
        static const char *const keys[] = {"",
                                           "MatchClass=", "MatchVendor=", "MatchGroup=", "Match="};

        return keys[rank];
}

/* The rank of the most specific rules that match dev and name peer; -1 = none. */
static int best_rank(const struct vfiod_policy *policy, const struct vfiod_peer *peer,
                     const struct kvfio_pci_dev *dev)
{
        int best = -1;

        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *r = &policy->rules[i];

                if (rule_rank(r) > best && vfiod_rule_matches(r, dev) && vfiod_rule_names(r, peer))
                        best = rule_rank(r);
        }
        return best;
}

unsigned vfiod_policy_modes(const struct vfiod_policy *policy, const struct vfiod_peer *peer,
                            const struct kvfio_pci_dev *dev)
{
        unsigned modes = 0;
        int best;

        if (!policy || !peer || !dev)
                return 0;
        best = best_rank(policy, peer, dev);
        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *r = &policy->rules[i];

                if (rule_rank(r) == best && vfiod_rule_matches(r, dev) && vfiod_rule_names(r, peer))
                        modes |= r->modes;
        }
        return modes;
}

const struct vfiod_rule *vfiod_policy_grant(const struct vfiod_policy *policy,
                                            const struct vfiod_peer *peer,
                                            const struct kvfio_pci_dev *dev, unsigned mode,
                                            char *reason, size_t size)
{
        size_t len = 0, named = 0, shadowed = 0;
        int best;

        if (!policy || !peer || !dev)
                return NULL;
        best = best_rank(policy, peer, dev);
        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *r = &policy->rules[i];

                if (rule_rank(r) != best || !vfiod_rule_matches(r, dev) ||
                    !vfiod_rule_names(r, peer))
                        continue;
                if (r->modes & mode)
                        return r;
                /* Only rules that name this peer are told about. */
                if (reason && len < size) {
                        int n = snprintf(reason + len, size - len, "%srule '%s' allows only %s",
                                         named ? "; " : "", r->name, vfiod_modes_name(r->modes));
                        len += n > 0 ? (size_t)n : 0;
                }
                named++;
        }
        /* The less specific rules that name the peer: they do not count here, say so. */
        for (size_t i = 0; reason && named && i < policy->n_rules; i++) {
                const struct vfiod_rule *r = &policy->rules[i];

                if (rule_rank(r) >= best || !vfiod_rule_matches(r, dev) ||
                    !vfiod_rule_names(r, peer) || len >= size)
                        continue;
                {
                        int n = snprintf(reason + len, size - len, "%s'%s'",
                                         shadowed ? ", "
                                                  : "; less specific rules do not count "
                                                    "here: ",
                                         r->name);
                        len += n > 0 ? (size_t)n : 0;
                }
                shadowed++;
        }
        if (reason && size && named == 0)
                snprintf(reason, size, "no rule grants you device '%s'", dev->bdf);
        return NULL;
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
        /* Every combination, from the mode table, built once (the daemon has one thread). */
        static char names[VFIOD_MODE_BITS_ALL + 1][40];
        char *buf;
        size_t len = 0;

        modes &= VFIOD_MODE_BITS_ALL;
        if (!modes)
                return "none";
        buf = names[modes];
        if (buf[0])
                return buf;
        for (int m = VFIOD__MODE__MODE_DIRECT; m <= VFIOD__MODE__MODE_GROUP; m++) {
                int n;

                if (!(modes & (1u << m)))
                        continue;
                n = snprintf(buf + len, sizeof(names[0]) - len, "%s%s", len ? " " : "",
                             vfiod_proto_mode_to_string(m));
                if (n > 0)
                        len += (size_t)n;
        }
        return buf;
}

/* ---- --check-config ------------------------------------------------------------- */

/* "name(id)", or the bare id when it has no name here. */
static const char *id_name(uint32_t id, bool user, char *buf, size_t size)
{
        const char *name = NULL;

        if (user) {
                struct passwd *pw = getpwuid(id);
                name = pw ? pw->pw_name : NULL;
        } else {
                struct group *gr = getgrgid(id);
                name = gr ? gr->gr_name : NULL;
        }
        if (name)
                snprintf(buf, size, "%s(%u)", name, id);
        else
                snprintf(buf, size, "%u", id);
        return buf;
}

static void print_ids(FILE *out, const char *key, const uint32_t *ids, size_t n, bool user)
{
        char buf[300];

        fprintf(out, "  %s=", key);
        for (size_t i = 0; i < n; i++)
                fprintf(out, "%s%s", i ? " " : "", id_name(ids[i], user, buf, sizeof(buf)));
}

static void print_strv(FILE *out, const char *key, char *const *v, size_t n)
{
        fprintf(out, "  %s=", key);
        for (size_t i = 0; i < n; i++)
                fprintf(out, "%s%s", i ? " " : "", v[i]);
}

/* Ends a key's line: " (FILE:LINE)" when another file than the rule's header set it. */
static void print_end(FILE *out, const struct vfiod_policy *policy, const struct vfiod_rule *rule,
                      enum rule_key k)
{
        unsigned f = rule->key_file[k];

        if (f && f <= policy->n_files && strcmp(policy->files[f - 1], rule->file) != 0)
                fprintf(out, " (%s:%u)", policy->files[f - 1], rule->key_line[k]);
        fputc('\n', out);
}

/* One kind of the condition: "user a or group b", in parentheses when it and another kind
 * are given and it has several terms. */
static void print_kind(FILE *out, const struct vfiod_rule *r, bool who, bool parens)
{
        size_t n = who ? r->n_users + r->n_groups : r->n_units + r->n_slices, k = 0;
        char buf[300];

        parens = parens && n > 1;
        fputs(parens ? "(" : "", out);
        if (who) {
                for (size_t i = 0; i < r->n_users; i++)
                        fprintf(out, "%suser %s", k++ ? " or " : "",
                                id_name(r->users[i], true, buf, sizeof(buf)));
                for (size_t i = 0; i < r->n_groups; i++)
                        fprintf(out, "%sgroup %s", k++ ? " or " : "",
                                id_name(r->groups[i], false, buf, sizeof(buf)));
        } else {
                for (size_t i = 0; i < r->n_units; i++)
                        fprintf(out, "%sunit %s", k++ ? " or " : "", r->units[i]);
                for (size_t i = 0; i < r->n_slices; i++)
                        fprintf(out, "%sslice %s", k++ ? " or " : "", r->slices[i]);
        }
        fputs(parens ? ")" : "", out);
}

/* The peers the rule names, as vfiod_rule_names() evaluates it ("" for nobody). */
static void print_condition_to(FILE *out, const struct vfiod_rule *r)
{
        bool who = r->n_users + r->n_groups > 0, where = r->n_units + r->n_slices > 0;

        if (who)
                print_kind(out, r, true, where);
        if (who && where)
                fprintf(out, " and ");
        if (where)
                print_kind(out, r, false, who);
}

static void print_condition(FILE *out, const struct vfiod_rule *r)
{
        if (r->n_users + r->n_groups + r->n_units + r->n_slices == 0) {
                fprintf(out, "  (names nobody: grants nothing)\n");
                return;
        }
        fprintf(out, "  Condition: ");
        print_condition_to(out, r);
        fputc('\n', out);
}

/* ---- warnings ------------------------------------------------------------------- */

static bool user_in_group(uid_t uid, gid_t gid)
{
        struct passwd *pw = getpwuid(uid);
        gid_t groups[256];
        int n = (int)ELEMENTSOF(groups);

        if (!pw)
                return false;
        if (pw->pw_gid == gid)
                return true;
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
                return false;
        for (int i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

static bool has_glob(char *const *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strpbrk(v[i], "*?["))
                        return true;
        return false;
}

static bool strv_meet(char *const *a, size_t na, char *const *b, size_t nb)
{
        for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++)
                        if (strcmp(a[i], b[j]) == 0)
                                return true;
        return false;
}

/*
 * Whether one peer can be named by both rules, as far as this machine tells (a
 * user in both of two groups, or a unit in two globs, is assumed possible only
 * when the names say so). desc: how to call that peer.
 */
static bool peers_meet(const struct vfiod_rule *a, const struct vfiod_rule *b, char *desc,
                       size_t size)
{
        bool a_who = a->n_users + a->n_groups > 0, b_who = b->n_users + b->n_groups > 0;
        bool a_where = a->n_units + a->n_slices > 0, b_where = b->n_units + b->n_slices > 0;
        char buf[300];
        bool any_who = !a_who || !b_who; /* one of them does not ask who */

        if ((!a_who && !a_where) || (!b_who && !b_where))
                return false; /* names nobody */
        if (a_where && b_where && !has_glob(a->units, a->n_units) &&
            !has_glob(b->units, b->n_units) && !has_glob(a->slices, a->n_slices) &&
            !has_glob(b->slices, b->n_slices) &&
            !strv_meet(a->units, a->n_units, b->units, b->n_units) &&
            !strv_meet(a->slices, a->n_slices, b->slices, b->n_slices))
                return false;
        /* Describe the peer by a term of b (the restricted rule) that a names too. */
        for (size_t i = 0; i < b->n_users && !any_who; i++) {
                bool in = false;

                for (size_t j = 0; j < a->n_users && !in; j++)
                        in = a->users[j] == b->users[i];
                for (size_t j = 0; j < a->n_groups && !in; j++)
                        in = user_in_group(b->users[i], a->groups[j]);
                if (in) {
                        snprintf(desc, size, "user %s",
                                 id_name(b->users[i], true, buf, sizeof(buf)));
                        return true;
                }
        }
        for (size_t i = 0; i < b->n_groups && !any_who; i++) {
                for (size_t j = 0; j < a->n_groups; j++)
                        if (a->groups[j] == b->groups[i]) {
                                snprintf(desc, size, "group %s",
                                         id_name(b->groups[i], false, buf, sizeof(buf)));
                                return true;
                        }
                for (size_t j = 0; j < a->n_users; j++)
                        if (user_in_group(a->users[j], b->groups[i])) {
                                snprintf(desc, size, "user %s",
                                         id_name(a->users[j], true, buf, sizeof(buf)));
                                return true;
                        }
        }
        if (!any_who)
                return false;
        /* One of them says no who: describe the other's first term. */
        {
                const struct vfiod_rule *r = b_who ? b : a_who ? a : b;

                if (r->n_users)
                        snprintf(desc, size, "user %s",
                                 id_name(r->users[0], true, buf, sizeof(buf)));
                else if (r->n_groups)
                        snprintf(desc, size, "group %s",
                                 id_name(r->groups[0], false, buf, sizeof(buf)));
                else if (b->n_units || a->n_units)
                        snprintf(desc, size, "unit %s", b->n_units ? b->units[0] : a->units[0]);
                else
                        snprintf(desc, size, "slice %s", b->n_slices ? b->slices[0] : a->slices[0]);
        }
        return true;
}

static bool ids_within(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
        for (size_t i = 0; i < na; i++) {
                bool in = false;

                for (size_t j = 0; j < nb && !in; j++)
                        in = a[i] == b[j];
                if (!in)
                        return false;
        }
        return true;
}

static bool strv_within(char *const *a, size_t na, char *const *b, size_t nb)
{
        for (size_t i = 0; i < na; i++)
                if (!strv_meet(&a[i], 1, b, nb))
                        return false;
        return true;
}

/* Whether r names every peer w names (as far as this machine's users and groups tell). */
static bool names_all_of(const struct vfiod_rule *r, const struct vfiod_rule *w)
{
        if (r->n_users + r->n_groups) {
                if (w->n_users + w->n_groups == 0 ||
                    !ids_within(w->groups, w->n_groups, r->groups, r->n_groups))
                        return false;
                for (size_t i = 0; i < w->n_users; i++) {
                        bool in = ids_within(&w->users[i], 1, r->users, r->n_users);

                        for (size_t j = 0; j < r->n_groups && !in; j++)
                                in = user_in_group(w->users[i], r->groups[j]);
                        if (!in)
                                return false;
                }
        }
        if (r->n_units + r->n_slices)
                return w->n_units + w->n_slices > 0 &&
                       strv_within(w->units, w->n_units, r->units, r->n_units) &&
                       strv_within(w->slices, w->n_slices, r->slices, r->n_slices);
        return true;
}

static bool windows_inside(const struct vfiod_grant *in, const struct vfiod_grant *out)
{
        for (size_t i = 0; i < in->n_windows; i++)
                if (!vfiod_grant_iova_ok(out, in->windows[i].first,
                                         in->windows[i].last - in->windows[i].first + 1))
                        return false;
        return true;
}

/* What w allows that r does not ("direct mode, no MaxPinnedBytes="); quotas: whether w's
 * quotas would apply in the modes both allow. Returns the length written. */
static size_t widening(const struct vfiod_rule *w, const struct vfiod_rule *r, bool quotas,
                       char *buf, size_t size)
{
        const struct vfiod_grant *wg = &w->grant, *rg = &r->grant;
        size_t len = 0;

#define ADD(...)                                                                                  \
        do {                                                                                      \
                int n_ = snprintf(buf + len, len < size ? size - len : 0, "%s", len ? ", " : ""); \
                len += n_ > 0 ? (size_t)n_ : 0;                                                   \
                n_ = snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__);               \
                len += n_ > 0 ? (size_t)n_ : 0;                                                   \
        } while (0)

        buf[0] = '\0';
        if (w->modes & ~r->modes)
                ADD("%s mode", vfiod_modes_name(w->modes & ~r->modes));
        /* MaxPinnedBytes= in every mode (DIRECT, GROUP: the holder's RLIMIT_MEMLOCK). */
        if (quotas && (w->modes & r->modes) && wg->max_pinned_bytes > rg->max_pinned_bytes)
                ADD("%s MaxPinnedBytes=",
                    wg->max_pinned_bytes == VFIOD_NO_QUOTA_BYTES ? "no" : "a larger");
        if (quotas && (w->modes & r->modes & VFIOD_MODE_BIT_BROKERED)) {
                if (wg->max_pinned_bytes_per_user > rg->max_pinned_bytes_per_user)
                        ADD("%s MaxPinnedBytesPerUser=",
                            wg->max_pinned_bytes_per_user == VFIOD_NO_QUOTA_BYTES ? "no"
                                                                                  : "a larger");
                if (wg->max_mappings > rg->max_mappings)
                        ADD("%s MaxMappings=",
                            wg->max_mappings == VFIOD_NO_QUOTA_MAPPINGS ? "no" : "a larger");
                if (rg->has_windows && !wg->has_windows)
                        ADD("no IovaWindows=");
                else if (rg->has_windows && !windows_inside(wg, rg))
                        ADD("wider IovaWindows=");
        }
        if (quotas && (w->modes & r->modes) && (wg->irq_types & ~rg->irq_types)) {
                char t[32];

                ADD("IrqTypes=%s",
                    vfiod_irq_types_name(wg->irq_types & ~rg->irq_types, t, sizeof(t)));
        }
#undef ADD
        return len;
}

static void warn_overlaps(const struct vfiod_policy *policy, const struct kvfio_pci_list *list,
                          struct vfiod_errors *warnings)
{
        size_t n = policy->n_rules;
        bool *seen = calloc(n ? n * n : 1, sizeof(*seen));
        char peer[300], what[300];

        if (!seen)
                return;
        for (size_t d = 0; d < list->n; d++)
                for (size_t i = 0; i < n; i++) {
                        const struct vfiod_rule *w = &policy->rules[i];

                        if (!vfiod_rule_matches(w, &list->devs[d]))
                                continue;
                        for (size_t j = 0; j < n; j++) {
                                const struct vfiod_rule *r = &policy->rules[j];
                                int wr = rule_rank(w), rr = rule_rank(r);

                                if (i == j || seen[i * n + j] || wr > rr ||
                                    !vfiod_rule_matches(r, &list->devs[d]) ||
                                    !peers_meet(w, r, peer, sizeof(peer)))
                                        continue;
                                /* Equally specific: w's quotas govern where w comes first. */
                                if (!widening(w, r, wr < rr || i < j, what, sizeof(what)))
                                        continue;
                                seen[i * n + j] = true;
                                if (wr < rr && !names_all_of(r, w)) {
                                        char cond[512] = "";
                                        FILE *f = fmemopen(cond, sizeof(cond) - 1, "we");

                                        if (f) {
                                                print_condition_to(f, r);
                                                fclose(f);
                                        }
                                        errors_add(warnings,
                                                   "warning: %s:%u: [Device %s] widens [Device %s] "
                                                   "(%s:%u) on %s for %s (%s): [Device %s], more "
                                                   "specific (%s), governs only where its "
                                                   "condition holds (%s); elsewhere [Device %s] "
                                                   "does",
                                                   w->file, w->line, w->name, r->name, r->file,
                                                   r->line, list->devs[d].bdf, peer, what, r->name,
                                                   rank_key(rr), cond, w->name);
                                } else if (wr < rr)
                                        errors_add(warnings,
                                                   "warning: %s:%u: [Device %s] would give %s on "
                                                   "%s more than [Device %s] (%s:%u) allows (%s): "
                                                   "[Device %s] is more specific (%s) and governs "
                                                   "there",
                                                   w->file, w->line, w->name, peer,
                                                   list->devs[d].bdf, r->name, r->file, r->line,
                                                   what, r->name, rank_key(rr));
                                else
                                        errors_add(warnings,
                                                   "warning: %s:%u: [Device %s] widens [Device %s] "
                                                   "(%s:%u) on %s for %s (%s): equally specific "
                                                   "rules add up",
                                                   w->file, w->line, w->name, r->name, r->file,
                                                   r->line, list->devs[d].bdf, peer, what);
                        }
                }
        free(seen);
}

/* A member of dev's group that rule does not match but an Acquire needs, and no rule that
 * may name the same peers in a mode of rule gives. */
static void warn_partial_groups(const struct vfiod_policy *policy, const struct vfiod_rule *rule,
                                const struct kvfio_pci_list *list, struct vfiod_errors *warnings)
{
        char peer[300];

        for (size_t d = 0; d < list->n; d++) {
                const struct kvfio_pci_dev *dev = &list->devs[d];
                bool first = true;

                if (dev->iommu_group < 0 || !vfiod_rule_matches(rule, dev))
                        continue;
                for (size_t e = 0; e < d && first; e++)
                        first = !(list->devs[e].iommu_group == dev->iommu_group &&
                                  vfiod_rule_matches(rule, &list->devs[e]));
                if (!first)
                        continue; /* the group was looked at */
                for (size_t m = 0; m < list->n; m++) {
                        const struct kvfio_pci_dev *mem = &list->devs[m];
                        bool covered = false;

                        if (mem->iommu_group != dev->iommu_group || vfiod_rule_matches(rule, mem) ||
                            !(kvfio_dev_is_vfio(mem) ||
                              (rule->grant.managed && !kvfio_pci_dev_is_bridge(mem))))
                                continue;
                        for (size_t o = 0; o < policy->n_rules && !covered; o++) {
                                const struct vfiod_rule *other = &policy->rules[o];

                                covered = (other->modes & rule->modes) &&
                                          vfiod_rule_matches(other, mem) &&
                                          peers_meet(other, rule, peer, sizeof(peer));
                        }
                        if (!covered)
                                errors_add(warnings,
                                           "warning: %s:%u: [Device %s] covers part of IOMMU group "
                                           "%d: it matches %s but not %s (%s%s), which every "
                                           "Acquire of the group needs and no rule gives the "
                                           "same peers",
                                           rule->file, rule->line, rule->name, dev->iommu_group,
                                           dev->bdf, mem->bdf,
                                           mem->driver[0] ? "driver " : "no driver", mem->driver);
                }
        }
}

/* Whether the rule gives a value to a key of the brokered quotas. */
static bool quota_set(const struct vfiod_grant *g, enum rule_key key)
{
        switch (key) {
        case KEY_MAX_PINNED:
                return g->max_pinned_bytes != VFIOD_NO_QUOTA_BYTES;
        case KEY_MAX_PINNED_PER_USER:
                return g->max_pinned_bytes_per_user != VFIOD_NO_QUOTA_BYTES;
        case KEY_MAX_MAPPINGS:
                return g->max_mappings != VFIOD_NO_QUOTA_MAPPINGS;
        case KEY_IOVA_WINDOWS:
                return g->has_windows;
        default:
                return false;
        }
}

void vfiod_policy_warnings(const struct vfiod_policy *policy, const struct kvfio_pci_list *list,
                           struct vfiod_errors *warnings)
{
        static const struct {
                enum rule_key key;
                const char *name;
        } brokered_only[] = {
            /* MaxPinnedBytes= is every mode's: DIRECT and GROUP, the holder's RLIMIT_MEMLOCK. */
            {KEY_MAX_PINNED_PER_USER, "MaxPinnedBytesPerUser"},
            {KEY_MAX_MAPPINGS, "MaxMappings"},
            {KEY_IOVA_WINDOWS, "IovaWindows"},
        };

        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *rule = &policy->rules[i];
                const struct vfiod_grant *g = &rule->grant;
                bool any = false;

                for (size_t j = 0; list && j < list->n && !any; j++)
                        any = vfiod_rule_matches(rule, &list->devs[j]);
                if (list && !any)
                        errors_add(warnings,
                                   "warning: %s:%u: [Device %s] matches no device on this machine",
                                   rule->file, rule->line, rule->name);
                if (list)
                        warn_partial_groups(policy, rule, list, warnings);
                if (rule->modes & VFIOD_MODE_BIT_BROKERED)
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(brokered_only); k++) {
                        enum rule_key key = brokered_only[k].key;
                        unsigned f = rule->key_file[key];

                        if (!quota_set(g, key))
                                continue;
                        errors_add(warnings,
                                   "warning: %s:%u: [Device %s] %s= applies to brokered mode only, "
                                   "and the rule allows only %s (the holder pins against its own "
                                   "RLIMIT_MEMLOCK, which MaxPinnedBytes= raises)",
                                   f && f <= policy->n_files ? policy->files[f - 1] : rule->file,
                                   f ? rule->key_line[key] : rule->line, rule->name,
                                   brokered_only[k].name, vfiod_modes_name(rule->modes));
                }
        }
        if (list)
                warn_overlaps(policy, list, warnings);
}

/* A rule's conditions: who may have which devices. */
static void print_rule_conditions(FILE *out, const struct vfiod_policy *policy,
                                  const struct vfiod_rule *rule)
{
        if (rule->n_match) {
                print_strv(out, "Match", rule->match, rule->n_match);
                print_end(out, policy, rule, KEY_MATCH);
        }
        if (rule->n_vendors) {
                fprintf(out, "  MatchVendor=");
                for (size_t j = 0; j < rule->n_vendors; j++) {
                        const struct vfiod_vendor_match *m = &rule->vendors[j];
                        char v[12] = "*", d[12] = "*";

                        if (m->vendor >= 0)
                                snprintf(v, sizeof(v), "%04x", (unsigned)m->vendor);
                        if (m->device >= 0)
                                snprintf(d, sizeof(d), "%04x", (unsigned)m->device);
                        fprintf(out, "%s%s:%s", j ? " " : "", v, d);
                }
                print_end(out, policy, rule, KEY_MATCH_VENDOR);
        }
        if (rule->n_classes) {
                fprintf(out, "  MatchClass=");
                for (size_t j = 0; j < rule->n_classes; j++)
                        fprintf(out, "%s0x%0*x", j ? " " : "", (int)rule->classes[j].digits,
                                rule->classes[j].value);
                print_end(out, policy, rule, KEY_MATCH_CLASS);
        }
        if (rule->n_iommu_groups) {
                fprintf(out, "  MatchGroup=");
                for (size_t j = 0; j < rule->n_iommu_groups; j++)
                        fprintf(out, "%s%d", j ? " " : "", rule->iommu_groups[j]);
                print_end(out, policy, rule, KEY_MATCH_GROUP);
        }
        if (rule->n_users) {
                print_ids(out, "Users", rule->users, rule->n_users, true);
                print_end(out, policy, rule, KEY_USERS);
        }
        if (rule->n_groups) {
                print_ids(out, "Groups", rule->groups, rule->n_groups, false);
                print_end(out, policy, rule, KEY_GROUPS);
        }
        if (rule->n_units) {
                print_strv(out, "Units", rule->units, rule->n_units);
                print_end(out, policy, rule, KEY_UNITS);
        }
        if (rule->n_slices) {
                print_strv(out, "Slices", rule->slices, rule->n_slices);
                print_end(out, policy, rule, KEY_SLICES);
        }
        print_condition(out, rule);
}

/* What a rule grants: modes, quotas, windows, IRQ types, Managed=. */
static void print_rule_grant(FILE *out, const struct vfiod_policy *policy,
                             const struct vfiod_rule *rule)
{
        const struct vfiod_grant *g = &rule->grant;
        char buf[64];

        fprintf(out, "  Modes=%s", vfiod_modes_name(rule->modes));
        print_end(out, policy, rule, KEY_MODES);
        if (g->max_pinned_bytes != VFIOD_NO_QUOTA_BYTES) {
                fprintf(out, "  MaxPinnedBytes=%" PRIu64, g->max_pinned_bytes);
                print_end(out, policy, rule, KEY_MAX_PINNED);
        }
        if (g->max_pinned_bytes_per_user != VFIOD_NO_QUOTA_BYTES) {
                fprintf(out, "  MaxPinnedBytesPerUser=%" PRIu64, g->max_pinned_bytes_per_user);
                print_end(out, policy, rule, KEY_MAX_PINNED_PER_USER);
        }
        if (g->max_mappings != VFIOD_NO_QUOTA_MAPPINGS) {
                fprintf(out, "  MaxMappings=%" PRIu32, g->max_mappings);
                print_end(out, policy, rule, KEY_MAX_MAPPINGS);
        }
        if (g->has_windows) {
                fprintf(out, "  IovaWindows=");
                for (size_t j = 0; j < g->n_windows; j++)
                        fprintf(out, "%s0x%" PRIx64 "-0x%" PRIx64, j ? " " : "",
                                g->windows[j].first, g->windows[j].last);
                print_end(out, policy, rule, KEY_IOVA_WINDOWS);
        }
        fprintf(out, "  IrqTypes=%s", vfiod_irq_types_name(g->irq_types, buf, sizeof(buf)));
        print_end(out, policy, rule, KEY_IRQ_TYPES);
        fprintf(out, "  Managed=%s", g->managed ? "yes" : "no");
        print_end(out, policy, rule, KEY_MANAGED);
}

/* The devices of this machine a rule matches (nothing when list is NULL). */
static void print_rule_devices(FILE *out, const struct vfiod_rule *rule,
                               const struct kvfio_pci_list *list)
{
        size_t n = 0;

        for (size_t j = 0; list && j < list->n; j++) {
                const struct kvfio_pci_dev *d = &list->devs[j];

                if (!vfiod_rule_matches(rule, d))
                        continue;
                n++;
                fprintf(out, "  matches %s (%04x:%04x, class 0x%06x, IOMMU group %d, %s%s)%s\n",
                        d->bdf, d->vendor, d->device, d->class, d->iommu_group,
                        d->driver[0] ? "driver " : "no driver", d->driver,
                        d->iommu_group < 0 ? ": no IOMMU group, not leasable"
                        : !rule->grant.managed && !kvfio_dev_is_vfio(d)
                            ? ": not leasable until bound to vfio-pci"
                            : "");
        }
        if (list && n == 0)
                fprintf(out, "  matches no device on this machine\n");
}

/* [Daemon]: the admins and every limit. */
static void print_daemon_section(FILE *out, const struct vfiod_policy *policy)
{
        fprintf(out, "\n[Daemon]\n");
        fprintf(out, "  AdminUsers=root(0)");
        for (size_t i = 0; i < policy->n_admin_users; i++) {
                struct passwd *pw = getpwuid(policy->admin_users[i]);

                if (pw)
                        fprintf(out, " %s(%u)", pw->pw_name, policy->admin_users[i]);
                else
                        fprintf(out, " %u", policy->admin_users[i]);
        }
        fputc('\n', out);
        if (policy->n_admin_groups) {
                print_ids(out, "AdminGroups", policy->admin_groups, policy->n_admin_groups, false);
                fputc('\n', out);
        }
        for (size_t i = 0; i < ELEMENTSOF(limit_keys); i++) {
                const struct limit_key *k = &limit_keys[i];
                uint64_t v = k->is64
                                 ? *(const uint64_t *)((const char *)&policy->limits + k->offset)
                                 : *(const uint32_t *)((const char *)&policy->limits + k->offset);

                fprintf(out, "  %s=%" PRIu64 "\n", k->key, v);
        }
}

/* The warnings of vfiod_policy_warnings(), after an empty line when there are any. */
static void print_warnings(FILE *out, const struct vfiod_policy *policy,
                           const struct kvfio_pci_list *list)
{
        struct vfiod_errors warnings = {0};

        vfiod_policy_warnings(policy, list, &warnings);
        if (warnings.n)
                fputc('\n', out);
        for (size_t i = 0; i < warnings.n; i++)
                fprintf(out, "%s\n", warnings.lines[i]);
        vfiod_errors_clear(&warnings);
}

void vfiod_policy_print(const struct vfiod_policy *policy, const char *sysfs_root, FILE *out)
{
        struct kvfio_pci_list *list = NULL;
        int r;

        for (size_t i = 0; i < policy->n_files; i++)
                fprintf(out, "file %s\n", policy->files[i]);
        r = kvfio_dev_discover(sysfs_root, &list);
        if (r < 0)
                fprintf(out, "cannot list the PCI devices under '%s': %s\n", sysfs_root,
                        strerror(-r));
        for (size_t i = 0; i < policy->n_rules; i++) {
                const struct vfiod_rule *rule = &policy->rules[i];

                fprintf(out, "\n[Device %s] (%s:%u)\n", rule->name, rule->file, rule->line);
                print_rule_conditions(out, policy, rule);
                print_rule_grant(out, policy, rule);
                print_rule_devices(out, rule, list);
        }
        print_daemon_section(out, policy);
        print_warnings(out, policy, list);
        kvfio_pci_list_free(list);
}
