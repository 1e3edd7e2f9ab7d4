/* SPDX-License-Identifier: MIT */
/*
 * libvfiod-preload.so on its own: preload-probe run with LD_PRELOAD and
 * VFIOD_GROUP_FDS naming two memfds as groups 7 and 12, its opens compared
 * with what they must give (a duplicate of the memfd: same st_dev:st_ino)
 * and with the same probe run without the library (every other open
 * untouched).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/macro.h"
#include "tests/testutil.h"

/* The fd numbers the probe inherits the two "groups" as. */
#define FD_G7  40
#define FD_G12 41

/* The two group fds of the test, and the st_dev:st_ino text each has. */
struct groups {
        int g7, g12;
        char id7[64], id12[64];
};

static void id_of(int fd, char *buf, size_t size)
{
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        (void)snprintf(buf, size, "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
}

static struct groups groups_new(void)
{
        struct groups g = {.g7 = memfd_create("group7", MFD_CLOEXEC),
                           .g12 = memfd_create("group12", MFD_CLOEXEC)};

        ck_assert_int_ge(g.g7, 0);
        ck_assert_int_ge(g.g12, 0);
        id_of(g.g7, g.id7, sizeof(g.id7));
        id_of(g.g12, g.id12, sizeof(g.id12));
        return g;
}

static void groups_free(struct groups *g)
{
        close(g->g7);
        close(g->g12);
}

struct run {
        int status;
        char *out, *err;
};

static void run_done(struct run *r)
{
        free(r->out);
        free(r->err);
}

/*
 * Runs preload-probe with ops (NULL-terminated), the groups as fds FD_G7
 * and FD_G12, VFIOD_GROUP_FDS=group_fds (unset when NULL) and, when
 * preload, LD_PRELOAD=the built library.
 */
static struct run run_probe(const struct groups *g, bool preload, const char *group_fds,
                            const char *const *ops)
{
        const char *probe = "tests/client-lib/preload-probe";
        const char *lib = getenv("VFIOD_PRELOAD_LIBRARY");
        const char *argv[64] = {probe};
        char lib_path[PATH_MAX];
        int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
        struct run r = {0};
        pid_t pid;

        ck_assert_int_ge(out, 0);
        ck_assert_int_ge(err, 0);
        ck_assert_ptr_nonnull(
            realpath(lib ? lib : "client-lib/.libs/libvfiod-preload.so", lib_path));
        for (size_t n = 0; ops[n]; n++) {
                ck_assert_uint_lt(n + 2, ELEMENTSOF(argv));
                argv[n + 1] = ops[n];
        }

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* dup2() leaves the copies inheritable; nothing else of the test reaches the probe.
                 */
                if (dup2(out, 1) < 0 || dup2(err, 2) < 0 || dup2(g->g7, FD_G7) < 0 ||
                    dup2(g->g12, FD_G12) < 0)
                        _exit(99);
                (void)close_range(3, FD_G7 - 1, 0);
                (void)close_range(FD_G12 + 1, ~0U, 0);
                if (unsetenv("LD_PRELOAD") < 0 || unsetenv("VFIOD_GROUP_FDS") < 0 ||
                    (preload && setenv("LD_PRELOAD", lib_path, 1) < 0) ||
                    (group_fds && setenv("VFIOD_GROUP_FDS", group_fds, 1) < 0))
                        _exit(99);
                execv(probe, (char **)argv);
                _exit(98);
        }
        testutil_wait_output(pid, out, err, &r.status, &r.out, &r.err);
        return r;
}

/* Runs the probe with the library and the groups named; it must print expected and nothing on
 * stderr. */
static void check_probe(const struct groups *g, const char *const *ops, const char *expected)
{
        struct run r = run_probe(g, true, "7:40,12:41", ops);

        ck_assert_str_eq(r.err, "");
        ck_assert_str_eq(r.out, expected);
        ck_assert_int_eq(r.status, 0);
        run_done(&r);
}

/* What the probe prints for fn's open of path when it returns a duplicate of the fd with id. */
static char *dup_line(const char *fn, const char *path, const char *id, int cloexec)
{
        char *line;

        ck_assert_int_gt(
            asprintf(&line, "%s %s: fd %s cloexec=%d errno=EDOM\n", fn, path, id, cloexec), 0);
        return line;
}

static const char *const functions[] = {"open",     "open64",     "openat",     "openat64",
                                        "__open_2", "__open64_2", "__openat_2", "__openat64_2"};

/* Every function, with and without O_CLOEXEC, opens a named group's node as a duplicate. */
START_TEST(test_group_opens)
{
        struct groups g = groups_new();
        char ops[4 * ELEMENTSOF(functions)][64];
        const char *argv[4 * ELEMENTSOF(functions) + 1] = {0};
        char *expected = NULL;
        size_t len = 0, n = 0;
        FILE *f = open_memstream(&expected, &len);

        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; i < ELEMENTSOF(functions); i++) {
                struct {
                        const char *flags, *path, *id;
                        int cloexec;
                } cases[] = {
                    {"rdwr", "/dev/vfio/7", g.id7, 0},
                    {"rdwr+cloexec", "/dev/vfio/7", g.id7, 1},
                    {"rdwr+nonblock", "/dev/vfio/12", g.id12, 0},
                    {"rdonly+cloexec", "/dev/vfio/12", g.id12, 1},
                };

                for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                        char *line =
                            dup_line(functions[i], cases[k].path, cases[k].id, cases[k].cloexec);

                        (void)snprintf(ops[n], sizeof(ops[n]), "%s:%s:%s", functions[i],
                                       cases[k].flags, cases[k].path);
                        argv[n] = ops[n];
                        n++;
                        fputs(line, f);
                        free(line);
                }
        }
        ck_assert_int_eq(fclose(f), 0);

        check_probe(&g, argv, expected);
        free(expected);
        groups_free(&g);
}
END_TEST

/* The answers of the node itself: a directory it is not, and it exists. */
START_TEST(test_group_refusals)
{
        struct groups g = groups_new();
        const char *ops[] = {"open:rdwr+directory:/dev/vfio/7",
                             "openat64:rdwr+creat+excl:/dev/vfio/7",
                             "open64:rdwr+creat:/dev/vfio/12", NULL};
        char *expected;

        ck_assert_int_gt(asprintf(&expected,
                                  "open /dev/vfio/7: error ENOTDIR\n"
                                  "openat64 /dev/vfio/7: error EEXIST\n"
                                  "open64 /dev/vfio/12: fd %s cloexec=0 errno=EDOM\n",
                                  g.id12),
                         0);
        check_probe(&g, ops, expected);
        free(expected);
        groups_free(&g);
}
END_TEST

/*
 * Every other open gives exactly what it gives without the library: the
 * container node, a group not named, other spellings of a named group's
 * node, relative names, and a file created with a mode.
 */
START_TEST(test_other_paths_untouched)
{
        struct groups g = groups_new();
        char *dir = testutil_mkdtemp("preload"), *created_op, *created_path;
        const char *ops[] = {"open64:rdwr:/dev/vfio/vfio",
                             "open:rdwr:/dev/vfio/8",
                             "__open64_2:rdwr:/dev/vfio/07",
                             "openat64:rdwr://dev/vfio/7",
                             "open64:rdwr:/dev/vfio/./7",
                             "open:rdwr:/dev/vfio/7/",
                             "openat:rdwr:dev/vfio/7:/",
                             "__openat64_2:rdwr:7:/dev",
                             "open:rdonly:/dev/null",
                             NULL,
                             NULL};
        struct run with, without;
        char *expected, id[64];
        struct stat st;
        int fd;

        /* libc's answers, then the library's, with a file created at the end. */
        without = run_probe(&g, false, NULL, ops);
        ck_assert_int_eq(without.status, 0);
        ck_assert_int_gt(asprintf(&created_path, "%s/created", dir), 0);
        ck_assert_int_gt(asprintf(&created_op, "open64:rdwr+creat+excl+cloexec:%s", created_path),
                         0);
        ops[ELEMENTSOF(ops) - 2] = created_op;
        with = run_probe(&g, true, "7:40,12:41", ops);
        ck_assert_str_eq(with.err, "");
        ck_assert_int_eq(with.status, 0);

        /* The file was made, with the mode given. */
        fd = open(created_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        id_of(fd, id, sizeof(id));
        close(fd);
        ck_assert_int_gt(asprintf(&expected, "%sopen64 %s: fd %s cloexec=1 errno=EDOM\n",
                                  without.out, created_path, id),
                         0);
        ck_assert_str_eq(with.out, expected);
        ck_assert_int_eq(stat(created_path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        /* None of it is one of the groups. */
        ck_assert_ptr_null(strstr(with.out, g.id7));
        ck_assert_ptr_null(strstr(with.out, g.id12));
        ck_assert_ptr_nonnull(strstr(with.out, "open64 /dev/vfio/vfio: error "));

        free(expected);
        run_done(&with);
        run_done(&without);
        free(created_op);
        free(created_path);
        testutil_rmtree(dir);
        free(dir);
        groups_free(&g);
}
END_TEST

/* Without VFIOD_GROUP_FDS the library is there and does nothing, silently. */
START_TEST(test_unset)
{
        struct groups g = groups_new();
        const char *ops[] = {"open64:rdwr:/dev/vfio/7", "__open64_2:rdwr:/dev/vfio/12", NULL};
        struct run with = run_probe(&g, true, NULL, ops), without = run_probe(&g, false, NULL, ops);

        ck_assert_str_eq(with.err, "");
        ck_assert_str_eq(with.out, without.out);
        ck_assert_ptr_null(strstr(with.out, g.id7));
        ck_assert_int_eq(with.status, 0);
        run_done(&with);
        run_done(&without);
        groups_free(&g);
}
END_TEST

/*
 * A malformed VFIOD_GROUP_FDS, or one naming an fd that is not open: the
 * library does nothing (not even for the well-formed entries) and says so
 * once, quoting the value.
 */
static const char *const malformed[] = {
    "",
    "7",
    "7:",
    ":40",
    "7:40,",
    ",7:40",
    "7:40,,12:41",
    "07:40",
    "7:040",
    "+7:40",
    "7:-40",
    "7:40 ",
    " 7:40",
    "a:40",
    "7:4O",
    "7:40;12:41",
    "7:40,7:41",
    "2147483648:40",
    "7:2147483648",
    "7:99999999999999999999",
    "7:40,12:42", /* fd 42 is not open */
    "7:40:12",
};

START_TEST(test_malformed)
{
        struct groups g = groups_new();
        const char *value = malformed[_i];
        const char *ops[] = {"open64:rdwr:/dev/vfio/7", "openat64:rdwr+cloexec:/dev/vfio/12",
                             "open:rdonly:/dev/null", NULL};
        struct run with = run_probe(&g, true, value, ops),
                   without = run_probe(&g, false, NULL, ops);
        char *quoted;
        const char *nl;

        ck_assert_int_gt(asprintf(&quoted, "VFIOD_GROUP_FDS='%s': ", value), 0);
        ck_assert_int_eq(with.status, 0);
        ck_assert_msg(strcmp(with.out, without.out) == 0, "'%s': the library acted:\n%s", value,
                      with.out);
        /* One line on stderr, from the library, quoting the value. */
        ck_assert_msg(strncmp(with.err, "libvfiod-preload: ", 18) == 0, "'%s': stderr '%s'", value,
                      with.err);
        ck_assert_msg(strstr(with.err, quoted) != NULL, "'%s': stderr '%s'", value, with.err);
        nl = strchr(with.err, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_str_eq(nl + 1, "");

        free(quoted);
        run_done(&with);
        run_done(&without);
        groups_free(&g);
}
END_TEST

static Suite *preload_suite(void)
{
        Suite *s = suite_create("preload");
        TCase *tc = tcase_create("preload");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_group_opens);
        tcase_add_test(tc, test_group_refusals);
        tcase_add_test(tc, test_other_paths_untouched);
        tcase_add_test(tc, test_unset);
        tcase_add_loop_test(tc, test_malformed, 0, (int)ELEMENTSOF(malformed));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(preload_suite());
}
