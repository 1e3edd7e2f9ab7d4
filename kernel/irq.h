/* SPDX-License-Identifier: MIT */
/*
 * Device interrupts: VFIO_DEVICE_SET_IRQS.
 *
 * Concepts: an interrupt index (VFIO_PCI_INTX_IRQ_INDEX, _MSI_, _MSIX_,
 * _ERR_, _REQ_) has `count` vectors (kvfio_device_get_irq_info()). One
 * SET_IRQS call applies one action (TRIGGER, MASK, UNMASK) to the vectors
 * [start, start + count) with one kind of data: NONE (do it now), BOOL (one
 * byte per vector: do it where non-zero) or EVENTFD (one fd per vector: for
 * TRIGGER the fd the kernel signals; for UNMASK the fd that unmasks; -1
 * de-assigns). The kernel takes its own reference on each eventfd: the
 * caller keeps owning the fds it passes and may close them afterwards.
 * ERR and REQ have one vector and only accept TRIGGER with an eventfd (or
 * disable); REQ fires when the kernel asks for the device back.
 *
 * All functions return 0 on success and a negative errno on failure. No
 * function here takes ownership of an fd passed to it. Nothing prints.
 * Any call may also return the kernel's -EINVAL (index, range or action not
 * supported by this device/index), -EBADF (device_fd or an eventfd not valid)
 * or -ENOMEM; -ENOTTY: device_fd is not a VFIO device.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>

/* Largest vector count accepted (PCI MSI-X allows 2048 vectors). */
#define KVFIO_IRQ_MAX_COUNT 2048

/*
 * Raw VFIO_DEVICE_SET_IRQS. `flags` is exactly one VFIO_IRQ_SET_ACTION_* and
 * exactly one VFIO_IRQ_SET_DATA_*; data holds `count` bools (uint8_t) or
 * `count` int32 fds for DATA_BOOL/DATA_EVENTFD and is ignored for DATA_NONE.
 * -EBADF: device_fd < 0;
 * -EINVAL: flags not one action + one data type; count above
 *          KVFIO_IRQ_MAX_COUNT; data NULL with count > 0 for BOOL/EVENTFD;
 *          start + count overflowing; for DATA_EVENTFD an entry below -1.
 */
int kvfio_irq_set(int device_fd, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                  const void *data);

/*
 * TRIGGER | DATA_EVENTFD for vectors [start, start + count): fds[i] becomes
 * the eventfd of vector start + i; an entry of -1 de-assigns that vector.
 * For MSI/MSI-X this enables the index with that many vectors.
 * -EINVAL: count 0 (use kvfio_irq_disable()), fds NULL, an entry below -1,
 *          or as kvfio_irq_set().
 */
int kvfio_irq_set_eventfds(int device_fd, uint32_t index, uint32_t start, uint32_t count,
                           const int *fds);

/* Disables every vector of the index: TRIGGER | DATA_NONE with start 0 and count 0. */
int kvfio_irq_disable(int device_fd, uint32_t index);

/* MASK | DATA_NONE for [start, start + count) (INTx: start 0, count 1). -EINVAL: count 0. */
int kvfio_irq_mask(int device_fd, uint32_t index, uint32_t start, uint32_t count);

/* UNMASK | DATA_NONE for [start, start + count). -EINVAL: count 0. */
int kvfio_irq_unmask(int device_fd, uint32_t index, uint32_t start, uint32_t count);

/*
 * UNMASK | DATA_EVENTFD: signalling eventfd `fd` unmasks vector `vector`
 * (the INTx irqfd-style resample path); fd -1 removes it. -EINVAL: fd < -1.
 */
int kvfio_irq_unmask_eventfd(int device_fd, uint32_t index, uint32_t vector, int fd);

/*
 * TRIGGER | DATA_NONE for [start, start + count): the kernel fires the
 * vectors' eventfds as if the device had (loopback, for tests).
 * -EINVAL: count 0.
 */
int kvfio_irq_trigger(int device_fd, uint32_t index, uint32_t start, uint32_t count);

/*
 * `action` (one VFIO_IRQ_SET_ACTION_*) | DATA_BOOL for [start, start + count):
 * applied to vector start + i where bools[i] is non-zero.
 * -EINVAL: count 0, bools NULL, bad action.
 */
int kvfio_irq_set_bools(int device_fd, uint32_t index, uint32_t action, uint32_t start,
                        uint32_t count, const uint8_t *bools);

/* "INTx", "MSI", "MSI-X", "ERR", "REQ"; "unknown" otherwise. Static string. */
const char *kvfio_irq_index_name(uint32_t index);
