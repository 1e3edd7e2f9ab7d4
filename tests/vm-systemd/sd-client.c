/* SPDX-License-Identifier: MIT */
/*
 * The client of the systemd VM suite: an unprivileged program that holds a
 * BROKERED lease on an edu device while the suite restarts vfiod around it.
 *
 * Usage: sd-client [--direct] BDF. It connects to vfiod's socket (its first
 * connection starts vfiod through vfiod.socket), acquires BDF in brokered
 * mode, has vfiod map a sealed 2-page memfd at IOVA 0x100000 and set up one
 * MSI vector on an eventfd, runs one DMA round trip, and prints "ready LEASE
 * msi=N". With --direct it acquires BDF in DIRECT mode and maps 2 pages of
 * its own memory at that IOVA itself (VFIO_IOMMU_MAP_DMA on the container fd
 * it got; no MSI: it polls edu's DMA status). Then it reads
 * commands on stdin, one per line, and answers one line each:
 *   dma            a fresh DMA round trip through the SAME mapping:
 *                  "ok dma msi=N" or "fail dma: WHY"
 *   ping           a request on the SAME connection (ListDevices):
 *                  "ok ping N" or "fail ping: WHY"
 *   acquire BDF    another device: "ok acquire LEASE" or "fail acquire: ERRNO WHY"
 *   release        releases its leases: "ok release" or "fail release: WHY"
 * and exits at end of input. Refuses to run as root.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "client-lib/vfiod.h"
#include "tests/vm/edu.h"

#define PAGE     4096
#define IOVA     UINT64_C(0x100000)
#define BYTES    EDU_DMA_MAX
#define MSI_WAIT 3000

static struct vfiod *c;
static struct vfiod_lease lease;
static volatile void *bar0;
static uint8_t *mem;
static int efd = -1;
static unsigned round_no;
static bool direct;

static int answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int answer(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        return 0;
}

/* One copy; 1 when its MSI came, 0 when not, <0 when the copy did not finish. */
static int copy(uint64_t iova, bool to_ram)
{
        uint64_t n = 0;
        int r;

        r = edu_dma_start(bar0, iova, 0, BYTES, to_ram, efd >= 0);
        if (r < 0)
                return r;
        r = efd >= 0 ? edu_eventfd_wait(efd, MSI_WAIT, &n) : 0;
        for (int i = 0; i < 1000 && (edu_read32(bar0, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START); i++)
                usleep(1000);
        if (edu_read32(bar0, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START)
                return -ETIMEDOUT;
        edu_write32(bar0, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        return r == 1 ? 1 : 0;
}

/* memory -> edu -> memory (page 0 to page 1) with a pattern of this round. */
static int dma_round(char *why, size_t len)
{
        int msi = 0, r;

        round_no++;
        for (size_t i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 7 + round_no * 13 + (i >> 8));
        memset(mem + PAGE, 0, PAGE);
        r = copy(IOVA, false);
        if (r < 0)
                return snprintf(why, len, "DMA to edu: %s", strerror(-r)), -1;
        msi += r;
        r = copy(IOVA + PAGE, true);
        if (r < 0)
                return snprintf(why, len, "DMA to memory: %s", strerror(-r)), -1;
        msi += r;
        for (size_t i = 0; i < BYTES; i++)
                if (mem[PAGE + i] != mem[i])
                        return snprintf(why, len, "byte %zu differs after the round trip", i), -1;
        return msi;
}

static int setup(const char *bdf)
{
        char why[256];
        uint64_t bytes = 0;
        int memfd = -1, r;

        r = vfiod_connect(NULL, &c);
        if (r < 0)
                return answer("fail connect: %s", strerror(-r)), -1;
        r = vfiod_acquire(c, bdf, 0, direct ? VFIOD_MODE_DIRECT : VFIOD_MODE_BROKERED, &lease);
        if (r < 0)
                return answer("fail acquire: %s (%s)", strerror(-r), vfiod_last_error(c)), -1;
        if (direct) {
                struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map)};

                mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                           0);
                if (mem == MAP_FAILED)
                        return answer("fail mmap: %m"), -1;
                map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
                map.vaddr = (uintptr_t)mem;
                map.iova = IOVA;
                map.size = 2 * PAGE;
                if (ioctl(lease.container_fd, VFIO_IOMMU_MAP_DMA, &map) < 0)
                        return answer("fail VFIO_IOMMU_MAP_DMA: %m"), -1;
                r = edu_map_bar0(lease.device_fd, &bar0);
                if (r < 0)
                        return answer("fail BAR0: %s", strerror(-r)), -1;
                r = edu_enable_bus_master(lease.device_fd);
                if (r < 0)
                        return answer("fail bus master: %s", strerror(-r)), -1;
                edu_write32(bar0, EDU_REG_IRQ_ACK, ~UINT32_C(0));
                r = dma_round(why, sizeof(why));
                if (r < 0)
                        return answer("fail first DMA: %s", why), -1;
                return answer("ready %" PRIu64 " direct", lease.lease_id);
        }
        r = vfiod_memfd_create("sd-client", 2 * PAGE, &memfd);
        if (r < 0)
                return answer("fail memfd: %s", strerror(-r)), -1;
        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
                return answer("fail mmap: %m"), -1;
        r = vfiod_map_dma(c, lease.domain_id,
                          &(struct vfiod_dma_range){.fd = memfd,
                                                    .iova = IOVA,
                                                    .size = 2 * PAGE,
                                                    .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                          1, &bytes);
        close(memfd); /* the pages stay: mem maps them, and so does vfiod */
        if (r < 0)
                return answer("fail MapDma: %s (%s)", strerror(-r), vfiod_last_error(c)), -1;
        r = edu_map_bar0(lease.device_fd, &bar0);
        if (r < 0)
                return answer("fail BAR0: %s", strerror(-r)), -1;
        r = edu_enable_bus_master(lease.device_fd);
        if (r < 0)
                return answer("fail bus master: %s", strerror(-r)), -1;
        edu_write32(bar0, EDU_REG_IRQ_ACK, ~UINT32_C(0));
        r = vfiod_setup_msi(c, lease.lease_id, VFIOD_IRQ_INDEX_MSI, 1, &efd);
        if (r < 0)
                return answer("fail SetIrqs: %s (%s)", strerror(-r), vfiod_last_error(c)), -1;
        r = dma_round(why, sizeof(why));
        if (r < 0)
                return answer("fail first DMA: %s", why), -1;
        return answer("ready %" PRIu64 " msi=%d", lease.lease_id, r);
}

int main(int argc, char **argv)
{
        char line[256], why[256];

        if (getuid() == 0 || geteuid() == 0) {
                printf("fail: run me as an unprivileged user\n");
                return EXIT_FAILURE;
        }
        direct = argc == 3 && strcmp(argv[1], "--direct") == 0;
        if (argc != 2 + direct) {
                printf("fail: usage: sd-client [--direct] BDF\n");
                return EXIT_FAILURE;
        }
        if (setup(argv[argc - 1]) < 0)
                return EXIT_FAILURE;
        while (fgets(line, sizeof(line), stdin)) {
                line[strcspn(line, "\n")] = '\0';
                if (strcmp(line, "dma") == 0) {
                        int r = dma_round(why, sizeof(why));

                        if (r < 0)
                                answer("fail dma: %s", why);
                        else
                                answer("ok dma msi=%d", r);
                } else if (strcmp(line, "ping") == 0) {
                        struct vfiod_device_info *devs = NULL;
                        size_t n = 0;
                        int r = vfiod_list_devices(c, NULL, &devs, &n);

                        if (r < 0)
                                answer("fail ping: %s (%s)", strerror(-r), vfiod_last_error(c));
                        else
                                answer("ok ping %zu", n);
                        vfiod_devices_free(devs, n);
                } else if (strncmp(line, "acquire ", 8) == 0) {
                        struct vfiod_lease l2;
                        int r = vfiod_acquire(c, line + 8, 0, VFIOD_MODE_BROKERED, &l2);

                        if (r < 0) {
                                answer("fail acquire: %d %s", -r, vfiod_last_error(c));
                        } else {
                                answer("ok acquire %" PRIu64, l2.lease_id);
                                vfiod_lease_close_fds(&l2);
                        }
                } else if (strcmp(line, "release") == 0) {
                        int r = vfiod_release(c, lease.lease_id);

                        if (r < 0)
                                answer("fail release: %s (%s)", strerror(-r), vfiod_last_error(c));
                        else
                                answer("ok release");
                } else {
                        answer("fail: unknown command '%s'", line);
                }
        }
        vfiod_close(c);
        return EXIT_SUCCESS;
}
