/* SPDX-License-Identifier: MIT */
/*
 * iommufd (/dev/iommu) and the VFIO device cdev (/dev/vfio/devices/vfioN):
 * the kernel's second interface for userspace DMA, next to the container and
 * group one (container.h, group.h, dma.h), which stays.
 *
 * Concepts: an iommufd fd holds objects named by a 32-bit id. An IOAS (I/O
 * address space) plays the container's part: DMA mappings live in it. A
 * device is opened through its own node (no group fd), bound to one iommufd
 * (VFIO_DEVICE_BIND_IOMMUFD, once per device fd, no unbind: closing the
 * device fd undoes it) and then attached to an IOAS of that iommufd
 * (VFIO_DEVICE_ATTACH_IOMMUFD_PT) or detached again; until it is bound the
 * device fd refuses everything else (device.h, irq.h). Once attached, the
 * device fd is used exactly as one from kvfio_group_get_device_fd().
 *
 * A device is used through one interface at a time: while its group is
 * open through /dev/vfio/N and in a container, binding its cdev fails, and
 * while its cdev is bound, opening its group fails (-EBUSY).
 *
 * Pinned memory is accounted to the process that mapped it
 * (kvfio_ioas_map(): its user or its process, IOMMU_OPTION_RLIMIT_MODE of
 * the iommufd; a caller with CAP_IPC_LOCK is not accounted at all), once a
 * device is attached to the IOAS (an IOAS without devices pins nothing),
 * and stays pinned until unmapped or until the IOAS goes away (the last
 * iommufd fd closed, or kvfio_ioas_destroy()).
 *
 * Which interfaces a device offers is sysfs's (sysfs.h: kvfio_pci_dev's
 * vfio_cdev, kvfio_vfio_interfaces()).
 *
 * All functions return 0 (or the documented non-negative value) on success
 * and a negative errno on failure; ret_* outputs are untouched on failure.
 * Errors are the kernel's, passed through unchanged unless a line says
 * otherwise. No function here takes ownership of an fd passed to it.
 * Nothing prints.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/container.h" /* struct kvfio_iova_range */
#include "kernel/dma.h"       /* KVFIO_DMA_READ, KVFIO_DMA_WRITE */

/* Default path of the iommufd node. */
#define KVFIO_IOMMUFD_PATH "/dev/iommu"
/* Default folder of the device cdev nodes (vfio0, vfio1, ...). */
#define KVFIO_CDEV_DIR "/dev/vfio/devices"

/*
 * Opens a new iommufd context (path NULL = KVFIO_IOMMUFD_PATH),
 * O_RDWR|O_CLOEXEC, and checks that it answers IOMMU_OPTION. Each open is a
 * context of its own: objects of one are not visible from another.
 * Returns the fd, owned by the caller.
 * -ENOENT: no such node (a kernel without CONFIG_IOMMUFD);
 * -EACCES/-EPERM: not allowed; -ENOTTY: the path is not an iommufd (fd closed).
 */
int kvfio_iommufd_open(const char *path);

/* Pinned-memory accounting of an iommufd (IOMMU_OPTION_RLIMIT_MODE). */
enum kvfio_iommufd_rlimit_mode {
        /* The mapping process's user: its RLIMIT_MEMLOCK against the user's locked_vm (default). */
        KVFIO_IOMMUFD_RLIMIT_USER = 0,
        /* The mapping process: its RLIMIT_MEMLOCK against its pinned_vm, as Type1 does. */
        KVFIO_IOMMUFD_RLIMIT_PROCESS = 1,
};

/*
 * IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET: returns the iommufd's
 * enum kvfio_iommufd_rlimit_mode value. -EBADF; -ENOTTY: not an iommufd.
 */
int kvfio_iommufd_get_rlimit_mode(int iommufd);

/*
 * IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET: sets how the iommufd
 * accounts pinned memory. Only while the iommufd holds no object (before
 * the first IOAS is allocated and the first device bound).
 * -EINVAL: mode is not an enum kvfio_iommufd_rlimit_mode value (checked
 *          here);
 * -EPERM: the caller lacks CAP_SYS_RESOURCE;
 * -EBUSY: the iommufd already holds an object; -EBADF; -ENOTTY.
 */
int kvfio_iommufd_set_rlimit_mode(int iommufd, int mode);

/*
 * IOMMU_IOAS_ALLOC: a new, empty IOAS; its id in *ret_ioas_id.
 * -EINVAL: ret_ioas_id NULL; -ENOMEM; -EBADF; -ENOTTY.
 */
int kvfio_ioas_alloc(int iommufd, uint32_t *ret_ioas_id);

/*
 * IOMMU_DESTROY of an IOAS: its mappings go (their pages are unpinned).
 * -EBUSY: a device is still attached to it; -ENOENT: no such object;
 * -EBADF; -ENOTTY.
 */
int kvfio_ioas_destroy(int iommufd, uint32_t ioas_id);

/* What IOMMU_IOAS_IOVA_RANGES reports for an IOAS. */
struct kvfio_ioas_info {
        /* The IOVA ranges a mapping may use now (every attached device's IOMMU allows them). */
        size_t n_iova_ranges;
        struct kvfio_iova_range *iova_ranges;
        /* Alignment of iova and length a mapping needs (the smallest IOMMU page size). */
        uint64_t iova_alignment;
};

/*
 * IOMMU_IOAS_IOVA_RANGES, re-queried with the count the kernel asks for.
 * On success *ret_info is new; free with kvfio_ioas_info_free().
 * -ENOENT: no such IOAS; -EBADF; -ENOTTY; -ENOMEM.
 */
int kvfio_ioas_get_info(int iommufd, uint32_t ioas_id, struct kvfio_ioas_info **ret_info);

/* Frees an info; NULL is fine. */
void kvfio_ioas_info_free(struct kvfio_ioas_info *info);

/*
 * IOMMU_IOAS_MAP at a fixed IOVA: [iova, iova + size) of the IOAS points at
 * the calling process's memory [vaddr, vaddr + size). flags: KVFIO_DMA_READ
 * and/or KVFIO_DMA_WRITE (dma.h, the same as for a container).
 * The pages are pinned and accounted to the calling process (its user or
 * itself, see enum kvfio_iommufd_rlimit_mode; a caller with CAP_IPC_LOCK is
 * not accounted) when a device is attached to the IOAS: now if one is, else
 * when the first one is attached, whose attach then fails with -ENOMEM when
 * the mapping process's limit is exceeded.
 * -EINVAL: size 0, flags empty or with other bits, a range wrapping around,
 *          vaddr NULL (checked here); misaligned, or the IOVA range is
 *          reserved (outside kvfio_ioas_get_info()'s ranges: the MSI window
 *          of an attached device's IOMMU...) (from the kernel);
 * -EEXIST: the IOVA range overlaps an existing mapping;
 * -ENOMEM: pinning would exceed RLIMIT_MEMLOCK, or out of memory;
 * -EFAULT: vaddr is not mapped; -ENOENT: no such IOAS; -EBADF; -ENOTTY.
 */
int kvfio_ioas_map(int iommufd, uint32_t ioas_id, void *vaddr, uint64_t iova, uint64_t size,
                   uint32_t flags);

/*
 * IOMMU_IOAS_MAP_FILE (Linux 6.13+) at a fixed IOVA: maps [offset, offset +
 * size) of a memfd by the file, without mapping it in the caller. Same
 * flags, accounting and errors as kvfio_ioas_map(), and:
 * -EOPNOTSUPP: the kernel has no IOMMU_IOAS_MAP_FILE (6.12 and older): map
 *              an mmap of the memfd with kvfio_ioas_map() instead;
 * -EBADF: memfd is not an open fd.
 */
int kvfio_ioas_map_file(int iommufd, uint32_t ioas_id, int memfd, uint64_t offset, uint64_t iova,
                        uint64_t size, uint32_t flags);

/*
 * Whether the kernel knows IOMMU_IOAS_MAP_FILE: returns 1 or 0 (it asks
 * with an argument no kernel accepts, so nothing is mapped).
 * -EBADF; -ENOTTY: not an iommufd.
 */
int kvfio_iommufd_has_map_file(int iommufd);

/*
 * IOMMU_IOAS_UNMAP of every mapping inside [iova, iova + size). On success
 * stores how many bytes were unmapped in *ret_unmapped if not NULL.
 * -EINVAL: size 0 or a wrapping range (checked here);
 * -ENOENT: nothing is mapped there, the range would split a mapping (the
 *          mappings before it in the range are unmapped by then), or no such
 *          IOAS (unlike Type1, where unmapping nothing is 0 bytes);
 * -EBADF; -ENOTTY.
 */
int kvfio_ioas_unmap(int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t size,
                     uint64_t *ret_unmapped);

/*
 * IOMMU_IOAS_UNMAP of the whole IOAS (0 to U64_MAX); an empty IOAS is 0
 * bytes. Stores the bytes unmapped in *ret_unmapped if not NULL.
 * -ENOENT: no such IOAS; -EBADF; -ENOTTY.
 */
int kvfio_ioas_unmap_all(int iommufd, uint32_t ioas_id, uint64_t *ret_unmapped);

/*
 * Opens the device cdev DIR/vfio<index> (dir NULL = KVFIO_CDEV_DIR),
 * O_RDWR|O_CLOEXEC. The index is the N of the device's sysfs vfio-dev/vfioN
 * (kvfio_pci_dev's vfio_cdev). Returns the device fd, owned by the caller,
 * not yet bound: bind it with kvfio_device_bind_iommufd() before any other
 * use. Any number of fds of one device may be open, also while its group
 * is open; one of them at a time can be bound.
 * -EINVAL: index < 0; -ENOENT: no such node; -EACCES/-EPERM: not allowed.
 */
int kvfio_cdev_open(int index, const char *dir);

/*
 * VFIO_DEVICE_BIND_IOMMUFD: binds an unbound device cdev fd to iommufd;
 * the iommufd's id of the device in *ret_dev_id if not NULL. The device
 * then blocks DMA until attached. Neither fd changes owner; the kernel
 * keeps its own reference on the iommufd until the device fd is closed.
 * -EINVAL: already bound, another fd of the device is bound, or not a cdev
 *          fd (a device fd from a group);
 * -EBADFD: iommufd is an open fd but not an iommufd;
 * -EBUSY: the device's group is open (/dev/vfio/N);
 * -EPERM: its IOMMU group is not viable; -EBADF; -ENOTTY.
 */
int kvfio_device_bind_iommufd(int device_fd, int iommufd, uint32_t *ret_dev_id);

/*
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attaches a bound device to IOAS pt_id of
 * the iommufd it is bound to (or moves it there from the IOAS it is
 * attached to). The id the kernel answers (the IOAS, or the hardware page
 * table it made for it) in *ret_pt_id if not NULL.
 * -EINVAL: the device is not bound, or pt_id is no IOAS (a device's id);
 * -ENOENT: no such object in that iommufd;
 * -EADDRINUSE: the IOAS has a mapping where this device's IOMMU cannot
 *              translate (a reserved region such as the MSI window), or one
 *              not aligned to its page size;
 * -ENOMEM: pinning the IOAS's mappings (the first device attached) exceeds
 *          the limit of the process that mapped them (kvfio_ioas_map());
 * -EBADF; -ENOTTY.
 */
int kvfio_device_attach_ioas(int device_fd, uint32_t pt_id, uint32_t *ret_pt_id);

/*
 * VFIO_DEVICE_DETACH_IOMMUFD_PT: the device leaves its IOAS and blocks DMA;
 * 0 also when it was not attached. -EINVAL: not bound; -EBADF; -ENOTTY.
 */
int kvfio_device_detach_ioas(int device_fd);
