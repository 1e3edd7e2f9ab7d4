/* SPDX-License-Identifier: MIT */
#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd_baseline = -1;

int testutil_count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        ck_assert_msg(d != NULL, "opendir(/proc/self/fd): %s", strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

void testutil_fd_baseline(void)
{
        fd_baseline = testutil_count_fds();
}

void testutil_fd_check(void)
{
        int now = testutil_count_fds();

        ck_assert_msg(now == fd_baseline, "fd leak: %d open fds before the test, %d after",
                      fd_baseline, now);
}

void testutil_tcase_fd_checked(TCase *tc)
{
        tcase_add_checked_fixture(tc, testutil_fd_baseline, testutil_fd_check);
}

int testutil_run_suite(Suite *s)
{
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *testutil_mkdtemp(const char *prefix)
{
        const char *tmp = getenv("TMPDIR");
        char *path;

        ck_assert(asprintf(&path, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix) > 0);
        ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp(%s): %s", path, strerror(errno));
        return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

void testutil_rmtree(const char *path)
{
        ck_assert_msg(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "rm -rf %s: %s", path,
                      strerror(errno));
}

static void mkdir_parents(char *path)
{
        for (char *p = path + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
                              strerror(errno));
                *p = '/';
        }
}

void testutil_write_file(const char *root, const char *relpath, const char *text)
{
        char path[PATH_MAX];
        FILE *f;

        ck_assert(snprintf(path, sizeof(path), "%s/%s", root, relpath) < (int)sizeof(path));
        mkdir_parents(path);
        f = fopen(path, "we");
        ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
        ck_assert(fputs(text, f) >= 0);
        ck_assert(fclose(f) == 0);
}

static char *read_all(int fd)
{
        off_t size = lseek(fd, 0, SEEK_END);
        char *buf;

        ck_assert_int_ge(size, 0);
        buf = calloc(1, (size_t)size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), size);
        return buf;
}

void testutil_wait_output(pid_t pid, int out, int err, int *ret_status, char **ret_out,
                          char **ret_err)
{
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        *ret_out = read_all(out);
        *ret_err = read_all(err);
        close(out);
        close(err);
}
