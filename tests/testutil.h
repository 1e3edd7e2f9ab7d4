/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the check suites.
 *
 * Concepts: every test case runs between testutil_fd_baseline() and
 * testutil_fd_check() (a checked fixture, so both run inside the forked test
 * process): the second fails the test when the process holds a different set
 * of open fds than it did before the test started.
 */
#pragma once

#include <check.h>
#include <sys/types.h>

/* Number of open fds of this process (counted in /proc/self/fd). */
int testutil_count_fds(void);

/* Checked-fixture pair: remember the open fds, then assert they are unchanged. */
void testutil_fd_baseline(void);
void testutil_fd_check(void);

/* Adds the fd-leak fixture to tc; every TCase of the project calls this. */
void testutil_tcase_fd_checked(TCase *tc);

/*
 * Runs suite s and returns the process exit status (0 when every test passed).
 * Prints check's usual summary line.
 */
int testutil_run_suite(Suite *s);

/* mkdtemp() under $TMPDIR (or /tmp); aborts the test on failure. Free with free(). */
char *testutil_mkdtemp(const char *prefix);

/* rm -rf of a folder made by testutil_mkdtemp(). */
void testutil_rmtree(const char *path);

/* Writes text to root/relpath, creating the parent folders. */
void testutil_write_file(const char *root, const char *relpath, const char *text);

/*
 * Waits for the child pid, which wrote its stdout and stderr to the memfds
 * out and err, and closes them: *ret_status gets its exit status (128 + N
 * when signal N killed it), *ret_out and *ret_err what it wrote,
 * NUL-terminated (free them with free()).
 */
void testutil_wait_output(pid_t pid, int out, int err, int *ret_status, char **ret_out,
                          char **ret_err);
