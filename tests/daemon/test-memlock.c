/* SPDX-License-Identifier: MIT */
/*
 * Memory locking by policy: a DIRECT or GROUP lease whose rules set
 * MaxPinnedBytes= raises the RLIMIT_MEMLOCK of the process that connected
 * (here the test itself: the harness's peer is this process), never lowers
 * it, leaves BROKERED leases and rules without the key alone, and grants the
 * lease all the same when it cannot (no CAP_SYS_RESOURCE for the hard limit,
 * a peer that is gone), saying why in LeaseGrant.
 *
 * Privilege: the daemon runs in this process, as whoever runs the suite.
 * The raises stay under the hard limit the test finds (a process may raise
 * its own soft limit up to it), and the refusal drops CAP_SYS_RESOURCE from
 * the (forked) test first, so every case means the same as root or not.
 */
#include <check.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/server.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/testutil.h"

#define DEV1 "0000:00:01.0"
#define DEV2 "0000:00:02.0"
#define KIB  UINT64_C(1024)

static struct rlimit memlock(void)
{
        struct rlimit r;

        ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &r), 0);
        return r;
}

static void set_memlock(rlim_t soft, rlim_t hard)
{
        struct rlimit r = {.rlim_cur = soft, .rlim_max = hard};

        ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &r), 0);
}

/* A hard limit the test can live under: the one it has, or 64 MiB when unlimited. */
static rlim_t hard_limit(void)
{
        rlim_t hard = memlock().rlim_max;

        ck_assert_msg(hard == RLIM_INFINITY || hard >= 256 * KIB,
                      "RLIMIT_MEMLOCK hard limit %llu is too small for this suite",
                      (unsigned long long)hard);
        return hard == RLIM_INFINITY ? 64 * 1024 * KIB : hard;
}

/* Starts the daemon with the rules in conf and a client of uid 1000 after Hello. */
static int start(const char *conf)
{
        int fd;

        h_start(conf);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        return fd;
}

/* Acquire; the reply's LeaseGrant memlock fields; its fds closed. */
static void acquire(int fd, const char *dev, int mode, uint64_t *ret_bytes, char *ret_error,
                    size_t size)
{
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire, &a);
        struct vfiod_msg *m;

        a.device = (char *)dev;
        a.mode = mode;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_msg(m->env->body_case == VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY, "%s",
                      m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? m->env->error->reason
                                                                       : "?");
        ck_assert_ptr_nonnull(m->env->acquire_reply->grant);
        *ret_bytes = m->env->acquire_reply->grant->memlock_bytes;
        snprintf(ret_error, size, "%s", m->env->acquire_reply->grant->memlock_error);
        vfiod_msg_free(m); /* closes the fds that came */
}

static const char *conf_of(char *buf, size_t size, const char *modes, unsigned long long bytes)
{
        snprintf(buf, size,
                 "[Device t]\nMatch=0000:00:01.0 0000:00:02.0\nUsers=1000\nModes=%s\n"
                 "MaxPinnedBytes=%llu\n",
                 modes, bytes);
        return buf;
}

START_TEST(raised_to_max_pinned_bytes)
{
        rlim_t hard = hard_limit(), want = hard / 2;
        char conf[256], error[256];
        uint64_t bytes;
        int fd;

        set_memlock(64 * KIB, hard);
        fd = start(conf_of(conf, sizeof(conf), "direct group", (unsigned long long)want));
        acquire(fd, DEV1, VFIOD__MODE__MODE_DIRECT, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, want);
        ck_assert_uint_eq(memlock().rlim_max, hard);
        ck_assert_uint_eq(bytes, want);
        ck_assert_str_eq(error, "");
        /* GROUP the same; a limit higher already is never lowered. */
        set_memlock(hard, hard);
        acquire(fd, DEV2, VFIOD__MODE__MODE_GROUP, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, hard);
        ck_assert_uint_eq(bytes, hard);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(brokered_and_rules_without_the_key_leave_it)
{
        char conf[256], error[256];
        uint64_t bytes = 1;
        int fd;

        set_memlock(64 * KIB, hard_limit());
        fd = start(conf_of(conf, sizeof(conf), "brokered", 1024 * KIB));
        acquire(fd, DEV1, VFIOD__MODE__MODE_BROKERED, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, 64 * KIB);
        ck_assert_uint_eq(bytes, 0);
        close(fd);
        h_spin();
        h_stop();
        fd = start("[Device t]\nMatch=0000:00:01.0\nUsers=1000\n");
        bytes = 1;
        acquire(fd, DEV1, VFIOD__MODE__MODE_DIRECT, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, 64 * KIB);
        ck_assert_uint_eq(bytes, 0);
        ck_assert_str_eq(error, "");
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/* Drops CAP_SYS_RESOURCE from this (forked) process's effective and permitted sets. */
static void drop_cap_sys_resource(void)
{
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2];

        ck_assert_int_eq(syscall(SYS_capget, &hdr, data), 0);
        data[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
        data[CAP_SYS_RESOURCE / 32].permitted &= ~(1u << (CAP_SYS_RESOURCE % 32));
        ck_assert_int_eq(syscall(SYS_capset, &hdr, data), 0);
}

START_TEST(granted_when_it_cannot_raise)
{
        char conf[256], error[256];
        uint64_t bytes = 1;
        pid_t gone;
        int fd;

        drop_cap_sys_resource();
        set_memlock(64 * KIB, 128 * KIB);
        /* Above the hard limit: needs CAP_SYS_RESOURCE. */
        fd = start(conf_of(conf, sizeof(conf), "direct group", 1024 * KIB));
        acquire(fd, DEV1, VFIOD__MODE__MODE_GROUP, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, 64 * KIB);
        ck_assert_uint_eq(bytes, 0);
        ck_assert_msg(strstr(error, "CAP_SYS_RESOURCE"), "%s", error);
        close(fd);
        h_spin();
        /* A peer whose pid is not the process that connected any more. */
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        gone = fork();
        ck_assert_int_ge(gone, 0);
        if (gone == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(gone, NULL, 0), gone);
        {
                struct vfiod_client *c;

                list_for_each_safe (c, it, &H.server->clients, struct vfiod_client, link)
                        if (c->peer.pid == getpid())
                                c->peer.pid = gone;
        }
        set_memlock(64 * KIB, 64 * KIB);
        acquire(fd, DEV2, VFIOD__MODE__MODE_DIRECT, &bytes, error, sizeof(error));
        ck_assert_uint_eq(memlock().rlim_cur, 64 * KIB);
        ck_assert_uint_eq(bytes, 0);
        ck_assert_msg(strstr(error, "gone"), "%s", error);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("memlock");
        TCase *tc = tcase_create("memlock");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, raised_to_max_pinned_bytes);
        tcase_add_test(tc, brokered_and_rules_without_the_key_leave_it);
        tcase_add_test(tc, granted_when_it_cannot_raise);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
