/* SPDX-License-Identifier: MIT */
/*
 * VFIO container: /dev/vfio/vfio, one IOMMU address space.
 *
 * Concepts: open a container, attach at least one group to it
 * (kvfio_group_set_container()), then choose its IOMMU model with
 * kvfio_container_set_iommu(); only then can DMA be mapped (dma.h) and device
 * fds be fetched (group.h). Closing the container fd detaches nothing by
 * itself while groups still reference it; the kernel tears the container
 * down when the last group leaves and the last fd is closed.
 *
 * All functions return 0 (or the documented non-negative value) on success
 * and a negative errno on failure; ret_* outputs are untouched on failure.
 * No function here takes ownership of an fd passed to it. Nothing prints.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>

/* Default path of the container node. */
#define KVFIO_CONTAINER_PATH "/dev/vfio/vfio"

/* IOMMU models; the values are the kernel's extension numbers. */
enum kvfio_iommu_model {
        KVFIO_IOMMU_AUTO = 0, /* pick the best one available */
        KVFIO_IOMMU_TYPE1 = VFIO_TYPE1_IOMMU,
        KVFIO_IOMMU_SPAPR_TCE = VFIO_SPAPR_TCE_IOMMU,
        KVFIO_IOMMU_TYPE1v2 = VFIO_TYPE1v2_IOMMU,
        KVFIO_IOMMU_SPAPR_TCE_v2 = VFIO_SPAPR_TCE_v2_IOMMU,
};

/*
 * Opens a new container (path NULL = KVFIO_CONTAINER_PATH), O_RDWR|O_CLOEXEC,
 * and checks VFIO_GET_API_VERSION == VFIO_API_VERSION.
 * Returns the container fd, owned by the caller.
 * -ENOENT: no such node (vfio module not loaded); -EACCES/-EPERM: not allowed;
 * -EPROTO: the kernel speaks another VFIO API version (fd closed);
 * -ENOTTY: the path is not a VFIO container (fd closed).
 */
int kvfio_container_open(const char *path);

/*
 * VFIO_CHECK_EXTENSION: returns 1 if the container supports extension `ext`
 * (a VFIO_* extension number such as VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL),
 * 0 if not, or a negative errno (-EBADF: container_fd < 0 or not open).
 */
int kvfio_container_check_extension(int container_fd, unsigned long ext);

/*
 * Returns the model kvfio_container_set_iommu(container_fd, wanted) would
 * choose, without setting it: for KVFIO_IOMMU_AUTO the first supported of
 * Type1v2, Type1, sPAPR TCE v2, sPAPR TCE; otherwise `wanted` itself if
 * supported.
 * -EOPNOTSUPP (== -ENOTSUP): wanted (or, for AUTO, every model) unsupported;
 * -EINVAL: wanted is not an enum kvfio_iommu_model value; -EBADF.
 */
int kvfio_container_pick_iommu(int container_fd, int wanted);

/*
 * Chooses the IOMMU model as kvfio_container_pick_iommu() does and sets it
 * (VFIO_SET_IOMMU). A group must already be attached. Returns the model set
 * (a positive enum kvfio_iommu_model value).
 * -EOPNOTSUPP: as kvfio_container_pick_iommu();
 * -EINVAL: no group attached yet, a model is already set, or bad `wanted`;
 * -EPERM/-EBUSY: as reported by the kernel (e.g. the group's IOMMU domain
 * cannot be used by this model); -EBADF.
 */
int kvfio_container_set_iommu(int container_fd, int wanted);

/* "Type1v2", "Type1", "sPAPR-TCE-v2", "sPAPR-TCE", "auto"; "unknown" otherwise. Static string. */
const char *kvfio_iommu_model_name(int model);

/* One valid IOVA range, both ends inclusive. */
struct kvfio_iova_range {
        uint64_t start;
        uint64_t end;
};

/* What VFIO_IOMMU_GET_INFO reports for a Type1 container. */
struct kvfio_iommu_info {
        uint32_t flags;         /* VFIO_IOMMU_INFO_* as reported */
        uint64_t pgsize_bitmap; /* supported page sizes; 0 when not reported */
        /* VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE; n 0 and NULL when absent. */
        bool has_iova_ranges;
        size_t n_iova_ranges;
        struct kvfio_iova_range *iova_ranges;
        /* VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: mappings still allowed (dma_entry_limit). */
        bool has_dma_avail;
        uint32_t dma_avail;
};

/*
 * VFIO_IOMMU_GET_INFO, re-queried with the argsz the kernel asks for so the
 * capability chain is complete. Only valid once an IOMMU model is set.
 * On success *ret_info is new; free with kvfio_iommu_info_free().
 * -EINVAL: no IOMMU model set, or the container has no such info;
 * -EBADMSG: the capability chain is malformed; -EBADF; -ENOMEM.
 */
int kvfio_iommu_get_info(int container_fd, struct kvfio_iommu_info **ret_info);

/*
 * Parses a struct vfio_iommu_type1_info buffer of len bytes with its
 * capability chain (what kvfio_iommu_get_info() does after the ioctl).
 * Unknown capabilities are ignored.
 * -EINVAL: buf NULL or len shorter than the struct; -EBADMSG: argsz larger than
 * len, a capability out of bounds or inside the fixed struct, a chain whose
 * offsets do not increase (a loop), or an IOVA range with end < start.
 */
int kvfio_iommu_info_parse(const void *buf, size_t len, struct kvfio_iommu_info **ret_info);

/* Frees an info; NULL is fine. */
void kvfio_iommu_info_free(struct kvfio_iommu_info *info);
