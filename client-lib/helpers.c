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

static const char *const lease_state_table[] = {
    [VFIOD_LEASE_STATE_FREE] = "free",
    [VFIOD_LEASE_STATE_LEASED_BY_YOU] = "leased-by-you",
    [VFIOD_LEASE_STATE_LEASED] = "leased",
    [VFIOD_LEASE_STATE_QUARANTINED] = "quarantined",
    [VFIOD_LEASE_STATE_UNAVAILABLE] = "unavailable",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(lease_state, enum vfiod_lease_state)

static const char *const lease_status_table[] = {
    [VFIOD_LEASE_STATUS_ACTIVE] = "active",
    [VFIOD_LEASE_STATUS_RELEASE_REQUESTED] = "release-requested",
    [VFIOD_LEASE_STATUS_RELEASING] = "releasing",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(lease_status, enum vfiod_lease_status)

static const char *const iommu_type_table[] = {
    [VFIOD_IOMMU_TYPE_TYPE1V2] = "type1v2",
    [VFIOD_IOMMU_TYPE_TYPE1] = "type1",
    [VFIOD_IOMMU_TYPE_SPAPR_TCE_V2] = "spapr-tce-v2",
    [VFIOD_IOMMU_TYPE_SPAPR_TCE] = "spapr-tce",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(iommu_type, enum vfiod_iommu_type)

static const char *const release_reason_table[] = {
    [VFIOD_RELEASE_REASON_KERNEL_REQUEST] = "kernel-request",
    [VFIOD_RELEASE_REASON_ADMIN_REVOKE] = "admin-revoke",
    [VFIOD_RELEASE_REASON_POLICY_CHANGE] = "policy-change",
    [VFIOD_RELEASE_REASON_DEVICE_GONE] = "device-gone",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(release_reason, enum vfiod_release_reason)

static const char *const event_type_table[] = {
    [VFIOD_EVENT_RELEASE_REQUESTED] = "release-requested",
    [VFIOD_EVENT_DEVICE_ERROR] = "device-error",
    [VFIOD_EVENT_LEASE_REVOKED] = "lease-revoked",
    [VFIOD_EVENT_DROPPED] = "dropped",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(event_type, enum vfiod_event_type)

/* The name, or "unknown" for a value outside the table (vfiod.h). */
static const char *or_unknown(const char *name)
{
        return name ? name : "unknown";
}

const char *vfiod_lease_state_name(enum vfiod_lease_state state)
{
        return or_unknown(lease_state_to_string(state));
}

const char *vfiod_lease_status_name(enum vfiod_lease_status status)
{
        return or_unknown(lease_status_to_string(status));
}

const char *vfiod_iommu_type_name(enum vfiod_iommu_type type)
{
        return or_unknown(iommu_type_to_string(type));
}

const char *vfiod_release_reason_name(enum vfiod_release_reason reason)
{
        return or_unknown(release_reason_to_string(reason));
}

const char *vfiod_event_type_name(enum vfiod_event_type type)
{
        return or_unknown(event_type_to_string(type));
}
