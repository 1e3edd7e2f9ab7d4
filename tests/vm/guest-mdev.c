/* SPDX-License-Identifier: MIT */
/*
 * guest-mdev: kernel/ and vfiod against mdma.ko's mediated devices, in a
 * guest booted WITHOUT an IOMMU (make check-vm-mdev). The harness loaded
 * mdma.ko and created three instances (UUIDs in /run/vfiod-mdevs);
 * broker-setup.sh wrote the policy for them (mdev 0 and 1: alice and bob,
 * both modes; mdev 2: alice, brokered only; eve nothing) and started vfiod.
 *
 * - kernel: discovery (kvfio_dev_discover, group members, viability), then
 *   container, group, device, a Type1v2 mapping, DMA through it, DMA to an
 *   unmapped IOVA refused by the device, MSI and INTx on eventfds, reset;
 *   two groups in one container sharing a mapping, overlaps refused, the
 *   group busy while a device fd is open, unmap-all.
 * - broker: each client is a child that dropped to alice, bob or eve and
 *   uses libvfiod and the fds it got only: ListDevices shows the mdevs
 *   (type mdma-1, ids 0), the policy by UUID (any case), BROKERED (MapDma of
 *   a sealed memfd, MSI and INTx through SetIrqs, unmapped IOVAs refused)
 *   and DIRECT (the client maps its own memory), and a release that resets
 *   the device before the next client gets it.
 *
 * A child reports one line on failure over a pipe and exits 1; it never
 * calls check itself.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "client-lib/vfiod.h"
#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/dma.h"
#include "kernel/group.h"
#include "kernel/irq.h"
#include "kernel/module/mdma-regs.h"
#include "kernel/sysfs.h"
#include "tests/testutil.h"

#define N_MDEV    3
#define PAGE      4096u
#define UID_ALICE 1001
#define UID_BOB   1002
#define UID_EVE   1003

static char mdevs[N_MDEV][KVFIO_NAME_MAX];

static void read_mdevs(void)
{
        FILE *f = fopen("/run/vfiod-mdevs", "re");
        char line[128];
        int n = 0;

        ck_assert_msg(f, "/run/vfiod-mdevs: %s", strerror(errno));
        while (n < N_MDEV && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                ck_assert_int_eq(kvfio_mdev_uuid_normalize(line, mdevs[n]), 0);
                n++;
        }
        fclose(f);
        ck_assert_int_eq(n, N_MDEV);
}

/* ---- the device, on a bare VFIO device fd -------------------------------- */

struct mdma {
        int fd;
        uint64_t cfg, bar0; /* region offsets */
};

static int mdma_init(int fd, struct mdma *m)
{
        struct vfio_region_info ri = {.argsz = sizeof(ri)};

        m->fd = fd;
        ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
                return -errno;
        m->cfg = ri.offset;
        ri.index = VFIO_PCI_BAR0_REGION_INDEX;
        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
                return -errno;
        if (ri.size != MDMA_BAR0_SIZE)
                return -EPROTO;
        m->bar0 = ri.offset;
        return 0;
}

static uint32_t rd(const struct mdma *m, uint32_t reg)
{
        uint32_t v = 0xffffffffu;

        if (pread(m->fd, &v, 4, (off_t)(m->bar0 + reg)) != 4)
                return 0xffffffffu;
        return v;
}

static int wr(const struct mdma *m, uint32_t reg, uint32_t v)
{
        return pwrite(m->fd, &v, 4, (off_t)(m->bar0 + reg)) == 4 ? 0 : -errno;
}

static int bus_master(const struct mdma *m)
{
        uint16_t cmd;

        if (pread(m->fd, &cmd, 2, (off_t)(m->cfg + PCI_COMMAND)) != 2)
                return -errno;
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        return pwrite(m->fd, &cmd, 2, (off_t)(m->cfg + PCI_COMMAND)) == 2 ? 0 : -errno;
}

/* Waits up to ms for eventfd efd; 1 when it fired (and is drained), 0 if not. */
static int wait_efd(int efd, int ms)
{
        struct pollfd p = {.fd = efd, .events = POLLIN};
        uint64_t v;

        if (poll(&p, 1, ms) != 1)
                return 0;
        return read(efd, &v, sizeof(v)) == sizeof(v) ? 1 : 0;
}

/*
 * COPY len bytes from IOVA src to IOVA dst, every interrupt cause enabled;
 * waits for the command to end. Returns STATUS; *ret_err gets ERROR.
 */
static uint32_t copy(const struct mdma *m, uint64_t src, uint64_t dst, uint32_t len,
                     uint32_t *ret_err)
{
        struct timespec ts = {0, 2 * 1000 * 1000};
        uint32_t st = 0;

        wr(m, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
        wr(m, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_DONE | MDMA_IRQ_ERROR);
        wr(m, MDMA_REG_SRC_LO, (uint32_t)src);
        wr(m, MDMA_REG_SRC_HI, (uint32_t)(src >> 32));
        wr(m, MDMA_REG_DST_LO, (uint32_t)dst);
        wr(m, MDMA_REG_DST_HI, (uint32_t)(dst >> 32));
        wr(m, MDMA_REG_LEN, len);
        wr(m, MDMA_REG_CMD, MDMA_CMD_COPY);
        for (int i = 0; i < 2500; i++) {
                st = rd(m, MDMA_REG_STATUS);
                if (!(st & MDMA_STATUS_BUSY))
                        break;
                nanosleep(&ts, NULL);
        }
        *ret_err = rd(m, MDMA_REG_ERROR);
        return st;
}

/* ---- clients: children that dropped to a user ------------------------------ */

static char *failmsg; /* a child's failure message (static buffer in the child) */

#define REQUIRE(cond, ...)                                                                    \
        do {                                                                                  \
                if (!(cond)) {                                                                \
                        static char buf_[512];                                                \
                        int n_ = snprintf(buf_, sizeof(buf_), "%s:%d: ", __func__, __LINE__); \
                        snprintf(buf_ + n_, sizeof(buf_) - (size_t)n_, __VA_ARGS__);          \
                        failmsg = buf_;                                                       \
                        return -1;                                                            \
                }                                                                             \
        } while (0)

/* Runs fn(arg) as uid (and gid uid) in a child; the test fails with its message. */
static void run_as(uid_t uid, int (*fn)(const void *), const void *arg, const char *what)
{
        char msg[600] = "";
        int p[2], status = 0;
        ssize_t n;
        pid_t pid;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int rc = 1;

                close(p[0]);
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0) {
                        dprintf(p[1], "cannot become uid %u: %s", (unsigned)uid, strerror(errno));
                } else if (setresuid(0, 0, 0) == 0) {
                        dprintf(p[1], "uid %u could become root again", (unsigned)uid);
                } else if (fn(arg) == 0) {
                        rc = 0;
                } else {
                        dprintf(p[1], "%s", failmsg ? failmsg : "failed");
                }
                _exit(rc);
        }
        close(p[1]);
        n = read(p[0], msg, sizeof(msg) - 1);
        msg[n > 0 ? n : 0] = '\0';
        close(p[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s (uid %u): %s", what,
                      (unsigned)uid, msg[0] ? msg : "died");
}

static struct vfiod *connect_or_null(void)
{
        struct vfiod *c = NULL;

        return vfiod_connect(NULL, &c) == 0 ? c : NULL;
}

/* Acquires, retrying EBUSY for up to 5 s (a previous lease still being released). */
static int acquire(struct vfiod *c, const char *dev, enum vfiod_mode mode, struct vfiod_lease *l)
{
        struct timespec ts = {0, 50 * 1000 * 1000};
        int r = -EBUSY;

        for (int i = 0; i < 100 && r == -EBUSY; i++) {
                r = vfiod_acquire(c, dev, 0, mode, l);
                if (r == -EBUSY)
                        nanosleep(&ts, NULL);
        }
        return r;
}

/* ---- kernel/ on the mdevs ------------------------------------------------ */

START_TEST(test_kernel_discovery)
{
        struct kvfio_pci_list *list = NULL, *members = NULL;
        int groups[N_MDEV];

        read_mdevs();
        ck_assert_int_eq(kvfio_dev_discover("/", &list), 0);
        for (int i = 0; i < N_MDEV; i++) {
                char upper[KVFIO_NAME_MAX], node[64];
                const struct kvfio_pci_dev *d;
                struct kvfio_group_viability v;
                struct kvfio_pci_dev one;

                for (size_t k = 0; k <= strlen(mdevs[i]); k++)
                        upper[k] = (char)(mdevs[i][k] >= 'a' && mdevs[i][k] <= 'f'
                                              ? mdevs[i][k] - 'a' + 'A'
                                              : mdevs[i][k]);
                d = kvfio_pci_list_find(list, upper);
                ck_assert_msg(d, "mdev %s not discovered", mdevs[i]);
                ck_assert(d->mdev);
                ck_assert_str_eq(d->bdf, mdevs[i]);
                ck_assert_str_eq(d->driver, "mdma");
                ck_assert_str_eq(d->mdev_type, "mdma-1");
                ck_assert_str_ne(d->parent, "");
                ck_assert_uint_eq(d->vendor, 0);
                ck_assert_int_ge(d->iommu_group, 0);
                groups[i] = d->iommu_group;
                for (int j = 0; j < i; j++)
                        ck_assert_int_ne(groups[j], groups[i]);
                snprintf(node, sizeof(node), "/dev/vfio/%d", d->iommu_group);
                ck_assert_msg(access(node, F_OK) == 0, "%s missing", node);

                ck_assert_int_eq(kvfio_dev_read("/", upper, &one), 0);
                ck_assert_str_eq(one.bdf, mdevs[i]);
                ck_assert_int_eq(one.iommu_group, d->iommu_group);

                ck_assert_int_eq(kvfio_iommu_group_members("/", d->iommu_group, &members), 0);
                ck_assert_uint_eq(members->n, 1);
                ck_assert_str_eq(members->devs[0].bdf, mdevs[i]);
                ck_assert(members->devs[0].mdev);
                kvfio_pci_list_free(members);
                members = NULL;

                memset(&v, 0, sizeof(v));
                ck_assert_int_eq(kvfio_iommu_group_viable("/", d->iommu_group, &v), 0);
                ck_assert_msg(v.viable, "group %d not viable: %s on %s", d->iommu_group, v.culprit,
                              v.culprit_driver);
        }
        /* no IOMMU in this guest: the groups are the VFIO core's emulated ones */
        ck_assert_int_eq(access("/sys/class/iommu/dmar0", F_OK), -1);
        kvfio_pci_list_free(list);
}
END_TEST

START_TEST(test_kernel_dma_irqs)
{
        const uint64_t iova = 0x10000000;
        struct kvfio_device_info info;
        struct kvfio_pci_dev dev;
        struct mdma m;
        uint32_t st, err;
        int container, group, fd, efd, efd2;
        uint8_t *mem;

        read_mdevs();
        ck_assert_int_eq(kvfio_dev_read("/", mdevs[2], &dev), 0);
        container = kvfio_container_open("/dev/vfio/vfio");
        ck_assert_int_ge(container, 0);
        group = kvfio_group_open(dev.iommu_group, "/dev/vfio");
        ck_assert_int_ge(group, 0);
        ck_assert_int_eq(kvfio_group_set_container(group, container), 0);
        ck_assert_int_eq(kvfio_container_set_iommu(container, KVFIO_IOMMU_AUTO),
                         VFIO_TYPE1v2_IOMMU);
        fd = kvfio_group_get_device_fd(group, mdevs[2]);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(kvfio_device_get_info(fd, &info), 0);
        ck_assert(info.flags & VFIO_DEVICE_FLAGS_PCI);
        ck_assert(info.flags & VFIO_DEVICE_FLAGS_RESET);
        ck_assert_int_eq(mdma_init(fd, &m), 0);
        ck_assert_uint_eq(rd(&m, MDMA_REG_ID), MDMA_ID_VALUE);
        ck_assert_int_eq(bus_master(&m), 0);

        /* two pages mapped, a third one not */
        mem = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        for (unsigned i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 7 + 3);
        ck_assert_int_eq(kvfio_dma_map(container, mem, iova, 2 * PAGE,
                                       VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE),
                         0);

        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &efd), 0);
        st = copy(&m, iova, iova + PAGE, PAGE, &err);
        ck_assert_msg(st == MDMA_STATUS_DONE, "status 0x%x error %u", st, err);
        ck_assert_int_eq(wait_efd(efd, 2000), 1);
        ck_assert_mem_eq(mem, mem + PAGE, PAGE);

        /* to an IOVA that is not mapped: the device refuses, no memory touched */
        st = copy(&m, iova, iova + 2 * PAGE, PAGE, &err);
        ck_assert_msg(st & MDMA_STATUS_ERROR, "status 0x%x", st);
        ck_assert_uint_eq(err, MDMA_ERR_UNMAPPED);
        ck_assert_uint_eq(rd(&m, MDMA_REG_ERR_IOVA_LO), (uint32_t)(iova + 2 * PAGE));
        ck_assert_int_eq(wait_efd(efd, 2000), 1); /* the ERROR cause */
        for (unsigned i = 0; i < PAGE; i++)
                ck_assert_uint_eq(mem[2 * PAGE + i], 0);

        /* INTx: automasked, then again after an unmask */
        ck_assert_int_eq(kvfio_irq_disable(fd, VFIO_PCI_MSI_IRQ_INDEX), 0);
        efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd2, 0);
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd2), 0);
        wr(&m, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
        wr(&m, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_SOFT);
        wr(&m, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
        ck_assert_int_eq(wait_efd(efd2, 2000), 1);
        wr(&m, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
        wr(&m, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
        ck_assert_int_eq(wait_efd(efd2, 300), 0);
        ck_assert_int_eq(kvfio_irq_unmask(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1), 0);
        ck_assert_int_eq(wait_efd(efd2, 2000), 1);
        ck_assert_int_eq(kvfio_irq_disable(fd, VFIO_PCI_INTX_IRQ_INDEX), 0);

        /* reset: the registers go back to 0 */
        wr(&m, MDMA_REG_SCRATCH, 0x5a5a5a5a);
        ck_assert_uint_eq(rd(&m, MDMA_REG_SCRATCH), 0x5a5a5a5a);
        ck_assert_int_eq(kvfio_device_reset(fd), 0);
        ck_assert_uint_eq(rd(&m, MDMA_REG_SCRATCH), 0);

        /* after unmap the device cannot reach the page any more */
        ck_assert_int_eq(kvfio_dma_unmap(container, iova, 2 * PAGE, NULL), 0);
        memset(mem + PAGE, 0xee, PAGE);
        st = copy(&m, iova, iova + PAGE, PAGE, &err);
        ck_assert_msg((st & MDMA_STATUS_ERROR) && err == MDMA_ERR_UNMAPPED, "status 0x%x err %u",
                      st, err);
        ck_assert_uint_eq(mem[PAGE], 0xee);

        close(efd2);
        close(efd);
        close(fd);
        ck_assert_int_eq(kvfio_group_unset_container(group), 0);
        close(group);
        close(container);
        munmap(mem, 3 * PAGE);
}
END_TEST

/*
 * Two mdev groups in one container share one mapping, each device's DMA goes
 * through it; overlaps are EEXIST; UNSET_CONTAINER is EBUSY while a device fd
 * is open; VFIO_DMA_UNMAP_FLAG_ALL unmaps it all, after which DMA is refused.
 */
START_TEST(test_kernel_shared_container)
{
        const uint64_t iova = 0x20000000;
        struct kvfio_pci_dev d1, d2;
        struct mdma m1, m2;
        uint64_t unmapped = 0;
        uint32_t st, err;
        int container, g1, g2, f1, f2;
        uint8_t *mem;

        read_mdevs();
        ck_assert_int_eq(kvfio_dev_read("/", mdevs[1], &d1), 0);
        ck_assert_int_eq(kvfio_dev_read("/", mdevs[2], &d2), 0);
        container = kvfio_container_open("/dev/vfio/vfio");
        ck_assert_int_ge(container, 0);
        g1 = kvfio_group_open(d1.iommu_group, "/dev/vfio");
        g2 = kvfio_group_open(d2.iommu_group, "/dev/vfio");
        ck_assert_int_ge(g1, 0);
        ck_assert_int_ge(g2, 0);
        ck_assert_int_eq(kvfio_group_set_container(g1, container), 0);
        ck_assert_int_eq(kvfio_group_set_container(g2, container), 0);
        ck_assert_int_eq(kvfio_container_set_iommu(container, KVFIO_IOMMU_AUTO),
                         VFIO_TYPE1v2_IOMMU);
        f1 = kvfio_group_get_device_fd(g1, mdevs[1]);
        f2 = kvfio_group_get_device_fd(g2, mdevs[2]);
        ck_assert_int_ge(f1, 0);
        ck_assert_int_ge(f2, 0);
        ck_assert_int_eq(mdma_init(f1, &m1), 0);
        ck_assert_int_eq(mdma_init(f2, &m2), 0);
        ck_assert_int_eq(bus_master(&m1), 0);
        ck_assert_int_eq(bus_master(&m2), 0);

        mem = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(mem, MAP_FAILED);
        for (unsigned i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 5 + 11);
        ck_assert_int_eq(kvfio_dma_map(container, mem, iova, 3 * PAGE,
                                       VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE),
                         0);
        ck_assert_int_eq(kvfio_dma_map(container, mem, iova + PAGE, PAGE,
                                       VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE),
                         -EEXIST);
        st = copy(&m1, iova, iova + PAGE, PAGE, &err);
        ck_assert_msg(st == MDMA_STATUS_DONE, "device 1: status 0x%x error %u", st, err);
        st = copy(&m2, iova + PAGE, iova + 2 * PAGE, PAGE, &err);
        ck_assert_msg(st == MDMA_STATUS_DONE, "device 2: status 0x%x error %u", st, err);
        ck_assert_mem_eq(mem, mem + 2 * PAGE, PAGE);

        /* a device fd is open: the group cannot leave the container */
        ck_assert_int_eq(kvfio_group_unset_container(g2), -EBUSY);

        ck_assert_int_eq(kvfio_dma_unmap_all(container, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 3 * PAGE);
        memset(mem + PAGE, 0xee, PAGE);
        st = copy(&m2, iova, iova + PAGE, PAGE, &err);
        ck_assert_msg((st & MDMA_STATUS_ERROR) && err == MDMA_ERR_UNMAPPED, "status 0x%x err %u",
                      st, err);
        ck_assert_uint_eq(mem[PAGE], 0xee);

        close(f2);
        ck_assert_int_eq(kvfio_group_unset_container(g2), 0);
        close(f1);
        ck_assert_int_eq(kvfio_group_unset_container(g1), 0);
        close(g2);
        close(g1);
        close(container);
        munmap(mem, 3 * PAGE);
}
END_TEST

/* ---- vfiod on the mdevs -------------------------------------------------- */

static int client_list(const void *arg)
{
        const bool eve = arg != NULL;
        struct vfiod_device_info *devs = NULL;
        struct vfiod *c = connect_or_null();
        size_t n = 0, found = 0;
        int r;

        REQUIRE(c, "connect failed");
        r = vfiod_list_devices(c, NULL, &devs, &n);
        REQUIRE(r == 0, "ListDevices: %s", strerror(-r));
        for (size_t i = 0; i < n; i++) {
                for (int k = 0; k < N_MDEV; k++) {
                        if (strcmp(devs[i].device, mdevs[k]) != 0)
                                continue;
                        found++;
                        REQUIRE(strcmp(devs[i].mdev_type, "mdma-1") == 0, "type '%s'",
                                devs[i].mdev_type);
                        REQUIRE(strcmp(devs[i].driver, "mdma") == 0, "driver '%s'", devs[i].driver);
                        REQUIRE(devs[i].vendor_id == 0 && devs[i].device_id == 0, "ids %x:%x",
                                devs[i].vendor_id, devs[i].device_id);
                        REQUIRE(devs[i].state == VFIOD_LEASE_STATE_FREE, "state %s",
                                vfiod_lease_state_name(devs[i].state));
                }
        }
        vfiod_devices_free(devs, n);
        if (eve) {
                struct vfiod_lease l;

                REQUIRE(found == 0, "eve sees %zu mdevs", found);
                r = vfiod_acquire(c, mdevs[0], 0, VFIOD_MODE_BROKERED, &l);
                REQUIRE(r == -EPERM, "eve's Acquire: %s", strerror(-r));
        } else {
                char upper[KVFIO_NAME_MAX];

                REQUIRE(found == N_MDEV, "alice sees %zu of %d mdevs", found, N_MDEV);
                /* one device by name, any case; the answer names it in lower case */
                for (size_t k = 0; k <= strlen(mdevs[1]); k++)
                        upper[k] = (char)(mdevs[1][k] >= 'a' && mdevs[1][k] <= 'f'
                                              ? mdevs[1][k] - 'a' + 'A'
                                              : mdevs[1][k]);
                r = vfiod_list_devices(c, upper, &devs, &n);
                REQUIRE(r == 0 && n == 1, "ListDevices '%s': %s, %zu", upper, strerror(-r), n);
                REQUIRE(strcmp(devs[0].device, mdevs[1]) == 0, "named '%s'", devs[0].device);
                vfiod_devices_free(devs, n);
        }
        vfiod_close(c);
        return 0;
}

START_TEST(test_broker_list_policy)
{
        read_mdevs();
        run_as(UID_ALICE, client_list, NULL, "alice lists the mdevs");
        run_as(UID_EVE, client_list, "eve", "eve sees none, may have none");
}
END_TEST

static int client_bob_denied(const void *arg)
{
        struct vfiod *c = connect_or_null();
        struct vfiod_lease l;
        int r;

        (void)arg;
        REQUIRE(c, "connect failed");
        r = vfiod_acquire(c, mdevs[2], 0, VFIOD_MODE_BROKERED, &l);
        REQUIRE(r == -EPERM, "bob's Acquire of mdev 2: %s", strerror(-r));
        vfiod_close(c);
        return 0;
}

/* alice, BROKERED: MapDma of a sealed memfd, DMA with MSI, unmapped IOVAs refused, INTx. */
static int client_brokered(const void *arg)
{
        const uint64_t iova = 0x100000;
        struct vfiod *c = connect_or_null();
        struct vfiod_iova_range un = {iova, 2 * PAGE};
        struct vfiod_lease l;
        struct mdma m;
        uint32_t st, err;
        uint8_t *mem;
        int r, memfd, efd, ifd;

        (void)arg;
        REQUIRE(c, "connect failed");
        /* the name in upper case: vfiod normalises it */
        {
                char upper[KVFIO_NAME_MAX];

                for (size_t k = 0; k <= strlen(mdevs[0]); k++)
                        upper[k] = (char)(mdevs[0][k] >= 'a' && mdevs[0][k] <= 'f'
                                              ? mdevs[0][k] - 'a' + 'A'
                                              : mdevs[0][k]);
                r = acquire(c, upper, VFIOD_MODE_BROKERED, &l);
        }
        REQUIRE(r == 0, "Acquire: %s (%s)", strerror(-r), vfiod_last_error(c));
        REQUIRE(strcmp(l.device, mdevs[0]) == 0, "lease names '%s'", l.device);
        REQUIRE(l.device_fd >= 0 && l.container_fd < 0 && l.group_fd < 0, "fds %d %d %d",
                l.container_fd, l.group_fd, l.device_fd);
        REQUIRE(mdma_init(l.device_fd, &m) == 0, "regions");
        REQUIRE(rd(&m, MDMA_REG_ID) == MDMA_ID_VALUE, "ID 0x%x", rd(&m, MDMA_REG_ID));
        REQUIRE(bus_master(&m) == 0, "bus master");

        r = vfiod_memfd_create("mdev-dma", 3 * PAGE, &memfd);
        REQUIRE(r == 0, "memfd: %s", strerror(-r));
        mem = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        REQUIRE(mem != MAP_FAILED, "mmap");
        for (unsigned i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i * 13 + 1);
        r = vfiod_map_memfd(c, l.domain_id, memfd, 0, iova, 2 * PAGE,
                            VFIOD_DMA_READ | VFIOD_DMA_WRITE);
        REQUIRE(r == 0, "MapDma: %s (%s)", strerror(-r), vfiod_last_error(c));
        r = vfiod_setup_msi(c, l.lease_id, VFIOD_IRQ_INDEX_MSI, 1, &efd);
        REQUIRE(r == 0, "SetIrqs MSI: %s (%s)", strerror(-r), vfiod_last_error(c));

        for (int round = 0; round < 3; round++) {
                memset(mem + PAGE, 0, PAGE);
                st = copy(&m, iova, iova + PAGE, PAGE - (uint32_t)round, &err);
                REQUIRE(st == MDMA_STATUS_DONE, "round %d: status 0x%x error %u", round, st, err);
                REQUIRE(wait_efd(efd, 2000) == 1, "round %d: no MSI", round);
                REQUIRE(memcmp(mem, mem + PAGE, PAGE - (size_t)round) == 0,
                        "round %d: bytes differ", round);
        }
        /* the memfd's third page is not mapped: refused, untouched */
        st = copy(&m, iova, iova + 2 * PAGE, PAGE, &err);
        REQUIRE((st & MDMA_STATUS_ERROR) && err == MDMA_ERR_UNMAPPED, "status 0x%x error %u", st,
                err);
        REQUIRE(wait_efd(efd, 2000) == 1, "no MSI for the error");
        for (unsigned i = 0; i < PAGE; i++)
                REQUIRE(mem[2 * PAGE + i] == 0, "byte %u of the unmapped page written", i);

        /* INTx through SetIrqs: automasked until UNMASK */
        r = vfiod_disable_irqs(c, l.lease_id, VFIOD_IRQ_INDEX_MSI);
        REQUIRE(r == 0, "disable MSI: %s", strerror(-r));
        ifd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(ifd >= 0, "eventfd");
        {
                struct vfiod_irq_set s = {.index = VFIOD_IRQ_INDEX_INTX,
                                          .count = 1,
                                          .action = VFIOD_IRQ_ACTION_TRIGGER,
                                          .eventfds = &ifd};
                struct vfiod_irq_set u = {
                    .index = VFIOD_IRQ_INDEX_INTX, .count = 1, .action = VFIOD_IRQ_ACTION_UNMASK};

                r = vfiod_set_irqs(c, l.lease_id, &s);
                REQUIRE(r == 0, "SetIrqs INTx: %s (%s)", strerror(-r), vfiod_last_error(c));
                wr(&m, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
                wr(&m, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_SOFT);
                wr(&m, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
                REQUIRE(wait_efd(ifd, 2000) == 1, "no INTx");
                wr(&m, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
                wr(&m, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
                REQUIRE(wait_efd(ifd, 300) == 0, "INTx while masked");
                r = vfiod_set_irqs(c, l.lease_id, &u);
                REQUIRE(r == 0, "SetIrqs UNMASK: %s (%s)", strerror(-r), vfiod_last_error(c));
                REQUIRE(wait_efd(ifd, 2000) == 1, "no INTx after UNMASK");
        }

        /* unmapped through vfiod: the device no longer reaches her pages */
        r = vfiod_unmap_dma(c, l.domain_id, &un, 1, NULL);
        REQUIRE(r == 1, "UnmapDma: %s", strerror(-r));
        memset(mem + PAGE, 0xee, PAGE);
        st = copy(&m, iova, iova + PAGE, PAGE, &err);
        REQUIRE((st & MDMA_STATUS_ERROR) && err == MDMA_ERR_UNMAPPED,
                "after unmap: status 0x%x error %u", st, err);
        REQUIRE(mem[PAGE] == 0xee, "written after unmap");

        close(ifd);
        close(efd);
        munmap(mem, 3 * PAGE);
        close(memfd);
        vfiod_lease_close_fds(&l);
        r = vfiod_release(c, l.lease_id);
        REQUIRE(r == 0, "Release: %s", strerror(-r));
        vfiod_close(c);
        return 0;
}

START_TEST(test_broker_brokered)
{
        read_mdevs();
        run_as(UID_BOB, client_bob_denied, NULL, "bob may not have mdev 2");
        run_as(UID_ALICE, client_brokered, NULL, "alice, brokered");
}
END_TEST

/* bob, DIRECT: his own Type1 mapping and MSI; releases with both still in place. */
static int client_direct(const void *arg)
{
        const uint64_t iova = 0x200000;
        struct vfiod *c = connect_or_null();
        struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map)};
        struct vfiod_lease l;
        struct mdma m;
        uint32_t st, err;
        uint8_t *mem;
        int r, efd;

        (void)arg;
        REQUIRE(c, "connect failed");
        r = acquire(c, mdevs[1], VFIOD_MODE_DIRECT, &l);
        REQUIRE(r == 0, "Acquire: %s (%s)", strerror(-r), vfiod_last_error(c));
        REQUIRE(l.container_fd >= 0 && l.group_fd >= 0 && l.device_fd >= 0, "fds %d %d %d",
                l.container_fd, l.group_fd, l.device_fd);
        REQUIRE(mdma_init(l.device_fd, &m) == 0, "regions");
        REQUIRE(bus_master(&m) == 0, "bus master");
        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED, "mmap");
        for (unsigned i = 0; i < PAGE; i++)
                mem[i] = (uint8_t)(i ^ 0xa5);
        map.vaddr = (uintptr_t)mem;
        map.iova = iova;
        map.size = 2 * PAGE;
        map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
        REQUIRE(ioctl(l.container_fd, VFIO_IOMMU_MAP_DMA, &map) == 0, "MAP_DMA: %s",
                strerror(errno));
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(efd >= 0, "eventfd");
        {
                char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
                struct vfio_irq_set *s = (struct vfio_irq_set *)buf;

                s->argsz = sizeof(buf);
                s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
                s->index = VFIO_PCI_MSI_IRQ_INDEX;
                s->start = 0;
                s->count = 1;
                memcpy(s->data, &efd, sizeof(int));
                REQUIRE(ioctl(l.device_fd, VFIO_DEVICE_SET_IRQS, s) == 0, "SET_IRQS: %s",
                        strerror(errno));
        }
        st = copy(&m, iova, iova + PAGE, PAGE, &err);
        REQUIRE(st == MDMA_STATUS_DONE, "status 0x%x error %u", st, err);
        REQUIRE(wait_efd(efd, 2000) == 1, "no MSI");
        REQUIRE(memcmp(mem, mem + PAGE, PAGE) == 0, "bytes differ");
        /* leaves the mapping and MSI on: vfiod undoes them */
        close(efd);
        vfiod_lease_close_fds(&l);
        r = vfiod_release(c, l.lease_id);
        REQUIRE(r == 0, "Release: %s", strerror(-r));
        munmap(mem, 2 * PAGE);
        vfiod_close(c);
        return 0;
}

START_TEST(test_broker_direct)
{
        read_mdevs();
        run_as(UID_BOB, client_direct, NULL, "bob, direct");
}
END_TEST

/* Leaves a mark in SCRATCH (arg NULL) or checks that the reset cleared it. */
static int client_scratch(const void *arg)
{
        const bool check = arg != NULL;
        struct vfiod *c = connect_or_null();
        struct vfiod_lease l;
        struct mdma m;
        int r;

        REQUIRE(c, "connect failed");
        r = acquire(c, mdevs[0], VFIOD_MODE_BROKERED, &l);
        REQUIRE(r == 0, "Acquire: %s (%s)", strerror(-r), vfiod_last_error(c));
        REQUIRE(mdma_init(l.device_fd, &m) == 0, "regions");
        if (check) {
                REQUIRE(rd(&m, MDMA_REG_SCRATCH) == 0, "SCRATCH 0x%x: not reset on release",
                        rd(&m, MDMA_REG_SCRATCH));
        } else {
                wr(&m, MDMA_REG_SCRATCH, 0xa11ce);
                REQUIRE(rd(&m, MDMA_REG_SCRATCH) == 0xa11ce, "SCRATCH 0x%x",
                        rd(&m, MDMA_REG_SCRATCH));
        }
        vfiod_lease_close_fds(&l);
        r = vfiod_release(c, l.lease_id);
        REQUIRE(r == 0, "Release: %s", strerror(-r));
        vfiod_close(c);
        return 0;
}

START_TEST(test_broker_release_resets)
{
        read_mdevs();
        run_as(UID_ALICE, client_scratch, NULL, "alice marks the device");
        run_as(UID_BOB, client_scratch, "check", "bob finds it reset");
}
END_TEST

static Suite *mdev_suite(void)
{
        Suite *s = suite_create("guest-mdev");
        TCase *tc;

        tc = tcase_create("kernel");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_kernel_discovery);
        tcase_add_test(tc, test_kernel_dma_irqs);
        tcase_add_test(tc, test_kernel_shared_container);
        suite_add_tcase(s, tc);

        tc = tcase_create("broker");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_broker_list_policy);
        tcase_add_test(tc, test_broker_brokered);
        tcase_add_test(tc, test_broker_direct);
        tcase_add_test(tc, test_broker_release_resets);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(mdev_suite());
}
