// SPDX-License-Identifier: GPL-2.0
/*
 * mdma-test: checks mdma.ko through raw VFIO ioctls, in a guest without an
 * IOMMU. Needs root, the modules vfio, vfio_iommu_type1, mdev and mdma
 * loaded. Creates two instances through sysfs, runs every check, removes
 * them, and prints TAP on stdout ("ok N - group: what"). When
 * CK_TAP_LOG_FILE_NAME is set the results also go there, in the form the VM
 * harness forwards for check suites. Exit status 0 only when all passed.
 *
 * Usage: mdma-test [-v]
 *        mdma-test --hold UUID SECONDS   (open the instance, wait, close:
 *                                         for unload-while-open checks)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "mdma-regs.h"

#define TYPE_DIR "/sys/class/mdev_bus/mdma/mdev_supported_types/mdma-1"
#define PARAM_DIR "/sys/module/mdma/parameters"

#define IOVA_A 0x10000000ULL /* 64 KiB read-write */
#define IOVA_RO 0x20000000ULL /* 16 KiB read-only */
#define IOVA_HOLE 0x30000000ULL /* never mapped */
#define IOVA_WO 0x40000000ULL /* 16 KiB write-only, for a while */
#define BUF_SIZE (64 * 1024)
#define RO_SIZE (16 * 1024)

static int n_tests;
static int n_failed;
static FILE *tap_file;
static const char *group = "setup";
static bool verbose;

static void result(bool ok, const char *fmt, va_list ap)
{
	char what[512];

	vsnprintf(what, sizeof(what), fmt, ap);
	n_tests++;
	if (!ok)
		n_failed++;
	printf("%sok %d - %s: %s\n", ok ? "" : "not ", n_tests, group, what);
	if (tap_file) {
		/* the harness splits "file:tcase:test: message" on ':' */
		for (char *c = what; *c; c++)
			if (*c == ':')
				*c = ',';
		fprintf(tap_file, "%sok %d - mdma-test.c:%s:%s: %s\n",
			ok ? "" : "not ", n_tests, group, what,
			ok ? "Passed" : "Failed");
	}
	fflush(stdout);
}

/* Records one check; returns cond so callers can skip what depends on it. */
static bool __attribute__((format(printf, 2, 3)))
check(bool cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	result(cond, fmt, ap);
	va_end(ap);
	return cond;
}

static void note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

/* ---- sysfs ---------------------------------------------------------- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	return 0;
}

static long read_long(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 0);
}

static void make_uuid(char *out, size_t size, unsigned int n)
{
	snprintf(out, size, "6d646d61-0000-4000-8000-%012x",
		 (unsigned int)getpid() * 16 + n);
}

static int group_of(const char *uuid)
{
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group",
		 uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = 0;
	return atoi(strrchr(link, '/') + 1);
}

static bool mdev_exists(const char *uuid)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s", uuid);
	return access(path, F_OK) == 0;
}

static long vm_locked_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- device access ---------------------------------------------------- */

struct dev {
	int fd;
	uint64_t cfg_off;
	uint64_t bar0_off;
};

static uint32_t cfg_read(struct dev *d, unsigned int off, unsigned int size)
{
	uint32_t v = 0;

	if (pread(d->fd, &v, size, d->cfg_off + off) != (ssize_t)size)
		return 0xdeadbeef;
	return v;
}

static int cfg_write(struct dev *d, unsigned int off, uint32_t v,
		     unsigned int size)
{
	return pwrite(d->fd, &v, size, d->cfg_off + off) == (ssize_t)size
		       ? 0
		       : -errno;
}

static uint32_t reg_read(struct dev *d, unsigned int off)
{
	uint32_t v;

	if (pread(d->fd, &v, 4, d->bar0_off + off) != 4)
		return 0xdeadbeef;
	return v;
}

static int reg_write(struct dev *d, unsigned int off, uint32_t v)
{
	return pwrite(d->fd, &v, 4, d->bar0_off + off) == 4 ? 0 : -errno;
}

/* Waits until the engine is idle; returns STATUS, or ~0 on time-out. */
static uint32_t dma_wait(struct dev *d)
{
	for (int i = 0; i < 5000; i++) {
		uint32_t s = reg_read(d, MDMA_REG_STATUS);

		if (!(s & MDMA_STATUS_BUSY))
			return s;
		usleep(1000);
	}
	return ~0U;
}

static uint32_t dma_start(struct dev *d, uint32_t cmd, uint64_t src,
			  uint64_t dst, uint32_t len, uint32_t pattern)
{
	reg_write(d, MDMA_REG_SRC_LO, (uint32_t)src);
	reg_write(d, MDMA_REG_SRC_HI, (uint32_t)(src >> 32));
	reg_write(d, MDMA_REG_DST_LO, (uint32_t)dst);
	reg_write(d, MDMA_REG_DST_HI, (uint32_t)(dst >> 32));
	reg_write(d, MDMA_REG_LEN, len);
	reg_write(d, MDMA_REG_PATTERN, pattern);
	return reg_write(d, MDMA_REG_CMD, cmd);
}

static uint32_t dma_run(struct dev *d, uint32_t cmd, uint64_t src, uint64_t dst,
			uint32_t len, uint32_t pattern)
{
	dma_start(d, cmd, src, dst, len, pattern);
	return dma_wait(d);
}

static uint64_t err_iova(struct dev *d)
{
	return reg_read(d, MDMA_REG_ERR_IOVA_LO) |
	       (uint64_t)reg_read(d, MDMA_REG_ERR_IOVA_HI) << 32;
}

static int set_irqs(int fd, uint32_t index, uint32_t flags, uint32_t start,
		    uint32_t count, const void *data, size_t data_size)
{
	char buf[sizeof(struct vfio_irq_set) + 64 * sizeof(int32_t)];
	struct vfio_irq_set *s = (struct vfio_irq_set *)buf;

	s->argsz = sizeof(*s) + data_size;
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	if (data_size)
		memcpy(s->data, data, data_size);
	return ioctl(fd, VFIO_DEVICE_SET_IRQS, s) ? -errno : 0;
}

static int set_eventfds(int fd, uint32_t index, uint32_t start, uint32_t count,
			const int32_t *fds)
{
	return set_irqs(fd, index,
			VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			start, count, fds, count * sizeof(int32_t));
}

static int irq_disable(int fd, uint32_t index)
{
	return set_irqs(fd, index,
			VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
			0, NULL, 0);
}

/* Returns the eventfd count after waiting up to ms, 0 when nothing came. */
static uint64_t efd_wait(int efd, int ms)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};
	uint64_t v = 0;

	if (poll(&p, 1, ms) != 1)
		return 0;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static int new_efd(void)
{
	return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static int map_dma(int container, void *vaddr, uint64_t iova, uint64_t size,
		   uint32_t flags)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = flags,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static int64_t unmap_dma(int container, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u),
		.iova = iova,
		.size = size,
	};

	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u))
		return -errno;
	return (int64_t)u.size;
}

static int open_group(int container, int groupno, bool set_iommu)
{
	struct vfio_group_status st = {.argsz = sizeof(st)};
	char path[64];
	int g;

	snprintf(path, sizeof(path), "/dev/vfio/%d", groupno);
	g = open(path, O_RDWR | O_CLOEXEC);
	if (!check(g >= 0, "open %s", path))
		return -1;
	check(ioctl(g, VFIO_GROUP_GET_STATUS, &st) == 0 &&
		      (st.flags & VFIO_GROUP_FLAGS_VIABLE),
	      "group %d is viable", groupno);
	check(ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) == 0,
	      "group %d joins the container", groupno);
	if (set_iommu) {
		int r = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);

		check(r == 0, "VFIO_SET_IOMMU Type1v2 (%s)",
		      r ? strerror(errno) : "ok");
	}
	return g;
}

static int open_device(int g, const char *uuid, struct dev *d)
{
	struct vfio_region_info r = {.argsz = sizeof(r)};

	d->fd = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (!check(d->fd >= 0, "VFIO_GROUP_GET_DEVICE_FD '%s'", uuid))
		return -1;
	r.index = VFIO_PCI_CONFIG_REGION_INDEX;
	ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r);
	d->cfg_off = r.offset;
	r.index = VFIO_PCI_BAR0_REGION_INDEX;
	ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r);
	d->bar0_off = r.offset;
	return 0;
}

/* ---- test groups ------------------------------------------------------ */

static void test_info(struct dev *d)
{
	struct vfio_device_info info = {.argsz = sizeof(info)};
	struct vfio_region_info r = {.argsz = sizeof(r)};
	struct vfio_irq_info irq = {.argsz = sizeof(irq)};
	static const struct {
		uint32_t index, count, flags;
	} irqs[] = {
		{VFIO_PCI_INTX_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
			 VFIO_IRQ_INFO_AUTOMASKED},
		{VFIO_PCI_MSI_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_MSIX_IRQ_INDEX, 4,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_ERR_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_REQ_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
	};

	group = "info";
	check(ioctl(d->fd, VFIO_DEVICE_GET_INFO, &info) == 0, "GET_INFO");
	check(info.flags == (VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET),
	      "flags PCI|RESET (0x%x)", info.flags);
	check(info.num_regions == VFIO_PCI_NUM_REGIONS &&
		      info.num_irqs == VFIO_PCI_NUM_IRQS,
	      "%u regions, %u irqs", info.num_regions, info.num_irqs);

	int rc;

	r.index = VFIO_PCI_CONFIG_REGION_INDEX;
	rc = ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r);
	check(rc == 0 && r.size == MDMA_CFG_SIZE &&
		      r.flags == (VFIO_REGION_INFO_FLAG_READ |
				  VFIO_REGION_INFO_FLAG_WRITE),
	      "config region: %llu bytes, flags 0x%x",
	      (unsigned long long)r.size, r.flags);
	r.index = VFIO_PCI_BAR0_REGION_INDEX;
	rc = ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r);
	check(rc == 0 && r.size == MDMA_BAR0_SIZE, "BAR0 region: %llu bytes",
	      (unsigned long long)r.size);
	r.index = VFIO_PCI_BAR2_REGION_INDEX;
	check(ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r) == 0 && r.size == 0,
	      "BAR2 region: empty");
	r.index = VFIO_PCI_VGA_REGION_INDEX;
	check(ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r) < 0 &&
		      errno == EINVAL,
	      "VGA region: EINVAL");

	for (size_t i = 0; i < sizeof(irqs) / sizeof(irqs[0]); i++) {
		irq.index = irqs[i].index;
		irq.flags = irq.count = 0;
		rc = ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &irq);
		check(rc == 0 && irq.count == irqs[i].count &&
			      irq.flags == irqs[i].flags,
		      "irq index %u: count %u flags 0x%x", irq.index, irq.count,
		      irq.flags);
	}
	irq.index = VFIO_PCI_NUM_IRQS;
	check(ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &irq) < 0 &&
		      errno == EINVAL,
	      "irq index %u: EINVAL", VFIO_PCI_NUM_IRQS);
}

static void test_config(struct dev *d)
{
	unsigned int pos, found_msi = 0, found_msix = 0;
	uint32_t v;

	group = "config";
	check(cfg_read(d, PCI_VENDOR_ID, 2) == MDMA_PCI_VENDOR_ID &&
		      cfg_read(d, PCI_DEVICE_ID, 2) == MDMA_PCI_DEVICE_ID,
	      "vendor:device %04x:%04x", cfg_read(d, PCI_VENDOR_ID, 2),
	      cfg_read(d, PCI_DEVICE_ID, 2));
	check((cfg_read(d, PCI_CLASS_REVISION, 4) >> 8) == MDMA_PCI_CLASS,
	      "class 0x%06x", cfg_read(d, PCI_CLASS_REVISION, 4) >> 8);
	check(cfg_read(d, PCI_SUBSYSTEM_VENDOR_ID, 2) ==
			      MDMA_PCI_SUBVENDOR_ID &&
		      cfg_read(d, PCI_SUBSYSTEM_ID, 2) == MDMA_PCI_SUBDEVICE_ID,
	      "subsystem ids");
	check(cfg_read(d, PCI_HEADER_TYPE, 1) == 0, "header type 0");
	check(cfg_read(d, PCI_INTERRUPT_PIN, 1) == 1, "interrupt pin INTA");
	v = cfg_read(d, PCI_COMMAND, 2);
	check(v == PCI_COMMAND_MEMORY,
	      "command after open: memory on, bus master off (0x%x)", v);
	check(cfg_read(d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST,
	      "capability list");

	cfg_write(d, PCI_VENDOR_ID, 0xffff, 2);
	check(cfg_read(d, PCI_VENDOR_ID, 2) == MDMA_PCI_VENDOR_ID,
	      "vendor id is read-only");

	/* BAR sizing per the PCI rules */
	cfg_write(d, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	v = cfg_read(d, PCI_BASE_ADDRESS_0, 4);
	check(v == (uint32_t) ~(MDMA_BAR0_SIZE - 1),
	      "BAR0 sizing reads 0x%08x (size %u, 32-bit memory)", v,
	      ~(v & ~0xfU) + 1);
	cfg_write(d, PCI_BASE_ADDRESS_0, 0xfebf1000, 4);
	check(cfg_read(d, PCI_BASE_ADDRESS_0, 4) == 0xfebf1000,
	      "BAR0 takes an address");
	cfg_write(d, PCI_BASE_ADDRESS_1, 0xffffffff, 4);
	check(cfg_read(d, PCI_BASE_ADDRESS_1, 4) == 0, "BAR1 not implemented");
	cfg_write(d, PCI_ROM_ADDRESS, 0xffffffff, 4);
	check(cfg_read(d, PCI_ROM_ADDRESS, 4) == 0, "no expansion ROM");

	for (pos = cfg_read(d, PCI_CAPABILITY_LIST, 1); pos && pos < 0x100;
	     pos = cfg_read(d, pos + PCI_CAP_LIST_NEXT, 1)) {
		unsigned int id = cfg_read(d, pos + PCI_CAP_LIST_ID, 1);

		if (id == PCI_CAP_ID_MSI)
			found_msi = pos;
		if (id == PCI_CAP_ID_MSIX)
			found_msix = pos;
	}
	check(found_msi == MDMA_CFG_MSI_CAP, "MSI capability at 0x%x",
	      found_msi);
	check(found_msix == MDMA_CFG_MSIX_CAP, "MSI-X capability at 0x%x",
	      found_msix);
	if (found_msi) {
		v = cfg_read(d, found_msi + PCI_MSI_FLAGS, 2);
		check((v & PCI_MSI_FLAGS_64BIT) && !(v & PCI_MSI_FLAGS_QMASK),
		      "MSI: 64-bit, one vector (flags 0x%x)", v);
		cfg_write(d, found_msi + PCI_MSI_ADDRESS_LO, 0xfee00000, 4);
		cfg_write(d, found_msi + PCI_MSI_DATA_64, 0x4041, 2);
		check(cfg_read(d, found_msi + PCI_MSI_ADDRESS_LO, 4) ==
				      0xfee00000 &&
			      cfg_read(d, found_msi + PCI_MSI_DATA_64, 2) ==
				      0x4041,
		      "MSI address and data are writable");
	}
	if (found_msix) {
		v = cfg_read(d, found_msix + PCI_MSIX_FLAGS, 2);
		check((v & PCI_MSIX_FLAGS_QSIZE) + 1 == 4, "MSI-X: 4 vectors");
		check(cfg_read(d, found_msix + PCI_MSIX_TABLE, 4) ==
				      (MDMA_MSIX_TABLE | 0) &&
			      cfg_read(d, found_msix + PCI_MSIX_PBA, 4) ==
				      (MDMA_MSIX_PBA | 0),
		      "MSI-X table and PBA in BAR0");
	}
	check(pread(d->fd, &v, 4, d->cfg_off + MDMA_CFG_SIZE) < 0,
	      "config read past the end fails");
}

static void test_regs(struct dev *d)
{
	uint16_t v16;
	uint32_t v;

	group = "bar0";
	check(reg_read(d, MDMA_REG_ID) == MDMA_ID_VALUE, "ID 0x%08x",
	      reg_read(d, MDMA_REG_ID));
	check(reg_read(d, MDMA_REG_VERSION) == MDMA_VERSION_VALUE, "VERSION");
	check(reg_read(d, MDMA_REG_MAX_LEN) == 1U << 20, "MAX_LEN 1 MiB");
	reg_write(d, MDMA_REG_SCRATCH, 0xa5a55a5a);
	check(reg_read(d, MDMA_REG_SCRATCH) == 0xa5a55a5a,
	      "SCRATCH holds a value");
	reg_write(d, MDMA_REG_ID, 0);
	check(reg_read(d, MDMA_REG_ID) == MDMA_ID_VALUE, "ID is read-only");
	check(reg_write(d, 0x700, 1) == 0 && reg_read(d, 0x700) == 0,
	      "undefined register: write ignored, reads 0");
	check(pread(d->fd, &v16, 2, d->bar0_off + MDMA_REG_SCRATCH) < 0 &&
		      errno == EINVAL,
	      "2-byte register access: EINVAL");
	check(pread(d->fd, &v, 4, d->bar0_off + MDMA_MSIX_TABLE) == 4 &&
		      v == 0xffffffff,
	      "MSI-X table hidden (reads all ones)");
	check(pread(d->fd, &v, 4, d->bar0_off + MDMA_BAR0_SIZE - 2) == 2,
	      "access across the end of BAR0 is cut short, as vfio-pci");
	check(pread(d->fd, &v, 4, d->bar0_off + MDMA_BAR0_SIZE) < 0 &&
		      errno == EINVAL,
	      "access past the end of BAR0: EINVAL");

	cfg_write(d, PCI_COMMAND, 0, 2);
	check(pread(d->fd, &v, 4, d->bar0_off) < 0 && errno == EIO,
	      "memory decoding off: BAR0 access EIO");
	cfg_write(d, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	check(reg_read(d, MDMA_REG_ID) == MDMA_ID_VALUE,
	      "memory decoding back on");
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void test_dma(struct dev *d, int container, uint8_t *buf, uint8_t *ro,
		     uint8_t *wo)
{
	static uint8_t snap[BUF_SIZE];
	uint32_t st, count0;
	bool ok;

	group = "dma";
	for (int i = 0; i < BUF_SIZE; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	memset(ro, 0x5a, RO_SIZE);
	check(map_dma(container, buf, IOVA_A, BUF_SIZE,
		      VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map 64 KiB read-write at 0x%llx", IOVA_A);
	check(map_dma(container, ro, IOVA_RO, RO_SIZE,
		      VFIO_DMA_MAP_FLAG_READ) == 0,
	      "map 16 KiB read-only at 0x%llx", IOVA_RO);
	check(vm_locked_kb() == 0,
	      "nothing pinned at map time (emulated IOMMU), VmLck %ld kB",
	      vm_locked_kb());
	memcpy(snap, buf, BUF_SIZE);

	/* bus mastering gates DMA */
	st = dma_run(d, MDMA_CMD_COPY, IOVA_A, IOVA_A + 0x8000, 4096, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_NO_BUS_MASTER,
	      "bus master off: command refused (status 0x%x error %u)", st,
	      reg_read(d, MDMA_REG_ERROR));
	check(memcmp(buf, snap, BUF_SIZE) == 0,
	      "bus master off: memory untouched");
	cfg_write(d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	count0 = reg_read(d, MDMA_REG_COUNT);

	/* copy, unaligned, across pages */
	st = dma_run(d, MDMA_CMD_COPY, IOVA_A + 100, IOVA_A + 0x8007, 9000, 0);
	check(st == MDMA_STATUS_DONE, "copy 9000 bytes: DONE (status 0x%x)",
	      st);
	check(memcmp(buf + 0x8007, snap + 100, 9000) == 0 &&
		      memcmp(buf, snap, 0x8007) == 0 &&
		      memcmp(buf + 0x8007 + 9000, snap + 0x8007 + 9000,
			     BUF_SIZE - 0x8007 - 9000) == 0,
	      "copy: the right bytes landed, nothing else changed");
	memcpy(snap, buf, BUF_SIZE);

	/* fill */
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A + 0x3001, 5000, 0xdeadbeef);
	ok = st == MDMA_STATUS_DONE;
	for (int i = 0; ok && i < 5000; i++) {
		uint32_t a = 0x3001 + i;

		ok = buf[a] == (uint8_t)(0xdeadbeefU >> (8 * (a & 3)));
	}
	check(ok && memcmp(buf, snap, 0x3001) == 0 &&
		      memcmp(buf + 0x3001 + 5000, snap + 0x3001 + 5000,
			     BUF_SIZE - 0x3001 - 5000) == 0,
	      "fill 5000 bytes with 0xdeadbeef (status 0x%x)", st);
	memcpy(snap, buf, BUF_SIZE);
	check(reg_read(d, MDMA_REG_COUNT) == count0 + 2,
	      "COUNT counts commands");
	check(vm_locked_kb() > 0, "device holds pins after DMA (VmLck %ld kB)",
	      vm_locked_kb());

	/* unmapped IOVAs */
	st = dma_run(d, MDMA_CMD_COPY, IOVA_A, IOVA_HOLE, 4096, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED &&
		      err_iova(d) == IOVA_HOLE,
	      "copy to unmapped IOVA: ERROR UNMAPPED at 0x%llx (status 0x%x)",
	      (unsigned long long)err_iova(d), st);
	st = dma_run(d, MDMA_CMD_COPY, IOVA_HOLE + 8, IOVA_A, 4096, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED &&
		      err_iova(d) == IOVA_HOLE + 8,
	      "copy from unmapped IOVA: ERROR UNMAPPED at 0x%llx",
	      (unsigned long long)err_iova(d));
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A + BUF_SIZE - 100, 200, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED &&
		      err_iova(d) == IOVA_A + BUF_SIZE,
	      "fill across the end of a mapping: ERROR UNMAPPED at 0x%llx",
	      (unsigned long long)err_iova(d));
	check(memcmp(buf, snap, BUF_SIZE) == 0,
	      "failed commands touched no memory");

	/* permissions */
	st = dma_run(d, MDMA_CMD_COPY, IOVA_A, IOVA_RO, 64, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_PERM &&
		      all_bytes(ro, RO_SIZE, 0x5a),
	      "copy into a read-only mapping: ERROR PERM, untouched");
	st = dma_run(d, MDMA_CMD_COPY, IOVA_RO + 10, IOVA_A + 0x100, 3000, 0);
	check(st == MDMA_STATUS_DONE && all_bytes(buf + 0x100, 3000, 0x5a),
	      "copy out of a read-only mapping works");
	memcpy(snap, buf, BUF_SIZE);
	check(map_dma(container, wo, IOVA_WO, RO_SIZE,
		      VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map 16 KiB write-only at 0x%llx", IOVA_WO);
	st = dma_run(d, MDMA_CMD_COPY, IOVA_A, IOVA_WO + 4096, 4096, 0);
	check(st == MDMA_STATUS_DONE && !memcmp(wo + 4096, buf, 4096),
	      "copy into a write-only mapping works");
	st = dma_run(d, MDMA_CMD_COPY, IOVA_WO + 4096, IOVA_A, 16, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_PERM &&
		      memcmp(buf, snap, BUF_SIZE) == 0,
	      "copy out of a write-only mapping: ERROR PERM, untouched");
	check(unmap_dma(container, IOVA_WO, RO_SIZE) == RO_SIZE,
	      "unmap the write-only mapping");

	/* bad commands */
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 0, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_BAD_LEN,
	      "LEN 0: ERROR BAD_LEN");
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, (1U << 20) + 1, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_BAD_LEN,
	      "LEN above MAX_LEN: ERROR BAD_LEN");
	st = dma_run(d, 7, 0, IOVA_A, 16, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_BAD_CMD,
	      "CMD 7: ERROR BAD_CMD");
	st = dma_run(d, MDMA_CMD_FILL, 0, UINT64_MAX - 10, 100, 0);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_RANGE,
	      "range wrapping 2^64: ERROR RANGE");
	check(memcmp(buf, snap, BUF_SIZE) == 0,
	      "bad commands touched no memory");

	check(unmap_dma(container, IOVA_RO, RO_SIZE) == RO_SIZE,
	      "unmap the read-only mapping");
}

/* Unmap while the device holds pins, then remap other memory there. */
static void test_unmap(struct dev *d, int container, uint8_t *buf,
		       uint8_t *buf2)
{
	uint32_t st;
	int64_t n;

	group = "unmap";
	/* make sure pins exist on the range */
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, BUF_SIZE, 0x11111111);
	check(st == MDMA_STATUS_DONE && all_bytes(buf, BUF_SIZE, 0x11),
	      "fill the whole mapping");
	check(vm_locked_kb() >= BUF_SIZE / 1024, "pins held: VmLck %ld kB",
	      vm_locked_kb());
	n = unmap_dma(container, IOVA_A, BUF_SIZE);
	check(n == BUF_SIZE, "unmap with pins held succeeds (%lld)",
	      (long long)n);
	check(vm_locked_kb() == 0, "dma_unmap released the pins: VmLck %ld kB",
	      vm_locked_kb());
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 64, 0x22222222);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED &&
		      all_bytes(buf, BUF_SIZE, 0x11),
	      "DMA after unmap: ERROR UNMAPPED, old memory untouched");

	memset(buf2, 0, BUF_SIZE);
	check(map_dma(container, buf2, IOVA_A, BUF_SIZE,
		      VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map other memory at the same IOVA");
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A + 4096, 4096, 0x33333333);
	check(st == MDMA_STATUS_DONE && all_bytes(buf2 + 4096, 4096, 0x33) &&
		      all_bytes(buf, BUF_SIZE, 0x11),
	      "DMA lands in the new memory, not the old pages");

	/* unmap while a slow command runs: the unmap waits for the command,
	 * which completes into the memory still mapped */
	write_file(PARAM_DIR "/dma_delay_ms", "300");
	dma_start(d, MDMA_CMD_FILL, 0, IOVA_A, 8192, 0x44444444);
	usleep(50000);
	check(reg_read(d, MDMA_REG_STATUS) == MDMA_STATUS_BUSY,
	      "slow command is BUSY");
	dma_start(d, MDMA_CMD_FILL, 0, IOVA_A + 0x8000, 16, 0x55555555);
	{
		struct timespec t0, t1;
		long ms;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		n = unmap_dma(container, IOVA_A, BUF_SIZE);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		     (t1.tv_nsec - t0.tv_nsec) / 1000000;
		check(n == BUF_SIZE && ms >= 150,
		      "unmap during a running command waits for it (%ld ms)",
		      ms);
	}
	st = dma_wait(d);
	write_file(PARAM_DIR "/dma_delay_ms", "0");
	check(st == MDMA_STATUS_DONE && all_bytes(buf2, 8192, 0x44),
	      "the command completed before the unmap (status 0x%x)", st);
	check(!all_bytes(buf2 + 0x8000, 16, 0x55),
	      "a doorbell while BUSY was ignored");
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 16, 0x66666666);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED &&
		      all_bytes(buf2, 8192, 0x44),
	      "after the unmap: ERROR UNMAPPED, memory untouched");
	check(vm_locked_kb() == 0, "no pins left: VmLck %ld kB",
	      vm_locked_kb());

	check(map_dma(container, buf, IOVA_A, BUF_SIZE,
		      VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map the first buffer again");
}

static void irq_ack_all(struct dev *d)
{
	reg_write(d, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
}

static void test_msi(struct dev *d, uint8_t *buf)
{
	int efd = new_efd();
	int32_t fd = efd;
	uint8_t yes = 1;
	uint32_t st;

	group = "msi";
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	irq_ack_all(d);
	check(set_eventfds(d->fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd) == 0,
	      "SET_IRQS MSI eventfd");
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 256, 0x01020304);
	check(st == MDMA_STATUS_DONE && buf[0] == 4 && buf[3] == 1,
	      "fill completes");
	check(efd_wait(efd, 2000) == 1,
	      "completion MSI arrives on the eventfd");
	check(reg_read(d, MDMA_REG_IRQ_STATUS) == MDMA_IRQ_DONE,
	      "IRQ_STATUS DONE");
	irq_ack_all(d);
	check(reg_read(d, MDMA_REG_IRQ_STATUS) == 0, "IRQ_STATUS acked (W1C)");
	dma_run(d, MDMA_CMD_COPY, IOVA_HOLE, IOVA_A, 16, 0);
	check(efd_wait(efd, 2000) == 1 &&
		      reg_read(d, MDMA_REG_IRQ_STATUS) == MDMA_IRQ_ERROR,
	      "error MSI arrives, IRQ_STATUS ERROR");
	irq_ack_all(d);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 2000) == 1, "IRQ_RAISE sends an MSI");
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0,
	      "no new message for a cause already set");
	irq_ack_all(d);
	reg_write(d, MDMA_REG_IRQ_ENABLE, 0);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0, "disabled cause sends nothing");
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	check(efd_wait(efd, 2000) == 1, "enabling a pending cause sends it");
	irq_ack_all(d);

	check(set_irqs(d->fd, VFIO_PCI_MSI_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
		       1, NULL, 0) == 0 &&
		      efd_wait(efd, 2000) == 1,
	      "loopback trigger DATA_NONE");
	check(set_irqs(d->fd, VFIO_PCI_MSI_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
		       1, &yes, 1) == 0 &&
		      efd_wait(efd, 2000) == 1,
	      "loopback trigger DATA_BOOL");
	check(set_irqs(d->fd, VFIO_PCI_MSI_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1,
		       NULL, 0) == -ENOTTY,
	      "MSI mask: ENOTTY, as vfio-pci");
	check(set_eventfds(d->fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd) ==
		      -EINVAL,
	      "INTx while MSI is on: EINVAL");
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &fd) ==
		      -EINVAL,
	      "MSI-X while MSI is on: EINVAL");
	check(irq_disable(d->fd, VFIO_PCI_MSI_IRQ_INDEX) == 0, "disable MSI");
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0, "nothing after disable");
	irq_ack_all(d);
	close(efd);
}

static void test_intx(struct dev *d)
{
	int efd = new_efd();
	int ufd = new_efd();
	int32_t fd = efd, ufd32 = ufd;
	uint64_t one = 1;

	group = "intx";
	irq_ack_all(d);
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	check(set_eventfds(d->fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd) == 0,
	      "SET_IRQS INTx eventfd");
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 2000) == 1, "INTx arrives");
	check(cfg_read(d, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT,
	      "config status shows the interrupt");
	dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 16, 0);
	check(efd_wait(efd, 200) == 0, "automasked: nothing more until unmask");
	check(set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0,
		       1, NULL, 0) == 0 &&
		      efd_wait(efd, 2000) == 1,
	      "unmask while the line is asserted: signalled again");
	irq_ack_all(d);
	check(!(cfg_read(d, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT),
	      "config status clear after ack");
	set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		 VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
		 NULL, 0);
	check(efd_wait(efd, 200) == 0, "unmask after ack: nothing");
	dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 16, 0);
	check(efd_wait(efd, 2000) == 1, "completion INTx arrives");
	irq_ack_all(d);

	/* mask explicitly */
	set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		 VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
		 NULL, 0);
	check(set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1,
		       NULL, 0) == 0,
	      "mask");
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0, "masked: nothing");
	irq_ack_all(d);

	/* unmask through an eventfd (the KVM resampler path) */
	check(set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
		       0, 1, &ufd32, sizeof(ufd32)) == 0,
	      "unmask eventfd");
	check(write(ufd, &one, sizeof(one)) == sizeof(one),
	      "write the unmask eventfd");
	usleep(100000);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 2000) == 1, "unmasked by eventfd: INTx arrives");
	check(write(ufd, &one, sizeof(one)) == sizeof(one) &&
		      efd_wait(efd, 2000) == 1,
	      "unmask eventfd while asserted: signalled again");
	irq_ack_all(d);
	check(write(ufd, &one, sizeof(one)) == sizeof(one),
	      "unmask eventfd after ack");
	usleep(100000);
	ufd32 = -1;
	set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		 VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
		 &ufd32, sizeof(ufd32));

	/* INTx disable bit of the command register */
	cfg_write(d, PCI_COMMAND,
		  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
			  PCI_COMMAND_INTX_DISABLE,
		  2);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0, "command INTx-disable holds the line");
	cfg_write(d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	check(efd_wait(efd, 2000) == 1, "clearing INTx-disable delivers it");
	irq_ack_all(d);

	check(set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
		       1, NULL, 0) == 0 &&
		      efd_wait(efd, 2000) == 1,
	      "loopback trigger");
	check(set_eventfds(d->fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd) == -EINVAL,
	      "MSI while INTx is on: EINVAL");
	check(irq_disable(d->fd, VFIO_PCI_INTX_IRQ_INDEX) == 0, "disable INTx");
	check(set_irqs(d->fd, VFIO_PCI_INTX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0,
		       1, NULL, 0) == -EINVAL,
	      "unmask with INTx off: EINVAL");
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd, 200) == 0, "nothing after disable");
	irq_ack_all(d);
	close(efd);
	close(ufd);
}

static void test_msix(struct dev *d)
{
	int efd[4];
	int32_t fds[4];
	uint8_t bools[4] = {0, 0, 0, 1};
	bool quiet;

	group = "msix";
	for (int i = 0; i < 4; i++)
		fds[i] = efd[i] = new_efd();
	irq_ack_all(d);
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, fds) == 0,
	      "SET_IRQS MSI-X 4 eventfds");
	reg_write(d, MDMA_REG_MSIX_VECTOR, 2);
	dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 16, 0);
	check(efd_wait(efd[2], 2000) == 1, "completion on vector 2");
	quiet = efd_wait(efd[0], 100) == 0 && efd_wait(efd[1], 0) == 0 &&
		efd_wait(efd[3], 0) == 0;
	check(quiet, "other vectors quiet");
	irq_ack_all(d);
	check(set_irqs(d->fd, VFIO_PCI_MSIX_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
		       4, bools, 4) == 0 &&
		      efd_wait(efd[3], 2000) == 1 && efd_wait(efd[0], 100) == 0,
	      "loopback DATA_BOOL on vector 3 only");
	fds[0] = -1;
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, fds) == 0,
	      "clear vector 1 with fd -1");
	reg_write(d, MDMA_REG_MSIX_VECTOR, 1);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd[1], 200) == 0, "cleared vector sends nothing");
	irq_ack_all(d);
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 4, 1, fds) ==
		      -EINVAL,
	      "vector 4 of 4: EINVAL");
	check(irq_disable(d->fd, VFIO_PCI_MSIX_IRQ_INDEX) == 0,
	      "disable MSI-X");
	/* a smaller block re-enables with fewer vectors */
	fds[0] = efd[0];
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, fds) == 0,
	      "enable MSI-X with 1 vector");
	reg_write(d, MDMA_REG_MSIX_VECTOR, 0);
	reg_write(d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
	check(efd_wait(efd[0], 2000) == 1, "vector 0 arrives");
	check(set_eventfds(d->fd, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, fds) ==
		      -EINVAL,
	      "vector 1 beyond the enabled block: EINVAL");
	irq_disable(d->fd, VFIO_PCI_MSIX_IRQ_INDEX);
	irq_ack_all(d);
	for (int i = 0; i < 4; i++)
		close(efd[i]);
}

static void test_err(struct dev *d)
{
	int efd = new_efd();
	int32_t fd = efd;

	group = "err";
	check(set_eventfds(d->fd, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, &fd) == 0,
	      "SET_IRQS ERR eventfd");
	reg_write(d, MDMA_REG_ERR_INJECT, 1);
	check(efd_wait(efd, 200) == 0, "ERR_INJECT with a wrong key: nothing");
	reg_write(d, MDMA_REG_ERR_INJECT, MDMA_ERR_INJECT_KEY);
	check(efd_wait(efd, 2000) == 1, "ERR_INJECT signals ERR");
	check(set_irqs(d->fd, VFIO_PCI_ERR_IRQ_INDEX,
		       VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1,
		       NULL, 0) == -ENOTTY,
	      "ERR mask: ENOTTY");
	fd = -1;
	check(set_eventfds(d->fd, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, &fd) == 0,
	      "clear ERR with fd -1");
	reg_write(d, MDMA_REG_ERR_INJECT, MDMA_ERR_INJECT_KEY);
	check(efd_wait(efd, 200) == 0, "cleared ERR: nothing");
	close(efd);
}

static void test_reset(struct dev *d, uint8_t *buf)
{
	uint32_t st;

	group = "reset";
	reg_write(d, MDMA_REG_SCRATCH, 0x1234);
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	check(ioctl(d->fd, VFIO_DEVICE_RESET) == 0, "VFIO_DEVICE_RESET");
	check(reg_read(d, MDMA_REG_SCRATCH) == 0 &&
		      reg_read(d, MDMA_REG_IRQ_ENABLE) == 0 &&
		      reg_read(d, MDMA_REG_COUNT) == 0 &&
		      reg_read(d, MDMA_REG_STATUS) == 0,
	      "registers back to their reset values");
	check(cfg_read(d, PCI_COMMAND, 2) ==
		      (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
	      "config space kept across reset, as vfio-pci");
	check(vm_locked_kb() == 0, "reset dropped the pins: VmLck %ld kB",
	      vm_locked_kb());

	memset(buf, 0x77, 8192);
	write_file(PARAM_DIR "/dma_delay_ms", "300");
	dma_start(d, MDMA_CMD_FILL, 0, IOVA_A, 8192, 0);
	usleep(50000);
	check(ioctl(d->fd, VFIO_DEVICE_RESET) == 0, "reset during a command");
	write_file(PARAM_DIR "/dma_delay_ms", "0");
	st = reg_read(d, MDMA_REG_STATUS);
	usleep(400000);
	check(st == 0 && reg_read(d, MDMA_REG_STATUS) == 0 &&
		      all_bytes(buf, 8192, 0x77),
	      "the command was aborted before touching memory");
	st = dma_run(d, MDMA_CMD_FILL, 0, IOVA_A, 8192, 0x66666666);
	check(st == MDMA_STATUS_DONE && all_bytes(buf, 8192, 0x66),
	      "DMA works after reset");
}

/* A Type1 (v1) container cannot pin for an emulated-IOMMU device. */
static void test_type1v1(const char *uuid, uint8_t *buf)
{
	struct vfio_group_status gs = {.argsz = sizeof(gs)};
	int container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	char path[64];
	struct dev d;
	uint32_t st;
	int g;

	group = "type1v1";
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(uuid));
	g = open(path, O_RDWR | O_CLOEXEC);
	if (!check(container >= 0 && g >= 0 &&
			   ioctl(g, VFIO_GROUP_GET_STATUS, &gs) == 0 &&
			   ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) ==
				   0 &&
			   ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) ==
				   0,
		   "a Type1 (v1) container"))
		goto out;
	check(map_dma(container, buf, IOVA_A, BUF_SIZE,
		      VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map");
	if (open_device(g, uuid, &d) == 0) {
		cfg_write(&d, PCI_COMMAND,
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
		st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A, 16, 0);
		check(st == MDMA_STATUS_ERROR &&
			      reg_read(&d, MDMA_REG_ERROR) == MDMA_ERR_IOMMU,
		      "DMA: ERROR IOMMU (status 0x%x)", st);
		close(d.fd);
	}
out:
	if (g >= 0)
		close(g);
	if (container >= 0)
		close(container);
}

/* A second instance in the same container sees the same mappings. */
static void test_second(struct dev *a, int container, const char *uuid,
			uint8_t *buf)
{
	struct dev d;
	int g, gno;
	uint32_t st;

	group = "second";
	gno = group_of(uuid);
	g = open_group(container, gno, false);
	if (g < 0)
		return;
	ioctl(a->fd, VFIO_DEVICE_RESET); /* drop the first device's pins */
	check(vm_locked_kb() == 0, "first device's pins dropped by reset");
	if (open_device(g, uuid, &d) == 0) {
		cfg_write(&d, PCI_COMMAND,
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
		st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A + 0x9000, 300,
			     0x99999999);
		check(st == MDMA_STATUS_DONE &&
			      all_bytes(buf + 0x9000, 300, 0x99),
		      "second instance DMAs through the shared container");
		check(reg_read(&d, MDMA_REG_COUNT) == 1 &&
			      reg_read(a, MDMA_REG_COUNT) == 0,
		      "instances have separate registers");
		check(vm_locked_kb() == 4, "second device holds 1 page: %ld kB",
		      vm_locked_kb());
		close(d.fd);
		check(vm_locked_kb() == 0,
		      "closing the device released its pins: VmLck %ld kB",
		      vm_locked_kb());
	}
	close(g);
}

/* ---- stress: DMA, map/unmap and SET_IRQS racing each other ------------ */

struct stress {
	struct dev *d;
	int container;
	uint8_t *buf;
	volatile bool stop;
	unsigned long dmas, done, unmapped, other, remaps, map_errors, irqs;
};

static void *stress_dma(void *arg)
{
	struct stress *x = arg;

	while (!x->stop) {
		uint32_t st = dma_run(x->d, MDMA_CMD_FILL, 0, IOVA_A + 0x1000,
				      3 * 4096, 0x5a5a5a5a);

		x->dmas++;
		if (st == MDMA_STATUS_DONE)
			x->done++;
		else if (st == MDMA_STATUS_ERROR &&
			 reg_read(x->d, MDMA_REG_ERROR) == MDMA_ERR_UNMAPPED)
			x->unmapped++;
		else
			x->other++;
	}
	return NULL;
}

static void *stress_map(void *arg)
{
	struct stress *x = arg;

	while (!x->stop) {
		if (unmap_dma(x->container, IOVA_A, BUF_SIZE) != BUF_SIZE)
			x->map_errors++;
		if (map_dma(x->container, x->buf, IOVA_A, BUF_SIZE,
			    VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
			x->map_errors++;
		x->remaps++;
	}
	return NULL;
}

static void *stress_irq(void *arg)
{
	struct stress *x = arg;
	int efd = new_efd();
	int32_t fd = efd;

	while (!x->stop) {
		set_eventfds(x->d->fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd);
		reg_write(x->d, MDMA_REG_IRQ_RAISE, MDMA_IRQ_SOFT);
		reg_write(x->d, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
		irq_disable(x->d->fd, VFIO_PCI_MSI_IRQ_INDEX);
		set_eventfds(x->d->fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd);
		set_irqs(x->d->fd, VFIO_PCI_INTX_IRQ_INDEX,
			 VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0,
			 1, NULL, 0);
		irq_disable(x->d->fd, VFIO_PCI_INTX_IRQ_INDEX);
		x->irqs++;
	}
	close(efd);
	return NULL;
}

static void test_stress(struct dev *d, int container, uint8_t *buf, int ms)
{
	struct stress x = {.d = d, .container = container, .buf = buf};
	pthread_t t[3];

	group = "stress";
	reg_write(d, MDMA_REG_IRQ_ENABLE, MDMA_IRQ_ALL);
	pthread_create(&t[0], NULL, stress_dma, &x);
	pthread_create(&t[1], NULL, stress_map, &x);
	pthread_create(&t[2], NULL, stress_irq, &x);
	usleep(ms * 1000);
	x.stop = true;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	note("stress: %lu commands (%lu done, %lu unmapped, %lu other), "
	     "%lu remaps (%lu errors), %lu irq rounds",
	     x.dmas, x.done, x.unmapped, x.other, x.remaps, x.map_errors,
	     x.irqs);
	check(x.dmas > 0 && x.remaps > 0 && x.irqs > 0,
	      "all three threads made progress (%lu/%lu/%lu)", x.dmas, x.remaps,
	      x.irqs);
	check(x.other == 0 && x.map_errors == 0,
	      "commands only DONE or UNMAPPED, maps and unmaps all succeeded");
	check(x.done + x.unmapped == x.dmas, "%lu done + %lu unmapped", x.done,
	      x.unmapped);
	reg_write(d, MDMA_REG_IRQ_STATUS, MDMA_IRQ_ALL);
	reg_write(d, MDMA_REG_IRQ_ENABLE, 0);
	check(unmap_dma(container, IOVA_A, BUF_SIZE) == BUF_SIZE &&
		      vm_locked_kb() == 0,
	      "after the storm: unmap leaves no pins (VmLck %ld kB)",
	      vm_locked_kb());
	check(map_dma(container, buf, IOVA_A, BUF_SIZE,
		      VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0,
	      "map again");
}

/* Sets or clears CAP_IPC_LOCK in the effective set (it stays permitted). */
static int ipc_lock_cap(bool on)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct c[2];

	if (syscall(SYS_capget, &h, c))
		return -errno;
	if (on)
		c[0].effective |= 1U << CAP_IPC_LOCK;
	else
		c[0].effective &= ~(1U << CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, c) ? -errno : 0;
}

/*
 * Without CAP_IPC_LOCK the device's pins count against RLIMIT_MEMLOCK: a
 * command that fits the limit works even when cached pins would not, one
 * that does not fit fails with ERROR PIN and touches nothing.
 */
static void test_memlock(const char *uuid)
{
	struct rlimit old, lim = {64 * 1024, 64 * 1024};
	const size_t size = 256 * 1024;
	int container = -1, g = -1;
	struct dev d = {.fd = -1};
	char path[64];
	uint8_t *mem;
	uint32_t st;

	group = "memlock";
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check(mem != MAP_FAILED, "buffer"))
		return;
	memset(mem, 0, size);
	getrlimit(RLIMIT_MEMLOCK, &old);
	if (!check(ipc_lock_cap(false) == 0 &&
			   setrlimit(RLIMIT_MEMLOCK, &lim) == 0,
		   "drop CAP_IPC_LOCK, RLIMIT_MEMLOCK 64 KiB"))
		goto out;

	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(uuid));
	g = open(path, O_RDWR | O_CLOEXEC);
	if (!check(container >= 0 && g >= 0 &&
			   ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) ==
				   0 &&
			   ioctl(container, VFIO_SET_IOMMU,
				 VFIO_TYPE1v2_IOMMU) == 0 &&
			   map_dma(container, mem, IOVA_A, size,
				   VFIO_DMA_MAP_FLAG_READ |
					   VFIO_DMA_MAP_FLAG_WRITE) == 0,
		   "container with 256 KiB mapped (nothing pinned yet)"))
		goto out;
	if (open_device(g, uuid, &d))
		goto out;
	cfg_write(&d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);

	st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A, 32 * 1024, 0x01010101);
	check(st == MDMA_STATUS_DONE && vm_locked_kb() == 32,
	      "32 KiB command: DONE, VmLck %ld kB", vm_locked_kb());
	st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A + 64 * 1024, 32 * 1024,
		     0x02020202);
	check(st == MDMA_STATUS_DONE && vm_locked_kb() == 64,
	      "second 32 KiB: DONE, at the limit, VmLck %ld kB",
	      vm_locked_kb());
	st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A + 128 * 1024, 32 * 1024,
		     0x03030303);
	check(st == MDMA_STATUS_DONE && all_bytes(mem + 128 * 1024, 32768, 3) &&
		      vm_locked_kb() <= 64,
	      "third 32 KiB: cached pins dropped to fit, DONE (status 0x%x, "
	      "VmLck %ld kB)",
	      st, vm_locked_kb());
	st = dma_run(&d, MDMA_CMD_FILL, 0, IOVA_A + 160 * 1024, 96 * 1024,
		     0x04040404);
	check(st == MDMA_STATUS_ERROR &&
		      reg_read(&d, MDMA_REG_ERROR) == MDMA_ERR_PIN &&
		      all_bytes(mem + 160 * 1024, 96 * 1024, 0),
	      "96 KiB command over the limit: ERROR PIN, nothing written "
	      "(status 0x%x, error %u)",
	      st, reg_read(&d, MDMA_REG_ERROR));
	close(d.fd);
	check(vm_locked_kb() == 0, "close released the pins: VmLck %ld kB",
	      vm_locked_kb());
out:
	if (g >= 0)
		close(g);
	if (container >= 0)
		close(container);
	setrlimit(RLIMIT_MEMLOCK, &old);
	ipc_lock_cap(true);
	munmap(mem, size);
}

struct remover {
	const char *uuid;
	int err;
	volatile bool done;
};

static void *remove_thread(void *arg)
{
	struct remover *r = arg;
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove",
		 r->uuid);
	r->err = write_file(path, "1");
	r->done = true;
	return NULL;
}

/* Removing an open instance asks the user through REQ, then completes. */
static void test_req(struct dev *d, int *groupfd, int container,
		     const char *uuid)
{
	struct remover r = {.uuid = uuid};
	int efd = new_efd();
	int32_t fd = efd;
	pthread_t t;

	group = "req";
	check(set_eventfds(d->fd, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &fd) == 0,
	      "SET_IRQS REQ eventfd");
	if (!check(pthread_create(&t, NULL, remove_thread, &r) == 0,
		   "remove the open instance from a thread"))
		return;
	check(efd_wait(efd, 5000) >= 1, "REQ signalled: release requested");
	usleep(200000);
	check(!r.done, "remove waits while the device is open");
	(void)container;
	close(d->fd);
	d->fd = -1;
	close(*groupfd);
	*groupfd = -1;
	pthread_join(t, NULL);
	check(r.err == 0, "remove completes once closed (%s)",
	      strerror(-r.err));
	check(!mdev_exists(uuid), "instance gone");
	close(efd);
}

/* Keeps an instance open for a while; 0 when it could be opened. */
static int hold(const char *uuid, int seconds)
{
	int container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int g, fd;
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(uuid));
	g = open(path, O_RDWR | O_CLOEXEC);
	if (container < 0 || g < 0 ||
	    ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
		perror("mdma-test --hold: container/group");
		return 1;
	}
	fd = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (fd < 0) {
		perror("mdma-test --hold: device");
		return 1;
	}
	printf("holding %s open for %d s\n", uuid, seconds);
	fflush(stdout);
	sleep(seconds);
	close(fd);
	close(g);
	close(container);
	return 0;
}

int main(int argc, char **argv)
{
	char uuid_a[40], uuid_b[40], path[256], buf[128];
	const char *tap = getenv("CK_TAP_LOG_FILE_NAME");
	long avail0;
	int container, ga, gb;
	struct dev d = {.fd = -1};
	uint8_t *mem, *mem2, *ro;

	if (argc == 4 && !strcmp(argv[1], "--hold"))
		return hold(argv[2], atoi(argv[3]));
	if (argc > 1 && !strcmp(argv[1], "-v"))
		verbose = true;
	if (tap && *tap)
		tap_file = fopen(tap, "we");
	setvbuf(stdout, NULL, _IOLBF, 0);

	group = "sysfs";
	if (!check(access(TYPE_DIR, F_OK) == 0, "type %s exists", TYPE_DIR))
		goto out;
	check(read_file(TYPE_DIR "/device_api", buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "vfio-pci"),
	      "device_api '%s'", buf);
	check(read_file(TYPE_DIR "/name", buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "mdma DMA test function"),
	      "name '%s'", buf);
	check(read_file(TYPE_DIR "/description", buf, sizeof(buf)) == 0 &&
		      strstr(buf, "1234:4d44"),
	      "description '%s'", buf);
	avail0 = read_long(TYPE_DIR "/available_instances");
	check(avail0 >= 2, "available_instances %ld", avail0);
	make_uuid(uuid_a, sizeof(uuid_a), 1);
	make_uuid(uuid_b, sizeof(uuid_b), 2);
	check(write_file(TYPE_DIR "/create", uuid_a) == 0, "create %s", uuid_a);
	check(write_file(TYPE_DIR "/create", uuid_b) == 0, "create %s", uuid_b);
	check(write_file(TYPE_DIR "/create", uuid_b) == -EEXIST,
	      "creating the same uuid twice: EEXIST");
	check(write_file(TYPE_DIR "/create", "not-a-uuid") == -EINVAL,
	      "create with a bad uuid: EINVAL");
	check(read_long(TYPE_DIR "/available_instances") == avail0 - 2,
	      "available_instances down by 2");
	ga = group_of(uuid_a);
	gb = group_of(uuid_b);
	check(ga >= 0 && gb >= 0 && ga != gb, "own groups %d and %d", ga, gb);
	snprintf(path, sizeof(path), "/dev/vfio/%d", ga);
	check(access(path, F_OK) == 0, "%s exists", path);
	note("instance A %s group %d, B %s group %d", uuid_a, ga, uuid_b, gb);

	group = "container";
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (!check(container >= 0, "open /dev/vfio/vfio"))
		goto out;
	check(ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION,
	      "API version");
	check(ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1,
	      "Type1v2 available");
	ga = open_group(container, ga, true);
	if (ga < 0 || open_device(ga, uuid_a, &d) < 0)
		goto out;
	{
		int again = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
		char gpath[64];
		int g2;

		snprintf(gpath, sizeof(gpath), "/dev/vfio/%d",
			 group_of(uuid_a));
		g2 = open(gpath, O_RDWR | O_CLOEXEC);
		check(g2 < 0 && errno == EBUSY,
		      "group opens only once (EBUSY)");
		if (g2 >= 0)
			close(g2);
		close(again);
	}

	mem = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem2 = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, RO_SIZE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || mem2 == MAP_FAILED || ro == MAP_FAILED)
		goto out;

	test_info(&d);
	test_config(&d);
	test_regs(&d);
	test_dma(&d, container, mem, ro, mem2);
	test_unmap(&d, container, mem, mem2);
	test_msi(&d, mem);
	test_intx(&d);
	test_msix(&d);
	test_err(&d);
	test_stress(&d, container, mem, 3000);
	test_type1v1(uuid_b, mem2);
	test_second(&d, container, uuid_b, mem);
	test_reset(&d, mem);
	test_req(&d, &ga, container, uuid_a);
	test_memlock(uuid_b);

	group = "teardown";
	check(vm_locked_kb() == 0, "no pins left: VmLck %ld kB",
	      vm_locked_kb());
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", uuid_b);
	check(write_file(path, "1") == 0, "remove %s", uuid_b);
	check(!mdev_exists(uuid_b), "instance B gone");
	check(read_long(TYPE_DIR "/available_instances") == avail0,
	      "available_instances back to %ld", avail0);
	close(container);

out:
	printf("1..%d\n", n_tests);
	if (tap_file) {
		fprintf(tap_file, "1..%d\n", n_tests);
		fclose(tap_file);
	}
	printf("# %d of %d checks failed\n", n_failed, n_tests);
	return n_failed || !n_tests ? 1 : 0;
}
