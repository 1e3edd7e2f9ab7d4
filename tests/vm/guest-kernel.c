/* SPDX-License-Identifier: MIT */
/*
 * The driver layer (kernel/) against Linux's real VFIO, in the test VM
 * (run-vm.sh): three edu devices, each alone in its IOMMU group behind its
 * own PCIe root port, bound to vfio-pci, with an emulated Intel IOMMU.
 *
 * Each test opens what it needs and closes it again (the fd check enforces
 * it); the tests that change a binding put it back before they assert.
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
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/dma.h"
#include "kernel/group.h"
#include "kernel/irq.h"
#include "kernel/sysfs.h"
#include "tests/testutil.h"
#include "tests/vm/edu.h"

#define N_EDU   3
#define PAGE    4096
#define IOVA    UINT64_C(0x100000) /* well below the 28-bit DMA mask */
#define WAIT_MS 3000

struct edus {
        char bdf[N_EDU][KVFIO_BDF_MAX];
        int group[N_EDU];
};

/* The edu devices, sorted by address; asserts there are exactly N_EDU. */
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
                n++;
        }
        kvfio_pci_list_free(list);
        ck_assert_msg(n == N_EDU, "%zu edu devices, want %d", n, N_EDU);
}

/* A container with some edu groups attached and an IOMMU model set. */
struct ctx {
        int container;
        int ngroups;
        int group[N_EDU];
        int device[N_EDU];
        volatile void *bar0[N_EDU];
        char bdf[N_EDU][KVFIO_BDF_MAX];
        int group_id[N_EDU];
};

/* Container, then groups of edu 0..n-1 (Type1v2), device fds and BAR0 mappings. */
static void ctx_open(struct ctx *c, int n, bool devices)
{
        struct edus e;
        int r;

        find_edus(&e);
        memset(c, 0, sizeof(*c));
        c->ngroups = n;
        c->container = kvfio_container_open(NULL);
        ck_assert_msg(c->container >= 0, "kvfio_container_open: %s", strerror(-c->container));
        for (int i = 0; i < n; i++) {
                c->device[i] = -1;
                memcpy(c->bdf[i], e.bdf[i], KVFIO_BDF_MAX);
                c->group_id[i] = e.group[i];
                c->group[i] = kvfio_group_open(e.group[i], NULL);
                ck_assert_msg(c->group[i] >= 0, "kvfio_group_open(%d): %s", e.group[i],
                              strerror(-c->group[i]));
                r = kvfio_group_set_container(c->group[i], c->container);
                ck_assert_msg(r == 0, "kvfio_group_set_container: %s", strerror(-r));
                if (i == 0) {
                        r = kvfio_container_set_iommu(c->container, KVFIO_IOMMU_TYPE1v2);
                        ck_assert_msg(r == KVFIO_IOMMU_TYPE1v2, "kvfio_container_set_iommu: %d", r);
                }
        }
        if (!devices)
                return;
        for (int i = 0; i < n; i++) {
                c->device[i] = kvfio_group_get_device_fd(c->group[i], c->bdf[i]);
                ck_assert_msg(c->device[i] >= 0, "kvfio_group_get_device_fd(%s): %s", c->bdf[i],
                              strerror(-c->device[i]));
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
        for (int i = 0; i < c->ngroups; i++) {
                edu_unmap_bar0(c->bar0[i]);
                if (c->device[i] >= 0)
                        close(c->device[i]);
        }
        for (int i = c->ngroups - 1; i >= 0; i--)
                close(c->group[i]);
        close(c->container);
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

START_TEST(test_discover_edus)
{
        struct kvfio_pci_list *list = NULL, *members = NULL;
        struct kvfio_group_viability v;
        int seen = 0, r;

        r = kvfio_pci_discover("/", &list);
        ck_assert_msg(r == 0, "kvfio_pci_discover: %s", strerror(-r));
        for (size_t i = 0; i < list->n; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];

                if (d->vendor != EDU_VENDOR || d->device != EDU_DEVICE)
                        continue;
                seen++;
                ck_assert_str_eq(d->driver, KVFIO_VFIO_PCI_DRIVER);
                ck_assert_uint_eq(d->class >> 8, 0x00ff);
                ck_assert_int_ge(d->iommu_group, 0);
                /* Each edu has a group of its own. */
                for (size_t j = 0; j < i; j++)
                        if (list->devs[j].vendor == EDU_VENDOR)
                                ck_assert_int_ne(list->devs[j].iommu_group, d->iommu_group);

                r = kvfio_iommu_group_members("/", d->iommu_group, &members);
                ck_assert_msg(r == 0, "kvfio_iommu_group_members: %s", strerror(-r));
                ck_assert_uint_eq(members->n, 1);
                ck_assert_str_eq(members->devs[0].bdf, d->bdf);
                kvfio_pci_list_free(members);

                r = kvfio_iommu_group_viable("/", d->iommu_group, &v);
                ck_assert_msg(r == 0, "kvfio_iommu_group_viable: %s", strerror(-r));
                ck_assert_msg(v.viable, "group %d not viable: %s (%s)", d->iommu_group, v.culprit,
                              v.culprit_driver);
                ck_assert_ptr_eq(kvfio_pci_list_find(list, d->bdf), d);
        }
        kvfio_pci_list_free(list);
        ck_assert_int_eq(seen, N_EDU);
}
END_TEST

static void sysfs_write(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ssize_t n;

        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
        n = write(fd, text, strlen(text));
        close(fd);
        ck_assert_msg(n == (ssize_t)strlen(text), "write '%s' to %s: %s", text, path,
                      strerror(errno));
}

/*
 * Unbinding the last edu from vfio-pci makes its group node go away; bound to
 * a driver that does DMA on its own (uio_pci_generic), the group is not
 * viable; bound to vfio-pci again, it is viable and opens again.
 */
START_TEST(test_viability_flips)
{
        struct kvfio_group_viability unbound = {0}, foreign = {0}, back = {0};
        char prev[KVFIO_DRIVER_MAX] = "", drv[KVFIO_DRIVER_MAX] = "", path[128];
        int r_unbound_open, r_unbound, r_foreign, r_back, r_bind, r_open, fd;
        struct kvfio_group_status st = {0};
        struct edus e;
        const char *bdf;

        find_edus(&e);
        bdf = e.bdf[2];

        /* Unbind from vfio-pci: no driver. */
        snprintf(path, sizeof(path), "/sys/bus/pci/drivers/vfio-pci/unbind");
        sysfs_write(path, bdf);
        r_unbound = kvfio_iommu_group_viable("/", e.group[2], &unbound);
        r_unbound_open = kvfio_group_open(e.group[2], NULL);
        if (r_unbound_open >= 0)
                close(r_unbound_open);

        /* A non-VFIO driver that claims DMA ownership. */
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
        sysfs_write(path, "uio_pci_generic");
        sysfs_write("/sys/bus/pci/drivers_probe", bdf);
        (void)kvfio_pci_driver_get("/", bdf, drv);
        r_foreign = kvfio_iommu_group_viable("/", e.group[2], &foreign);

        /* Back to vfio-pci (kernel/ unbinds uio_pci_generic itself). */
        r_bind = kvfio_pci_bind_vfio("/", bdf, prev);
        r_back = kvfio_iommu_group_viable("/", e.group[2], &back);
        fd = kvfio_group_open(e.group[2], NULL);
        r_open = fd >= 0 ? kvfio_group_get_status(fd, &st) : fd;
        if (fd >= 0)
                close(fd);
        if (r_bind != 0) { /* leave the VM usable for the next tests */
                sysfs_write(path, "vfio-pci");
                sysfs_write("/sys/bus/pci/drivers_probe", bdf);
        }

        ck_assert_msg(r_unbound == 0 && unbound.viable, "unbound: %d viable %d", r_unbound,
                      unbound.viable);
        ck_assert_msg(r_unbound_open == -ENOENT, "group node of an unbound device: %d",
                      r_unbound_open);
        ck_assert_str_eq(drv, "uio_pci_generic");
        ck_assert_msg(r_foreign == 0 && !foreign.viable, "uio_pci_generic: %d viable %d", r_foreign,
                      foreign.viable);
        ck_assert_str_eq(foreign.culprit, bdf);
        ck_assert_str_eq(foreign.culprit_driver, "uio_pci_generic");
        ck_assert_msg(r_bind == 0, "kvfio_pci_bind_vfio: %s", strerror(-r_bind));
        ck_assert_str_eq(prev, "uio_pci_generic");
        ck_assert_msg(r_back == 0 && back.viable, "rebound: %d viable %d", r_back, back.viable);
        ck_assert_msg(r_open == 0, "group open/status after rebind: %s", strerror(-r_open));
        ck_assert(st.viable);
        ck_assert(!st.container_set);
}
END_TEST

/* --- container, group, device ------------------------------------------------- */

START_TEST(test_container_group_type1v2)
{
        struct kvfio_group_status st = {0};
        struct kvfio_iommu_info *info = NULL;
        struct edus e;
        int container, group, r;

        find_edus(&e);
        container = kvfio_container_open(NULL);
        ck_assert_msg(container >= 0, "kvfio_container_open: %s", strerror(-container));
        ck_assert_int_eq(kvfio_container_check_extension(container, VFIO_TYPE1v2_IOMMU), 1);
        ck_assert_int_eq(kvfio_container_pick_iommu(container, KVFIO_IOMMU_AUTO),
                         KVFIO_IOMMU_TYPE1v2);
        group = kvfio_group_open(e.group[0], NULL);
        ck_assert_msg(group >= 0, "kvfio_group_open: %s", strerror(-group));
        /* A group node opens once at a time. */
        r = kvfio_group_open(e.group[0], NULL);
        if (r >= 0)
                close(r);
        ck_assert_int_eq(r, -EBUSY);

        ck_assert_int_eq(kvfio_group_get_status(group, &st), 0);
        ck_assert(st.viable);
        ck_assert(!st.container_set);
        /* No IOMMU model before a group is attached. */
        ck_assert_int_eq(kvfio_container_set_iommu(container, KVFIO_IOMMU_AUTO), -EINVAL);
        ck_assert_int_eq(kvfio_group_get_device_fd(group, e.bdf[0]), -EINVAL);

        ck_assert_int_eq(kvfio_group_set_container(group, container), 0);
        ck_assert_int_eq(kvfio_group_get_status(group, &st), 0);
        ck_assert(st.container_set);
        ck_assert_int_eq(kvfio_container_set_iommu(container, KVFIO_IOMMU_AUTO),
                         KVFIO_IOMMU_TYPE1v2);

        r = kvfio_iommu_get_info(container, &info);
        ck_assert_msg(r == 0, "kvfio_iommu_get_info: %s", strerror(-r));
        ck_assert_msg(info->pgsize_bitmap & PAGE, "pgsize_bitmap %#llx",
                      (unsigned long long)info->pgsize_bitmap);
        ck_assert(info->has_iova_ranges);
        ck_assert_uint_ge(info->n_iova_ranges, 1);
        ck_assert_uint_le(info->iova_ranges[0].start, IOVA);
        kvfio_iommu_info_free(info);

        ck_assert_int_eq(kvfio_group_get_device_fd(group, "0000:1f:1f.7"), -ENODEV);
        ck_assert_int_eq(kvfio_group_unset_container(group), 0);
        ck_assert_int_eq(kvfio_group_unset_container(group), -EINVAL);
        close(group);
        close(container);
}
END_TEST

START_TEST(test_device_info_bar0)
{
        struct kvfio_device_info info;
        struct kvfio_region_info *bar0 = NULL, *cfg = NULL;
        uint8_t id[4];
        struct ctx c;
        int r;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_device_get_info(c.device[0], &info), 0);
        ck_assert(info.is_pci);
        ck_assert_uint_ge(info.num_regions, VFIO_PCI_CONFIG_REGION_INDEX + 1);
        ck_assert_uint_ge(info.num_irqs, VFIO_PCI_MSI_IRQ_INDEX + 1);

        r = kvfio_device_get_region_info(c.device[0], VFIO_PCI_BAR0_REGION_INDEX, &bar0);
        ck_assert_msg(r == 0, "region info BAR0: %s", strerror(-r));
        ck_assert_uint_eq(bar0->size, EDU_BAR0_SIZE);
        ck_assert(bar0->flags & VFIO_REGION_INFO_FLAG_READ);
        ck_assert(bar0->flags & VFIO_REGION_INFO_FLAG_WRITE);
        ck_assert(bar0->flags & VFIO_REGION_INFO_FLAG_MMAP);
        /* edu has one BAR. */
        r = kvfio_device_get_region_info(c.device[0], VFIO_PCI_BAR1_REGION_INDEX, &cfg);
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(cfg->size, 0);
        kvfio_region_info_free(cfg);

        /* The ID register through pread, and the vendor/device in config space. */
        ck_assert_int_eq(kvfio_region_read(c.device[0], bar0, EDU_REG_ID, id, 4), 0);
        ck_assert_msg(edu_id_valid(id[0] | id[1] << 8 | (uint32_t)id[2] << 16),
                      "id %02x%02x%02x%02x", id[3], id[2], id[1], id[0]);
        ck_assert_int_eq(kvfio_region_read(c.device[0], bar0, EDU_BAR0_SIZE - 2, id, 4), -EINVAL);
        r = kvfio_device_get_region_info(c.device[0], VFIO_PCI_CONFIG_REGION_INDEX, &cfg);
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(kvfio_region_read(c.device[0], cfg, PCI_VENDOR_ID, id, 4), 0);
        ck_assert_uint_eq(id[0] | id[1] << 8, EDU_VENDOR);
        ck_assert_uint_eq(id[2] | id[3] << 8, EDU_DEVICE);
        kvfio_region_info_free(cfg);
        kvfio_region_info_free(bar0);
        ctx_close(&c);
}
END_TEST

START_TEST(test_bar0_mmap)
{
        struct kvfio_region_info *bar0 = NULL;
        void *p = NULL;
        uint32_t id;
        struct ctx c;
        int r;

        ctx_open(&c, 1, false);
        c.device[0] = kvfio_group_get_device_fd(c.group[0], c.bdf[0]);
        ck_assert_int_ge(c.device[0], 0);
        r = kvfio_device_get_region_info(c.device[0], VFIO_PCI_BAR0_REGION_INDEX, &bar0);
        ck_assert_int_eq(r, 0);
        r = kvfio_region_mmap(c.device[0], bar0, 0, EDU_BAR0_SIZE, PROT_READ | PROT_WRITE, &p);
        ck_assert_msg(r == 0, "kvfio_region_mmap: %s", strerror(-r));

        id = edu_read32(p, EDU_REG_ID);
        ck_assert_msg(edu_id_valid(id), "edu id register reads %#x", id);
        ck_assert_uint_eq(id >> 24, 1); /* major version 1 */
        /* The liveness register inverts what is written. */
        edu_write32(p, EDU_REG_LIVENESS, 0x12345678);
        ck_assert_uint_eq(edu_read32(p, EDU_REG_LIVENESS), ~UINT32_C(0x12345678));
        munmap(p, EDU_BAR0_SIZE);

        /* Misaligned or out of range. */
        ck_assert_int_eq(kvfio_region_mmap(c.device[0], bar0, 1, PAGE, PROT_READ, &p), -EINVAL);
        ck_assert_int_eq(kvfio_region_mmap(c.device[0], bar0, EDU_BAR0_SIZE, PAGE, PROT_READ, &p),
                         -EINVAL);
        kvfio_region_info_free(bar0);
        ctx_close(&c);
}
END_TEST

/* --- DMA and interrupts ------------------------------------------------------ */

START_TEST(test_dma_roundtrip)
{
        uint8_t *buf = pages(2 * PAGE, 0), *want = pages(PAGE, 0);
        struct ctx c;
        int r;

        ctx_open(&c, 1, true);
        edu_pattern(buf, PAGE, 3);
        memcpy(want, buf, PAGE);
        r = kvfio_dma_map(c.container, buf, IOVA, 2 * PAGE, KVFIO_DMA_READ | KVFIO_DMA_WRITE);
        ck_assert_msg(r == 0, "kvfio_dma_map: %s", strerror(-r));

        /* host page 0 -> edu buffer -> host page 1 (the longest transfer) */
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA, 0, EDU_DMA_MAX, false), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, EDU_DMA_MAX, true), 0);
        ck_assert_msg(memcmp(buf + PAGE, want, EDU_DMA_MAX) == 0, "DMA copy differs");
        ck_assert_uint_eq(buf[PAGE + EDU_DMA_MAX], 0);
        /* And an unaligned piece into the middle. */
        memset(buf + PAGE, 0, PAGE);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE + 100, 50, 1000, true), 0);
        ck_assert(memcmp(buf + PAGE + 100, want + 50, 1000) == 0);
        ck_assert_uint_eq(buf[PAGE + 99], 0);
        ck_assert_uint_eq(buf[PAGE + 1100], 0);

        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 2 * PAGE, NULL), 0);
        ctx_close(&c);
        munmap(buf, 2 * PAGE);
        munmap(want, PAGE);
}
END_TEST

START_TEST(test_msi_eventfd)
{
        uint8_t *buf = pages(PAGE, 0x5a);
        struct kvfio_irq_info ii;
        uint64_t count = 0;
        struct ctx c;
        int efd, r;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_device_get_irq_info(c.device[0], VFIO_PCI_MSI_IRQ_INDEX, &ii), 0);
        ck_assert_uint_eq(ii.count, 1);
        ck_assert(ii.eventfd);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        r = kvfio_irq_set_eventfds(c.device[0], VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &efd);
        ck_assert_msg(r == 0, "enable MSI: %s", strerror(-r));
        ck_assert_int_eq(kvfio_dma_map(c.container, buf, IOVA, PAGE, KVFIO_DMA_READ), 0);

        /* A DMA that raises EDU_IRQ_DMA when done. */
        ck_assert_int_eq(edu_dma_start(c.bar0[0], IOVA, 0, 64, false, true), 0);
        r = edu_eventfd_wait(efd, WAIT_MS, &count);
        ck_assert_msg(r == 1, "no MSI after the DMA (%d)", r);
        ck_assert_uint_eq(count, 1);
        ck_assert_uint_eq(edu_read32(c.bar0[0], EDU_REG_IRQ_STATUS), EDU_IRQ_DMA);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        ck_assert_uint_eq(edu_read32(c.bar0[0], EDU_REG_IRQ_STATUS), 0);

        /* And one raised by hand. */
        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x1);
        ck_assert_int_eq(edu_eventfd_wait(efd, WAIT_MS, NULL), 1);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x1);
        ck_assert_int_eq(edu_eventfd_wait(efd, 200, NULL), 0);

        /* The kernel's loopback trigger signals the same eventfd. */
        ck_assert_int_eq(kvfio_irq_trigger(c.device[0], VFIO_PCI_MSI_IRQ_INDEX, 0, 1), 0);
        ck_assert_int_eq(edu_eventfd_wait(efd, WAIT_MS, NULL), 1);

        ck_assert_int_eq(kvfio_irq_disable(c.device[0], VFIO_PCI_MSI_IRQ_INDEX), 0);
        /* Disabled: the device's interrupt reaches nobody. */
        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x1);
        ck_assert_int_eq(edu_eventfd_wait(efd, 300, NULL), 0);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x1);
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, PAGE, NULL), 0);
        close(efd);
        ctx_close(&c);
        munmap(buf, PAGE);
}
END_TEST

START_TEST(test_intx_needs_unmask)
{
        struct kvfio_irq_info ii;
        struct ctx c;
        int efd, r;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_device_get_irq_info(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, &ii), 0);
        ck_assert_uint_eq(ii.count, 1);
        ck_assert(ii.automasked);
        ck_assert(ii.maskable);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        r = kvfio_irq_set_eventfds(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd);
        ck_assert_msg(r == 0, "enable INTx: %s", strerror(-r));

        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x2);
        ck_assert_msg(edu_eventfd_wait(efd, WAIT_MS, NULL) == 1, "no INTx");
        ck_assert_uint_eq(edu_read32(c.bar0[0], EDU_REG_IRQ_STATUS), 0x2);
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x2);

        /* VFIO masked the line: a second interrupt stays pending... */
        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x4);
        ck_assert_msg(edu_eventfd_wait(efd, 500, NULL) == 0, "INTx arrived while masked");
        /* ...until it is unmasked. */
        ck_assert_int_eq(kvfio_irq_unmask(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, 1), 0);
        ck_assert_msg(edu_eventfd_wait(efd, WAIT_MS, NULL) == 1, "no INTx after unmask");
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x4);
        ck_assert_int_eq(kvfio_irq_unmask(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, 1), 0);
        ck_assert_int_eq(edu_eventfd_wait(efd, 200, NULL), 0);

        ck_assert_int_eq(kvfio_irq_disable(c.device[0], VFIO_PCI_INTX_IRQ_INDEX), 0);
        close(efd);
        ctx_close(&c);
}
END_TEST

/* The resample path: signalling an unmask eventfd unmasks INTx (what KVM's irqfd uses). */
START_TEST(test_intx_unmask_eventfd)
{
        const uint64_t one = 1;
        struct ctx c;
        int efd, ufd;

        ctx_open(&c, 1, true);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ufd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        ck_assert_int_ge(ufd, 0);
        ck_assert_int_eq(kvfio_irq_set_eventfds(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd),
                         0);
        ck_assert_int_eq(kvfio_irq_unmask_eventfd(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, ufd), 0);

        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x10);
        ck_assert_msg(edu_eventfd_wait(efd, WAIT_MS, NULL) == 1, "no INTx");
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x10);
        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x20);
        ck_assert_msg(edu_eventfd_wait(efd, 500, NULL) == 0, "INTx arrived while masked");
        ck_assert_int_eq(write(ufd, &one, sizeof(one)), (ssize_t)sizeof(one));
        ck_assert_msg(edu_eventfd_wait(efd, WAIT_MS, NULL) == 1,
                      "no INTx after the unmask eventfd");
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x20);

        ck_assert_int_eq(kvfio_irq_unmask_eventfd(c.device[0], VFIO_PCI_INTX_IRQ_INDEX, 0, -1), 0);
        ck_assert_int_eq(kvfio_irq_disable(c.device[0], VFIO_PCI_INTX_IRQ_INDEX), 0);
        close(ufd);
        close(efd);
        ctx_close(&c);
}
END_TEST

/* After the unmap the IOMMU blocks the device's write (QEMU logs a VT-d fault). */
START_TEST(test_unmap_blocks_dma)
{
        uint8_t *src = pages(PAGE, 0), *dst = pages(PAGE, 0xaa);
        uint64_t unmapped = 0;
        struct ctx c;

        ctx_open(&c, 1, true);
        edu_pattern(src, PAGE, 11);
        ck_assert_int_eq(kvfio_dma_map(c.container, src, IOVA, PAGE, KVFIO_DMA_READ), 0);
        ck_assert_int_eq(kvfio_dma_map(c.container, dst, IOVA + PAGE, PAGE, KVFIO_DMA_WRITE), 0);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA, 0, EDU_DMA_MAX, false), 0);

        /* Mapped: the write lands (the control)... */
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, 256, true), 0);
        ck_assert(memcmp(dst, src, 256) == 0);
        memset(dst, 0xaa, PAGE);

        /* ...unmapped: it does not. */
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA + PAGE, PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, PAGE);
        ck_assert_int_eq(edu_dma(c.bar0[0], IOVA + PAGE, 0, EDU_DMA_MAX, true), 0);
        for (size_t i = 0; i < PAGE; i++)
                ck_assert_msg(dst[i] == 0xaa, "byte %zu changed to %#x after unmap", i, dst[i]);

        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, PAGE, NULL), 0);
        ctx_close(&c);
        munmap(src, PAGE);
        munmap(dst, PAGE);
}
END_TEST

/* --- containers with two groups; mapping rules ------------------------------ */

START_TEST(test_two_groups_share_mapping)
{
        uint8_t *buf = pages(2 * PAGE, 0);
        struct kvfio_group_status st = {0};
        struct ctx c;

        ctx_open(&c, 2, true);
        ck_assert_int_eq(kvfio_group_get_status(c.group[1], &st), 0);
        ck_assert(st.container_set);
        edu_pattern(buf, PAGE / 2, 1);
        edu_pattern(buf + PAGE / 2, PAGE / 2, 2);
        /* One mapping for both devices. */
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf, IOVA, 2 * PAGE, KVFIO_DMA_READ | KVFIO_DMA_WRITE), 0);
        for (int i = 0; i < 2; i++) {
                uint64_t off = (uint64_t)i * PAGE / 2;

                ck_assert_int_eq(edu_dma(c.bar0[i], IOVA + off, 0, PAGE / 2, false), 0);
                ck_assert_int_eq(edu_dma(c.bar0[i], IOVA + PAGE + off, 0, PAGE / 2, true), 0);
        }
        ck_assert_msg(memcmp(buf, buf + PAGE, PAGE) == 0, "a device's copy did not land");

        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 2 * PAGE, NULL), 0);
        ctx_close(&c);
        munmap(buf, 2 * PAGE);
}
END_TEST

START_TEST(test_overlap_and_partial_unmap_refused)
{
        uint8_t *buf = pages(4 * PAGE, 0);
        uint64_t unmapped = 0;
        struct ctx c;

        ctx_open(&c, 1, false);
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf, IOVA, 2 * PAGE, KVFIO_DMA_READ | KVFIO_DMA_WRITE), 0);
        /* Overlaps: same start, inside, across the end. */
        ck_assert_int_eq(kvfio_dma_map(c.container, buf + 2 * PAGE, IOVA, PAGE, KVFIO_DMA_READ),
                         -EEXIST);
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf + 2 * PAGE, IOVA + PAGE, PAGE, KVFIO_DMA_READ), -EEXIST);
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf + 2 * PAGE, IOVA + PAGE, 2 * PAGE, KVFIO_DMA_READ),
            -EEXIST);
        /* Adjacent is fine. */
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf + 2 * PAGE, IOVA + 2 * PAGE, PAGE, KVFIO_DMA_READ), 0);

        /* An unmap may not split a mapping. */
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, PAGE, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA + PAGE, 2 * PAGE, NULL), -EINVAL);
        /* Whole mappings go; what was refused is still there. */
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 3 * PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 3 * PAGE);
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 3 * PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 0);
        ctx_close(&c);
        munmap(buf, 4 * PAGE);
}
END_TEST

START_TEST(test_group_busy)
{
        struct kvfio_group_status st = {0};
        struct ctx c;
        int dev;

        ctx_open(&c, 1, false);
        dev = kvfio_group_get_device_fd(c.group[0], c.bdf[0]);
        ck_assert_msg(dev >= 0, "kvfio_group_get_device_fd: %s", strerror(-dev));
        ck_assert_int_eq(kvfio_group_unset_container(c.group[0]), -EBUSY);
        ck_assert_int_eq(kvfio_group_get_status(c.group[0], &st), 0);
        ck_assert(st.container_set);
        close(dev);
        ck_assert_int_eq(kvfio_group_unset_container(c.group[0]), 0);
        ck_assert_int_eq(kvfio_group_get_status(c.group[0], &st), 0);
        ck_assert(!st.container_set);
        ctx_close(&c);
}
END_TEST

/*
 * VFIO_DEVICE_RESET is a secondary bus reset here (edu is alone behind its
 * root port). edu resets none of its own registers, but the reset deasserts
 * its INTx line, which clears the Interrupt Status bit of the PCI status
 * register (not restored by the kernel's config save/restore).
 */
START_TEST(test_device_reset)
{
        struct kvfio_device_info info;
        uint32_t status = 0;
        struct ctx c;
        int r;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_device_get_info(c.device[0], &info), 0);
        ck_assert_msg(info.reset_supported, "VFIO_DEVICE_FLAGS_RESET missing");

        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x8);
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert_msg(status & PCI_STATUS_INTERRUPT, "status %#x before the reset", status);

        r = kvfio_device_reset(c.device[0]);
        ck_assert_msg(r == 0, "kvfio_device_reset: %s", strerror(-r));
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert_msg(!(status & PCI_STATUS_INTERRUPT), "status %#x after the reset", status);

        /* The device still answers, through the same (re-faulted) BAR mapping. */
        ck_assert(edu_id_valid(edu_read32(c.bar0[0], EDU_REG_ID)));
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x8);
        ck_assert_uint_eq(edu_read32(c.bar0[0], EDU_REG_IRQ_STATUS), 0);
        ctx_close(&c);
}
END_TEST

START_TEST(test_unmap_all)
{
        uint8_t *buf = pages(3 * PAGE, 0);
        uint64_t unmapped = 0;
        struct ctx c;

        ctx_open(&c, 1, false);
        ck_assert_int_eq(kvfio_container_check_extension(c.container, VFIO_UNMAP_ALL), 1);
        ck_assert_int_eq(kvfio_dma_map(c.container, buf, IOVA, PAGE, KVFIO_DMA_READ), 0);
        ck_assert_int_eq(
            kvfio_dma_map(c.container, buf + PAGE, IOVA + 16 * PAGE, 2 * PAGE, KVFIO_DMA_WRITE), 0);
        ck_assert_int_eq(kvfio_dma_unmap_all(c.container, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 3 * PAGE);
        /* Everything is gone: the same ranges map again. */
        ck_assert_int_eq(kvfio_dma_map(c.container, buf, IOVA, 3 * PAGE, KVFIO_DMA_READ), 0);
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 3 * PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 3 * PAGE);
        ctx_close(&c);
        munmap(buf, 3 * PAGE);
}
END_TEST

/*
 * Pinned pages are accounted to the process that maps them: without
 * CAP_IPC_LOCK, a mapping beyond RLIMIT_MEMLOCK is refused with ENOMEM. The
 * mapping is done by a child that dropped root after the fds were open.
 */
START_TEST(test_memlock_limit)
{
        uint8_t *buf = pages(32 * PAGE, 1);
        uint64_t unmapped = 0;
        struct ctx c;
        int status = 0;
        pid_t pid;

        ctx_open(&c, 1, false);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                const struct rlimit rl = {16 * PAGE, 16 * PAGE};
                int r;

                if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(10);
                r = kvfio_dma_map(c.container, buf, IOVA, 8 * PAGE, KVFIO_DMA_READ);
                if (r < 0)
                        _exit(20 + -r % 10);
                r = kvfio_dma_map(c.container, buf + 8 * PAGE, IOVA + 8 * PAGE, 16 * PAGE,
                                  KVFIO_DMA_READ);
                _exit(r == -ENOMEM ? 0 : r == 0 ? 30 : 40);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_msg(WEXITSTATUS(status) == 0,
                      "child: %d (10: dropping root failed, 2x: first map failed, "
                      "30: the map beyond the limit succeeded, 40: other error)",
                      WEXITSTATUS(status));
        /* The child's mapping outlives it; the container owner removes it. */
        ck_assert_int_eq(kvfio_dma_unmap(c.container, IOVA, 32 * PAGE, &unmapped), 0);
        ck_assert_uint_eq(unmapped, 8 * PAGE);
        ctx_close(&c);
        munmap(buf, 32 * PAGE);
}
END_TEST

/* The bus-wide reset: the set is this device's group; the INTx status goes as with the FLR path. */
START_TEST(test_hot_reset)
{
        struct kvfio_hot_reset_info *hi = NULL;
        uint32_t status = 0;
        char bdf[16];
        struct ctx c;
        int r;

        ctx_open(&c, 1, true);
        r = kvfio_device_get_hot_reset_info(c.device[0], &hi);
        ck_assert_msg(r == 0, "kvfio_device_get_hot_reset_info: %s", strerror(-r));
        ck_assert_uint_eq(hi->n, 1);
        ck_assert_str_eq(kvfio_hot_reset_dep_bdf(&hi->devs[0], bdf), c.bdf[0]);
        ck_assert_int_eq(hi->devs[0].group_id, c.group_id[0]);
        kvfio_hot_reset_info_free(hi);

        edu_write32(c.bar0[0], EDU_REG_IRQ_RAISE, 0x8);
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert(status & PCI_STATUS_INTERRUPT);
        ck_assert_int_eq(kvfio_device_hot_reset(c.device[0], NULL, 0), -EINVAL);
        r = kvfio_device_hot_reset(c.device[0], &c.group[0], 1);
        ck_assert_msg(r == 0, "kvfio_device_hot_reset: %s", strerror(-r));
        ck_assert_int_eq(edu_config_read(c.device[0], PCI_STATUS, 2, &status), 0);
        ck_assert_msg(!(status & PCI_STATUS_INTERRUPT), "status %#x after the reset", status);
        ck_assert(edu_id_valid(edu_read32(c.bar0[0], EDU_REG_ID)));
        edu_write32(c.bar0[0], EDU_REG_IRQ_ACK, 0x8);
        ctx_close(&c);
}
END_TEST

/*
 * Unbinding a device whose fd is open makes the kernel ask for it back on the
 * REQ eventfd (the daemon's ReleaseRequested); the unbind completes once the
 * fd is closed. The device goes back to vfio-pci before the asserts.
 */
START_TEST(test_req_on_unbind)
{
        char prev[KVFIO_DRIVER_MAX] = "?";
        int efd, r_set, r_req, r_bind, status = -1;
        struct kvfio_irq_info ii = {0};
        struct ctx c;
        pid_t pid;

        ctx_open(&c, 1, true);
        ck_assert_int_eq(kvfio_device_get_irq_info(c.device[0], VFIO_PCI_REQ_IRQ_INDEX, &ii), 0);
        ck_assert_uint_eq(ii.count, 1);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd, 0);
        r_set = kvfio_irq_set_eventfds(c.device[0], VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd);
        ck_assert_msg(r_set == 0, "enable REQ: %s", strerror(-r_set));

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd;

                /* The inherited device fd and BAR mapping would keep the device busy. */
                ctx_close(&c);
                close(efd);
                /* Blocks until the parent closes the device fd. */
                fd = open("/sys/bus/pci/drivers/vfio-pci/unbind", O_WRONLY | O_CLOEXEC);
                _exit(fd >= 0 && write(fd, c.bdf[0], strlen(c.bdf[0])) > 0 ? 0 : 1);
        }
        r_req = edu_eventfd_wait(efd, 5000, NULL);
        ctx_close(&c);
        close(efd);
        waitpid(pid, &status, 0);
        r_bind = kvfio_pci_bind_vfio("/", c.bdf[0], prev);

        ck_assert_msg(r_req == 1, "no REQ interrupt while unbinding (%d)", r_req);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "unbind failed");
        ck_assert_msg(r_bind == 0, "kvfio_pci_bind_vfio: %s", strerror(-r_bind));
        ck_assert_str_eq(prev, "");
}
END_TEST

static Suite *guest_kernel_suite(void)
{
        Suite *s = suite_create("guest-kernel");
        TCase *tc;

        tc = tcase_create("discovery");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_discover_edus);
        suite_add_tcase(s, tc);

        tc = tcase_create("device");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_container_group_type1v2);
        tcase_add_test(tc, test_device_info_bar0);
        tcase_add_test(tc, test_bar0_mmap);
        suite_add_tcase(s, tc);

        tc = tcase_create("dma");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_dma_roundtrip);
        tcase_add_test(tc, test_msi_eventfd);
        tcase_add_test(tc, test_intx_needs_unmask);
        tcase_add_test(tc, test_intx_unmask_eventfd);
        tcase_add_test(tc, test_unmap_blocks_dma);
        suite_add_tcase(s, tc);

        tc = tcase_create("container");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_two_groups_share_mapping);
        tcase_add_test(tc, test_overlap_and_partial_unmap_refused);
        tcase_add_test(tc, test_unmap_all);
        tcase_add_test(tc, test_memlock_limit);
        tcase_add_test(tc, test_group_busy);
        tcase_add_test(tc, test_device_reset);
        tcase_add_test(tc, test_hot_reset);
        suite_add_tcase(s, tc);

        /* Last: these change a binding (and put it back). */
        tc = tcase_create("binding");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_req_on_unbind);
        tcase_add_test(tc, test_viability_flips);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(guest_kernel_suite());
        int failed;

        /* CK_ENV: CK_VERBOSITY=verbose (set by the VM's init) prints every test. */
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
