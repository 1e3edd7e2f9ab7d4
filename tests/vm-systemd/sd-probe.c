/* SPDX-License-Identifier: MIT */
/*
 * What the real kernel does with a Type1 mapping when the process that made
 * it dies, and whether VFIO_UPDATE_VADDR can point it at another process's
 * mapping of the same memfd (the question behind vfiod's restart: see
 * daemon/state.h). Run as root on an edu device nobody holds:
 *
 *   sd-probe BDF
 *
 * The probe holds the container, group and device; a child mmaps a sealed
 * memfd and maps it with VFIO_IOMMU_MAP_DMA, then is killed with SIGKILL. The
 * probe then runs edu DMA round trips through that IOVA into its own mmap of
 * the memfd: after the death, after VFIO_DMA_UNMAP_FLAG_VADDR +
 * VFIO_DMA_MAP_FLAG_VADDR with its own address, and unmaps. One line per
 * finding, "PASS name: detail" or "FAIL name: detail"; exit status 1 when a
 * step could not run at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "tests/vm/edu.h"

#define PAGE 4096
#define IOVA UINT64_C(0x100000)

static int failed;

static void result(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result(bool ok, const char *name, const char *fmt, ...)
{
        va_list ap;

        printf("%s %s: ", ok ? "PASS" : "FAIL", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        failed |= !ok;
}

static _Noreturn void die(const char *what)
{
        printf("FAIL probe: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

/* Page 0 -> edu -> page 1; true when page 1 equals page 0 afterwards. */
static bool round_trip(volatile void *bar0, uint8_t *mem, unsigned seed)
{
        for (size_t i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 3 + seed);
        memset(mem + PAGE, 0, PAGE);
        if (edu_dma(bar0, IOVA, 0, EDU_DMA_MAX, false) < 0 ||
            edu_dma(bar0, IOVA + PAGE, 0, EDU_DMA_MAX, true) < 0)
                return false;
        return memcmp(mem, mem + PAGE, EDU_DMA_MAX) == 0;
}

int main(int argc, char **argv)
{
        char path[256], link[256];
        ssize_t n;
        int container, group, device, memfd, pipefd[2], status, ext, r;
        struct vfio_group_status gs = {.argsz = sizeof(gs)};
        volatile void *bar0;
        uint8_t *mem;
        pid_t child;
        char c;

        if (argc != 2) {
                fprintf(stderr, "usage: sd-probe BDF\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", argv[1]);
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                die(path);
        link[n] = '\0';
        snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
        container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        group = open(path, O_RDWR | O_CLOEXEC);
        if (container < 0 || group < 0)
                die("open");
        if (ioctl(group, VFIO_GROUP_GET_STATUS, &gs) < 0 || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
                die("group not viable");
        if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0 ||
            ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                die("container");
        device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
        if (device < 0)
                die("device");
        ext = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR);
        printf("INFO probe: VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) = %d\n", ext);
        if (edu_map_bar0(device, &bar0) < 0 || edu_enable_bus_master(device) < 0)
                die("edu");
        memfd = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0 || ftruncate(memfd, 2 * PAGE) < 0 ||
            fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                die("memfd");
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                die("pipe");

        /* The child maps its own mmap of the memfd into the probe's container, then dies. */
        child = fork();
        if (child < 0)
                die("fork");
        if (child == 0) {
                void *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
                struct vfio_iommu_type1_dma_map map = {
                    .argsz = sizeof(map),
                    .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                    .vaddr = (uintptr_t)p,
                    .iova = IOVA,
                    .size = 2 * PAGE,
                };
                c = p != MAP_FAILED && ioctl(container, VFIO_IOMMU_MAP_DMA, &map) == 0 ? 'y' : 'n';
                (void)!write(pipefd[1], &c, 1);
                pause();
                _exit(0);
        }
        close(pipefd[1]);
        if (read(pipefd[0], &c, 1) != 1 || c != 'y')
                die("the child's MAP_DMA");
        close(pipefd[0]);
        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
                die("mmap");
        result(round_trip(bar0, mem, 1), "probe/dma_while_mapper_alive",
               "DMA through the child's mapping reaches the memfd's pages");
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        result(round_trip(bar0, mem, 2), "probe/dma_after_mapper_killed",
               "after SIGKILL of the process that mapped it, the Type1 mapping (kept alive by "
               "the container fd) still carries DMA to the memfd's pages");

        if (ext > 0) {
                struct vfio_iommu_type1_dma_unmap unmap = {
                    .argsz = sizeof(unmap),
                    .flags = VFIO_DMA_UNMAP_FLAG_VADDR,
                    .iova = IOVA,
                    .size = 2 * PAGE,
                };
                struct vfio_iommu_type1_dma_map map = {
                    .argsz = sizeof(map),
                    .flags = VFIO_DMA_MAP_FLAG_VADDR,
                    .vaddr = (uintptr_t)mem,
                    .iova = IOVA,
                    .size = 2 * PAGE,
                };

                r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
                result(r == 0, "probe/unmap_flag_vaddr", "VFIO_DMA_UNMAP_FLAG_VADDR: %s",
                       r == 0 ? "ok" : strerror(errno));
                r = ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
                result(r == 0, "probe/map_flag_vaddr",
                       "VFIO_DMA_MAP_FLAG_VADDR with the probe's own address: %s",
                       r == 0 ? "ok" : strerror(errno));
                result(round_trip(bar0, mem, 3), "probe/dma_after_vaddr_update",
                       "DMA after the vaddr update");
        }
        {
                struct vfio_iommu_type1_dma_unmap unmap = {
                    .argsz = sizeof(unmap), .iova = IOVA, .size = 2 * PAGE};

                r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
                result(r == 0 && unmap.size == 2 * PAGE, "probe/unmap_after_mapper_gone",
                       "VFIO_IOMMU_UNMAP_DMA of the dead process's mapping: %s, %llu bytes",
                       r == 0 ? "ok" : strerror(errno), (unsigned long long)unmap.size);
        }
        munmap(mem, 2 * PAGE);
        edu_unmap_bar0(bar0);
        close(memfd);
        close(device);
        (void)ioctl(group, VFIO_GROUP_UNSET_CONTAINER);
        close(group);
        close(container);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
