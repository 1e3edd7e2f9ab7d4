/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * mdma: register map of the mediated DMA test function.
 *
 * Concepts: mdma.ko registers a virtual PCI function with the VFIO core as an
 * emulated-IOMMU (mediated) device. Userspace reaches it only through VFIO: the
 * config space is VFIO_PCI_CONFIG_REGION_INDEX, the registers below are
 * VFIO_PCI_BAR0_REGION_INDEX, both read and written with pread/pwrite on the
 * device fd at the region's offset. DMA addresses are IOVAs of the container
 * the device's group is attached to (Type1v2 mappings).
 *
 * This header holds only constants, so it builds in the kernel and in
 * userspace alike. All registers are 32 bits wide, little-endian, and must be
 * accessed with aligned 4-byte reads/writes (an 8-byte pread/pwrite is split
 * into two 4-byte accesses).
 */
#ifndef MDMA_REGS_H
#define MDMA_REGS_H

/* PCI identity. 0x1234 is the vendor id QEMU uses for its test devices; the
 * device id is this project's choice. Not an allocated id: never bind a real
 * driver to it. */
#define MDMA_PCI_VENDOR_ID 0x1234
#define MDMA_PCI_DEVICE_ID 0x4d44 /* "MD" */
#define MDMA_PCI_SUBVENDOR_ID 0x1234
#define MDMA_PCI_SUBDEVICE_ID 0x0001
#define MDMA_PCI_REVISION 0x01
#define MDMA_PCI_CLASS 0x088000 /* system peripheral, other */

/* Config space layout (256 bytes, no extended space). */
#define MDMA_CFG_SIZE 0x100
#define MDMA_CFG_MSI_CAP 0x40 /* MSI, 64-bit, 1 vector, no per-vector mask */
#define MDMA_CFG_MSIX_CAP 0x50 /* MSI-X, table and PBA in BAR0 */

/* BAR0: 4 KiB, 32-bit, non-prefetchable memory. */
#define MDMA_BAR0_SIZE 0x1000

/* Identification. */
#define MDMA_REG_ID 0x000 /* RO: MDMA_ID_VALUE */
#define MDMA_ID_VALUE 0x414d444dU /* "MDMA" read as bytes */
#define MDMA_REG_VERSION 0x004 /* RO: major << 16 | minor */
#define MDMA_VERSION_VALUE 0x00010000U
#define MDMA_REG_SCRATCH 0x008 /* RW: no effect; 0 after reset */
#define MDMA_REG_MAX_LEN 0x00c /* RO: largest LEN a command accepts */

/* DMA engine status. */
#define MDMA_REG_STATUS 0x010 /* RO */
#define MDMA_STATUS_BUSY (1U << 0) /* a command is running */
#define MDMA_STATUS_DONE (1U << 1) /* last command completed */
#define MDMA_STATUS_ERROR (1U << 2) /* last command failed, see ERROR */
#define MDMA_REG_ERROR 0x014 /* RO: MDMA_ERR_* of the last failed command */
#define MDMA_REG_ERR_IOVA_LO 0x018 /* RO: first IOVA the failure concerns */
#define MDMA_REG_ERR_IOVA_HI 0x01c /* RO */

/* Error codes (MDMA_REG_ERROR). No memory is touched by a command that fails:
 * every page of both ranges is translated before the first byte moves. */
#define MDMA_ERR_NONE 0
#define MDMA_ERR_NO_BUS_MASTER 1 /* command register bus master bit clear */
#define MDMA_ERR_UNMAPPED 2 /* an IOVA is not mapped in the container */
#define MDMA_ERR_PERM 3 /* mapping lacks read (source) or write (dest) */
#define MDMA_ERR_BAD_LEN 4 /* LEN is 0 or above MAX_LEN */
#define MDMA_ERR_BAD_CMD 5 /* unknown CMD value */
#define MDMA_ERR_RANGE 6 /* IOVA + LEN wraps around 2^64 */
#define MDMA_ERR_IOMMU 7 /* container model cannot pin (not Type1v2) */
#define MDMA_ERR_PIN 8 /* pinning failed otherwise (memlock limit, ...) */
#define MDMA_ERR_ABORTED 9 /* reset or close while the command ran */

/* Interrupts. A cause bit is set in IRQ_STATUS when the event happens. INTx
 * is a level: asserted while (IRQ_STATUS & IRQ_ENABLE) != 0. MSI and MSI-X
 * send one message each time an enabled cause becomes set. Which of INTx,
 * MSI, MSI-X is live is chosen with VFIO_DEVICE_SET_IRQS, as for vfio-pci. */
#define MDMA_REG_IRQ_STATUS 0x020 /* RW1C */
#define MDMA_REG_IRQ_ENABLE 0x024 /* RW */
#define MDMA_REG_IRQ_RAISE 0x028 /* WO: sets the written cause bits */
#define MDMA_REG_MSIX_VECTOR 0x02c /* RW: MSI-X vector used for all causes */
#define MDMA_IRQ_DONE (1U << 0) /* a command completed */
#define MDMA_IRQ_ERROR (1U << 1) /* a command failed */
#define MDMA_IRQ_SOFT (1U << 2) /* raised through IRQ_RAISE */
#define MDMA_IRQ_ALL (MDMA_IRQ_DONE | MDMA_IRQ_ERROR | MDMA_IRQ_SOFT)

/* DMA command. Parameters are latched when CMD is written. */
#define MDMA_REG_SRC_LO 0x040 /* RW: source IOVA (COPY) */
#define MDMA_REG_SRC_HI 0x044
#define MDMA_REG_DST_LO 0x048 /* RW: destination IOVA */
#define MDMA_REG_DST_HI 0x04c
#define MDMA_REG_LEN 0x050 /* RW: bytes, 1..MAX_LEN */
#define MDMA_REG_PATTERN 0x054 /* RW: FILL writes byte (dst + i) % 4 of it */
#define MDMA_REG_CMD 0x058 /* WO: doorbell, ignored while BUSY */
#define MDMA_CMD_COPY 1 /* copy LEN bytes from SRC to DST */
#define MDMA_CMD_FILL 2 /* fill LEN bytes at DST with PATTERN */
#define MDMA_REG_COUNT 0x05c /* RO: commands completed without error */

/* Fault injection. */
#define MDMA_REG_ERR_INJECT 0x060 /* WO: MDMA_ERR_INJECT_KEY signals ERR */
#define MDMA_ERR_INJECT_KEY 0x0000e4e4U

/* MSI-X structures, as placed by the MSI-X capability. As with vfio-pci the
 * table is not accessible to the user (reads all ones, writes dropped); the
 * vectors are the eventfds given with VFIO_DEVICE_SET_IRQS. */
#define MDMA_MSIX_TABLE 0x800
#define MDMA_MSIX_PBA 0xc00

#endif /* MDMA_REGS_H */
