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
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/rawclient.h"
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

static int map(int fd, uint64_t domain, int mfd)
{
        return rawclient_map_dma(h_call, fd, domain, 0, 0x100000, 0x2000, mfd);
}

static int unmap(int fd, uint64_t domain)
{
        return rawclient_unmap_dma(h_call, fd, domain, 0x100000, 0x2000);
}

static int set_msi(int fd, uint64_t lease, int efd)
{
        size_t n = efd >= 0 ? 1 : 0;

        return rawclient_set_irqs(h_call, fd, lease, VFIOD__IRQ_INDEX__IRQ_INDEX_MSI, 0, n, &efd, n,
                                  NULL);
}

static int reset(int fd, uint64_t lease)
{
        Vfiod__Reset r = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &r);

        r.lease_id = lease;
        return rawclient_outcome(h_call(fd, &env, NULL, 0), VFIOD__ENVELOPE__BODY_OK, NULL);
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
