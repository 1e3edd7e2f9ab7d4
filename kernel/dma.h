/* SPDX-License-Identifier: MIT */
/*
 * Type1 DMA mappings of a container: VFIO_IOMMU_MAP_DMA / _UNMAP_DMA.
 *
 * Concepts: a mapping makes [iova, iova + size) of the container's IOMMU
 * address space point at the calling process's memory [vaddr, vaddr + size).
 * The kernel pins those pages and accounts them to the calling process
 * (RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK); they stay pinned until
 * unmapped or until the container goes away. vaddr, iova and size must be
 * aligned to the smallest page size of the IOMMU (kvfio_iommu_get_info()).
 * An unmap must cover whole mappings: it cannot split one.
 *
 * Errors are the kernel's, passed through unchanged, never hidden. No fd
 * changes owner. Nothing prints.
 */
#pragma once

#include <stdint.h>

#include <linux/vfio.h>

/* Device access rights of a mapping. */
#define KVFIO_DMA_READ  VFIO_DMA_MAP_FLAG_READ  /* the device may read */
#define KVFIO_DMA_WRITE VFIO_DMA_MAP_FLAG_WRITE /* the device may write */

/*
 * Maps [iova, iova + size) to [vaddr, vaddr + size) with `flags`
 * (KVFIO_DMA_READ and/or KVFIO_DMA_WRITE). Returns 0.
 * -EINVAL: size 0, flags empty or with other bits, a range wrapping around,
 *          vaddr NULL (checked here); misaligned vaddr/iova/size, or iova
 *          outside the valid IOVA ranges (from the kernel);
 * -EEXIST: the IOVA range overlaps an existing mapping;
 * -ENOMEM: pinning would exceed RLIMIT_MEMLOCK, or out of memory;
 * -EFAULT: vaddr is not mapped in the calling process;
 * -ENOSPC: the container's mapping count limit (dma_entry_limit) is reached;
 * -EPERM: the memory cannot be pinned (e.g. a non-pinnable mapping);
 * -EBADF: container_fd < 0 or not open; -ENOTTY: not a container with a
 *         Type1 model set.
 */
int kvfio_dma_map(int container_fd, void *vaddr, uint64_t iova, uint64_t size, uint32_t flags);

/*
 * Unmaps every mapping inside [iova, iova + size). On success stores how many
 * bytes were unmapped (as the kernel writes back; 0 when nothing was mapped
 * there) in *ret_unmapped if it is not NULL, and returns 0.
 * -EINVAL: size 0 or a wrapping range (checked here); the range would split a
 *          mapping, or is misaligned (from the kernel);
 * -EBADF; -ENOTTY.
 */
int kvfio_dma_unmap(int container_fd, uint64_t iova, uint64_t size, uint64_t *ret_unmapped);

/*
 * Unmaps everything (VFIO_DMA_UNMAP_FLAG_ALL; needs the VFIO_UNMAP_ALL
 * extension, Linux 5.12+). Stores the bytes unmapped in *ret_unmapped if not
 * NULL. -EINVAL: the kernel does not know the flag; -EBADF; -ENOTTY.
 */
int kvfio_dma_unmap_all(int container_fd, uint64_t *ret_unmapped);

/*
 * Live update of a mapping's process address (the VFIO_UPDATE_VADDR
 * extension, Linux 5.12+): kvfio_dma_invalidate_vaddr() marks the vaddr of
 * the mappings inside [iova, iova + size) invalid
 * (VFIO_DMA_UNMAP_FLAG_VADDR; the IOMMU mapping and its pinned pages stay);
 * kvfio_dma_set_vaddr() gives the mapping at exactly iova/size a new vaddr
 * (VFIO_DMA_MAP_FLAG_VADDR), which must map the same pages.
 * -EINVAL: no such mapping, its vaddr not invalidated (set), or the kernel
 * lacks the extension; -EBADF; -ENOTTY.
 */
int kvfio_dma_invalidate_vaddr(int container_fd, uint64_t iova, uint64_t size);
int kvfio_dma_set_vaddr(int container_fd, void *vaddr, uint64_t iova, uint64_t size);
