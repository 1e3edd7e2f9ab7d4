/* SPDX-License-Identifier: MIT */
/*
 * Unprivileged clients for the guest suites: the test forks a child that
 * becomes one of the VM's users (run-vm.sh --user) and runs a client_fn.
 *
 * The child (struct peer) reports one line at a time with p_say(), fails
 * with P_CHECK() (a "FAIL file:line: why" line, then _exit(1): a child must
 * not call check at all) and waits for the test's go-ahead with p_wait().
 * The test (struct child) reads those lines with child_expect*(), which fail
 * the test on a FAIL line, EOF or time-out, lets the child go on with
 * child_go(), and ends it with child_end() or child_kill().
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

struct peer {
        const char *user;
        int cmd; /* bytes from the test: go on */
        int rep; /* lines to the test */
};

void p_say(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void p_fail(struct peer *p, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define P_CHECK(p, cond, ...)                                         \
        do {                                                          \
                if (!(cond))                                          \
                        p_fail((p), __FILE__, __LINE__, __VA_ARGS__); \
        } while (0)

/* Waits for the test's go-ahead; the test closing its end means "stop here". */
void p_wait(struct peer *p);

/* The child's open fds (not testutil's: a child must not call check). */
int p_count_fds(void);

typedef void (*client_fn)(struct peer *p, const void *arg);

/* The test's side of a child. */
struct child {
        const char *user;
        pid_t pid;
        int cmd, rep;
        char buf[8192];
        size_t len;
};

enum child_flags {
        /* The user's groups of /etc/group, as login gives them (default: none). */
        CHILD_INITGROUPS = 1 << 0,
        /* fn must leave as many fds open as it found. */
        CHILD_CHECK_FDS = 1 << 1,
};

/* Forks a child that drops to `user` for good and runs fn(peer, arg), then says "exit". */
void child_start(struct child *ch, const char *user, client_fn fn, const void *arg, unsigned flags);

/* The child's next line into line[size]; a FAIL line, EOF or 30 s of silence fails the test. */
void child_line(struct child *ch, char *line, size_t size);

/* Reads the child's next line and asserts it starts with `prefix` (copied to line if not NULL). */
void child_expect(struct child *ch, const char *prefix, char *line, size_t size);

/* Reads the child's next line and asserts it is exactly `want`. */
void child_expect_exact(struct child *ch, const char *want);

void child_go(struct child *ch);

/* Lets the child finish; asserts it said "exit" and exited 0. */
void child_end(struct child *ch);

/* SIGKILLs the child and reaps it. */
void child_kill(struct child *ch);
