// SPDX-License-Identifier: GPL-2.0
/*
 * mdma: a mediated PCI function with a DMA engine, for machines without an
 * IOMMU.
 *
 * Concepts: each instance is an mdev created through
 * /sys/class/mdev_bus/mdma/mdev_supported_types/mdma-1/create and registered
 * with the VFIO core as an emulated-IOMMU device, so it gets its own group
 * (/dev/vfio/N), joins a container and obeys the container's Type1v2
 * mappings. The config space and BAR0 are emulated here; DMA pins the pages
 * behind an IOVA with vfio_pin_pages() and keeps them in a small translation
 * cache (the iotlb) until the range is unmapped (the dma_unmap callback), the
 * device is reset or closed, or the cache is full. Interrupts follow vfio-pci:
 * INTx (automasked), MSI, MSI-X, ERR and REQ, each signalled through the
 * eventfds given with VFIO_DEVICE_SET_IRQS.
 *
 * Locks, outermost first:
 *   igate      serializes VFIO_DEVICE_SET_IRQS (like vfio-pci's igate)
 *   dma_lock   held by the DMA worker for a whole command, and by whoever
 *              releases pins (dma_unmap, reset, close)
 *   lock       config space, registers, the latched command
 *   trig_lock  the trigger eventfds; held while signalling one, so a
 *              trigger cannot be put while it is being signalled
 *   irq_lock   spinlock: irq_type, num_ctx, the INTx mask and level. Taken
 *              from the INTx unmask eventfd's wakeup callback (atomic, under
 *              that eventfd's own lock), so no eventfd is ever signalled
 *              under it
 * The worker nests lock inside dma_lock for a moment to read the latched
 * command; nothing takes dma_lock while holding lock.
 *
 * The register map is in mdma-regs.h and README.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/device.h>
#include <linux/eventfd.h>
#include <linux/highmem.h>
#include <linux/iommu.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vfio.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
/* 6.12 moved asm/unaligned.h to linux/unaligned.h */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

#include "mdma-regs.h"

#define MDMA_NAME "mdma"

/* 6.8 dropped eventfd_signal()'s count: every caller added 1. */
static void mdma_eventfd_signal(struct eventfd_ctx *ctx)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/* Region offsets inside the device fd, the same convention as vfio-pci. */
#define MDMA_OFFSET_SHIFT 40
#define MDMA_INDEX_TO_OFFSET(i) ((u64)(i) << MDMA_OFFSET_SHIFT)
#define MDMA_OFFSET_TO_INDEX(o) ((o) >> MDMA_OFFSET_SHIFT)
#define MDMA_OFFSET_MASK ((1ULL << MDMA_OFFSET_SHIFT) - 1)

#define MDMA_MAX_XFER_LIMIT (16U << 20)
#define MDMA_MSIX_MAX 32

/* ---- module parameters ---------------------------------------------- */

static unsigned int max_instances = 16;
module_param(max_instances, uint, 0444);
MODULE_PARM_DESC(max_instances,
		 "Instances that may exist at once (default 16)");

static unsigned int max_xfer = 1U << 20;
module_param(max_xfer, uint, 0444);
MODULE_PARM_DESC(
	max_xfer,
	"Largest DMA command in bytes (default 1 MiB, at most 16 MiB)");

static unsigned int iotlb_pages = 1024;
module_param(iotlb_pages, uint, 0444);
MODULE_PARM_DESC(
	iotlb_pages,
	"Pages an instance keeps pinned between commands (default 1024; raised to what one command needs)");

static unsigned int msix_vectors = 4;
module_param(msix_vectors, uint, 0444);
MODULE_PARM_DESC(msix_vectors, "MSI-X table size (1..32, default 4)");

#define MDMA_DELAY_MAX_MS 10000
static unsigned int dma_delay_ms;
module_param(dma_delay_ms, uint, 0644);
MODULE_PARM_DESC(
	dma_delay_ms,
	"Extra time each DMA command takes, in ms (default 0, at most 10000)");

/* ---- types ------------------------------------------------------------ */

enum mdma_irq_type {
	MDMA_IRQ_NONE = -1,
	MDMA_IRQ_INTX = VFIO_PCI_INTX_IRQ_INDEX,
	MDMA_IRQ_MSI = VFIO_PCI_MSI_IRQ_INDEX,
	MDMA_IRQ_MSIX = VFIO_PCI_MSIX_IRQ_INDEX,
};

struct mdma_job {
	u32 cmd;
	u64 src;
	u64 dst;
	u32 len;
	u32 pattern;
	u64 generation;
};

struct mdma_state {
	struct vfio_device vdev;

	struct mutex lock;
	u8 config[MDMA_CFG_SIZE];
	u8 wmask[MDMA_CFG_SIZE];
	/* BAR0 registers */
	u32 scratch;
	u32 status;
	u32 error;
	u64 err_iova;
	u32 irq_status;
	u32 irq_enable;
	u32 msix_vector;
	u64 src;
	u64 dst;
	u32 len;
	u32 pattern;
	u32 count;
	/* the latched command and the generation it belongs to; a reset or
	 * close bumps the generation so a late completion is dropped */
	struct mdma_job job;
	u64 generation;

	struct work_struct dma_work;
	struct mutex dma_lock;
	struct xarray iotlb; /* iova pfn -> tagged struct page * */
	unsigned int iotlb_count;
	struct page **src_pages;
	struct page **dst_pages;

	struct mutex igate;
	struct mutex trig_lock;
	spinlock_t irq_lock;
	enum mdma_irq_type irq_type;
	bool intx_masked;
	bool intx_level; /* the line, as last computed under lock */
	struct eventfd_ctx *intx_trigger;
	struct virqfd *intx_unmask;
	unsigned int num_ctx; /* MSI/MSI-X vectors enabled */
	struct eventfd_ctx *msi_trigger[MDMA_MSIX_MAX];
	struct eventfd_ctx *err_trigger;
	struct eventfd_ctx *req_trigger;
};

/*
 * iotlb entries: the page pointer tagged with the mapping's permissions
 * (tag 2 is not usable: the XArray reserves it for internal entries)
 */
#define MDMA_IOTLB_RO 0UL
#define MDMA_IOTLB_RW 1UL
#define MDMA_IOTLB_WO 3UL

static struct workqueue_struct *mdma_wq;
static atomic_t mdma_nr_devices = ATOMIC_INIT(0); /* allocated, not released */
static const struct vfio_device_ops mdma_dev_ops;

static inline struct mdma_state *to_mdma(struct vfio_device *vdev)
{
	return container_of(vdev, struct mdma_state, vdev);
}

static inline struct device *mdma_dev(struct mdma_state *m)
{
	return m->vdev.dev;
}

static unsigned int mdma_max_pages(void)
{
	/* an unaligned range of max_xfer bytes spans one more page */
	return DIV_ROUND_UP(max_xfer, PAGE_SIZE) + 1;
}

/* ---- config space ----------------------------------------------------- */

static void cfg_put8(u8 *c, unsigned int off, u8 v)
{
	c[off] = v;
}

static void cfg_put16(u8 *c, unsigned int off, u16 v)
{
	c[off] = v & 0xff;
	c[off + 1] = v >> 8;
}

static void cfg_put32(u8 *c, unsigned int off, u32 v)
{
	cfg_put16(c, off, v & 0xffff);
	cfg_put16(c, off + 2, v >> 16);
}

static u16 cfg_get16(const u8 *c, unsigned int off)
{
	return c[off] | (c[off + 1] << 8);
}

/* Config space as after power-on: memory decoding on (as vfio-pci hands a
 * device over after pci_enable_device()), bus mastering off. */
static void mdma_config_init(struct mdma_state *m)
{
	u8 *c = m->config;
	u8 *w = m->wmask;
	unsigned int msix_table_size = msix_vectors - 1;

	memset(c, 0, MDMA_CFG_SIZE);
	memset(w, 0, MDMA_CFG_SIZE);

	cfg_put16(c, PCI_VENDOR_ID, MDMA_PCI_VENDOR_ID);
	cfg_put16(c, PCI_DEVICE_ID, MDMA_PCI_DEVICE_ID);
	cfg_put16(c, PCI_COMMAND, PCI_COMMAND_MEMORY);
	cfg_put16(w, PCI_COMMAND,
		  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
			  PCI_COMMAND_INTX_DISABLE);
	cfg_put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
	cfg_put8(c, PCI_REVISION_ID, MDMA_PCI_REVISION);
	cfg_put8(c, PCI_CLASS_PROG, MDMA_PCI_CLASS & 0xff);
	cfg_put16(c, PCI_CLASS_DEVICE, MDMA_PCI_CLASS >> 8);
	cfg_put8(w, PCI_CACHE_LINE_SIZE, 0xff);
	cfg_put8(c, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);

	/* BAR0: 32-bit non-prefetchable memory; the writable mask makes the
	 * sizing protocol work: write ~0, read back ~(size - 1). */
	cfg_put32(c, PCI_BASE_ADDRESS_0,
		  PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32);
	cfg_put32(w, PCI_BASE_ADDRESS_0, ~(u32)(MDMA_BAR0_SIZE - 1));
	/* BAR1..5 and the ROM BAR are not implemented: read-only zero */

	cfg_put16(c, PCI_SUBSYSTEM_VENDOR_ID, MDMA_PCI_SUBVENDOR_ID);
	cfg_put16(c, PCI_SUBSYSTEM_ID, MDMA_PCI_SUBDEVICE_ID);
	cfg_put8(c, PCI_CAPABILITY_LIST, MDMA_CFG_MSI_CAP);
	cfg_put8(w, PCI_INTERRUPT_LINE, 0xff);
	cfg_put8(c, PCI_INTERRUPT_PIN, 1); /* INTA# */

	/* MSI: 64-bit address, one vector, no per-vector masking */
	cfg_put8(c, MDMA_CFG_MSI_CAP + PCI_CAP_LIST_ID, PCI_CAP_ID_MSI);
	cfg_put8(c, MDMA_CFG_MSI_CAP + PCI_CAP_LIST_NEXT, MDMA_CFG_MSIX_CAP);
	cfg_put16(c, MDMA_CFG_MSI_CAP + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT);
	cfg_put16(w, MDMA_CFG_MSI_CAP + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	cfg_put32(w, MDMA_CFG_MSI_CAP + PCI_MSI_ADDRESS_LO, 0xfffffffc);
	cfg_put32(w, MDMA_CFG_MSI_CAP + PCI_MSI_ADDRESS_HI, 0xffffffff);
	cfg_put16(w, MDMA_CFG_MSI_CAP + PCI_MSI_DATA_64, 0xffff);

	/* MSI-X: table and PBA in BAR0 */
	cfg_put8(c, MDMA_CFG_MSIX_CAP + PCI_CAP_LIST_ID, PCI_CAP_ID_MSIX);
	cfg_put8(c, MDMA_CFG_MSIX_CAP + PCI_CAP_LIST_NEXT, 0);
	cfg_put16(c, MDMA_CFG_MSIX_CAP + PCI_MSIX_FLAGS, msix_table_size);
	cfg_put16(w, MDMA_CFG_MSIX_CAP + PCI_MSIX_FLAGS,
		  PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	cfg_put32(c, MDMA_CFG_MSIX_CAP + PCI_MSIX_TABLE, MDMA_MSIX_TABLE | 0);
	cfg_put32(c, MDMA_CFG_MSIX_CAP + PCI_MSIX_PBA, MDMA_MSIX_PBA | 0);
}

static u16 mdma_command(struct mdma_state *m)
{
	return cfg_get16(m->config, PCI_COMMAND);
}

/* ---- interrupt delivery ----------------------------------------------- */

/*
 * Called with lock held after irq_status, irq_enable or the command register
 * changed: "rising" are the enabled causes that just became set (an MSI or
 * MSI-X message each), and the INTx level is re-evaluated.
 */
static void mdma_irq_update(struct mdma_state *m, u32 rising)
{
	bool level = (m->irq_status & m->irq_enable) &&
		     !(mdma_command(m) & PCI_COMMAND_INTX_DISABLE);
	struct eventfd_ctx *trigger = NULL;
	unsigned long flags;

	lockdep_assert_held(&m->lock);

	mutex_lock(&m->trig_lock);
	spin_lock_irqsave(&m->irq_lock, flags);
	m->intx_level = level;
	switch (m->irq_type) {
	case MDMA_IRQ_INTX:
		/* level-triggered and automasked, as vfio-pci: signal once,
		 * then stay masked until the user unmasks */
		if (level && !m->intx_masked && m->intx_trigger) {
			m->intx_masked = true;
			trigger = m->intx_trigger;
		}
		break;
	case MDMA_IRQ_MSI:
		if (rising && m->num_ctx > 0)
			trigger = m->msi_trigger[0];
		break;
	case MDMA_IRQ_MSIX:
		if (rising && m->msix_vector < m->num_ctx)
			trigger = m->msi_trigger[m->msix_vector];
		break;
	default:
		break;
	}
	spin_unlock_irqrestore(&m->irq_lock, flags);
	if (trigger)
		mdma_eventfd_signal(trigger);
	mutex_unlock(&m->trig_lock);
}

/* Sets interrupt cause bits; lock held. */
static void mdma_irq_raise(struct mdma_state *m, u32 causes)
{
	u32 rising = causes & ~m->irq_status & m->irq_enable;

	m->irq_status |= causes & MDMA_IRQ_ALL;
	mdma_irq_update(m, rising);
}

/*
 * INTx unmask. Called from the unmask eventfd's wakeup (atomic) or from
 * SET_IRQS. Returns 1 when the line is still asserted: the interrupt then
 * stays masked and the caller must signal the trigger with mdma_intx_send()
 * (the eventfd wakeup path defers that to a work item: no eventfd may be
 * signalled from another's wakeup).
 */
static int mdma_intx_unmask_handler(void *opaque, void *unused)
{
	struct mdma_state *m = opaque;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&m->irq_lock, flags);
	if (m->irq_type == MDMA_IRQ_INTX && m->intx_masked) {
		if (m->intx_level)
			ret = 1;
		else
			m->intx_masked = false;
	}
	spin_unlock_irqrestore(&m->irq_lock, flags);
	return ret;
}

/* Signals the INTx trigger; process context. */
static void mdma_intx_send(void *opaque, void *unused)
{
	struct mdma_state *m = opaque;

	mutex_lock(&m->trig_lock);
	if (READ_ONCE(m->irq_type) == MDMA_IRQ_INTX && m->intx_trigger)
		mdma_eventfd_signal(m->intx_trigger);
	mutex_unlock(&m->trig_lock);
}

/* ---- DMA: the iotlb --------------------------------------------------- */

static void mdma_iotlb_unpin_range(struct mdma_state *m, u64 iova, u64 length)
{
	unsigned long first = iova >> PAGE_SHIFT;
	unsigned long last;
	unsigned long index;
	void *entry;

	lockdep_assert_held(&m->dma_lock);

	if (!length || !m->iotlb_count)
		return;
	if (iova + length - 1 < iova)
		last = ULONG_MAX;
	else
		last = (iova + length - 1) >> PAGE_SHIFT;

	xa_for_each_range(&m->iotlb, index, entry, first, last) {
		xa_erase(&m->iotlb, index);
		vfio_unpin_pages(&m->vdev, (dma_addr_t)index << PAGE_SHIFT, 1);
		m->iotlb_count--;
	}
}

static void mdma_iotlb_flush(struct mdma_state *m)
{
	mdma_iotlb_unpin_range(m, 0, U64_MAX);
	WARN_ON(m->iotlb_count);
}

static int mdma_pin_errno_to_code(int err)
{
	switch (err) {
	case -EINVAL: /* no mapping covers the IOVA */
	case -EBUSY: /* mapping's vaddr invalidated (VFIO_DMA_UNMAP_FLAG_VADDR) */
		return MDMA_ERR_UNMAPPED;
	case -EPERM:
		return MDMA_ERR_PERM;
	case -EACCES: /* Type1 v1: pinning is for v2 only */
	case -ENOTTY:
		return MDMA_ERR_IOMMU;
	default:
		return MDMA_ERR_PIN;
	}
}

/*
 * Translates one page of IOVA space for a device read or write, pinning it if
 * the iotlb does not hold it yet. Returns the page, or an ERR_PTR from
 * vfio_pin_pages(): -EPERM when the mapping does not allow the access.
 * dma_lock held.
 */
static struct page *mdma_iotlb_get(struct mdma_state *m, u64 iova_page,
				   bool write)
{
	unsigned long index = iova_page >> PAGE_SHIFT;
	unsigned long tag;
	struct page *page;
	void *entry;
	int ret;

	entry = xa_load(&m->iotlb, index);
	if (entry) {
		tag = xa_pointer_tag(entry);
		if (write ? tag == MDMA_IOTLB_RO : tag == MDMA_IOTLB_WO)
			return ERR_PTR(-EPERM);
		return xa_untag_pointer(entry);
	}

	/* try read-write first, the common mapping, which serves both
	 * directions; then the one direction needed now */
	tag = MDMA_IOTLB_RW;
	ret = vfio_pin_pages(&m->vdev, iova_page, 1, IOMMU_READ | IOMMU_WRITE,
			     &page);
	if (ret == -EPERM) {
		tag = write ? MDMA_IOTLB_WO : MDMA_IOTLB_RO;
		ret = vfio_pin_pages(&m->vdev, iova_page, 1,
				     write ? IOMMU_WRITE : IOMMU_READ, &page);
	}
	if (ret < 0)
		return ERR_PTR(ret);
	if (WARN_ON_ONCE(ret != 1))
		return ERR_PTR(-EFAULT);

	ret = xa_err(xa_store(&m->iotlb, index, xa_tag_pointer(page, tag),
			      GFP_KERNEL));
	if (ret) {
		vfio_unpin_pages(&m->vdev, iova_page, 1);
		return ERR_PTR(ret);
	}
	m->iotlb_count++;
	return page;
}

/*
 * Translates every page of [iova, iova + len) into pages[]. On failure
 * *ret_fault is the first IOVA that failed and the result is negative.
 */
static int mdma_translate(struct mdma_state *m, u64 iova, u32 len, bool write,
			  struct page **pages, u64 *ret_fault)
{
	u64 first = iova & PAGE_MASK;
	u64 last = (iova + len - 1) & PAGE_MASK;
	unsigned int i = 0;
	u64 p;

	for (p = first;; p += PAGE_SIZE, i++) {
		struct page *page = mdma_iotlb_get(m, p, write);

		if (IS_ERR(page)) {
			*ret_fault = max(p, iova);
			return PTR_ERR(page);
		}
		pages[i] = page;
		if (p == last)
			break;
	}
	return 0;
}

/* Runs one command; dma_lock held. Returns an MDMA_ERR_* code. */
static int mdma_execute(struct mdma_state *m, const struct mdma_job *job,
			u64 *ret_fault)
{
	struct device *dev = mdma_dev(m);
	bool copy = job->cmd == MDMA_CMD_COPY;
	unsigned int attempt;
	bool in_dst = false;
	u32 done;
	int ret, err;

	/* make room for the worst case of this command */
	if (m->iotlb_count + 2 * mdma_max_pages() > iotlb_pages)
		mdma_iotlb_flush(m);

	for (attempt = 0;; attempt++) {
		in_dst = false;
		ret = 0;
		if (copy)
			ret = mdma_translate(m, job->src, job->len, false,
					     m->src_pages, ret_fault);
		if (!ret) {
			in_dst = true;
			ret = mdma_translate(m, job->dst, job->len, true,
					     m->dst_pages, ret_fault);
		}
		/*
		 * Cached pins count against the mapping process's
		 * RLIMIT_MEMLOCK: when the limit is hit, drop them and try
		 * once more with only this command's pages.
		 */
		if (ret == -ENOMEM && !attempt && m->iotlb_count) {
			mdma_iotlb_flush(m);
			continue;
		}
		break;
	}
	if (ret)
		goto fault;

	for (done = 0; done < job->len;) {
		u64 d = job->dst + done;
		u32 doff = offset_in_page(d);
		u32 chunk = min_t(u32, job->len - done, PAGE_SIZE - doff);
		struct page *dpage = m->dst_pages[(d >> PAGE_SHIFT) -
						  (job->dst >> PAGE_SHIFT)];
		u8 *dst = kmap_local_page(dpage);

		if (copy) {
			u64 s = job->src + done;
			u32 soff = offset_in_page(s);
			struct page *spage;
			u8 *src;

			chunk = min_t(u32, chunk, PAGE_SIZE - soff);
			spage = m->src_pages[(s >> PAGE_SHIFT) -
					     (job->src >> PAGE_SHIFT)];
			src = kmap_local_page(spage);
			memmove(dst + doff, src + soff, chunk);
			kunmap_local(src);
		} else {
			u32 i;

			for (i = 0; i < chunk; i++)
				dst[doff + i] =
					job->pattern >> (8 * ((d + i) & 3));
		}
		kunmap_local(dst);
		done += chunk;
	}
	return MDMA_ERR_NONE;

fault:
	err = ret;
	ret = mdma_pin_errno_to_code(err);
	switch (ret) {
	case MDMA_ERR_UNMAPPED:
		dev_warn_ratelimited(
			dev,
			"DMA %s at unmapped IOVA 0x%llx refused, no memory touched (ERROR=UNMAPPED)\n",
			in_dst ? "write" : "read", *ret_fault);
		break;
	case MDMA_ERR_PERM:
		dev_warn_ratelimited(
			dev,
			"DMA %s at IOVA 0x%llx refused: the mapping is %s-only (ERROR=PERM)\n",
			in_dst ? "write" : "read", *ret_fault,
			in_dst ? "read" : "write");
		break;
	case MDMA_ERR_IOMMU:
		dev_warn_ratelimited(
			dev,
			"DMA refused: the container cannot pin pages for this device; set VFIO_TYPE1v2_IOMMU (ERROR=IOMMU)\n");
		break;
	default:
		dev_warn_ratelimited(
			dev,
			"DMA refused: pinning IOVA 0x%llx failed with error %d%s (ERROR=PIN)\n",
			*ret_fault, err,
			err == -ENOMEM
				? ", over the memory lock limit of the process that mapped it"
				: "");
		break;
	}
	return ret;
}

static void mdma_dma_work(struct work_struct *work)
{
	struct mdma_state *m = container_of(work, struct mdma_state, dma_work);
	struct mdma_job job;
	u64 fault = 0;
	int code;

	mutex_lock(&m->dma_lock);
	mutex_lock(&m->lock);
	job = m->job;
	mutex_unlock(&m->lock);

	if (job.generation == READ_ONCE(m->generation)) {
		unsigned int delay = READ_ONCE(dma_delay_ms);

		if (delay)
			msleep(min_t(unsigned int, delay, MDMA_DELAY_MAX_MS));
	}
	/* a reset or close during the delay aborts the command */
	if (job.generation == READ_ONCE(m->generation))
		code = mdma_execute(m, &job, &fault);
	else
		code = MDMA_ERR_ABORTED;
	mutex_unlock(&m->dma_lock);

	mutex_lock(&m->lock);
	if (job.generation == m->generation) {
		m->status &= ~MDMA_STATUS_BUSY;
		if (code == MDMA_ERR_NONE) {
			m->status |= MDMA_STATUS_DONE;
			m->count++;
			mdma_irq_raise(m, MDMA_IRQ_DONE);
		} else {
			m->status |= MDMA_STATUS_ERROR;
			m->error = code;
			m->err_iova = fault;
			mdma_irq_raise(m, MDMA_IRQ_ERROR);
		}
	}
	mutex_unlock(&m->lock);
}

/* Fails a command at the doorbell, before any DMA; lock held. */
static void mdma_cmd_fail(struct mdma_state *m, int code, u64 iova)
{
	m->status = MDMA_STATUS_ERROR;
	m->error = code;
	m->err_iova = iova;
	mdma_irq_raise(m, MDMA_IRQ_ERROR);
}

/* CMD register write; lock held. */
static void mdma_doorbell(struct mdma_state *m, u32 cmd)
{
	struct device *dev = mdma_dev(m);

	if (m->status & MDMA_STATUS_BUSY) {
		dev_warn_ratelimited(
			dev,
			"CMD 0x%x written while a command is running: ignored\n",
			cmd);
		return;
	}
	if (cmd != MDMA_CMD_COPY && cmd != MDMA_CMD_FILL) {
		dev_warn_ratelimited(
			dev, "CMD 0x%x: no such command (ERROR=BAD_CMD)\n",
			cmd);
		mdma_cmd_fail(m, MDMA_ERR_BAD_CMD, 0);
		return;
	}
	if (!(mdma_command(m) & PCI_COMMAND_MASTER)) {
		dev_warn_ratelimited(
			dev,
			"DMA command refused: bus mastering is disabled in the PCI command register (ERROR=NO_BUS_MASTER)\n");
		mdma_cmd_fail(m, MDMA_ERR_NO_BUS_MASTER, 0);
		return;
	}
	if (m->len == 0 || m->len > max_xfer) {
		dev_warn_ratelimited(
			dev,
			"DMA command refused: LEN %u not in 1..%u (ERROR=BAD_LEN)\n",
			m->len, max_xfer);
		mdma_cmd_fail(m, MDMA_ERR_BAD_LEN, 0);
		return;
	}
	if (m->dst + m->len - 1 < m->dst ||
	    (cmd == MDMA_CMD_COPY && m->src + m->len - 1 < m->src)) {
		dev_warn_ratelimited(
			dev,
			"DMA command refused: range wraps around the IOVA space (ERROR=RANGE)\n");
		mdma_cmd_fail(m, MDMA_ERR_RANGE,
			      m->dst + m->len - 1 < m->dst ? m->dst : m->src);
		return;
	}

	m->job.cmd = cmd;
	m->job.src = m->src;
	m->job.dst = m->dst;
	m->job.len = m->len;
	m->job.pattern = m->pattern;
	m->job.generation = m->generation;
	m->status = MDMA_STATUS_BUSY;
	m->error = MDMA_ERR_NONE;
	m->err_iova = 0;
	queue_work(mdma_wq, &m->dma_work);
}

/* ---- BAR0 --------------------------------------------------------------- */

static void mdma_regs_reset(struct mdma_state *m)
{
	m->scratch = 0;
	m->status = 0;
	m->error = 0;
	m->err_iova = 0;
	m->irq_status = 0;
	m->irq_enable = 0;
	m->msix_vector = 0;
	m->src = 0;
	m->dst = 0;
	m->len = 0;
	m->pattern = 0;
	m->count = 0;
	m->generation++;
}

static void mdma_bad_reg(struct mdma_state *m, const char *what, u32 off,
			 size_t size)
{
	dev_warn_ratelimited(
		mdma_dev(m), "BAR0 %s of %zu byte(s) at 0x%03x: %s\n", what,
		size, off,
		size != 4 || (off & 3)
			? "registers take aligned 4-byte accesses only"
			: "no such register");
}

/* lock held */
static int mdma_bar0_read(struct mdma_state *m, u32 off, u8 *buf, size_t size)
{
	u32 v;

	if (off >= MDMA_MSIX_TABLE) {
		/* MSI-X table hidden as vfio-pci does; PBA reads zero */
		memset(buf, off < MDMA_MSIX_PBA ? 0xff : 0, size);
		return 0;
	}
	if (size != 4 || (off & 3)) {
		mdma_bad_reg(m, "read", off, size);
		return -EINVAL;
	}

	switch (off) {
	case MDMA_REG_ID:
		v = MDMA_ID_VALUE;
		break;
	case MDMA_REG_VERSION:
		v = MDMA_VERSION_VALUE;
		break;
	case MDMA_REG_SCRATCH:
		v = m->scratch;
		break;
	case MDMA_REG_MAX_LEN:
		v = max_xfer;
		break;
	case MDMA_REG_STATUS:
		v = m->status;
		break;
	case MDMA_REG_ERROR:
		v = m->error;
		break;
	case MDMA_REG_ERR_IOVA_LO:
		v = lower_32_bits(m->err_iova);
		break;
	case MDMA_REG_ERR_IOVA_HI:
		v = upper_32_bits(m->err_iova);
		break;
	case MDMA_REG_IRQ_STATUS:
		v = m->irq_status;
		break;
	case MDMA_REG_IRQ_ENABLE:
		v = m->irq_enable;
		break;
	case MDMA_REG_MSIX_VECTOR:
		v = m->msix_vector;
		break;
	case MDMA_REG_SRC_LO:
		v = lower_32_bits(m->src);
		break;
	case MDMA_REG_SRC_HI:
		v = upper_32_bits(m->src);
		break;
	case MDMA_REG_DST_LO:
		v = lower_32_bits(m->dst);
		break;
	case MDMA_REG_DST_HI:
		v = upper_32_bits(m->dst);
		break;
	case MDMA_REG_LEN:
		v = m->len;
		break;
	case MDMA_REG_PATTERN:
		v = m->pattern;
		break;
	case MDMA_REG_COUNT:
		v = m->count;
		break;
	case MDMA_REG_IRQ_RAISE:
	case MDMA_REG_CMD:
	case MDMA_REG_ERR_INJECT:
		v = 0; /* write-only */
		break;
	default:
		mdma_bad_reg(m, "read", off, size);
		v = 0;
		break;
	}
	put_unaligned_le32(v, buf);
	return 0;
}

static void mdma_signal_err(struct mdma_state *m);

/* lock held */
static int mdma_bar0_write(struct mdma_state *m, u32 off, const u8 *buf,
			   size_t size)
{
	u32 v, old;

	if (off >= MDMA_MSIX_TABLE)
		return 0; /* MSI-X table and PBA: dropped, as vfio-pci */
	if (size != 4 || (off & 3)) {
		mdma_bad_reg(m, "write", off, size);
		return -EINVAL;
	}
	v = get_unaligned_le32(buf);

	switch (off) {
	case MDMA_REG_SCRATCH:
		m->scratch = v;
		break;
	case MDMA_REG_IRQ_STATUS:
		m->irq_status &= ~v;
		mdma_irq_update(m, 0);
		break;
	case MDMA_REG_IRQ_ENABLE:
		old = m->irq_enable;
		m->irq_enable = v & MDMA_IRQ_ALL;
		mdma_irq_update(m, m->irq_status & m->irq_enable & ~old);
		break;
	case MDMA_REG_IRQ_RAISE:
		mdma_irq_raise(m, v & MDMA_IRQ_ALL);
		break;
	case MDMA_REG_MSIX_VECTOR:
		if (v >= msix_vectors) {
			dev_warn_ratelimited(
				mdma_dev(m),
				"MSIX_VECTOR %u out of range (table has %u): ignored\n",
				v, msix_vectors);
			break;
		}
		m->msix_vector = v;
		break;
	case MDMA_REG_SRC_LO:
		m->src = (m->src & GENMASK_ULL(63, 32)) | v;
		break;
	case MDMA_REG_SRC_HI:
		m->src = (m->src & GENMASK_ULL(31, 0)) | ((u64)v << 32);
		break;
	case MDMA_REG_DST_LO:
		m->dst = (m->dst & GENMASK_ULL(63, 32)) | v;
		break;
	case MDMA_REG_DST_HI:
		m->dst = (m->dst & GENMASK_ULL(31, 0)) | ((u64)v << 32);
		break;
	case MDMA_REG_LEN:
		m->len = v;
		break;
	case MDMA_REG_PATTERN:
		m->pattern = v;
		break;
	case MDMA_REG_CMD:
		mdma_doorbell(m, v);
		break;
	case MDMA_REG_ERR_INJECT:
		if (v != MDMA_ERR_INJECT_KEY) {
			dev_warn_ratelimited(
				mdma_dev(m),
				"ERR_INJECT 0x%x: wrong key, ignored\n", v);
			break;
		}
		mdma_signal_err(m);
		break;
	case MDMA_REG_ID:
	case MDMA_REG_VERSION:
	case MDMA_REG_MAX_LEN:
	case MDMA_REG_STATUS:
	case MDMA_REG_ERROR:
	case MDMA_REG_ERR_IOVA_LO:
	case MDMA_REG_ERR_IOVA_HI:
	case MDMA_REG_COUNT:
		dev_warn_ratelimited(
			mdma_dev(m),
			"BAR0 write of 0x%x to read-only register 0x%03x: ignored\n",
			v, off);
		break;
	default:
		mdma_bad_reg(m, "write", off, size);
		break;
	}
	return 0;
}

/* ---- config space access ---------------------------------------------- */

/* lock held */
static void mdma_config_read(struct mdma_state *m, u32 off, u8 *buf,
			     size_t size)
{
	memcpy(buf, m->config + off, size);
	/* status: INTx pending bit reflects the line */
	if (off <= PCI_STATUS && off + size > PCI_STATUS &&
	    (m->irq_status & m->irq_enable))
		buf[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
}

/* lock held */
static void mdma_config_write(struct mdma_state *m, u32 off, const u8 *buf,
			      size_t size)
{
	u16 old_cmd = mdma_command(m);
	u16 new_cmd;
	size_t i;

	for (i = 0; i < size; i++) {
		u8 w = m->wmask[off + i];

		m->config[off + i] = (m->config[off + i] & ~w) | (buf[i] & w);
	}

	new_cmd = mdma_command(m);
	if ((old_cmd ^ new_cmd) & PCI_COMMAND_INTX_DISABLE)
		mdma_irq_update(m, 0);
	if ((old_cmd & ~new_cmd & PCI_COMMAND_MASTER) &&
	    (m->status & MDMA_STATUS_BUSY))
		dev_info_ratelimited(
			mdma_dev(m),
			"bus mastering disabled while a command runs: it completes\n");
}

/* ---- vfio_device_ops: read/write -------------------------------------- */

static ssize_t mdma_access(struct mdma_state *m, u8 *buf, size_t count,
			   loff_t pos, bool write)
{
	unsigned int index = MDMA_OFFSET_TO_INDEX(pos);
	u64 off = pos & MDMA_OFFSET_MASK;
	int ret = 0;

	mutex_lock(&m->lock);
	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		if (off >= MDMA_CFG_SIZE || count > MDMA_CFG_SIZE - off) {
			ret = -EINVAL;
			break;
		}
		if (write)
			mdma_config_write(m, off, buf, count);
		else
			mdma_config_read(m, off, buf, count);
		break;
	case VFIO_PCI_BAR0_REGION_INDEX:
		if (off >= MDMA_BAR0_SIZE || count > MDMA_BAR0_SIZE - off) {
			ret = -EINVAL;
			break;
		}
		if (!(mdma_command(m) & PCI_COMMAND_MEMORY)) {
			/* vfio-pci answers -EIO as well */
			dev_warn_ratelimited(
				mdma_dev(m),
				"BAR0 %s at 0x%03llx while memory decoding is disabled in the PCI command register: refused\n",
				write ? "write" : "read", off);
			ret = -EIO;
			break;
		}
		if (write)
			ret = mdma_bar0_write(m, off, buf, count);
		else
			ret = mdma_bar0_read(m, off, buf, count);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	mutex_unlock(&m->lock);
	return ret ? ret : count;
}

/* Splits an access into naturally aligned pieces of at most 4 bytes. */
static ssize_t mdma_rw(struct vfio_device *vdev, char __user *ubuf,
		       size_t count, loff_t *ppos, bool write)
{
	struct mdma_state *m = to_mdma(vdev);
	size_t done = 0;

	while (count) {
		u8 val[4];
		size_t n;
		ssize_t ret;

		if (count >= 4 && !(*ppos % 4))
			n = 4;
		else if (count >= 2 && !(*ppos % 2))
			n = 2;
		else
			n = 1;

		if (write && copy_from_user(val, ubuf, n))
			return -EFAULT;
		ret = mdma_access(m, val, n, *ppos, write);
		if (ret < 0)
			return done ? done : ret;
		if (!write && copy_to_user(ubuf, val, n))
			return -EFAULT;

		count -= n;
		done += n;
		*ppos += n;
		ubuf += n;
	}
	return done;
}

static ssize_t mdma_read(struct vfio_device *vdev, char __user *buf,
			 size_t count, loff_t *ppos)
{
	return mdma_rw(vdev, buf, count, ppos, false);
}

static ssize_t mdma_write(struct vfio_device *vdev, const char __user *buf,
			  size_t count, loff_t *ppos)
{
	return mdma_rw(vdev, (char __user *)buf, count, ppos, true);
}

/* ---- interrupts: SET_IRQS, the vfio-pci semantics --------------------- */

static int mdma_irq_count(unsigned int index)
{
	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
	case VFIO_PCI_MSI_IRQ_INDEX:
	case VFIO_PCI_ERR_IRQ_INDEX:
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	case VFIO_PCI_MSIX_IRQ_INDEX:
		return msix_vectors;
	default:
		return 0;
	}
}

/* Sets the interrupt type and vector count; igate held. */
static void mdma_set_irq_type(struct mdma_state *m, enum mdma_irq_type type,
			      unsigned int num_ctx)
{
	unsigned long flags;

	mutex_lock(&m->trig_lock);
	spin_lock_irqsave(&m->irq_lock, flags);
	m->irq_type = type;
	m->num_ctx = num_ctx;
	m->intx_masked = false;
	spin_unlock_irqrestore(&m->irq_lock, flags);
	mutex_unlock(&m->trig_lock);
}

/* Replaces a trigger and drops the old one's reference; igate held. */
static void mdma_swap_trigger(struct mdma_state *m, struct eventfd_ctx **slot,
			      struct eventfd_ctx *trigger)
{
	struct eventfd_ctx *old;

	mutex_lock(&m->trig_lock);
	old = *slot;
	*slot = trigger;
	mutex_unlock(&m->trig_lock);
	if (old)
		eventfd_ctx_put(old);
}

/* Signals a trigger if set; igate held. */
static void mdma_signal(struct mdma_state *m, struct eventfd_ctx **slot)
{
	mutex_lock(&m->trig_lock);
	if (*slot)
		mdma_eventfd_signal(*slot);
	mutex_unlock(&m->trig_lock);
}

/* igate held */
static void mdma_intx_disable(struct mdma_state *m)
{
	vfio_virqfd_disable(&m->intx_unmask);
	mdma_set_irq_type(m, MDMA_IRQ_NONE, 0);
	mdma_swap_trigger(m, &m->intx_trigger, NULL);
}

/* igate held; fd < 0 removes the trigger but keeps INTx enabled */
static int mdma_intx_set_signal(struct mdma_state *m, int fd)
{
	struct eventfd_ctx *trigger = NULL;

	if (fd >= 0) {
		trigger = eventfd_ctx_fdget(fd);
		if (IS_ERR(trigger))
			return PTR_ERR(trigger);
	}
	mdma_swap_trigger(m, &m->intx_trigger, trigger);
	return 0;
}

/* the line may already be asserted when a trigger is installed */
static void mdma_intx_kick(struct mdma_state *m)
{
	mutex_lock(&m->lock);
	mdma_irq_update(m, 0);
	mutex_unlock(&m->lock);
}

static int mdma_set_intx_mask(struct mdma_state *m, unsigned int start,
			      unsigned int count, u32 flags, void *data)
{
	unsigned long irqflags;

	if (m->irq_type != MDMA_IRQ_INTX || start != 0 || count != 1)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_EVENTFD)
		return -ENOTTY; /* as vfio-pci: no mask eventfd */
	if ((flags & VFIO_IRQ_SET_DATA_BOOL) && !*(u8 *)data)
		return 0;

	spin_lock_irqsave(&m->irq_lock, irqflags);
	m->intx_masked = true;
	spin_unlock_irqrestore(&m->irq_lock, irqflags);
	return 0;
}

static int mdma_set_intx_unmask(struct mdma_state *m, unsigned int start,
				unsigned int count, u32 flags, void *data)
{
	if (m->irq_type != MDMA_IRQ_INTX || start != 0 || count != 1)
		return -EINVAL;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		s32 fd = *(s32 *)data;

		if (fd >= 0)
			return vfio_virqfd_enable(m, mdma_intx_unmask_handler,
						  mdma_intx_send, NULL,
						  &m->intx_unmask, fd);
		vfio_virqfd_disable(&m->intx_unmask);
		return 0;
	}
	if ((flags & VFIO_IRQ_SET_DATA_BOOL) && !*(u8 *)data)
		return 0;
	if (mdma_intx_unmask_handler(m, NULL) > 0)
		mdma_intx_send(m, NULL);
	return 0;
}

static int mdma_set_intx_trigger(struct mdma_state *m, unsigned int start,
				 unsigned int count, u32 flags, void *data)
{
	if (m->irq_type == MDMA_IRQ_INTX && !count &&
	    (flags & VFIO_IRQ_SET_DATA_NONE)) {
		mdma_intx_disable(m);
		return 0;
	}
	if (!(m->irq_type == MDMA_IRQ_INTX || m->irq_type == MDMA_IRQ_NONE) ||
	    start != 0 || count != 1)
		return -EINVAL;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		s32 fd = *(s32 *)data;
		int ret;

		if (m->irq_type == MDMA_IRQ_INTX) {
			ret = mdma_intx_set_signal(m, fd);
		} else {
			mdma_set_irq_type(m, MDMA_IRQ_INTX, 1);
			ret = mdma_intx_set_signal(m, fd);
			if (ret)
				mdma_intx_disable(m);
		}
		if (!ret)
			mdma_intx_kick(m);
		return ret;
	}

	if (m->irq_type != MDMA_IRQ_INTX)
		return -EINVAL;
	/* loopback: DATA_NONE, or DATA_BOOL true */
	if ((flags & VFIO_IRQ_SET_DATA_BOOL) && !*(u8 *)data)
		return 0;
	mdma_intx_send(m, NULL);
	return 0;
}

/* igate held */
static void mdma_msi_disable(struct mdma_state *m)
{
	unsigned int i, n = m->num_ctx;

	mdma_set_irq_type(m, MDMA_IRQ_NONE, 0);
	for (i = 0; i < n; i++)
		mdma_swap_trigger(m, &m->msi_trigger[i], NULL);
}

/* igate held; installs fds[0..count) at vectors start.., -1 clears */
static int mdma_msi_set_block(struct mdma_state *m, unsigned int start,
			      unsigned int count, s32 *fds)
{
	unsigned int i;

	if (start >= m->num_ctx || start + count > m->num_ctx)
		return -EINVAL;

	for (i = 0; i < count; i++) {
		struct eventfd_ctx *trigger = NULL;

		if (fds && fds[i] >= 0) {
			trigger = eventfd_ctx_fdget(fds[i]);
			if (IS_ERR(trigger)) {
				/* undo this call's vectors, as vfio-pci */
				mdma_msi_set_block(m, start, i, NULL);
				return PTR_ERR(trigger);
			}
		}
		mdma_swap_trigger(m, &m->msi_trigger[start + i], trigger);
	}
	return 0;
}

static int mdma_set_msi_trigger(struct mdma_state *m, unsigned int index,
				unsigned int start, unsigned int count,
				u32 flags, void *data)
{
	enum mdma_irq_type type = index;
	unsigned int i;

	if (m->irq_type == type && !count && (flags & VFIO_IRQ_SET_DATA_NONE)) {
		mdma_msi_disable(m);
		return 0;
	}
	if (!(m->irq_type == type || m->irq_type == MDMA_IRQ_NONE))
		return -EINVAL;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		int ret;

		if (m->irq_type == type)
			return mdma_msi_set_block(m, start, count, data);

		if (!count)
			return -EINVAL;
		mdma_set_irq_type(m, type, start + count);
		ret = mdma_msi_set_block(m, start, count, data);
		if (ret)
			mdma_msi_disable(m);
		return ret;
	}

	if (m->irq_type != type || start + count > m->num_ctx)
		return -EINVAL;

	/* loopback */
	for (i = start; i < start + count; i++) {
		if ((flags & VFIO_IRQ_SET_DATA_BOOL) &&
		    !((u8 *)data)[i - start])
			continue;
		mdma_signal(m, &m->msi_trigger[i]);
	}
	return 0;
}

/* ERR and REQ: one eventfd each, the vfio-pci single-trigger rules */
static int mdma_set_single_trigger(struct mdma_state *m,
				   struct eventfd_ctx **slot,
				   unsigned int count, u32 flags, void *data)
{
	if (flags & VFIO_IRQ_SET_DATA_NONE) {
		if (count)
			mdma_signal(m, slot);
		else
			mdma_swap_trigger(m, slot, NULL);
		return 0;
	} else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (!count)
			return -EINVAL;
		if (*(u8 *)data)
			mdma_signal(m, slot);
		return 0;
	} else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		struct eventfd_ctx *trigger = NULL;
		s32 fd;

		if (!count)
			return -EINVAL;
		fd = *(s32 *)data;
		if (fd >= 0) {
			trigger = eventfd_ctx_fdget(fd);
			if (IS_ERR(trigger))
				return PTR_ERR(trigger);
		} else if (fd != -1) {
			return 0; /* vfio-pci ignores other negative fds */
		}
		mdma_swap_trigger(m, slot, trigger);
		return 0;
	}
	return -EINVAL;
}

/* ERR_INJECT; lock held */
static void mdma_signal_err(struct mdma_state *m)
{
	bool sent = false;

	mutex_lock(&m->trig_lock);
	if (m->err_trigger) {
		mdma_eventfd_signal(m->err_trigger);
		sent = true;
	}
	mutex_unlock(&m->trig_lock);
	dev_notice_ratelimited(
		mdma_dev(m), "injected uncorrectable error%s\n",
		sent ? ", ERR signalled"
		     : " (no ERR eventfd set, nothing signalled)");
}

static int mdma_set_irqs(struct mdma_state *m, u32 flags, unsigned int index,
			 unsigned int start, unsigned int count, void *data)
{
	u32 action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		switch (action) {
		case VFIO_IRQ_SET_ACTION_MASK:
			return mdma_set_intx_mask(m, start, count, flags, data);
		case VFIO_IRQ_SET_ACTION_UNMASK:
			return mdma_set_intx_unmask(m, start, count, flags,
						    data);
		case VFIO_IRQ_SET_ACTION_TRIGGER:
			return mdma_set_intx_trigger(m, start, count, flags,
						     data);
		}
		break;
	case VFIO_PCI_MSI_IRQ_INDEX:
	case VFIO_PCI_MSIX_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return mdma_set_msi_trigger(m, index, start, count,
						    flags, data);
		break; /* no MSI masking, as vfio-pci */
	case VFIO_PCI_ERR_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER && start == 0 &&
		    count <= 1)
			return mdma_set_single_trigger(m, &m->err_trigger,
						       count, flags, data);
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		break;
	case VFIO_PCI_REQ_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER && start == 0 &&
		    count <= 1)
			return mdma_set_single_trigger(m, &m->req_trigger,
						       count, flags, data);
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		break;
	}
	return -ENOTTY;
}

/* igate held */
static void mdma_irqs_disable_all(struct mdma_state *m)
{
	if (m->irq_type == MDMA_IRQ_INTX)
		mdma_intx_disable(m);
	else if (m->irq_type == MDMA_IRQ_MSI || m->irq_type == MDMA_IRQ_MSIX)
		mdma_msi_disable(m);
	mdma_set_single_trigger(m, &m->err_trigger, 0, VFIO_IRQ_SET_DATA_NONE,
				NULL);
	mdma_set_single_trigger(m, &m->req_trigger, 0, VFIO_IRQ_SET_DATA_NONE,
				NULL);
}

/* ---- ioctls ------------------------------------------------------------- */

static long mdma_ioctl_get_info(struct mdma_state *m, void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);
	struct vfio_device_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;

	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long mdma_ioctl_get_region_info(struct mdma_state *m, void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	info.offset = MDMA_INDEX_TO_OFFSET(info.index);
	info.cap_offset = 0;
	switch (info.index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info.size = MDMA_CFG_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ |
			     VFIO_REGION_INFO_FLAG_WRITE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX:
		info.size = MDMA_BAR0_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ |
			     VFIO_REGION_INFO_FLAG_WRITE;
		break;
	case VFIO_PCI_BAR1_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
	case VFIO_PCI_ROM_REGION_INDEX:
		info.size = 0;
		info.flags = 0;
		break;
	default:
		/* no VGA, no device-specific regions */
		return -EINVAL;
	}

	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long mdma_ioctl_get_irq_info(struct mdma_state *m, void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_info, count);
	struct vfio_irq_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;

	info.flags = VFIO_IRQ_INFO_EVENTFD;
	info.count = mdma_irq_count(info.index);
	if (info.index == VFIO_PCI_INTX_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else
		info.flags |= VFIO_IRQ_INFO_NORESIZE;

	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long mdma_ioctl_set_irqs(struct mdma_state *m, void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_set, count);
	struct vfio_irq_set hdr;
	size_t data_size = 0;
	u8 *data = NULL;
	int ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;

	ret = vfio_set_irqs_validate_and_prepare(
		&hdr, mdma_irq_count(hdr.index), VFIO_PCI_NUM_IRQS, &data_size);
	if (ret)
		return ret;

	if (data_size) {
		data = memdup_user(arg + minsz, data_size);
		if (IS_ERR(data))
			return PTR_ERR(data);
	}

	mutex_lock(&m->igate);
	ret = mdma_set_irqs(m, hdr.flags, hdr.index, hdr.start, hdr.count,
			    data);
	mutex_unlock(&m->igate);

	kfree(data);
	return ret;
}

/*
 * Stops the DMA engine and drops every pin. The generation bump makes a
 * command still in flight complete as ABORTED into nothing.
 */
static void mdma_quiesce(struct mdma_state *m)
{
	mutex_lock(&m->lock);
	m->generation++;
	m->status &= ~MDMA_STATUS_BUSY;
	mutex_unlock(&m->lock);

	cancel_work_sync(&m->dma_work);

	mutex_lock(&m->dma_lock);
	mdma_iotlb_flush(m);
	mutex_unlock(&m->dma_lock);
}

/*
 * VFIO_DEVICE_RESET: a function-level reset of the device's own state. As
 * vfio-pci (which saves and restores config space around the reset) the
 * config space and the SET_IRQS setup survive; registers, the DMA engine and
 * the iotlb do not.
 */
static int mdma_reset(struct mdma_state *m)
{
	mdma_quiesce(m);

	mutex_lock(&m->lock);
	mdma_regs_reset(m);
	mdma_irq_update(m, 0);
	mutex_unlock(&m->lock);

	dev_dbg(mdma_dev(m), "reset\n");
	return 0;
}

static long mdma_ioctl(struct vfio_device *vdev, unsigned int cmd,
		       unsigned long arg)
{
	struct mdma_state *m = to_mdma(vdev);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return mdma_ioctl_get_info(m, uarg);
	case VFIO_DEVICE_GET_REGION_INFO:
		return mdma_ioctl_get_region_info(m, uarg);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return mdma_ioctl_get_irq_info(m, uarg);
	case VFIO_DEVICE_SET_IRQS:
		return mdma_ioctl_set_irqs(m, uarg);
	case VFIO_DEVICE_RESET:
		return mdma_reset(m);
	}
	return -ENOTTY;
}

/* ---- open/close, dma_unmap, request ------------------------------------ */

static int mdma_open_device(struct vfio_device *vdev)
{
	struct mdma_state *m = to_mdma(vdev);

	mutex_lock(&m->lock);
	mdma_config_init(m);
	mdma_regs_reset(m);
	mutex_unlock(&m->lock);
	return 0;
}

static void mdma_close_device(struct vfio_device *vdev)
{
	struct mdma_state *m = to_mdma(vdev);

	/* the last chance to unpin: the container may go right after */
	mdma_quiesce(m);

	mutex_lock(&m->igate);
	mdma_irqs_disable_all(m);
	mutex_unlock(&m->igate);

	mutex_lock(&m->lock);
	mdma_regs_reset(m);
	mutex_unlock(&m->lock);
}

/*
 * The container is about to unmap [iova, iova + length): wait for a command
 * that may use pages there and release our pins, or Type1 cannot unmap.
 */
static void mdma_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct mdma_state *m = to_mdma(vdev);

	mutex_lock(&m->dma_lock);
	mdma_iotlb_unpin_range(m, iova, length);
	mutex_unlock(&m->dma_lock);
}

/* The device is being removed while open: relay through REQ, as vfio-pci. */
static void mdma_request(struct vfio_device *vdev, unsigned int count)
{
	struct mdma_state *m = to_mdma(vdev);

	mutex_lock(&m->trig_lock);
	if (m->req_trigger) {
		if (!(count % 10))
			dev_notice_ratelimited(
				mdma_dev(m),
				"relaying device request to user (#%u)\n",
				count);
		mdma_eventfd_signal(m->req_trigger);
	} else if (count == 0) {
		dev_warn(
			mdma_dev(m),
			"no device request channel registered, blocked until released by user\n");
	}
	mutex_unlock(&m->trig_lock);
}

/* ---- lifetime ----------------------------------------------------------- */

static int mdma_init_dev(struct vfio_device *vdev)
{
	struct mdma_state *m = to_mdma(vdev);
	unsigned int n = mdma_max_pages();

	m->src_pages = kcalloc(n, sizeof(*m->src_pages), GFP_KERNEL);
	m->dst_pages = kcalloc(n, sizeof(*m->dst_pages), GFP_KERNEL);
	if (!m->src_pages || !m->dst_pages) {
		kfree(m->src_pages);
		kfree(m->dst_pages);
		return -ENOMEM;
	}

	mutex_init(&m->lock);
	mutex_init(&m->dma_lock);
	mutex_init(&m->igate);
	mutex_init(&m->trig_lock);
	spin_lock_init(&m->irq_lock);
	xa_init(&m->iotlb);
	INIT_WORK(&m->dma_work, mdma_dma_work);
	m->irq_type = MDMA_IRQ_NONE;
	mdma_config_init(m);
	atomic_inc(&mdma_nr_devices);
	return 0;
}

static void mdma_release_dev(struct vfio_device *vdev)
{
	struct mdma_state *m = to_mdma(vdev);
	unsigned int i;

	/* close_device() dropped every pin and eventfd reference */
	WARN_ON(m->iotlb_count);
	WARN_ON(m->intx_trigger || m->intx_unmask || m->err_trigger ||
		m->req_trigger);
	for (i = 0; i < MDMA_MSIX_MAX; i++)
		WARN_ON(m->msi_trigger[i]);
	xa_destroy(&m->iotlb);
	mutex_destroy(&m->trig_lock);
	mutex_destroy(&m->igate);
	mutex_destroy(&m->dma_lock);
	mutex_destroy(&m->lock);
	kfree(m->src_pages);
	kfree(m->dst_pages);
	atomic_dec(&mdma_nr_devices);
	/* since 6.2 the VFIO core frees the device after this callback */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
	vfio_free_device(vdev);
#endif
}

static const struct vfio_device_ops mdma_dev_ops = {
	.name = "vfio-mdma",
	.init = mdma_init_dev,
	.release = mdma_release_dev,
	.open_device = mdma_open_device,
	.close_device = mdma_close_device,
	.read = mdma_read,
	.write = mdma_write,
	.ioctl = mdma_ioctl,
	.request = mdma_request,
	.dma_unmap = mdma_dma_unmap,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	/*
	 * 6.2 added iommufd: with CONFIG_IOMMUFD an emulated-IOMMU device
	 * without these is refused at registration (NULL without it).
	 */
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	/* 6.6 added detaching an emulated device from its IOAS */
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
#endif
};

static int mdma_probe(struct mdev_device *mdev)
{
	struct mdma_state *m;
	int ret;

	m = vfio_alloc_device(mdma_state, vdev, &mdev->dev, &mdma_dev_ops);
	if (IS_ERR(m))
		return PTR_ERR(m);

	ret = vfio_register_emulated_iommu_dev(&m->vdev);
	if (ret)
		goto err_put;
	dev_set_drvdata(&mdev->dev, m);
	dev_info(&mdev->dev,
		 "created: PCI %04x:%04x, BAR0 %u bytes, %u MSI-X vectors\n",
		 MDMA_PCI_VENDOR_ID, MDMA_PCI_DEVICE_ID, MDMA_BAR0_SIZE,
		 msix_vectors);
	return 0;

err_put:
	vfio_put_device(&m->vdev);
	return ret;
}

static void mdma_remove(struct mdev_device *mdev)
{
	struct mdma_state *m = dev_get_drvdata(&mdev->dev);

	/* waits for the user to close the device, calling mdma_request() */
	vfio_unregister_group_dev(&m->vdev);
	vfio_put_device(&m->vdev);
	dev_info(&mdev->dev, "removed\n");
}

static ssize_t mdma_show_description(struct mdev_type *mtype, char *buf)
{
	return sysfs_emit(
		buf,
		"PCI %04x:%04x DMA copy/fill engine, BAR0 %u bytes, INTx/MSI/%u MSI-X vectors\n",
		MDMA_PCI_VENDOR_ID, MDMA_PCI_DEVICE_ID, MDMA_BAR0_SIZE,
		msix_vectors);
}

static struct mdev_type mdma_type = {
	.sysfs_name = "1",
	.pretty_name = "mdma DMA test function",
};

static struct mdev_type *mdma_types[] = {&mdma_type};

static struct mdev_driver mdma_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver =
		{
			.name = MDMA_NAME,
			.owner = THIS_MODULE,
			.mod_name = KBUILD_MODNAME,
		},
	.probe = mdma_probe,
	.remove = mdma_remove,
	.show_description = mdma_show_description,
};

static struct mdma_parent {
	struct class *class;
	struct device dev;
	struct mdev_parent parent;
} mdma_parent;

static void mdma_parent_release(struct device *dev)
{
}

static int __init mdma_init(void)
{
	int ret;

	if (msix_vectors < 1 || msix_vectors > MDMA_MSIX_MAX) {
		pr_err("msix_vectors=%u: must be 1..%u\n", msix_vectors,
		       MDMA_MSIX_MAX);
		return -EINVAL;
	}
	if (max_xfer < 1 || max_xfer > MDMA_MAX_XFER_LIMIT) {
		pr_err("max_xfer=%u: must be 1..%u\n", max_xfer,
		       MDMA_MAX_XFER_LIMIT);
		return -EINVAL;
	}
	if (max_instances < 1) {
		pr_err("max_instances=%u: must be at least 1\n", max_instances);
		return -EINVAL;
	}
	if (iotlb_pages < 2 * mdma_max_pages()) {
		pr_info("iotlb_pages=%u raised to %u, what one %u-byte command needs\n",
			iotlb_pages, 2 * mdma_max_pages(), max_xfer);
		iotlb_pages = 2 * mdma_max_pages();
	}
	mdma_driver.max_instances = max_instances;

	mdma_wq = alloc_workqueue("mdma", WQ_UNBOUND, 0);
	if (!mdma_wq)
		return -ENOMEM;

	ret = mdev_register_driver(&mdma_driver);
	if (ret)
		goto err_wq;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	/* 6.4 dropped class_create()'s owner argument */
	mdma_parent.class = class_create(MDMA_NAME);
#else
	mdma_parent.class = class_create(THIS_MODULE, MDMA_NAME);
#endif
	if (IS_ERR(mdma_parent.class)) {
		ret = PTR_ERR(mdma_parent.class);
		goto err_driver;
	}
	mdma_parent.dev.class = mdma_parent.class;
	mdma_parent.dev.release = mdma_parent_release;
	dev_set_name(&mdma_parent.dev, "%s", MDMA_NAME);
	ret = device_register(&mdma_parent.dev);
	if (ret)
		goto err_put_dev;

	ret = mdev_register_parent(&mdma_parent.parent, &mdma_parent.dev,
				   &mdma_driver, mdma_types,
				   ARRAY_SIZE(mdma_types));
	if (ret)
		goto err_del_dev;

	pr_info("loaded: up to %u instances, max_xfer %u, iotlb_pages %u, %u MSI-X vectors\n",
		max_instances, max_xfer, iotlb_pages, msix_vectors);
	return 0;

err_del_dev:
	device_del(&mdma_parent.dev);
err_put_dev:
	put_device(&mdma_parent.dev);
	class_destroy(mdma_parent.class);
err_driver:
	mdev_unregister_driver(&mdma_driver);
err_wq:
	destroy_workqueue(mdma_wq);
	return ret;
}

static void __exit mdma_exit(void)
{
	/* removes the instances still present; an open device holds a
	 * reference on this module, so none is open here */
	mdev_unregister_parent(&mdma_parent.parent);
	device_unregister(&mdma_parent.dev);
	class_destroy(mdma_parent.class);
	mdev_unregister_driver(&mdma_driver);
	destroy_workqueue(mdma_wq);
	/* every instance's vfio_device must have been released by now */
	WARN(atomic_read(&mdma_nr_devices), "%d device(s) never released\n",
	     atomic_read(&mdma_nr_devices));
	pr_info("unloaded\n");
}

module_init(mdma_init);
module_exit(mdma_exit);

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("Mediated PCI DMA test function for VFIO without an IOMMU");
