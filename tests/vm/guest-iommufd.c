/* SPDX-License-Identifier: MIT */
/*
 * The driver layer's iommufd side (kernel/iommufd.h) against Linux's real
 * iommufd and VFIO device cdevs, in the VM of `make check-vm-iommufd`: a
 * kernel built with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV next to the
 * container interface, three edu devices, each alone in its IOMMU group,
 * bound to vfio-pci, an emulated Intel IOMMU.
 *
 * Each test opens what it needs and closes it again (the fd check enforces
 * it). DMA goes through edu's engine; a DMA the IOMMU refuses makes QEMU
 * print a VT-d fault on the console (expected).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/group.h"
#include "kernel/iommufd.h"
#include "kernel/irq.h"
#include "kernel/sysfs.h"
#include "tests/testutil.h"
#include "tests/vm/edu.h"

#define N_EDU   3
#define PAGE    4096
#define IOVA    UINT64_C(0x100000) /* well below edu's 28-bit DMA mask */
#define WAIT_MS 3000
#define RW      (KVFIO_DMA_READ | KVFIO_DMA_WRITE)

struct edus {
        char bdf[N_EDU][KVFIO_BDF_MAX];
        int group[N_EDU];
        int cdev[N_EDU];
};

/* The edu devices, sorted by address; asserts there are exactly N_EDU, each with a cdev. */
static void find_edus(struct edus *e)
{
        struct kvfio_pci_list *list = NULL;
        size_t n = 0;
        int r;

        r = kvfio_pci_discover("/", &list);
        ck_assert_msg(r == 0, "kvfio_pci_discover: %s", strerror(-r));
        for (size_t i = 0; i < list->n; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];

                if (d->vendor != EDU_VENDOR || d->device != EDU_DEVICE)
                        continue;
                ck_assert_int_lt(n, N_EDU);
                memcpy(e->bdf[n], d->bdf, KVFIO_BDF_MAX);
                e->group[n] = d->iommu_group;
                e->cdev[n] = d->vfio_cdev;
                ck_assert_msg(d->vfio_cdev >= 0, "%s has no vfio-dev/vfioN", d->bdf);
                n++;
        }
        kvfio_pci_list_free(list);
        ck_assert_msg(n == N_EDU, "%zu edu devices, want %d", n, N_EDU);
}

/* An iommufd, one IOAS, and edu 0..n-1 opened by their cdevs, bound and attached. */
struct ctx {
        int iommufd;
        uint32_t ioas;
        int n;
        int device[N_EDU];
        uint32_t dev_id[N_EDU];
        volatile void *bar0[N_EDU];
        struct edus e;
};

static int cdev_bind(struct ctx *c, int i)
{
        int fd, r;

        fd = kvfio_cdev_open(c->e.cdev[i], NULL);
        ck_assert_msg(fd >= 0, "kvfio_cdev_open(%d): %s", c->e.cdev[i], strerror(-fd));
        r = kvfio_device_bind_iommufd(fd, c->iommufd, &c->dev_id[i]);
        ck_assert_msg(r == 0, "kvfio_device_bind_iommufd(%s): %s", c->e.bdf[i], strerror(-r));
        return fd;
}

static void ctx_open(struct ctx *c, int n, bool attach)
{
        int r;

        memset(c, 0, sizeof(*c));
        find_edus(&c->e);
        c->n = n;
        c->iommufd = kvfio_iommufd_open(NULL);
        ck_assert_msg(c->iommufd >= 0, "kvfio_iommufd_open: %s", strerror(-c->iommufd));
        r = kvfio_ioas_alloc(c->iommufd, &c->ioas);
        ck_assert_msg(r == 0, "kvfio_ioas_alloc: %s", strerror(-r));
        for (int i = 0; i < n; i++) {
                c->device[i] = cdev_bind(c, i);
                if (attach) {
                        r = kvfio_device_attach_ioas(c->device[i], c->ioas, NULL);
                        ck_assert_msg(r == 0, "kvfio_device_attach_ioas: %s", strerror(-r));
                }
                r = edu_map_bar0(c->device[i], &c->bar0[i]);
                ck_assert_msg(r == 0, "edu_map_bar0: %s", strerror(-r));
                r = edu_enable_bus_master(c->device[i]);
                ck_assert_msg(r == 0, "edu_enable_bus_master: %s", strerror(-r));
                /* edu keeps its registers across resets: clear what a failed test left. */
                edu_write32(c->bar0[i], EDU_REG_IRQ_ACK, ~UINT32_C(0));
        }
}

static void ctx_close(struct ctx *c)
{
        for (int i = 0; i < c->n; i++) {
                edu_unmap_bar0(c->bar0[i]);
                close(c->device[i]);
        }
        close(c->iommufd);
}

/* n bytes of anonymous memory, page-aligned, filled with byte `fill`. */
static uint8_t *pages(size_t n, int fill)
{
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        memset(p, fill, n);
        return p;
}

/* --- discovery -------------------------------------------------------------- */

/*
 * Both interfaces are offered; each edu has a cdev of its own whose node's
 * device number is the one sysfs gives.
 */
START_TEST(test_discover_cdevs)
{
        char path[64], text[32];
        unsigned maj, min;
        struct edus e;
        struct stat st;
        FILE *f;

        ck_assert_int_eq(kvfio_vfio_interfaces("/"), KVFIO_IF_CONTAINER | KVFIO_IF_IOMMUFD);
        find_edus(&e);
        for (int i = 0; i < N_EDU; i++) {
                for (int j = 0; j < i; j++)
                        ck_assert_int_ne(e.cdev[i], e.cdev[j]);
                ck_assert_int_eq(kvfio_dev_vfio_cdev("/", e.bdf[i]), e.cdev[i]);
                snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev/vfio%d/dev",
                         e.bdf[i], e.cdev[i]);
                f = fopen(path, "re");
                ck_assert_msg(f, "%s: %s", path, strerror(errno));
                ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
                fclose(f);
                ck_assert_int_eq(sscanf(text, "%u:%u", &maj, &min), 2);
                snprintf(path, sizeof(path), "%s/vfio%d", KVFIO_CDEV_DIR, e.cdev[i]);
                ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
                ck_assert(S_ISCHR(st.st_mode));
                ck_assert_uint_eq(major(st.st_rdev), maj);
                ck_assert_uint_eq(minor(st.st_rdev), min);
        }
        /* A device that is not bound to a VFIO driver has no cdev. */
        ck_assert_int_eq(kvfio_dev_vfio_cdev("/", "0000:00:00.0"), -ENOENT);
}
END_TEST

/* --- the iommufd context and its IOAS -------------------------------------- */

/*
 * RLIMIT_MODE: per user by default, per process once set; set only while
 * the iommufd is empty; MAP_FILE is not in 6.12.
 */
START_TEST(test_iommufd_options)
{
        uint32_t ioas = 0;
        int fd, r;

        fd = kvfio_iommufd_open(NULL);
        ck_assert_msg(fd >= 0, "kvfio_iommufd_open: %s", strerror(-fd));
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(kvfio_iommufd_get_rlimit_mode(fd), KVFIO_IOMMUFD_RLIMIT_USER);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_PROCESS), 0);
        ck_assert_int_eq(kvfio_iommufd_get_rlimit_mode(fd), KVFIO_IOMMUFD_RLIMIT_PROCESS);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_USER), 0);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, 2), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_alloc(fd, &ioas), 0);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_PROCESS), -EBUSY);
        ck_assert_int_eq(kvfio_iommufd_get_rlimit_mode(fd), KVFIO_IOMMUFD_RLIMIT_USER);

        r = kvfio_iommufd_has_map_file(fd);
        ck_assert_msg(r == 0, "6.12 has no IOMMU_IOAS_MAP_FILE, but the probe says %d", r);
        ck_assert_int_eq(kvfio_ioas_map_file(fd, ioas, fd, 0, IOVA, PAGE, RW), -EOPNOTSUPP);
        close(fd);

        /* Another open is another context: the IOAS is not visible there. */
        fd = kvfio_iommufd_open(NULL);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(kvfio_ioas_destroy(fd, ioas), -ENOENT);
        /* Without CAP_SYS_RESOURCE the mode cannot be set. */
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(10);
                r = kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_PROCESS);
                _exit(r == -EPERM ? 0 : 20);
        }
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child: %#x (10: dropping root failed, 20: set without the capability)",
                      status);
        close(fd);
        ck_assert_int_eq(kvfio_iommufd_open("/dev/null"), -ENOTTY);
}
END_TEST

/* IOAS ids, their IOVA ranges before and after a device joins, destroy. */
START_TEST(test_ioas_alloc_destroy)
{
        struct kvfio_ioas_info *info = NULL;
        uint32_t second = 0;
        bool msi_hole = false;
        struct ctx c;
        int r;

        ctx_open(&c, 1, false);
        ck_assert_int_eq(kvfio_ioas_alloc(c.iommufd, &second), 0);
        ck_assert_uint_ne(second, c.ioas);
        ck_assert_int_eq(kvfio_ioas_get_info(c.iommufd, c.ioas, &info), 0);
        ck_assert_uint_ge(info->n_iova_ranges, 1);
        kvfio_ioas_info_free(info);
        info = NULL;

        /* Attached: VT-d's 4 KiB pages, and the MSI window is reserved. */
        r = kvfio_device_attach_ioas(c.device[0], c.ioas, NULL);
        ck_assert_msg(r == 0, "kvfio_device_attach_ioas: %s", strerror(-r));
        ck_assert_int_eq(kvfio_ioas_get_info(c.iommufd, c.ioas, &info), 0);
        ck_assert_uint_eq(info->iova_alignment, PAGE);
        ck_assert_uint_ge(info->n_iova_ranges, 2);
        ck_assert_uint_eq(info->iova_ranges[0].start, 0);
        for (size_t i = 0; i < info->n_iova_ranges; i++) {
                ck_assert_uint_le(info->iova_ranges[i].start, info->iova_ranges[i].end);
                if (info->iova_ranges[i].end == UINT64_C(0xfedfffff))
                        msi_hole = true;
        }
        ck_assert_msg(msi_hole, "no range ends below the MSI window at 0xfee00000");
        kvfio_ioas_info_free(info);

        ck_assert_int_eq(kvfio_ioas_destroy(c.iommufd, c.ioas), -EBUSY);
        ck_assert_int_eq(kvfio_ioas_destroy(c.iommufd, second), 0);
        ck_assert_int_eq(kvfio_ioas_destroy(c.iommufd, second), -ENOENT);
        ck_assert_int_eq(kvfio_ioas_get_info(c.iommufd, second, &info), -ENOENT);
        ck_assert_int_eq(kvfio_device_detach_ioas(c.device[0]), 0);
        ck_assert_int_eq(kvfio_ioas_destroy(c.iommufd, c.ioas), 0);
        ctx_close(&c);
}
END_TEST

/* --- the device cdev --------------------------------------------------------- */

/*
 * An unbound cdev fd does nothing; bound, it is a device fd as from a group;
 * attach, move, detach.
 */
START_TEST(test_bind_attach_detach)
{
        struct kvfio_region_info *bar0 = NULL;
        struct kvfio_device_info di;
        uint32_t id = 0, dev_id = 0, pt = 0, other = 0;
        struct edus e;
        int iommufd, fd, fd2, r;

        find_edus(&e);
        iommufd = kvfio_iommufd_open(NULL);
        ck_assert_int_ge(iommufd, 0);
        ck_assert_int_eq(kvfio_ioas_alloc(iommufd, &id), 0);
        ck_assert_int_eq(kvfio_ioas_alloc(iommufd, &other), 0);
        fd = kvfio_cdev_open(e.cdev[0], NULL);
        ck_assert_msg(fd >= 0, "kvfio_cdev_open: %s", strerror(-fd));
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

        /* Unbound: everything else is refused. */
        ck_assert_int_eq(kvfio_device_get_info(fd, &di), -EINVAL);
        ck_assert_int_eq(kvfio_device_attach_ioas(fd, id, &pt), -EINVAL);
        ck_assert_int_eq(kvfio_device_detach_ioas(fd), -EINVAL);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, fd, &dev_id), -EBADFD);

        r = kvfio_device_bind_iommufd(fd, iommufd, &dev_id);
        ck_assert_msg(r == 0, "kvfio_device_bind_iommufd: %s", strerror(-r));
        ck_assert_uint_ne(dev_id, id);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, iommufd, NULL), -EINVAL);
        /* A second fd of the same device opens, but cannot be bound too. */
        fd2 = kvfio_cdev_open(e.cdev[0], NULL);
        ck_assert_int_ge(fd2, 0);
        r = kvfio_device_bind_iommufd(fd2, iommufd, NULL);
        ck_assert_msg(r == -EINVAL, "second bind: %d", r);
        close(fd2);

        /* Bound: a device fd like any other. */
        ck_assert_int_eq(kvfio_device_get_info(fd, &di), 0);
        ck_assert(di.is_pci);
        ck_assert(di.reset_supported);
        ck_assert_int_eq(kvfio_device_get_region_info(fd, VFIO_PCI_BAR0_REGION_INDEX, &bar0), 0);
        ck_assert_uint_eq(bar0->size, EDU_BAR0_SIZE);
        uint32_t reg = 0;
        ck_assert_int_eq(kvfio_region_read(fd, bar0, EDU_REG_ID, &reg, 4), 0);
        ck_assert_msg(edu_id_valid(reg), "ID register %#x", reg);
        kvfio_region_info_free(bar0);

        ck_assert_int_eq(kvfio_device_attach_ioas(fd, 999, &pt), -ENOENT);
        ck_assert_int_eq(kvfio_device_attach_ioas(fd, dev_id, &pt), -EINVAL);
        r = kvfio_device_attach_ioas(fd, id, &pt);
        ck_assert_msg(r == 0, "kvfio_device_attach_ioas: %s", strerror(-r));
        ck_assert_uint_ne(pt, 0);
        /* Moved to another IOAS while attached (a replace), then detached. */
        r = kvfio_device_attach_ioas(fd, other, NULL);
        ck_assert_msg(r == 0, "attach to the second IOAS: %s", strerror(-r));
        ck_assert_int_eq(kvfio_ioas_destroy(iommufd, other), -EBUSY);
        ck_assert_int_eq(kvfio_ioas_destroy(iommufd, id), 0);
        ck_assert_int_eq(kvfio_device_detach_ioas(fd), 0);
        ck_assert_int_eq(kvfio_device_detach_ioas(fd), 0);
        ck_assert_int_eq(kvfio_device_reset(fd), 0);
        ck_assert_int_eq(kvfio_ioas_destroy(iommufd, other), 0);

        /* The iommufd closed first: the bound device keeps the context alive. */
        close(iommufd);
        ck_assert_int_eq(kvfio_device_get_info(fd, &di), 0);
        close(fd);

        /* Closing the device fd unbinds: a new fd binds to a new iommufd. */
        iommufd = kvfio_iommufd_open(NULL);
        fd = kvfio_cdev_open(e.cdev[0], NULL);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, iommufd, NULL), 0);
        close(fd);
        close(iommufd);
        ck_assert_int_eq(kvfio_cdev_open(9999, NULL), -ENOENT);
}
END_TEST

/* A device is used through its group or its cdev, never both at once. */
START_TEST(test_group_or_cdev)
{
        struct kvfio_group_status st;
        int iommufd, fd, group, container, dev, r;
        struct edus e;

        find_edus(&e);
        iommufd = kvfio_iommufd_open(NULL);
        ck_assert_int_ge(iommufd, 0);

        /* The group open: the cdev opens but does not bind. */
        group = kvfio_group_open(e.group[1], NULL);
        ck_assert_msg(group >= 0, "kvfio_group_open: %s", strerror(-group));
        fd = kvfio_cdev_open(e.cdev[1], NULL);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, iommufd, NULL), -EBUSY);
        close(fd);

        /* A device fd from the group is not a cdev: no bind. */
        container = kvfio_container_open(NULL);
        ck_assert_int_ge(container, 0);
        ck_assert_int_eq(kvfio_group_set_container(group, container), 0);
        ck_assert_int_eq(kvfio_container_set_iommu(container, KVFIO_IOMMU_TYPE1v2),
                         KVFIO_IOMMU_TYPE1v2);
        dev = kvfio_group_get_device_fd(group, e.bdf[1]);
        ck_assert_msg(dev >= 0, "kvfio_group_get_device_fd: %s", strerror(-dev));
        ck_assert_int_eq(kvfio_device_bind_iommufd(dev, iommufd, NULL), -EINVAL);
        /* ...and resets with its group fds, not through an iommufd. */
        struct kvfio_hot_reset_info *hi = NULL;
        ck_assert_int_eq(kvfio_device_get_hot_reset_info(dev, &hi), 0);
        ck_assert(!hi->dev_ids);
        ck_assert_int_eq(hi->devs[0].group_id, e.group[1]);
        kvfio_hot_reset_info_free(hi);
        ck_assert_int_eq(kvfio_device_hot_reset_cdev(dev), -EINVAL);
        close(dev);
        ck_assert_int_eq(kvfio_group_unset_container(group), 0);
        close(container);
        close(group);

        /* The cdev bound: the group does not open; unbound (closed), it does. */
        fd = kvfio_cdev_open(e.cdev[1], NULL);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, iommufd, NULL), 0);
        ck_assert_int_eq(kvfio_group_open(e.group[1], NULL), -EBUSY);
        close(fd);
        group = kvfio_group_open(e.group[1], NULL);
        ck_assert_msg(group >= 0, "group after the cdev closed: %s", strerror(-group));
        r = kvfio_group_get_status(group, &st);
        ck_assert_int_eq(r, 0);
        ck_assert(st.viable);
        close(group);
        close(iommufd);
}
END_TEST

/*
 * The bus-wide reset of a cdev: the info names devices by their iommufd id,
 * the reset takes no group fds (ownership through the iommufd); the INTx
 * status goes as with the group's reset.
 */
START_TEST(test_hot_reset_cdev)
{
        struct kvfio_hot_reset_info *hi = NULL;
        uint32_t status = 0;
        char bdf[16];
        struct ctx c;
        int r;

        ctx_open(&c, 1, true);
        r = kvfio_device_get_hot_reset_info(c.device[0], &hi);
        ck_assert_msg(r == 0, "kvfio_device_get_hot_reset_info: %s", strerror(-r));
        ck_assert(hi->dev_ids);
        ck_assert(hi->owned);
        ck_assert_uint_eq(hi->n, 1);
        ck_assert_str_eq(kvfio_hot_reset_dep_bdf(&hi->devs[0], bdf), c.e.bdf[0]);
        ck_assert_uint_eq(hi->devs[0].group_id, c.dev_id[0]);
        kvfio_hot_reset_info_free(hi);

        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x8);
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert(status & PCI_STATUS_INTERRUPT);
        /* Group fds are for a group's device fd. */
        ck_assert_int_eq(kvfio_device_hot_reset(c.device[0], &c.iommufd, 1), -EINVAL);
        r = kvfio_device_hot_reset_cdev(c.device[0]);
        ck_assert_msg(r == 0, "kvfio_device_hot_reset_cdev: %s", strerror(-r));
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert_msg(!(status & PCI_STATUS_INTERRUPT), "status %#x after the reset", status);
        ck_assert(edu_id_valid(edu_read32(c.bar0[0], EDU_REG_ID)));
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x8);
        ctx_close(&c);
}
END_TEST

/* --- DMA through an IOAS ------------------------------------------------------ */

/* host -> edu -> host through IOAS mappings, and edu's MSI on an eventfd. */
START_TEST(test_dma_roundtrip_msi)
{
        uint8_t *src = pages(PAGE, 0), *dst = pages(PAGE, 0);
        uint64_t unmapped = 0, count = 0;
        struct ctx c;
        int efd, r;

        ctx_open(&c, 1, true);
        edu_pattern(src, PAGE, 3);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, src, IOVA, PAGE, KVFIO_DMA_READ), 0);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, dst, IOVA + PAGE, PAGE, KVFIO_DMA_WRITE),
                         0);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        r = kvfio_irq_set_eventfds(c.device[0], VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &efd);
        ck_assert_msg(r == 0, "enable MSI: %s", strerror(-r));

        ck_assert_int_eq(edu_dma_start(c.bar0[0], IOVA, 0, EDU_DMA_MAX, false, true), 0);
        ck_assert_int_eq(edu_eventfd_wait(efd, WAIT_MS, &count), 1);
        ck_assert_uint_eq(count, 1);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        ck_assert_int_eq(edu_dma_start(c.bar0[0], IOVA + PAGE, 0, EDU_DMA_MAX, true, true), 0);
        ck_assert_int_eq(edu_eventfd_wait(efd, WAIT_MS, NULL), 1);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        ck_assert(memcmp(dst, src, EDU_DMA_MAX) == 0);
        ck_assert_uint_eq(dst[EDU_DMA_MAX], 0);

        ck_assert_int_eq(kvfio_irq_disable(c.device[0], VFIO_PCI_MSI_IRQ_INDEX), 0);
        ck_assert_int_eq(kvfio_ioas_unmap_all(c.iommufd, c.ioas, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 2 * PAGE);
        close(efd);
        ctx_close(&c);
        munmap(src, PAGE);
        munmap(dst, PAGE);
}
END_TEST

/* Unmapped, or the device detached: its write no longer reaches the page. */
START_TEST(test_unmap_and_detach_block_dma)
{
        uint8_t *src = pages(PAGE, 0), *dst = pages(PAGE, 0xaa);
        uint64_t unmapped = 0;
        struct ctx c;

        ctx_open(&c, 1, true);
        edu_pattern(src, PAGE, 11);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, src, IOVA, PAGE, KVFIO_DMA_READ), 0);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, dst, IOVA + PAGE, PAGE, KVFIO_DMA_WRITE),
                         0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA, 0, EDU_DMA_MAX, false), 0);

        /* Mapped: the write lands (the control)... */
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, 256, true), 0);
        ck_assert(memcmp(dst, src, 256) == 0);
        memset(dst, 0xaa, PAGE);

        /* ...detached: it does not; attached again: it does... */
        ck_assert_int_eq(kvfio_device_detach_ioas(c.device[0]), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, EDU_DMA_MAX, true), 0);
        for (size_t i = 0; i < PAGE; i++)
                ck_assert_msg(dst[i] == 0xaa, "byte %zu changed to %#x while detached", i, dst[i]);
        ck_assert_int_eq(kvfio_device_attach_ioas(c.device[0], c.ioas, NULL), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, 256, true), 0);
        ck_assert(memcmp(dst, src, 256) == 0);
        memset(dst, 0xaa, PAGE);

        /* ...unmapped: it does not. */
        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, c.ioas, IOVA + PAGE, PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, PAGE);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, EDU_DMA_MAX, true), 0);
        for (size_t i = 0; i < PAGE; i++)
                ck_assert_msg(dst[i] == 0xaa, "byte %zu changed to %#x after unmap", i, dst[i]);

        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, c.ioas, IOVA, PAGE, NULL), 0);
        ctx_close(&c);
        munmap(src, PAGE);
        munmap(dst, PAGE);
}
END_TEST

/* Two devices in one IOAS: one mapping, a DMA by each through it. */
START_TEST(test_two_devices_share_ioas)
{
        uint8_t *buf = pages(2 * PAGE, 0);
        struct ctx c;

        ctx_open(&c, 2, true);
        edu_pattern(buf, PAGE, 5);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA, 2 * PAGE, RW), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA, 0, 512, false), 0);
        ck_assert_int_eq(edu_dma(c.bar0[1], IOVA, 0, 512, false), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, 512, true), 0);
        ck_assert(memcmp(buf + PAGE, buf, 512) == 0);
        memset(buf + PAGE, 0, PAGE);
        ck_assert_int_eq(edu_dma(c.bar0[1], IOVA + PAGE + 1024, 0, 512, true), 0);
        ck_assert(memcmp(buf + PAGE + 1024, buf, 512) == 0);
        ck_assert_int_eq(kvfio_ioas_unmap_all(c.iommufd, c.ioas, NULL), 0);
        ctx_close(&c);
        munmap(buf, 2 * PAGE);
}
END_TEST

/* The kernel's answers to bad mappings and unmaps, each named. */
START_TEST(test_map_errors)
{
        uint8_t *buf = pages(4 * PAGE, 0);
        uint64_t unmapped = 7;
        struct ctx c;
        void *hole;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA, 2 * PAGE, RW), 0);
        /* overlaps: the same range, its tail, around it */
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA, 2 * PAGE, RW), -EEXIST);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA + PAGE, 2 * PAGE, RW),
                         -EEXIST);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA - PAGE, 4 * PAGE, RW),
                         -EEXIST);
        /* misaligned IOVA or length, the MSI window (reserved); an unknown IOAS */
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA + 8 * PAGE + 1, PAGE, RW),
                         -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, IOVA + 8 * PAGE, PAGE - 1, RW),
                         -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, 999, buf, IOVA + 8 * PAGE, PAGE, RW), -ENOENT);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, buf, UINT64_C(0xfee00000), PAGE, RW),
                         -EINVAL);
        /* memory that is not mapped in this process */
        hole = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert(hole != MAP_FAILED);
        munmap(hole, PAGE);
        ck_assert_int_eq(kvfio_ioas_map(c.iommufd, c.ioas, hole, IOVA + 8 * PAGE, PAGE, RW),
                         -EFAULT);

        /* unmaps: nothing there, a split, an unknown IOAS */
        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, c.ioas, IOVA + 8 * PAGE, PAGE, &unmapped),
                         -ENOENT);
        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, c.ioas, IOVA, PAGE, &unmapped), -ENOENT);
        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, 999, IOVA, 2 * PAGE, &unmapped), -ENOENT);
        ck_assert_uint_eq(unmapped, 7); /* untouched on failure */
        /* a range covering the mapping and more is fine */
        ck_assert_int_eq(kvfio_ioas_unmap(c.iommufd, c.ioas, IOVA - PAGE, 8 * PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 2 * PAGE);
        /* unmapping all of an empty IOAS is 0 bytes, not an error */
        ck_assert_int_eq(kvfio_ioas_unmap_all(c.iommufd, c.ioas, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 0);
        ck_assert_int_eq(kvfio_ioas_unmap_all(c.iommufd, 999, NULL), -ENOENT);
        ctx_close(&c);
        munmap(buf, 4 * PAGE);
}
END_TEST

/*
 * Pinned-memory accounting, the choice vfiod makes per iommufd: two
 * processes of one user (uid 2001, no CAP_IPC_LOCK), RLIMIT_MEMLOCK 64 KiB
 * each, each with an iommufd and an edu of its own, each mapping 48 KiB.
 * Per user (the default) the second is refused (-ENOMEM: 96 KiB for the
 * user), per process both fit. The pages are pinned when a device is
 * attached: mapped before the attach, the refusal comes from the attach.
 * The first process holds its mapping until told to go.
 */
enum { MAP_ENOMEM = 12, ATTACH_ENOMEM = 16 };

static pid_t memlock_child(int mode, int cdev, bool attach_last, const int *hold, int ready_pipe)
{
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                const struct rlimit rl = {16 * PAGE, 16 * PAGE};
                uint8_t *buf = mmap(NULL, 12 * PAGE, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                uint32_t ioas = 0;
                int fd, dev, r;
                char c = 0;

                fd = kvfio_iommufd_open(NULL);
                dev = kvfio_cdev_open(cdev, NULL);
                if (buf == MAP_FAILED || fd < 0 || dev < 0 ||
                    kvfio_iommufd_set_rlimit_mode(fd, mode) < 0 ||
                    kvfio_ioas_alloc(fd, &ioas) < 0 || kvfio_device_bind_iommufd(dev, fd, NULL) < 0)
                        _exit(10);
                if (!attach_last && kvfio_device_attach_ioas(dev, ioas, NULL) < 0)
                        _exit(10);
                if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0 || setgid(2001) < 0 || setuid(2001) < 0)
                        _exit(11);
                memset(buf, 1, 12 * PAGE);
                r = kvfio_ioas_map(fd, ioas, buf, IOVA, 12 * PAGE, RW);
                if (r < 0)
                        _exit(r == -ENOMEM ? MAP_ENOMEM : 13);
                if (attach_last) {
                        r = kvfio_device_attach_ioas(dev, ioas, NULL);
                        if (r < 0)
                                _exit(r == -ENOMEM ? ATTACH_ENOMEM : 17);
                }
                if (ready_pipe >= 0 && write(ready_pipe, "r", 1) != 1)
                        _exit(14);
                /* Holds until the parent closes its end of the pipe (EOF). */
                if (hold && (close(hold[1]) < 0 || read(hold[0], &c, 1) < 0))
                        _exit(15);
                _exit(0);
        }
        return pid;
}

static int wait_status(pid_t pid)
{
        int status = 0;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* The first child maps and holds; the second's exit status is returned. */
static int memlock_pair(int mode, bool attach_last)
{
        int hold[2], ready[2], second_status;
        pid_t first, second;
        struct edus e;
        char c = 0;

        find_edus(&e);
        ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        first = memlock_child(mode, e.cdev[0], false, hold, ready[1]);
        close(ready[1]);
        ck_assert_msg(read(ready[0], &c, 1) == 1, "the first child did not map (mode %d)", mode);
        second = memlock_child(mode, e.cdev[1], attach_last, NULL, -1);
        second_status = wait_status(second);
        close(hold[1]);
        ck_assert_int_eq(wait_status(first), 0);
        close(hold[0]);
        close(ready[0]);
        return second_status;
}

START_TEST(test_memlock_user_or_process)
{
        ck_assert_int_eq(memlock_pair(KVFIO_IOMMUFD_RLIMIT_USER, false), MAP_ENOMEM);
        ck_assert_int_eq(memlock_pair(KVFIO_IOMMUFD_RLIMIT_PROCESS, false), 0);
        ck_assert_int_eq(memlock_pair(KVFIO_IOMMUFD_RLIMIT_USER, true), ATTACH_ENOMEM);
        ck_assert_int_eq(memlock_pair(KVFIO_IOMMUFD_RLIMIT_PROCESS, true), 0);
}
END_TEST

static Suite *iommufd_suite(void)
{
        Suite *s = suite_create("guest-iommufd");
        TCase *tc;

        tc = tcase_create("discovery");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_discover_cdevs);
        suite_add_tcase(s, tc);

        tc = tcase_create("iommufd");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_iommufd_options);
        tcase_add_test(tc, test_ioas_alloc_destroy);
        suite_add_tcase(s, tc);

        tc = tcase_create("cdev");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_bind_attach_detach);
        tcase_add_test(tc, test_group_or_cdev);
        tcase_add_test(tc, test_hot_reset_cdev);
        suite_add_tcase(s, tc);

        tc = tcase_create("dma");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_dma_roundtrip_msi);
        tcase_add_test(tc, test_unmap_and_detach_block_dma);
        tcase_add_test(tc, test_two_devices_share_ioas);
        tcase_add_test(tc, test_map_errors);
        tcase_add_test(tc, test_memlock_user_or_process);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        return testutil_run_suite(iommufd_suite());
}
