/* SPDX-License-Identifier: MIT */
/*
 * The hostile-input cases: a raw-socket client (tests/rawclient.h and
 * hand-made datagrams, never libvfiod) against a running vfiod, shared by the
 * host suite (vfiod-fake as a process, test-hostile.c) and the guest suite
 * (the real vfiod on the real kernel, guest-hostile.c).
 *
 * Concepts: each case is one check test. It connects as the unprivileged
 * user (seteuid around connect(): SO_PEERCRED records the effective ids) or
 * as root (an admin), sends what it wants, and checks the answer: an Error
 * with the right errno and the connection still serving, or a dropped
 * connection. hostile_check_recovered() then proves the daemon holds: a fresh
 * well-behaved client gets Hello and ListDevices answered, Stats shows no
 * lease, domain or mapping left, and the daemon's fd count and RSS (from
 * /proc/<pid>) come back to the baseline taken at the start of the test.
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/transport.h"
#include "tests/rawclient.h"

struct hostile_env {
        char sock[108]; /* the daemon's socket */
        pid_t pid;      /* the daemon */
        uid_t uid;      /* an unprivileged user the policy grants devices */
        gid_t gid;
        uid_t other_uid; /* a second such user (another client's lease) */
        gid_t other_gid;
        char device[16];      /* a device uid may lease BROKERED (free at every test start) */
        uint64_t window_last; /* the policy's IovaWindows=0x0-window_last, for those cases */
        /*
         * Do not count the daemon's pipe read ends: the fake ioctl layer keeps
         * one per VFIO object it handed out and closes it only at its next
         * call after the object is gone (tests/daemon/fake-kernel.h). The
         * cases send pipe WRITE ends, so a leak of those still counts.
         */
        bool skip_pipe_read_ends;
        int baseline_fds; /* the daemon's fds at the start of the test */
        long baseline_rss_kb;
};

/* Set by the suite before the cases run (the host suite per test, the guest once). */
extern struct hostile_env HE;

/* Adds every hostile case to tc (each a check test). */
void hostile_add_cases(TCase *tc);
/* Adds the SIGKILL-at-every-step cases to tc. */
void hostile_add_kill_cases(TCase *tc);
/* Adds the IovaWindows= cases (HE.window_last set, the policy to match). */
void hostile_add_window_cases(TCase *tc);

/* Takes the baseline (after one well-behaved client came and went). */
void hostile_baseline(void);
/* The daemon serves a new client, holds nothing, and is back to its baseline fds and RSS. */
void hostile_check_recovered(void);

/* ---- helpers (also for the suites) ----------------------------------------------- */

/* Connects to the daemon as uid/gid (root: 0/0); SO_RCVTIMEO 5 s. */
int hostile_connect(uid_t uid, gid_t gid);
/* Sends env (the transport's checks) and returns its id (set from a counter if 0). */
uint64_t hostile_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds);
/* Receives one message (5 s at most); NULL on EOF (the daemon closed). Fails on a timeout. */
struct vfiod_msg *hostile_recv(int fd);
/* Sends and receives the reply to it (events in between are skipped). */
struct vfiod_msg *hostile_call(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds);
/* True when the daemon closed the connection (reads and drops what it sent first). */
bool hostile_dropped(int fd);
void hostile_hello(int fd);
/* Acquire BROKERED of HE.device into a new domain: returns the lease, sets *ret_domain. */
uint64_t hostile_acquire(int fd, uint64_t *ret_domain);

/* The daemon's open fds and RSS (KiB), from /proc. */
int hostile_daemon_fds(void);
long hostile_daemon_rss_kb(void);
