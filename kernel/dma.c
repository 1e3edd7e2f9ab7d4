/* SPDX-License-Identifier: MIT */
/* Type1 DMA map/unmap. Kernel errors are returned as they are. */
#include "kernel/dma.h"

#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>

int kvfio_dma_map(int container_fd, void *vaddr, uint64_t iova, uint64_t size, uint32_t flags)
{
        struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map)};
        uint64_t va = (uint64_t)(uintptr_t)vaddr;

        if (container_fd < 0)
                return -EBADF;
        if (!vaddr || size == 0 || iova + (size - 1) < iova || va + (size - 1) < va)
                return -EINVAL;
        if (flags == 0 || (flags & ~(uint32_t)(KVFIO_DMA_READ | KVFIO_DMA_WRITE)))
                return -EINVAL;
        map.flags = flags;
        map.vaddr = va;
        map.iova = iova;
        map.size = size;
        if (ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &map) < 0)
                return -errno;
        return 0;
}

static int do_unmap(int container_fd, uint32_t flags, uint64_t iova, uint64_t size,
                    uint64_t *ret_unmapped)
{
        struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof(unmap)};

        unmap.flags = flags;
        unmap.iova = iova;
        unmap.size = size;
        if (ioctl(container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
                return -errno;
        /* The kernel writes back how much it unmapped. */
        if (ret_unmapped)
                *ret_unmapped = unmap.size;
        return 0;
}

int kvfio_dma_unmap(int container_fd, uint64_t iova, uint64_t size, uint64_t *ret_unmapped)
{
        if (container_fd < 0)
                return -EBADF;
        if (size == 0 || iova + (size - 1) < iova)
                return -EINVAL;
        return do_unmap(container_fd, 0, iova, size, ret_unmapped);
}

int kvfio_dma_unmap_all(int container_fd, uint64_t *ret_unmapped)
{
        if (container_fd < 0)
                return -EBADF;
        return do_unmap(container_fd, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, ret_unmapped);
}

int kvfio_dma_invalidate_vaddr(int container_fd, uint64_t iova, uint64_t size)
{
        if (container_fd < 0)
                return -EBADF;
        if (size == 0 || iova + (size - 1) < iova)
                return -EINVAL;
        return do_unmap(container_fd, VFIO_DMA_UNMAP_FLAG_VADDR, iova, size, NULL);
}

int kvfio_dma_set_vaddr(int container_fd, void *vaddr, uint64_t iova, uint64_t size)
{
        struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map)};

        if (container_fd < 0)
                return -EBADF;
        if (!vaddr || size == 0 || iova + (size - 1) < iova)
                return -EINVAL;
        map.flags = VFIO_DMA_MAP_FLAG_VADDR;
        map.vaddr = (uint64_t)(uintptr_t)vaddr;
        map.iova = iova;
        map.size = size;
        if (ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &map) < 0)
                return -errno;
        return 0;
}
