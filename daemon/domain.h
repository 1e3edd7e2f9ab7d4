/* SPDX-License-Identifier: MIT */
/*
 * A domain: one IOMMU address space owned by one client, with the DMA
 * mappings the daemon made for it (BROKERED mode).
 *
 * Two backends, one model: a domain is a VFIO container (the legacy
 * interface: groups attach to it) or an iommufd context of its own with, for
 * BROKERED leases, one IOAS the daemon maps into (the iommufd interface:
 * device cdevs bind to the context and attach to the IOAS). Everything above
 * the few calls that differ (dom_map(), dom_unmap(), dom_unmap_all() and the
 * attach) is shared: views, mappings, quotas, the fd store.
 *
 * Concepts: the daemon owns the container fd for the domain's whole life.
 * Its IOMMU model is chosen at creation and set when the first group is
 * attached (VFIO needs a group first). A domain holds one mode, set by its
 * first lease. A BROKERED mapping lies in a view, the daemon's own
 * MAP_SHARED mmap of the part of a client memfd that is mapped for DMA, and a
 * view keeps a duplicate of the memfd (for the fd store) as long as it is
 * mapped. Every mapping and view is counted in the owner's struct
 * vfiod_usage, which the limits are checked against.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/limits.h"
#include "daemon/list.h"
#include "daemon/log.h"
#include "kernel/container.h"
#include "proto/vfiod.pb-c.h"

/* What one client holds, checked against struct vfiod_config_limits. */
struct vfiod_usage {
        uint32_t domains;
        uint32_t leases;
        uint32_t mappings;
        uint64_t pinned_bytes;
        uint64_t view_bytes; /* of client memfds the daemon has mmapped (its views) */
        uint32_t fds;        /* memfd duplicates the daemon keeps (one per view) */
        /* The sum of every client's domains, mappings and pinned bytes (Stats); NULL: none. */
        struct vfiod_usage *total;
};

/*
 * Adds to u's domains, mappings and pinned bytes, and to its total's. Every
 * change of these three goes through here, so that Stats reads the server's
 * sum instead of adding up every connection. NULL u is fine.
 */
void vfiod_usage_count(struct vfiod_usage *u, int domains, int64_t mappings, int64_t pinned_bytes);

/*
 * How many more fds one request may make the daemon keep (the caller sets
 * it from MaxFdsPerClient, MaxFdsPerUser and the daemon's own table), and the
 * error for a request that needs more.
 */
struct vfiod_fd_budget {
        uint32_t left;
        int errnum; /* ENOSPC (a budget of the client or its user) or EMFILE (the daemon's) */
        /*
         * The limit that sets left, for vfiod_fd_budget_why(): ENOSPC, `used`
         * fds kept for `whom` of `key`=`limit`; EMFILE, `used` fds open and
         * `limit` kept free. The text is made only for a refusal.
         */
        uint32_t used, limit;
        const char *whom, *key;
};

/* Formats why b refuses more fds into buf[size]; returns buf. */
const char *vfiod_fd_budget_why(const struct vfiod_fd_budget *b, char *buf, size_t size);

/*
 * The daemon's MAP_SHARED mmap of a span of one memfd. Every mapping that
 * lies in it shares it: the ranges of a MapDma that overlap or touch in the
 * file are mmapped once (never the gap between ranges), and a later MapDma
 * inside a span still mapped reuses it. It stays mapped, whole, while any
 * mapping lies in it, so its size (not only the ranges') counts against the
 * pinned-bytes limits (struct vfiod_usage.view_bytes). With its last mapping
 * it goes idle (see idle_trim()), then is munmapped.
 */
struct vfiod_memfd_view {
        struct list link; /* in the domain's views */
        dev_t dev;        /* the memfd's inode */
        ino_t ino;
        bool writable;         /* PROT_WRITE too */
        uint64_t offset, size; /* the span of the file mapped */
        uint8_t *addr;
        size_t refs;             /* mappings in it (and a MapDma in progress); 0: idle */
        uint64_t pop_lo, pop_hi; /* file offsets faulted in already (MADV_POPULATE_READ) */
        int fd;                  /* a duplicate of the memfd (owned), kept for the fd store */
        uint64_t id; /* unique in the domain: names it in the fd store (daemon/state.h) */
};

struct vfiod_mapping {
        uint64_t iova;
        uint64_t size;
        void *addr;                    /* inside view: the client's memfd as the daemon maps it */
        struct vfiod_memfd_view *view; /* holds one reference */
        bool doomed;                   /* marked by an unmap in progress */
};

struct vfiod_domain {
        struct list link; /* in the owner's list */
        uint64_t id;
        int iface;        /* Vfiod__Interface: LEGACY (a container) or IOMMUFD */
        int container_fd; /* LEGACY: the container (owned); else -1 */
        /*
         * IOMMUFD: the domain's own iommufd context (owned; per-process
         * RLIMIT_MODE), which DIRECT leases hand out, and the IOAS BROKERED
         * leases attach to and MapDma maps into (0 until the first one).
         */
        int iommufd;
        uint32_t ioas_id;
        int model;                            /* enum kvfio_iommu_model chosen at creation */
        bool model_set;                       /* VFIO_SET_IOMMU done (a group is attached) */
        int mode;                             /* Vfiod__Mode of its leases; 0 while it has none */
        size_t n_leases;                      /* groups attached */
        uint64_t page_size;                   /* alignment of MapDma: max(page size, IOMMU page) */
        struct kvfio_iova_range *iova_ranges; /* valid IOVA; NULL = all */
        size_t n_iova_ranges;
        bool unmap_all;             /* the container has VFIO_UNMAP_ALL */
        struct vfiod_mapping *maps; /* sorted by iova, no overlaps */
        size_t n_maps;
        struct list views; /* struct vfiod_memfd_view the mappings lie in, then idle ones */
        uint64_t next_view_id;
        size_t n_idle_views;     /* views no mapping uses, kept for the next MapDma */
        uint64_t idle_bytes;     /* their size */
        uint64_t idle_bytes_max; /* MaxPinnedBytesPerClient, as of the last MapDma */
        uint64_t pinned_bytes;
        struct vfiod_usage *usage; /* the owner's counters (not owned) */
        /* Made by an Acquire with domain 0: goes with its last lease (daemon/lease.c). */
        bool implicit;
};

/* One range of a MapDma request; fd is borrowed from the message. */
struct vfiod_map_range {
        int fd;
        uint32_t fd_index; /* for error messages */
        uint64_t offset, iova, size;
        bool readable, writable;
};

struct vfiod_iova {
        uint64_t iova, size;
};

/*
 * Opens a container at container_path and picks the IOMMU model for `wanted`
 * (KVFIO_IOMMU_AUTO or a model). Counts itself in usage->domains.
 * Errors: as kvfio_container_open() / kvfio_container_pick_iommu(), with err set.
 */
int vfiod_domain_new(const char *container_path, int wanted, uint64_t id, struct vfiod_usage *usage,
                     struct vfiod_domain **ret, struct vfiod_error *err);

/*
 * An iommufd domain: opens a context of its own at iommufd_path and sets its
 * pinned-memory accounting to per process (IOMMU_OPTION_RLIMIT_MODE; the
 * kernel allows it to CAP_SYS_RESOURCE only, before any object exists).
 * Counts itself in usage->domains. Errors: as kvfio_iommufd_open() and
 * kvfio_iommufd_set_rlimit_mode(), with err set.
 */
int vfiod_domain_new_iommufd(const char *iommufd_path, uint64_t id, struct vfiod_usage *usage,
                             struct vfiod_domain **ret, struct vfiod_error *err);

/* Unmaps what is left (daemon mappings), closes the container. NULL is fine. */
void vfiod_domain_free(struct vfiod_domain *domain);

/*
 * Attaches group_fd (borrowed) to the container; for the first group, sets the
 * IOMMU model and reads the IOMMU info (page size, valid IOVA ranges).
 * Undoes the attach on failure.
 */
int vfiod_domain_attach(struct vfiod_domain *domain, int group_fd, struct vfiod_error *err);

/*
 * IOMMUFD, BROKERED: binds the device cdev device_fd (borrowed, unbound) to
 * the domain's iommufd and attaches it to the domain's IOAS (allocated with
 * the first); for the first device, reads the IOAS's valid IOVA ranges and
 * alignment. On failure the fd may stay bound (the caller closes it).
 */
int vfiod_domain_attach_cdev(struct vfiod_domain *domain, int device_fd, struct vfiod_error *err);

/* The last group left the container (the kernel dropped its mappings and model). */
void vfiod_domain_detached_last(struct vfiod_domain *domain);

/*
 * MapDma: validates every range (memfd sealed against shrinking, large
 * enough, page-aligned, no overflow, size > 0, inside the valid IOVA ranges,
 * no overlap with existing mappings or the batch, the limits), then mmaps
 * each memfd once (struct vfiod_memfd_view), faults the ranges in and maps
 * them in order; when one fails, the ones already mapped are unmapped. All
 * or nothing. On success *ret_bytes is the total. user is what every
 * connection of the owner's uid holds now, the owner's included
 * (MaxPinnedBytesPerUser counts its pinned bytes and its view bytes). A new
 * view keeps a duplicate of its memfd: when the request needs more than
 * fds->left new views (idle views give theirs up first), it fails with
 * fds->errnum and fds->why. MaxRangesPerRequest is the caller's (it bounds
 * the request before anything else is looked at).
 */
int vfiod_domain_map(struct vfiod_domain *domain, const struct vfiod_map_range *ranges, size_t n,
                     const struct vfiod_config_limits *limits, const struct vfiod_usage *user,
                     const struct vfiod_fd_budget *fds, uint64_t *ret_bytes,
                     struct vfiod_error *err);

/*
 * UnmapDma: every range must cover whole mappings (EINVAL otherwise) and
 * cover at least one (ENOENT otherwise); checked for all ranges before
 * anything is unmapped. Mappings that leave together and are neighbours in
 * the domain leave in one VFIO_IOMMU_UNMAP_DMA over their span.
 */
int vfiod_domain_unmap(struct vfiod_domain *domain, const struct vfiod_iova *ranges, size_t n,
                       uint32_t *ret_unmapped, uint64_t *ret_bytes, struct vfiod_error *err);

/* Unmaps and closes every idle view (no mapping uses it; kept for the next MapDma). */
void vfiod_domain_drop_idle_views(struct vfiod_domain *domain);

/*
 * Release step 2: BROKERED, unmaps every daemon mapping and munmaps it, and
 * every idle view; DIRECT, VFIO_UNMAP_ALL when the container has it. Returns
 * the number of failures (logged).
 */
int vfiod_domain_unmap_everything(struct vfiod_domain *domain);

/* ---- restart (daemon/state.c): a domain rebuilt from the fd store ----------------------- */

/*
 * A domain on a container fd kept in the fd store (taken: closed on failure
 * too). model_set: a group is attached already (the IOMMU info is read
 * again). Counts itself in usage->domains.
 */
int vfiod_domain_adopt_take(int container_fd, uint64_t id, int model, bool model_set,
                            struct vfiod_usage *usage, struct vfiod_domain **ret);

/*
 * A view on a memfd kept in the fd store (taken: closed on failure too),
 * mmapped again at a new address; it has no reference until a mapping is
 * adopted into it. -EINVAL when the memfd is not the inode the state names.
 */
int vfiod_domain_adopt_view_take(struct vfiod_domain *domain, int memfd, uint64_t view_id,
                                 bool writable, uint64_t offset, uint64_t size,
                                 struct vfiod_memfd_view **ret);

/*
 * A mapping that is still in the IOMMU (the container was kept): it lies at
 * delta in view. Its process address is replaced by the new mmap
 * (kvfio_dma_invalidate_vaddr + kvfio_dma_set_vaddr) when the kernel has
 * VFIO_UPDATE_VADDR; the pages stay pinned either way. Counts it in the
 * domain and the owner's usage.
 */
int vfiod_domain_adopt_mapping(struct vfiod_domain *domain, struct vfiod_memfd_view *view,
                               uint64_t iova, uint64_t size, uint64_t delta);

/* Before a planned stop that keeps the fd store: invalidates every mapping's process address. */
void vfiod_domain_invalidate_vaddrs(struct vfiod_domain *domain);

/* ---- restart (daemon/state.h): a domain saves and loads itself --------------------- */

struct vfiod_save;
struct vfiod_load;

/* Writes the domain of client owner: "domain", "view" (mapped views) and "map" lines, their fds. */
void vfiod_domain_save(const struct vfiod_domain *domain, uint64_t owner, struct vfiod_save *sv);
/*
 * Loads the fields of a "domain" line after the owner's id (args): the
 * domain on its kept container, counted in usage (NULL: the owner is not
 * there, -EINVAL). The owner links it. Returns as a loader does (daemon/state.h).
 */
int vfiod_domain_load(struct vfiod_load *ld, const char *args, struct vfiod_usage *usage,
                      struct vfiod_domain **ret);
/* A planned stop that keeps the fd store: munmaps and closes, the IOMMU mappings stay. */
void vfiod_domain_abandon(struct vfiod_domain *domain);
