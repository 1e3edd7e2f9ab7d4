/* SPDX-License-Identifier: MIT */
/* VFIO container: open, extensions, IOMMU model, IOMMU info. */
#include "kernel/container.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel/caps.h"

int kvfio_container_open(const char *path)
{
        int fd, version, r;

        fd = open(path ? path : KVFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        version = ioctl(fd, VFIO_GET_API_VERSION);
        if (version < 0) {
                r = -errno;
                goto err_close;
        }
        if (version != VFIO_API_VERSION) {
                r = -EPROTO;
                goto err_close;
        }
        /* On success the fd is owned by the caller. */
        return fd;

err_close:
        close(fd);
        return r;
}

int kvfio_container_check_extension(int container_fd, unsigned long ext)
{
        int r;

        if (container_fd < 0)
                return -EBADF;
        r = ioctl(container_fd, VFIO_CHECK_EXTENSION, ext);
        if (r < 0)
                return -errno;
        return r > 0 ? 1 : 0;
}

static const int model_preference[] = {
    KVFIO_IOMMU_TYPE1v2,
    KVFIO_IOMMU_TYPE1,
    KVFIO_IOMMU_SPAPR_TCE_v2,
    KVFIO_IOMMU_SPAPR_TCE,
};

static bool model_valid(int model)
{
        for (size_t i = 0; i < sizeof(model_preference) / sizeof(model_preference[0]); i++)
                if (model_preference[i] == model)
                        return true;
        return false;
}

int kvfio_container_pick_iommu(int container_fd, int wanted)
{
        int r;

        if (container_fd < 0)
                return -EBADF;
        if (wanted != KVFIO_IOMMU_AUTO && !model_valid(wanted))
                return -EINVAL;
        if (wanted != KVFIO_IOMMU_AUTO) {
                r = kvfio_container_check_extension(container_fd, (unsigned long)wanted);
                if (r < 0)
                        return r;
                return r ? wanted : -EOPNOTSUPP;
        }
        for (size_t i = 0; i < sizeof(model_preference) / sizeof(model_preference[0]); i++) {
                r = kvfio_container_check_extension(container_fd,
                                                    (unsigned long)model_preference[i]);
                if (r < 0)
                        return r;
                if (r)
                        return model_preference[i];
        }
        return -EOPNOTSUPP;
}

int kvfio_container_set_iommu(int container_fd, int wanted)
{
        int model;

        model = kvfio_container_pick_iommu(container_fd, wanted);
        if (model < 0)
                return model;
        if (ioctl(container_fd, VFIO_SET_IOMMU, (unsigned long)model) < 0)
                return -errno;
        return model;
}

const char *kvfio_iommu_model_name(int model)
{
        switch (model) {
        case KVFIO_IOMMU_AUTO:
                return "auto";
        case KVFIO_IOMMU_TYPE1:
                return "Type1";
        case KVFIO_IOMMU_TYPE1v2:
                return "Type1v2";
        case KVFIO_IOMMU_SPAPR_TCE:
                return "sPAPR-TCE";
        case KVFIO_IOMMU_SPAPR_TCE_v2:
                return "sPAPR-TCE-v2";
        default:
                return "unknown";
        }
}

void kvfio_iommu_info_free(struct kvfio_iommu_info *info)
{
        if (!info)
                return;
        free(info->iova_ranges);
        free(info);
}

static int parse_iova_cap(const uint8_t *buf, size_t len, size_t off, struct kvfio_iommu_info *info)
{
        struct vfio_iommu_type1_info_cap_iova_range cap;
        size_t n, bytes;

        if (kvfio_cap_read(buf, len, off, &cap, sizeof(cap)) < 0)
                return -EBADMSG;
        n = cap.nr_iovas;
        bytes = n * sizeof(struct vfio_iova_range);
        if (kvfio_cap_items_fit(len, off, sizeof(cap), n, sizeof(struct vfio_iova_range)) < 0)
                return -EBADMSG;
        free(info->iova_ranges);
        info->iova_ranges = NULL;
        if (n > 0) {
                info->iova_ranges = malloc(bytes);
                if (!info->iova_ranges)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        struct vfio_iova_range r;

                        kvfio_cap_item(buf, off, sizeof(cap), i, &r, sizeof(r));
                        if (r.end < r.start)
                                return -EBADMSG;
                        info->iova_ranges[i].start = r.start;
                        info->iova_ranges[i].end = r.end;
                }
        }
        info->has_iova_ranges = true;
        info->n_iova_ranges = n;
        return 0;
}

static int iommu_cap(uint16_t id, const uint8_t *buf, size_t len, size_t off, void *userdata)
{
        struct kvfio_iommu_info *info = userdata;

        switch (id) {
        case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                return parse_iova_cap(buf, len, off, info);
        case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: {
                struct vfio_iommu_type1_info_dma_avail cap;

                if (kvfio_cap_read(buf, len, off, &cap, sizeof(cap)) < 0)
                        return -EBADMSG;
                info->has_dma_avail = true;
                info->dma_avail = cap.avail;
                return 0;
        }
        default:
                return 0;
        }
}

int kvfio_iommu_info_parse(const void *buf, size_t len, struct kvfio_iommu_info **ret_info)
{
        struct vfio_iommu_type1_info raw = {0};
        struct kvfio_iommu_info *info;
        size_t minsz = offsetof(struct vfio_iommu_type1_info, cap_offset);
        int r;

        if (!buf || !ret_info || len < minsz)
                return -EINVAL;
        memcpy(&raw, buf, len < sizeof(raw) ? len : sizeof(raw));
        if (raw.argsz > len)
                return -EBADMSG;
        if (raw.argsz < len)
                len = raw.argsz < minsz ? minsz : raw.argsz;

        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->flags = raw.flags;
        if (raw.flags & VFIO_IOMMU_INFO_PGSIZES)
                info->pgsize_bitmap = raw.iova_pgsizes;
        if ((raw.flags & VFIO_IOMMU_INFO_CAPS) && len >= sizeof(raw) && raw.cap_offset != 0) {
                r = kvfio_caps_walk(buf, len, sizeof(raw), raw.cap_offset, iommu_cap, info);
                if (r < 0)
                        goto err_free;
        }
        *ret_info = info;
        return 0;

err_free:
        kvfio_iommu_info_free(info);
        return r;
}

int kvfio_iommu_get_info(int container_fd, struct kvfio_iommu_info **ret_info)
{
        struct vfio_iommu_type1_info *buf;
        size_t size = sizeof(*buf);
        int r;

        if (container_fd < 0)
                return -EBADF;
        if (!ret_info)
                return -EINVAL;
        /* The capability chain may grow between calls; re-query a few times. */
        for (int attempt = 0; attempt < 4; attempt++) {
                buf = calloc(1, size);
                if (!buf)
                        return -ENOMEM;
                buf->argsz = (uint32_t)size;
                if (ioctl(container_fd, VFIO_IOMMU_GET_INFO, buf) < 0) {
                        r = -errno;
                        goto err_free;
                }
                if (buf->argsz <= size) {
                        r = kvfio_iommu_info_parse(buf, size, ret_info);
                        free(buf);
                        return r;
                }
                size = buf->argsz;
                free(buf);
                if (size > KVFIO_CAPS_MAX_SIZE)
                        return -EBADMSG;
        }
        return -EBADMSG;

err_free:
        free(buf);
        return r;
}
