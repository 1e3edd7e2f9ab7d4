/* SPDX-License-Identifier: MIT */
/* VFIO device: info, regions, IRQ info, resets. */
#include "kernel/device.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/caps.h"

/* Linux 6.5's hot reset info flags (the C library's headers may be older). */
#define HOT_RESET_FLAG_DEV_ID       (1u << 0)
#define HOT_RESET_FLAG_DEV_ID_OWNED (1u << 1)

int kvfio_device_get_info(int device_fd, struct kvfio_device_info *ret_info)
{
        struct vfio_device_info info = {.argsz = sizeof(info)};

        if (device_fd < 0)
                return -EBADF;
        if (!ret_info)
                return -EINVAL;
        if (ioctl(device_fd, VFIO_DEVICE_GET_INFO, &info) < 0)
                return -errno;
        ret_info->flags = info.flags;
        ret_info->num_regions = info.num_regions;
        ret_info->num_irqs = info.num_irqs;
        ret_info->reset_supported = !!(info.flags & VFIO_DEVICE_FLAGS_RESET);
        ret_info->is_pci = !!(info.flags & VFIO_DEVICE_FLAGS_PCI);
        return 0;
}

/* ---- regions ------------------------------------------------------------ */

void kvfio_region_info_free(struct kvfio_region_info *info)
{
        if (!info)
                return;
        free(info->sparse_areas);
        free(info);
}

static int parse_sparse_cap(const uint8_t *buf, size_t len, size_t off,
                            struct kvfio_region_info *info)
{
        struct vfio_region_info_cap_sparse_mmap cap;
        struct kvfio_sparse_area *areas = NULL;
        size_t n;

        if (kvfio_cap_read(buf, len, off, &cap, sizeof(cap)) < 0)
                return -EBADMSG;
        n = cap.nr_areas;
        if (kvfio_cap_items_fit(len, off, sizeof(cap), n,
                                sizeof(struct vfio_region_sparse_mmap_area)) < 0)
                return -EBADMSG;
        if (n > 0) {
                areas = calloc(n, sizeof(*areas));
                if (!areas)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct vfio_region_sparse_mmap_area a;

                kvfio_cap_item(buf, off, sizeof(cap), i, &a, sizeof(a));
                if (a.offset > info->size || a.size > info->size - a.offset) {
                        free(areas);
                        return -EBADMSG;
                }
                areas[i].offset = a.offset;
                areas[i].size = a.size;
        }
        free(info->sparse_areas);
        info->sparse_areas = areas;
        info->n_sparse_areas = n;
        info->has_sparse_mmap = true;
        return 0;
}

static int region_cap(uint16_t id, const uint8_t *buf, size_t len, size_t off, void *userdata)
{
        struct kvfio_region_info *info = userdata;

        switch (id) {
        case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
                return parse_sparse_cap(buf, len, off, info);
        case VFIO_REGION_INFO_CAP_TYPE: {
                struct vfio_region_info_cap_type cap;

                if (kvfio_cap_read(buf, len, off, &cap, sizeof(cap)) < 0)
                        return -EBADMSG;
                info->has_type = true;
                info->type = cap.type;
                info->subtype = cap.subtype;
                return 0;
        }
        case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
                info->msix_mappable = true;
                return 0;
        default:
                return 0;
        }
}

int kvfio_region_info_parse(const void *buf, size_t len, struct kvfio_region_info **ret_info)
{
        struct vfio_region_info raw;
        struct kvfio_region_info *info;
        int r;

        if (!buf || !ret_info || len < sizeof(raw))
                return -EINVAL;
        memcpy(&raw, buf, sizeof(raw));
        if (raw.argsz > len)
                return -EBADMSG;
        if (raw.argsz >= sizeof(raw) && raw.argsz < len)
                len = raw.argsz;

        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->index = raw.index;
        info->flags = raw.flags;
        info->size = raw.size;
        info->offset = raw.offset;
        if ((raw.flags & VFIO_REGION_INFO_FLAG_CAPS) && raw.cap_offset != 0) {
                r = kvfio_caps_walk(buf, len, sizeof(raw), raw.cap_offset, region_cap, info);
                if (r < 0)
                        goto err_free;
        }
        *ret_info = info;
        return 0;

err_free:
        kvfio_region_info_free(info);
        return r;
}

int kvfio_device_get_region_info(int device_fd, uint32_t index, struct kvfio_region_info **ret_info)
{
        struct vfio_region_info *buf;
        size_t size = sizeof(*buf);
        int r;

        if (device_fd < 0)
                return -EBADF;
        if (!ret_info)
                return -EINVAL;
        /* argsz re-query: the kernel says how much room the capability chain needs. */
        for (int attempt = 0; attempt < 4; attempt++) {
                buf = calloc(1, size);
                if (!buf)
                        return -ENOMEM;
                buf->argsz = (uint32_t)size;
                buf->index = index;
                if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, buf) < 0) {
                        r = -errno;
                        goto err_free;
                }
                if (buf->argsz <= size) {
                        r = kvfio_region_info_parse(buf, size, ret_info);
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

/* Checks that [offset, offset + len) lies inside the region. */
static bool range_inside(const struct kvfio_region_info *region, uint64_t offset, uint64_t len)
{
        return offset <= region->size && len <= region->size - offset &&
               region->offset + offset >= region->offset &&
               region->offset + offset + len >= region->offset + offset &&
               region->offset + offset + len <= (uint64_t)INT64_MAX;
}

/*
 * Reads (write false: into buf) or writes (write true: from buf) len bytes at
 * offset of region, retrying short transfers and EINTR. -EACCES when the
 * region does not allow it.
 */
static int region_io(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                     const void *buf, size_t len, bool write)
{
        uint32_t needed = write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ;
        size_t done = 0;

        if (device_fd < 0)
                return -EBADF;
        if (!region || (!buf && len > 0) || !range_inside(region, offset, len))
                return -EINVAL;
        if (!(region->flags & needed))
                return -EACCES;
        while (done < len) {
                off_t at = (off_t)(region->offset + offset + done);
                /* For a read buf is kvfio_region_read()'s writable buffer. */
                ssize_t n = write ? pwrite(device_fd, (const uint8_t *)buf + done, len - done, at)
                                  : pread(device_fd, (uint8_t *)buf + done, len - done, at);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}

int kvfio_region_read(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      void *buf, size_t len)
{
        return region_io(device_fd, region, offset, buf, len, false);
}

int kvfio_region_write(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                       const void *buf, size_t len)
{
        return region_io(device_fd, region, offset, buf, len, true);
}

int kvfio_region_mmap(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      size_t len, int prot, void **ret_addr)
{
        long page = sysconf(_SC_PAGESIZE);
        bool in_area;
        void *p;

        if (device_fd < 0)
                return -EBADF;
        if (!region || !ret_addr || len == 0 || page <= 0)
                return -EINVAL;
        if (prot == 0 || (prot & ~(PROT_READ | PROT_WRITE)))
                return -EINVAL;
        if (offset % (uint64_t)page || len % (size_t)page || region->offset % (uint64_t)page)
                return -EINVAL;
        if (!range_inside(region, offset, len))
                return -EINVAL;
        if (!(region->flags & VFIO_REGION_INFO_FLAG_MMAP))
                return -EACCES;
        if (((prot & PROT_READ) && !(region->flags & VFIO_REGION_INFO_FLAG_READ)) ||
            ((prot & PROT_WRITE) && !(region->flags & VFIO_REGION_INFO_FLAG_WRITE)))
                return -EACCES;
        if (region->has_sparse_mmap) {
                in_area = false;
                for (size_t i = 0; i < region->n_sparse_areas; i++) {
                        const struct kvfio_sparse_area *a = &region->sparse_areas[i];

                        if (offset >= a->offset && offset - a->offset <= a->size &&
                            len <= a->size - (offset - a->offset)) {
                                in_area = true;
                                break;
                        }
                }
                if (!in_area)
                        return -EACCES;
        }
        p = mmap(NULL, len, prot, MAP_SHARED, device_fd, (off_t)(region->offset + offset));
        if (p == MAP_FAILED)
                return -errno;
        /* The mapping is the caller's; it does not keep device_fd open. */
        *ret_addr = p;
        return 0;
}

/* ---- interrupts and resets ---------------------------------------------- */

int kvfio_device_get_irq_info(int device_fd, uint32_t index, struct kvfio_irq_info *ret_info)
{
        struct vfio_irq_info info = {.argsz = sizeof(info)};

        if (device_fd < 0)
                return -EBADF;
        if (!ret_info)
                return -EINVAL;
        info.index = index;
        if (ioctl(device_fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
                return -errno;
        ret_info->index = info.index;
        ret_info->flags = info.flags;
        ret_info->count = info.count;
        ret_info->eventfd = !!(info.flags & VFIO_IRQ_INFO_EVENTFD);
        ret_info->maskable = !!(info.flags & VFIO_IRQ_INFO_MASKABLE);
        ret_info->automasked = !!(info.flags & VFIO_IRQ_INFO_AUTOMASKED);
        ret_info->noresize = !!(info.flags & VFIO_IRQ_INFO_NORESIZE);
        return 0;
}

int kvfio_device_reset(int device_fd)
{
        if (device_fd < 0)
                return -EBADF;
        if (ioctl(device_fd, VFIO_DEVICE_RESET) < 0)
                return -errno;
        return 0;
}

void kvfio_hot_reset_info_free(struct kvfio_hot_reset_info *info)
{
        if (!info)
                return;
        free(info->devs);
        free(info);
}

int kvfio_device_get_hot_reset_info(int device_fd, struct kvfio_hot_reset_info **ret_info)
{
        struct vfio_pci_hot_reset_info *buf = NULL;
        struct kvfio_hot_reset_info *info;
        uint32_t count = 0;
        size_t size;
        int r;

        if (device_fd < 0)
                return -EBADF;
        if (!ret_info)
                return -EINVAL;
        /* -ENOSPC with count filled in means: ask again with room for count. */
        for (int attempt = 0;; attempt++) {
                if (attempt >= 4 || count > 65536) {
                        r = -EBADMSG;
                        goto err_free;
                }
                size = sizeof(*buf) + (size_t)count * sizeof(buf->devices[0]);
                free(buf);
                buf = calloc(1, size);
                if (!buf)
                        return -ENOMEM;
                buf->argsz = (uint32_t)size;
                if (ioctl(device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf) == 0)
                        break;
                r = -errno;
                if (r != -ENOSPC || buf->count <= count)
                        goto err_free;
                count = buf->count;
        }
        if (buf->count > count) {
                r = -EBADMSG;
                goto err_free;
        }

        info = calloc(1, sizeof(*info));
        if (!info) {
                r = -ENOMEM;
                goto err_free;
        }
        if (buf->count > 0) {
                info->devs = calloc(buf->count, sizeof(*info->devs));
                if (!info->devs) {
                        r = -ENOMEM;
                        goto err_info;
                }
        }
        info->n = buf->count;
        info->dev_ids = buf->flags & HOT_RESET_FLAG_DEV_ID;
        info->owned = info->dev_ids && (buf->flags & HOT_RESET_FLAG_DEV_ID_OWNED);
        for (size_t i = 0; i < info->n; i++) {
                info->devs[i].segment = buf->devices[i].segment;
                info->devs[i].bus = buf->devices[i].bus;
                info->devs[i].devfn = buf->devices[i].devfn;
                info->devs[i].group_id = buf->devices[i].group_id;
        }
        free(buf);
        *ret_info = info;
        return 0;

err_info:
        kvfio_hot_reset_info_free(info);
err_free:
        free(buf);
        return r;
}

int kvfio_device_hot_reset(int device_fd, const int *group_fds, size_t n_group_fds)
{
        struct vfio_pci_hot_reset *req;
        size_t size;
        int r;

        if (device_fd < 0)
                return -EBADF;
        if (!group_fds || n_group_fds == 0 || n_group_fds > KVFIO_HOT_RESET_MAX_GROUPS)
                return -EINVAL;
        for (size_t i = 0; i < n_group_fds; i++)
                if (group_fds[i] < 0)
                        return -EINVAL;
        size = sizeof(*req) + n_group_fds * sizeof(req->group_fds[0]);
        req = calloc(1, size);
        if (!req)
                return -ENOMEM;
        req->argsz = (uint32_t)size;
        req->count = (uint32_t)n_group_fds;
        for (size_t i = 0; i < n_group_fds; i++)
                req->group_fds[i] = group_fds[i];
        /* The fds are only looked at; they stay the caller's. */
        r = ioctl(device_fd, VFIO_DEVICE_PCI_HOT_RESET, req) < 0 ? -errno : 0;
        free(req);
        return r;
}

int kvfio_device_hot_reset_cdev(int device_fd)
{
        /* No group fds: count 0 is what says "ownership through my iommufd". */
        struct vfio_pci_hot_reset req = {.argsz = sizeof(req), .count = 0};

        if (device_fd < 0)
                return -EBADF;
        return ioctl(device_fd, VFIO_DEVICE_PCI_HOT_RESET, &req) < 0 ? -errno : 0;
}

char *kvfio_hot_reset_dep_bdf(const struct kvfio_hot_reset_dep *dep, char buf[static 16])
{
        snprintf(buf, 16, "%04x:%02x:%02x.%x", (unsigned)dep->segment, (unsigned)dep->bus,
                 (unsigned)(dep->devfn >> 3), (unsigned)(dep->devfn & 7));
        return buf;
}
