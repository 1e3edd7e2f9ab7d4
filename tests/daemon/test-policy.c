/* SPDX-License-Identifier: MIT */
/* The configuration: parsing (good and every kind of bad, with file:line) and matching. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/policy.h"
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

/* Loads text, expects it invalid with exactly one error that starts with "path:line:" and
 * contains needle. */
static void expect_bad(const char *text, unsigned line, const char *needle)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        char prefix[4200];

        ck_assert_int_eq(load(text, &p, &errors), -EINVAL);
        ck_assert_ptr_null(p);
        ck_assert_msg(errors.n >= 1, "no error reported for:\n%s", text);
        snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
        ck_assert_msg(strncmp(errors.lines[0], prefix, strlen(prefix)) == 0,
                      "'%s' does not start with '%s'", errors.lines[0], prefix);
        ck_assert_msg(strstr(errors.lines[0], needle), "'%s' does not say '%s'", errors.lines[0],
                      needle);
        vfiod_errors_clear(&errors);
}

START_TEST(good)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_int_eq(load("# comment\n"
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
                              "Match=0000:03:00.0\n"
                              "Users=1001\n",
                              &p, &errors),
                         0);
        ck_assert_uint_eq(errors.n, 0);
        ck_assert_uint_eq(p->n_rules, 2);
        ck_assert_str_eq(p->rules[0].name, "gpu");
        ck_assert_uint_eq(p->rules[0].n_match, 3);
        ck_assert_str_eq(p->rules[0].match[0], "0000:01:00.0");
        ck_assert_str_eq(p->rules[0].match[2], "0000:02:00.0");
        ck_assert_uint_eq(p->rules[0].n_users, 2);
        ck_assert_uint_eq(p->rules[0].users[0], 0);
        ck_assert_uint_eq(p->rules[0].users[1], 1000);
        ck_assert_uint_eq(p->rules[0].modes, VFIOD_MODE_BIT_DIRECT);
        ck_assert_uint_eq(p->rules[1].modes, VFIOD_MODE_BITS_ALL); /* default: both */
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

START_TEST(bad_kinds)
{
        expect_bad("[Foo]\nX=1\n", 1, "unknown section [Foo]");
        expect_bad("[Daemon]\nMaxLeasesPerClient=3\nBogus=1\n", 3, "unknown key 'Bogus'");
        expect_bad("[Device a]\nMatch=0000:00:01.0\nColor=red\n", 3, "unknown key 'Color'");
        expect_bad("[Device a]\nMatch=0000:00:01.0 zz:zz\n", 2, "not a PCI address 'zz:zz'");
        expect_bad("[Device a]\nMatch=0000:00:01.0\nUsers=no-such-user-here\n", 3,
                   "unknown user 'no-such-user-here'");
        expect_bad("[Device a]\nMatch=0000:00:01.0\nGroups=no-such-group-here\n", 3,
                   "unknown group 'no-such-group-here'");
        expect_bad("[Device a]\nMatch=0000:00:01.0\nModes=direct sideways\n", 3,
                   "unknown mode 'sideways'");
        expect_bad("[Daemon]\nMaxLeasesPerClient=0\n", 2, "bad value '0'");
        expect_bad("[Daemon]\nMaxFdsPerMessage=254\n", 2, "bad value '254'");
        expect_bad("[Daemon]\nMaxConnections=ten\n", 2, "bad value 'ten'");
        expect_bad("[Daemon]\nMaxPinnedBytesPerClient=5X\n", 2, "bad value '5X'");
        expect_bad("[Daemon]\n\nthis line has no equals sign\n", 3, "syntax error");
        expect_bad("\n\n[Device a]\nUsers=1000\n", 3, "has no Match=");
        expect_bad("[Device a]\nMatch=0000:00:01.0\n[Device a]\nMatch=0000:00:02.0\n", 3,
                   "duplicate section [Device a]");
        expect_bad("Users=1000\n", 1, "outside of a section");
        expect_bad("[Device]\nMatch=0000:00:01.0\n", 1, "needs a name");
        expect_bad("[Device a]\nMatch=\n", 2, "Match= is empty");
}
END_TEST

START_TEST(all_errors_reported)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;

        ck_assert_int_eq(load("[Daemon]\nA=1\nB=2\n[Nope]\n", &p, &errors), -EINVAL);
        ck_assert_uint_eq(errors.n, 3);
        vfiod_errors_clear(&errors);
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

START_TEST(matching)
{
        struct vfiod_policy *p = NULL;
        gid_t supp[] = {3000, 2000};
        struct vfiod_peer u1000 = {.uid = 1000, .gid = 1000};
        struct vfiod_peer u1001 = {.uid = 1001, .gid = 1001};
        struct vfiod_peer root = {.uid = 0, .gid = 0};
        struct vfiod_peer g2000 = {.uid = 1500, .gid = 1500, .groups = supp, .n_groups = 2};
        struct vfiod_peer g2000p = {.uid = 1501, .gid = 2000};

        ck_assert_int_eq(load("[Daemon]\nAdminUsers=1001\nAdminGroups=3000\n"
                              "[Device a]\nMatch=0000:00:01.0\nUsers=1000\nModes=brokered\n"
                              "[Device b]\nMatch=0000:00:01.0\nUsers=1000\nModes=direct\n"
                              "[Device c]\nMatch=0000:00:02.0\nGroups=2000\n",
                              &p, NULL),
                         0);
        /* Rules add up. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1000, "0000:00:01.0"), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1000, "0000:00:02.0"), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u1001, "0000:00:01.0"), 0);
        /* Root is not special for devices. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &root, "0000:00:01.0"), 0);
        /* Groups: supplementary and primary. */
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000, "0000:00:02.0"), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000p, "0000:00:02.0"), VFIOD_MODE_BITS_ALL);
        ck_assert_uint_eq(vfiod_policy_modes(p, &g2000, "0000:00:03.0"), 0);
        /* Admins: root always, AdminUsers, AdminGroups (supplementary). */
        ck_assert(vfiod_policy_is_admin(p, &root));
        ck_assert(vfiod_policy_is_admin(p, &u1001));
        ck_assert(vfiod_policy_is_admin(p, &g2000));
        ck_assert(!vfiod_policy_is_admin(p, &u1000));
        ck_assert(!vfiod_policy_is_admin(p, &g2000p));
        vfiod_policy_free(p);
}
END_TEST

START_TEST(empty_denies)
{
        struct vfiod_policy *p = NULL;
        struct vfiod_peer u = {.uid = 1000, .gid = 1000};

        ck_assert_int_eq(vfiod_policy_new(&p), 0);
        ck_assert_uint_eq(vfiod_policy_modes(p, &u, "0000:00:01.0"), 0);
        vfiod_policy_free(p);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-policy");
        TCase *tc = tcase_create("policy");

        testutil_tcase_fd_checked(tc);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, good);
        tcase_add_test(tc, bad_kinds);
        tcase_add_test(tc, all_errors_reported);
        tcase_add_test(tc, missing_file);
        tcase_add_test(tc, matching);
        tcase_add_test(tc, empty_denies);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
