/* SPDX-License-Identifier: MIT */
/*
 * Host tests of the ioctl layer (container, group, device, irq, dma,
 * iommufd).
 *
 * There is no /dev/vfio here: these tests cover argument checking, the error
 * paths of opening nodes, the capability-chain parsers, and the region
 * helpers on a plain file standing in for a device fd. Against a
 * non-VFIO fd (/dev/null) a well-formed call reaches the kernel and comes
 * back -ENOTTY, which proves the arguments passed our own checks. The real
 * ioctls are exercised in the VM (tests/vm).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/dma.h"
#include "kernel/group.h"
#include "kernel/iommufd.h"
#include "kernel/irq.h"
#include "tests/testutil.h"

static int open_null(void)
{
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

/* ---- container ----------------------------------------------------------- */

/*
 * The errors of opening a node that is missing, or is not the node open_fn
 * wants (/dev/null, a plain file named like it): the probing ioctl fails
 * and the fd is closed again (the fd check sees a leak).
 */
static void check_node_open_errors(int (*open_fn)(const char *path), const char *name)
{
        char *dir = testutil_mkdtemp("kvfio-ioctl");
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        ck_assert_int_eq(open_fn(path), -ENOENT);
        ck_assert_int_eq(open_fn("/dev/null"), -ENOTTY);
        testutil_write_file(dir, name, "x");
        ck_assert_int_eq(open_fn(path), -ENOTTY);
        testutil_rmtree(dir);
        free(dir);
}

START_TEST(test_container_open_errors)
{
        /* not a container: the API version ioctl fails */
        check_node_open_errors(kvfio_container_open, "vfio");
}
END_TEST

START_TEST(test_container_args)
{
        int fd = open_null();

        ck_assert_int_eq(kvfio_container_check_extension(-1, VFIO_TYPE1v2_IOMMU), -EBADF);
        ck_assert_int_eq(kvfio_container_check_extension(fd, VFIO_TYPE1v2_IOMMU), -ENOTTY);
        ck_assert_int_eq(kvfio_container_pick_iommu(-1, KVFIO_IOMMU_AUTO), -EBADF);
        ck_assert_int_eq(kvfio_container_pick_iommu(fd, 42), -EINVAL);
        ck_assert_int_eq(kvfio_container_pick_iommu(fd, VFIO_NOIOMMU_IOMMU), -EINVAL);
        ck_assert_int_eq(kvfio_container_pick_iommu(fd, KVFIO_IOMMU_AUTO), -ENOTTY);
        ck_assert_int_eq(kvfio_container_pick_iommu(fd, KVFIO_IOMMU_TYPE1), -ENOTTY);
        ck_assert_int_eq(kvfio_container_set_iommu(-1, KVFIO_IOMMU_TYPE1v2), -EBADF);
        ck_assert_int_eq(kvfio_container_set_iommu(fd, -5), -EINVAL);
        ck_assert_int_eq(kvfio_container_set_iommu(fd, KVFIO_IOMMU_TYPE1v2), -ENOTTY);

        struct kvfio_iommu_info *info = (void *)0x1;
        ck_assert_int_eq(kvfio_iommu_get_info(-1, &info), -EBADF);
        ck_assert_int_eq(kvfio_iommu_get_info(fd, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_iommu_get_info(fd, &info), -ENOTTY);
        ck_assert_ptr_eq(info, (void *)0x1);
        close(fd);

        ck_assert_str_eq(kvfio_iommu_model_name(KVFIO_IOMMU_TYPE1v2), "Type1v2");
        ck_assert_str_eq(kvfio_iommu_model_name(KVFIO_IOMMU_TYPE1), "Type1");
        ck_assert_str_eq(kvfio_iommu_model_name(KVFIO_IOMMU_SPAPR_TCE_v2), "sPAPR-TCE-v2");
        ck_assert_str_eq(kvfio_iommu_model_name(KVFIO_IOMMU_SPAPR_TCE), "sPAPR-TCE");
        ck_assert_str_eq(kvfio_iommu_model_name(KVFIO_IOMMU_AUTO), "auto");
        ck_assert_str_eq(kvfio_iommu_model_name(99), "unknown");
}
END_TEST

/* Builds a Type1 info buffer: header, IOVA range cap (2 ranges), DMA avail cap. */
static size_t build_iommu_info(uint8_t *buf, size_t size)
{
        struct vfio_iommu_type1_info info = {0};
        struct vfio_iommu_type1_info_cap_iova_range iova = {0};
        struct vfio_iova_range ranges[2] = {{0, 0xfedfffff}, {0xfef00000, 0xffffffffffull}};
        struct vfio_iommu_type1_info_dma_avail avail = {0};
        size_t off_iova = 24, off_avail = off_iova + sizeof(iova) + sizeof(ranges);
        size_t total = off_avail + sizeof(avail);

        ck_assert_uint_ge(size, total);
        memset(buf, 0, size);
        info.argsz = (uint32_t)total;
        info.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
        info.iova_pgsizes = 0x40201000;
        info.cap_offset = (uint32_t)off_iova;
        memcpy(buf, &info, sizeof(info));
        iova.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
        iova.header.version = 1;
        iova.header.next = (uint32_t)off_avail;
        iova.nr_iovas = 2;
        memcpy(buf + off_iova, &iova, sizeof(iova));
        memcpy(buf + off_iova + sizeof(iova), ranges, sizeof(ranges));
        avail.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
        avail.header.version = 1;
        avail.avail = 65535;
        memcpy(buf + off_avail, &avail, sizeof(avail));
        return total;
}

START_TEST(test_iommu_info_parse)
{
        uint8_t buf[256];
        struct kvfio_iommu_info *info = NULL;
        struct vfio_iommu_type1_info hdr;
        size_t len = build_iommu_info(buf, sizeof(buf));

        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), 0);
        ck_assert_uint_eq(info->pgsize_bitmap, 0x40201000);
        ck_assert(info->has_iova_ranges);
        ck_assert_uint_eq(info->n_iova_ranges, 2);
        ck_assert_uint_eq(info->iova_ranges[0].start, 0);
        ck_assert_uint_eq(info->iova_ranges[0].end, 0xfedfffff);
        ck_assert_uint_eq(info->iova_ranges[1].start, 0xfef00000);
        ck_assert_uint_eq(info->iova_ranges[1].end, 0xffffffffffull);
        ck_assert(info->has_dma_avail);
        ck_assert_uint_eq(info->dma_avail, 65535);
        kvfio_iommu_info_free(info);
        kvfio_iommu_info_free(NULL);

        /* a bigger buffer than argsz is fine */
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, sizeof(buf), &info), 0);
        ck_assert_uint_eq(info->n_iova_ranges, 2);
        kvfio_iommu_info_free(info);

        /* no caps flag: the chain is ignored; no pgsizes flag: bitmap 0 */
        memcpy(&hdr, buf, sizeof(hdr));
        hdr.flags = 0;
        memcpy(buf, &hdr, sizeof(hdr));
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), 0);
        ck_assert_uint_eq(info->pgsize_bitmap, 0);
        ck_assert(!info->has_iova_ranges);
        ck_assert_ptr_null(info->iova_ranges);
        ck_assert(!info->has_dma_avail);
        kvfio_iommu_info_free(info);

        info = (void *)0x1;
        /* too short, NULL */
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, 8, &info), -EINVAL);
        ck_assert_int_eq(kvfio_iommu_info_parse(NULL, len, &info), -EINVAL);
        /* argsz beyond the buffer */
        len = build_iommu_info(buf, sizeof(buf));
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len - 1, &info), -EBADMSG);
        /* first cap out of bounds */
        memcpy(&hdr, buf, sizeof(hdr));
        hdr.cap_offset = (uint32_t)len;
        memcpy(buf, &hdr, sizeof(hdr));
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), -EBADMSG);
        /* cap inside the fixed struct */
        hdr.cap_offset = 8;
        memcpy(buf, &hdr, sizeof(hdr));
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), -EBADMSG);
        /* a loop: the second cap points back at the first */
        len = build_iommu_info(buf, sizeof(buf));
        {
                struct vfio_info_cap_header ch;
                size_t off_avail = 24 + sizeof(struct vfio_iommu_type1_info_cap_iova_range) +
                                   2 * sizeof(struct vfio_iova_range);

                memcpy(&ch, buf + off_avail, sizeof(ch));
                ch.next = 24;
                memcpy(buf + off_avail, &ch, sizeof(ch));
        }
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), -EBADMSG);
        /* more ranges than the buffer holds */
        len = build_iommu_info(buf, sizeof(buf));
        {
                struct vfio_iommu_type1_info_cap_iova_range c;

                memcpy(&c, buf + 24, sizeof(c));
                c.nr_iovas = 1000000;
                memcpy(buf + 24, &c, sizeof(c));
        }
        ck_assert_int_eq(kvfio_iommu_info_parse(buf, len, &info), -EBADMSG);
        ck_assert_ptr_eq(info, (void *)0x1);
}
END_TEST

/* ---- group --------------------------------------------------------------- */

START_TEST(test_group_errors)
{
        char *dir = testutil_mkdtemp("kvfio-ioctl");
        struct kvfio_group_status st = {.viable = true, .container_set = true};
        int fd;

        ck_assert_int_eq(kvfio_group_open(-1, dir), -EINVAL);
        ck_assert_int_eq(kvfio_group_open(7, dir), -ENOENT);
        /* a node that opens but is no group */
        testutil_write_file(dir, "7", "");
        fd = kvfio_group_open(7, dir);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(kvfio_group_get_status(fd, &st), -ENOTTY);
        ck_assert(st.viable && st.container_set); /* untouched */
        ck_assert_int_eq(kvfio_group_set_container(fd, fd), -ENOTTY);
        ck_assert_int_eq(kvfio_group_unset_container(fd), -ENOTTY);
        ck_assert_int_eq(kvfio_group_get_device_fd(fd, "0000:00:04.0"), -ENOTTY);
        ck_assert_int_eq(kvfio_group_get_device_fd(fd, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_group_get_device_fd(fd, ""), -EINVAL);
        ck_assert_int_eq(kvfio_group_get_status(fd, NULL), -EINVAL);
        close(fd);

        ck_assert_int_eq(kvfio_group_get_status(-1, &st), -EBADF);
        ck_assert_int_eq(kvfio_group_set_container(-1, 3), -EBADF);
        ck_assert_int_eq(kvfio_group_set_container(3, -1), -EBADF);
        ck_assert_int_eq(kvfio_group_unset_container(-1), -EBADF);
        ck_assert_int_eq(kvfio_group_get_device_fd(-1, "0000:00:04.0"), -EBADF);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

/* ---- device -------------------------------------------------------------- */

START_TEST(test_device_args)
{
        struct kvfio_device_info di = {.num_regions = 77};
        struct kvfio_irq_info ii = {.count = 77};
        struct kvfio_region_info *ri = (void *)0x1;
        struct kvfio_hot_reset_info *hi = (void *)0x1;
        int fd = open_null(), fds[2] = {3, 4};

        ck_assert_int_eq(kvfio_device_get_info(-1, &di), -EBADF);
        ck_assert_int_eq(kvfio_device_get_info(fd, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_device_get_info(fd, &di), -ENOTTY);
        ck_assert_uint_eq(di.num_regions, 77);
        ck_assert_int_eq(kvfio_device_get_region_info(-1, 0, &ri), -EBADF);
        ck_assert_int_eq(kvfio_device_get_region_info(fd, 0, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_device_get_region_info(fd, 0, &ri), -ENOTTY);
        ck_assert_ptr_eq(ri, (void *)0x1);
        ck_assert_int_eq(kvfio_device_get_irq_info(-1, 0, &ii), -EBADF);
        ck_assert_int_eq(kvfio_device_get_irq_info(fd, 0, &ii), -ENOTTY);
        ck_assert_uint_eq(ii.count, 77);
        ck_assert_int_eq(kvfio_device_reset(-1), -EBADF);
        ck_assert_int_eq(kvfio_device_reset(fd), -ENOTTY);
        ck_assert_int_eq(kvfio_device_get_hot_reset_info(-1, &hi), -EBADF);
        ck_assert_int_eq(kvfio_device_get_hot_reset_info(fd, &hi), -ENOTTY);
        ck_assert_ptr_eq(hi, (void *)0x1);
        kvfio_hot_reset_info_free(NULL);

        ck_assert_int_eq(kvfio_device_hot_reset(-1, fds, 2), -EBADF);
        ck_assert_int_eq(kvfio_device_hot_reset(fd, NULL, 2), -EINVAL);
        ck_assert_int_eq(kvfio_device_hot_reset(fd, fds, 0), -EINVAL);
        ck_assert_int_eq(kvfio_device_hot_reset(fd, fds, KVFIO_HOT_RESET_MAX_GROUPS + 1), -EINVAL);
        fds[1] = -1;
        ck_assert_int_eq(kvfio_device_hot_reset(fd, fds, 2), -EINVAL);
        fds[1] = fd;
        ck_assert_int_eq(kvfio_device_hot_reset(fd, fds, 2), -ENOTTY);
        close(fd);
}
END_TEST

START_TEST(test_hot_reset_dep_bdf)
{
        struct kvfio_hot_reset_dep d = {.segment = 0x1, .bus = 0x3a, .devfn = (0x1f << 3) | 6};
        char buf[16];

        ck_assert_str_eq(kvfio_hot_reset_dep_bdf(&d, buf), "0001:3a:1f.6");
        d.segment = 0;
        d.bus = 0;
        d.devfn = 0x20;
        ck_assert_str_eq(kvfio_hot_reset_dep_bdf(&d, buf), "0000:00:04.0");
}
END_TEST

/* VFIO_REGION_TYPE_PCI_VENDOR_TYPE is (1 << 31): undefined behaviour as an int. */
#define PCI_VENDOR_TYPE 0x80000000u

/* A region info buffer with a sparse mmap cap, a type cap and MSI-X mappable. */
static size_t build_region_info(uint8_t *buf, size_t size, uint64_t area1_size)
{
        struct vfio_region_info ri = {0};
        struct vfio_region_info_cap_sparse_mmap sp = {0};
        struct vfio_region_sparse_mmap_area areas[2] = {{0, 0x2000}, {0x3000, area1_size}};
        struct vfio_region_info_cap_type ty = {0};
        struct vfio_info_cap_header mx = {0};
        size_t off_sp = sizeof(ri), off_ty = off_sp + sizeof(sp) + sizeof(areas);
        size_t off_mx = off_ty + sizeof(ty), total = off_mx + sizeof(mx);

        ck_assert_uint_ge(size, total);
        memset(buf, 0, size);
        ri.argsz = (uint32_t)total;
        ri.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                   VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
        ri.index = VFIO_PCI_BAR0_REGION_INDEX;
        ri.cap_offset = (uint32_t)off_sp;
        ri.size = 0x4000;
        ri.offset = 0x10000000000ull;
        memcpy(buf, &ri, sizeof(ri));
        sp.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
        sp.header.version = 1;
        sp.header.next = (uint32_t)off_ty;
        sp.nr_areas = 2;
        memcpy(buf + off_sp, &sp, sizeof(sp));
        memcpy(buf + off_sp + sizeof(sp), areas, sizeof(areas));
        ty.header.id = VFIO_REGION_INFO_CAP_TYPE;
        ty.header.version = 1;
        ty.header.next = (uint32_t)off_mx;
        ty.type = PCI_VENDOR_TYPE | 0x8086;
        ty.subtype = VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION;
        memcpy(buf + off_ty, &ty, sizeof(ty));
        mx.id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE;
        mx.version = 1;
        memcpy(buf + off_mx, &mx, sizeof(mx));
        return total;
}

START_TEST(test_region_info_parse)
{
        uint8_t buf[256];
        struct kvfio_region_info *ri = NULL;
        size_t len = build_region_info(buf, sizeof(buf), 0x1000);

        ck_assert_int_eq(kvfio_region_info_parse(buf, len, &ri), 0);
        ck_assert_uint_eq(ri->index, 0);
        ck_assert_uint_eq(ri->size, 0x4000);
        ck_assert_uint_eq(ri->offset, 0x10000000000ull);
        ck_assert(ri->flags & VFIO_REGION_INFO_FLAG_MMAP);
        ck_assert(ri->has_sparse_mmap);
        ck_assert_uint_eq(ri->n_sparse_areas, 2);
        ck_assert_uint_eq(ri->sparse_areas[0].offset, 0);
        ck_assert_uint_eq(ri->sparse_areas[0].size, 0x2000);
        ck_assert_uint_eq(ri->sparse_areas[1].offset, 0x3000);
        ck_assert_uint_eq(ri->sparse_areas[1].size, 0x1000);
        ck_assert(ri->has_type);
        ck_assert_uint_eq(ri->type, PCI_VENDOR_TYPE | 0x8086);
        ck_assert_uint_eq(ri->subtype, VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION);
        ck_assert(ri->msix_mappable);
        kvfio_region_info_free(ri);
        kvfio_region_info_free(NULL);

        ri = (void *)0x1;
        /* an area past the end of the region */
        len = build_region_info(buf, sizeof(buf), 0x2000);
        ck_assert_int_eq(kvfio_region_info_parse(buf, len, &ri), -EBADMSG);
        /* argsz larger than the buffer, short buffer */
        len = build_region_info(buf, sizeof(buf), 0x1000);
        ck_assert_int_eq(kvfio_region_info_parse(buf, len - 4, &ri), -EBADMSG);
        ck_assert_int_eq(kvfio_region_info_parse(buf, 16, &ri), -EINVAL);
        ck_assert_ptr_eq(ri, (void *)0x1);
}
END_TEST

/* A plain file stands in for a device fd: pread/pwrite/mmap work on it. */
static int make_fake_device(char **ret_dir)
{
        char *dir = testutil_mkdtemp("kvfio-ioctl");
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/dev", dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 4 * 4096), 0);
        *ret_dir = dir;
        return fd;
}

START_TEST(test_region_rw)
{
        struct kvfio_region_info r = {
            .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
            .size = 256,
            .offset = 4096,
        };
        uint8_t out[256], in[256];
        char *dir;
        int fd = make_fake_device(&dir);

        for (size_t i = 0; i < sizeof(out); i++)
                out[i] = (uint8_t)(i * 7 + 1);
        ck_assert_int_eq(kvfio_region_write(fd, &r, 0, out, sizeof(out)), 0);
        memset(in, 0, sizeof(in));
        ck_assert_int_eq(kvfio_region_read(fd, &r, 0, in, sizeof(in)), 0);
        ck_assert_mem_eq(in, out, sizeof(in));
        /* at the region's offset in the fd, not at 0 */
        ck_assert_int_eq(pread(fd, in, 4, 4096 + 16), 4);
        ck_assert_mem_eq(in, out + 16, 4);
        ck_assert_int_eq(kvfio_region_read(fd, &r, 250, in, 6), 0);
        ck_assert_mem_eq(in, out + 250, 6);

        /* range checks */
        ck_assert_int_eq(kvfio_region_read(fd, &r, 250, in, 7), -EINVAL);
        ck_assert_int_eq(kvfio_region_write(fd, &r, 257, out, 0), -EINVAL);
        ck_assert_int_eq(kvfio_region_read(fd, &r, UINT64_MAX, in, 2), -EINVAL);
        ck_assert_int_eq(kvfio_region_read(fd, NULL, 0, in, 2), -EINVAL);
        ck_assert_int_eq(kvfio_region_read(-1, &r, 0, in, 2), -EBADF);
        ck_assert_int_eq(kvfio_region_read(fd, &r, 0, NULL, 0), 0);
        /* permissions */
        r.flags = VFIO_REGION_INFO_FLAG_READ;
        ck_assert_int_eq(kvfio_region_write(fd, &r, 0, out, 1), -EACCES);
        r.flags = VFIO_REGION_INFO_FLAG_WRITE;
        ck_assert_int_eq(kvfio_region_read(fd, &r, 0, in, 1), -EACCES);
        /* end of file before the end of the region: all or nothing */
        r.flags = VFIO_REGION_INFO_FLAG_READ;
        r.offset = 4 * 4096 - 8;
        r.size = 64;
        ck_assert_int_eq(kvfio_region_read(fd, &r, 0, in, 16), -EIO);

        close(fd);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(test_region_mmap)
{
        long page = sysconf(_SC_PAGESIZE);
        struct kvfio_sparse_area areas[1] = {{.offset = 0, .size = (uint64_t)page}};
        struct kvfio_region_info r = {
            .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                     VFIO_REGION_INFO_FLAG_MMAP,
            .size = (uint64_t)page * 2,
            .offset = (uint64_t)page,
        };
        void *p = (void *)0x1;
        char *dir;
        int fd = make_fake_device(&dir);

        ck_assert_int_eq(pwrite(fd, "hello", 5, page + page), 5);
        ck_assert_int_eq(
            kvfio_region_mmap(fd, &r, (uint64_t)page, (size_t)page, PROT_READ | PROT_WRITE, &p), 0);
        ck_assert_mem_eq(p, "hello", 5);
        ck_assert_int_eq(munmap(p, (size_t)page), 0);

        p = (void *)0x1;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 1, (size_t)page, PROT_READ, &p), -EINVAL);
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, 3 * (size_t)page, PROT_READ, &p), -EINVAL);
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, 0, PROT_READ, &p), -EINVAL);
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, (size_t)page, PROT_EXEC, &p), -EINVAL);
        ck_assert_int_eq(kvfio_region_mmap(-1, &r, 0, (size_t)page, PROT_READ, &p), -EBADF);
        /* sparse: only the first page may be mapped */
        r.has_sparse_mmap = true;
        r.n_sparse_areas = 1;
        r.sparse_areas = areas;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, (uint64_t)page, (size_t)page, PROT_READ, &p),
                         -EACCES);
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, 2 * (size_t)page, PROT_READ, &p), -EACCES);
        r.n_sparse_areas = 0;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, (size_t)page, PROT_READ, &p), -EACCES);
        r.n_sparse_areas = 1;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, (size_t)page, PROT_READ, &p), 0);
        ck_assert_int_eq(munmap(p, (size_t)page), 0);
        /* not mmap-able, or not writable */
        p = (void *)0x1;
        r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, (size_t)page, PROT_WRITE, &p), -EACCES);
        r.flags = VFIO_REGION_INFO_FLAG_READ;
        ck_assert_int_eq(kvfio_region_mmap(fd, &r, 0, (size_t)page, PROT_READ, &p), -EACCES);
        ck_assert_ptr_eq(p, (void *)0x1);

        close(fd);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

/* ---- irq ----------------------------------------------------------------- */

START_TEST(test_irq_args)
{
        int fd = open_null();
        int fds[3] = {5, -1, 6};
        uint8_t bools[2] = {1, 0};

        /* raw: exactly one action and one data type */
        ck_assert_int_eq(
            kvfio_irq_set(-1, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE, 0, 0, NULL),
            -EBADF);
        ck_assert_int_eq(kvfio_irq_set(fd, 0, VFIO_IRQ_SET_DATA_NONE, 0, 1, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_irq_set(fd, 0,
                                       VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_ACTION_MASK |
                                           VFIO_IRQ_SET_DATA_NONE,
                                       0, 1, NULL),
                         -EINVAL);
        ck_assert_int_eq(kvfio_irq_set(fd, 0,
                                       VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE |
                                           VFIO_IRQ_SET_DATA_BOOL,
                                       0, 1, NULL),
                         -EINVAL);
        ck_assert_int_eq(
            kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE | (1u << 9),
                          0, 1, NULL),
            -EINVAL);
        ck_assert_int_eq(
            kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_BOOL, 0, 2, NULL),
            -EINVAL);
        ck_assert_int_eq(kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
                                       0, KVFIO_IRQ_MAX_COUNT + 1, NULL),
                         -EINVAL);
        ck_assert_int_eq(kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
                                       UINT32_MAX, 2, NULL),
                         -EINVAL);
        ck_assert_int_eq(
            kvfio_irq_set(fd, 0, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE, 0, 1, NULL),
            -ENOTTY);

        /* eventfds */
        ck_assert_int_eq(kvfio_irq_set_eventfds(-1, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds), -EBADF);
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, fds), -EINVAL);
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, NULL), -EINVAL);
        ck_assert_int_eq(
            kvfio_irq_set_eventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, KVFIO_IRQ_MAX_COUNT + 1, fds),
            -EINVAL);
        fds[1] = -2;
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds), -EINVAL);
        fds[1] = -1; /* de-assign is fine */
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_set_eventfds(fd, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, fds), -ENOTTY);

        /* the wrappers */
        ck_assert_int_eq(kvfio_irq_disable(-1, VFIO_PCI_MSI_IRQ_INDEX), -EBADF);
        ck_assert_int_eq(kvfio_irq_disable(fd, VFIO_PCI_ERR_IRQ_INDEX), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_mask(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 0), -EINVAL);
        ck_assert_int_eq(kvfio_irq_mask(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_unmask(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 0), -EINVAL);
        ck_assert_int_eq(kvfio_irq_unmask(-1, VFIO_PCI_INTX_IRQ_INDEX, 0, 1), -EBADF);
        ck_assert_int_eq(kvfio_irq_unmask(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_trigger(fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 0), -EINVAL);
        ck_assert_int_eq(kvfio_irq_trigger(fd, VFIO_PCI_MSI_IRQ_INDEX, 0, 1), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_unmask_eventfd(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, -2), -EINVAL);
        ck_assert_int_eq(kvfio_irq_unmask_eventfd(fd, VFIO_PCI_INTX_IRQ_INDEX, 0, -1), -ENOTTY);
        ck_assert_int_eq(kvfio_irq_set_bools(fd, 0, VFIO_IRQ_SET_ACTION_MASK, 0, 2, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_irq_set_bools(fd, 0, VFIO_IRQ_SET_ACTION_MASK, 0, 0, bools),
                         -EINVAL);
        ck_assert_int_eq(kvfio_irq_set_bools(fd, 0, VFIO_IRQ_SET_DATA_BOOL, 0, 2, bools), -EINVAL);
        ck_assert_int_eq(kvfio_irq_set_bools(fd, 0,
                                             VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK,
                                             0, 2, bools),
                         -EINVAL);
        ck_assert_int_eq(kvfio_irq_set_bools(fd, 0, VFIO_IRQ_SET_ACTION_UNMASK, 0, 2, bools),
                         -ENOTTY);
        close(fd);

        ck_assert_str_eq(kvfio_irq_index_name(VFIO_PCI_INTX_IRQ_INDEX), "INTx");
        ck_assert_str_eq(kvfio_irq_index_name(VFIO_PCI_MSI_IRQ_INDEX), "MSI");
        ck_assert_str_eq(kvfio_irq_index_name(VFIO_PCI_MSIX_IRQ_INDEX), "MSI-X");
        ck_assert_str_eq(kvfio_irq_index_name(VFIO_PCI_ERR_IRQ_INDEX), "ERR");
        ck_assert_str_eq(kvfio_irq_index_name(VFIO_PCI_REQ_IRQ_INDEX), "REQ");
        ck_assert_str_eq(kvfio_irq_index_name(17), "unknown");
}
END_TEST

/* ---- dma ----------------------------------------------------------------- */

START_TEST(test_dma_args)
{
        static uint8_t mem[8192];
        uint64_t unmapped = 12345;
        int fd = open_null();
        const uint32_t rw = KVFIO_DMA_READ | KVFIO_DMA_WRITE;

        ck_assert_int_eq(kvfio_dma_map(-1, mem, 0, 4096, rw), -EBADF);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, 0, 0, rw), -EINVAL);
        ck_assert_int_eq(kvfio_dma_map(fd, NULL, 0, 4096, rw), -EINVAL);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, 0, 4096, 0), -EINVAL);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, 0, 4096, VFIO_DMA_MAP_FLAG_VADDR), -EINVAL);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, UINT64_MAX - 4095, 8192, rw), -EINVAL);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, 0x100000, 4096, KVFIO_DMA_READ), -ENOTTY);
        ck_assert_int_eq(kvfio_dma_map(fd, mem, UINT64_MAX - 4095, 4096, rw), -ENOTTY);

        ck_assert_int_eq(kvfio_dma_unmap(-1, 0, 4096, &unmapped), -EBADF);
        ck_assert_int_eq(kvfio_dma_unmap(fd, 0, 0, &unmapped), -EINVAL);
        ck_assert_int_eq(kvfio_dma_unmap(fd, UINT64_MAX, 2, &unmapped), -EINVAL);
        ck_assert_int_eq(kvfio_dma_unmap(fd, 0x100000, 4096, &unmapped), -ENOTTY);
        ck_assert_int_eq(kvfio_dma_unmap(fd, 0x100000, 4096, NULL), -ENOTTY);
        ck_assert_int_eq(kvfio_dma_unmap_all(-1, &unmapped), -EBADF);
        ck_assert_int_eq(kvfio_dma_unmap_all(fd, &unmapped), -ENOTTY);
        ck_assert_uint_eq(unmapped, 12345); /* untouched on failure */
        close(fd);
}
END_TEST

/* ---- iommufd and the device cdev ------------------------------------------ */

START_TEST(test_iommufd_open_errors)
{
        /* not an iommufd: IOMMU_OPTION fails */
        check_node_open_errors(kvfio_iommufd_open, "iommu");
}
END_TEST

START_TEST(test_iommufd_args)
{
        static uint8_t mem[8192];
        const uint32_t rw = KVFIO_DMA_READ | KVFIO_DMA_WRITE;
        uint64_t unmapped = 12345;
        uint32_t id = 777, dev_id = 888;
        struct kvfio_ioas_info *info = NULL;
        int fd = open_null();

        ck_assert_int_eq(kvfio_iommufd_get_rlimit_mode(-1), -EBADF);
        ck_assert_int_eq(kvfio_iommufd_get_rlimit_mode(fd), -ENOTTY);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, 2), -EINVAL);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, -1), -EINVAL);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(fd, KVFIO_IOMMUFD_RLIMIT_PROCESS), -ENOTTY);
        ck_assert_int_eq(kvfio_iommufd_set_rlimit_mode(-1, KVFIO_IOMMUFD_RLIMIT_USER), -EBADF);

        ck_assert_int_eq(kvfio_ioas_alloc(fd, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_alloc(-1, &id), -EBADF);
        ck_assert_int_eq(kvfio_ioas_alloc(fd, &id), -ENOTTY);
        ck_assert_uint_eq(id, 777); /* untouched on failure */
        ck_assert_int_eq(kvfio_ioas_destroy(-1, 1), -EBADF);
        ck_assert_int_eq(kvfio_ioas_destroy(fd, 1), -ENOTTY);
        ck_assert_int_eq(kvfio_ioas_get_info(fd, 1, NULL), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_get_info(fd, 1, &info), -ENOTTY);
        ck_assert_ptr_null(info);
        kvfio_ioas_info_free(NULL);

        ck_assert_int_eq(kvfio_ioas_map(-1, 1, mem, 0, 4096, rw), -EBADF);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, 0, 0, rw), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, NULL, 0, 4096, rw), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, 0, 4096, 0), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, 0, 4096, VFIO_DMA_MAP_FLAG_VADDR), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, UINT64_MAX - 4095, 8192, rw), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, 0x100000, 4096, KVFIO_DMA_READ), -ENOTTY);
        ck_assert_int_eq(kvfio_ioas_map(fd, 1, mem, UINT64_MAX - 4095, 4096, rw), -ENOTTY);

        ck_assert_int_eq(kvfio_ioas_map_file(fd, 1, fd, 0, 0, 4096, 0), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map_file(fd, 1, fd, 0, 0, 0, rw), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map_file(fd, 1, fd, UINT64_MAX, 0, 2, rw), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_map_file(fd, 1, -1, 0, 0, 4096, rw), -EBADF);
        ck_assert_int_eq(kvfio_ioas_map_file(-1, 1, fd, 0, 0, 4096, rw), -EBADF);
        /* not an iommufd: ENOTTY, not "this kernel lacks MAP_FILE" */
        ck_assert_int_eq(kvfio_ioas_map_file(fd, 1, fd, 0, 0x100000, 4096, rw), -ENOTTY);
        ck_assert_int_eq(kvfio_iommufd_has_map_file(fd), -ENOTTY);
        ck_assert_int_eq(kvfio_iommufd_has_map_file(-1), -EBADF);

        ck_assert_int_eq(kvfio_ioas_unmap(-1, 1, 0, 4096, &unmapped), -EBADF);
        ck_assert_int_eq(kvfio_ioas_unmap(fd, 1, 0, 0, &unmapped), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_unmap(fd, 1, UINT64_MAX, 2, &unmapped), -EINVAL);
        /* the kernel's "everything" only through kvfio_ioas_unmap_all() */
        ck_assert_int_eq(kvfio_ioas_unmap(fd, 1, 0, UINT64_MAX, &unmapped), -EINVAL);
        ck_assert_int_eq(kvfio_ioas_unmap(fd, 1, 0x100000, 4096, &unmapped), -ENOTTY);
        ck_assert_int_eq(kvfio_ioas_unmap(fd, 1, 0x100000, 4096, NULL), -ENOTTY);
        ck_assert_int_eq(kvfio_ioas_unmap_all(-1, 1, &unmapped), -EBADF);
        ck_assert_int_eq(kvfio_ioas_unmap_all(fd, 1, &unmapped), -ENOTTY);
        ck_assert_uint_eq(unmapped, 12345);

        ck_assert_int_eq(kvfio_device_bind_iommufd(-1, fd, &dev_id), -EBADF);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, -1, &dev_id), -EBADF);
        ck_assert_int_eq(kvfio_device_bind_iommufd(fd, fd, &dev_id), -ENOTTY);
        ck_assert_uint_eq(dev_id, 888);
        ck_assert_int_eq(kvfio_device_attach_ioas(-1, 1, &id), -EBADF);
        ck_assert_int_eq(kvfio_device_attach_ioas(fd, 1, &id), -ENOTTY);
        ck_assert_int_eq(kvfio_device_attach_ioas(fd, 1, NULL), -ENOTTY);
        ck_assert_uint_eq(id, 777);
        ck_assert_int_eq(kvfio_device_detach_ioas(-1), -EBADF);
        ck_assert_int_eq(kvfio_device_detach_ioas(fd), -ENOTTY);
        ck_assert_int_eq(kvfio_device_hot_reset_cdev(-1), -EBADF);
        ck_assert_int_eq(kvfio_device_hot_reset_cdev(fd), -ENOTTY);
        close(fd);
}
END_TEST

START_TEST(test_cdev_open)
{
        char *dir = testutil_mkdtemp("kvfio-cdev");
        int fd;

        ck_assert_int_eq(kvfio_cdev_open(-1, dir), -EINVAL);
        ck_assert_int_eq(kvfio_cdev_open(3, dir), -ENOENT);
        testutil_write_file(dir, "vfio3", "x");
        fd = kvfio_cdev_open(3, dir);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        close(fd);
        ck_assert_int_eq(kvfio_cdev_open(4, dir), -ENOENT);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

static Suite *ioctl_suite(void)
{
        Suite *s = suite_create("kernel-ioctl");
        TCase *tc;

        tc = tcase_create("container");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_container_open_errors);
        tcase_add_test(tc, test_container_args);
        tcase_add_test(tc, test_iommu_info_parse);
        suite_add_tcase(s, tc);

        tc = tcase_create("group");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_group_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("device");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_device_args);
        tcase_add_test(tc, test_hot_reset_dep_bdf);
        tcase_add_test(tc, test_region_info_parse);
        tcase_add_test(tc, test_region_rw);
        tcase_add_test(tc, test_region_mmap);
        suite_add_tcase(s, tc);

        tc = tcase_create("irq");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_irq_args);
        suite_add_tcase(s, tc);

        tc = tcase_create("dma");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_dma_args);
        suite_add_tcase(s, tc);

        tc = tcase_create("iommufd");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_iommufd_open_errors);
        tcase_add_test(tc, test_iommufd_args);
        tcase_add_test(tc, test_cdev_open);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        return testutil_run_suite(ioctl_suite());
}
