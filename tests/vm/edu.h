/* SPDX-License-Identifier: MIT */
/*
 * QEMU's edu device, driven through a VFIO device fd (for the guest tests,
 * the broker's end-to-end tests and the demo).
 *
 * Concepts: edu (PCI 1234:11e8, QEMU docs/specs/edu.rst) has one 1 MiB MMIO
 * BAR. Registers below 0x80 take 4-byte accesses only, the DMA registers
 * (0x80..0x98) 4 or 8 bytes. Its DMA engine copies between an IOVA (28-bit
 * DMA mask by default) and a 4 KiB buffer at device address 0x40000, about
 * 100 ms of virtual time after the command, and can raise interrupt 0x100
 * when done. Interrupts are INTx until MSI is enabled; either way they stay
 * raised until acknowledged (0x64). edu has no reset handler of its own: a
 * PCI reset resets its config space but none of its registers.
 *
 * Only the device fd is needed (no kernel/ code), so a client that received
 * the fd from the daemon can use these too. Functions return 0 (or the
 * documented value) on success and a negative errno on failure. Nothing here
 * takes ownership of an fd.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8

#define EDU_BAR0_SIZE (1024 * 1024)

/* Registers (offsets in BAR0). */
#define EDU_REG_ID         0x00 /* RO: 0xRRrr00ed, RR major, rr minor */
#define EDU_REG_LIVENESS   0x04 /* RW: reads back the inverse of what was written */
#define EDU_REG_FACTORIAL  0x08
#define EDU_REG_STATUS     0x20
#define EDU_REG_IRQ_STATUS 0x24 /* RO: the raised interrupt bits */
#define EDU_REG_IRQ_RAISE  0x60 /* WO: ORs the value into the interrupt status */
#define EDU_REG_IRQ_ACK    0x64 /* WO: clears the value from the interrupt status */
#define EDU_REG_DMA_SRC    0x80
#define EDU_REG_DMA_DST    0x88
#define EDU_REG_DMA_COUNT  0x90
#define EDU_REG_DMA_CMD    0x98

#define EDU_DMA_CMD_START  0x1
#define EDU_DMA_CMD_TO_RAM 0x2 /* direction: edu buffer -> IOVA; clear: IOVA -> buffer */
#define EDU_DMA_CMD_IRQ    0x4 /* raise EDU_IRQ_DMA when done */

#define EDU_IRQ_DMA 0x100 /* the interrupt status bit of a finished DMA */

#define EDU_DMA_BUF      0x40000 /* device address of the DMA buffer */
#define EDU_DMA_BUF_SIZE 4096
/*
 * The longest transfer: QEMU up to 7.2 aborts (hw_error) on a transfer that
 * ends at the last byte of the buffer (an off-by-one in its range check), so
 * a transfer must end before it.
 */
#define EDU_DMA_MAX  (EDU_DMA_BUF_SIZE - 1)
#define EDU_DMA_MASK ((UINT64_C(1) << 28) - 1) /* IOVAs the engine can reach */

/* True when id (register 0) has edu's 0x..0000ed pattern. */
bool edu_id_valid(uint32_t id);

/*
 * mmaps BAR0 of the VFIO device device_fd (read/write, shared). On success
 * *ret_bar0 is the mapping; release it with edu_unmap_bar0().
 * -EINVAL: BAR0 is not 1 MiB or not mmap-able; other: the ioctl's or mmap's errno.
 */
int edu_map_bar0(int device_fd, volatile void **ret_bar0);
void edu_unmap_bar0(volatile void *bar0);

uint32_t edu_read32(volatile void *bar0, uint32_t reg);
void edu_write32(volatile void *bar0, uint32_t reg, uint32_t val);
uint64_t edu_read64(volatile void *bar0, uint32_t reg);
void edu_write64(volatile void *bar0, uint32_t reg, uint64_t val);

/*
 * Reads or writes the PCI config space of the device through its VFIO config
 * region (pread/pwrite), len 1, 2 or 4 bytes, little endian.
 */
int edu_config_read(int device_fd, uint32_t offset, uint32_t len, uint32_t *ret_val);
int edu_config_write(int device_fd, uint32_t offset, uint32_t len, uint32_t val);

/* Sets Memory Space and Bus Master in the PCI command register (DMA and MSI need both). */
int edu_enable_bus_master(int device_fd);

/*
 * Starts a DMA of count bytes between iova and the edu buffer at buf_offset
 * (buf_offset + count <= EDU_DMA_MAX, see there): to_ram copies buffer ->
 * iova, else iova -> buffer; irq asks for EDU_IRQ_DMA when done. Does not wait.
 * -EINVAL: out of range, or iova + count beyond EDU_DMA_MASK; -EBUSY: a DMA is running.
 */
int edu_dma_start(volatile void *bar0, uint64_t iova, uint32_t buf_offset, uint32_t count,
                  bool to_ram, bool irq);

/* Waits until the running DMA (if any) is done. -ETIMEDOUT after timeout_ms. */
int edu_dma_wait(volatile void *bar0, int timeout_ms);

/* edu_dma_start() then edu_dma_wait() (no interrupt), 5 s at most. */
int edu_dma(volatile void *bar0, uint64_t iova, uint32_t buf_offset, uint32_t count, bool to_ram);

/*
 * Waits up to timeout_ms for eventfd efd to be signalled and reads it.
 * Returns 1 (signalled; *ret_count, if not NULL, gets the counter), 0 on
 * time-out, or a negative errno.
 */
int edu_eventfd_wait(int efd, int timeout_ms, uint64_t *ret_count);

/* Fills n bytes at p with a pattern that depends on seed and on each byte's offset. */
void edu_pattern(uint8_t *p, size_t n, unsigned seed);
