/* SPDX-License-Identifier: MIT */
/*
 * libvfiod against the real daemon code: the vfiod server of daemon/ on the
 * fake ioctl layer and a fake sysfs tree, run by daemon-helper in a child
 * process, so that the synchronous library calls of the test process and the
 * daemon's event loop run side by side. (A separate program, because daemon/
 * and libvfiod both have a vfiod_devices_free() and a struct vfiod_limits.)
 *
 * The helper exits 0 only if, once every client is gone and the server is
 * freed, no fake container, group or device fd is open anywhere: that checks
 * that the library (and the test) closed every lease fd it received.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/vfiod.h"
#include "tests/testutil.h"

#define DEVICE "0000:00:04.0"

struct daemon {
        pid_t pid;
        int user;  /* connection as uid 1000 */
        int admin; /* connection as uid 0 (AdminUsers) */
};

static struct daemon daemon_start(void)
{
        struct daemon d;
        int u[2], a[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, u), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a), 0);
        d.pid = fork();
        ck_assert_int_ge(d.pid, 0);
        if (d.pid == 0) {
                const char *bin = getenv("VFIOD_TEST_DAEMON_HELPER");
                char user[16], admin[16];

                /* The helper inherits exactly its two ends. */
                if (fcntl(u[1], F_SETFD, 0) < 0 || fcntl(a[1], F_SETFD, 0) < 0)
                        _exit(126);
                (void)snprintf(user, sizeof(user), "%d", u[1]);
                (void)snprintf(admin, sizeof(admin), "%d", a[1]);
                if (!bin)
                        bin = "tests/client-lib/daemon-helper";
                execl(bin, "daemon-helper", user, admin, (char *)NULL);
                fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
                _exit(127);
        }
        close(u[1]);
        close(a[1]);
        d.user = u[0];
        d.admin = a[0];
        return d;
}

static void daemon_finish(struct daemon *d)
{
        int status;

        ck_assert_int_eq(waitpid(d->pid, &status, 0), d->pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "daemon child failed (status 0x%x), see its stderr", status);
}

/* Closes the test's two connections, then daemon_finish(). */
static void daemon_stop(struct daemon *d, struct vfiod *user, struct vfiod *admin)
{
        vfiod_close(user);
        vfiod_close(admin);
        daemon_finish(d);
}

static struct vfiod *take(int fd)
{
        struct vfiod *c = NULL;

        ck_assert_int_eq(vfiod_connect_take_fd(fd, VFIOD_CONNECT_HELLO, &c), 0);
        return c;
}

static struct vfiod_device_info find_device(struct vfiod *c, const char *device)
{
        struct vfiod_device_info *devs = NULL, found;
        size_t n = 0;

        ck_assert_int_eq(vfiod_list_devices(c, device, &devs, &n), 0);
        ck_assert_uint_eq(n, 1);
        found = devs[0];
        vfiod_devices_free(devs, n);
        return found;
}

START_TEST(test_session_and_devices)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_device_info *devs = NULL, dev;
        struct vfiod_server_info info;
        size_t n = 0;

        ck_assert_int_eq(vfiod_get_server_info(user, &info), 0);
        ck_assert_uint_eq(info.major, 1);
        ck_assert_str_eq(info.server_version, "vfiod " PACKAGE_VERSION);
        ck_assert(info.capabilities & VFIOD_CAP_EVENTS);
        ck_assert(info.capabilities & VFIOD_CAP_BROKERED);
        ck_assert(!(info.capabilities & VFIOD_CAP_ADMIN));
        ck_assert_int_eq(vfiod_get_server_info(admin, &info), 0);
        ck_assert(info.capabilities & VFIOD_CAP_ADMIN);

        /* The user sees what the policy names; the admin (no device rule) sees nothing. */
        ck_assert_int_eq(vfiod_list_devices(user, NULL, &devs, &n), 0);
        ck_assert_uint_ge(n, 1);
        vfiod_devices_free(devs, n);
        dev = find_device(user, DEVICE);
        ck_assert_str_eq(dev.device, DEVICE);
        ck_assert_uint_eq(dev.vendor_id, 0x1234);
        ck_assert_uint_eq(dev.iommu_group, 5);
        ck_assert_str_eq(dev.driver, "vfio-pci");
        ck_assert_int_eq(dev.state, VFIOD_LEASE_STATE_FREE);
        ck_assert_uint_eq(dev.allowed_modes, VFIOD_MODE_BIT(VFIOD_MODE_DIRECT) |
                                                 VFIOD_MODE_BIT(VFIOD_MODE_BROKERED) |
                                                 VFIOD_MODE_BIT(VFIOD_MODE_GROUP));
        ck_assert_int_eq(vfiod_list_devices(user, "0000:00:06.0", &devs, &n), -ENOENT);
        ck_assert_str_ne(vfiod_last_error(user), "");

        /* Admin calls are refused to the user, with the daemon's reason. */
        {
                struct vfiod_stats st;

                ck_assert_int_eq(vfiod_stats(user, &st), -EPERM);
                ck_assert_str_ne(vfiod_last_error(user), "");
                ck_assert_int_eq(vfiod_stats(admin, &st), 0);
                ck_assert_uint_eq(st.clients, 2);
                ck_assert_uint_eq(st.leases, 0);
        }
        daemon_stop(&d, user, admin);
}
END_TEST

START_TEST(test_direct_lease)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_lease lease, other;
        struct vfiod_device_info dev;

        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_DIRECT, &lease), 0);
        ck_assert_uint_ne(lease.lease_id, 0);
        ck_assert_uint_ne(lease.domain_id, 0);
        ck_assert_uint_eq(lease.iommu_group, 5);
        ck_assert_str_eq(lease.device, DEVICE);
        ck_assert_int_ge(lease.container_fd, 0);
        ck_assert_int_ge(lease.group_fd, 0);
        ck_assert_int_ge(lease.device_fd, 0);
        ck_assert(fcntl(lease.device_fd, F_GETFD) & FD_CLOEXEC);

        dev = find_device(user, DEVICE);
        ck_assert_int_eq(dev.state, VFIOD_LEASE_STATE_LEASED_BY_YOU);
        ck_assert_uint_eq(dev.lease_id, lease.lease_id);
        /* Leased: a second acquire is refused. */
        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_DIRECT, &other), -EBUSY);
        ck_assert_str_ne(vfiod_last_error(user), "");
        /* Not in the policy, not bound to vfio-pci. */
        ck_assert_int_lt(vfiod_acquire(user, "0000:00:06.0", 0, VFIOD_MODE_DIRECT, &other), 0);
        ck_assert_int_lt(vfiod_acquire(user, "0000:00:05.0", 0, VFIOD_MODE_DIRECT, &other), 0);

        /* The admin sees the lease and its holder. */
        {
                struct vfiod_lease_info *l = NULL;
                size_t n = 0;

                ck_assert_int_eq(vfiod_list_leases(admin, &l, &n), 0);
                ck_assert_uint_eq(n, 1);
                ck_assert_uint_eq(l[0].lease_id, lease.lease_id);
                ck_assert_uint_eq(l[0].uid, 1000);
                ck_assert_int_eq(l[0].mode, VFIOD_MODE_DIRECT);
                ck_assert_uint_ge(l[0].n_devices, 1);
                ck_assert_str_eq(l[0].devices[0], DEVICE);
                vfiod_leases_free(l, n);
        }

        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), -ENOENT);
        dev = find_device(user, DEVICE);
        ck_assert_int_eq(dev.state, VFIOD_LEASE_STATE_FREE);

        daemon_stop(&d, user, admin);
}
END_TEST

/* GROUP: the group fd alone, no domain; the admin sees it; the device is free after. */
START_TEST(test_group_lease)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_lease lease, other;
        struct vfiod_lease_info *l = NULL;
        size_t n = 0;

        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_GROUP, &lease), 0);
        ck_assert_uint_ne(lease.lease_id, 0);
        ck_assert_uint_eq(lease.domain_id, 0);
        ck_assert_int_eq(lease.mode, VFIOD_MODE_GROUP);
        ck_assert_int_ge(lease.group_fd, 0);
        ck_assert_int_eq(lease.container_fd, -1);
        ck_assert_int_eq(lease.device_fd, -1);
        /* Its group is the client's: another device of it, or it again, is refused. */
        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_GROUP, &other), -EBUSY);
        ck_assert_int_eq(vfiod_reset(user, lease.lease_id, NULL), -EINVAL);
        ck_assert_int_eq(vfiod_list_leases(admin, &l, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(l[0].mode, VFIOD_MODE_GROUP);
        ck_assert_uint_eq(l[0].domain_id, 0);
        vfiod_leases_free(l, n);
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
        ck_assert_int_eq(find_device(user, DEVICE).state, VFIOD_LEASE_STATE_FREE);
        daemon_stop(&d, user, admin);
}
END_TEST

START_TEST(test_brokered_dma_irqs_and_revoke)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_lease lease;
        struct vfiod_event ev;
        uint64_t bytes = 0;
        int mem, plain, efd[2];

        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease), 0);
        ck_assert_int_eq(lease.container_fd, -1);
        ck_assert_int_eq(lease.group_fd, -1);
        ck_assert_int_ge(lease.device_fd, 0);

        /* DMA through the daemon, from a sealed memfd; two ranges share one fd. */
        ck_assert_int_eq(vfiod_memfd_create("ram", 4 * 4096, &mem), 0);
        ck_assert_int_eq(vfiod_map_memfd(user, lease.domain_id, mem, 0, 0x100000, 2 * 4096,
                                         VFIOD_DMA_READ | VFIOD_DMA_WRITE),
                         0);
        {
                const struct vfiod_dma_range r[] = {
                    {mem, 2 * 4096, 0x200000, 4096, VFIOD_DMA_READ},
                    {mem, 3 * 4096, 0x300000, 4096, VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                };
                ck_assert_int_eq(vfiod_map_dma(user, lease.domain_id, r, 2, &bytes), 2);
                ck_assert_uint_eq(bytes, 2 * 4096);
        }
        /* A memfd without F_SEAL_SHRINK is refused, with the daemon's reason. */
        plain = memfd_create("plain", MFD_CLOEXEC);
        ck_assert_int_ge(plain, 0);
        ck_assert_int_eq(ftruncate(plain, 4096), 0);
        ck_assert_int_lt(
            vfiod_map_memfd(user, lease.domain_id, plain, 0, 0x400000, 4096, VFIOD_DMA_READ), 0);
        ck_assert_str_ne(vfiod_last_error(user), "");
        close(plain);
        {
                const struct vfiod_iova_range u[] = {{0x200000, 4096}, {0x300000, 4096}};

                ck_assert_int_eq(vfiod_unmap_dma(user, lease.domain_id, u, 2, &bytes), 2);
                ck_assert_uint_eq(bytes, 2 * 4096);
        }

        /* MSI-X through the daemon. */
        ck_assert_int_eq(vfiod_setup_msi(user, lease.lease_id, VFIOD_IRQ_INDEX_MSIX, 2, efd), 0);
        ck_assert_int_eq(vfiod_disable_irqs(user, lease.lease_id, VFIOD_IRQ_INDEX_MSIX), 0);
        ck_assert_int_eq(vfiod_reset(user, lease.lease_id, NULL), 0);

        /* The admin revokes: the holder gets ReleaseRequested and gives the lease back. */
        ck_assert_int_eq(vfiod_revoke(admin, lease.lease_id, "test over"), 0);
        {
                struct pollfd p = {.fd = vfiod_get_fd(user), .events = POLLIN};
                int r;

                while ((r = vfiod_next_event(user, &ev)) == -EAGAIN)
                        ck_assert_int_eq(poll(&p, 1, 5000), 1);
                ck_assert_int_eq(r, 0);
        }
        ck_assert_int_eq(ev.type, VFIOD_EVENT_RELEASE_REQUESTED);
        ck_assert_uint_eq(ev.lease_id, lease.lease_id);
        ck_assert_str_eq(ev.device, DEVICE);
        ck_assert_int_eq(ev.reason, VFIOD_RELEASE_REASON_ADMIN_REVOKE);
        ck_assert_str_eq(ev.detail, "test over");
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);

        daemon_stop(&d, user, admin);
        close(mem);
        close(efd[0]);
        close(efd[1]);
}
END_TEST

/*
 * Pipelining: MapDma and UnmapDma submitted up to the daemon's
 * MaxRequestsInFlight, collected in order with their ids and results (a
 * refused one in the middle, its reason; those after it still run); an
 * event that arrives among the replies is queued, not taken for one; while
 * requests are in flight other calls wait their turn (-EBUSY).
 */
START_TEST(test_pipelined_map_unmap)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_server_info info;
        struct vfiod_lease lease;
        struct vfiod_reply rep;
        struct vfiod_event ev;
        struct vfiod_stats st;
        uint64_t ids[64], id;
        size_t window, n = 0;
        int mem, r;

        ck_assert_int_eq(vfiod_get_server_info(user, &info), 0);
        window = info.limits.max_requests_in_flight;
        ck_assert_uint_ge(window, 4);
        ck_assert_uint_le(window, 64);
        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease), 0);
        ck_assert_int_eq(vfiod_memfd_create("ram", 64 * 4096, &mem), 0);
        ck_assert_int_eq(vfiod_collect(user, &rep), -ENOENT);

        /* A window of maps, one page each; the third maps the first's IOVA again. */
        for (; n < window; n++) {
                const struct vfiod_dma_range m = {mem, n * 4096, 0x100000 + (n == 2 ? 0 : n) * 4096,
                                                  4096, VFIOD_DMA_READ | VFIOD_DMA_WRITE};

                ck_assert_int_eq(vfiod_submit_map_dma(user, lease.domain_id, &m, 1, &ids[n]), 0);
                ck_assert(n == 0 || ids[n] > ids[n - 1]);
                if (n == 1)
                        /* The revoke's event comes among the replies. */
                        ck_assert_int_eq(vfiod_revoke(admin, lease.lease_id, "pipelined"), 0);
        }
        ck_assert_uint_eq(vfiod_in_flight(user), window);
        {
                const struct vfiod_dma_range m = {mem, 0, 0x400000, 4096, VFIOD_DMA_READ};

                ck_assert_int_eq(vfiod_submit_map_dma(user, lease.domain_id, &m, 1, &id), -EAGAIN);
        }
        ck_assert_int_eq(vfiod_stats(user, &st), -EBUSY);
        ck_assert_int_eq(vfiod_next_event(user, &ev), -EAGAIN);
        ck_assert_uint_eq(vfiod_in_flight(user), window);

        for (size_t i = 0; i < window; i++) {
                ck_assert_int_eq(vfiod_collect(user, &rep), 0);
                ck_assert_uint_eq(rep.id, ids[i]);
                ck_assert_int_eq(rep.request, VFIOD_REQUEST_MAP_DMA);
                if (i == 2) {
                        ck_assert_msg(rep.result == -EINVAL, "map 2: %d (%s)", rep.result,
                                      vfiod_last_error(user));
                        ck_assert_ptr_nonnull(strstr(vfiod_last_error(user), "overlaps"));
                        continue;
                }
                ck_assert_msg(rep.result == 1, "map %zu: %d (%s)", i, rep.result,
                              vfiod_last_error(user));
                ck_assert_uint_eq(rep.bytes, 4096);
        }
        ck_assert_uint_eq(vfiod_in_flight(user), 0);
        ck_assert_int_eq(vfiod_collect(user, &rep), -ENOENT);

        /* The event that came among the replies waits in the queue. */
        ck_assert_uint_ge(vfiod_pending_events(user), 1);
        ck_assert_int_eq(vfiod_next_event(user, &ev), 0);
        ck_assert_int_eq(ev.type, VFIOD_EVENT_RELEASE_REQUESTED);
        ck_assert_uint_eq(ev.lease_id, lease.lease_id);

        /* Unmaps in flight the same way; synchronous calls work again after. */
        for (n = 0; n < window; n++) {
                const struct vfiod_iova_range u = {0x100000 + n * 4096, 4096};

                if (n == 2)
                        continue;
                ck_assert_int_eq(vfiod_submit_unmap_dma(user, lease.domain_id, &u, 1, &ids[n]), 0);
        }
        for (n = 0; n < window; n++) {
                if (n == 2)
                        continue;
                ck_assert_int_eq(vfiod_collect(user, &rep), 0);
                ck_assert_uint_eq(rep.id, ids[n]);
                ck_assert_int_eq(rep.request, VFIOD_REQUEST_UNMAP_DMA);
                ck_assert_int_eq(rep.result, 1);
                ck_assert_uint_eq(rep.bytes, 4096);
        }
        ck_assert_int_eq(vfiod_stats(admin, &st), 0);
        ck_assert_uint_eq(st.mappings, 0);
        r = vfiod_release(user, lease.lease_id);
        ck_assert_msg(r == 0, "release: %s", vfiod_last_error(user));

        vfiod_lease_close_fds(&lease);
        daemon_stop(&d, user, admin);
        close(mem);
}
END_TEST

/* The admin's count of the daemon's domains. */
static uint32_t domains_now(struct vfiod *admin)
{
        struct vfiod_stats st;

        ck_assert_int_eq(vfiod_stats(admin, &st), 0);
        return st.domains;
}

/*
 * A domain Acquire made (domain 0) goes with its last lease: acquire and
 * release in a loop never reach MaxDomainsPerClient (8). One made by
 * vfiod_create_domain() stays until it is destroyed.
 */
START_TEST(test_implicit_domain_goes_with_its_lease)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_lease lease;
        uint64_t dom;
        int r;

        for (int turn = 1; turn <= 20; turn++) {
                r = vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease);
                ck_assert_msg(r == 0, "turn %d: acquire: %s: %s", turn, strerror(-r),
                              vfiod_last_error(user));
                vfiod_lease_close_fds(&lease);
                ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
        }
        ck_assert_uint_eq(domains_now(admin), 0);
        ck_assert_int_eq(vfiod_destroy_domain(user, lease.domain_id), -ENOENT);

        /* An explicit domain outlives its leases; empty, it takes either mode. */
        ck_assert_int_eq(vfiod_create_domain(user, VFIOD_IOMMU_TYPE_UNSPECIFIED, &dom, NULL), 0);
        for (int turn = 1; turn <= 2; turn++) {
                ck_assert_int_eq(vfiod_acquire(user, DEVICE, dom,
                                               turn == 1 ? VFIOD_MODE_BROKERED : VFIOD_MODE_DIRECT,
                                               &lease),
                                 0);
                ck_assert_uint_eq(lease.domain_id, dom);
                vfiod_lease_close_fds(&lease);
                ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
                ck_assert_uint_eq(domains_now(admin), 1);
        }
        ck_assert_int_eq(vfiod_destroy_domain(user, dom), 0);
        ck_assert_uint_eq(domains_now(admin), 0);

        daemon_stop(&d, user, admin);
}
END_TEST

/*
 * Lease ids and domain ids are both uint64_t: one passed for the other must
 * never reach the other object, and the daemon says which kind it got.
 */
START_TEST(test_lease_and_domain_ids_do_not_mix)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_lease lease;
        uint64_t dom;
        int mem;

        ck_assert_int_eq(vfiod_create_domain(user, VFIOD_IOMMU_TYPE_UNSPECIFIED, &dom, NULL), 0);
        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease), 0);
        /* No number is both a lease and a domain. */
        ck_assert_uint_ne(lease.lease_id, lease.domain_id);
        ck_assert_uint_ne(lease.lease_id, dom);

        ck_assert_int_eq(vfiod_memfd_create("ram", 4096, &mem), 0);
        ck_assert_int_eq(
            vfiod_map_memfd(user, lease.lease_id, mem, 0, 0x100000, 4096, VFIOD_DMA_READ), -EINVAL);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(user), "is a lease id, not a domain id"));
        {
                const struct vfiod_iova_range u = {0x100000, 4096};

                ck_assert_int_eq(vfiod_unmap_dma(user, lease.lease_id, &u, 1, NULL), -EINVAL);
        }
        ck_assert_int_eq(vfiod_destroy_domain(user, lease.lease_id), -EINVAL);
        ck_assert_int_eq(vfiod_release(user, lease.domain_id), -EINVAL);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(user), "is a domain id, not a lease id"));
        ck_assert_int_eq(vfiod_release(user, dom), -EINVAL);
        ck_assert_int_eq(vfiod_reset(user, dom, NULL), -EINVAL);
        ck_assert_int_eq(vfiod_disable_irqs(user, dom, VFIOD_IRQ_INDEX_MSIX), -EINVAL);
        ck_assert_int_eq(vfiod_revoke(admin, dom, "wrong kind"), -EINVAL);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(admin), "is a domain id, not a lease id"));
        /* Nothing happened to either. */
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
        ck_assert_int_eq(vfiod_destroy_domain(user, dom), 0);
        close(mem);

        daemon_stop(&d, user, admin);
}
END_TEST

/*
 * The lease says what the policy grants it (the rule's quota, window and
 * interrupt types, the device's vectors per index), and a MapDma outside the
 * window is refused with the window in the reason.
 */
START_TEST(test_lease_carries_its_grant)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin);
        struct vfiod_server_info info;
        struct vfiod_lease lease;
        int mem;

        ck_assert_int_eq(vfiod_get_server_info(user, &info), 0);
        ck_assert_uint_eq(info.minor, 3); /* 1.1 grants; 1.2 MODE_GROUP and iommufd */
        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease), 0);
        ck_assert(lease.grant.known);
        ck_assert_str_eq(lease.grant.rule, "test");
        /* The rule's 64 MiB, not the daemon's 16 GiB of struct vfiod_limits. */
        ck_assert_uint_eq(info.limits.max_pinned_bytes, 16ull << 30);
        ck_assert_uint_eq(lease.grant.max_pinned_bytes, 64ull << 20);
        ck_assert_uint_eq(lease.grant.max_mappings, info.limits.max_mappings);
        ck_assert(lease.grant.iova_restricted);
        ck_assert_uint_eq(lease.grant.n_iova_windows, 1);
        ck_assert_uint_eq(lease.grant.iova_windows[0].first, 0x100000);
        ck_assert_uint_eq(lease.grant.iova_windows[0].last, 0x4fffff);
        ck_assert_uint_eq(lease.grant.irq_types,
                          VFIOD_IRQ_BIT(VFIOD_IRQ_INDEX_MSI) | VFIOD_IRQ_BIT(VFIOD_IRQ_INDEX_MSIX));
        ck_assert_int_eq(vfiod_lease_irq_count(&lease, VFIOD_IRQ_INDEX_MSIX), 8);
        ck_assert_int_eq(vfiod_lease_irq_count(&lease, VFIOD_IRQ_INDEX_INTX), 1);
        ck_assert_int_eq(vfiod_lease_irq_count(&lease, (enum vfiod_irq_index)VFIOD_IRQ_INDEX_COUNT),
                         -EINVAL);

        /* Outside the window: the reason names it. */
        ck_assert_int_eq(vfiod_memfd_create("ram", 4096, &mem), 0);
        ck_assert_int_eq(vfiod_map_memfd(user, lease.domain_id, mem, 0, 0, 4096, VFIOD_DMA_READ),
                         -EPERM);
        ck_assert_msg(strstr(vfiod_last_error(user), "0x100000-0x4fffff"), "%s",
                      vfiod_last_error(user));
        ck_assert_int_eq(
            vfiod_map_memfd(user, lease.domain_id, mem, 0, 0x100000, 4096, VFIOD_DMA_READ), 0);
        close(mem);
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);

        daemon_stop(&d, user, admin);
}
END_TEST

/*
 * What a child of `vfioctl acquire --brokered` does: adopt the inherited
 * connection (vfiod_connect_env()), see the daemon's Hello reply on it, and
 * take its lease from the environment (vfiod_lease_from_env()), grant and
 * all, then map through it.
 */
START_TEST(test_adopted_connection_and_lease)
{
        struct daemon d = daemon_start();
        struct vfiod *user = take(d.user), *admin = take(d.admin), *child = NULL;
        struct vfiod_server_info info;
        struct vfiod_lease lease, adopted;
        char num[32];
        int sock, mem, dev;

        ck_assert_int_eq(vfiod_acquire(user, DEVICE, 0, VFIOD_MODE_BROKERED, &lease), 0);
        /* vfioctl's side: the connection's fd number in the environment. */
        sock = fcntl(vfiod_get_fd(user), F_DUPFD, 3);
        ck_assert_int_ge(sock, 0);
        (void)snprintf(num, sizeof(num), "%d", sock);
        ck_assert_int_eq(setenv(VFIOD_CONNECTION_FD_ENV, num, 1), 0);

        ck_assert_int_eq(vfiod_connect_env(&child), 0);
        ck_assert_int_eq(vfiod_get_server_info(child, &info), 0);
        ck_assert_uint_eq(info.major, 1);
        ck_assert_str_eq(info.server_version, "vfiod " PACKAGE_VERSION);
        ck_assert_uint_eq(info.limits.max_domains, 8);

        /* Its lease, from what vfioctl puts in the environment. */
        ck_assert_int_eq(vfiod_lease_from_env(child, &adopted), -ENXIO);
        (void)snprintf(num, sizeof(num), "%" PRIu64, lease.lease_id);
        ck_assert_int_eq(setenv(VFIOD_LEASE_ID_ENV, num, 1), 0);
        (void)snprintf(num, sizeof(num), "%" PRIu64, lease.domain_id);
        ck_assert_int_eq(setenv(VFIOD_DOMAIN_ID_ENV, num, 1), 0);
        ck_assert_int_eq(setenv(VFIOD_IOMMU_GROUP_ENV, "5", 1), 0);
        ck_assert_int_eq(setenv(VFIOD_DEVICE_ENV, DEVICE, 1), 0);
        ck_assert_int_eq(setenv(VFIOD_MODE_ENV, "brokered", 1), 0);
        dev = fcntl(lease.device_fd, F_DUPFD, 3); /* inherited: not close-on-exec */
        (void)snprintf(num, sizeof(num), "%d", dev);
        ck_assert_int_eq(setenv(VFIOD_DEVICE_FD_ENV, num, 1), 0);
        ck_assert_int_eq(setenv(VFIOD_GROUP_FD_ENV, num, 1), 0);
        /* A brokered lease has no group fd. */
        ck_assert_int_eq(vfiod_lease_from_env(child, &adopted), -EINVAL);
        ck_assert_int_eq(unsetenv(VFIOD_GROUP_FD_ENV), 0);
        ck_assert_int_eq(vfiod_lease_from_env(child, &adopted), 0);
        ck_assert_uint_eq(adopted.lease_id, lease.lease_id);
        ck_assert_uint_eq(adopted.domain_id, lease.domain_id);
        ck_assert_int_eq(adopted.mode, VFIOD_MODE_BROKERED);
        ck_assert_str_eq(adopted.device, DEVICE);
        ck_assert_int_eq(adopted.device_fd, dev);
        ck_assert_int_eq(adopted.group_fd, -1);
        ck_assert(fcntl(dev, F_GETFD) & FD_CLOEXEC);
        ck_assert_ptr_null(getenv(VFIOD_DEVICE_FD_ENV));
        ck_assert(adopted.grant.known);
        ck_assert_str_eq(adopted.grant.rule, "test");
        ck_assert_uint_eq(adopted.grant.max_pinned_bytes, 64ull << 20);
        ck_assert_uint_eq(adopted.grant.iova_windows[0].first, 0x100000);
        ck_assert_int_eq(vfiod_lease_irq_count(&adopted, VFIOD_IRQ_INDEX_MSIX), 8);
        unsetenv(VFIOD_LEASE_ID_ENV);
        unsetenv(VFIOD_DOMAIN_ID_ENV);
        unsetenv(VFIOD_IOMMU_GROUP_ENV);
        unsetenv(VFIOD_DEVICE_ENV);
        unsetenv(VFIOD_MODE_ENV);

        ck_assert_int_eq(vfiod_memfd_create("ram", 4096, &mem), 0);
        ck_assert_int_eq(
            vfiod_map_memfd(child, adopted.domain_id, mem, 0, 0x100000, 4096, VFIOD_DMA_READ), 0);
        close(mem);
        vfiod_lease_close_fds(&adopted);
        vfiod_close(child);
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(vfiod_release(user, lease.lease_id), 0);
        daemon_stop(&d, user, admin);
}
END_TEST

static Suite *daemon_suite(void)
{
        Suite *s = suite_create("libvfiod-daemon");
        TCase *tc = tcase_create("daemon");

        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_session_and_devices);
        tcase_add_test(tc, test_direct_lease);
        tcase_add_test(tc, test_group_lease);
        tcase_add_test(tc, test_brokered_dma_irqs_and_revoke);
        tcase_add_test(tc, test_pipelined_map_unmap);
        tcase_add_test(tc, test_implicit_domain_goes_with_its_lease);
        tcase_add_test(tc, test_lease_and_domain_ids_do_not_mix);
        tcase_add_test(tc, test_lease_carries_its_grant);
        tcase_add_test(tc, test_adopted_connection_and_lease);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(daemon_suite());
}
