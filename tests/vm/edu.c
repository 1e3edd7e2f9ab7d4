/* SPDX-License-Identifier: MIT */
#include "tests/vm/edu.h"

#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

bool edu_id_valid(uint32_t id)
{
        return (id & 0xffff) == 0x00ed;
}

static int region_info(int device_fd, uint32_t index, struct vfio_region_info *ret)
{
        struct vfio_region_info info = {.argsz = sizeof(info), .index = index};

        if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
                return -errno;
        *ret = info;
        return 0;
}

int edu_map_bar0(int device_fd, volatile void **ret_bar0)
{
        struct vfio_region_info info = {0};
        void *p;
        int r;

        r = region_info(device_fd, VFIO_PCI_BAR0_REGION_INDEX, &info);
        if (r < 0)
                return r;
        if (info.size != EDU_BAR0_SIZE || !(info.flags & VFIO_REGION_INFO_FLAG_MMAP))
                return -EINVAL;
        p = mmap(NULL, EDU_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, device_fd,
                 (off_t)info.offset);
        if (p == MAP_FAILED)
                return -errno;
        *ret_bar0 = p;
        return 0;
}

void edu_unmap_bar0(volatile void *bar0)
{
        if (bar0)
                munmap((void *)bar0, EDU_BAR0_SIZE);
}

uint32_t edu_read32(volatile void *bar0, uint32_t reg)
{
        return *(volatile uint32_t *)((volatile uint8_t *)bar0 + reg);
}

void edu_write32(volatile void *bar0, uint32_t reg, uint32_t val)
{
        *(volatile uint32_t *)((volatile uint8_t *)bar0 + reg) = val;
}

uint64_t edu_read64(volatile void *bar0, uint32_t reg)
{
        return *(volatile uint64_t *)((volatile uint8_t *)bar0 + reg);
}

void edu_write64(volatile void *bar0, uint32_t reg, uint64_t val)
{
        *(volatile uint64_t *)((volatile uint8_t *)bar0 + reg) = val;
}

int edu_config_read(int device_fd, uint32_t offset, uint32_t len, uint32_t *ret_val)
{
        struct vfio_region_info info = {0};
        uint8_t b[4] = {0};
        ssize_t n;
        int r;

        if (len != 1 && len != 2 && len != 4)
                return -EINVAL;
        r = region_info(device_fd, VFIO_PCI_CONFIG_REGION_INDEX, &info);
        if (r < 0)
                return r;
        n = pread(device_fd, b, len, (off_t)(info.offset + offset));
        if (n < 0)
                return -errno;
        if ((size_t)n != len)
                return -EIO;
        *ret_val =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        return 0;
}

int edu_config_write(int device_fd, uint32_t offset, uint32_t len, uint32_t val)
{
        struct vfio_region_info info = {0};
        uint8_t b[4] = {val & 0xff, (val >> 8) & 0xff, (val >> 16) & 0xff, (val >> 24) & 0xff};
        ssize_t n;
        int r;

        if (len != 1 && len != 2 && len != 4)
                return -EINVAL;
        r = region_info(device_fd, VFIO_PCI_CONFIG_REGION_INDEX, &info);
        if (r < 0)
                return r;
        n = pwrite(device_fd, b, len, (off_t)(info.offset + offset));
        if (n < 0)
                return -errno;
        if ((size_t)n != len)
                return -EIO;
        return 0;
}

int edu_enable_bus_master(int device_fd)
{
        uint32_t cmd;
        int r;

        r = edu_config_read(device_fd, PCI_COMMAND, 2, &cmd);
        if (r < 0)
                return r;
        return edu_config_write(device_fd, PCI_COMMAND, 2,
                                cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

int edu_dma_start(volatile void *bar0, uint64_t iova, uint32_t buf_offset, uint32_t count,
                  bool to_ram, bool irq)
{
        uint64_t buf = EDU_DMA_BUF + buf_offset;

        if (count == 0 || count > EDU_DMA_MAX || buf_offset > EDU_DMA_MAX - count)
                return -EINVAL;
        if (iova > EDU_DMA_MASK || count - 1 > EDU_DMA_MASK - iova)
                return -EINVAL;
        if (edu_read64(bar0, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START)
                return -EBUSY;
        edu_write64(bar0, EDU_REG_DMA_SRC, to_ram ? buf : iova);
        edu_write64(bar0, EDU_REG_DMA_DST, to_ram ? iova : buf);
        edu_write64(bar0, EDU_REG_DMA_COUNT, count);
        edu_write64(bar0, EDU_REG_DMA_CMD,
                    EDU_DMA_CMD_START | (to_ram ? EDU_DMA_CMD_TO_RAM : 0) |
                        (irq ? EDU_DMA_CMD_IRQ : 0));
        return 0;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int edu_dma_wait(volatile void *bar0, int timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;
        const struct timespec tick = {.tv_nsec = 1000000};

        while (edu_read64(bar0, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START) {
                if (now_ms() > end)
                        return -ETIMEDOUT;
                nanosleep(&tick, NULL);
        }
        return 0;
}

int edu_dma(volatile void *bar0, uint64_t iova, uint32_t buf_offset, uint32_t count, bool to_ram)
{
        int r = edu_dma_start(bar0, iova, buf_offset, count, to_ram, false);

        return r < 0 ? r : edu_dma_wait(bar0, 5000);
}

int edu_eventfd_wait(int efd, int timeout_ms, uint64_t *ret_count)
{
        struct pollfd p = {.fd = efd, .events = POLLIN};
        uint64_t count;
        int r;

        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (r == 0)
                return 0;
        if (read(efd, &count, sizeof(count)) != (ssize_t)sizeof(count))
                return errno > 0 ? -errno : -EIO;
        if (ret_count)
                *ret_count = count;
        return 1;
}

void edu_pattern(uint8_t *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}
