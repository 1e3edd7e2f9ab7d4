/* SPDX-License-Identifier: MIT */
#include "daemon/domain.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/state.h"
#include "kernel/dma.h"
#include "kernel/group.h"
#include "kernel/iommufd.h"
#include "proto/macro.h"

/* A domain of interface iface with no fd yet, not counted; NULL when out of memory. */
static struct vfiod_domain *domain_alloc(uint64_t id, struct vfiod_usage *usage, int iface)
{
        struct vfiod_domain *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        list_init(&d->link);
        list_init(&d->views);
        d->id = id;
        d->usage = usage;
        d->iface = iface;
        d->container_fd = d->iommufd = -EBADF;
        d->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
        return d;
}

int vfiod_domain_new(const char *container_path, int wanted, uint64_t id, struct vfiod_usage *usage,
                     struct vfiod_domain **ret, struct vfiod_error *err)
{
        struct vfiod_domain *d;
        int r;

        d = domain_alloc(id, usage, VFIOD__INTERFACE__INTERFACE_LEGACY);
        if (!d)
                return vfiod_error_set(err, ENOMEM, "out of memory");
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
        vfiod_usage_count(usage, 1, 0, 0);
        /* On success the container fd is owned by the domain. */
        *ret = d;
        return 0;
}

int vfiod_domain_new_iommufd(const char *iommufd_path, uint64_t id, struct vfiod_usage *usage,
                             struct vfiod_domain **ret, struct vfiod_error *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct vfiod_domain *d;
        int r;

        fd = kvfio_iommufd_open(iommufd_path);
        if (fd < 0)
                return vfiod_error_set(err, -fd, "cannot open the iommufd '%s': %s", iommufd_path,
                                       strerror(-fd));
        /*
         * Pinned pages count against the RLIMIT_MEMLOCK of the process that maps
         * them, as Type1 counts them: a DIRECT client's against its own limit.
         */
        r = kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_PROCESS);
        if (r < 0)
                return vfiod_error_set(err, -r,
                                       "cannot set per-process pinned-memory accounting on the "
                                       "iommufd: %s",
                                       strerror(-r));
        d = domain_alloc(id, usage, VFIOD__INTERFACE__INTERFACE_IOMMUFD);
        if (!d)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        d->model = KVFIO_IOMMU_AUTO;
        d->unmap_all = true;
        /* The iommufd is the domain's from here on. */
        d->iommufd = TAKE_FD(fd);
        vfiod_usage_count(usage, 1, 0, 0);
        *ret = d;
        return 0;
}

/* ---- the calls that differ between a container and an IOAS ------------------------- */

static bool dom_iommufd(const struct vfiod_domain *d)
{
        return d->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD;
}

static int dom_map(struct vfiod_domain *d, void *addr, uint64_t iova, uint64_t size, uint32_t flags)
{
        if (dom_iommufd(d))
                return kvfio_ioas_map(d->iommufd, d->ioas_id, addr, iova, size, flags);
        return kvfio_dma_map(d->container_fd, addr, iova, size, flags);
}

static int dom_unmap(struct vfiod_domain *d, uint64_t iova, uint64_t size, uint64_t *ret_bytes)
{
        if (dom_iommufd(d))
                return kvfio_ioas_unmap(d->iommufd, d->ioas_id, iova, size, ret_bytes);
        return kvfio_dma_unmap(d->container_fd, iova, size, ret_bytes);
}

static int dom_unmap_all(struct vfiod_domain *d, uint64_t *ret_bytes)
{
        if (dom_iommufd(d))
                return d->ioas_id ? kvfio_ioas_unmap_all(d->iommufd, d->ioas_id, ret_bytes) : 0;
        return kvfio_dma_unmap_all(d->container_fd, ret_bytes);
}

static void view_free(struct vfiod_domain *d, struct vfiod_memfd_view *v)
{
        d->usage->view_bytes -= v->size;
        d->usage->fds--;
        if (munmap(v->addr, v->size) < 0)
                log_warning("domain %" PRIu64 ": munmap of a memfd view failed: %m", d->id);
        safe_close(v->fd);
        list_remove(&v->link);
        free(v);
}

/*
 * Idle views: a view whose last mapping goes stays mapped, so that mapping
 * the same memory again costs no mmap, no page faults and no munmap. The
 * memfd's pages then stay allocated while the client may have let them go,
 * so they are bounded: VFIOD_IDLE_VIEWS_MAX views of at most
 * MaxPinnedBytesPerClient in all per domain (the least recently used go
 * first), and all go with the domain's last lease.
 */
#define VFIOD_IDLE_VIEWS_MAX 8

static void idle_trim(struct vfiod_domain *d, size_t max_views, uint64_t max_bytes)
{
        struct vfiod_memfd_view *v;

        list_for_each_safe (v, it, &d->views, struct vfiod_memfd_view, link) {
                if (d->n_idle_views <= max_views && d->idle_bytes <= max_bytes)
                        return;
                if (v->refs > 0)
                        continue;
                d->n_idle_views--;
                d->idle_bytes -= v->size;
                view_free(d, v);
        }
}

void vfiod_domain_drop_idle_views(struct vfiod_domain *d)
{
        idle_trim(d, 0, 0);
}

/* Drops a reference to a view; the last one makes it idle. NULL is fine. */
static void view_put(struct vfiod_domain *d, struct vfiod_memfd_view *v)
{
        if (!v || --v->refs > 0)
                return;
        /* Most recently used last. */
        list_remove(&v->link);
        list_add_tail(&d->views, &v->link);
        d->n_idle_views++;
        d->idle_bytes += v->size;
        idle_trim(d, VFIOD_IDLE_VIEWS_MAX, d->idle_bytes_max);
}

/*
 * Gives back what mapping m holds (its view reference, its pinned bytes and
 * count), after unmapping it in the kernel when kernel_unmap. m stays in
 * d->maps: the caller takes it out.
 */
static void mapping_forget(struct vfiod_domain *d, const struct vfiod_mapping *m, bool kernel_unmap)
{
        if (kernel_unmap) {
                int r = dom_unmap(d, m->iova, m->size, NULL);
                if (r < 0)
                        log_warning("domain %" PRIu64 ": unmapping iova 0x%" PRIx64 "+0x%" PRIx64
                                    " failed: %s",
                                    d->id, m->iova, m->size, strerror(-r));
        }
        view_put(d, m->view);
        d->pinned_bytes -= m->size;
        vfiod_usage_count(d->usage, 0, -1, -(int64_t)m->size);
}

static void mapping_drop(struct vfiod_domain *d, size_t i, bool kernel_unmap)
{
        mapping_forget(d, &d->maps[i], kernel_unmap);
        memmove(&d->maps[i], &d->maps[i + 1], (d->n_maps - i - 1) * sizeof(d->maps[i]));
        d->n_maps--;
}

/*
 * Unmaps and forgets every mapping marked doomed, in one pass. A run of doomed
 * mappings that are neighbours in d->maps is one VFIO_IOMMU_UNMAP_DMA over the
 * span from the first to the end of the last: d->maps holds every mapping of
 * a brokered domain (the client has no container fd), so no other mapping
 * lies in that span, and Type1 removes every mapping wholly inside it. If the
 * span fails, each mapping of the run is unmapped on its own.
 */
static void drop_doomed(struct vfiod_domain *d)
{
        /* IOMMU_IOAS_UNMAP, like Type1, removes every mapping wholly inside the span. */
        bool span_ok =
            d->model == KVFIO_IOMMU_TYPE1 || d->model == KVFIO_IOMMU_TYPE1v2 || dom_iommufd(d);
        size_t out = 0;

        for (size_t i = 0; i < d->n_maps;) {
                size_t e = i;
                uint64_t want = 0, got = 0;
                int r = -1;

                if (!d->maps[i].doomed) {
                        d->maps[out++] = d->maps[i++];
                        continue;
                }
                while (e < d->n_maps && d->maps[e].doomed)
                        want += d->maps[e++].size;
                if (span_ok && e - i > 1) {
                        const struct vfiod_mapping *last = &d->maps[e - 1];

                        r = dom_unmap(d, d->maps[i].iova, last->iova + last->size - d->maps[i].iova,
                                      &got);
                        if (r == 0 && got != want)
                                log_warning("domain %" PRIu64 ": unmapping iova 0x%" PRIx64
                                            "..0x%" PRIx64 " removed %" PRIu64
                                            " bytes, not %" PRIu64,
                                            d->id, d->maps[i].iova, last->iova + (last->size - 1),
                                            got, want);
                }
                for (; i < e; i++)
                        mapping_forget(d, &d->maps[i], r < 0);
        }
        d->n_maps = out;
}

void vfiod_domain_free(struct vfiod_domain *domain)
{
        if (!domain)
                return;
        while (domain->n_maps > 0)
                mapping_drop(domain, domain->n_maps - 1, domain->model_set);
        vfiod_domain_drop_idle_views(domain);
        free(domain->maps);
        free(domain->iova_ranges);
        list_remove(&domain->link);
        vfiod_usage_count(domain->usage, -1, 0, 0);
        safe_close(domain->container_fd);
        /* The IOAS and what is still mapped in it go with the context's last fd. */
        safe_close(domain->iommufd);
        free(domain);
}

static void read_iommu_info(struct vfiod_domain *d);

int vfiod_domain_attach(struct vfiod_domain *d, int group_fd, struct vfiod_error *err)
{
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
        read_iommu_info(d);
        return 0;
}

/* The IOMMU's page size and valid IOVA ranges, once the model is set. */
static void read_iommu_info(struct vfiod_domain *d)
{
        struct kvfio_iommu_info *info = NULL;

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
}

/* The IOAS's valid IOVA ranges and alignment (as read_iommu_info() for a container). */
static void ioas_read_info(struct vfiod_domain *d)
{
        struct kvfio_ioas_info *info = NULL;

        if (kvfio_ioas_get_info(d->iommufd, d->ioas_id, &info) < 0)
                return;
        free(d->iova_ranges);
        /* Move the array out of the info. */
        d->iova_ranges = info->iova_ranges;
        d->n_iova_ranges = info->n_iova_ranges;
        info->iova_ranges = NULL;
        info->n_iova_ranges = 0;
        d->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
        if (info->iova_alignment > d->page_size)
                d->page_size = info->iova_alignment;
        kvfio_ioas_info_free(info);
}

int vfiod_domain_attach_cdev(struct vfiod_domain *d, int device_fd, struct vfiod_error *err)
{
        int r;

        r = kvfio_device_bind_iommufd(device_fd, d->iommufd, NULL);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot bind the device to domain %" PRIu64 ": %s",
                                       d->id, strerror(-r));
        if (!d->ioas_id) {
                r = kvfio_ioas_alloc(d->iommufd, &d->ioas_id);
                if (r < 0)
                        return vfiod_error_set(err, -r,
                                               "cannot allocate an IOAS in domain %" PRIu64 ": %s",
                                               d->id, strerror(-r));
        }
        r = kvfio_device_attach_ioas(device_fd, d->ioas_id, NULL);
        if (r < 0)
                return vfiod_error_set(
                    err, -r, "cannot attach the device to IOAS %u of domain %" PRIu64 ": %s",
                    d->ioas_id, d->id, strerror(-r));
        /* Every device narrows what the IOAS allows: read it again. */
        ioas_read_info(d);
        d->model_set = true;
        return 0;
}

void vfiod_domain_detached_last(struct vfiod_domain *d)
{
        /*
         * The kernel dropped a container's mappings with its last group: only
         * munmap ours. An IOAS keeps its mappings: unmap them.
         */
        while (d->n_maps > 0)
                mapping_drop(d, d->n_maps - 1, dom_iommufd(d));
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

/* What MapDma needs of a memfd, read once per distinct fd of a request. */
struct memfd_meta {
        int fd;
        dev_t dev;
        ino_t ino;
        uint64_t size;
        uint64_t data_lo, data_hi; /* a span found to have no hole (check_no_holes()) */
};

/*
 * Checks the memfd of range m (sealed against shrinking, a regular file)
 * unless an earlier range of the request named the same fd; *ret points at
 * its entry in metas[0 .. *n_metas).
 */
static int memfd_meta(const struct vfiod_map_range *m, struct memfd_meta *metas, size_t *n_metas,
                      const struct memfd_meta **ret, struct vfiod_error *err)
{
        struct stat st;
        int seals;

        for (size_t k = 0; k < *n_metas; k++)
                if (metas[k].fd == m->fd) {
                        *ret = &metas[k];
                        return 0;
                }
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
        metas[*n_metas] = (struct memfd_meta){
            .fd = m->fd, .dev = st.st_dev, .ino = st.st_ino, .size = (uint64_t)st.st_size};
        *ret = &metas[(*n_metas)++];
        return 0;
}

/* The first mapping (index into d->maps, sorted by iova) that ends at or after iova. */
static size_t first_map_from(const struct vfiod_domain *d, uint64_t iova)
{
        size_t lo = 0, hi = d->n_maps;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (d->maps[mid].iova + (d->maps[mid].size - 1) < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* A range of a request by memfd, protection and file offset: runs that touch share a view. */
struct span {
        const struct memfd_meta *meta;
        bool writable;
        uint64_t lo, hi;
        size_t i; /* the range */
};

static int cmp_span(const void *a, const void *b)
{
        const struct span *x = a, *y = b;

        if (x->meta != y->meta)
                return (uintptr_t)x->meta < (uintptr_t)y->meta ? -1 : 1;
        if (x->writable != y->writable)
                return x->writable ? 1 : -1;
        return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The ranges as spans sorted by memfd, protection and file offset (NULL: out of memory). */
static struct span *spans_sorted(const struct vfiod_map_range *ranges,
                                 const struct memfd_meta *const *meta_of, size_t n)
{
        struct span *spans = malloc0_array(n, sizeof(*spans));

        if (!spans)
                return NULL;
        for (size_t i = 0; i < n; i++)
                spans[i] = (struct span){.meta = meta_of[i],
                                         .writable = ranges[i].writable,
                                         .lo = ranges[i].offset,
                                         .hi = ranges[i].offset + ranges[i].size,
                                         .i = i};
        qsort(spans, n, sizeof(*spans), cmp_span);
        return spans;
}

/*
 * The run that starts at spans[i] (sorted): the spans after it of the same
 * memfd and protection that start at or before the end so far. Returns its
 * end j ([i, j)); *ret_hi is the end of its file span.
 */
static size_t run_end(const struct span *spans, size_t n, size_t i, uint64_t *ret_hi)
{
        uint64_t hi = spans[i].hi;
        size_t j;

        for (j = i + 1; j < n && spans[j].meta == spans[i].meta &&
                        spans[j].writable == spans[i].writable && spans[j].lo <= hi;
             j++)
                hi = spans[j].hi > hi ? spans[j].hi : hi;
        *ret_hi = hi;
        return j;
}

/*
 * True when every page of [off, off + size) of the memfd is resident in a
 * view the domain has already (mincore() looks the pages up in the file,
 * faulting nothing): a page in the file is no hole. False when unsure (a
 * page swapped out looks like a hole here: SEEK_HOLE decides).
 */
static bool view_resident(const struct vfiod_domain *d, const struct memfd_meta *meta, uint64_t off,
                          uint64_t size)
{
        const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        struct vfiod_memfd_view *v;
        unsigned char vec[256];

        list_for_each_safe (v, it, &d->views, struct vfiod_memfd_view, link) {
                if (v->dev != meta->dev || v->ino != meta->ino || off < v->offset ||
                    off + size > v->offset + v->size)
                        continue;
                for (uint64_t done = 0; done < size;) {
                        uint64_t len =
                            size - done < sizeof(vec) * page ? size - done : sizeof(vec) * page;

                        if (mincore(v->addr + (off - v->offset) + done, len, vec) < 0)
                                return false;
                        for (size_t k = 0; k < len / page; k++)
                                if (!(vec[k] & 1))
                                        return false;
                        done += len;
                }
                return true;
        }
        return false;
}

/*
 * The pages of a range must be the client's already: a hole (a page never
 * written, SEEK_HOLE) would be filled by the daemon's own fault, and a page
 * is charged to the memory cgroup of the process that faults it in.
 * SEEK_HOLE walks the file's pages from the offset to the first hole (to the
 * end of a file that has none), so the ranges are checked in file order
 * (spans, sorted) and a call covers every range up to the hole it found
 * (meta->data_lo .. data_hi): one walk per memfd, not one per range. A run
 * of touching ranges ending at run_hi whose pages are all resident in a view
 * needs none. The fd shares its file offset with the client's: it is put
 * back.
 */
static int check_no_hole(const struct vfiod_domain *d, const struct vfiod_map_range *m,
                         uint64_t run_hi, struct memfd_meta *meta, size_t i,
                         struct vfiod_error *err)
{
        off_t pos, hole;
        int saved;

        if (meta->data_lo <= m->offset && m->offset + m->size <= meta->data_hi)
                return 0;
        if (view_resident(d, meta, m->offset, run_hi - m->offset)) {
                meta->data_lo = m->offset;
                meta->data_hi = run_hi;
                return 0;
        }
        pos = lseek(m->fd, 0, SEEK_CUR);
        hole = lseek(m->fd, (off_t)m->offset, SEEK_HOLE);
        saved = errno;
        if (pos >= 0)
                (void)lseek(m->fd, pos, SEEK_SET);
        if (hole < 0)
                return vfiod_error_set(err, EINVAL, "range %zu: memfd %u: SEEK_HOLE: %s", i,
                                       m->fd_index, strerror(saved));
        if ((uint64_t)hole < m->offset + m->size)
                return vfiod_error_set(err, EFAULT,
                                       "range %zu: memfd %u has a hole at offset 0x%" PRIx64
                                       " (a page never written): write or fault in every page "
                                       "of a range before mapping it",
                                       i, m->fd_index, (uint64_t)hole);
        meta->data_lo = m->offset;
        meta->data_hi = (uint64_t)hole;
        return 0;
}

/* check_no_hole() of every range, in file order; metas[] are the request's memfds. */
static int check_no_holes(const struct vfiod_domain *d, const struct vfiod_map_range *ranges,
                          size_t n, struct memfd_meta *metas,
                          const struct memfd_meta *const *meta_of, struct vfiod_error *err)
{
        _cleanup_free_ struct span *spans = spans_sorted(ranges, meta_of, n);

        if (!spans)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t k = 0, j = 0; k < n; k++) {
                size_t i = spans[k].i;
                uint64_t hi = spans[k].hi; /* the run's end, for its first range */
                int r;

                if (k == j)
                        j = run_end(spans, n, k, &hi);
                r = check_no_hole(d, &ranges[i], hi, &metas[meta_of[i] - metas], i, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_range(const struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t i,
                       const struct memfd_meta *meta, struct vfiod_error *err)
{
        const struct vfiod_map_range *m = &ranges[i];
        uint64_t mask = d->page_size - 1;
        size_t j;

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
        /* d->maps is sorted and disjoint: only the first one ending at or after iova can overlap.
         */
        j = first_map_from(d, m->iova);
        if (j < d->n_maps && overlaps(m->iova, m->size, d->maps[j].iova, d->maps[j].size))
                return vfiod_error_set(err, EINVAL,
                                       "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                       " overlaps the mapping at 0x%" PRIx64 "+0x%" PRIx64,
                                       i, m->iova, m->size, d->maps[j].iova, d->maps[j].size);
        if ((uint64_t)meta->size < m->offset + m->size)
                return vfiod_error_set(err, EINVAL,
                                       "memfd %u is too small: %" PRIu64
                                       " bytes, range needs offset 0x%" PRIx64 " + size 0x%" PRIx64,
                                       m->fd_index, meta->size, m->offset, m->size);
        return 0;
}

static int cmp_range_iova(const void *a, const void *b)
{
        const struct vfiod_map_range *x = *(const struct vfiod_map_range *const *)a;
        const struct vfiod_map_range *y = *(const struct vfiod_map_range *const *)b;

        return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* No two ranges of the batch overlap: sorted by iova, only neighbours can. */
static int check_batch_disjoint(const struct vfiod_map_range *ranges, size_t n,
                                struct vfiod_error *err)
{
        _cleanup_free_ const struct vfiod_map_range **sorted = malloc0_array(n, sizeof(*sorted));

        if (!sorted)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
                sorted[i] = &ranges[i];
        qsort(sorted, n, sizeof(*sorted), cmp_range_iova);
        for (size_t i = 1; i < n; i++)
                if (overlaps(sorted[i]->iova, sorted[i]->size, sorted[i - 1]->iova,
                             sorted[i - 1]->size)) {
                        size_t a = (size_t)(sorted[i] - ranges),
                               b = (size_t)(sorted[i - 1] - ranges);

                        return vfiod_error_set(err, EINVAL, "range %zu overlaps range %zu",
                                               a > b ? a : b, a > b ? b : a);
                }
        return 0;
}

/*
 * Faults the ranges in before they are pinned: a read fault maps a whole
 * neighbourhood of pages at once (fault-around), the pin's write faults one
 * page each. Consecutive ranges that are adjacent in the same view are done
 * in one call; runs shorter than POPULATE_MIN are left to the pin (a call
 * would cost more than it saves). Never beyond the ranges (which have no
 * holes, see check_no_hole()). Best effort (before Linux 5.14: EINVAL). A view
 * remembers the span it populated, so a view kept idle and reused is not
 * walked again.
 */
#define POPULATE_MIN (64 * 1024)

static void populate(const struct vfiod_map_range *ranges, struct vfiod_memfd_view *const *view_of,
                     size_t n)
{
#ifdef MADV_POPULATE_READ
        for (size_t i = 0, j; i < n; i = j) {
                struct vfiod_memfd_view *v = view_of[i];
                uint64_t off = ranges[i].offset, end = off + ranges[i].size;

                for (j = i + 1; j < n && view_of[j] == v && ranges[j].offset == end; j++)
                        end += ranges[j].size;
                if (end - off < POPULATE_MIN)
                        continue;
                /* A reused view: done already (pages reclaimed since are the pin's to fault). */
                if (v->pop_lo <= off && end <= v->pop_hi)
                        continue;
                (void)madvise(v->addr + (off - v->offset), end - off, MADV_POPULATE_READ);
                if (off <= v->pop_hi && v->pop_lo <= end && v->pop_hi > v->pop_lo) {
                        v->pop_lo = off < v->pop_lo ? off : v->pop_lo;
                        v->pop_hi = end > v->pop_hi ? end : v->pop_hi;
                } else {
                        v->pop_lo = off;
                        v->pop_hi = end;
                }
        }
#endif
}

/*
 * A view of the same memfd and protection that covers [lo, hi), live or
 * idle, with a reference taken; NULL when there is none.
 */
static struct vfiod_memfd_view *view_find(struct vfiod_domain *d, const struct memfd_meta *meta,
                                          bool writable, uint64_t lo, uint64_t hi)
{
        struct vfiod_memfd_view *v;

        list_for_each_safe (v, it, &d->views, struct vfiod_memfd_view, link) {
                if (v->dev == meta->dev && v->ino == meta->ino && v->writable == writable &&
                    v->offset <= lo && hi <= v->offset + v->size) {
                        if (v->refs++ == 0) {
                                d->n_idle_views--;
                                d->idle_bytes -= v->size;
                        }
                        return v;
                }
        }
        return NULL;
}

/*
 * A new view of [lo, hi) of range m's memfd (a duplicate of the fd and an
 * mmap), with one reference. NULL on failure (err set).
 */
static struct vfiod_memfd_view *view_new(struct vfiod_domain *d, const struct vfiod_map_range *m,
                                         const struct memfd_meta *meta, uint64_t lo, uint64_t hi,
                                         size_t index, struct vfiod_error *err)
{
        struct vfiod_memfd_view *v;
        int prot = PROT_READ | (m->writable ? PROT_WRITE : 0), fd;
        void *addr;

        v = calloc(1, sizeof(*v));
        if (!v) {
                vfiod_error_set(err, ENOMEM, "out of memory");
                return NULL;
        }
        /* The daemon keeps the memfd while it is mapped: a restart maps it again. */
        fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                vfiod_error_set(err, errno == EMFILE ? ENOSPC : ENOMEM,
                                "range %zu: cannot keep memfd %u: %m", index, m->fd_index);
                free(v);
                return NULL;
        }
        addr = mmap(NULL, hi - lo, prot, MAP_SHARED, m->fd, (off_t)lo);
        if (addr == MAP_FAILED) {
                vfiod_error_set(err, errno == EACCES || errno == EPERM ? EACCES : EINVAL,
                                "range %zu: cannot mmap memfd %u: %m", index, m->fd_index);
                safe_close(fd);
                free(v);
                return NULL;
        }
        *v = (struct vfiod_memfd_view){.dev = meta->dev,
                                       .ino = meta->ino,
                                       .writable = m->writable,
                                       .offset = lo,
                                       .size = hi - lo,
                                       .addr = addr,
                                       .refs = 1,
                                       .fd = fd,
                                       .id = ++d->next_view_id};
        list_add_tail(&d->views, &v->link);
        d->usage->view_bytes += v->size;
        d->usage->fds++;
        return v;
}

/*
 * The views the request's runs already lie in: view_of[] of their ranges
 * (one reference per distinct view, on the run's first range). What the
 * other runs need, new views, is added to *new_bytes and *new_fds.
 */
static void views_find(struct vfiod_domain *d, const struct span *spans, size_t n,
                       struct vfiod_memfd_view **view_of, uint64_t *new_bytes, uint32_t *new_fds)
{
        size_t j;

        for (size_t i = 0; i < n; i = j) {
                uint64_t hi;
                struct vfiod_memfd_view *v;

                j = run_end(spans, n, i, &hi);
                v = view_find(d, spans[i].meta, spans[i].writable, spans[i].lo, hi);
                if (!v) {
                        *new_bytes += hi - spans[i].lo;
                        (*new_fds)++;
                        continue;
                }
                /* The request holds one reference per view, whatever the runs in it. */
                for (size_t k = 0; k < n; k++)
                        if (view_of[k] == v) {
                                v->refs--;
                                break;
                        }
                /* One reference for the request, on the run's first range. */
                view_of[spans[i].i] = v;
                for (size_t k = i + 1; k < j; k++)
                        view_of[spans[k].i] = v;
        }
}

static void usage_add(struct vfiod_usage *u, int domains, int64_t mappings, int64_t pinned_bytes)
{
        /* Unsigned arithmetic: a negative change wraps back down. */
        u->domains += (uint32_t)domains;
        u->mappings += (uint32_t)mappings;
        u->pinned_bytes += (uint64_t)pinned_bytes;
}

void vfiod_usage_count(struct vfiod_usage *u, int domains, int64_t mappings, int64_t pinned_bytes)
{
        if (!u)
                return;
        usage_add(u, domains, mappings, pinned_bytes);
        if (u->total)
                usage_add(u->total, domains, mappings, pinned_bytes);
}

const char *vfiod_fd_budget_why(const struct vfiod_fd_budget *b, char *buf, size_t size)
{
        if (b->errnum == ENOSPC)
                snprintf(buf, size,
                         "the daemon keeps %" PRIu32 " fds for %s: %s=%" PRIu32 " reached", b->used,
                         b->whom, b->key, b->limit);
        else
                snprintf(buf, size,
                         "the daemon has %" PRIu32 " fds open and keeps %" PRIu32
                         " of its limit free; try again later",
                         b->used, b->limit);
        return buf;
}

/*
 * Room for the new views: an fd each within fds (idle views give theirs up
 * first), and their bytes with every view of the owner (and of its uid)
 * within the pinned-bytes limits (the least recently used idle views make
 * room first).
 */
static int views_room(struct vfiod_domain *d, uint64_t new_bytes, uint32_t new_fds,
                      const struct vfiod_config_limits *limits, const struct vfiod_usage *user,
                      const struct vfiod_fd_budget *fds, struct vfiod_error *err)
{
        uint64_t mine, theirs;

        if (new_fds > fds->left) {
                uint32_t over = new_fds - fds->left;

                if (over > d->n_idle_views) {
                        char why[200];

                        return vfiod_error_set(err, fds->errnum, "%u new memfd view(s): %s",
                                               new_fds, vfiod_fd_budget_why(fds, why, sizeof(why)));
                }
                idle_trim(d, d->n_idle_views - over, d->idle_bytes);
        }
        mine = d->usage->view_bytes;
        theirs = user->view_bytes - mine;
        if (new_bytes > 0) {
                uint64_t over = 0, want = mine + new_bytes, all = theirs + want;

                if (want > limits->max_pinned_bytes_per_client)
                        over = want - limits->max_pinned_bytes_per_client;
                if (all > limits->max_pinned_bytes_per_user &&
                    all - limits->max_pinned_bytes_per_user > over)
                        over = all - limits->max_pinned_bytes_per_user;
                if (over > 0)
                        idle_trim(d, d->n_idle_views,
                                  over < d->idle_bytes ? d->idle_bytes - over : 0);
                mine = d->usage->view_bytes;
        }
        if (mine + new_bytes < new_bytes || mine + new_bytes > limits->max_pinned_bytes_per_client)
                return vfiod_error_set(err, EDQUOT,
                                       "%" PRIu64 " bytes of memfds mapped by the daemon for you "
                                       "+ %" PRIu64 ": MaxPinnedBytesPerClient=%" PRIu64
                                       " reached (a memfd stays mapped while a mapping lies in it)",
                                       mine, new_bytes, limits->max_pinned_bytes_per_client);
        if (theirs + mine + new_bytes < new_bytes ||
            theirs + mine + new_bytes > limits->max_pinned_bytes_per_user)
                return vfiod_error_set(err, EDQUOT,
                                       "%" PRIu64 " bytes of memfds mapped by the daemon for this "
                                       "user + %" PRIu64 ": MaxPinnedBytesPerUser=%" PRIu64
                                       " reached (a memfd stays mapped while a mapping lies in it)",
                                       theirs + mine, new_bytes, limits->max_pinned_bytes_per_user);
        return 0;
}

/*
 * Gives every range of the request its view (view_of[], one reference per
 * distinct view): the ranges of one memfd and protection whose file spans
 * overlap or touch form a run, and a run lies in a view that covers it or in
 * a new view of exactly the run. A view never spans a gap between ranges, so
 * the daemon maps only what is mapped for DMA. The bytes of the new views
 * count against the pinned-bytes limits with every view the owner has (a view
 * stays mapped while any mapping lies in it); idle views go first when that
 * makes room. On failure the references taken are in view_of[] (err set).
 */
static int views_get(struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t n,
                     const struct memfd_meta *const *meta_of, struct vfiod_memfd_view **view_of,
                     const struct vfiod_config_limits *limits, const struct vfiod_usage *user,
                     const struct vfiod_fd_budget *fds, struct vfiod_error *err)
{
        _cleanup_free_ struct span *spans = spans_sorted(ranges, meta_of, n);
        uint64_t new_bytes = 0;
        uint32_t new_fds = 0;
        size_t j;
        int r;

        if (!spans)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        views_find(d, spans, n, view_of, &new_bytes, &new_fds);
        r = views_room(d, new_bytes, new_fds, limits, user, fds, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i = j) {
                uint64_t hi;
                struct vfiod_memfd_view *v;

                j = run_end(spans, n, i, &hi);
                if (view_of[spans[i].i])
                        continue;
                v = view_new(d, &ranges[spans[i].i], spans[i].meta, spans[i].lo, hi, spans[i].i,
                             err);
                if (!v)
                        return -err->errnum;
                for (size_t k = i; k < j; k++)
                        view_of[spans[k].i] = v;
        }
        return 0;
}

static int cmp_map(const void *a, const void *b)
{
        const struct vfiod_mapping *x = a, *y = b;

        return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* A MapDma goes only to a brokered domain with a lease. */
static int map_check_domain(const struct vfiod_domain *d, size_t n, struct vfiod_error *err)
{
        if (n == 0)
                return vfiod_error_set(err, EINVAL, "no ranges");
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
        return 0;
}

/* Every range on its own (meta_of[] its memfd), then the batch; *ret_total: their bytes. */
static int map_check_ranges(const struct vfiod_domain *d, const struct vfiod_map_range *ranges,
                            size_t n, struct memfd_meta *metas, const struct memfd_meta **meta_of,
                            uint64_t *ret_total, struct vfiod_error *err)
{
        uint64_t total = 0;
        size_t n_metas = 0;
        int r;

        for (size_t i = 0; i < n; i++) {
                r = memfd_meta(&ranges[i], metas, &n_metas, &meta_of[i], err);
                if (r < 0)
                        return r;
                r = check_range(d, ranges, i, meta_of[i], err);
                if (r < 0)
                        return r;
                total += ranges[i].size;
                if (total < ranges[i].size)
                        return vfiod_error_set(err, EINVAL, "total size overflows");
        }
        r = check_no_holes(d, ranges, n, metas, meta_of, err);
        if (r < 0)
                return r;
        r = check_batch_disjoint(ranges, n, err);
        if (r < 0)
                return r;
        *ret_total = total;
        return 0;
}

/* The daemon's limits on what the owner (and its uid) maps: n more mappings, total more bytes. */
static int map_check_limits(const struct vfiod_domain *d, size_t n, uint64_t total,
                            const struct vfiod_config_limits *limits,
                            const struct vfiod_usage *user, struct vfiod_error *err)
{
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
        /* More connections must not mean more memory pinned by the daemon. */
        if (user->pinned_bytes + total < total ||
            user->pinned_bytes + total > limits->max_pinned_bytes_per_user)
                return vfiod_error_set(
                    err, EDQUOT,
                    "%" PRIu64 " bytes mapped by this user over all its "
                    "connections + %" PRIu64 ": MaxPinnedBytesPerUser=%" PRIu64 " reached",
                    user->pinned_bytes, total, limits->max_pinned_bytes_per_user);
        return 0;
}

/*
 * Maps the ranges in order into d->maps after its n_maps entries, each in its
 * view. *ret_done: how many are mapped (all, or those before the one that
 * failed: the caller undoes them).
 */
static int map_in_order(struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t n,
                        struct vfiod_memfd_view *const *view_of, size_t *ret_done,
                        struct vfiod_error *err)
{
        size_t done;
        int r = 0;

        for (done = 0; done < n; done++) {
                const struct vfiod_map_range *m = &ranges[done];
                struct vfiod_memfd_view *v = view_of[done];
                uint32_t flags =
                    (m->readable ? KVFIO_DMA_READ : 0) | (m->writable ? KVFIO_DMA_WRITE : 0);
                uint8_t *addr = v->addr + (m->offset - v->offset);

                r = dom_map(d, addr, m->iova, m->size, flags);
                if (r < 0) {
                        r = vfiod_error_set(err, -r,
                                            "range %zu: mapping iova 0x%" PRIx64 "+0x%" PRIx64
                                            " failed: %s",
                                            done, m->iova, m->size, strerror(-r));
                        break;
                }
                v->refs++;
                d->maps[d->n_maps + done] = (struct vfiod_mapping){
                    .iova = m->iova, .size = m->size, .addr = addr, .view = v};
        }
        *ret_done = done;
        return r;
}

/* Unmaps the first done mappings of a MapDma that failed. */
static void map_undo(struct vfiod_domain *d, size_t done)
{
        while (done-- > 0) {
                struct vfiod_mapping *m = &d->maps[d->n_maps + done];
                int u = dom_unmap(d, m->iova, m->size, NULL);

                if (u < 0)
                        log_warning("domain %" PRIu64 ": undoing iova 0x%" PRIx64 " failed: %s",
                                    d->id, m->iova, strerror(-u));
                view_put(d, m->view);
        }
}

/* Drops the request's references, once per view. */
static void views_put_request(struct vfiod_domain *d, struct vfiod_memfd_view **view_of, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                struct vfiod_memfd_view *v = view_of[i];

                if (!v)
                        continue;
                for (size_t j = i; j < n; j++)
                        if (view_of[j] == v)
                                view_of[j] = NULL;
                view_put(d, v);
        }
}

int vfiod_domain_map(struct vfiod_domain *d, const struct vfiod_map_range *ranges, size_t n,
                     const struct vfiod_config_limits *limits, const struct vfiod_usage *user,
                     const struct vfiod_fd_budget *fds, uint64_t *ret_bytes,
                     struct vfiod_error *err)
{
        _cleanup_free_ struct memfd_meta *metas = NULL;
        _cleanup_free_ const struct memfd_meta **meta_of = NULL;
        _cleanup_free_ struct vfiod_memfd_view **view_of = NULL;
        struct vfiod_mapping *maps;
        uint64_t total = 0;
        size_t done = 0;
        int r;

        r = map_check_domain(d, n, err);
        if (r < 0)
                return r;
        d->idle_bytes_max = limits->max_pinned_bytes_per_client;
        metas = malloc0_array(n, sizeof(*metas));
        meta_of = malloc0_array(n, sizeof(*meta_of));
        view_of = malloc0_array(n, sizeof(*view_of));
        if (!metas || !meta_of || !view_of)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        r = map_check_ranges(d, ranges, n, metas, meta_of, &total, err);
        if (r < 0)
                return r;
        r = map_check_limits(d, n, total, limits, user, err);
        if (r < 0)
                return r;

        maps = realloc(d->maps, (d->n_maps + n) * sizeof(*maps));
        if (!maps)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        d->maps = maps;
        r = views_get(d, ranges, n, meta_of, view_of, limits, user, fds, err);
        if (r == 0) {
                populate(ranges, view_of, n);
                r = map_in_order(d, ranges, n, view_of, &done, err);
        }
        if (r < 0)
                map_undo(d, done);
        else {
                d->n_maps += n;
                d->pinned_bytes += total;
                vfiod_usage_count(d->usage, 0, (int64_t)n, (int64_t)total);
                qsort(d->maps, d->n_maps, sizeof(*d->maps), cmp_map);
                *ret_bytes = total;
        }
        views_put_request(d, view_of, n);
        return r;
}

int vfiod_domain_unmap(struct vfiod_domain *d, const struct vfiod_iova *ranges, size_t n,
                       uint32_t *ret_unmapped, uint64_t *ret_bytes, struct vfiod_error *err)
{
        uint32_t count = 0;
        uint64_t bytes = 0;

        if (n == 0)
                return vfiod_error_set(err, EINVAL, "no ranges");
        /* d->maps is sorted and disjoint: the mappings a range touches are consecutive. */
        for (size_t i = 0; i < n; i++) {
                const struct vfiod_iova *u = &ranges[i];
                size_t j;

                if (u->size == 0 || u->iova + (u->size - 1) < u->iova)
                        return vfiod_error_set(err, EINVAL,
                                               "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                               " is empty or overflows",
                                               i, u->iova, u->size);
                j = first_map_from(d, u->iova);
                if (j == d->n_maps || !overlaps(u->iova, u->size, d->maps[j].iova, d->maps[j].size))
                        return vfiod_error_set(err, ENOENT,
                                               "range %zu: nothing is mapped at iova 0x%" PRIx64
                                               "+0x%" PRIx64,
                                               i, u->iova, u->size);
                for (;
                     j < d->n_maps && overlaps(u->iova, u->size, d->maps[j].iova, d->maps[j].size);
                     j++) {
                        const struct vfiod_mapping *m = &d->maps[j];

                        if (m->iova < u->iova || m->iova + (m->size - 1) > u->iova + (u->size - 1))
                                return vfiod_error_set(err, EINVAL,
                                                       "range %zu: iova 0x%" PRIx64 "+0x%" PRIx64
                                                       " would split the mapping at 0x%" PRIx64
                                                       "+0x%" PRIx64,
                                                       i, u->iova, u->size, m->iova, m->size);
                }
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = first_map_from(d, ranges[i].iova);
                     k < d->n_maps &&
                     overlaps(ranges[i].iova, ranges[i].size, d->maps[k].iova, d->maps[k].size);
                     k++)
                        if (!d->maps[k].doomed) {
                                d->maps[k].doomed = true;
                                count++;
                                bytes += d->maps[k].size;
                        }
        drop_doomed(d);
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

                        r = dom_unmap(d, m->iova, m->size, NULL);
                        if (r < 0)
                                failures++;
                        log_info("domain %" PRIu64 ": unmapped iova 0x%" PRIx64 "+0x%" PRIx64
                                 "%s%s",
                                 d->id, m->iova, m->size, r < 0 ? ": failed: " : "",
                                 r < 0 ? strerror(-r) : "");
                        mapping_drop(d, d->n_maps - 1, false);
                }
                vfiod_domain_drop_idle_views(d);
        }
        if (d->mode == VFIOD__MODE__MODE_DIRECT && dom_iommufd(d)) {
                /*
                 * The client's IOAS are its own objects in the domain's context: its
                 * devices are detached from them at release, and they go with the
                 * context's last fd.
                 */
                return failures;
        }
        if (d->mode == VFIOD__MODE__MODE_DIRECT && d->model_set) {
                uint64_t bytes = 0;

                if (!d->unmap_all) {
                        log_info("domain %" PRIu64 ": no VFIO_UNMAP_ALL; the client's mappings go "
                                 "when the group leaves the container",
                                 d->id);
                        return failures;
                }
                r = dom_unmap_all(d, &bytes);
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

/* ---- restart ------------------------------------------------------------------------------ */

int vfiod_domain_adopt_take(int container_fd, uint64_t id, int model, bool model_set,
                            struct vfiod_usage *usage, struct vfiod_domain **ret)
{
        struct vfiod_domain *d = domain_alloc(id, usage, VFIOD__INTERFACE__INTERFACE_LEGACY);
        int r;

        if (!d) {
                safe_close(container_fd);
                return -ENOMEM;
        }
        /* From here on the container fd is the domain's. */
        d->container_fd = container_fd;
        d->model = model;
        r = kvfio_container_check_extension(container_fd, VFIO_UNMAP_ALL);
        d->unmap_all = r > 0;
        d->model_set = model_set;
        if (model_set)
                read_iommu_info(d);
        vfiod_usage_count(usage, 1, 0, 0);
        *ret = d;
        return 0;
}

int vfiod_domain_adopt_view_take(struct vfiod_domain *d, int memfd, uint64_t view_id, bool writable,
                                 uint64_t offset, uint64_t size, struct vfiod_memfd_view **ret)
{
        struct vfiod_memfd_view *v;
        struct stat st;
        void *addr;

        if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset + size ||
            size == 0 || size > SIZE_MAX || offset > (uint64_t)INT64_MAX) {
                safe_close(memfd);
                return -EINVAL;
        }
        v = calloc(1, sizeof(*v));
        if (!v) {
                safe_close(memfd);
                return -ENOMEM;
        }
        addr = mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, memfd,
                    (off_t)offset);
        if (addr == MAP_FAILED) {
                int r = -errno;
                safe_close(memfd);
                free(v);
                return r;
        }
        /* The memfd is the view's from here on. */
        *v = (struct vfiod_memfd_view){.dev = st.st_dev,
                                       .ino = st.st_ino,
                                       .writable = writable,
                                       .offset = offset,
                                       .size = size,
                                       .addr = addr,
                                       .fd = memfd,
                                       .id = view_id};
        d->usage->view_bytes += size;
        d->usage->fds++;
        if (view_id > d->next_view_id)
                d->next_view_id = view_id;
        list_add_tail(&d->views, &v->link);
        *ret = v;
        return 0;
}

int vfiod_domain_adopt_mapping(struct vfiod_domain *d, struct vfiod_memfd_view *v, uint64_t iova,
                               uint64_t size, uint64_t delta)
{
        struct vfiod_mapping *maps;
        void *addr;
        int r;

        if (delta > v->size || size > v->size - delta)
                return -EINVAL;
        maps = realloc(d->maps, (d->n_maps + 1) * sizeof(*maps));
        if (!maps)
                return -ENOMEM;
        d->maps = maps;
        addr = v->addr + delta;
        /*
         * The IOMMU still maps the pinned pages; only the process address the kernel
         * keeps is stale (the old process is gone). Invalidate it (a planned stop did
         * already: EINVAL then) and give the new one.
         */
        if (kvfio_container_check_extension(d->container_fd, VFIO_UPDATE_VADDR) > 0) {
                (void)kvfio_dma_invalidate_vaddr(d->container_fd, iova, size);
                r = kvfio_dma_set_vaddr(d->container_fd, addr, iova, size);
                if (r < 0)
                        return r;
        }
        v->refs++;
        d->maps[d->n_maps++] =
            (struct vfiod_mapping){.iova = iova, .size = size, .addr = addr, .view = v};
        qsort(d->maps, d->n_maps, sizeof(*d->maps), cmp_map);
        d->pinned_bytes += size;
        vfiod_usage_count(d->usage, 0, 1, (int64_t)size);
        return 0;
}

void vfiod_domain_invalidate_vaddrs(struct vfiod_domain *d)
{
        if (d->n_maps == 0 ||
            kvfio_container_check_extension(d->container_fd, VFIO_UPDATE_VADDR) <= 0)
                return;
        for (size_t i = 0; i < d->n_maps; i++) {
                int r =
                    kvfio_dma_invalidate_vaddr(d->container_fd, d->maps[i].iova, d->maps[i].size);
                if (r < 0)
                        log_warning("domain %" PRIu64
                                    ": invalidating the address of iova 0x%" PRIx64 " failed: %s",
                                    d->id, d->maps[i].iova, strerror(-r));
        }
}

/* ---- saved in the fd store and loaded again after a restart (daemon/state.h) ---- */

void vfiod_domain_save(const struct vfiod_domain *d, uint64_t owner, struct vfiod_save *sv)
{
        struct vfiod_memfd_view *v;

        /* A container's line is as it always was; an iommufd domain's adds its interface, IOAS. */
        if (dom_iommufd(d)) {
                vfiod_save_fd(sv, d->iommufd, "iommufd-%" PRIu64, d->id);
                vfiod_save_line(sv, "domain %" PRIu64 " %" PRIu64 " %d %d %d %d %d %u", owner,
                                d->id, d->model, d->model_set ? 1 : 0, d->mode, d->implicit ? 1 : 0,
                                d->iface, d->ioas_id);
        } else {
                vfiod_save_fd(sv, d->container_fd, "container-%" PRIu64, d->id);
                vfiod_save_line(sv, "domain %" PRIu64 " %" PRIu64 " %d %d %d %d", owner, d->id,
                                d->model, d->model_set ? 1 : 0, d->mode, d->implicit ? 1 : 0);
        }
        list_for_each_safe (v, vit, &d->views, struct vfiod_memfd_view, link) {
                /* An idle view is a cache: the next vfiod maps again. */
                if (v->refs == 0)
                        continue;
                vfiod_save_fd(sv, v->fd, "memfd-%" PRIu64 "-%" PRIu64, d->id, v->id);
                vfiod_save_line(sv, "view %" PRIu64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64 " %llu",
                                d->id, v->id, v->writable ? 1 : 0, v->offset, v->size,
                                (unsigned long long)v->ino);
        }
        for (size_t i = 0; i < d->n_maps; i++) {
                const struct vfiod_mapping *m = &d->maps[i];

                vfiod_save_line(sv, "map %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                                d->id, m->iova, m->size, m->view->id,
                                (uint64_t)((uint8_t *)m->addr - m->view->addr));
        }
}

int vfiod_domain_load(struct vfiod_load *ld, const char *args, struct vfiod_usage *usage,
                      struct vfiod_domain **ret)
{
        struct vfiod_domain *d;
        uint64_t id;
        int model, model_set, mode, implicit = 0, fd, r;
        int iface = VFIOD__INTERFACE__INTERFACE_LEGACY; /* absent in an older state */
        unsigned ioas = 0;

        if (sscanf(args, "%" SCNu64 " %d %d %d %d %d %u", &id, &model, &model_set, &mode, &implicit,
                   &iface, &ioas) < 4)
                return VFIOD_LOAD_UNKNOWN;
        if (iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                fd = vfiod_load_fd(ld, "iommufd-%" PRIu64, id);
        else
                fd = vfiod_load_fd(ld, "container-%" PRIu64, id);
        if (vfiod_load_checking(ld))
                return 0;
        if (!usage) {
                safe_close(fd);
                return -EINVAL;
        }
        if (iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                /* The iommufd moves to the domain; its IOAS kept its mappings. */
                r = vfiod_domain_adopt_take(-EBADF, id, model, false, usage, &d);
                if (r < 0) {
                        safe_close(fd);
                        return r;
                }
                d->iface = iface;
                d->iommufd = fd;
                d->ioas_id = ioas;
                d->unmap_all = true;
                d->model_set = model_set != 0;
                if (d->model_set)
                        ioas_read_info(d);
        } else {
                /* The container fd moves to the domain. */
                r = vfiod_domain_adopt_take(fd, id, model, model_set != 0, usage, &d);
                if (r < 0)
                        return r;
        }
        d->mode = mode;
        d->implicit = implicit != 0; /* absent in an older state: explicit */
        *ret = d;
        return 0;
}

/* "view D V WRITABLE OFFSET SIZE INO" */
static int load_view(struct vfiod_load *ld, const char *args)
{
        struct vfiod_memfd_view *v;
        struct vfiod_domain *d;
        uint64_t did, vid, offset, size;
        unsigned long long ino;
        int writable, fd, r;

        if (sscanf(args, "%" SCNu64 " %" SCNu64 " %d %" SCNu64 " %" SCNu64 " %llu", &did, &vid,
                   &writable, &offset, &size, &ino) != 6)
                return VFIOD_LOAD_UNKNOWN;
        fd = vfiod_load_fd(ld, "memfd-%" PRIu64 "-%" PRIu64, did, vid);
        if (vfiod_load_checking(ld))
                return 0;
        d = vfiod_load_domain(ld, did);
        if (!d) {
                safe_close(fd);
                return -EINVAL;
        }
        /* The memfd moves to the view. */
        r = vfiod_domain_adopt_view_take(d, fd, vid, writable != 0, offset, size, &v);
        if (r == 0 && (unsigned long long)v->ino != ino)
                r = vfiod_load_fail(
                    ld, -EINVAL, "'memfd-%" PRIu64 "-%" PRIu64 "' is not the memfd the state names",
                    did, vid);
        return r;
}

static struct vfiod_memfd_view *view_by_id(struct vfiod_domain *d, uint64_t id)
{
        struct vfiod_memfd_view *v;

        list_for_each_safe (v, it, &d->views, struct vfiod_memfd_view, link)
                if (v->id == id)
                        return v;
        return NULL;
}

/* "map D IOVA SIZE V DELTA" */
static int load_map(struct vfiod_load *ld, const char *args)
{
        struct vfiod_memfd_view *v;
        struct vfiod_domain *d;
        uint64_t did, iova, size, vid, delta;
        int r;

        if (sscanf(args, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &did, &iova,
                   &size, &vid, &delta) != 5)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld))
                return 0;
        d = vfiod_load_domain(ld, did);
        v = d ? view_by_id(d, vid) : NULL;
        r = v ? vfiod_domain_adopt_mapping(d, v, iova, size, delta) : -EINVAL;
        if (r < 0)
                return vfiod_load_fail(
                    ld, r, "mapping iova 0x%" PRIx64 "+0x%" PRIx64 " of domain %" PRIu64 ": %s",
                    iova, size, did, strerror(-r));
        return 0;
}

const struct vfiod_load_keyword vfiod_domain_keywords[] = {
    {"view", load_view},
    {"map", load_map},
    {NULL, NULL},
};

void vfiod_domain_abandon(struct vfiod_domain *d)
{
        /* munmap and close only: the container keeps the IOMMU mappings. */
        d->model_set = false;
        vfiod_domain_free(d);
}
