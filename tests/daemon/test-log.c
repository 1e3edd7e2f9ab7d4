/* SPDX-License-Identifier: MIT */
/* Logging: plain lines with the fields on stderr; the journal when stderr is the journal. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/log.h"
#include "tests/testutil.h"

/* Runs fn with stderr going to a pipe; returns what it wrote. */
static char *capture(void (*fn)(void))
{
        static char buf[4096];
        int p[2], saved;
        ssize_t n;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        ck_assert_int_ge(saved, 0);
        ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
        close(p[1]);
        fn();
        fflush(stderr);
        ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        n = read(p[0], buf, sizeof(buf) - 1);
        close(p[0]);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void log_a_lease(void)
{
        struct vfiod_peer peer = {.uid = 1000, .gid = 100, .pid = 42, .unit = "qemu@vm1.service"};
        struct vfiod_log_about a = {
            .peer = &peer, .device = "0000:00:04.0", .group = 7, .lease = 3};

        vfiod_log_about(LOG_NOTICE, &a, "leased device '%s'", "0000:00:04.0");
        log_debug("not shown at the default level");
}

START_TEST(plain_lines_with_fields)
{
        const char *out;

        unsetenv("JOURNAL_STREAM");
        vfiod_log_init();
        out = capture(log_a_lease);
        ck_assert_msg(strstr(out, "vfiod[notice]: leased device '0000:00:04.0' -- "), "%s", out);
        ck_assert_msg(strstr(out, "peer_uid=1000 peer_gid=100 peer_pid=42 "
                                  "peer_unit=qemu@vm1.service device=0000:00:04.0 "
                                  "iommu_group=7 lease=3\n"),
                      "%s", out);
        ck_assert_ptr_null(strstr(out, "not shown"));
}
END_TEST

static void probe_journal(void)
{
        struct stat st;
        char env[64];

        /* stderr is the pipe here: pretend the service manager connected it to the journal. */
        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", env, 1);
        vfiod_log_init();
        log_a_lease();
        unsetenv("JOURNAL_STREAM");
        vfiod_log_init();
}

START_TEST(journal_when_stderr_is_the_journal)
{
        int status;
        pid_t pid = fork();

        /* In a child: libsystemd keeps its journal socket open once used. */
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(capture(probe_journal)[0] == '\0' ? 0 : 1);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        /* The line went to sd_journal_sendv(), not to the stream. */
        ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(error_helper)
{
        struct vfiod_error e;

        ck_assert_int_eq(vfiod_error_set(&e, EBUSY, "group %d is '%s'", 3, "busy"), -EBUSY);
        ck_assert_int_eq(e.errnum, EBUSY);
        ck_assert_str_eq(e.reason, "group 3 is 'busy'");
        ck_assert_int_eq(vfiod_error_set(&e, -ENOENT, "x"), -ENOENT);
        ck_assert_int_eq(e.errnum, ENOENT);
        ck_assert_int_eq(vfiod_error_set(NULL, EINVAL, "x"), -EINVAL);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-log");
        TCase *tc = tcase_create("log");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, plain_lines_with_fields);
        tcase_add_test(tc, journal_when_stderr_is_the_journal);
        tcase_add_test(tc, error_helper);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
