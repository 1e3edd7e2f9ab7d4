/* SPDX-License-Identifier: MIT */
/*
 * The demo (`make demo`): an unprivileged user leases an edu device from
 * vfiod in BROKERED mode, has vfiod map a sealed memfd, runs a DMA copy both
 * ways, gets each completion as an MSI on an eventfd set up through vfiod,
 * checks the bytes and releases. It prints a transcript: each step with its
 * figures and time, and under it the lines vfiod logged meanwhile (read from
 * its log file, which broker-setup.sh makes readable; the fields after " -- "
 * are left out).
 *
 * Usage: demo-client [VFIOD_LOG]   (default /tmp/vfiod.log). Exit status 0
 * when every step worked, 1 otherwise. Refuses to run as root.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "client-lib/vfiod.h"
#include "tests/vm/edu.h"

#define PAGE       4096
#define IOVA       UINT64_C(0x100000)
#define BYTES      EDU_DMA_MAX /* the longest copy edu does (see edu.h) */
#define MSI_WAIT   3000
#define LOG_INDENT "        "
#define SETTLE_MS  30 /* for vfiod's lines logged just after a reply */

static FILE *vlog; /* vfiod's log, read as it grows */
static double t_start, t_step, t_paused;
static int step;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Prints what vfiod logged since the last call, after a short pause: vfiod
 * logs some lines just after its reply (e.g. the fds of a request it closed).
 * The pause counts in no figure.
 */
static void daemon_lines(void)
{
        const struct timespec settle = {.tv_nsec = SETTLE_MS * 1000000L};
        char line[1024];

        if (!vlog)
                return;
        nanosleep(&settle, NULL);
        t_paused += SETTLE_MS / 1000.0;
        clearerr(vlog);
        while (fgets(line, sizeof(line), vlog)) {
                char *cut = strstr(line, " -- ");

                if (cut)
                        *cut = '\0';
                line[strcspn(line, "\n")] = '\0';
                printf(LOG_INDENT "| %s\n", line);
        }
        fflush(stdout);
}

static void begin_step(void)
{
        step++;
        t_step = now_s();
}

/* Ends a step: its line with the time it took, then vfiod's lines. */
static void done(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void done(const char *what, const char *fmt, ...)
{
        double ms = (now_s() - t_step) * 1000;
        va_list ap;

        printf("[%d] %-16s %8.1f ms  ", step, what, ms);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        daemon_lines();
}

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...)
{
        va_list ap;

        printf("[%d] FAILED: ", step);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        daemon_lines();
        printf("demo: FAILED\n");
        exit(EXIT_FAILURE);
}

/* One DMA with an MSI at the end; returns the MSIs counted on efd. */
static unsigned dma(volatile void *bar0, int efd, uint64_t iova, bool to_ram)
{
        uint64_t n = 0;
        int r;

        r = edu_dma_start(bar0, iova, 0, BYTES, to_ram, true);
        if (r < 0)
                fail("starting the DMA: %s", strerror(-r));
        r = edu_eventfd_wait(efd, MSI_WAIT, &n);
        if (r != 1)
                fail("no MSI within %d ms of the DMA (%s)", MSI_WAIT,
                     r < 0 ? strerror(-r) : "none");
        if (!(edu_read32(bar0, EDU_REG_IRQ_STATUS) & EDU_IRQ_DMA))
                fail("an MSI, but edu's DMA interrupt bit is not set");
        edu_write32(bar0, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        return (unsigned)n;
}

int main(int argc, char **argv)
{
        const char *log_path = argc > 1 ? argv[1] : "/tmp/vfiod.log";
        struct vfiod_device_info *devs = NULL;
        struct vfiod_server_info info;
        struct vfiod_lease lease;
        const char *bdf = NULL;
        volatile void *bar0 = NULL;
        uint64_t bytes = 0;
        unsigned irqs = 0, equal = 0;
        struct vfiod *c = NULL;
        uint8_t *mem;
        size_t n = 0;
        int memfd = -1, efd = -1, r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (getuid() == 0 || geteuid() == 0) {
                printf("demo: run me as an unprivileged user, not root\n");
                return EXIT_FAILURE;
        }
        t_start = now_s();
        printf("vfiod demo: user %s (uid %u, gid %u, not root) asks vfiod for an edu device\n",
               getenv("USER") ? getenv("USER") : "?", (unsigned)getuid(), (unsigned)getgid());
        vlog = fopen(log_path, "re");
        if (vlog) {
                printf(LOG_INDENT "(lines with '|' are vfiod's own log, %s)\n", log_path);
                daemon_lines(); /* vfiod's start */
        }

        begin_step();
        r = vfiod_connect(NULL, &c);
        if (r < 0)
                fail("connecting to vfiod: %s", strerror(-r));
        (void)vfiod_get_server_info(c, &info);
        done("connect", "%s, protocol %u.%u%s", info.server_version, info.major, info.minor,
             info.capabilities & VFIOD_CAP_ADMIN ? ", admin (unexpected)" : ", not an admin");

        begin_step();
        r = vfiod_list_devices(c, NULL, &devs, &n);
        if (r < 0)
                fail("ListDevices: %s (%s)", strerror(-r), vfiod_last_error(c));
        for (size_t i = 0; i < n && !bdf; i++)
                if (devs[i].vendor_id == EDU_VENDOR && devs[i].device_id == EDU_DEVICE &&
                    devs[i].state == VFIOD_LEASE_STATE_FREE &&
                    (devs[i].allowed_modes & VFIOD_MODE_BIT(VFIOD_MODE_BROKERED)))
                        bdf = devs[i].device;
        if (!bdf)
                fail("no free edu device this user may have in brokered mode (%zu visible)", n);
        done("list devices", "%zu visible to this user; taking %s (edu 1234:11e8, free)", n, bdf);

        begin_step();
        r = vfiod_acquire(c, bdf, 0, VFIOD_MODE_BROKERED, &lease);
        if (r < 0)
                fail("Acquire %s: %s (%s)", bdf, strerror(-r), vfiod_last_error(c));
        done("acquire",
             "lease %" PRIu64 ", domain %" PRIu64 ", IOMMU group %u, brokered: "
             "device fd only (container fd %d, group fd %d)",
             lease.lease_id, lease.domain_id, lease.iommu_group, lease.container_fd,
             lease.group_fd);
        vfiod_devices_free(devs, n);
        bdf = lease.device;

        begin_step();
        r = vfiod_memfd_create("demo", 2 * PAGE, &memfd);
        if (r < 0)
                fail("memfd: %s", strerror(-r));
        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
                fail("mmap: %s", strerror(errno));
        r = vfiod_map_dma(c, lease.domain_id,
                          &(struct vfiod_dma_range){.fd = memfd,
                                                    .iova = IOVA,
                                                    .size = 2 * PAGE,
                                                    .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                          1, &bytes);
        if (r < 0)
                fail("MapDma: %s (%s)", strerror(-r), vfiod_last_error(c));
        done("map memfd",
             "%d KiB memfd sealed (shrink, grow, seal); vfiod mapped %" PRIu64
             " bytes at IOVA 0x%" PRIx64,
             2 * PAGE / 1024, bytes, IOVA);

        begin_step();
        r = edu_map_bar0(lease.device_fd, &bar0);
        if (r < 0)
                fail("mapping BAR0: %s", strerror(-r));
        r = edu_enable_bus_master(lease.device_fd);
        if (r < 0)
                fail("bus mastering: %s", strerror(-r));
        edu_write32(bar0, EDU_REG_IRQ_ACK, ~UINT32_C(0));
        r = vfiod_setup_msi(c, lease.lease_id, VFIOD_IRQ_INDEX_MSI, 1, &efd);
        if (r < 0)
                fail("SetIrqs MSI: %s (%s)", strerror(-r), vfiod_last_error(c));
        done("MSI via vfiod", "1 MSI vector on an eventfd (SetIrqs); BAR0 mapped, bus master on");

        for (size_t i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 7 + 3 + (i >> 8));
        memset(mem + PAGE, 0, PAGE);

        begin_step();
        irqs += dma(bar0, efd, IOVA, false);
        done("DMA memory->edu",
             "%u bytes from IOVA 0x%" PRIx64 " into edu's buffer; MSI %u received", (unsigned)BYTES,
             IOVA, irqs);

        begin_step();
        irqs += dma(bar0, efd, IOVA + PAGE, true);
        done("DMA edu->memory", "%u bytes from edu's buffer to IOVA 0x%" PRIx64 "; MSI %u received",
             (unsigned)BYTES, IOVA + PAGE, irqs);

        begin_step();
        for (size_t i = 0; i < BYTES; i++)
                equal += mem[PAGE + i] == mem[i];
        if (equal != BYTES)
                fail("%u of %u bytes came back equal", equal, (unsigned)BYTES);
        if (mem[PAGE + BYTES] != 0)
                fail("the byte after the copy changed");
        done("check bytes", "%u of %u bytes equal (the memfd's page 1 = page 0), none beyond",
             equal, (unsigned)BYTES);

        begin_step();
        r = vfiod_disable_irqs(c, lease.lease_id, VFIOD_IRQ_INDEX_MSI);
        if (r < 0)
                fail("disabling MSI: %s (%s)", strerror(-r), vfiod_last_error(c));
        r = vfiod_unmap_dma(c, lease.domain_id,
                            &(struct vfiod_iova_range){.iova = IOVA, .size = 2 * PAGE}, 1, &bytes);
        if (r < 0)
                fail("UnmapDma: %s (%s)", strerror(-r), vfiod_last_error(c));
        close(efd);
        edu_unmap_bar0(bar0);
        munmap(mem, 2 * PAGE);
        close(memfd);
        vfiod_lease_close_fds(&lease);
        r = vfiod_release(c, lease.lease_id);
        if (r < 0)
                fail("Release: %s (%s)", strerror(-r), vfiod_last_error(c));
        done("release",
             "MSI off, %" PRIu64 " bytes unmapped, fds closed, lease %" PRIu64 " given back", bytes,
             lease.lease_id);
        vfiod_close(c);
        daemon_lines(); /* the disconnect */

        printf("demo: OK: %u bytes moved by DMA (%u each way), %u MSIs received, %.2f s in all\n",
               2 * (unsigned)BYTES, (unsigned)BYTES, irqs, now_s() - t_start - t_paused);
        if (vlog)
                fclose(vlog);
        return EXIT_SUCCESS;
}
