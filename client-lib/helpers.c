/* SPDX-License-Identifier: MIT */
/*
 * libvfiod: helpers a launcher would otherwise write itself (sealed memfds,
 * MSI/MSI-X eventfds) and the names of the enums.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client-lib/internal.h"
#include "proto/macro.h"
#include "proto/names.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3 */
#endif

/* The seals of vfiod_memfd_create(); see vfiod.h for why these. */
#define MEMFD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/*
 * Faults every page of the memfd in, in this process: the daemon maps no
 * range with a hole, and the pages are charged to the caller's memory cgroup.
 * MADV_POPULATE_WRITE (Linux 5.14), else a write to each page.
 */
static int memfd_populate(int fd, uint64_t size)
{
        long page = sysconf(_SC_PAGESIZE);
        volatile uint8_t *p;
        int r = 0;

        if (size > SIZE_MAX)
                return -EFBIG;
        p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
#ifdef MADV_POPULATE_WRITE
        if (madvise((void *)p, (size_t)size, MADV_POPULATE_WRITE) == 0)
                goto out;
        if (errno != EINVAL) {
                r = -errno;
                goto out;
        }
#endif
        for (uint64_t off = 0; off < size; off += (uint64_t)page)
                p[off] = 0;
#ifdef MADV_POPULATE_WRITE
out:
#endif
        (void)munmap((void *)p, (size_t)size);
        return r;
}

int vfiod_memfd_create(const char *name, uint64_t size, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!ret_fd || size == 0)
                return -EINVAL;
        if (size > (uint64_t)INT64_MAX)
                return -EFBIG;
        if (!name)
                name = "vfiod";

        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL) /* a kernel without MFD_NOEXEC_SEAL */
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0)
                return -errno;
        r = memfd_populate(fd, size);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, MEMFD_SEALS) < 0)
                return -errno;
        /* On success the memfd is owned by the caller. */
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int vfiod_setup_msi(struct vfiod *c, uint64_t lease_id, enum vfiod_irq_index index, uint32_t count,
                    int *ret_eventfds)
{
        _cleanup_free_ int *fds = NULL;
        struct vfiod_irq_set set = {
            .index = index,
            .start = 0,
            .count = count,
            .action = VFIOD_IRQ_ACTION_TRIGGER,
        };
        uint32_t made = 0;
        int r;

        if (!c || !ret_eventfds)
                return -EINVAL;
        if (index != VFIOD_IRQ_INDEX_MSI && index != VFIOD_IRQ_INDEX_MSIX)
                return client_fail(c, -EINVAL, "interrupt index %d is not MSI or MSI-X",
                                   (int)index);
        if (count == 0)
                return client_fail(c, -EINVAL, "no vector to set up");
        if (count > VFIOD_PROTO_MAX_FDS)
                return client_fail(c, -EMSGSIZE, "%" PRIu32 " vectors: at most %d per request",
                                   count, VFIOD_PROTO_MAX_FDS);

        fds = calloc(count, sizeof(*fds));
        if (!fds)
                return client_fail(c, -ENOMEM, "out of memory");
        for (; made < count; made++) {
                fds[made] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (fds[made] < 0) {
                        r = client_fail(c, -errno, "eventfd() failed");
                        goto fail;
                }
        }

        set.eventfds = fds;
        r = vfiod_set_irqs(c, lease_id, &set);
        if (r < 0)
                goto fail;
        /* On success the eventfds are owned by the caller. */
        for (uint32_t i = 0; i < count; i++)
                ret_eventfds[i] = fds[i];
        return 0;

fail:
        /* Close what this call created, and only that. */
        for (uint32_t i = 0; i < made; i++)
                (void)safe_close(fds[i]);
        return r;
}

const char *vfiod_mode_name(enum vfiod_mode mode)
{
        /* enum vfiod_mode has the numbers of the protocol's Mode. */
        const char *name = vfiod_proto_mode_to_string((int)mode);

        return name ? name : "unknown";
}

const char *vfiod_lease_state_name(enum vfiod_lease_state state)
{
        switch (state) {
        case VFIOD_LEASE_STATE_FREE:
                return "free";
        case VFIOD_LEASE_STATE_LEASED_BY_YOU:
                return "leased-by-you";
        case VFIOD_LEASE_STATE_LEASED:
                return "leased";
        case VFIOD_LEASE_STATE_QUARANTINED:
                return "quarantined";
        case VFIOD_LEASE_STATE_UNAVAILABLE:
                return "unavailable";
        case VFIOD_LEASE_STATE_UNSPECIFIED:
                break;
        }
        return "unknown";
}

const char *vfiod_lease_status_name(enum vfiod_lease_status status)
{
        switch (status) {
        case VFIOD_LEASE_STATUS_ACTIVE:
                return "active";
        case VFIOD_LEASE_STATUS_RELEASE_REQUESTED:
                return "release-requested";
        case VFIOD_LEASE_STATUS_RELEASING:
                return "releasing";
        case VFIOD_LEASE_STATUS_UNSPECIFIED:
                break;
        }
        return "unknown";
}

const char *vfiod_iommu_type_name(enum vfiod_iommu_type type)
{
        switch (type) {
        case VFIOD_IOMMU_TYPE_TYPE1V2:
                return "type1v2";
        case VFIOD_IOMMU_TYPE_TYPE1:
                return "type1";
        case VFIOD_IOMMU_TYPE_SPAPR_TCE_V2:
                return "spapr-tce-v2";
        case VFIOD_IOMMU_TYPE_SPAPR_TCE:
                return "spapr-tce";
        case VFIOD_IOMMU_TYPE_UNSPECIFIED:
                break;
        }
        return "unknown";
}

const char *vfiod_release_reason_name(enum vfiod_release_reason reason)
{
        switch (reason) {
        case VFIOD_RELEASE_REASON_KERNEL_REQUEST:
                return "kernel-request";
        case VFIOD_RELEASE_REASON_ADMIN_REVOKE:
                return "admin-revoke";
        case VFIOD_RELEASE_REASON_POLICY_CHANGE:
                return "policy-change";
        case VFIOD_RELEASE_REASON_UNSPECIFIED:
                break;
        }
        return "unknown";
}

const char *vfiod_event_type_name(enum vfiod_event_type type)
{
        switch (type) {
        case VFIOD_EVENT_RELEASE_REQUESTED:
                return "release-requested";
        case VFIOD_EVENT_DEVICE_ERROR:
                return "device-error";
        case VFIOD_EVENT_LEASE_REVOKED:
                return "lease-revoked";
        case VFIOD_EVENT_DROPPED:
                return "dropped";
        }
        return "unknown";
}
