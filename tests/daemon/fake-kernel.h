/* SPDX-License-Identifier: MIT */
/*
 * A fake of the VFIO ioctl layer (kernel/container.h, group.h, device.h,
 * irq.h, dma.h) for the daemon's tests, with in-memory state.
 *
 * Concepts: every container, group and device fd the fake hands out is the
 * write end of a pipe, so it is a real fd that travels over SCM_RIGHTS and
 * can be dup'ed; the fake keeps the read end. When every copy of the write
 * end is closed anywhere in the process (daemon or "client" side of a test),
 * the read end reports POLLHUP: that is how the fake knows, like the kernel,
 * that a device fd is still open (VFIO_GROUP_UNSET_CONTAINER -> EBUSY) or a
 * group node is still open (open -> EBUSY). Objects are keyed by the pipe's
 * inode. Type1 rules: mappings may not overlap (EEXIST), unmaps may not split
 * one (EINVAL), the last group leaving a container drops its mappings and
 * model. Assigned eventfds are duplicated (the kernel's reference) and
 * signalled by fake_kernel_fire().
 *
 * Every call is appended to a trace ("name arg=result;") and any call can be
 * made to fail with fake_kernel_fail().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Forgets everything and closes every fd the fake holds. */
void fake_kernel_reset(void);

/* A device bound to vfio-pci in IOMMU group `group` (INTx 1, MSI 1, MSI-X 8, ERR 1, REQ 1). */
void fake_kernel_add_device(int group, const char *bdf);
void fake_kernel_set_irq_count(const char *bdf, uint32_t index, uint32_t count);
void fake_kernel_set_unmap_all(bool supported);
/*
 * A hot reset of any device also touches group other_group (-1: none, the
 * default). A bound cdev is told device ids instead: that device is not its
 * iommufd's, and its hot reset (no group fds) fails EPERM.
 */
void fake_kernel_set_hot_reset(int other_group);
/*
 * vfio-pci's reset_works (default true: the device reset at its open, and
 * VFIO_DEVICE_FLAGS_RESET). False: no flag, VFIO_DEVICE_RESET fails EINVAL.
 */
int fake_kernel_set_reset_works(const char *bdf, bool works);

/* The next call of `func` after `skip` successful ones fails with -err (once). */
void fake_kernel_fail(const char *func, int err, unsigned skip);

/* Objects (container, group, device files) whose fds are still open somewhere. */
size_t fake_kernel_live(void);
/* fds the fake holds itself (read ends and eventfd references). */
size_t fake_kernel_own_fds(void);

const char *fake_kernel_trace(void);
void fake_kernel_trace_clear(void);
/* True when the trace holds each needle in this order (NULL-terminated list). */
bool fake_kernel_trace_has(const char *first, ...);

/* Signals the eventfd assigned to vector 0 of index; -ENOENT when none is. */
int fake_kernel_fire(const char *bdf, uint32_t index);
/* Eventfds assigned to index of the device. */
size_t fake_kernel_irq_assigned(const char *bdf, uint32_t index);
/* Explicit resets (VFIO_DEVICE_RESET) done on the device. */
unsigned fake_kernel_resets(const char *bdf);
/* DMA mappings alive, all containers. */
size_t fake_kernel_mappings(void);
/* Copies len bytes of the memory mapped at iova (any container) into buf; -ENOENT if unmapped. */
int fake_kernel_dma_read(uint64_t iova, void *buf, size_t len);
/* True when the group is attached to a container. */
bool fake_kernel_group_attached(int group);

/*
 * iommufd.h: every iommufd fd is such a pipe too, with IOAS ids 1, 2, ...
 * (one mapping list for all of them) and its rlimit mode. A device's cdev
 * N is set by fake_kernel_set_cdev() (none by default); a cdev fd refuses everything but the bind
 * (-EINVAL) until bound, one file of a device can be bound at a time (-EBUSY), a bind is the
 * device's first open (a reset), and the group's node cannot be opened while a cdev of it is bound
 * (-EBUSY), as the kernel does.
 */
/* The device has the cdev /dev/vfio/devices/vfio<cdev>. */
void fake_kernel_set_cdev(const char *bdf, int cdev);
/* True when a live cdev file of the device is bound. */
bool fake_kernel_cdev_bound(const char *bdf);
/* The rlimit mode of an iommufd fd (0 user, 1 process), or -errno. */
int fake_kernel_rlimit_mode(int iommufd);
