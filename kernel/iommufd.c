/* SPDX-License-Identifier: MIT */
/*
 * iommufd and the VFIO device cdev (see iommufd.h).
 *
 * The C library's kernel headers may predate iommufd (Debian 12's are
 * 6.1's, which have neither <linux/iommufd.h> nor the cdev ioctls of
 * <linux/vfio.h>), so the structures and ioctl numbers of the kernel's uAPI
 * are spelled out here, with their layout, under names of our own. They are
 * the kernel's ABI: fixed once released.
 */
#include "kernel/iommufd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kernel/container.h"
#include "kernel/dma.h"

/* ---- the kernel's uAPI (include/uapi/linux/iommufd.h, vfio.h) ----------- */

#define IOMMUFD_TYPE          (';')
#define K_IOMMU_DESTROY       _IO(IOMMUFD_TYPE, 0x80)
#define K_IOMMU_IOAS_ALLOC    _IO(IOMMUFD_TYPE, 0x81)
#define K_IOMMU_IOAS_RANGES   _IO(IOMMUFD_TYPE, 0x84)
#define K_IOMMU_IOAS_MAP      _IO(IOMMUFD_TYPE, 0x85)
#define K_IOMMU_IOAS_UNMAP    _IO(IOMMUFD_TYPE, 0x86)
#define K_IOMMU_OPTION        _IO(IOMMUFD_TYPE, 0x87)
#define K_IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f) /* Linux 6.13 */
#define K_VFIO_DEVICE_BIND    _IO(VFIO_TYPE, VFIO_BASE + 18)
#define K_VFIO_DEVICE_ATTACH  _IO(VFIO_TYPE, VFIO_BASE + 19)
#define K_VFIO_DEVICE_DETACH  _IO(VFIO_TYPE, VFIO_BASE + 20)

#define K_MAP_FIXED_IOVA (1u << 0)
#define K_MAP_WRITEABLE  (1u << 1)
#define K_MAP_READABLE   (1u << 2)

#define K_OPTION_RLIMIT_MODE 0u
#define K_OPTION_OP_SET      0u
#define K_OPTION_OP_GET      1u

struct k_iommu_destroy {
        uint32_t size;
        uint32_t id;
};

struct k_iommu_ioas_alloc {
        uint32_t size;
        uint32_t flags;
        uint32_t out_ioas_id;
};

struct k_iommu_iova_range {
        uint64_t start;
        uint64_t last;
};

struct k_iommu_ioas_iova_ranges {
        uint32_t size;
        uint32_t ioas_id;
        uint32_t num_iovas;
        uint32_t reserved;
        uint64_t allowed_iovas;
        uint64_t out_iova_alignment;
};

struct k_iommu_ioas_map {
        uint32_t size;
        uint32_t flags;
        uint32_t ioas_id;
        uint32_t reserved;
        uint64_t user_va;
        uint64_t length;
        uint64_t iova;
};

struct k_iommu_ioas_map_file {
        uint32_t size;
        uint32_t flags;
        uint32_t ioas_id;
        int32_t fd;
        uint64_t start;
        uint64_t length;
        uint64_t iova;
};

struct k_iommu_ioas_unmap {
        uint32_t size;
        uint32_t ioas_id;
        uint64_t iova;
        uint64_t length;
};

struct k_iommu_option {
        uint32_t size;
        uint32_t option_id;
        uint16_t op;
        uint16_t reserved;
        uint32_t object_id;
        uint64_t val64;
};

struct k_vfio_device_bind_iommufd {
        uint32_t argsz;
        uint32_t flags;
        int32_t iommufd;
        uint32_t out_devid;
};

struct k_vfio_device_attach_iommufd_pt {
        uint32_t argsz;
        uint32_t flags;
        uint32_t pt_id;
};

struct k_vfio_device_detach_iommufd_pt {
        uint32_t argsz;
        uint32_t flags;
};

_Static_assert(sizeof(struct k_iommu_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges");
_Static_assert(sizeof(struct k_iommu_ioas_map) == 40, "iommu_ioas_map");
_Static_assert(sizeof(struct k_iommu_ioas_map_file) == 40, "iommu_ioas_map_file");
_Static_assert(sizeof(struct k_iommu_ioas_unmap) == 24, "iommu_ioas_unmap");
_Static_assert(sizeof(struct k_iommu_option) == 24, "iommu_option");
_Static_assert(sizeof(struct k_vfio_device_bind_iommufd) == 16, "vfio_device_bind_iommufd");
_Static_assert(sizeof(struct k_vfio_device_attach_iommufd_pt) == 12,
               "vfio_device_attach_iommufd_pt");

/* ioctl returning 0 or -errno. */
static int xioctl(int fd, unsigned long req, void *arg)
{
        if (fd < 0)
                return -EBADF;
        if (ioctl(fd, req, arg) < 0)
                return -errno;
        return 0;
}

/* ---- the iommufd context ------------------------------------------------ */

static int option_rlimit_mode(int iommufd, uint16_t op, uint64_t *val)
{
        struct k_iommu_option opt = {
            .size = sizeof(opt),
            .option_id = K_OPTION_RLIMIT_MODE,
            .op = op,
            .val64 = *val,
        };
        int r;

        r = xioctl(iommufd, K_IOMMU_OPTION, &opt);
        if (r < 0)
                return r;
        *val = opt.val64;
        return 0;
}

int kvfio_iommufd_get_rlimit_mode(int iommufd)
{
        uint64_t val = 0;
        int r;

        r = option_rlimit_mode(iommufd, K_OPTION_OP_GET, &val);
        if (r < 0)
                return r;
        return val ? KVFIO_IOMMUFD_RLIMIT_PROCESS : KVFIO_IOMMUFD_RLIMIT_USER;
}

int kvfio_iommufd_set_rlimit_mode(int iommufd, int mode)
{
        uint64_t val;

        if (mode != KVFIO_IOMMUFD_RLIMIT_USER && mode != KVFIO_IOMMUFD_RLIMIT_PROCESS)
                return -EINVAL;
        val = (uint64_t)mode;
        return option_rlimit_mode(iommufd, K_OPTION_OP_SET, &val);
}

int kvfio_iommufd_open(const char *path)
{
        int fd, r;

        fd = open(path ? path : KVFIO_IOMMUFD_PATH, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* A harmless question only an iommufd answers. */
        r = kvfio_iommufd_get_rlimit_mode(fd);
        if (r < 0) {
                close(fd);
                return r == -EBADF ? r : -ENOTTY;
        }
        return fd;
}

/* ---- IOAS --------------------------------------------------------------- */

int kvfio_ioas_alloc(int iommufd, uint32_t *ret_ioas_id)
{
        struct k_iommu_ioas_alloc cmd = {.size = sizeof(cmd)};
        int r;

        if (!ret_ioas_id)
                return -EINVAL;
        r = xioctl(iommufd, K_IOMMU_IOAS_ALLOC, &cmd);
        if (r < 0)
                return r;
        *ret_ioas_id = cmd.out_ioas_id;
        return 0;
}

int kvfio_ioas_destroy(int iommufd, uint32_t ioas_id)
{
        struct k_iommu_destroy cmd = {.size = sizeof(cmd), .id = ioas_id};

        return xioctl(iommufd, K_IOMMU_DESTROY, &cmd);
}

/* Upper bound on the IOVA ranges of one IOAS we accept from the kernel. */
#define IOAS_MAX_RANGES 4096

int kvfio_ioas_get_info(int iommufd, uint32_t ioas_id, struct kvfio_ioas_info **ret_info)
{
        struct k_iommu_ioas_iova_ranges cmd;
        struct k_iommu_iova_range *ranges = NULL;
        struct kvfio_ioas_info *info;
        uint32_t n = 0, i;
        int r;

        if (!ret_info)
                return -EINVAL;
        /*
         * Ask with room for n ranges; the kernel answers -EMSGSIZE with the
         * count it needs when there are more (ranges can change between
         * the two calls: ask again).
         */
        for (int tries = 0;; tries++) {
                memset(&cmd, 0, sizeof(cmd));
                cmd.size = sizeof(cmd);
                cmd.ioas_id = ioas_id;
                cmd.num_iovas = n;
                cmd.allowed_iovas = (uintptr_t)ranges;
                r = xioctl(iommufd, K_IOMMU_IOAS_RANGES, &cmd);
                if (r == 0 && cmd.num_iovas <= n)
                        break;
                if (r < 0 && r != -EMSGSIZE)
                        goto err;
                if (cmd.num_iovas > IOAS_MAX_RANGES || tries >= 8) {
                        r = -EBADMSG;
                        goto err;
                }
                free(ranges);
                n = cmd.num_iovas;
                ranges = calloc(n ? n : 1, sizeof(*ranges));
                if (!ranges)
                        return -ENOMEM;
        }
        n = cmd.num_iovas;
        info = calloc(1, sizeof(*info));
        if (!info) {
                r = -ENOMEM;
                goto err;
        }
        if (n) {
                info->iova_ranges = calloc(n, sizeof(*info->iova_ranges));
                if (!info->iova_ranges) {
                        free(info);
                        r = -ENOMEM;
                        goto err;
                }
        }
        for (i = 0; i < n; i++) {
                info->iova_ranges[i].start = ranges[i].start;
                info->iova_ranges[i].end = ranges[i].last;
        }
        info->n_iova_ranges = n;
        info->iova_alignment = cmd.out_iova_alignment;
        free(ranges);
        *ret_info = info;
        return 0;
err:
        free(ranges);
        return r;
}

void kvfio_ioas_info_free(struct kvfio_ioas_info *info)
{
        if (!info)
                return;
        free(info->iova_ranges);
        free(info);
}

/* KVFIO_DMA_READ/WRITE to the IOAS map flags (with FIXED_IOVA); 0 if invalid. */
static uint32_t map_flags(uint32_t flags)
{
        uint32_t k = K_MAP_FIXED_IOVA;

        if (!flags || (flags & ~(uint32_t)(KVFIO_DMA_READ | KVFIO_DMA_WRITE)))
                return 0;
        if (flags & KVFIO_DMA_READ)
                k |= K_MAP_READABLE;
        if (flags & KVFIO_DMA_WRITE)
                k |= K_MAP_WRITEABLE;
        return k;
}

/* size 0 or [start, start + size) wrapping around. */
static bool bad_range(uint64_t start, uint64_t size)
{
        return size == 0 || start + (size - 1) < start;
}

int kvfio_ioas_map(int iommufd, uint32_t ioas_id, void *vaddr, uint64_t iova, uint64_t size,
                   uint32_t flags)
{
        struct k_iommu_ioas_map cmd = {
            .size = sizeof(cmd),
            .flags = map_flags(flags),
            .ioas_id = ioas_id,
            .user_va = (uintptr_t)vaddr,
            .length = size,
            .iova = iova,
        };

        if (!vaddr || !cmd.flags || bad_range(iova, size) || bad_range((uintptr_t)vaddr, size))
                return -EINVAL;
        return xioctl(iommufd, K_IOMMU_IOAS_MAP, &cmd);
}

int kvfio_ioas_map_file(int iommufd, uint32_t ioas_id, int memfd, uint64_t offset, uint64_t iova,
                        uint64_t size, uint32_t flags)
{
        struct k_iommu_ioas_map_file cmd = {
            .size = sizeof(cmd),
            .flags = map_flags(flags),
            .ioas_id = ioas_id,
            .fd = memfd,
            .start = offset,
            .length = size,
            .iova = iova,
        };
        int r;

        if (!cmd.flags || bad_range(iova, size) || bad_range(offset, size))
                return -EINVAL;
        if (memfd < 0)
                return -EBADF;
        r = xioctl(iommufd, K_IOMMU_IOAS_MAP_FILE, &cmd);
        /*
         * iommufd answers an ioctl number it does not know with ENOTTY, as
         * does any other fd: tell which.
         */
        if (r == -ENOTTY && kvfio_iommufd_get_rlimit_mode(iommufd) >= 0)
                return -EOPNOTSUPP;
        return r;
}

int kvfio_iommufd_has_map_file(int iommufd)
{
        /* size 0 is below every version of the structure: -EINVAL if known. */
        struct k_iommu_ioas_map_file cmd = {.size = 0};
        int r;

        r = xioctl(iommufd, K_IOMMU_IOAS_MAP_FILE, &cmd);
        if (r == -ENOTTY) {
                /* Unknown number, or not an iommufd at all: tell which. */
                r = kvfio_iommufd_get_rlimit_mode(iommufd);
                return r < 0 ? r : 0;
        }
        if (r == -EBADF)
                return r;
        return 1;
}

static int unmap(int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t size,
                 uint64_t *ret_unmapped)
{
        struct k_iommu_ioas_unmap cmd = {
            .size = sizeof(cmd),
            .ioas_id = ioas_id,
            .iova = iova,
            .length = size,
        };
        int r;

        r = xioctl(iommufd, K_IOMMU_IOAS_UNMAP, &cmd);
        if (r < 0)
                return r;
        if (ret_unmapped)
                *ret_unmapped = cmd.length;
        return 0;
}

int kvfio_ioas_unmap(int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t size,
                     uint64_t *ret_unmapped)
{
        /* 0 to U64_MAX is the kernel's "everything": kvfio_ioas_unmap_all(). */
        if (bad_range(iova, size) || (iova == 0 && size == UINT64_MAX))
                return -EINVAL;
        return unmap(iommufd, ioas_id, iova, size, ret_unmapped);
}

int kvfio_ioas_unmap_all(int iommufd, uint32_t ioas_id, uint64_t *ret_unmapped)
{
        return unmap(iommufd, ioas_id, 0, UINT64_MAX, ret_unmapped);
}

/* ---- device cdev -------------------------------------------------------- */

int kvfio_cdev_open(int index, const char *dir)
{
        char path[PATH_MAX];
        int n, fd;

        if (index < 0)
                return -EINVAL;
        n = snprintf(path, sizeof(path), "%s/vfio%d", dir ? dir : KVFIO_CDEV_DIR, index);
        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fd;
}

int kvfio_device_bind_iommufd(int device_fd, int iommufd, uint32_t *ret_dev_id)
{
        struct k_vfio_device_bind_iommufd cmd = {
            .argsz = sizeof(cmd),
            .iommufd = iommufd,
        };
        int r;

        if (iommufd < 0)
                return -EBADF;
        r = xioctl(device_fd, K_VFIO_DEVICE_BIND, &cmd);
        if (r < 0)
                return r;
        if (ret_dev_id)
                *ret_dev_id = cmd.out_devid;
        return 0;
}

int kvfio_device_attach_ioas(int device_fd, uint32_t pt_id, uint32_t *ret_pt_id)
{
        struct k_vfio_device_attach_iommufd_pt cmd = {
            .argsz = sizeof(cmd),
            .pt_id = pt_id,
        };
        int r;

        r = xioctl(device_fd, K_VFIO_DEVICE_ATTACH, &cmd);
        if (r < 0)
                return r;
        if (ret_pt_id)
                *ret_pt_id = cmd.pt_id;
        return 0;
}

int kvfio_device_detach_ioas(int device_fd)
{
        struct k_vfio_device_detach_iommufd_pt cmd = {.argsz = sizeof(cmd)};

        return xioctl(device_fd, K_VFIO_DEVICE_DETACH, &cmd);
}
