/* SPDX-License-Identifier: MIT */
/*
 * VFIO group: /dev/vfio/<N>, the unit of isolation.
 *
 * Concepts: a group node can be open only once at a time in the whole
 * system. Attach it to a container (kvfio_group_set_container()), set the
 * container's IOMMU model, then fetch device fds by PCI address. A group can
 * leave its container only when no device fd of it is open any more.
 *
 * All functions return 0 (or an fd) on success and a negative errno on
 * failure; ret_* outputs are untouched on failure. No function here takes
 * ownership of an fd passed to it. Nothing prints.
 */
#pragma once

#include <stdbool.h>

/* Default folder of the group nodes. */
#define KVFIO_GROUP_DIR "/dev/vfio"

/*
 * Opens group `group` as DIR/<group> (dir NULL = KVFIO_GROUP_DIR),
 * O_RDWR|O_CLOEXEC. Returns the group fd, owned by the caller.
 * -EINVAL: group < 0;
 * -ENOENT: no such node (no such group, or its devices are not bound to
 *          vfio-pci yet);
 * -EBUSY: the group is open by another process (or by this one already);
 * -EACCES/-EPERM: not allowed.
 */
int kvfio_group_open(int group, const char *dir);

/* VFIO_GROUP_GET_STATUS, decoded. */
struct kvfio_group_status {
        bool viable;        /* every device of the group is bound to a safe driver */
        bool container_set; /* the group is attached to a container */
};

/* VFIO_GROUP_GET_STATUS. -EBADF: group_fd < 0 or not open; -ENOTTY: not a group fd. */
int kvfio_group_get_status(int group_fd, struct kvfio_group_status *ret_status);

/*
 * VFIO_GROUP_SET_CONTAINER: attaches the group to the container. Neither fd
 * changes owner; the kernel keeps its own reference on the container.
 * -EINVAL: the group already has a container, or the container's IOMMU model
 *          cannot take this group;
 * -EPERM: the group is not viable (a member is bound to a non-VFIO driver);
 * -EBADF.
 */
int kvfio_group_set_container(int group_fd, int container_fd);

/*
 * VFIO_GROUP_UNSET_CONTAINER: detaches the group from its container. When it
 * was the last group, the container's DMA mappings and IOMMU model go too.
 * -EBUSY: group busy: a device fd of this group is still open somewhere (the
 *         group stays attached);
 * -EINVAL: the group has no container; -EBADF.
 */
int kvfio_group_unset_container(int group_fd);

/*
 * VFIO_GROUP_GET_DEVICE_FD for the device named `name` as the kernel names
 * it: for a PCI device its normalised address "dddd:bb:ss.f" (see
 * kvfio_pci_addr_normalize()); for a mediated device its UUID. Returns the
 * device fd (O_CLOEXEC), owned by the caller.
 * -EINVAL: name NULL or empty, or the container has no IOMMU model yet;
 * -ENODEV: no such device in this group; -EBADF;
 * -EBUSY: the device refuses another open.
 */
int kvfio_group_get_device_fd(int group_fd, const char *name);
