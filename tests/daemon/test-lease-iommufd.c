/* SPDX-License-Identifier: MIT */
/*
 * Leases through the iommufd interface (/dev/iommu and the device cdev), on
 * the fake kernel: DIRECT hands out the domain's iommufd and the cdev
 * unbound, as QEMU's fd= wants them; BROKERED binds and attaches the cdev and
 * maps memfds into the domain's IOAS with the same quotas; the release binds
 * a copy the client never bound, detaches it, and quarantines the group while
 * any copy is bound; the policy's Interfaces=; ANY; revoke and disconnect;
 * the hot reset through the iommufd of a device with no reset of its own.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/lease.h"
#include "kernel/device.h"
#include "kernel/iommufd.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define EVENTS   VFIOD__CAPABILITY__CAPABILITY_EVENTS
#define DIRECT   VFIOD__MODE__MODE_DIRECT
#define BROKERED VFIOD__MODE__MODE_BROKERED
#define LEGACY   VFIOD__INTERFACE__INTERFACE_LEGACY
#define IOMMUFD  VFIOD__INTERFACE__INTERFACE_IOMMUFD
#define ANY      VFIOD__INTERFACE__INTERFACE_ANY
#define DEV1     "0000:00:01.0"
#define DEV2     "0000:00:02.0"
#define FREE     VFIOD__LEASE_STATE__LEASE_STATE_FREE
#define QUAR     VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED

/* DEV1 (group 1) has the cdev vfio0; DEV2 (group 2) has none. extra goes before the policy. */
static int start(const char *extra)
{
        char conf[1024];
        int fd;

        snprintf(conf, sizeof(conf), "%s%s", extra ? extra : "", h_default_conf);
        h_start(conf);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        h_add_cdev(DEV1, 0);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        return fd;
}

static uint64_t acquire(int fd, const char *dev, uint64_t domain, int mode, int iface,
                        struct rawclient_acquired *got)
{
        *got = (struct rawclient_acquired){0};
        return rawclient_acquire_iface(h_call, fd, dev, domain, mode, iface, got);
}

START_TEST(direct_hands_out_what_qemu_takes)
{
        struct rawclient_acquired got;
        struct kvfio_device_info info;
        uint64_t lease;
        int fd, dev, ictx;

        fd = start(NULL);
        lease = acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_int_eq(got.iface, IOMMUFD);
        ck_assert_uint_eq(got.n_fds, 2);
        ck_assert_int_ge(got.device_fd, 0);
        ck_assert_int_ge(got.iommufd, 0);
        ck_assert_str_eq(got.cdev, "vfio0");
        dev = got.fds[got.device_fd];
        ictx = got.fds[got.iommufd];
        /* Per-process accounting, set before anything exists in the context. */
        ck_assert_int_eq(fake_kernel_rlimit_mode(ictx), KVFIO_IOMMUFD_RLIMIT_PROCESS);
        /* The cdev is not bound: nothing but the bind works on it, and the group file is closed. */
        ck_assert_int_eq(kvfio_device_get_info(dev, &info), -EINVAL);
        ck_assert(!fake_kernel_cdev_bound(DEV1));
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "group_open 1;"));
        /* No REQ/ERR of the daemon's: it cannot set them on an unbound device. */
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 0);
        /* What QEMU does: bind the cdev to the iommufd it was given, make its own IOAS. */
        ck_assert_int_eq(kvfio_device_bind_iommufd(dev, ictx, NULL), 0);
        ck_assert_int_eq(kvfio_device_get_info(dev, &info), 0);
        /* The client's process closes everything, then releases: FREE at once. */
        h_close_all(got.fds, got.n_fds);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("bind " DEV1 "=EINVAL", "group_open 1;", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(direct_quarantine_while_the_cdev_is_held)
{
        struct rawclient_acquired got, again;
        uint64_t lease;
        int fd;

        fd = start(NULL);
        lease = acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_int_eq(
            kvfio_device_bind_iommufd(got.fds[got.device_fd], got.fds[got.iommufd], NULL), 0);
        close(got.fds[got.iommufd]);
        /* The bound cdev stays open in the client. */
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(fake_kernel_trace_has("group_open 1=EBUSY", NULL));
        ck_assert_int_eq(h_state(fd, DEV1), QUAR);
        ck_assert_uint_eq(acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &again), 0);
        ck_assert_int_eq(again.errnum, EBUSY);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), QUAR);
        close(got.fds[got.device_fd]);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(direct_an_unbound_copy_is_bound_at_release)
{
        struct rawclient_acquired got;
        uint64_t lease;
        int fd, dev;

        fd = start(NULL);
        lease = acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        dev = got.fds[got.device_fd];
        close(got.fds[got.iommufd]);
        /* The client never binds and keeps its copy: it must not stay a key for later. */
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("bind " DEV1 ";", "group_open 1=EBUSY", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert(fake_kernel_cdev_bound(DEV1));
        ck_assert_int_eq(h_state(fd, DEV1), QUAR);
        /* Bound to the old domain's context, it cannot be bound again anywhere. */
        ck_assert_int_eq(kvfio_device_bind_iommufd(dev, dev, NULL), -EBADF);
        close(dev);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(brokered_maps_into_the_ioas)
{
        struct rawclient_acquired got;
        struct kvfio_device_info info;
        char buf[8] = "";
        uint64_t lease;
        int fd, mem;

        fd = start(NULL);
        lease = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_uint_eq(got.n_fds, 1);
        ck_assert_int_eq(got.iommufd, -1);
        /* Bound and attached: the client uses it at once. */
        ck_assert_int_eq(kvfio_device_get_info(got.fds[0], &info), 0);
        ck_assert(fake_kernel_trace_has("iommufd_open", "rlimit_mode 1", "bind " DEV1,
                                        "ioas_alloc 1", "attach_ioas " DEV1 " 1", NULL));
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_REQ_IRQ_INDEX), 1);
        mem = h_memfd(8192, F_SEAL_SHRINK);
        ck_assert_int_eq(pwrite(mem, "iommufd", 7, 4096), 7);
        ck_assert_int_eq(rawclient_map_dma(h_call, fd, got.domain, 0, 0x100000, 8192, mem), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 1);
        ck_assert_int_eq(fake_kernel_dma_read(0x101000, buf, 7), 0);
        ck_assert_str_eq(buf, "iommufd");
        /* Overlap and split: refused as on a container. */
        ck_assert_int_eq(rawclient_map_dma(h_call, fd, got.domain, 0, 0x101000, 4096, mem), EINVAL);
        ck_assert_int_eq(rawclient_unmap_dma(h_call, fd, got.domain, 0x100000, 4096), EINVAL);
        h_close_all(got.fds, got.n_fds);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert_msg(
            fake_kernel_trace_has("irq_disable " DEV1, "detach_ioas " DEV1, "group_open 1;", NULL),
            "trace: %s", fake_kernel_trace());
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        close(mem);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(brokered_quotas_are_the_same)
{
        struct rawclient_acquired got;
        uint64_t lease;
        int fd, mem;

        /* The default rule with a quota: one page. */
        fd = start("[Device small]\nMatch=0000:00:01.0\nUsers=1000\nMaxPinnedBytes=4096\n");
        lease = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        mem = h_memfd(8192, F_SEAL_SHRINK);
        ck_assert_int_eq(rawclient_map_dma(h_call, fd, got.domain, 0, 0x100000, 8192, mem), EDQUOT);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert_int_eq(rawclient_map_dma(h_call, fd, got.domain, 0, 0x100000, 4096, mem), 0);
        h_close_all(got.fds, got.n_fds);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(mem);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(interface_refusals_and_any)
{
        struct rawclient_acquired got;
        uint64_t lease, legacy_domain;
        int fd;

        fd = start(NULL);
        /* DEV2 has no cdev. */
        ck_assert_uint_eq(acquire(fd, DEV2, 0, DIRECT, IOMMUFD, &got), 0);
        ck_assert_int_eq(got.errnum, ENXIO);
        /* ANY: the cdev when there is one, else the group. */
        lease = acquire(fd, DEV2, 0, DIRECT, ANY, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_int_eq(got.iface, LEGACY);
        ck_assert_uint_eq(got.n_fds, 3);
        legacy_domain = got.domain;
        h_close_all(got.fds, got.n_fds);
        /* A legacy domain takes no iommufd lease. */
        ck_assert_uint_eq(acquire(fd, DEV1, legacy_domain, DIRECT, IOMMUFD, &got), 0);
        ck_assert_int_eq(got.errnum, EINVAL);
        lease = acquire(fd, DEV1, 0, BROKERED, ANY, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_int_eq(got.iface, IOMMUFD);
        h_close_all(got.fds, got.n_fds);
        ck_assert_uint_eq(acquire(fd, DEV1, 0, DIRECT, 7, &got), 0);
        /* GROUP hands out the group fd: the legacy interface only. */
        ck_assert_uint_eq(acquire(fd, DEV1, 0, VFIOD__MODE__MODE_GROUP, IOMMUFD, &got), 0);
        ck_assert_int_eq(got.errnum, EINVAL);
        close(fd);
        h_stop();

        /* Interfaces=legacy: IOMMUFD is refused, ANY gives the group. */
        h_start("[Device test]\nMatch=0000:00:01.0\nUsers=1000\nInterfaces=legacy\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_cdev(DEV1, 0);
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        ck_assert_uint_eq(acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &got), 0);
        ck_assert_int_eq(got.errnum, EPERM);
        ck_assert_msg(strstr(got.reason, "Interfaces=legacy"), "%s", got.reason);
        lease = acquire(fd, DEV1, 0, DIRECT, ANY, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        ck_assert_int_eq(got.iface, LEGACY);
        h_close_all(got.fds, got.n_fds);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(list_devices_shows_the_interfaces)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        struct vfiod_msg *m;
        int fd;

        fd = start(NULL);
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 2);
        for (size_t i = 0; i < 2; i++) {
                const Vfiod__DeviceInfo *d = m->env->list_devices_reply->devices[i];

                if (strcmp(d->device, DEV1) == 0) {
                        ck_assert_uint_eq(d->n_interfaces, 2);
                        ck_assert_int_eq(d->interfaces[0], LEGACY);
                        ck_assert_int_eq(d->interfaces[1], IOMMUFD);
                        ck_assert_str_eq(d->cdev, "vfio0");
                } else {
                        ck_assert_uint_eq(d->n_interfaces, 1);
                        ck_assert_int_eq(d->interfaces[0], LEGACY);
                        ck_assert_str_eq(d->cdev, "");
                }
        }
        vfiod_msg_free(m);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(revoke_and_disconnect)
{
        struct rawclient_acquired got;
        struct vfiod_msg *m;
        uint64_t lease;
        int fd, admin;

        fd = start(NULL);
        admin = h_connect(0, 0);
        h_hello(admin, 0);
        /* Revoke of a client without events: released at once, its copies still open. */
        lease = acquire(fd, DEV1, 0, DIRECT, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        h_revoke(admin, lease, "maintenance", 0);
        ck_assert(h_quiet(fd));
        ck_assert_int_eq(h_state(fd, DEV1), QUAR);
        ck_assert_int_eq(h_release(fd, lease), ENOENT);
        h_close_all(got.fds, got.n_fds);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        /* With events: ReleaseRequested first, then the holder releases. */
        close(fd);
        fd = h_connect(1000, 1000);
        h_hello(fd, EVENTS);
        lease = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        h_revoke(admin, lease, "maintenance", 0);
        m = h_recv(fd);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED);
        vfiod_msg_free(m);
        h_close_all(got.fds, got.n_fds);
        ck_assert_int_eq(h_release(fd, lease), 0);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        /* A disconnect (kill -9) releases; the copies closed with it: free. */
        lease = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        h_close_all(got.fds, got.n_fds);
        close(fd);
        h_spin();
        ck_assert(!fake_kernel_cdev_bound(DEV1));
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        close(fd);
        close(admin);
        h_stop();
}
END_TEST

/* A reload whose rule no longer allows iommufd revokes the iommufd lease, not the legacy one. */
START_TEST(reload_revokes_a_lease_of_an_interface_no_longer_allowed)
{
        struct rawclient_acquired got, legacy;
        uint64_t lease;
        int fd, admin;

        fd = start(NULL);
        admin = h_connect(0, 0);
        h_hello(admin, 0);
        lease = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(lease != 0, "%s", got.reason);
        lease = acquire(fd, DEV2, 0, BROKERED, LEGACY, &legacy);
        ck_assert_msg(lease != 0, "%s", legacy.reason);
        h_close_all(got.fds, got.n_fds);
        h_close_all(legacy.fds, legacy.n_fds);
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device test]\nMatch=0000:00:01.0 0000:00:02.0\nUsers=1000\n"
                            "Interfaces=legacy\n");
        h_reload(admin, 1);
        ck_assert_int_eq(h_state(fd, DEV1), FREE);
        ck_assert(fake_kernel_group_attached(2));
        close(fd);
        close(admin);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(faults_in_acquire_leak_nothing)
{
        static const char *const funcs[] = {
            "kvfio_iommufd_open", "kvfio_iommufd_set_rlimit_mode",
            "kvfio_cdev_open",    "kvfio_device_bind_iommufd",
            "kvfio_ioas_alloc",   "kvfio_device_attach_ioas",
        };
        struct rawclient_acquired got;
        int fd;

        fd = start(NULL);
        for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
                fake_kernel_fail(funcs[i], EIO, 0);
                ck_assert_msg(acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got) == 0, "%s", funcs[i]);
                ck_assert_int_eq(got.errnum, EIO);
                ck_assert_int_eq(h_state(fd, DEV1), FREE);
                ck_assert_uint_eq(fake_kernel_live(), 0);
        }
        close(fd);
        h_stop();
}
END_TEST

START_TEST(brokered_hot_reset_without_a_reset_of_its_own)
{
        Vfiod__Reset rs = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &rs);
        struct rawclient_acquired got;
        int fd;

        fd = start(NULL);
        ck_assert_int_eq(fake_kernel_set_reset_works(DEV1, false), 0);
        fake_kernel_trace_clear();
        /* The bind could not reset it: the acquire does, through the iommufd. */
        rs.lease_id = acquire(fd, DEV1, 0, BROKERED, IOMMUFD, &got);
        ck_assert_msg(rs.lease_id != 0, "%s", got.reason);
        ck_assert_msg(fake_kernel_trace_has("bind " DEV1, "hot_reset_cdev " DEV1 ";", NULL),
                      "trace: %s", fake_kernel_trace());
        /* Reset: the hot reset of a bound cdev takes no group fd (the lease has none). */
        fake_kernel_trace_clear();
        h_ok(h_call(fd, &env, NULL, 0));
        ck_assert_msg(fake_kernel_trace_has("hot_reset_cdev " DEV1 ";", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert_uint_eq(fake_kernel_resets(DEV1), 2);
        /* One that would also reset a device the iommufd does not own is not tried. */
        fake_kernel_set_hot_reset(2);
        fake_kernel_trace_clear();
        env.id = 0;
        ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EINVAL);
        ck_assert_msg(!strstr(fake_kernel_trace(), "hot_reset"), "trace: %s", fake_kernel_trace());
        ck_assert_uint_eq(fake_kernel_resets(DEV1), 2);
        h_close_all(got.fds, got.n_fds);
        ck_assert_int_eq(h_release(fd, rs.lease_id), 0);
        close(fd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("lease-iommufd");
        TCase *a = tcase_create("acquire");
        TCase *r = tcase_create("release");
        TCase *x = tcase_create("reset");

        testutil_tcase_fd_checked(a);
        tcase_add_test(a, direct_hands_out_what_qemu_takes);
        tcase_add_test(a, brokered_maps_into_the_ioas);
        tcase_add_test(a, brokered_quotas_are_the_same);
        tcase_add_test(a, interface_refusals_and_any);
        tcase_add_test(a, list_devices_shows_the_interfaces);
        tcase_add_test(a, faults_in_acquire_leak_nothing);
        suite_add_tcase(s, a);

        testutil_tcase_fd_checked(r);
        tcase_add_test(r, direct_quarantine_while_the_cdev_is_held);
        tcase_add_test(r, direct_an_unbound_copy_is_bound_at_release);
        tcase_add_test(r, revoke_and_disconnect);
        tcase_add_test(r, reload_revokes_a_lease_of_an_interface_no_longer_allowed);
        suite_add_tcase(s, r);

        testutil_tcase_fd_checked(x);
        tcase_add_test(x, brokered_hot_reset_without_a_reset_of_its_own);
        suite_add_tcase(s, x);
        return testutil_run_suite(s);
}
