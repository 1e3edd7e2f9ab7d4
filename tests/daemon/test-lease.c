/* SPDX-License-Identifier: MIT */
/*
 * Leases: acquire in both modes, the release sequence and its order,
 * quarantine (device fd or group fd still held) and its exit, sanitize,
 * several groups in one domain, the group rule of the policy, REQ/ERR events,
 * revoke with and without events, SetIrqs, Reset, fault injection.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/lease.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define EVENTS   VFIOD__CAPABILITY__CAPABILITY_EVENTS
#define DIRECT   VFIOD__MODE__MODE_DIRECT
#define BROKERED VFIOD__MODE__MODE_BROKERED
#define DEV1     "0000:00:01.0"
#define DEV2     "0000:00:02.0"
#define DEV3     "0000:00:03.0"
#define DEV4     "0000:00:04.0"

static void start(const char *extra)
{
        char conf[1024];

        snprintf(conf, sizeof(conf), "%s%s", extra ? extra : "", h_default_conf);
        h_start(conf);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
}

/* The default start with two clients of uid 1000 that said Hello: *fd first. */
static void start_two(int *fd, int *other)
{
        start(NULL);
        *fd = h_connect(1000, 1000);
        *other = h_connect(1000, 1000);
        h_hello(*fd, 0);
        h_hello(*other, 0);
}

static bool is_fifo(int fd)
{
        struct stat st;

        return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

START_TEST(direct_gets_three_fds_and_release_order)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease, domain;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, &domain);
        ck_assert_uint_eq(n, 3);
        ck_assert(domain != 0);
        for (size_t i = 0; i < n; i++)
                ck_assert(is_fifo(fds[i])); /* the fake's container, group and device */
        ck_assert(fake_kernel_group_attached(1));
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 1);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_ERR_IRQ_INDEX), 1);
        h_close_all(fds, n);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        /*
         * 1 irqs off, 2 unmap all, 3 unset, 4 re-open: free. No sanitize: the
         * device is plain vfio-pci, which resets it at its next open.
         */
        ck_assert_msg(fake_kernel_trace_has("irq_disable " DEV1 " 0", "irq_disable " DEV1 " 4",
                                            "dma_unmap_all", "unset 1;", "group_open 1;", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "get_device_fd"));
        ck_assert_uint_eq(fake_kernel_resets(DEV1), 0);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 0);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        ck_assert_int_eq(h_release(fd, lease), ENOENT);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(brokered_gets_device_fd_only)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        ck_assert_uint_eq(n, 1);
        h_close_all(fds, n);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        /* Brokered: the daemon's own mappings are unmapped, never VFIO_UNMAP_ALL. */
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "dma_unmap_all"));
        ck_assert(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL));
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "get_device_fd"));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(acquire_refusals)
{
        int fd, other, fds[3], err = 0;
        size_t n;
        uint64_t lease;

        start(NULL);
        h_add_device(DEV3, 3, "e1000e");
        fd = h_connect(1000, 1000);
        other = h_connect(1000, 1000);
        h_hello(fd, 0);
        h_hello(other, 0);
        ck_assert_uint_eq(h_acquire(fd, "nonsense", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EINVAL);
        ck_assert_uint_eq(
            h_acquire(fd, DEV1, 0, VFIOD__MODE__MODE_UNSPECIFIED, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EINVAL);
        ck_assert_uint_eq(h_acquire(fd, DEV4, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT); /* allowed but not present */
        ck_assert_uint_eq(h_acquire(fd, "0000:00:09.0", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT);
        ck_assert_uint_eq(h_acquire(fd, DEV3, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENXIO); /* not bound to vfio-pci */
        ck_assert_uint_eq(h_acquire(fd, DEV1, 12345, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT); /* no such domain */
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_uint_eq(h_acquire(other, DEV1, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        ck_assert_uint_eq(h_acquire(fd, DEV1, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        /* uid 1001 is not in the policy. */
        {
                int stranger = h_connect(1001, 1001);
                h_hello(stranger, 0);
                ck_assert_uint_eq(h_acquire(stranger, DEV2, 0, DIRECT, fds, &n, NULL, &err), 0);
                ck_assert_int_eq(err, EPERM);
                close(stranger);
        }
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(!fake_kernel_group_attached(1));
        close(fd);
        close(other);
        h_stop();
}
END_TEST

START_TEST(policy_covers_the_whole_group)
{
        int fd, fds[3], err = 0;
        size_t n;
        uint64_t lease;

        h_start("[Device a]\nMatch=0000:00:05.0\nUsers=1000\n"
                "[Device b]\nMatch=0000:00:06.0\nUsers=1000\nModes=brokered\n"
                "[Device c]\nMatch=0000:00:08.0\nUsers=1000\n");
        /* Group 5: two vfio devices, one allowed only brokered. */
        h_add_device("0000:00:05.0", 5, "vfio-pci");
        h_add_device("0000:00:06.0", 5, "vfio-pci");
        /* Group 8: a vfio device and an unbound one (viable; not checked by the policy). */
        h_add_device("0000:00:08.0", 8, "vfio-pci");
        h_add_device("0000:00:08.1", 8, NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        {
                /* ListDevices shows what Acquire grants: the group's common modes. */
                Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
                Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
                struct vfiod_msg *m;
                const Vfiod__DeviceInfo *di;

                ld.device = "0000:00:05.0";
                m = h_call(fd, &env, NULL, 0);
                ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
                di = m->env->list_devices_reply->devices[0];
                ck_assert_uint_eq(di->n_allowed_modes, 1);
                ck_assert_int_eq(di->allowed_modes[0], BROKERED);
                vfiod_msg_free(m);
        }
        ck_assert_uint_eq(h_acquire(fd, "0000:00:05.0", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EPERM);
        /*
         * Acquire opens both devices of the group, which resets them; the one
         * whose open could not reset it is reset on its own (a hot reset, as
         * it has no reset of its own).
         */
        fake_kernel_set_reset_works("0000:00:06.0", false);
        fake_kernel_trace_clear();
        lease = h_acquire_ok(fd, "0000:00:05.0", 0, BROKERED, fds, &n, NULL);
        ck_assert_msg(fake_kernel_trace_has(
                          "group_open", "get_device_fd 0000:00:05.0", "get_device_fd 0000:00:06.0",
                          "reset 0000:00:06.0=EINVAL", "hot_reset 0000:00:06.0", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert_uint_eq(fake_kernel_resets("0000:00:05.0"), 0);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_int_eq(h_state(fd, "0000:00:05.0"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        lease = h_acquire_ok(fd, "0000:00:08.0", 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(fd);
        h_stop();
}
END_TEST

/*
 * ListDevices of many devices grows its reply as it goes: the caller's own
 * lease, listed among the first, keeps its grant (IRQ vectors) when the
 * entries move.
 */
START_TEST(list_of_many_keeps_own_grant)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        const Vfiod__ListDevicesReply *r;
        struct vfiod_msg *m;
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        h_start("[Device all]\nMatchVendor=1234:*\nUsers=1000\n");
        for (int i = 0; i < 40; i++) {
                char bdf[16];

                snprintf(bdf, sizeof(bdf), "0000:00:%02x.%d", i / 8 + 1, i % 8);
                h_add_device(bdf, i + 1, "vfio-pci");
        }
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, "0000:00:01.0", 0, BROKERED, fds, &n, NULL);
        h_close_all(fds, n);
        m = h_call(fd, &env, NULL, 0);
        r = m->env->list_devices_reply;
        ck_assert_uint_eq(r->n_devices, 40);
        ck_assert_str_eq(r->devices[0]->device, "0000:00:01.0");
        ck_assert_uint_eq(r->devices[0]->lease_id, lease);
        ck_assert_ptr_nonnull(r->devices[0]->grant);
        ck_assert_uint_gt(r->devices[0]->grant->n_irq_counts, VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX);
        /* The fake device's vectors: INTx 1, MSI 1, MSI-X 8. */
        ck_assert_uint_eq(r->devices[0]->grant->irq_counts[VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX], 8);
        ck_assert_uint_eq(r->devices[0]->grant->irq_counts[VFIOD__IRQ_INDEX__IRQ_INDEX_INTX], 1);
        ck_assert_str_eq(r->devices[39]->device, "0000:00:05.7");
        ck_assert_ptr_null(r->devices[39]->grant);
        vfiod_msg_free(m);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(non_viable_group)
{
        int fd, fds[3], err = 0;
        size_t n;

        h_start("[Device a]\nMatch=0000:00:05.0\nUsers=1000\n");
        h_add_device("0000:00:05.0", 5, "vfio-pci");
        h_add_device("0000:00:05.1", 5, "snd_hda_intel");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        ck_assert_uint_eq(h_acquire(fd, "0000:00:05.0", 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENXIO);
        ck_assert_int_eq(h_state(fd, "0000:00:05.0"), VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(two_groups_one_domain)
{
        int fd, f1[3], f2[3], f3[3], err = 0;
        size_t n1, n2, n3;
        uint64_t l1, l2, d1, d2;

        start(NULL);
        h_add_device(DEV3, 3, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        l1 = h_acquire_ok(fd, DEV1, 0, DIRECT, f1, &n1, &d1);
        l2 = h_acquire_ok(fd, DEV2, d1, DIRECT, f2, &n2, &d2);
        ck_assert_uint_eq(d1, d2);
        /* A domain holds one mode. */
        ck_assert_uint_eq(h_acquire(fd, DEV3, d1, BROKERED, f3, &n3, NULL, &err), 0);
        ck_assert_int_eq(err, EINVAL);
        h_close_all(f1, n1);
        h_close_all(f2, n2);
        fake_kernel_trace_clear();
        /* Releasing one group keeps the domain's DMA for the other. */
        ck_assert_int_eq(h_release(fd, l1), 0);
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "dma_unmap_all"));
        ck_assert(fake_kernel_group_attached(2));
        ck_assert_int_eq(h_release(fd, l2), 0);
        ck_assert_ptr_nonnull(strstr(fake_kernel_trace(), "dma_unmap_all"));
        /* Acquire made the domain: it went with its last lease. */
        ck_assert_uint_eq(h_acquire(fd, DEV3, d1, BROKERED, f3, &n3, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT);
        ck_assert_uint_eq(fake_kernel_live(), 0);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(quarantine_while_device_fd_held)
{
        int fd, other, fds[3], err = 0;
        size_t n;
        uint64_t lease;

        start_two(&fd, &other);
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        close(fds[0]);
        close(fds[1]);
        /* fds[2], the device fd, stays open. */
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(fake_kernel_trace_has("irq_disable", "unset 1=EBUSY", NULL));
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        ck_assert_uint_eq(h_acquire(other, DEV1, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        close(fds[2]);
        fake_kernel_trace_clear();
        vfiod_quarantine_check(H.server);
        ck_assert(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL));
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        lease = h_acquire_ok(other, DEV1, 0, BROKERED, fds, &n, NULL);
        h_close_all(fds, n);
        close(fd);
        close(other);
        h_stop();
}
END_TEST

START_TEST(quarantine_while_group_fd_held)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        close(fds[0]);
        close(fds[2]);
        /* fds[1], the group fd (the same open file as the daemon's), stays open. */
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(fake_kernel_trace_has("unset 1;", "group_open 1=EBUSY", NULL));
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        close(fds[1]);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(quarantine_timer)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        close(fds[0]);
        /* Within two timer periods the group is free, with nobody asking. */
        for (int i = 0;
             i < 120 && vfiod_registry_count(H.server->devices, VFIOD_GROUP_QUARANTINED) > 0; i++) {
                usleep(10000);
                h_spin();
        }
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(disconnect_releases)
{
        int fd, fds[3], other;
        size_t n;

        start_two(&fd, &other);
        h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        fake_kernel_trace_clear();
        close(fd); /* also what kill -9 of the client does */
        h_spin();
        ck_assert(fake_kernel_trace_has("irq_disable", "unset 1;", "group_open 1;", NULL));
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        ck_assert_uint_eq(fake_kernel_live(), 0);
        close(other);
        h_stop();
}
END_TEST

/* Sends Release of a lease that does not exist (a small Error reply), without reading it. */
static void send_bad_release(int fd)
{
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__Envelope env = ENVELOPE(release, &rel);

        rel.lease_id = 999999;
        (void)h_send(fd, &env, NULL, 0);
        h_spin();
}

/*
 * A client that exits before reading its AcquireReply: the daemon queued the
 * reply (its socket was full) with duplicates of the lease's fds. Its
 * disconnect must not leave the group quarantined by the daemon's own
 * duplicates: free at once, not after the next re-check.
 */
START_TEST(disconnect_with_a_queued_reply_frees_at_once)
{
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire, &a);
        struct vfiod_client *c;
        int fd, other, fds[3];
        size_t n, k = 0;

        start_two(&fd, &other);
        c = container_of(H.server->clients.next, struct vfiod_client, link);
        /* How many replies the socket takes before the daemon queues one. */
        while (c->queued_msgs == 0) {
                send_bad_release(fd);
                k++;
                ck_assert_uint_lt(k, 10000);
        }
        for (size_t i = 0; i < k; i++)
                ck_assert_int_eq(h_error(h_recv(fd)), ENOENT);
        ck_assert_uint_eq(c->queued_msgs, 0);
        /* k - 1 replies fill it again; the AcquireReply is queued. */
        for (size_t i = 0; i + 1 < k; i++)
                send_bad_release(fd);
        a.device = (char *)DEV1;
        a.mode = DIRECT;
        (void)h_send(fd, &env, NULL, 0);
        h_spin();
        ck_assert_uint_eq(c->queued_msgs, 1);
        ck_assert_int_eq(vfiod_registry_group_state(H.server->devices, 1), VFIOD_GROUP_LEASED);

        close(fd); /* it exits, having read nothing */
        h_spin();
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        h_acquire_ok(other, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        close(other);
        h_stop();
}
END_TEST

/*
 * A holder whose connection closes before its last device fd does (a process
 * that exits closes its socket first): the release finds the group busy and
 * quarantines it. Once that fd is closed, the next Acquire gets the group at
 * once instead of EBUSY until the next periodic re-check.
 */
START_TEST(acquire_after_the_holder_closed_everything)
{
        int fd, other, fds[3], err = 0;
        size_t n;

        start_two(&fd, &other);
        h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        close(fd);
        h_spin();
        ck_assert_int_eq(vfiod_registry_group_state(H.server->devices, 1), VFIOD_GROUP_QUARANTINED);
        h_close_all(fds, n);
        ck_assert_msg(h_acquire(other, DEV1, 0, DIRECT, fds, &n, NULL, &err) != 0, "Acquire: %s",
                      strerror(err));
        h_close_all(fds, n);
        close(other);
        h_stop();
}
END_TEST

START_TEST(kill9_of_a_client_process)
{
        int sv, fds[3], other, status;
        size_t n;
        pid_t pid;

        start_two(&sv, &other);
        h_acquire_ok(sv, DEV1, 0, DIRECT, fds, &n, NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* The child holds the connection and every fd; it only waits. */
                pause();
                _exit(0);
        }
        h_close_all(fds, n);
        close(sv);
        h_spin();
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_LEASED);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        h_spin();
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(other);
        h_stop();
}
END_TEST

START_TEST(req_event_with_grace)
{
        struct vfiod_msg *m;
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        start("[Daemon]\nReleaseGraceMs=50\n");
        fd = h_connect(1000, 1000);
        h_hello(fd, EVENTS);
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(fake_kernel_fire(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 0);
        m = h_recv(fd);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED);
        ck_assert_uint_eq(m->env->id, 0);
        ck_assert_uint_eq(m->env->release_requested->lease_id, lease);
        ck_assert_str_eq(m->env->release_requested->device, DEV1);
        ck_assert_int_eq(m->env->release_requested->reason,
                         VFIOD__RELEASE_REASON__RELEASE_REASON_KERNEL_REQUEST);
        ck_assert_uint_eq(m->env->release_requested->grace_ms, 50);
        vfiod_msg_free(m);
        /* The client ignores it: after the grace period the lease is taken. */
        m = h_recv(fd);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LEASE_REVOKED);
        ck_assert_uint_eq(m->env->lease_revoked->lease_id, lease);
        vfiod_msg_free(m);
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(req_without_events_releases_at_once)
{
        int fd, fds[3];
        size_t n;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(fake_kernel_fire(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 0);
        ck_assert(h_quiet(fd)); /* no event for a client that did not ask for them */
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(err_event)
{
        struct vfiod_msg *m;
        int fd, quiet, fds[3], f2[3];
        size_t n, n2;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        quiet = h_connect(1000, 1000);
        h_hello(fd, EVENTS);
        h_hello(quiet, 0);
        lease = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        h_acquire_ok(quiet, DEV2, 0, BROKERED, f2, &n2, NULL);
        ck_assert_int_eq(fake_kernel_fire(DEV1, VFIO_PCI_ERR_IRQ_INDEX), 0);
        m = h_recv(fd);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_DEVICE_ERROR);
        ck_assert_uint_eq(m->env->device_error->lease_id, lease);
        vfiod_msg_free(m);
        ck_assert_int_eq(fake_kernel_fire(DEV2, VFIO_PCI_ERR_IRQ_INDEX), 0);
        ck_assert(h_quiet(quiet));
        /* The lease stays. */
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        h_close_all(fds, n);
        h_close_all(f2, n2);
        close(fd);
        close(quiet);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(admin_revoke_then_holder_releases)
{
        struct vfiod_msg *m;
        int fd, admin, fds[3];
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        admin = h_connect(0, 0);
        h_hello(fd, EVENTS);
        h_hello(admin, 0);
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_revoke(admin, lease, "maintenance", 0);
        m = h_recv(fd);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED);
        ck_assert_int_eq(m->env->release_requested->reason,
                         VFIOD__RELEASE_REASON__RELEASE_REASON_ADMIN_REVOKE);
        ck_assert_str_eq(m->env->release_requested->detail, "maintenance");
        ck_assert_uint_eq(m->env->release_requested->grace_ms, VFIOD_DEFAULT_RELEASE_GRACE_MS);
        vfiod_msg_free(m);
        /* A second revoke while the first runs changes nothing. */
        h_revoke(admin, lease, "again", 0);
        ck_assert(h_quiet(fd));
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(h_quiet(fd)); /* released in time: no LeaseRevoked */
        h_revoke(admin, lease, "gone", ENOENT);
        close(fd);
        close(admin);
        h_stop();
}
END_TEST

START_TEST(admin_revoke_without_events)
{
        struct vfiod_msg *m;
        int fd, admin, fds[3];
        size_t n;
        uint64_t lease;
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_leases, &ll);

        start(NULL);
        fd = h_connect(1000, 1000);
        admin = h_connect(0, 0);
        h_hello(fd, 0);
        h_hello(admin, 0);
        lease = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        m = h_call(admin, &env, NULL, 0);
        ck_assert_uint_eq(m->env->list_leases_reply->n_leases, 1);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->lease_id, lease);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->uid, 1000);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->iommu_group, 1);
        ck_assert_str_eq(m->env->list_leases_reply->leases[0]->devices[0], DEV1);
        ck_assert_int_eq(m->env->list_leases_reply->leases[0]->mode, BROKERED);
        vfiod_msg_free(m);
        h_close_all(fds, n);
        h_revoke(admin, lease, NULL, 0);
        ck_assert(h_quiet(fd));
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_int_eq(h_release(fd, lease), ENOENT);
        close(fd);
        close(admin);
        h_stop();
}
END_TEST

START_TEST(reload_revokes_what_is_no_longer_allowed)
{
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Envelope env = ENVELOPE(reload_policy, &rp);
        struct vfiod_msg *m;
        int fd, admin, fds[3], f2[3];
        size_t n, n2;

        h_start("[Device a]\nMatch=0000:00:01.0 0000:00:02.0\nUsers=1000\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        fd = h_connect(1000, 1000);
        admin = h_connect(0, 0);
        h_hello(fd, 0);
        h_hello(admin, 0);
        h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        h_acquire_ok(fd, DEV2, 0, BROKERED, f2, &n2, NULL);
        h_close_all(fds, n);
        h_close_all(f2, n2);
        /* A broken file: errors, nothing changes. */
        testutil_write_file(H.root, "vfiod.conf", "[Device a]\nMatch=0000:00:02.0\nBad=1\n");
        m = h_call(admin, &env, NULL, 0);
        ck_assert_uint_eq(m->env->reload_policy_reply->n_errors, 1);
        ck_assert_ptr_nonnull(strstr(m->env->reload_policy_reply->errors[0], "vfiod.conf:3:"));
        ck_assert_uint_eq(m->env->reload_policy_reply->leases_revoked, 0);
        vfiod_msg_free(m);
        ck_assert(fake_kernel_group_attached(1));
        /* A good one that drops DEV1. */
        testutil_write_file(H.root, "vfiod.conf", "[Device a]\nMatch=0000:00:02.0\nUsers=1000\n");
        env.id = 0;
        m = h_call(admin, &env, NULL, 0);
        ck_assert_uint_eq(m->env->reload_policy_reply->n_errors, 0);
        ck_assert_uint_eq(m->env->reload_policy_reply->leases_revoked, 1);
        vfiod_msg_free(m);
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert(fake_kernel_group_attached(2));
        close(fd);
        close(admin);
        h_spin();
        h_stop();
}
END_TEST

static int set_irqs(int fd, uint64_t lease, uint32_t index, uint32_t start, uint32_t count,
                    const int *efds, size_t n_efds)
{
        return rawclient_set_irqs(h_call, fd, lease, index, start, count, efds, n_efds, NULL);
}

START_TEST(set_irqs_on_behalf)
{
        int fd, fds[3], efd[3], base, base0;
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        for (int i = 0; i < 3; i++)
                efd[i] = eventfd(0, EFD_CLOEXEC);
        base0 = testutil_count_fds();
        lease = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        base = testutil_count_fds();
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efd, 2), 0);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_MSIX_IRQ_INDEX), 2);
        /* The daemon keeps its copies (2) and the fake kernel its own (2). */
        ck_assert_int_eq(testutil_count_fds(), base + 4);
        /* The same eventfd for two vectors. */
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 4, 2, efd + 2, 1), 0);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_MSIX_IRQ_INDEX), 4);
        /* Reserved and out-of-range. */
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, efd, 1), EPERM);
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, efd, 1), EPERM);
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 7, 2, efd, 2), EINVAL);
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_MSI_IRQ_INDEX, 0, 2, efd, 2), EINVAL);
        ck_assert_int_eq(set_irqs(fd, lease, 99, 0, 1, efd, 1), EINVAL);
        ck_assert_int_eq(set_irqs(fd, lease + 100, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, efd, 1), ENOENT);
        /*
         * Not an eventfd (the transport's send refuses it: go raw): a transport
         * rule, so that connection is dropped; this one is not disturbed.
         */
        {
                Vfiod__SetIrqs si = VFIOD__SET_IRQS__INIT;
                Vfiod__Envelope env = ENVELOPE(set_irqs, &si);
                int32_t idx0 = 0;
                int p[2], other = h_connect(1000, 1000);

                h_hello(other, 0);
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                si.lease_id = lease;
                si.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
                si.count = 1;
                si.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                si.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                si.n_eventfds = 1;
                si.eventfds = &idx0;
                env.id = 4242;
                h_send_raw(other, &env, p, 1);
                ck_assert(h_closed(other));
                close(other);
                close(p[0]);
                close(p[1]);
                h_closer_drain();
        }
        /* Disable: every copy goes. */
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, 0), 0);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_MSIX_IRQ_INDEX), 0);
        ck_assert_int_eq(testutil_count_fds(), base);
        /* Assigned again, then the release closes them. */
        ck_assert_int_eq(set_irqs(fd, lease, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, efd, 1), 0);
        ck_assert_int_eq(testutil_count_fds(), base + 2);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        /* Nothing remains: the domain, which Acquire made, went with the lease. */
        ck_assert_uint_eq(fake_kernel_live(), 0); /* collects what was closed */
        ck_assert_int_eq(testutil_count_fds(), base0);
        h_close_all(efd, 3);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(reset_request)
{
        Vfiod__Reset rs = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &rs);
        int fd, fds[3];
        size_t n;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        rs.lease_id = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_ok(h_call(fd, &env, NULL, 0));
        ck_assert_uint_eq(fake_kernel_resets(DEV1), 1);
        rs.device = DEV2;
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), ENOENT);
        rs.device = "";
        fake_kernel_fail("kvfio_device_reset", EAGAIN, 0);
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EAGAIN);
        h_close_all(fds, n);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(hot_reset_when_no_reset_of_its_own)
{
        Vfiod__Reset rs = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &rs);
        int fd, fds[3];
        size_t n;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        rs.lease_id = h_acquire_ok(fd, DEV1, 0, BROKERED, fds, &n, NULL);
        /* No function reset: a hot reset inside the group does it. */
        fake_kernel_fail("kvfio_device_reset", ENOTTY, 0);
        fake_kernel_trace_clear();
        h_ok(h_call(fd, &env, NULL, 0));
        ck_assert(fake_kernel_trace_has("hot_reset " DEV1, NULL));
        /* A hot reset that would reset another group's device is not done. */
        fake_kernel_set_hot_reset(2);
        fake_kernel_fail("kvfio_device_reset", ENOTTY, 0);
        fake_kernel_trace_clear();
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), ENOTTY);
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "hot_reset"));
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, rs.lease_id), 0);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(faults_in_acquire_leak_nothing)
{
        static const char *const funcs[] = {
            "kvfio_container_open",      "kvfio_group_open",          "kvfio_group_set_container",
            "kvfio_container_set_iommu", "kvfio_group_get_device_fd", "kvfio_device_get_info",
        };
        int fd, fds[3], err;
        size_t n;
        uint64_t lease;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
                err = 0;
                fake_kernel_fail(funcs[i], EIO, 0);
                ck_assert_msg(h_acquire(fd, DEV1, 0, DIRECT, fds, &n, NULL, &err) == 0,
                              "%s failing did not fail Acquire", funcs[i]);
                ck_assert_int_eq(err, EIO);
                ck_assert_msg(fake_kernel_live() == 0, "%s: %zu fake fds left", funcs[i],
                              fake_kernel_live());
                ck_assert_uint_eq(H.server->clients.next != &H.server->clients, 1);
        }
        /* Nothing is left behind: a normal acquire works. */
        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(fd);
        h_stop();
}
END_TEST

#define MDEV "0c9f6c1e-2b4a-4d3e-9f1a-7b5c3d2e1f00"

/*
 * A group whose member is an mdev is sanitized on release (its open is its
 * vendor driver's, not known to reset it): scratch container, open, an
 * explicit reset, close, detach. Faults on the way are logged; one that
 * stops the sanitize keeps the group quarantined until a re-check works.
 */
START_TEST(mdev_group_is_sanitized)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        start("[Device m]\nMatch=" MDEV "\nUsers=1000\n");
        h_add_mdev(MDEV, 9, "vfio_mdev");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        lease = h_acquire_ok(fd, MDEV, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_uint_eq(fake_kernel_resets(MDEV), 0); /* not reset on acquire: its own open */
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("unset 9;", "group_open 9;", "container_open",
                                            "set_container 9", "set_iommu", "get_device_fd " MDEV,
                                            "reset " MDEV, "unset 9;", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert_uint_eq(fake_kernel_resets(MDEV), 1);
        ck_assert_int_eq(h_state(fd, MDEV), VFIOD__LEASE_STATE__LEASE_STATE_FREE);

        lease = h_acquire_ok(fd, MDEV, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        /* A failing irq disable or reset is logged; the sequence goes on. */
        fake_kernel_fail("kvfio_irq_disable", EIO, 0);
        fake_kernel_fail("kvfio_device_reset", EIO, 0);
        /* The scratch container cannot be opened: the group stays quarantined. */
        fake_kernel_fail("kvfio_container_open", EMFILE, 0);
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_int_eq(h_state(fd, MDEV), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, MDEV), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(stop_releases_everything)
{
        int fd, fds[3], f2[3];
        size_t n, n2;

        start(NULL);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_acquire_ok(fd, DEV2, 0, BROKERED, f2, &n2, NULL);
        h_close_all(fds, n);
        h_close_all(f2, n2);
        fake_kernel_trace_clear();
        vfiod_server_free(H.server);
        H.server = NULL;
        ck_assert(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL));
        ck_assert(fake_kernel_trace_has("unset 2;", "group_open 2;", NULL));
        ck_assert(h_closed(fd) || true);
        close(fd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-lease");
        TCase *a = tcase_create("acquire");
        TCase *r = tcase_create("release");
        TCase *e = tcase_create("events");
        TCase *f = tcase_create("faults");

        testutil_tcase_fd_checked(a);
        tcase_add_test(a, direct_gets_three_fds_and_release_order);
        tcase_add_test(a, brokered_gets_device_fd_only);
        tcase_add_test(a, list_of_many_keeps_own_grant);
        tcase_add_test(a, acquire_refusals);
        tcase_add_test(a, policy_covers_the_whole_group);
        tcase_add_test(a, non_viable_group);
        tcase_add_test(a, two_groups_one_domain);
        tcase_add_test(a, set_irqs_on_behalf);
        tcase_add_test(a, reset_request);
        tcase_add_test(a, hot_reset_when_no_reset_of_its_own);
        suite_add_tcase(s, a);

        testutil_tcase_fd_checked(r);
        tcase_add_test(r, quarantine_while_device_fd_held);
        tcase_add_test(r, quarantine_while_group_fd_held);
        tcase_add_test(r, quarantine_timer);
        tcase_add_test(r, disconnect_releases);
        tcase_add_test(r, disconnect_with_a_queued_reply_frees_at_once);
        tcase_add_test(r, acquire_after_the_holder_closed_everything);
        tcase_add_test(r, kill9_of_a_client_process);
        tcase_add_test(r, stop_releases_everything);
        suite_add_tcase(s, r);

        testutil_tcase_fd_checked(e);
        tcase_add_test(e, req_event_with_grace);
        tcase_add_test(e, req_without_events_releases_at_once);
        tcase_add_test(e, err_event);
        tcase_add_test(e, admin_revoke_then_holder_releases);
        tcase_add_test(e, admin_revoke_without_events);
        tcase_add_test(e, reload_revokes_what_is_no_longer_allowed);
        suite_add_tcase(s, e);

        testutil_tcase_fd_checked(f);
        tcase_add_test(f, faults_in_acquire_leak_nothing);
        tcase_add_test(f, mdev_group_is_sanitized);
        suite_add_tcase(s, f);
        return testutil_run_suite(s);
}
