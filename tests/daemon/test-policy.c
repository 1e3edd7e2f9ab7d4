/* SPDX-License-Identifier: MIT */
/*
 * The configuration: parsing (good files, every kind of bad one, with
 * file:line), drop-ins (order, overrides key by key, errors naming the
 * drop-in), matching against fake sysfs trees and fake peers, grants and
 * the reasons of denials, and what --check-config prints.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/policy.h"
#include "proto/macro.h"
#include "tests/testutil.h"

static char *dir;
static char path[4096];

static void setup(void)
{
        dir = testutil_mkdtemp("vfiod-policy");
        snprintf(path, sizeof(path), "%s/vfiod.conf", dir);
}

static void teardown(void)
{
        testutil_rmtree(dir);
        free(dir);
}

static int load(const char *text, struct vfiod_policy **ret, struct vfiod_errors *errors)
{
        testutil_write_file(dir, "vfiod.conf", text);
        return vfiod_policy_load(path, false, ret, errors);
}

static void dropin(const char *name, const char *text)
{
        char rel[256];

        snprintf(rel, sizeof(rel), "vfiod.conf.d/%s", name);
        testutil_write_file(dir, rel, text);
}

/* ---- good files ------------------------------------------------------------------------ */

START_TEST(good)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        char buf[32];

        ck_assert_int_eq(load("# comment\n"
                              "; another\n"
                              "[Daemon]\n"
                              "AdminUsers=0 42\n"
                              "AdminGroups=root\n"
                              "MaxLeasesPerClient=3\n"
                              "MaxPinnedBytesPerClient=2G\n"
                              "ReleaseGraceMs=0\n"
                              "\n"
                              "[Device gpu]\n"
                              "Match=01:00.0 0000:01:00.1\n"
                              "Match=0000:02:00.0\n"
                              "Users=root 1000\n"
                              "Groups=0 2000\n"
                              "Modes=direct\n"
                              "[Device nic]\n"
                              "MatchVendor=8086:* 10DE:1eb8 *:11e8\n"
                              "MatchClass=0x02 0200 0x030000\n"
                              "MatchGroup=3 12\n"
                              "Units=vm@*.service\n"
                              "Slices=machine.slice user-*.slice\n"
                              "Users=1001\n"
                              "MaxPinnedBytes=64M\n"
                              "MaxMappings=8\n"
                              "IovaWindows=0x0-0xfffffff 0x100000000-0x1ffffffff\n"
                              "IrqTypes=msi\n"
                              "IrqTypes=msix\n"
                              "Managed=yes\n",
                              &p, &errors),
                         0);
        ck_assert_uint_eq(errors.n, 0);
        ck_assert_uint_eq(p->n_rules, 2);
        ck_assert_uint_eq(p->n_files, 1);
        ck_assert_str_eq(p->rules[0].name, "gpu");
        ck_assert_uint_eq(p->rules[0].line, 10);
        ck_assert_uint_eq(p->rules[0].n_match, 3);
        ck_assert_str_eq(p->rules[0].match[0], "0000:01:00.0");
        ck_assert_str_eq(p->rules[0].match[2], "0000:02:00.0");
        ck_assert_uint_eq(p->rules[0].n_users, 2);
        ck_assert_uint_eq(p->rules[0].users[0], 0);
        ck_assert_uint_eq(p->rules[0].users[1], 1000);
        ck_assert_uint_eq(p->rules[0].modes, VFIOD_MODE_BIT_DIRECT);
        /* defaults of a rule: no quota, every IRQ type, not managed */
        ck_assert_uint_eq(p->rules[0].grant.max_pinned_bytes, VFIOD_NO_QUOTA_BYTES);
        ck_assert_uint_eq(p->rules[0].grant.max_mappings, VFIOD_NO_QUOTA_MAPPINGS);
        ck_assert(!p->rules[0].grant.has_windows);
        ck_assert_uint_eq(p->rules[0].grant.irq_types, VFIOD_IRQ_BITS_ALL);
        ck_assert(!p->rules[0].grant.managed);

        ck_assert_uint_eq(p->rules[1].modes, VFIOD_MODE_BITS_ALL); /* default: both */
        ck_assert_uint_eq(p->rules[1].n_vendors, 3);
        ck_assert_int_eq(p->rules[1].vendors[0].vendor, 0x8086);
        ck_assert_int_eq(p->rules[1].vendors[0].device, -1);
        ck_assert_int_eq(p->rules[1].vendors[1].vendor, 0x10de);
        ck_assert_int_eq(p->rules[1].vendors[1].device, 0x1eb8);
        ck_assert_int_eq(p->rules[1].vendors[2].vendor, -1);
        ck_assert_uint_eq(p->rules[1].n_classes, 3);
        ck_assert_uint_eq(p->rules[1].classes[0].value, 0x02);
        ck_assert_uint_eq(p->rules[1].classes[0].digits, 2);
        ck_assert_uint_eq(p->rules[1].classes[1].value, 0x0200);
        ck_assert_uint_eq(p->rules[1].classes[1].digits, 4);
        ck_assert_uint_eq(p->rules[1].classes[2].digits, 6);
        ck_assert_uint_eq(p->rules[1].n_iommu_groups, 2);
        ck_assert_int_eq(p->rules[1].iommu_groups[1], 12);
        ck_assert_uint_eq(p->rules[1].n_units, 1);
        ck_assert_str_eq(p->rules[1].units[0], "vm@*.service");
        ck_assert_uint_eq(p->rules[1].n_slices, 2);
        ck_assert_uint_eq(p->rules[1].grant.max_pinned_bytes, 64ull << 20);
        ck_assert_uint_eq(p->rules[1].grant.max_mappings, 8);
        ck_assert(p->rules[1].grant.has_windows);
        ck_assert_uint_eq(p->rules[1].grant.n_windows, 2);
        ck_assert_uint_eq(p->rules[1].grant.windows[1].first, 0x100000000ull);
        ck_assert_uint_eq(p->rules[1].grant.windows[1].last, 0x1ffffffffull);
        /* a list key repeated in one file adds up */
        ck_assert_str_eq(vfiod_irq_types_name(p->rules[1].grant.irq_types, buf, sizeof(buf)),
                         "msi msix");
        ck_assert(p->rules[1].grant.managed);
        ck_assert_str_eq(p->rules[1].grant.pinned_rule, "nic");

        ck_assert_uint_eq(p->n_admin_users, 2);
        ck_assert_uint_eq(p->admin_users[1], 42);
        ck_assert_uint_eq(p->limits.max_leases_per_client, 3);
        ck_assert_uint_eq(p->limits.max_pinned_bytes_per_client, 2ull << 30);
        ck_assert_uint_eq(p->limits.release_grace_ms, 0);
        /* untouched keys keep their defaults */
        ck_assert_uint_eq(p->limits.max_domains_per_client, VFIOD_DEFAULT_MAX_DOMAINS_PER_CLIENT);
        vfiod_policy_free(p);
}
END_TEST

/* Values that are good in their own odd way. */
static const struct {
        const char *text;
        const char *what;
} good_values[] = {
    {"[Device a]\nMatchGroup=0\nUsers=1\nManaged=no\nManaged=true\n", "bool spellings"},
    {"[Device a]\nMatchGroup=0\nUsers=1\nMaxPinnedBytes=infinity\nMaxMappings=infinity\n",
     "infinity"},
    {"[Device a]\nMatchGroup=0\nUsers=1\nIrqTypes=none\n", "no interrupts"},
    {"[Device a]\nMatchGroup=0\nUsers=1\nIovaWindows=4096-8191\n", "decimal windows"},
    {"[Device a]\nMatchGroup=0\nUsers=\nGroups=\n", "a rule naming nobody"},
    {"[Device a]\nMatchVendor=*:*\nUsers=1\n", "any vendor"},
    {"\n", "empty file"},
    {"[Daemon]\n", "empty [Daemon]"},
};

START_TEST(good_table)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_msg(load(good_values[_i].text, &p, &errors) == 0, "%s: %s", good_values[_i].what,
                      errors.n ? errors.lines[0] : "?");
        vfiod_policy_free(p);
        vfiod_errors_clear(&errors);
}
END_TEST

/* ---- bad files --------------------------------------------------------------------- */

static const struct {
        const char *text;
        unsigned line;
        const char *needle;
} bad[] = {
    {"[Foo]\nX=1\n", 1, "unknown section [Foo]"},
    {"[Daemon]\nMaxLeasesPerClient=3\nBogus=1\n", 3, "unknown key 'Bogus' in [Daemon]"},
    {"[Device a]\nMatch=0000:00:01.0\nColor=red\n", 3, "unknown key 'Color' in [Device a]"},
    {"[Device a]\nMatch=0000:00:01.0 zz:zz\n", 2, "not a PCI address 'zz:zz'"},
    {"[Device a]\nMatch=6d646d61-0000-4000-8000-00000000000g\n", 2,
     "not a PCI address '6d646d61-0000-4000-8000-00000000000g' (DDDD:BB:DD.F or BB:DD.F) nor an "
     "mdev UUID"},
    {"[Device a]\nMatch=0000:00:01.0\nUsers=no-such-user-here\n", 3,
     "unknown user 'no-such-user-here'"},
    {"[Device a]\nMatch=0000:00:01.0\nGroups=no-such-group-here\n", 3,
     "unknown group 'no-such-group-here'"},
    {"[Device a]\nMatch=0000:00:01.0\nUsers=4294967295\n", 3, "bad number '4294967295'"},
    {"[Device a]\nMatch=0000:00:01.0\nModes=direct sideways\n", 3, "unknown mode 'sideways'"},
    {"[Device a]\nMatchVendor=8086\n", 2, "not VENDOR:DEVICE"},
    {"[Device a]\nMatchVendor=80861:1\n", 2, "not VENDOR:DEVICE"},
    {"[Device a]\nMatchVendor=80g6:*\n", 2, "not VENDOR:DEVICE"},
    {"[Device a]\nMatchVendor=8086:\n", 2, "not VENDOR:DEVICE"},
    {"[Device a]\nMatchClass=0x020\n", 2, "not a class prefix"},
    {"[Device a]\nMatchClass=0x0200000\n", 2, "not a class prefix"},
    {"[Device a]\nMatchClass=net\n", 2, "not a class prefix"},
    {"[Device a]\nMatchGroup=-1\n", 2, "not an IOMMU group number '-1'"},
    {"[Device a]\nMatchGroup=3x\n", 2, "not an IOMMU group number '3x'"},
    {"[Device a]\nMatch=0000:00:01.0\nUnits=a/b.service\n", 3, "not a unit name or glob"},
    {"[Device a]\nMatch=0000:00:01.0\nSlices=x/y\n", 3, "not a unit name or glob"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxPinnedBytes=0\n", 3, "MaxPinnedBytes=: bad value '0'"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxPinnedBytes=1X\n", 3, "MaxPinnedBytes=: bad value '1X'"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxPinnedBytes=-5\n", 3, "MaxPinnedBytes=: bad value"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxMappings=0\n", 3, "MaxMappings=: bad value '0'"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxMappings=many\n", 3, "MaxMappings=: bad value 'many'"},
    {"[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x1000\n", 3, "not FIRST-LAST"},
    {"[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x2000-0x1000\n", 3,
     "not FIRST-LAST (inclusive, FIRST <= LAST) '0x2000-0x1000'"},
    {"[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x0-0xzz\n", 3, "not FIRST-LAST"},
    {"[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x1001-0x1fff\n", 3,
     "IovaWindows=: '0x1001-0x1fff' is not page-aligned (FIRST and LAST + 1 multiples of "
     "0x1000)"},
    {"[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x1000-0x1ffe\n", 3, "is not page-aligned"},
    {"[Device a]\nMatch=0000:00:01.0\nMaxPinnedBytesPerUser=0\n", 3,
     "MaxPinnedBytesPerUser=: bad value '0'"},
    {"[Device a]\nMatch=0000:00:01.0\nIrqTypes=msi nmi\n", 3, "unknown interrupt type 'nmi'"},
    {"[Device a]\nMatch=0000:00:01.0\nManaged=maybe\n", 3, "Managed=: bad value 'maybe'"},
    {"[Daemon]\nMaxLeasesPerClient=0\n", 2, "bad value '0'"},
    {"[Daemon]\nMaxFdsPerMessage=254\n", 2, "bad value '254'"},
    {"[Daemon]\nMaxConnections=ten\n", 2, "bad value 'ten'"},
    {"[Daemon]\nMaxPinnedBytesPerClient=5X\n", 2, "bad value '5X'"},
    {"[Daemon]\nAdminUsers=no-such-user-here\n", 2, "unknown user"},
    {"[Daemon]\n\nthis line has no equals sign\n", 3, "syntax error"},
    {"\n\n[Device a]\nUsers=1000\n", 3, "has no Match=, MatchVendor="},
    {"[Device a]\nMatch=\nUsers=1\n", 1, "has no Match="},
    {"[Device a]\nMatch=0000:00:01.0\n[Device a]\nMatch=0000:00:02.0\n", 3,
     "duplicate section [Device a] (first at line 1)"},
    {"Users=1000\n", 1, "outside of a section"},
    {"[Device]\nMatch=0000:00:01.0\n", 1, "needs a name"},
    {"[Device   ]\nMatch=0000:00:01.0\n", 1, "needs a name"},
};

/* Loads text, expects it invalid with an error that starts with "path:line:" and says needle. */
START_TEST(bad_table)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        char prefix[4200];

        ck_assert_int_eq(load(bad[_i].text, &p, &errors), -EINVAL);
        ck_assert_ptr_null(p);
        ck_assert_msg(errors.n >= 1, "no error reported for:\n%s", bad[_i].text);
        snprintf(prefix, sizeof(prefix), "%s:%u: ", path, bad[_i].line);
        ck_assert_msg(strncmp(errors.lines[0], prefix, strlen(prefix)) == 0,
                      "'%s' does not start with '%s'", errors.lines[0], prefix);
        ck_assert_msg(strstr(errors.lines[0], bad[_i].needle), "'%s' does not say '%s'",
                      errors.lines[0], bad[_i].needle);
        vfiod_errors_clear(&errors);
}
END_TEST

START_TEST(all_errors_reported)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_int_eq(
            load("[Daemon]\nA=1\nB=2\n[Nope]\n[Device x]\nMatchClass=1\n", &p, &errors), -EINVAL);
        /* A, B, [Nope], MatchClass; not also "has no Match=" for the rule whose match was bad */
        ck_assert_uint_eq(errors.n, 4);
        vfiod_errors_clear(&errors);
}
END_TEST

/* One mistake, one error: no second message that follows from the first. */
START_TEST(one_error_per_mistake)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_int_eq(
            load("[Device a]\nMatch=0000:00:01.0\nIovaWindows=0x2000-0x1000\n", &p, &errors),
            -EINVAL);
        ck_assert_uint_eq(errors.n, 1);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "not FIRST-LAST"));
        vfiod_errors_clear(&errors);
        ck_assert_int_eq(load("[Device a]\nMatchVendor=8086\nUsers=0\n", &p, &errors), -EINVAL);
        ck_assert_uint_eq(errors.n, 1);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "not VENDOR:DEVICE"));
        vfiod_errors_clear(&errors);
        /* Still reported when nothing else was wrong. */
        ck_assert_int_eq(load("[Device a]\nUsers=0\n", &p, &errors), -EINVAL);
        ck_assert_uint_eq(errors.n, 1);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "has no Match="));
        vfiod_errors_clear(&errors);
}
END_TEST

/* Loads len bytes (NULs and all) as the configuration file. */
static int load_bytes(const char *bytes, size_t len, struct vfiod_policy **ret,
                      struct vfiod_errors *errors)
{
        FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
        return vfiod_policy_load(path, false, ret, errors);
}

#define RULE "[Device x]\nMatch=0000:00:01.0\n"

/*
 * A configuration is text: a NUL byte (where inih would silently stop
 * reading the line, or the file) or bytes that are not UTF-8 are refused,
 * with the file and line.
 */
START_TEST(nul_and_bad_utf8_refused)
{
        static const struct {
                const char *what;
                const char *bytes;
                size_t len;
                const char *want; /* how the first error starts, after the folder */
        } cases[] = {
#define BAD(what, text, want) {what, text, sizeof(text) - 1, want}
            BAD("a NUL first", "\0[Daemon]\n", "/vfiod.conf:1: a NUL byte"),
            BAD("a NUL first, then a rule", "\0" RULE "Users=1000\n", "/vfiod.conf:1: a NUL byte"),
            BAD("a NUL in a value", RULE "Users=1000\0 1001\n", "/vfiod.conf:3: a NUL byte"),
            BAD("a NUL in a comment", "# x\0y\n" RULE "Users=1000\n", "/vfiod.conf:1: a NUL"),
            BAD("Latin-1", "# caf\xe9\n" RULE "Users=1000\n", "/vfiod.conf:1: not UTF-8"),
            BAD("a stray continuation", RULE "Users=1000 \x80\n", "/vfiod.conf:3: not UTF-8"),
            BAD("an overlong", RULE "# \xc0\xaf\nUsers=1000\n", "/vfiod.conf:3: not UTF-8"),
            BAD("a surrogate", RULE "# \xed\xa0\x80\nUsers=1000\n", "/vfiod.conf:3: not UTF-8"),
            BAD("above U+10FFFF", RULE "# \xf4\x90\x80\x80\nUsers=1000\n",
                "/vfiod.conf:3: not UTF-8"),
            BAD("cut at the line's end", RULE "# \xe2\x82\nUsers=1000\n",
                "/vfiod.conf:3: not UTF-8"),
            BAD("cut at the file's end", RULE "Users=1000\n# \xe2\x82", "/vfiod.conf:4: not UTF-8"),
#undef BAD
        };
        static const char text[] =
            "# caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n" RULE "Users=1000\n";

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct vfiod_errors errors = {0};
                struct vfiod_policy *p = NULL;
                int r = load_bytes(cases[i].bytes, cases[i].len, &p, &errors);

                ck_assert_msg(r == -EINVAL, "%s: loaded (%d)", cases[i].what, r);
                ck_assert_uint_ge(errors.n, 1);
                ck_assert_msg(strncmp(errors.lines[0], dir, strlen(dir)) == 0 &&
                                  strncmp(errors.lines[0] + strlen(dir), cases[i].want,
                                          strlen(cases[i].want)) == 0,
                              "%s: '%s' does not start with '%s'", cases[i].what, errors.lines[0],
                              cases[i].want);
                vfiod_errors_clear(&errors);
        }
        {
                struct vfiod_errors errors = {0};
                struct vfiod_policy *p = NULL;

                ck_assert_int_eq(load_bytes(text, sizeof(text) - 1, &p, &errors), 0);
                ck_assert_uint_eq(p->n_rules, 1);
                vfiod_policy_free(p);
        }
}
END_TEST

START_TEST(missing_file)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_int_eq(vfiod_policy_load(path, false, &p, &errors), -ENOENT);
        ck_assert_uint_eq(errors.n, 1);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "cannot open"));
        vfiod_errors_clear(&errors);
        ck_assert_int_eq(vfiod_policy_load(path, true, &p, &errors), 0);
        ck_assert_uint_eq(p->n_rules, 0);
        vfiod_policy_free(p);
}
END_TEST

/* ---- drop-ins ------------------------------------------------------------------------- */

START_TEST(dropins_order_and_override)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        const struct vfiod_rule *r;

        dropin("20-later.conf", "[Device gpu]\nUsers=1002\nMaxMappings=4\n"
                                "[Daemon]\nMaxLeasesPerClient=7\n");
        dropin("10-first.conf", "[Device gpu]\nUsers=1001\nModes=brokered\nMaxMappings=2\n"
                                "[Device extra]\nMatchGroup=9\nGroups=5\n"
                                "[Daemon]\nMaxLeasesPerClient=5\nAdminUsers=7\n");
        dropin("30-clear.conf", "[Device extra]\nGroups=\nUsers=6\n[Daemon]\nAdminUsers=\n");
        dropin("README", "not a drop-in: no .conf suffix\n");
        dropin(".hidden.conf", "garbage\n");
        ck_assert_int_eq(load("[Daemon]\nAdminUsers=3\nMaxDomainsPerClient=2\n"
                              "[Device gpu]\nMatch=0000:01:00.0\nUsers=1000\nUsers=999\n"
                              "MaxPinnedBytes=1M\nIrqTypes=msi\n",
                              &p, &errors),
                         0);
        ck_assert_uint_eq(errors.n, 0);
        ck_assert_uint_eq(p->n_files, 4);
        ck_assert_ptr_nonnull(strstr(p->files[1], "10-first.conf"));
        ck_assert_ptr_nonnull(strstr(p->files[2], "20-later.conf"));
        ck_assert_ptr_nonnull(strstr(p->files[3], "30-clear.conf"));
        ck_assert_uint_eq(p->n_rules, 2);
        r = &p->rules[0];
        ck_assert_str_eq(r->name, "gpu");
        ck_assert_str_eq(r->file, path); /* where it first appeared */
        /* Users= replaced by each later file in turn: the last one wins. */
        ck_assert_uint_eq(r->n_users, 1);
        ck_assert_uint_eq(r->users[0], 1002);
        /* Keys a later file leaves alone stay. */
        ck_assert_uint_eq(r->n_match, 1);
        ck_assert_uint_eq(r->modes, VFIOD_MODE_BIT_BROKERED);
        ck_assert_uint_eq(r->grant.max_mappings, 4);
        ck_assert_uint_eq(r->grant.max_pinned_bytes, 1u << 20);
        ck_assert_uint_eq(r->grant.irq_types, VFIOD_IRQ_BIT_MSI);
        r = &p->rules[1];
        ck_assert_str_eq(r->name, "extra");
        ck_assert_uint_eq(r->n_groups, 0); /* emptied */
        ck_assert_uint_eq(r->n_users, 1);
        ck_assert_uint_eq(p->limits.max_leases_per_client, 7);
        ck_assert_uint_eq(p->limits.max_domains_per_client, 2);
        ck_assert_uint_eq(p->n_admin_users, 0); /* emptied */
        vfiod_policy_free(p);
}
END_TEST

START_TEST(dropin_errors)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        char want[10000];

        /* An error names the drop-in and its line; the whole configuration is refused. */
        dropin("50-bad.conf", "[Device gpu]\n\nMaxMappings=lots\n");
        ck_assert_int_eq(load("[Device gpu]\nMatch=0000:01:00.0\nUsers=1\n", &p, &errors), -EINVAL);
        ck_assert_ptr_null(p);
        ck_assert_uint_eq(errors.n, 1);
        snprintf(want, sizeof(want), "%s/vfiod.conf.d/50-bad.conf:3: MaxMappings=: bad value", dir);
        ck_assert_msg(strncmp(errors.lines[0], want, strlen(want)) == 0, "'%s'", errors.lines[0]);
        vfiod_errors_clear(&errors);

        /* A drop-in may not repeat a section within itself either. */
        dropin("50-bad.conf", "[Device gpu]\nUsers=2\n[Device gpu]\nUsers=3\n");
        ck_assert_int_eq(load("[Device gpu]\nMatch=0000:01:00.0\n", &p, &errors), -EINVAL);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "50-bad.conf:3: duplicate section"));
        vfiod_errors_clear(&errors);

        /* A drop-in that empties the only Match key leaves a rule matching nothing. */
        dropin("50-bad.conf", "[Device gpu]\nMatch=\n");
        ck_assert_int_eq(load("\n[Device gpu]\nMatch=0000:01:00.0\n", &p, &errors), -EINVAL);
        snprintf(want, sizeof(want), "%s:2: [Device gpu] has no Match=", path);
        ck_assert_msg(strncmp(errors.lines[0], want, strlen(want)) == 0, "'%s'", errors.lines[0]);
        vfiod_errors_clear(&errors);

        /* A rule only in a drop-in without a match key: named at its own file. */
        dropin("50-bad.conf", "[Device new]\nUsers=1\n");
        ck_assert_int_eq(load("", &p, &errors), -EINVAL);
        ck_assert_ptr_nonnull(strstr(errors.lines[0], "50-bad.conf:1: [Device new] has no"));
        vfiod_errors_clear(&errors);
}
END_TEST

START_TEST(dropins_without_main)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        dropin("a.conf", "[Device a]\nMatchGroup=1\nUsers=1\n");
        /* At start without --config the main file may be missing; the drop-ins still count. */
        ck_assert_int_eq(vfiod_policy_load(path, true, &p, &errors), 0);
        ck_assert_uint_eq(p->n_rules, 1);
        vfiod_policy_free(p);
        ck_assert_int_eq(vfiod_policy_load(path, false, &p, &errors), -ENOENT);
        vfiod_errors_clear(&errors);
}
END_TEST

/* ---- matching against a fake sysfs tree ------------------------------------------- */

static void fake_dev(const char *bdf, const char *vendor, const char *device, const char *class,
                     int group, const char *driver)
{
        char rel[256], link[4200], target[256];

        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/vendor", bdf);
        testutil_write_file(dir, rel, vendor);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/device", bdf);
        testutil_write_file(dir, rel, device);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/class", bdf);
        testutil_write_file(dir, rel, class);
        snprintf(link, sizeof(link), "%s/sys/bus/pci/devices/%s/iommu_group", dir, bdf);
        snprintf(target, sizeof(target), "../../../../kernel/iommu_groups/%d", group);
        ck_assert_int_eq(symlink(target, link), 0);
        if (driver) {
                snprintf(link, sizeof(link), "%s/sys/bus/pci/devices/%s/driver", dir, bdf);
                snprintf(target, sizeof(target), "../../../../bus/pci/drivers/%s", driver);
                ck_assert_int_eq(symlink(target, link), 0);
        }
}

static struct kvfio_pci_list *fake_tree(void)
{
        struct kvfio_pci_list *list = NULL;

        fake_dev("0000:00:01.0", "0x8086\n", "0x1521\n", "0x020000\n", 1, "vfio-pci"); /* nic */
        fake_dev("0000:00:02.0", "0x8086\n", "0x1533\n", "0x020000\n", 2, "igb");      /* nic */
        fake_dev("0000:00:03.0", "0x10de\n", "0x1eb8\n", "0x030200\n", 3, "vfio-pci"); /* gpu */
        fake_dev("0000:00:04.0", "0x1234\n", "0x11e8\n", "0x00ff00\n", 4, NULL);       /* edu */
        fake_dev("0000:00:05.0", "0x1234\n", "0x11e8\n", "0x00ff00\n", 4, "vfio-pci"); /* edu */
        ck_assert_int_eq(kvfio_pci_discover(dir, &list), 0);
        ck_assert_uint_eq(list->n, 5);
        return list;
}

static const struct kvfio_pci_dev *dev_of(const struct kvfio_pci_list *l, const char *bdf)
{
        const struct kvfio_pci_dev *d = kvfio_pci_list_find(l, bdf);

        ck_assert_ptr_nonnull(d);
        return d;
}

/* Which of the five devices each kind of Match key selects. */
static const struct {
        const char *keys;
        const char *want; /* one char per device: 1 = matches */
} match_table[] = {
    {"Match=00:01.0 0000:00:05.0", "10001"},
    {"MatchVendor=8086:*", "11000"},
    {"MatchVendor=8086:1533", "01000"},
    {"MatchVendor=*:11e8", "00011"},
    {"MatchVendor=*:*", "11111"},
    {"MatchClass=0x02", "11000"},
    {"MatchClass=0x0300", "00000"},
    {"MatchClass=0x03", "00100"},
    {"MatchClass=0x030200", "00100"},
    {"MatchClass=0x00ff", "00011"},
    {"MatchGroup=4", "00011"},
    {"MatchGroup=1 3", "10100"},
    /* kinds AND, terms of one kind OR */
    {"MatchVendor=8086:*\nMatchGroup=2 3", "01000"},
    {"MatchClass=0x02 0x03\nMatchVendor=10de:*", "00100"},
    {"Match=0000:00:01.0\nMatchVendor=10de:*", "00000"},
};

START_TEST(matching_kinds)
{
        static const char *bdfs[] = {"0000:00:01.0", "0000:00:02.0", "0000:00:03.0", "0000:00:04.0",
                                     "0000:00:05.0"};
        struct kvfio_pci_list *list = fake_tree();
        struct vfiod_policy *p = NULL;
        char text[512];

        snprintf(text, sizeof(text), "[Device r]\n%s\nUsers=1000\n", match_table[_i].keys);
        ck_assert_int_eq(load(text, &p, NULL), 0);
        for (size_t j = 0; j < 5; j++)
                ck_assert_msg(vfiod_rule_matches(&p->rules[0], dev_of(list, bdfs[j])) ==
                                  (match_table[_i].want[j] == '1'),
                              "%s: device %s", match_table[_i].keys, bdfs[j]);
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

/* A mediated device: matched by its UUID (any case in the file) or its group. */
START_TEST(matching_mdev)
{
        static const char uuid[] = "6d646d61-0000-4000-8000-00000000000a";
        struct vfiod_policy *p = NULL;
        struct kvfio_pci_dev d;
        char link[4200];

        testutil_write_file(dir,
                            "sys/devices/virtual/mdma/mdma/"
                            "6d646d61-0000-4000-8000-00000000000a/uevent",
                            "");
        testutil_write_file(dir, "sys/bus/mdev/devices/.keep", "");
        snprintf(link, sizeof(link), "%s/sys/bus/mdev/devices/%s", dir, uuid);
        ck_assert_int_eq(
            symlink("../../../devices/virtual/mdma/mdma/6d646d61-0000-4000-8000-00000000000a",
                    link),
            0);
        snprintf(link, sizeof(link), "%s/sys/devices/virtual/mdma/mdma/%s/iommu_group", dir, uuid);
        ck_assert_int_eq(symlink("../../../../../kernel/iommu_groups/9", link), 0);
        snprintf(link, sizeof(link), "%s/sys/devices/virtual/mdma/mdma/%s/driver", dir, uuid);
        ck_assert_int_eq(symlink("../../../../../bus/mdev/drivers/mdma", link), 0);
        ck_assert_int_eq(kvfio_dev_read(dir, uuid, &d), 0);
        ck_assert(d.mdev);

        ck_assert_int_eq(
            load("[Device m]\nMatch=6D646D61-0000-4000-8000-00000000000A\nUsers=1000\n", &p, NULL),
            0);
        ck_assert_str_eq(p->rules[0].match[0], uuid);
        ck_assert(vfiod_rule_matches(&p->rules[0], &d));
        vfiod_policy_free(p);
        ck_assert_int_eq(load("[Device m]\nMatchGroup=9\nUsers=1000\n", &p, NULL), 0);
        ck_assert(vfiod_rule_matches(&p->rules[0], &d));
        vfiod_policy_free(p);
        ck_assert_int_eq(
            load(
                "[Device m]\nMatch=6d646d61-0000-4000-8000-00000000000b 0000:00:01.0\nUsers=1000\n",
                &p, NULL),
            0);
        ck_assert(!vfiod_rule_matches(&p->rules[0], &d));
        vfiod_policy_free(p);
}
END_TEST

START_TEST(matching_subjects)
{
        struct kvfio_pci_list *list = fake_tree();
        const struct kvfio_pci_dev *nic = dev_of(list, "0000:00:01.0");
        const struct kvfio_pci_dev *gpu = dev_of(list, "0000:00:03.0");
        const struct kvfio_pci_dev *edu = dev_of(list, "0000:00:05.0");
        struct vfiod_policy *p = NULL;
        gid_t supp[] = {3000, 2000};
        struct vfiod_peer u1000 = {.uid = 1000, .gid = 1000};
        struct vfiod_peer u1001 = {.uid = 1001, .gid = 1001};
        struct vfiod_peer root = {.uid = 0, .gid = 0};
        struct vfiod_peer g2000 = {.uid = 1500, .gid = 1500, .groups = supp, .n_groups = 2};
        struct vfiod_peer g2000p = {.uid = 1501, .gid = 2000};
        struct vfiod_peer vm = {.uid = 1600, .gid = 1600, .unit = "vm@web.service"};
        struct vfiod_peer vmx = {.uid = 1600, .gid = 1600, .unit = "vmx.service"};
        struct vfiod_peer sliced = {
            .uid = 1700, .gid = 1700, .unit = "x.scope", .slice = "machine-qemu.slice"};

        ck_assert_int_eq(load("[Daemon]\nAdminUsers=1001\nAdminGroups=3000\n"
                              "[Device a]\nMatch=0000:00:01.0\nUsers=1000\nModes=brokered\n"
                              "[Device b]\nMatchVendor=8086:1521\nUsers=1000\nModes=direct\n"
                              "[Device c]\nMatchClass=0x03\nGroups=2000\n"
                              "[Device d]\nMatchGroup=4\nUnits=vm@*.service\n"
                              "[Device e]\nMatchGroup=4\nSlices=machine-*.slice\nModes=brokered\n",
                              &p, NULL),
                         0);
        /* The most specific rule counts: a (Match=) over b (MatchVendor=). */
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1000, nic), VFIOD_MODE_BIT_BROKERED);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1000, gpu), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1001, nic), 0);
        /* Root is not special for devices. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &root, nic), 0);
        /* Groups: supplementary and primary. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000, gpu), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000p, gpu), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000, nic), 0);
        /* Units and slices, by glob; a peer without a unit matches no Units=. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &vm, edu), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &vmx, edu), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1000, edu), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &sliced, edu), VFIOD_MODE_BIT_BROKERED);
        /* Admins: root always, AdminUsers, AdminGroups (supplementary). */
        ck_assert(vfiod_policy_is_admin(p, &root));
        ck_assert(vfiod_policy_is_admin(p, &u1001));
        ck_assert(vfiod_policy_is_admin(p, &g2000));
        ck_assert(!vfiod_policy_is_admin(p, &u1000));
        ck_assert(!vfiod_policy_is_admin(p, &g2000p));
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

START_TEST(grant_and_reasons)
{
        struct kvfio_pci_list *list = fake_tree();
        const struct kvfio_pci_dev *nic = dev_of(list, "0000:00:01.0");
        const struct kvfio_pci_dev *gpu = dev_of(list, "0000:00:03.0");
        struct vfiod_peer u1000 = {.uid = 1000, .gid = 1000};
        struct vfiod_peer u1001 = {.uid = 1001, .gid = 1001};
        struct vfiod_policy *p = NULL;
        const struct vfiod_rule *r;
        char why[256];

        ck_assert_int_eq(load("[Device secret-of-1001]\nMatchClass=0x03\nUsers=1001\n"
                              "[Device nic-b]\nMatch=0000:00:01.0\nUsers=1000\nModes=brokered\n"
                              "MaxMappings=4\n"
                              "[Device nic-b2]\nMatch=0000:00:01.0\nUsers=1000\nModes=brokered\n"
                              "MaxMappings=9\n",
                              &p, NULL),
                         0);
        /* The first rule in order that allows the mode governs. */
        r = vfiod_policy_grant(p, &u1000, nic, VFIOD_MODE_BIT_BROKERED, why, sizeof(why));
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->name, "nic-b");
        /* Denied in a mode: the rules that name the peer, with what they allow. */
        r = vfiod_policy_grant(p, &u1000, nic, VFIOD_MODE_BIT_DIRECT, why, sizeof(why));
        ck_assert_ptr_null(r);
        ck_assert_str_eq(why,
                         "rule 'nic-b' allows only brokered; rule 'nic-b2' allows only brokered");
        /* Denied: other users' rules are never named. */
        r = vfiod_policy_grant(p, &u1000, gpu, VFIOD_MODE_BIT_DIRECT, why, sizeof(why));
        ck_assert_ptr_null(r);
        ck_assert_str_eq(why, "no rule grants you device '0000:00:03.0'");
        ck_assert_ptr_null(strstr(why, "secret"));
        ck_assert_ptr_nonnull(vfiod_policy_grant(p, &u1001, gpu, VFIOD_MODE_BIT_DIRECT, NULL, 0));
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

START_TEST(grant_narrow)
{
        struct vfiod_grant a, b, c;

        vfiod_grant_init(&a);
        vfiod_grant_init(&b);
        vfiod_grant_init(&c);
        ck_assert(vfiod_grant_iova_ok(&a, 0, 1ull << 40));
        b.max_pinned_bytes = 1 << 20;
        b.max_mappings = 4;
        b.irq_types = VFIOD_IRQ_BIT_MSI | VFIOD_IRQ_BIT_MSIX;
        b.has_windows = true;
        b.windows = calloc(2, sizeof(*b.windows));
        b.windows[0] = (struct vfiod_window){0x0, 0xffff};
        b.windows[1] = (struct vfiod_window){0x100000, 0x1fffff};
        b.n_windows = 2;
        snprintf(b.pinned_rule, sizeof(b.pinned_rule), "b");
        c.max_pinned_bytes = 1 << 30;
        c.max_mappings = 2;
        c.irq_types = VFIOD_IRQ_BIT_MSI | VFIOD_IRQ_BIT_INTX;
        c.has_windows = true;
        c.windows = calloc(1, sizeof(*c.windows));
        c.windows[0] = (struct vfiod_window){0x8000, 0x17ffff};
        c.n_windows = 1;
        snprintf(c.mappings_rule, sizeof(c.mappings_rule), "c");
        ck_assert_int_eq(vfiod_grant_narrow(&a, &b), 0);
        ck_assert_int_eq(vfiod_grant_narrow(&a, &c), 0);
        ck_assert_uint_eq(a.max_pinned_bytes, 1 << 20);
        ck_assert_str_eq(a.pinned_rule, "b");
        ck_assert_uint_eq(a.max_mappings, 2);
        ck_assert_str_eq(a.mappings_rule, "c");
        ck_assert_uint_eq(a.irq_types, VFIOD_IRQ_BIT_MSI);
        /* windows: [0x8000, 0xffff] and [0x100000, 0x17ffff] */
        ck_assert_uint_eq(a.n_windows, 2);
        ck_assert(vfiod_grant_iova_ok(&a, 0x8000, 0x8000));
        ck_assert(!vfiod_grant_iova_ok(&a, 0x8000, 0x8001));
        ck_assert(!vfiod_grant_iova_ok(&a, 0x0, 0x1000));
        ck_assert(vfiod_grant_iova_ok(&a, 0x170000, 0x10000));
        ck_assert(!vfiod_grant_iova_ok(&a, 0x170000, 0x10001));
        ck_assert(!vfiod_grant_iova_ok(&a, UINT64_MAX, 2));
        ck_assert(!vfiod_grant_iova_ok(&a, 0x8000, 0));
        vfiod_grant_done(&a);
        vfiod_grant_done(&b);
        vfiod_grant_done(&c);
}
END_TEST

START_TEST(empty_denies)
{
        struct kvfio_pci_list *list = fake_tree();
        struct vfiod_policy *p = NULL;
        struct vfiod_peer u = {.uid = 1000, .gid = 1000};

        ck_assert_int_eq(vfiod_policy_new(&p), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u, dev_of(list, "0000:00:01.0")), 0);
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

/* What vfiod_policy_print() writes for p on the fake tree under dir (free it). */
static char *print_text(const struct vfiod_policy *p)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        ck_assert_ptr_nonnull(f);
        vfiod_policy_print(p, dir, f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_ptr_nonnull(text);
        return text;
}

/* Within a rule who (Users=, Groups=) and where (Units=, Slices=) must both match. */
START_TEST(who_and_where)
{
        struct kvfio_pci_list *list = fake_tree();
        const struct kvfio_pci_dev *nic = dev_of(list, "0000:00:01.0");
        struct vfiod_peer shell = {
            .uid = 64001, .gid = 64001, .unit = "session-1.scope", .slice = "user-64001.slice"};
        struct vfiod_peer vm = {
            .uid = 64001, .gid = 64001, .unit = "vm@a.service", .slice = "system.slice"};
        struct vfiod_peer grp = {
            .uid = 64005, .gid = 64002, .unit = "x.scope", .slice = "machine.slice"};
        struct vfiod_peer other = {.uid = 64003, .gid = 64003, .unit = "vm@a.service"};
        struct vfiod_peer nounit = {.uid = 64001, .gid = 64001};
        struct vfiod_policy *p = NULL;
        char *text, want[10000];

        ck_assert_int_eq(load("[Device vms]\nMatch=0000:00:01.0\nUsers=64001\nGroups=64002\n"
                              "Units=vm@*.service\nSlices=machine.slice\n"
                              "[Device who]\nMatch=0000:00:03.0\nUsers=64001\n"
                              "[Device where]\nMatch=0000:00:05.0\nUnits=vm@*.service\n",
                              &p, NULL),
                         0);
        /* alice from a plain shell does not get alice's VM's device */
        ck_assert_uint_eq(vfiod_policy_modes(p, &shell, nic), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &nounit, nic), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &vm, nic), VFIOD_MODE_BITS_ALL);
        /* Groups= is an alternative to Users=, Slices= to Units= */
        ck_assert_uint_eq(vfiod_policy_modes(p, &grp, nic), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &other, nic), 0);
        /* a rule with one kind means what it meant */
        ck_assert_uint_eq(vfiod_policy_modes(p, &shell, dev_of(list, "0000:00:03.0")),
                          VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &other, dev_of(list, "0000:00:05.0")),
                          VFIOD_MODE_BITS_ALL);
        /* the checker prints the condition as evaluated */
        text = print_text(p);
        ck_assert_msg(strstr(text, "  Condition: (user 64001 or group 64002) and (unit "
                                   "vm@*.service or slice machine.slice)\n"),
                      "%s", text);
        ck_assert_msg(strstr(text, "  Condition: user 64001\n"), "%s", text);
        ck_assert_msg(strstr(text, "  Condition: unit vm@*.service\n"), "%s", text);
        snprintf(want, sizeof(want), "[Device vms] (%s:1)\n", path);
        ck_assert_msg(strstr(text, want), "%s", text);
        free(text);
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

/* A broad rule does not undo a narrow one: the most specific rule counts; the checker warns. */
START_TEST(most_specific_wins)
{
        struct kvfio_pci_list *list = fake_tree();
        const struct kvfio_pci_dev *vf = dev_of(list, "0000:00:01.0");
        const struct kvfio_pci_dev *pf = dev_of(list, "0000:00:02.0");
        struct vfiod_peer u = {.uid = 64001, .gid = 64001};
        struct vfiod_policy *p = NULL;
        const struct vfiod_rule *r;
        char why[256], *text, want[10000];

        ck_assert_int_eq(load("[Device nics]\nMatchClass=0x02\nUsers=64001\n"
                              "[Device vf]\nMatch=0000:00:01.0\nUsers=64001\nModes=brokered\n"
                              "MaxPinnedBytes=64M\nIovaWindows=0x100000-0x1fffff\n"
                              "[Device vf-too]\nMatch=0000:00:01.0\nUsers=64001\nModes=brokered\n"
                              "[Device vf-wide]\nMatch=0000:00:01.0\nUsers=64001\n",
                              &p, NULL),
                         0);
        /* Match= beats MatchClass=; equally specific rules add up */
        ck_assert_uint_eq(vfiod_policy_modes(p, &u, pf), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u, vf), VFIOD_MODE_BITS_ALL);
        r = vfiod_policy_grant(p, &u, vf, VFIOD_MODE_BIT_BROKERED, why, sizeof(why));
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->name, "vf");
        r = vfiod_policy_grant(p, &u, vf, VFIOD_MODE_BIT_DIRECT, why, sizeof(why));
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->name, "vf-wide");
        text = print_text(p);
        /* the broad rule would widen the narrow one: shadowed, and said so */
        snprintf(
            want, sizeof(want),
            "warning: %s:1: [Device nics] would give user 64001 on 0000:00:01.0 more than "
            "[Device vf] (%s:4) allows (direct group mode, no MaxPinnedBytes=, no IovaWindows=): "
            "[Device vf] is more specific (Match=) and governs there\n",
            path, path);
        ck_assert_msg(strstr(text, want), "%s", text);
        /* an equally specific rule does widen it */
        snprintf(want, sizeof(want),
                 "warning: %s:14: [Device vf-wide] widens [Device vf] (%s:4) on 0000:00:01.0 for "
                 "user 64001 (direct group mode): equally specific rules add up\n",
                 path, path);
        ck_assert_msg(strstr(text, want), "%s", text);
        /* vf-too allows no more than vf: nothing to say */
        ck_assert_msg(!strstr(text, "[Device vf-too] widens"), "%s", text);
        free(text);
        vfiod_policy_free(p);

        /* Without vf-wide: direct is refused, and the reason says why nics does not count. */
        ck_assert_int_eq(load("[Device nics]\nMatchClass=0x02\nUsers=64001\n"
                              "[Device vf]\nMatch=0000:00:01.0\nUsers=64001\nModes=brokered\n",
                              &p, NULL),
                         0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u, vf), VFIOD_MODE_BIT_BROKERED);
        ck_assert_ptr_null(vfiod_policy_grant(p, &u, vf, VFIOD_MODE_BIT_DIRECT, why, sizeof(why)));
        ck_assert_str_eq(why, "rule 'vf' allows only brokered; less specific rules do not count "
                              "here: 'nics'");
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

/* What the checker warns about in a valid policy (no device, part of a group, unused quotas). */
START_TEST(check_warnings)
{
        struct kvfio_pci_list *list = fake_tree();
        struct vfiod_policy *p = NULL;
        char *text, want[10000];

        ck_assert_int_eq(load("[Device ghost]\nMatchVendor=dead:beef\nUsers=64001\n"
                              "[Device half]\nMatch=0000:00:04.0\nUsers=64001\nManaged=yes\n"
                              "[Device direct-q]\nMatch=0000:00:03.0\nUsers=64001\nModes=direct\n"
                              "MaxPinnedBytes=1G\nIovaWindows=0x0-0xfff\n"
                              "[Device fine]\nMatchGroup=1\nUsers=64001\nModes=brokered\n"
                              "MaxPinnedBytes=1G\n",
                              &p, NULL),
                         0);
        text = print_text(p);
        snprintf(want, sizeof(want),
                 "warning: %s:1: [Device ghost] matches no device on this machine\n", path);
        ck_assert_msg(strstr(text, want), "%s", text);
        snprintf(want, sizeof(want),
                 "warning: %s:4: [Device half] covers part of IOMMU group 4: it matches "
                 "0000:00:04.0 but not 0000:00:05.0 (driver vfio-pci), which every Acquire of the "
                 "group needs and no rule gives the same peers\n",
                 path);
        ck_assert_msg(strstr(text, want), "%s", text);
        /* MaxPinnedBytes= applies in direct mode too (the holder's RLIMIT_MEMLOCK). */
        ck_assert_msg(!strstr(text, "[Device direct-q] MaxPinnedBytes="), "%s", text);
        snprintf(want, sizeof(want),
                 "warning: %s:13: [Device direct-q] IovaWindows= applies to brokered mode only, "
                 "and the rule allows only direct (the holder pins against its own "
                 "RLIMIT_MEMLOCK, which MaxPinnedBytes= raises)\n",
                 path);
        ck_assert_msg(strstr(text, want), "%s", text);
        /* a brokered rule on a whole group that exists: nothing to say */
        ck_assert_msg(!strstr(text, ": [Device fine] "), "%s", text);
        free(text);
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

/* MaxPinnedBytesPerUser= in a rule; a grant keeps the smallest and its rule. */
START_TEST(per_user_quota_parse)
{
        struct vfiod_policy *p = NULL;
        struct vfiod_grant g;
        char *text;

        ck_assert_int_eq(load("[Device a]\nMatch=0000:00:01.0\nUsers=64001\n"
                              "MaxPinnedBytesPerUser=4G\n"
                              "[Device b]\nMatch=0000:00:02.0\nUsers=64001\n"
                              "MaxPinnedBytesPerUser=8G\n",
                              &p, NULL),
                         0);
        ck_assert_uint_eq(p->rules[0].grant.max_pinned_bytes_per_user, 4ull << 30);
        vfiod_grant_init(&g);
        ck_assert_uint_eq(g.max_pinned_bytes_per_user, VFIOD_NO_QUOTA_BYTES);
        ck_assert_int_eq(vfiod_grant_narrow(&g, &p->rules[1].grant), 0);
        ck_assert_int_eq(vfiod_grant_narrow(&g, &p->rules[0].grant), 0);
        ck_assert_uint_eq(g.max_pinned_bytes_per_user, 4ull << 30);
        ck_assert_str_eq(g.user_pinned_rule, "a");
        vfiod_grant_done(&g);
        text = print_text(p);
        ck_assert_msg(strstr(text, "  MaxPinnedBytesPerUser=4294967296\n"), "%s", text);
        free(text);
        vfiod_policy_free(p);
}
END_TEST

/* A key a drop-in overrides is shown where the drop-in sets it. */
START_TEST(print_key_origin)
{
        struct vfiod_policy *p = NULL;
        char *text, want[10000];

        dropin("10-x.conf", "# raise it\n[Device nics]\nMaxMappings=9\n");
        ck_assert_int_eq(
            load("[Device nics]\nMatchVendor=8086:*\nUsers=0\nMaxMappings=3\n", &p, NULL), 0);
        text = print_text(p);
        snprintf(want, sizeof(want), "  MaxMappings=9 (%s/vfiod.conf.d/10-x.conf:3)\n", dir);
        ck_assert_msg(strstr(text, want), "%s", text);
        /* keys of the rule's own file are not annotated */
        ck_assert_msg(strstr(text, "  MatchVendor=8086:*\n"), "%s", text);
        free(text);
        vfiod_policy_free(p);
}
END_TEST

/* --check-config's listing: each rule, where it is, and the devices it matches here. */
START_TEST(print_matches)
{
        struct kvfio_pci_list *list = fake_tree();
        struct vfiod_policy *p = NULL;
        char *text, want[10000];

        dropin("10-x.conf", "[Device nics]\nIrqTypes=msix\n");
        ck_assert_int_eq(load("[Device nics]\nMatchVendor=8086:*\nUsers=0\nMaxMappings=3\n"
                              "[Device none]\nMatchGroup=77\nUsers=0\n"
                              "[Device edus]\nMatchGroup=4\nUsers=0\nManaged=yes\n",
                              &p, NULL),
                         0);
        text = print_text(p);
        ck_assert_ptr_nonnull(strstr(text, "10-x.conf\n"));
        ck_assert_ptr_nonnull(strstr(text, "[Device nics] ("));
        snprintf(want, sizeof(want),
                 "  MaxMappings=3\n  IrqTypes=msix (%s/vfiod.conf.d/10-x.conf:2)\n", dir);
        ck_assert_msg(strstr(text, want), "%s", text);
        ck_assert_ptr_nonnull(strstr(text, "  matches 0000:00:01.0 (8086:1521, class 0x020000, "
                                           "IOMMU group 1, driver vfio-pci)\n"));
        ck_assert_ptr_nonnull(strstr(text, "  matches 0000:00:02.0 (8086:1533, class 0x020000, "
                                           "IOMMU group 2, driver igb): not leasable until bound "
                                           "to vfio-pci\n"));
        ck_assert_ptr_nonnull(strstr(text, "[Device none]"));
        ck_assert_ptr_nonnull(strstr(text, "  matches no device on this machine\n"));
        /* Managed=yes: a device on another driver (or none) is leasable. */
        ck_assert_ptr_nonnull(strstr(text, "  matches 0000:00:04.0 (1234:11e8, class 0x00ff00, "
                                           "IOMMU group 4, no driver)\n"));
        ck_assert_ptr_nonnull(strstr(text, "  ReleaseGraceMs=5000\n"));
        free(text);
        vfiod_policy_free(p);
        kvfio_pci_list_free(list);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-policy");
        TCase *tc = tcase_create("parse");

        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, good);
        tcase_add_loop_test(tc, good_table, 0, (int)ELEMENTSOF(good_values));
        tcase_add_loop_test(tc, bad_table, 0, (int)ELEMENTSOF(bad));
        tcase_add_test(tc, all_errors_reported);
        tcase_add_test(tc, one_error_per_mistake);
        tcase_add_test(tc, per_user_quota_parse);
        tcase_add_test(tc, nul_and_bad_utf8_refused);
        tcase_add_test(tc, missing_file);
        suite_add_tcase(s, tc);

        tc = tcase_create("dropins");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, dropins_order_and_override);
        tcase_add_test(tc, dropin_errors);
        tcase_add_test(tc, dropins_without_main);
        tcase_add_test(tc, print_key_origin);
        suite_add_tcase(s, tc);

        tc = tcase_create("matching");
        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_loop_test(tc, matching_kinds, 0, (int)ELEMENTSOF(match_table));
        tcase_add_test(tc, matching_subjects);
        tcase_add_test(tc, matching_mdev);
        tcase_add_test(tc, grant_and_reasons);
        tcase_add_test(tc, grant_narrow);
        tcase_add_test(tc, empty_denies);
        tcase_add_test(tc, print_matches);
        tcase_add_test(tc, who_and_where);
        tcase_add_test(tc, most_specific_wins);
        tcase_add_test(tc, check_warnings);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
