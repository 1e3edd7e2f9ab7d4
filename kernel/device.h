/* SPDX-License-Identifier: MIT */
/*
 * VFIO device: the fd from kvfio_group_get_device_fd().
 *
 * Concepts: a device has regions (for vfio-pci: BAR0..5, ROM, config space,
 * VGA, then device-specific ones; indexes VFIO_PCI_*_REGION_INDEX) read and
 * written with pread/pwrite at the region's offset in the device fd and, when
 * flagged, mmap-able; interrupts (irq.h; described by kvfio_device_get_irq_info());
 * and resets (function reset, or a bus-wide hot reset that needs every
 * affected group).
 *
 * All functions return 0 on success and a negative errno on failure; ret_*
 * outputs are untouched on failure. No function here takes ownership of an
 * fd passed to it. Nothing prints.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>

/* VFIO_DEVICE_GET_INFO, decoded. */
struct kvfio_device_info {
        uint32_t flags; /* VFIO_DEVICE_FLAGS_* */
        uint32_t num_regions;
        uint32_t num_irqs;
        bool reset_supported; /* VFIO_DEVICE_FLAGS_RESET: kvfio_device_reset() may work */
        bool is_pci;          /* VFIO_DEVICE_FLAGS_PCI */
};

/* VFIO_DEVICE_GET_INFO. -EBADF; -ENOTTY: not a device fd. */
int kvfio_device_get_info(int device_fd, struct kvfio_device_info *ret_info);

/* One mmap-able window of a region, relative to the region's start. */
struct kvfio_sparse_area {
        uint64_t offset;
        uint64_t size;
};

/* VFIO_DEVICE_GET_REGION_INFO with its capability chain. */
struct kvfio_region_info {
        uint32_t index;
        uint32_t flags;  /* VFIO_REGION_INFO_FLAG_{READ,WRITE,MMAP,CAPS} */
        uint64_t size;   /* 0: the region does not exist (e.g. an unused BAR) */
        uint64_t offset; /* where the region starts in the device fd */
        /* VFIO_REGION_INFO_CAP_TYPE */
        bool has_type;
        uint32_t type, subtype;
        /*
         * VFIO_REGION_INFO_CAP_SPARSE_MMAP: when present, only these areas
         * may be mmapped (n may be 0: nothing may).
         */
        bool has_sparse_mmap;
        size_t n_sparse_areas;
        struct kvfio_sparse_area *sparse_areas;
        /* VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table may be mmapped. */
        bool msix_mappable;
};

/*
 * VFIO_DEVICE_GET_REGION_INFO for region `index`, re-queried with the argsz
 * the kernel asks for so the capability chain is complete.
 * On success *ret_info is new; free with kvfio_region_info_free().
 * -EINVAL: no such region index; -EBADMSG: malformed capability chain;
 * -EBADF; -ENOMEM.
 */
int kvfio_device_get_region_info(int device_fd, uint32_t index,
                                 struct kvfio_region_info **ret_info);

/*
 * Parses a struct vfio_region_info buffer of len bytes with its capability
 * chain (what kvfio_device_get_region_info() does after the ioctl). Unknown
 * capabilities are ignored.
 * -EINVAL: buf NULL or len shorter than the struct; -EBADMSG: argsz larger
 * than len, a capability out of bounds or inside the fixed struct, a chain
 * whose offsets do not increase (a loop), or a sparse area outside the region.
 */
int kvfio_region_info_parse(const void *buf, size_t len, struct kvfio_region_info **ret_info);

/* Frees a region info; NULL is fine. */
void kvfio_region_info_free(struct kvfio_region_info *info);

/*
 * Reads len bytes at `offset` within the region (pread at region->offset +
 * offset), retrying short reads; all or nothing. len 0 is a no-op.
 * -EINVAL: region/buf NULL, or [offset, offset+len) not inside the region;
 * -EACCES: the region is not readable (no VFIO_REGION_INFO_FLAG_READ);
 * -EIO: end of file before len bytes; other: the errno of pread (-EBADF...).
 */
int kvfio_region_read(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      void *buf, size_t len);

/*
 * Writes len bytes at `offset` within the region (pwrite), retrying short
 * writes; all or error. len 0 is a no-op.
 * -EINVAL: region/buf NULL, or the range is not inside the region;
 * -EACCES: the region is not writable; -EIO: the kernel wrote nothing;
 * other: the errno of pwrite.
 */
int kvfio_region_write(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                       const void *buf, size_t len);

/*
 * mmaps len bytes at `offset` within the region (MAP_SHARED, prot
 * PROT_READ and/or PROT_WRITE). offset and len must be page-aligned and the
 * range must lie inside the region and, when the region has sparse areas,
 * inside one of them. On success *ret_addr is the mapping, which the caller
 * releases with munmap(*ret_addr, len); it does not hold the fd open.
 * -EINVAL: bad arguments, misaligned, or out of range;
 * -EACCES: the region (or this range) is not mmap-able, or prot asks for an
 *          access the region does not allow;
 * other: the errno of mmap.
 */
int kvfio_region_mmap(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      size_t len, int prot, void **ret_addr);

/* VFIO_DEVICE_GET_IRQ_INFO, decoded. */
struct kvfio_irq_info {
        uint32_t index; /* VFIO_PCI_{INTX,MSI,MSIX,ERR,REQ}_IRQ_INDEX */
        uint32_t flags; /* VFIO_IRQ_INFO_* */
        uint32_t count; /* vectors; 0: this interrupt type is not available */
        bool eventfd;   /* can signal an eventfd */
        bool maskable;
        bool automasked; /* level-triggered; unmask after each interrupt */
        bool noresize;   /* the vector count cannot change while enabled */
};

/* VFIO_DEVICE_GET_IRQ_INFO for irq index `index`. -EINVAL: no such index; -EBADF. */
int kvfio_device_get_irq_info(int device_fd, uint32_t index, struct kvfio_irq_info *ret_info);

/*
 * VFIO_DEVICE_RESET (function-level or other per-device reset).
 * -ENOTTY/-EINVAL: the device has no reset method (see reset_supported);
 * -EAGAIN/-EBUSY: the reset could not take its locks now; -EBADF.
 */
int kvfio_device_reset(int device_fd);

/* One device a bus-wide hot reset would affect. */
struct kvfio_hot_reset_dep {
        uint16_t segment; /* PCI domain (the kernel reports 16 bits) */
        uint8_t bus;
        uint8_t devfn; /* slot << 3 | function */
        uint32_t group_id;
};

/* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, decoded. */
struct kvfio_hot_reset_info {
        size_t n;
        struct kvfio_hot_reset_dep *devs;
        /*
         * Asked of a device cdev (iommufd.h; VFIO_PCI_HOT_RESET_FLAG_DEV_ID):
         * each group_id then holds the device's id in the caller's iommufd
         * instead, or KVFIO_HOT_RESET_DEVID_OWNED (in use by the caller
         * through another device of its group) or KVFIO_HOT_RESET_DEVID_NOT_OWNED.
         */
        bool dev_ids;
        /* With dev_ids: every affected device is the caller's, kvfio_device_hot_reset_cdev() may
         * work. */
        bool owned;
};

#define KVFIO_HOT_RESET_DEVID_OWNED     UINT32_C(0)
#define KVFIO_HOT_RESET_DEVID_NOT_OWNED UINT32_C(0xffffffff)

/*
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (re-queried with the count the kernel
 * asks for). On success *ret_info is new; free with kvfio_hot_reset_info_free().
 * -ENOTTY/-ENODEV: the device cannot be hot reset (no bus or slot reset);
 * -EBADF; -ENOMEM.
 */
int kvfio_device_get_hot_reset_info(int device_fd, struct kvfio_hot_reset_info **ret_info);

/* Frees a hot reset info; NULL is fine. */
void kvfio_hot_reset_info_free(struct kvfio_hot_reset_info *info);

/* Upper bound on the group fds of one hot reset. */
#define KVFIO_HOT_RESET_MAX_GROUPS 256

/*
 * VFIO_DEVICE_PCI_HOT_RESET with the fds of every group the reset affects
 * (see kvfio_device_get_hot_reset_info()), for a device fd from a group; the
 * fds stay owned by the caller.
 * -EINVAL: n_group_fds 0 or above KVFIO_HOT_RESET_MAX_GROUPS, group_fds NULL,
 *          or an entry < 0; the kernel also answers -EINVAL when a group is
 *          missing from the set;
 * -EPERM: a group in the set is not owned by this container / user;
 * -EBUSY: a device of the set is in use elsewhere; -EBADF.
 */
int kvfio_device_hot_reset(int device_fd, const int *group_fds, size_t n_group_fds);

/*
 * VFIO_DEVICE_PCI_HOT_RESET of a device opened by its cdev and bound to an
 * iommufd (iommufd.h; Linux 6.7+): no group fds, the kernel checks through
 * the iommufd that every affected device is the caller's (the info's owned).
 * -EINVAL: a device fd from a group (use kvfio_device_hot_reset());
 * -EPERM: an affected device is not the caller's;
 * -EBUSY: a device of the set is in use elsewhere; -EBADF; -ENOTTY.
 */
int kvfio_device_hot_reset_cdev(int device_fd);

/* Writes "dddd:bb:ss.f" for dep into buf (16 bytes always fit). Returns buf. */
char *kvfio_hot_reset_dep_bdf(const struct kvfio_hot_reset_dep *dep, char buf[static 16]);
