/* SPDX-License-Identifier: MIT */
/*
 * Connections: the permission table (state, reply/event bodies, admin), the
 * version check, ListDevices/CreateDomain/DestroyDomain, the per-client
 * limits, and the send queue of a client that does not read.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/client.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define EVENTS   VFIOD__CAPABILITY__CAPABILITY_EVENTS
#define DIRECT   VFIOD__MODE__MODE_DIRECT
#define BROKERED VFIOD__MODE__MODE_BROKERED

static void start_default(void)
{
        h_start(h_default_conf);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        h_add_device("0000:00:03.0", 3, "e1000e");
}

static struct vfiod_msg *call_empty(int fd, Vfiod__Envelope__BodyCase body)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Stats st = VFIOD__STATS__INIT; /* every empty message packs the same */
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;

        env.body_case = body;
        switch (body) {
        case VFIOD__ENVELOPE__BODY_STATS:
                env.stats = &st;
                break;
        case VFIOD__ENVELOPE__BODY_LIST_LEASES:
                env.list_leases = (Vfiod__ListLeases *)&st;
                vfiod__list_leases__init(env.list_leases);
                break;
        case VFIOD__ENVELOPE__BODY_RELOAD_POLICY:
                env.reload_policy = (Vfiod__ReloadPolicy *)&st;
                vfiod__reload_policy__init(env.reload_policy);
                break;
        case VFIOD__ENVELOPE__BODY_LIST_DEVICES:
                env.list_devices = &ld;
                break;
        default:
                ck_abort_msg("unexpected body");
        }
        return h_call(fd, &env, NULL, 0);
}

static void send_list_devices(int fd)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);

        h_send(fd, &env, NULL, 0);
}

/* ---- the permission table ---------------------------------------------------------- */

START_TEST(request_before_hello_drops)
{
        int fd;

        start_default();
        fd = h_connect(1000, 1000);
        send_list_devices(fd);
        ck_assert(h_closed(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(reply_and_event_bodies_drop)
{
        Vfiod__Ok ok = VFIOD__OK__INIT;
        Vfiod__Envelope env = ENVELOPE(ok, &ok);
        Vfiod__LeaseRevoked ev = VFIOD__LEASE_REVOKED__INIT;
        int a, b;

        start_default();
        a = h_connect(1000, 1000);
        b = h_connect(1000, 1000);
        h_hello(a, 0);
        h_hello(b, 0);
        h_send(a, &env, NULL, 0);
        ck_assert(h_closed(a));
        env = ENVELOPE(lease_revoked, &ev);
        h_send(b, &env, NULL, 0);
        ck_assert(h_closed(b));
        close(a);
        close(b);
        h_stop();
}
END_TEST

/*
 * A Hello in session (a process that adopted the connection says who it is)
 * is answered again; one of another major version closes the connection.
 */
START_TEST(second_hello_answered)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        int fd;

        start_default();
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        h_hello(fd, VFIOD__CAPABILITY__CAPABILITY_EVENTS);
        h.major = VFIOD_PROTO_VERSION_MAJOR + 1;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EPROTONOSUPPORT);
        ck_assert(h_closed(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(request_id_zero_drops)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        int fd;

        start_default();
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        ck_assert_int_eq(vfiod_msg_send(fd, &env, NULL, 0), 0);
        ck_assert(h_closed(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(wrong_major)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        int fd;

        start_default();
        fd = h_connect(1000, 1000);
        h.major = VFIOD_PROTO_VERSION_MAJOR + 1;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EPROTONOSUPPORT);
        ck_assert(h_closed(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(garbage_drops_only_that_client)
{
        int a, b;

        start_default();
        a = h_connect(1000, 1000);
        b = h_connect(1000, 1000);
        h_hello(b, 0);
        ck_assert_int_eq(send(a, "\xff\xff\xff garbage", 12, 0), 12);
        ck_assert(h_closed(a));
        ck_assert_int_eq(h_state(b, "0000:00:01.0"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(a);
        close(b);
        h_stop();
}
END_TEST

START_TEST(admin_requests_need_admin)
{
        static const Vfiod__Envelope__BodyCase admin[] = {VFIOD__ENVELOPE__BODY_STATS,
                                                          VFIOD__ENVELOPE__BODY_LIST_LEASES,
                                                          VFIOD__ENVELOPE__BODY_RELOAD_POLICY};
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__Envelope env = ENVELOPE(revoke, &rv);
        struct vfiod_msg *m;
        int user, root;

        start_default();
        user = h_connect(1000, 1000);
        root = h_connect(0, 0);
        h_hello(user, 0);
        h_hello(root, 0);
        for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++)
                ck_assert_int_eq(h_error(call_empty(user, admin[i])), EPERM);
        rv.lease_id = 1;
        ck_assert_int_eq(h_error(h_call(user, &env, NULL, 0)), EPERM);
        /* The connection is still fine. */
        ck_assert_int_eq(h_state(user, "0000:00:01.0"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);

        m = call_empty(root, VFIOD__ENVELOPE__BODY_STATS);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_STATS_REPLY);
        ck_assert_uint_eq(m->env->stats_reply->clients, 2);
        ck_assert_uint_ge(m->env->stats_reply->errors, 4);
        vfiod_msg_free(m);
        m = call_empty(root, VFIOD__ENVELOPE__BODY_LIST_LEASES);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY);
        vfiod_msg_free(m);
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(root, &env, NULL, 0)), ENOENT); /* no lease 1 */
        close(user);
        close(root);
        h_stop();
}
END_TEST

/* Lines of the log file that hold needle. */
static int count_lines(const char *path, const char *needle)
{
        FILE *f = fopen(path, "re");
        char line[1024];
        int n = 0;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                n += strstr(line, needle) != NULL;
        fclose(f);
        return n;
}

/*
 * Every failed request is answered, but a client's failures are logged at
 * most 10 lines per 5 s; the rest are counted and said once (here: when the
 * client goes). Another client's failures have their own budget.
 */
START_TEST(failed_requests_logged_within_a_budget)
{
        char *dir = testutil_mkdtemp("vfiod-log");
        char path[4200];
        int fd, other, saved;

        start_default();
        snprintf(path, sizeof(path), "%s/stderr", dir);
        saved = dup(STDERR_FILENO);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        close(fd);

        fd = h_connect(1000, 1000);
        other = h_connect(1001, 1001);
        h_hello(fd, 0);
        h_hello(other, 0);
        for (int i = 0; i < 25; i++)
                ck_assert_int_eq(h_error(call_empty(fd, VFIOD__ENVELOPE__BODY_STATS)), EPERM);
        ck_assert_int_eq(h_error(call_empty(other, VFIOD__ENVELOPE__BODY_STATS)), EPERM);
        close(fd);
        h_spin();
        close(other);
        h_spin();

        ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        ck_assert_int_eq(count_lines(path, "client 1: refused 'stats': not an admin"), 10);
        ck_assert_int_eq(count_lines(path, "client 1: 15 more failed request(s) not logged"), 1);
        ck_assert_int_eq(count_lines(path, "client 2: refused 'stats': not an admin"), 1);
        ck_assert_int_eq(count_lines(path, "client 2: "), 3); /* hello, refused, closing */
        testutil_rmtree(dir);
        free(dir);
        h_stop();
}
END_TEST

START_TEST(admin_named_by_config)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m;
        int fd;

        h_start("[Daemon]\nAdminUsers=1234\n");
        fd = h_connect(1234, 1234);
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        ck_assert(m->env->hello_reply->capabilities & VFIOD__CAPABILITY__CAPABILITY_ADMIN);
        vfiod_msg_free(m);
        m = call_empty(fd, VFIOD__ENVELOPE__BODY_STATS);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_STATS_REPLY);
        vfiod_msg_free(m);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(hello_reply)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        const Vfiod__HelloReply *hr;
        struct vfiod_msg *m;
        int fd;

        h_start("[Daemon]\nMaxLeasesPerClient=3\nMaxDomainsPerClient=2\nMaxFdsPerMessage=9\n");
        fd = h_connect(1000, 1000);
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        h.minor = 7; /* a newer minor is fine */
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        hr = m->env->hello_reply;
        ck_assert_uint_eq(hr->major, VFIOD_PROTO_VERSION_MAJOR);
        ck_assert_uint_eq(hr->max_fds, 9);
        ck_assert_uint_eq(hr->limits->max_leases, 3);
        ck_assert_uint_eq(hr->limits->max_domains, 2);
        ck_assert_uint_eq(hr->limits->max_mappings, VFIOD_DEFAULT_MAX_MAPPINGS_PER_CLIENT);
        ck_assert(hr->capabilities & VFIOD__CAPABILITY__CAPABILITY_EVENTS);
        ck_assert(!(hr->capabilities & VFIOD__CAPABILITY__CAPABILITY_ADMIN));
        vfiod_msg_free(m);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(fds_before_hello_are_closed)
{
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &md);
        Vfiod__DmaRange dr = VFIOD__DMA_RANGE__INIT, *p = &dr;
        int fd, mfd;

        start_default();
        fd = h_connect(1000, 1000);
        mfd = h_memfd(4096, F_SEAL_SHRINK);
        dr.size = 4096;
        md.domain_id = 1;
        md.n_ranges = 1;
        md.ranges = &p;
        h_send(fd, &env, &mfd, 1);
        ck_assert(h_closed(fd));
        /* The daemon's copy of the memfd is gone too (the fd-leak fixture checks). */
        close(mfd);
        close(fd);
        h_stop();
}
END_TEST

static void hello_limits(int fd, uint32_t max_datagram, uint32_t max_fds)
{
        rawclient_hello_limits(h_call, fd, 0, max_datagram, max_fds);
}

/*
 * A Hello whose max_datagram cannot take the HelloReply is answered with
 * Error EMSGSIZE (cut to what the client takes), and an Error means nothing
 * changed: the connection is still before Hello, so a request drops it and a
 * second Hello is taken.
 */
START_TEST(hello_too_small_changes_nothing)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m;
        int fd;

        start_default();
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        h.capabilities = EVENTS;
        h.max_datagram = 24;
        fd = h_connect(1000, 1000);
        m = h_call(fd, &env, NULL, 0);
        ck_assert_uint_le(vfiod__envelope__get_packed_size(m->env), 24);
        ck_assert_int_eq(h_error(m), EMSGSIZE);
        /* Still before Hello: a request is not allowed. */
        send_list_devices(fd);
        ck_assert(h_closed(fd));
        close(fd);

        /* And a second Hello, with room for the reply, is the first that counts. */
        fd = h_connect(1000, 1000);
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EMSGSIZE);
        h.max_datagram = 0;
        env.id = 0;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        vfiod_msg_free(m);
        m = call_empty(fd, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        vfiod_msg_free(m);
        close(fd);
        h_stop();
}
END_TEST

/* Runs the loop for ms milliseconds (its timers fire). */
static void run_for_ms(int ms)
{
        ev_tstamp end = ev_time() + ms / 1000.0;

        while (ev_time() < end) {
                ev_run(H.loop, EVRUN_NOWAIT);
                usleep(5000);
        }
}

/*
 * A connection that does not say Hello within HelloTimeoutMs is closed; one
 * that did is kept, however long it stays idle.
 */
START_TEST(no_hello_in_time_closes)
{
        int idle, greeted;

        h_start("[Daemon]\nHelloTimeoutMs=300\n");
        idle = h_connect(1000, 1000);
        greeted = h_connect(1000, 1000);
        h_hello(greeted, 0);
        run_for_ms(100);
        ck_assert(!h_closed(idle));
        run_for_ms(400);
        ck_assert(h_closed(idle));
        ck_assert(!h_closed(greeted));
        ck_assert(h_quiet(greeted));
        close(idle);
        close(greeted);
        h_stop();
}
END_TEST

/* The default is a few seconds. */
START_TEST(no_hello_default_timeout)
{
        int idle;

        start_default();
        idle = h_connect(1000, 1000);
        run_for_ms(VFIOD_DEFAULT_HELLO_TIMEOUT_MS / 2);
        ck_assert(!h_closed(idle));
        run_for_ms(VFIOD_DEFAULT_HELLO_TIMEOUT_MS / 2 + 500);
        ck_assert(h_closed(idle));
        close(idle);
        h_stop();
}
END_TEST

START_TEST(client_receive_limits)
{
        int small, onefd, fds[3], err = 0;
        size_t n;
        uint64_t lease;

        start_default();
        small = h_connect(1000, 1000);
        onefd = h_connect(1000, 1000);
        hello_limits(small, 64, 0);
        hello_limits(onefd, 0, 1);
        /* Three devices do not fit in 64 bytes: an error, not a bigger datagram. */
        ck_assert_int_eq(h_error(call_empty(small, VFIOD__ENVELOPE__BODY_LIST_DEVICES)), EMSGSIZE);
        /* A DIRECT lease needs 3 fds. */
        ck_assert_uint_eq(h_acquire(onefd, "0000:00:01.0", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EINVAL);
        lease = h_acquire_ok(onefd, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        ck_assert_uint_eq(n, 1);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(onefd, lease), 0);
        close(small);
        close(onefd);
        h_stop();
}
END_TEST

/* ---- devices and domains -------------------------------------------------------------- */

START_TEST(list_devices_by_policy)
{
        struct vfiod_msg *m;
        const Vfiod__ListDevicesReply *r;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        int u, other, fds[3];
        size_t n;
        uint64_t lease;

        start_default();
        h_add_device("0000:00:09.0", 9, "vfio-pci"); /* no rule names it */
        u = h_connect(1000, 1000);
        other = h_connect(1001, 1001);
        h_hello(u, 0);
        h_hello(other, 0);
        m = call_empty(u, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        r = m->env->list_devices_reply;
        ck_assert_uint_eq(r->n_devices, 3);
        ck_assert_str_eq(r->devices[0]->device, "0000:00:01.0");
        ck_assert_uint_eq(r->devices[0]->vendor_id, 0x1234);
        ck_assert_uint_eq(r->devices[0]->iommu_group, 1);
        ck_assert_str_eq(r->devices[0]->driver, "vfio-pci");
        ck_assert_uint_eq(r->devices[0]->n_allowed_modes, 3);
        ck_assert_int_eq(r->devices[2]->state, VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE);
        vfiod_msg_free(m);
        /* Another uid sees nothing, and asking for one device is ENOENT. */
        m = call_empty(other, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 0);
        vfiod_msg_free(m);
        ld.device = "0000:00:01.0";
        env = ENVELOPE(list_devices, &ld);
        ck_assert_int_eq(h_error(h_call(other, &env, NULL, 0)), ENOENT);
        ld.device = "not-an-address";
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(u, &env, NULL, 0)), EINVAL);

        lease = h_acquire_ok(u, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        ck_assert_int_eq(h_state(u, "0000:00:01.0"), VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        h_close_all(fds, n);
        {
                /* Another uid allowed the device sees it LEASED. */
                struct vfiod_policy *p = H.server->policy;
                p->rules[0].users[0] = 1001;
                ck_assert_int_eq(h_state(other, "0000:00:01.0"),
                                 VFIOD__LEASE_STATE__LEASE_STATE_LEASED);
                p->rules[0].users[0] = 1000;
        }
        ck_assert_int_eq(h_release(u, lease), 0);
        ck_assert_int_eq(h_state(u, "0000:00:01.0"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(u);
        close(other);
        h_stop();
}
END_TEST

static uint64_t create_domain(int fd, int *ret_err)
{
        Vfiod__CreateDomain cd = VFIOD__CREATE_DOMAIN__INIT;
        Vfiod__Envelope env = ENVELOPE(create_domain, &cd);
        struct vfiod_msg *m;
        uint64_t id;

        m = h_call(fd, &env, NULL, 0);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                ck_assert_ptr_nonnull(strstr(m->env->error->reason, "MaxDomainsPerClient=2"));
                *ret_err = h_error(m);
                return 0;
        }
        ck_assert_int_eq(m->env->create_domain_reply->iommu_type,
                         VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1V2);
        id = m->env->create_domain_reply->domain_id;
        vfiod_msg_free(m);
        return id;
}

static int destroy_domain(int fd, uint64_t id)
{
        Vfiod__DestroyDomain dd = VFIOD__DESTROY_DOMAIN__INIT;
        Vfiod__Envelope env = ENVELOPE(destroy_domain, &dd);
        struct vfiod_msg *m;

        dd.domain_id = id;
        m = h_call(fd, &env, NULL, 0);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR)
                return h_error(m);
        h_ok(m);
        return 0;
}

START_TEST(domains_and_their_limit)
{
        int fd, err = 0, fds[3];
        uint64_t d1, d2, lease;
        size_t n;

        h_start("[Daemon]\nMaxDomainsPerClient=2\n"
                "[Device t]\nMatch=0000:00:01.0\nUsers=1000\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        d1 = create_domain(fd, &err);
        d2 = create_domain(fd, &err);
        ck_assert(d1 && d2 && d1 != d2);
        ck_assert_uint_eq(create_domain(fd, &err), 0);
        ck_assert_int_eq(err, ENOSPC);
        /* Acquire with domain 0 creates one: also over the limit. */
        ck_assert_uint_eq(h_acquire(fd, "0000:00:01.0", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENOSPC);
        lease = h_acquire_ok(fd, "0000:00:01.0", d1, DIRECT, fds, &n, NULL);
        ck_assert_int_eq(destroy_domain(fd, d1), EBUSY);
        ck_assert_int_eq(destroy_domain(fd, 999), ENOENT);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_int_eq(destroy_domain(fd, d1), 0);
        ck_assert_int_eq(destroy_domain(fd, d2), 0);
        ck_assert_int_eq(destroy_domain(fd, d2), ENOENT);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(lease_limit)
{
        int fd, err = 0, fds[3], fds2[3];
        size_t n, n2;
        uint64_t lease;

        h_start("[Daemon]\nMaxLeasesPerClient=1\n"
                "[Device t]\nMatch=0000:00:01.0 0000:00:02.0\nUsers=1000\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        ck_assert_uint_eq(h_acquire(fd, "0000:00:02.0", 0, BROKERED, fds2, &n2, NULL, &err), 0);
        ck_assert_int_eq(err, ENOSPC);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        lease = h_acquire_ok(fd, "0000:00:02.0", 0, BROKERED, fds2, &n2, NULL);
        h_close_all(fds2, n2);
        close(fd); /* the disconnect releases it */
        h_spin();
        h_stop();
}
END_TEST

START_TEST(fds_per_message_limit)
{
        Vfiod__SetIrqs si = VFIOD__SET_IRQS__INIT;
        Vfiod__Envelope env = ENVELOPE(set_irqs, &si);
        int32_t idx[3] = {0, 1, 2};
        int efd[3], fd, fds[3];
        size_t n;
        struct vfiod_msg *m;

        h_start("[Daemon]\nMaxFdsPerMessage=2\n[Device t]\nMatch=0000:00:01.0\nUsers=1000\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        si.lease_id = h_acquire_ok(fd, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        for (int i = 0; i < 3; i++)
                efd[i] = eventfd(0, EFD_CLOEXEC);
        si.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
        si.count = 3;
        si.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        si.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
        si.n_eventfds = 3;
        si.eventfds = idx;
        m = h_call(fd, &env, efd, 3);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ERROR);
        ck_assert_ptr_nonnull(strstr(m->env->error->reason, "MaxFdsPerMessage=2"));
        ck_assert_int_eq(h_error(m), ENOSPC);
        ck_assert_uint_eq(fake_kernel_irq_assigned("0000:00:01.0", 2), 0);
        h_close_all(efd, 3);
        h_close_all(fds, n);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/* ---- a client that does not read ------------------------------------------------------ */

static struct vfiod_client *server_client(uint64_t id)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &H.server->clients, struct vfiod_client, link)
                if (c->id == id)
                        return c;
        return NULL;
}

START_TEST(no_read_pauses_then_drains)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        struct vfiod_client *c;
        int fd, sent = 0, got = 0, small = 4096;

        start_default();
        fd = h_connect(1000, 1000);
        c = server_client(1);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        h_hello(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        /* Send until the daemon stops reading us (our socket fills up). */
        for (int i = 0; i < 5000; i++) {
                env.id = ++H.next_id;
                if (vfiod_msg_send(fd, &env, NULL, 0) < 0) {
                        h_spin();
                        if (vfiod_msg_send(fd, &env, NULL, 0) < 0)
                                break;
                }
                sent++;
                h_spin();
        }
        ck_assert_int_lt(sent, 5000);
        ck_assert(!c->dead);
        ck_assert_uint_ge(c->queued_msgs, 1);
        ck_assert(!(c->io.events & EV_READ));
        /* Now read everything: every request is answered, in order. */
        for (uint64_t want = 2; got < sent; got++, want++) {
                struct vfiod_msg *m = h_recv(fd);
                ck_assert_uint_eq(m->env->id, want);
                ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
                vfiod_msg_free(m);
        }
        ck_assert_uint_eq(c->queued_msgs, 0);
        ck_assert(h_quiet(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(full_queue_drops_the_client)
{
        struct vfiod_client *c;
        int slow, other, fds[3], small = 4096;
        size_t n;

        h_start("[Daemon]\nMaxQueuedMessagesPerClient=4\n"
                "[Device t]\nMatch=0000:00:01.0 0000:00:02.0\nUsers=1000\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        slow = h_connect(1000, 1000);
        other = h_connect(1000, 1000);
        c = server_client(1);
        ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        h_hello(slow, EVENTS);
        h_hello(other, 0);
        h_acquire_ok(slow, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        h_close_all(fds, n);
        /* The device keeps reporting errors; the client never reads its events. */
        for (int i = 0; i < 2000; i++) {
                ck_assert_int_eq(fake_kernel_fire("0000:00:01.0", VFIOD__IRQ_INDEX__IRQ_INDEX_ERR),
                                 0);
                h_spin();
                c = server_client(1);
                if (!c)
                        break; /* dropped and freed, its lease released */
                ck_assert_uint_le(c->queued_msgs, 4);
        }
        ck_assert_ptr_null(server_client(1));
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_int_eq(h_state(other, "0000:00:01.0"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(slow);
        close(other);
        h_stop();
}
END_TEST

START_TEST(queued_bytes_limit)
{
        struct vfiod_client *c;
        int slow, fds[3], small = 4096;
        size_t n, most = 0;

        h_start("[Daemon]\nMaxQueuedMessagesPerClient=1000000\nMaxQueuedBytesPerClient=65536\n"
                "[Device t]\nMatch=0000:00:01.0\nUsers=1000\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        slow = h_connect(1000, 1000);
        c = server_client(1);
        ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        h_hello(slow, EVENTS);
        h_acquire_ok(slow, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        h_close_all(fds, n);
        for (int i = 0; i < 20000; i++) {
                ck_assert_int_eq(fake_kernel_fire("0000:00:01.0", VFIOD__IRQ_INDEX__IRQ_INDEX_ERR),
                                 0);
                ev_run(H.loop, EVRUN_NOWAIT);
                ev_run(H.loop, EVRUN_NOWAIT);
                c = server_client(1);
                if (!c)
                        break;
                ck_assert_uint_le(c->queued_bytes, 65536);
                if (c->queued_bytes > most)
                        most = c->queued_bytes;
        }
        ck_assert_ptr_null(server_client(1));
        ck_assert_uint_gt(most, 60000); /* it was the byte limit that was reached */
        ck_assert(!fake_kernel_group_attached(1));
        close(slow);
        h_stop();
}
END_TEST

START_TEST(requests_per_wakeup)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        int fd;

        h_start("[Daemon]\nMaxRequestsInFlight=1\n");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        for (int i = 0; i < 3; i++) {
                env.id = 0;
                h_send(fd, &env, NULL, 0);
        }
        ev_run(H.loop, EVRUN_NOWAIT);
        /* One request served in this wake-up; the others wait in the socket. */
        {
                struct vfiod_msg *m = NULL;

                ck_assert_int_eq(vfiod_msg_recv(fd, MSG_DONTWAIT, &m, NULL), 1);
                vfiod_msg_free(m);
                m = NULL;
                ck_assert_int_eq(vfiod_msg_recv(fd, MSG_DONTWAIT, &m, NULL), -EAGAIN);
        }
        vfiod_msg_free(h_recv(fd));
        vfiod_msg_free(h_recv(fd));
        ck_assert(h_quiet(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(queued_datagrams_keep_their_fds)
{
        Vfiod__AcquireReply ar = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire_reply, &ar);
        struct vfiod_client *c;
        int fd, efd, small = 4096, sent = 0, got = 0;
        size_t queued_max = 0;

        start_default();
        fd = h_connect(1000, 1000);
        c = server_client(1);
        ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        h_hello(fd, 0);
        efd = eventfd(0, EFD_CLOEXEC);
        ar.device = "0000:00:01.0";
        ar.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        ar.device_fd = 0;
        /* Send until a few go to the queue (the socket is full). */
        while (c->queued_msgs < 3) {
                env.id = (uint64_t)++sent;
                ck_assert_int_eq(vfiod_client_send(c, &env, &efd, 1), 0);
                if (c->queued_msgs > queued_max)
                        queued_max = c->queued_msgs;
                ck_assert_int_lt(sent, 10000);
        }
        /* Our eventfd is still ours; the queue holds duplicates. */
        close(efd);
        for (; got < sent; got++) {
                struct vfiod_msg *m = h_recv(fd);
                ck_assert_uint_eq(m->env->id, (uint64_t)got + 1);
                ck_assert_uint_eq(m->n_fds, 1);
                ck_assert(fcntl(m->fds[0], F_GETFD) >= 0);
                vfiod_msg_free(m);
        }
        ck_assert_uint_eq(c->queued_msgs, 0);
        ck_assert_uint_eq(c->queued_bytes, 0);
        close(fd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-client");
        TCase *t = tcase_create("table");
        TCase *d = tcase_create("devices");
        TCase *q = tcase_create("queue");

        testutil_tcase_fd_checked(t);
        tcase_set_timeout(t, 20); /* no_hello_default_timeout waits for the default */
        tcase_add_test(t, request_before_hello_drops);
        tcase_add_test(t, reply_and_event_bodies_drop);
        tcase_add_test(t, second_hello_answered);
        tcase_add_test(t, request_id_zero_drops);
        tcase_add_test(t, wrong_major);
        tcase_add_test(t, garbage_drops_only_that_client);
        tcase_add_test(t, admin_requests_need_admin);
        tcase_add_test(t, failed_requests_logged_within_a_budget);
        tcase_add_test(t, admin_named_by_config);
        tcase_add_test(t, hello_reply);
        tcase_add_test(t, fds_before_hello_are_closed);
        tcase_add_test(t, client_receive_limits);
        tcase_add_test(t, hello_too_small_changes_nothing);
        tcase_add_test(t, no_hello_in_time_closes);
        tcase_add_test(t, no_hello_default_timeout);
        suite_add_tcase(s, t);

        testutil_tcase_fd_checked(d);
        tcase_add_test(d, list_devices_by_policy);
        tcase_add_test(d, domains_and_their_limit);
        tcase_add_test(d, lease_limit);
        tcase_add_test(d, fds_per_message_limit);
        suite_add_tcase(s, d);

        testutil_tcase_fd_checked(q);
        tcase_set_timeout(q, 30);
        tcase_add_test(q, no_read_pauses_then_drains);
        tcase_add_test(q, full_queue_drops_the_client);
        tcase_add_test(q, queued_datagrams_keep_their_fds);
        tcase_add_test(q, queued_bytes_limit);
        tcase_add_test(q, requests_per_wakeup);
        suite_add_tcase(s, q);
        return testutil_run_suite(s);
}
