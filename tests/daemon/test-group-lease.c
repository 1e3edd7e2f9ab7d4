/* SPDX-License-Identifier: MIT */
/*
 * GROUP leases: the group fd alone, attached to no container, which the
 * client sets up itself as QEMU and DPDK do (its own container, IOMMU model,
 * device fds); the release detaches it through the daemon's duplicate and
 * quarantines while the client holds what it opened; refusals (a domain, a
 * rule without the mode, a second device of a group held, Reset and SetIrqs
 * on it); a policy reload that takes the mode away.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/lease.h"
#include "kernel/container.h"
#include "kernel/group.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define GROUP  VFIOD__MODE__MODE_GROUP
#define DIRECT VFIOD__MODE__MODE_DIRECT
#define DEV1   "0000:00:01.0"
#define DEV2   "0000:00:02.0"
#define DEV5   "0000:00:05.0"

static int start_one(const char *conf)
{
        int fd;

        h_start(conf ? conf : h_default_conf);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        return fd;
}

/* What the client does with the group, as QEMU's vfio_connect_container(): its container. */
static int client_attach(int group_fd)
{
        int container = kvfio_container_open(NULL);

        ck_assert_int_ge(container, 0);
        ck_assert_int_eq(kvfio_group_set_container(group_fd, container), 0);
        ck_assert_int_gt(kvfio_container_set_iommu(container, KVFIO_IOMMU_AUTO), 0);
        return container;
}

START_TEST(group_fd_alone_and_unattached)
{
        int fd, fds[3], container, device;
        size_t n;
        uint64_t lease, domain = 99;

        fd = start_one(NULL);
        fake_kernel_trace_clear();
        lease = h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, &domain);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(domain, 0);
        ck_assert(!fake_kernel_group_attached(1));
        /* No container, no device: the client does both. */
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "get_device_fd"));
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "container_open"));
        container = client_attach(fds[0]);
        device = kvfio_group_get_device_fd(fds[0], DEV1);
        ck_assert_int_ge(device, 0);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        close(device);
        close(container);
        close(fds[0]);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        /* Left attached: detached through the daemon's duplicate, then free. */
        ck_assert_msg(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(group_never_attached_is_free_at_release)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        fd = start_one(NULL);
        lease = h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        h_close_all(fds, n);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("unset 1=EINVAL", "group_open 1;", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(group_quarantined_while_the_client_holds_a_device_fd)
{
        int fd, other, fds[3], container, device, err = 0;
        size_t n;
        uint64_t lease;

        fd = start_one(NULL);
        other = h_connect(1000, 1000);
        h_hello(other, 0);
        lease = h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        container = client_attach(fds[0]);
        device = kvfio_group_get_device_fd(fds[0], DEV1);
        ck_assert_int_ge(device, 0);
        close(fds[0]);
        close(container);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("unset 1=EBUSY", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        ck_assert_uint_eq(h_acquire(other, DEV1, 0, GROUP, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        close(device);
        fake_kernel_trace_clear();
        vfiod_quarantine_check(H.server);
        ck_assert_msg(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        /* And another user of the device gets it, in any mode. */
        lease = h_acquire_ok(other, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        close(fd);
        close(other);
        h_stop();
}
END_TEST

START_TEST(group_quarantined_while_the_client_holds_the_group_fd)
{
        int fd, fds[3];
        size_t n;
        uint64_t lease;

        fd = start_one(NULL);
        lease = h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert(fake_kernel_trace_has("group_open 1=EBUSY", NULL));
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        close(fds[0]);
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(group_refusals)
{
        Vfiod__Reset rs = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &rs);
        struct vfiod_msg *m;
        int fd, fds[3], f2[3], err = 0;
        size_t n, n2;
        uint64_t lease, domain;

        fd = start_one("[Device d]\nMatch=0000:00:02.0\nUsers=1000\nModes=direct\n"
                       "[Device g]\nMatch=0000:00:01.0 0000:00:05.0\nUsers=1000\nModes=group\n");
        h_add_device(DEV5, 1, "vfio-pci");
        /* A GROUP lease has no domain. */
        h_acquire_ok(fd, DEV2, 0, DIRECT, f2, &n2, &domain);
        ck_assert_uint_eq(h_acquire(fd, DEV1, domain, GROUP, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EINVAL);
        /* Modes=direct does not give group, nor Modes=group direct. */
        h_close_all(f2, n2);
        ck_assert_uint_eq(h_acquire(fd, DEV1, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, EPERM);
        lease = h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        /* The other device of the group: its group fd is the client's already. */
        err = 0;
        ck_assert_uint_eq(h_acquire(fd, DEV5, 0, GROUP, f2, &n2, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        /* No device fd in the daemon: Reset and SetIrqs do not apply. */
        rs.lease_id = lease;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ERROR);
        ck_assert_int_eq(m->env->error->errnum, EINVAL);
        ck_assert_ptr_nonnull(strstr(m->env->error->reason, "GROUP lease"));
        vfiod_msg_free(m);
        ck_assert_int_eq(h_set_irqs(fd, lease, 0, 0, -1, NULL), EINVAL);
        h_close_all(fds, n);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(group_reload_without_the_mode_revokes)
{
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Envelope env = ENVELOPE(reload_policy, &rp);
        struct vfiod_msg *m;
        int fd, admin, fds[3];
        size_t n;

        fd = start_one("[Device a]\nMatch=0000:00:01.0\nUsers=1000\nModes=group direct\n");
        admin = h_connect(0, 0);
        h_hello(admin, 0);
        h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        h_close_all(fds, n);
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device a]\nMatch=0000:00:01.0\nUsers=1000\nModes=direct\n");
        m = h_call(admin, &env, NULL, 0);
        ck_assert_uint_eq(m->env->reload_policy_reply->n_errors, 0);
        ck_assert_uint_eq(m->env->reload_policy_reply->leases_revoked, 1);
        vfiod_msg_free(m);
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        close(admin);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(group_released_when_its_holder_disconnects)
{
        int fd, other, fds[3], container;
        size_t n;

        fd = start_one(NULL);
        other = h_connect(1000, 1000);
        h_hello(other, 0);
        h_acquire_ok(fd, DEV1, 0, GROUP, fds, &n, NULL);
        container = client_attach(fds[0]);
        h_close_all(fds, n);
        close(container);
        fake_kernel_trace_clear();
        close(fd);
        h_spin();
        ck_assert_msg(fake_kernel_trace_has("unset 1;", "group_open 1;", NULL), "trace: %s",
                      fake_kernel_trace());
        ck_assert_int_eq(h_state(other, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(other);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("group-lease");
        TCase *a = tcase_create("acquire");
        TCase *r = tcase_create("release");

        testutil_tcase_fd_checked(a);
        tcase_add_test(a, group_fd_alone_and_unattached);
        tcase_add_test(a, group_refusals);
        tcase_add_test(a, group_reload_without_the_mode_revokes);
        suite_add_tcase(s, a);
        testutil_tcase_fd_checked(r);
        tcase_add_test(r, group_never_attached_is_free_at_release);
        tcase_add_test(r, group_quarantined_while_the_client_holds_a_device_fd);
        tcase_add_test(r, group_quarantined_while_the_client_holds_the_group_fd);
        tcase_add_test(r, group_released_when_its_holder_disconnects);
        suite_add_tcase(s, r);
        return testutil_run_suite(s);
}
