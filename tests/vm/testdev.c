/* SPDX-License-Identifier: MIT */
#include "tests/vm/testdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kernel/module/mdma-regs.h"
#include "tests/vm/edu.h"

int testdev_kind_from_env(enum testdev_kind *ret_kind)
{
        const char *v = getenv("VFIOD_TESTDEV");

        if (!v || !*v || strcmp(v, "edu") == 0)
                *ret_kind = TESTDEV_EDU;
        else if (strcmp(v, "mdma") == 0)
                *ret_kind = TESTDEV_MDMA;
        else
                return -EINVAL;
        return 0;
}

const char *testdev_kind_name(enum testdev_kind kind)
{
        return kind == TESTDEV_MDMA ? "mdma" : "edu";
}

static uint32_t mdma_rd(const struct testdev *d, uint32_t reg)
{
        uint32_t v;

        if (pread(d->fd, &v, 4, (off_t)(d->bar0_off + reg)) != 4)
                return UINT32_MAX;
        return v;
}

static void mdma_wr(const struct testdev *d, uint32_t reg, uint32_t v)
{
        /* A failed register write shows as a wrong result later. */
        if (pwrite(d->fd, &v, 4, (off_t)(d->bar0_off + reg)) != 4)
                return;
}

int testdev_open(struct testdev *d, enum testdev_kind kind, int device_fd)
{
        struct vfio_region_info ri = {.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX};
        int r;

        memset(d, 0, sizeof(*d));
        d->kind = kind;
        d->fd = device_fd;
        if (kind == TESTDEV_EDU) {
                r = edu_map_bar0(device_fd, &d->bar0);
                if (r < 0)
                        return r;
                if (!edu_id_valid(edu_read32(d->bar0, EDU_REG_ID))) {
                        testdev_close(d);
                        return -EPROTO;
                }
                return 0;
        }
        if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
                return -errno;
        if (ri.size != MDMA_BAR0_SIZE)
                return -EPROTO;
        d->bar0_off = ri.offset;
        if (mdma_rd(d, MDMA_REG_ID) != MDMA_ID_VALUE)
                return -EPROTO;
        return 0;
}

void testdev_close(struct testdev *d)
{
        if (d->kind == TESTDEV_EDU && d->bar0)
                edu_unmap_bar0(d->bar0);
        d->bar0 = NULL;
}

int testdev_dma_start(struct testdev *d, uint64_t iova, uint32_t count, bool to_ram, bool irq)
{
        uint64_t src = to_ram ? d->buf_iova : iova;
        uint32_t en;

        if (d->kind == TESTDEV_EDU)
                return edu_dma_start(d->bar0, iova, 0, count, to_ram, irq);
        if (count == 0 || count > TESTDEV_DMA_MAX)
                return -EINVAL;
        if (mdma_rd(d, MDMA_REG_STATUS) & MDMA_STATUS_BUSY)
                return -EBUSY;
        en = mdma_rd(d, MDMA_REG_IRQ_ENABLE) & ~(MDMA_IRQ_DONE | MDMA_IRQ_ERROR);
        mdma_wr(d, MDMA_REG_IRQ_ENABLE, en | (irq ? MDMA_IRQ_DONE | MDMA_IRQ_ERROR : 0));
        mdma_wr(d, MDMA_REG_SRC_LO, (uint32_t)src);
        mdma_wr(d, MDMA_REG_SRC_HI, (uint32_t)(src >> 32));
        mdma_wr(d, MDMA_REG_DST_LO, (uint32_t)iova);
        mdma_wr(d, MDMA_REG_DST_HI, (uint32_t)(iova >> 32));
        mdma_wr(d, MDMA_REG_LEN, count);
        mdma_wr(d, MDMA_REG_CMD, MDMA_CMD_COPY);
        if (!to_ram)
                d->buf_iova = iova;
        return 0;
}

int testdev_dma_wait(struct testdev *d, int timeout_ms)
{
        const struct timespec tick = {.tv_nsec = 1000000};
        uint32_t st;

        if (d->kind == TESTDEV_EDU)
                return edu_dma_wait(d->bar0, timeout_ms);
        for (int i = 0;; i++) {
                st = mdma_rd(d, MDMA_REG_STATUS);
                if (st == UINT32_MAX)
                        return -EIO;
                if (!(st & MDMA_STATUS_BUSY))
                        return st & MDMA_STATUS_ERROR ? -EIO : 0;
                if (i >= timeout_ms)
                        return -ETIMEDOUT;
                nanosleep(&tick, NULL);
        }
}

int testdev_dma(struct testdev *d, uint64_t iova, uint32_t count, bool to_ram)
{
        int r = testdev_dma_start(d, iova, count, to_ram, false);

        return r < 0 ? r : testdev_dma_wait(d, 5000);
}

bool testdev_dma_irq_pending(struct testdev *d)
{
        if (d->kind == TESTDEV_EDU)
                return edu_read32(d->bar0, EDU_REG_IRQ_STATUS) & EDU_IRQ_DMA;
        return mdma_rd(d, MDMA_REG_IRQ_STATUS) & (MDMA_IRQ_DONE | MDMA_IRQ_ERROR);
}

void testdev_raise(struct testdev *d, uint32_t bit)
{
        if (d->kind == TESTDEV_EDU) {
                edu_write32(d->bar0, EDU_REG_IRQ_RAISE, bit);
                return;
        }
        mdma_wr(d, MDMA_REG_IRQ_ENABLE, mdma_rd(d, MDMA_REG_IRQ_ENABLE) | MDMA_IRQ_SOFT);
        mdma_wr(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
}

void testdev_ack(struct testdev *d, uint32_t bits)
{
        if (d->kind == TESTDEV_EDU) {
                edu_write32(d->bar0, EDU_REG_IRQ_ACK, bits);
                return;
        }
        mdma_wr(d, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
}
