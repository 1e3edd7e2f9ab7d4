/* SPDX-License-Identifier: MIT */
/*
 * iommufd and the VFIO device cdev (see iommufd.h).
 */
#include "kernel/iommufd.h"

#include <errno.h>

int kvfio_iommufd_open(const char *path)
{
        (void)path;
        return -ENOSYS;
}

int kvfio_iommufd_get_rlimit_mode(int iommufd)
{
        (void)iommufd;
        return -ENOSYS;
}

int kvfio_iommufd_set_rlimit_mode(int iommufd, int mode)
{
        (void)iommufd;
        (void)mode;
        return -ENOSYS;
}

int kvfio_ioas_alloc(int iommufd, uint32_t *ret_ioas_id)
{
        (void)iommufd;
        (void)ret_ioas_id;
        return -ENOSYS;
}

int kvfio_ioas_destroy(int iommufd, uint32_t ioas_id)
{
        (void)iommufd;
        (void)ioas_id;
        return -ENOSYS;
}

int kvfio_ioas_get_info(int iommufd, uint32_t ioas_id, struct kvfio_ioas_info **ret_info)
{
        (void)iommufd;
        (void)ioas_id;
        (void)ret_info;
        return -ENOSYS;
}

void kvfio_ioas_info_free(struct kvfio_ioas_info *info)
{
        (void)info;
}

int kvfio_ioas_map(int iommufd, uint32_t ioas_id, void *vaddr, uint64_t iova, uint64_t size,
                   uint32_t flags)
{
        (void)iommufd;
        (void)ioas_id;
        (void)vaddr;
        (void)iova;
        (void)size;
        (void)flags;
        return -ENOSYS;
}

int kvfio_ioas_map_file(int iommufd, uint32_t ioas_id, int memfd, uint64_t offset, uint64_t iova,
                        uint64_t size, uint32_t flags)
{
        (void)iommufd;
        (void)ioas_id;
        (void)memfd;
        (void)offset;
        (void)iova;
        (void)size;
        (void)flags;
        return -ENOSYS;
}

int kvfio_iommufd_has_map_file(int iommufd)
{
        (void)iommufd;
        return -ENOSYS;
}

int kvfio_ioas_unmap(int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t size,
                     uint64_t *ret_unmapped)
{
        (void)iommufd;
        (void)ioas_id;
        (void)iova;
        (void)size;
        (void)ret_unmapped;
        return -ENOSYS;
}

int kvfio_ioas_unmap_all(int iommufd, uint32_t ioas_id, uint64_t *ret_unmapped)
{
        (void)iommufd;
        (void)ioas_id;
        (void)ret_unmapped;
        return -ENOSYS;
}

int kvfio_cdev_open(int index, const char *dir)
{
        (void)index;
        (void)dir;
        return -ENOSYS;
}

int kvfio_device_bind_iommufd(int device_fd, int iommufd, uint32_t *ret_dev_id)
{
        (void)device_fd;
        (void)iommufd;
        (void)ret_dev_id;
        return -ENOSYS;
}

int kvfio_device_attach_ioas(int device_fd, uint32_t pt_id, uint32_t *ret_pt_id)
{
        (void)device_fd;
        (void)pt_id;
        (void)ret_pt_id;
        return -ENOSYS;
}

int kvfio_device_detach_ioas(int device_fd)
{
        (void)device_fd;
        return -ENOSYS;
}
