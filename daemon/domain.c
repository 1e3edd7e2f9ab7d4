/* SPDX-License-Identifier: MIT */
#include "daemon/domain.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/dma.h"
#include "kernel/group.h"
#include "proto/macro.h"

int vfiod_domain_new(const char *container_path, int wanted, uint64_t id, struct vfiod_usage *usage,
                     struct vfiod_domain **ret, struct vfiod_error *err)
{
        struct vfiod_domain *d;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        list_init(&d->link);
        d->id = id;
        d->usage = usage;
        d->container_fd = kvfio_container_open(container_path);
        if (d->container_fd < 0) {
                r = vfiod_error_set(err, -d->container_fd,
                                    "cannot open the VFIO container '%s': %s", container_path,
                                    strerror(-d->container_fd));
                free(d);
                return r;
        }
        r = kvfio_container_pick_iommu(d->container_fd, wanted);
        if (r < 0) {
                r = vfiod_error_set(err, -r, "IOMMU model '%s' is not available: %s",
                                    kvfio_iommu_model_name(wanted), strerror(-r));
                safe_close(d->container_fd);
                free(d);
                return r;
        }
        d->model = r;
        r = kvfio_container_check_extension(d->container_fd, VFIO_UNMAP_ALL);
        d->unmap_all = r > 0;
        d->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
        usage->domains++;
        /* On success the container fd is owned by the domain. */
        *ret = d;
        return 0;
}

static void mapping_drop(struct vfiod_domain *d, size_t i, bool kernel_unmap)
{
        struct vfiod_mapping *m = &d->maps[i];

        if (kernel_unmap) {
                int r = kvfio_dma_unmap(d->container_fd, m->iova, m->size, NULL);
                if (r < 0)
                        log_warning("domain %" PRIu64 ": unmapping iova 0x%" PRIx64 "+0x%" PRIx64
                                    " failed: %s",
                                    d->id, m->iova, m->size, strerror(-r));
        }
        if (munmap(m->addr, m->size) < 0)
                log_warning("domain %" PRIu64 ": munmap of iova 0x%" PRIx64 " failed: %m", d->id,
                            m->iova);
        d->pinned_bytes -= m->size;
        d->usage->pinned_bytes -= m->size;
        d->usage->mappings--;
        memmove(&d->maps[i], &d->maps[i + 1], (d->n_maps - i - 1) * sizeof(*m));
        d->n_maps--;
}

void vfiod_domain_free(struct vfiod_domain *domain)
{
        if (!domain)
                return;
        while (domain->n_maps > 0)
                mapping_drop(domain, domain->n_maps - 1, domain->model_set);
        free(domain->maps);
        free(domain->iova_ranges);
        list_remove(&domain->link);
        if (domain->usage)
                domain->usage->domains--;
        safe_close(domain->container_fd);
        free(domain);
}

int vfiod_domain_attach(struct vfiod_domain *d, int group_fd, struct vfiod_error *err)
{
        struct kvfio_iommu_info *info = NULL;
        int r;

        r = kvfio_group_set_container(group_fd, d->container_fd);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot attach the group to domain %" PRIu64 ": %s",
                                       d->id, strerror(-r));
        if (d->model_set)
                return 0;
        r = kvfio_container_set_iommu(d->container_fd, d->model);
        if (r < 0) {
                (void)kvfio_group_unset_container(group_fd);
                return vfiod_error_set(err, -r,
                                       "cannot set IOMMU model %s on domain %" PRIu64 ": %s",
                                       kvfio_iommu_model_name(d->model), d->id, strerror(-r));
        }
        d->model_set = true;
        free(d->iova_ranges);
        d->iova_ranges = NULL;
        d->n_iova_ranges = 0;
        d->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
        if (kvfio_iommu_get_info(d->container_fd, &info) == 0) {
                if (info->pgsize_bitmap) {
                        uint64_t min = info->pgsize_bitmap & -info->pgsize_bitmap;
                        if (min > d->page_size)
                                d->page_size = min;
                }
                if (info->has_iova_ranges) {
                        /* Move the array out of the info. */
                        d->iova_ranges = info->iova_ranges;
                        d->n_iova_ranges = info->n_iova_ranges;
                        info->iova_ranges = NULL;
                        info->n_iova_ranges = 0;
                }
                kvfio_iommu_info_free(info);
        }
        return 0;
}

void vfiod_domain_detached_last(struct vfiod_domain *d)
{
        /* The kernel dropped the mappings with the last group: only munmap ours. */
        while (d->n_maps > 0)
                mapping_drop(d, d->n_maps - 1, false);
        d->model_set = false;
        d->mode = 0;
        free(d->iova_ranges);
        d->iova_ranges = NULL;
        d->n_iova_ranges = 0;
}

static bool iova_valid(const struct vfiod_domain *d, uint64_t iova, uint64_t size)
{
        uint64_t last = iova + size - 1;

        if (!d->iova_ranges)
                return true;
        for (size_t i = 0; i < d->n_iova_ranges; i++)
                if (iova >= d->iova_ranges[i].start && last <= d->iova_ranges[i].end)
                        return true;
        return false;
}

static bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
        return a <= b + (bs - 1) && b <= a + (as - 1);
}

static int check_memfd(const struct vfiod_map_range *m, struct vfiod_error *err)
{
        struct stat st;
        int seals;

        seals = fcntl(m->fd, F_GET_SEALS);
        if (seals < 0)
                return vfiod_error_set(err, EINVAL, "fd %u is not a memfd (F_GET_SEALS: %m)",
                                       m->fd_index);
        if (!(seals & F_SEAL_SHRINK))
                return vfiod_error_set(err, EINVAL,
                                       "memfd %u is not sealed against shrinking (F_SEAL_SHRINK)",
                                       m->fd_index);
        if (fstat(m->fd, &st) < 0)
                return vfiod_error_set(err, EINVAL, "fd %u: fstat: %m", m->fd_index);
        if (!S_ISREG(st.st_mode))
                return vfiod_error_set(err, EINVAL, "fd %u is not a memfd (not a regular file)",
                                       m->fd_index);
        if ((uint64_t)st.st_size < m->offset + m->size)
                return vfiod_error_set(err, EINVAL,
                                       "memfd %u is too small: %" PRIu64
                                       " bytes, range needs offset 0x%" PRIx64 " + size 0x%" PRIx64,
                                       m->fd_index, (uint64_t)st.st_size, m->offset, m->size);
        return 0;
}

static int check_range(const struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t i,
                       struct vfiod_error *err)
{
        const struct vfiod_map_range *m = &ranges[i];
        uint64_t mask = d->page_size - 1;

        if (m->size == 0)
                return vfiod_error_set(err, EINVAL, "range %zu: size is 0", i);
        if ((m->offset | m->iova | m->size) & mask)
                return vfiod_error_set(err, EINVAL,
                                       "range %zu: offset 0x%" PRIx64 ", iova 0x%" PRIx64
                                       " and size 0x%" PRIx64 " must be aligned to 0x%" PRIx64,
                                       i, m->offset, m->iova, m->size, d->page_size);
        if (m->offset + m->size < m->offset || m->iova + (m->size - 1) < m->iova ||
            m->size > SIZE_MAX || m->offset > (uint64_t)INT64_MAX)
                return vfiod_error_set(err, EINVAL, "range %zu: offset/iova + size overflows", i);
        if (!m->readable && !m->writable)
                return vfiod_error_set(err, EINVAL, "range %zu: neither readable nor writable", i);
        if (!iova_valid(d, m->iova, m->size))
                return vfiod_error_set(err, EINVAL,
                                       "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                       " is outside the domain's valid IOVA ranges",
                                       i, m->iova, m->size);
        for (size_t j = 0; j < d->n_maps; j++)
                if (overlaps(m->iova, m->size, d->maps[j].iova, d->maps[j].size))
                        return vfiod_error_set(err, EINVAL,
                                               "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                               " overlaps the mapping at 0x%" PRIx64 "+0x%" PRIx64,
                                               i, m->iova, m->size, d->maps[j].iova,
                                               d->maps[j].size);
        for (size_t j = 0; j < i; j++)
                if (overlaps(m->iova, m->size, ranges[j].iova, ranges[j].size))
                        return vfiod_error_set(err, EINVAL, "range %zu overlaps range %zu", i, j);
        return check_memfd(m, err);
}

static int cmp_map(const void *a, const void *b)
{
        const struct vfiod_mapping *x = a, *y = b;

        return x->iova < y->iova ? -1 : x->iova > y->iova;
}

int vfiod_domain_map(struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t n,
                     const struct vfiod_config_limits *limits, uint64_t *ret_bytes,
                     struct vfiod_error *err)
{
        struct vfiod_mapping *maps;
        uint64_t total = 0;
        size_t done;
        int r;

        if (n == 0)
                return vfiod_error_set(err, EINVAL, "no ranges");
        if (n > limits->max_ranges_per_request)
                return vfiod_error_set(err, ENOSPC, "%zu ranges: MaxRangesPerRequest=%u reached", n,
                                       limits->max_ranges_per_request);
        if (d->mode != VFIOD__MODE__MODE_BROKERED)
                return vfiod_error_set(
                    err, EINVAL, "domain %" PRIu64 " is not a brokered domain (%s)", d->id,
                    d->mode == VFIOD__MODE__MODE_DIRECT ? "direct: map DMA on the container fd"
                                                        : "no device acquired yet");
        /*
         * No lease: not even a group kept attached by a quarantine (its holder
         * still has the device fd), which must not get new DMA.
         */
        if (!d->model_set || d->n_leases == 0)
                return vfiod_error_set(err, EINVAL, "domain %" PRIu64 " has no device", d->id);
        for (size_t i = 0; i < n; i++) {
                r = check_range(d, ranges, i, err);
                if (r < 0)
                        return r;
                total += ranges[i].size;
                if (total < ranges[i].size)
                        return vfiod_error_set(err, EINVAL, "total size overflows");
        }
        if ((uint64_t)d->usage->mappings + n > limits->max_mappings_per_client)
                return vfiod_error_set(err, ENOSPC,
                                       "%u mappings + %zu: MaxMappingsPerClient=%u reached",
                                       d->usage->mappings, n, limits->max_mappings_per_client);
        if (d->usage->pinned_bytes + total < total ||
            d->usage->pinned_bytes + total > limits->max_pinned_bytes_per_client)
                return vfiod_error_set(err, EDQUOT,
                                       "%" PRIu64 " bytes mapped + %" PRIu64
                                       ": MaxPinnedBytesPerClient=%" PRIu64 " reached",
                                       d->usage->pinned_bytes, total,
                                       limits->max_pinned_bytes_per_client);

        maps = realloc(d->maps, (d->n_maps + n) * sizeof(*maps));
        if (!maps)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        d->maps = maps;

        for (done = 0; done < n; done++) {
                const struct vfiod_map_range *m = &ranges[done];
                int prot = PROT_READ | (m->writable ? PROT_WRITE : 0);
                uint32_t flags =
                    (m->readable ? KVFIO_DMA_READ : 0) | (m->writable ? KVFIO_DMA_WRITE : 0);
                void *addr;

                addr = mmap(NULL, m->size, prot, MAP_SHARED, m->fd, (off_t)m->offset);
                if (addr == MAP_FAILED) {
                        r = vfiod_error_set(
                            err, errno == EACCES || errno == EPERM ? EACCES : EINVAL,
                            "range %zu: cannot mmap memfd %u: %m", done, m->fd_index);
                        goto undo;
                }
                r = kvfio_dma_map(d->container_fd, addr, m->iova, m->size, flags);
                if (r < 0) {
                        (void)munmap(addr, m->size);
                        r = vfiod_error_set(err, -r,
                                            "range %zu: mapping iova 0x%" PRIx64 "+0x%" PRIx64
                                            " failed: %s",
                                            done, m->iova, m->size, strerror(-r));
                        goto undo;
                }
                d->maps[d->n_maps + done] =
                    (struct vfiod_mapping){.iova = m->iova, .size = m->size, .addr = addr};
        }
        d->n_maps += n;
        d->pinned_bytes += total;
        d->usage->pinned_bytes += total;
        d->usage->mappings += (uint32_t)n;
        qsort(d->maps, d->n_maps, sizeof(*d->maps), cmp_map);
        *ret_bytes = total;
        return 0;

undo:
        while (done-- > 0) {
                struct vfiod_mapping *m = &d->maps[d->n_maps + done];
                int u = kvfio_dma_unmap(d->container_fd, m->iova, m->size, NULL);

                if (u < 0)
                        log_warning("domain %" PRIu64 ": undoing iova 0x%" PRIx64 " failed: %s",
                                    d->id, m->iova, strerror(-u));
                (void)munmap(m->addr, m->size);
        }
        return r;
}

int vfiod_domain_unmap(struct vfiod_domain *d, const struct vfiod_iova *ranges, size_t n,
                       uint32_t *ret_unmapped, uint64_t *ret_bytes, struct vfiod_error *err)
{
        uint32_t count = 0;
        uint64_t bytes = 0;

        if (n == 0)
                return vfiod_error_set(err, EINVAL, "no ranges");
        for (size_t i = 0; i < n; i++) {
                const struct vfiod_iova *u = &ranges[i];
                bool any = false;

                if (u->size == 0 || u->iova + (u->size - 1) < u->iova)
                        return vfiod_error_set(err, EINVAL,
                                               "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                               " is empty or overflows",
                                               i, u->iova, u->size);
                for (size_t j = 0; j < d->n_maps; j++) {
                        const struct vfiod_mapping *m = &d->maps[j];

                        if (!overlaps(u->iova, u->size, m->iova, m->size))
                                continue;
                        if (m->iova < u->iova || m->iova + (m->size - 1) > u->iova + (u->size - 1))
                                return vfiod_error_set(err, EINVAL,
                                                       "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                                       " would split the mapping at 0x%" PRIx64
                                                       "+0x%" PRIx64,
                                                       i, u->iova, u->size, m->iova, m->size);
                        any = true;
                }
                if (!any)
                        return vfiod_error_set(err, ENOENT,
                                               "range %zu: nothing is mapped at iova 0x%" PRIx64
                                               "+0x%" PRIx64,
                                               i, u->iova, u->size);
        }
        for (size_t i = 0; i < n; i++)
                for (size_t j = d->n_maps; j-- > 0;) {
                        const struct vfiod_mapping *m = &d->maps[j];

                        if (!overlaps(ranges[i].iova, ranges[i].size, m->iova, m->size))
                                continue;
                        count++;
                        bytes += m->size;
                        mapping_drop(d, j, true);
                }
        *ret_unmapped = count;
        *ret_bytes = bytes;
        return 0;
}

int vfiod_domain_unmap_everything(struct vfiod_domain *d)
{
        int failures = 0, r;

        if (d->mode == VFIOD__MODE__MODE_BROKERED || d->n_maps > 0) {
                while (d->n_maps > 0) {
                        struct vfiod_mapping *m = &d->maps[d->n_maps - 1];

                        r = kvfio_dma_unmap(d->container_fd, m->iova, m->size, NULL);
                        if (r < 0)
                                failures++;
                        log_info("domain %" PRIu64 ": unmapped iova 0x%" PRIx64 "+0x%" PRIx64
                                 "%s%s",
                                 d->id, m->iova, m->size, r < 0 ? ": failed: " : "",
                                 r < 0 ? strerror(-r) : "");
                        mapping_drop(d, d->n_maps - 1, false);
                }
        }
        if (d->mode == VFIOD__MODE__MODE_DIRECT && d->model_set) {
                uint64_t bytes = 0;

                if (!d->unmap_all) {
                        log_info("domain %" PRIu64 ": no VFIO_UNMAP_ALL; the client's mappings go "
                                 "when the group leaves the container",
                                 d->id);
                        return failures;
                }
                r = kvfio_dma_unmap_all(d->container_fd, &bytes);
                if (r < 0) {
                        failures++;
                        log_warning("domain %" PRIu64 ": unmapping all DMA failed: %s", d->id,
                                    strerror(-r));
                } else
                        log_info("domain %" PRIu64 ": unmapped all client DMA (%" PRIu64 " bytes)",
                                 d->id, bytes);
        }
        return failures;
}
