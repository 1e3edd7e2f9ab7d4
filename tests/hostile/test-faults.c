/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: the fake ioctl layer fails each of its calls with each
 * plausible errno, after 0, 1, 2 and 4 successful calls, while a client
 * acquires (BROKERED and DIRECT), maps, sets interrupts, resets, unmaps and
 * releases (for the hot reset calls, the device's own reset fails with ENOTTY
 * first). Every request must get a reply (an Error with a nonzero errno
 * when it failed), the daemon must not crash, and afterwards nothing is
 * leaked (the fd-checked fixture: the server runs in this process; h_stop():
 * no fake VFIO fd open anywhere), no lease or mapping is left, no group stays
 * quarantined once the fault is gone, and both devices can be leased, mapped
 * and released again.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/server.h"
#include "tests/daemon/harness.h"
#include "tests/testutil.h"

#define DEV1 "0000:00:01.0"
#define DEV2 "0000:00:02.0"

static const char *const funcs[] = {
    "kvfio_container_open",
    "kvfio_container_check_extension",
    "kvfio_container_pick_iommu",
    "kvfio_container_set_iommu",
    "kvfio_iommu_get_info",
    "kvfio_group_open",
    "kvfio_group_set_container",
    "kvfio_group_unset_container",
    "kvfio_group_get_device_fd",
    "kvfio_device_get_info",
    "kvfio_device_get_irq_info",
    "kvfio_device_reset",
    "kvfio_device_get_hot_reset_info",
    "kvfio_device_hot_reset",
    "kvfio_irq_set",
    "kvfio_irq_set_eventfds",
    "kvfio_irq_disable",
    "kvfio_dma_map",
    "kvfio_dma_unmap",
    "kvfio_dma_unmap_all",
};
#define N_FUNCS (sizeof(funcs) / sizeof(funcs[0]))

static const int errnos[] = {EPERM,  EINVAL, EBUSY,  ENOMEM, EIO,    ENODEV,
                             ENOSPC, EFAULT, EAGAIN, ENOTTY, EMFILE, ENXIO};
#define N_ERRNOS (sizeof(errnos) / sizeof(errnos[0]))

static const unsigned skips[] = {0, 1, 2, 4};

/* The reply to a request: 0 for its success body, else the Error's errnum (never 0). */
static int outcome(struct vfiod_msg *m, Vfiod__Envelope__BodyCase ok_body)
{
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                int e = m->env->error->errnum;

                ck_assert_msg(e > 0, "an Error with errnum %d", e);
                ck_assert_msg(m->env->error->reason && *m->env->error->reason,
                              "an Error without a reason");
                vfiod_msg_free(m);
                return e;
        }
        ck_assert_msg(m->env->body_case == ok_body, "got %s", vfiod_envelope_body_name(m->env));
        vfiod_msg_free(m);
        return 0;
}

static int map(int fd, uint64_t domain, int mfd)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__DmaRange r = VFIOD__DMA_RANGE__INIT, *rs[] = {&r};

        r.iova = 0x100000;
        r.size = 0x2000;
        r.readable = r.writable = 1;
        map.domain_id = domain;
        map.n_ranges = 1;
        map.ranges = rs;
        env.body_case = VFIOD__ENVELOPE__BODY_MAP_DMA;
        env.map_dma = &map;
        return outcome(h_call(fd, &env, &mfd, 1), VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY);
}

static int unmap(int fd, uint64_t domain)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__UnmapDma u = VFIOD__UNMAP_DMA__INIT;
        Vfiod__IovaRange r = VFIOD__IOVA_RANGE__INIT, *rs[] = {&r};

        r.iova = 0x100000;
        r.size = 0x2000;
        u.domain_id = domain;
        u.n_ranges = 1;
        u.ranges = rs;
        env.body_case = VFIOD__ENVELOPE__BODY_UNMAP_DMA;
        env.unmap_dma = &u;
        return outcome(h_call(fd, &env, NULL, 0), VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY);
}

static int set_msi(int fd, uint64_t lease, int efd)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        int32_t idx[] = {0};

        s.lease_id = lease;
        s.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSI;
        s.count = 1;
        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        s.data = efd >= 0 ? VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD : VFIOD__IRQ_DATA__IRQ_DATA_NONE;
        s.n_eventfds = efd >= 0 ? 1 : 0;
        s.eventfds = idx;
        if (efd < 0)
                s.count = 0;
        env.body_case = VFIOD__ENVELOPE__BODY_SET_IRQS;
        env.set_irqs = &s;
        return outcome(h_call(fd, &env, efd >= 0 ? &efd : NULL, efd >= 0 ? 1 : 0),
                       VFIOD__ENVELOPE__BODY_OK);
}

static int reset(int fd, uint64_t lease)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Reset r = VFIOD__RESET__INIT;

        r.lease_id = lease;
        env.body_case = VFIOD__ENVELOPE__BODY_RESET;
        env.reset = &r;
        return outcome(h_call(fd, &env, NULL, 0), VFIOD__ENVELOPE__BODY_OK);
}

/* Everything a client does, each step allowed to fail with an errno. */
static void client_run(bool expect_success)
{
        int fd = h_connect(1000, 1000), fds[3], err = 0, mfd = h_memfd(0x2000, F_SEAL_SHRINK);
        int efd = eventfd(0, EFD_CLOEXEC);
        uint64_t domain = 0, lease;
        size_t n = 0;

        ck_assert_int_ge(efd, 0);
        h_hello(fd, 0);
        lease = h_acquire(fd, DEV1, 0, VFIOD__MODE__MODE_BROKERED, fds, &n, &domain, &err);
        ck_assert_msg(lease || err > 0, "Acquire failed without an errno");
        if (expect_success)
                ck_assert_msg(lease, "Acquire BROKERED: %s", strerror(err));
        if (lease) {
                int e;

                h_close_all(fds, n);
                e = map(fd, domain, mfd);
                ck_assert(!expect_success || e == 0);
                e = set_msi(fd, lease, efd);
                ck_assert(!expect_success || e == 0);
                e = reset(fd, lease);
                ck_assert(!expect_success || e == 0);
                e = set_msi(fd, lease, -1);
                ck_assert(!expect_success || e == 0);
                e = unmap(fd, domain);
                ck_assert(!expect_success || e == 0);
                e = h_release(fd, lease);
                ck_assert_msg(e == 0, "Release: %s", strerror(e));
        }
        err = 0;
        lease = h_acquire(fd, DEV2, 0, VFIOD__MODE__MODE_DIRECT, fds, &n, NULL, &err);
        ck_assert_msg(lease || err > 0, "Acquire failed without an errno");
        if (expect_success)
                ck_assert_msg(lease, "Acquire DIRECT: %s", strerror(err));
        if (lease) {
                h_close_all(fds, n);
                ck_assert_int_eq(h_release(fd, lease), 0);
        }
        close(mfd);
        close(efd);
        close(fd);
        h_spin();
}

START_TEST(test_fault)
{
        const char *func = funcs[_i / N_ERRNOS];
        int err = errnos[_i % N_ERRNOS];

        for (size_t s = 0; s < sizeof(skips) / sizeof(skips[0]); s++) {
                char want[96];
                bool fired = false;

                snprintf(want, sizeof(want), "%s=FAIL(%d)", func, err);
                h_start(h_default_conf);
                h_add_device(DEV1, 1, "vfio-pci");
                h_add_device(DEV2, 2, "vfio-pci");
                fake_kernel_fail(func, err, skips[s]);
                /* Hot resets happen when a device has no reset of its own. */
                if (strstr(func, "hot_reset"))
                        for (int k = 0; k < 7; k++)
                                fake_kernel_fail("kvfio_device_reset", ENOTTY, 0);
                /* Until the fault fired (once; the trace says so), then the quarantines end. */
                for (int run = 0; run < 8 && !fired; run++) {
                        fake_kernel_trace_clear();
                        client_run(false);
                        fired = strstr(fake_kernel_trace(), want) != NULL;
                        for (int i = 0; i < 5 && vfiod_registry_count(H.server->devices,
                                                                      VFIOD_GROUP_QUARANTINED) > 0;
                             i++)
                                vfiod_quarantine_check(H.server);
                }
                ck_assert_msg(fired, "%s was never called %u times", func, skips[s] + 1);
                ck_assert_msg(vfiod_registry_count(H.server->devices, VFIOD_GROUP_QUARANTINED) == 0,
                              "%s failing with %s (skip %u): a group stays quarantined", func,
                              strerror(err), skips[s]);
                ck_assert_msg(list_empty(&H.server->leases), "%s/%s: a lease is left", func,
                              strerror(err));
                ck_assert_uint_eq(H.server->n_clients, 0);
                /* Consistent: everything works again. */
                client_run(true);
                h_stop();
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("faults");
        TCase *tc = tcase_create("fake-kernel");

        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 30);
        tcase_add_loop_test(tc, test_fault, 0, (int)(N_FUNCS * N_ERRNOS));
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
