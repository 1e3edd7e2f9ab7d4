/* SPDX-License-Identifier: MIT */
/*
 * The device the broker's end-to-end suite drives, behind one small
 * interface, so the same suite runs against QEMU's edu (real vfio-pci behind
 * an emulated VT-d: make check-vm) and against kernel/module's mdma (an mdev
 * with an emulated IOMMU, no IOMMU at all: make check-vm-mdev).
 *
 * The model is edu's: a DMA engine with a buffer of its own. A DMA "from
 * RAM" reads len bytes at an IOVA into the buffer, one "to RAM" writes the
 * buffer to an IOVA; each is one command with, when asked, one completion
 * interrupt. mdma has no buffer: it remembers the IOVA a DMA from RAM read
 * (the command copies that range onto itself: a real read and write through
 * the container's mapping) and a DMA to RAM copies from there. As long as the
 * source is not changed in between, the bytes that arrive are the same.
 *
 * A DMA that mdma refuses (an unmapped IOVA) ends with -EIO; edu's DMA
 * through a missing mapping is stopped by the IOMMU instead and, for edu,
 * "completes" (QEMU logs a VT-d fault): callers that check that the device
 * reached nothing accept either.
 *
 * Functions take and return what edu.h's do: 0 or a negative errno. The
 * device fd is borrowed.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum testdev_kind {
        TESTDEV_EDU,
        TESTDEV_MDMA,
};

/* The largest DMA, the same for both kinds (edu's limit, see edu.h). */
#define TESTDEV_DMA_MAX 4095u

struct testdev {
        enum testdev_kind kind;
        int fd;              /* the device fd (borrowed) */
        volatile void *bar0; /* edu: BAR0 mmap */
        uint64_t bar0_off;   /* mdma: offset of the BAR0 region in the fd */
        uint64_t buf_iova;   /* mdma: what the "buffer" holds (the last DMA from RAM) */
};

/* $VFIOD_TESTDEV: unset, "" or "edu": TESTDEV_EDU; "mdma": TESTDEV_MDMA; else -EINVAL. */
int testdev_kind_from_env(enum testdev_kind *ret_kind);
const char *testdev_kind_name(enum testdev_kind kind);

/*
 * Opens the device behind device_fd: edu maps BAR0, mdma finds the BAR0
 * region; then checks the ID register. Bus mastering is not touched (see
 * edu_enable_bus_master(), which works for both). -EPROTO: wrong ID.
 */
int testdev_open(struct testdev *d, enum testdev_kind kind, int device_fd);
/* Unmaps what testdev_open() mapped. A zeroed or closed testdev is fine. */
void testdev_close(struct testdev *d);

/* Starts one DMA (see above), with its completion interrupt when irq. */
int testdev_dma_start(struct testdev *d, uint64_t iova, uint32_t count, bool to_ram, bool irq);
/* Waits for the engine: 0 done, -EIO refused by the device (mdma), -ETIMEDOUT. */
int testdev_dma_wait(struct testdev *d, int timeout_ms);
/* Start without interrupt, then wait (5 s). */
int testdev_dma(struct testdev *d, uint64_t iova, uint32_t count, bool to_ram);

/* True when the device's own register shows a finished DMA's interrupt cause. */
bool testdev_dma_irq_pending(struct testdev *d);
/*
 * Raises a software interrupt (edu: `bit` into IRQ_RAISE; mdma: the SOFT
 * cause, enabled first). It reaches the host through INTx or MSI, whichever
 * is set up, and shows in the PCI status register's Interrupt bit.
 */
void testdev_raise(struct testdev *d, uint32_t bit);
/* Clears interrupt causes (edu: `bits` into IRQ_ACK; mdma: every cause). */
void testdev_ack(struct testdev *d, uint32_t bits);
