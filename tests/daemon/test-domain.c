/* SPDX-License-Identifier: MIT */
/*
 * Domains and brokered DMA: MapDma validation (seals, size, alignment,
 * overflow, IOVA ranges, overlaps, not-a-memfd), all-or-nothing batches,
 * UnmapDma (whole mappings only), the mapping and pinned-bytes limits, and
 * the unmapping on release.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/domain.h"
#include "daemon/lease.h"
#include "kernel/group.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/testutil.h"

#define BROKERED VFIOD__MODE__MODE_BROKERED
#define DIRECT   VFIOD__MODE__MODE_DIRECT
#define DEV1     "0000:00:01.0"
#define PAGE     4096ull

static int client_fd;
static uint64_t lease, domain;
static int lease_fds[3];
static size_t n_lease_fds;

static void start(const char *extra)
{
        char conf[1024];

        snprintf(conf, sizeof(conf), "%s%s", extra ? extra : "", h_default_conf);
        h_start(conf);
        h_add_device(DEV1, 1, "vfio-pci");
        client_fd = h_connect(1000, 1000);
        h_hello(client_fd, 0);
        lease = h_acquire_ok(client_fd, DEV1, 0, BROKERED, lease_fds, &n_lease_fds, &domain);
}

static void stop(void)
{
        h_close_all(lease_fds, n_lease_fds);
        close(client_fd);
        h_spin();
        h_stop();
}

struct range {
        int fd_index;
        uint64_t offset, iova, size;
};

/* MapDma of n ranges over fds; returns 0 (and *ret_bytes) or the errnum; *ret_reason copied. */
static int map(uint64_t dom, const struct range *r, size_t n, const int *fds, size_t n_fds,
               char *ret_reason)
{
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &md);
        Vfiod__DmaRange dr[8], *p[8];
        struct vfiod_msg *m;

        for (size_t i = 0; i < n; i++) {
                vfiod__dma_range__init(&dr[i]);
                dr[i].fd_index = (uint32_t)r[i].fd_index;
                dr[i].offset = r[i].offset;
                dr[i].iova = r[i].iova;
                dr[i].size = r[i].size;
                dr[i].readable = dr[i].writable = true;
                p[i] = &dr[i];
        }
        md.domain_id = dom;
        md.n_ranges = n;
        md.ranges = p;
        /* Raw: the transport's send would refuse fds that are not memfds. */
        env.id = ++H.next_id;
        h_send_raw(client_fd, &env, fds, n_fds);
        m = h_recv(client_fd);
        ck_assert_uint_eq(m->env->id, env.id);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                if (ret_reason)
                        snprintf(ret_reason, 256, "%s", m->env->error->reason);
                return h_error(m);
        }
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY);
        ck_assert_uint_eq(m->env->map_dma_reply->mapped, n);
        vfiod_msg_free(m);
        return 0;
}

/* UnmapDma of n (iova, size) ranges; returns 0 (and *ret_n) or the errnum. */
static int unmap_n(uint64_t dom, const uint64_t (*r)[2], size_t n, uint32_t *ret_n)
{
        Vfiod__UnmapDma ud = VFIOD__UNMAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(unmap_dma, &ud);
        Vfiod__IovaRange ir[8], *p[8];
        struct vfiod_msg *m;

        for (size_t i = 0; i < n; i++) {
                vfiod__iova_range__init(&ir[i]);
                ir[i].iova = r[i][0];
                ir[i].size = r[i][1];
                p[i] = &ir[i];
        }
        ud.domain_id = dom;
        ud.n_ranges = n;
        ud.ranges = p;
        m = h_call(client_fd, &env, NULL, 0);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR)
                return h_error(m);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY);
        if (ret_n)
                *ret_n = m->env->unmap_dma_reply->unmapped;
        vfiod_msg_free(m);
        return 0;
}

static int unmap(uint64_t dom, uint64_t iova, uint64_t size, uint32_t *ret_n)
{
        const uint64_t r[1][2] = {{iova, size}};

        return unmap_n(dom, r, 1, ret_n);
}

START_TEST(map_shares_the_pages)
{
        int mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK);
        struct range r[2] = {{0, 0, 0x100000, PAGE}, {0, 2 * PAGE, 0x200000, 2 * PAGE}};
        char buf[16] = "";
        uint32_t n = 0;

        start(NULL);
        ck_assert_int_eq(map(domain, r, 2, &mfd, 1, NULL), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 2);
        /* The client writes its memfd; the "device" reads it at the IOVA. */
        ck_assert_int_eq(pwrite(mfd, "hello device", 13, 2 * PAGE + 8), 13);
        ck_assert_int_eq(fake_kernel_dma_read(0x200000 + 8, buf, 13), 0);
        ck_assert_str_eq(buf, "hello device");
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(fake_kernel_mappings(), 1);
        close(mfd);
        /* The release unmaps what is left. */
        fake_kernel_trace_clear();
        ck_assert_int_eq(h_release(client_fd, lease), 0);
        ck_assert_ptr_nonnull(strstr(fake_kernel_trace(), "dma_unmap 0x200000+0x2000"));
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        stop();
}
END_TEST

/* Stats' domains, mappings and pinned bytes of every client, from root's connection. */
static void stats_now(int root, uint32_t *ret_domains, uint32_t *ret_mappings, uint64_t *ret_pinned)
{
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__Envelope env = ENVELOPE(stats, &st);
        struct vfiod_msg *m = h_call(root, &env, NULL, 0);

        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_STATS_REPLY);
        *ret_domains = m->env->stats_reply->domains;
        *ret_mappings = m->env->stats_reply->mappings;
        *ret_pinned = m->env->stats_reply->pinned_bytes;
        vfiod_msg_free(m);
}

/*
 * Stats adds up every client's domains, mappings and pinned bytes: the sums
 * follow a map, an unmap, a second client's domain, its disconnect and the
 * release of the first lease (whose domain goes with it).
 */
START_TEST(stats_totals_follow_usage)
{
        int mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK);
        struct range r[2] = {{0, 0, 0x100000, PAGE}, {0, 2 * PAGE, 0x200000, 2 * PAGE}};
        uint32_t domains, mappings;
        uint64_t pinned, dom2, lease2;
        int root, other, fds2[3];
        size_t n2;

        start(NULL);
        root = h_connect(0, 0);
        h_hello(root, 0);
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(domains, 1);
        ck_assert_uint_eq(mappings, 0);
        ck_assert_int_eq(map(domain, r, 2, &mfd, 1, NULL), 0);
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(mappings, 2);
        ck_assert_uint_eq(pinned, 3 * PAGE);
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, NULL), 0);
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(mappings, 1);
        ck_assert_uint_eq(pinned, 2 * PAGE);

        /* A second client with a lease (and its domain) of its own, then gone. */
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        other = h_connect(1000, 1000);
        h_hello(other, 0);
        lease2 = h_acquire_ok(other, "0000:00:02.0", 0, BROKERED, fds2, &n2, &dom2);
        ck_assert_uint_ne(lease2, 0);
        ck_assert_uint_ne(dom2, domain);
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(domains, 2);
        h_close_all(fds2, n2);
        close(other);
        h_spin();
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(domains, 1);
        ck_assert_uint_eq(mappings, 1);

        /* Its fds closed first: a group still open would keep the domain (quarantine). */
        h_close_all(lease_fds, n_lease_fds);
        n_lease_fds = 0;
        ck_assert_int_eq(h_release(client_fd, lease), 0);
        stats_now(root, &domains, &mappings, &pinned);
        ck_assert_uint_eq(domains, 0);
        ck_assert_uint_eq(mappings, 0);
        ck_assert_uint_eq(pinned, 0);
        close(mfd);
        close(root);
        stop();
}
END_TEST

START_TEST(map_validation)
{
        int sealed = h_memfd(4 * PAGE, F_SEAL_SHRINK);
        int unsealed = h_memfd(4 * PAGE, 0);
        int grow_only = h_memfd(4 * PAGE, F_SEAL_GROW);
        char reason[256] = "";
        struct range r[2];

        start(NULL);
        r[0] = (struct range){0, 0, 0x100000, PAGE};
        ck_assert_int_eq(map(domain, r, 1, &unsealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "not sealed against shrinking"));
        ck_assert_int_eq(map(domain, r, 1, &grow_only, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "not sealed against shrinking"));
        /* Too small: offset + size beyond the end. */
        r[0] = (struct range){0, 2 * PAGE, 0x100000, 4 * PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "too small"));
        /* Unaligned offset, iova, size; zero size. */
        r[0] = (struct range){0, 100, 0x100000, PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), EINVAL);
        r[0] = (struct range){0, 0, 0x100010, PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), EINVAL);
        r[0] = (struct range){0, 0, 0x100000, PAGE + 1};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), EINVAL);
        r[0] = (struct range){0, 0, 0x100000, 0};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "size is 0"));
        /* Overflow of iova + size and of offset + size. */
        r[0] = (struct range){0, 0, 0xfffffffffffff000ull, 2 * PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "overflows"));
        r[0] = (struct range){0, 0xfffffffffffff000ull, 0x100000, 2 * PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), EINVAL);
        /* Outside the valid IOVA ranges (the MSI window, and above 2^39). */
        r[0] = (struct range){0, 0, 0xfee00000ull, PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "valid IOVA"));
        r[0] = (struct range){0, 0, 1ull << 40, PAGE};
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), EINVAL);
        /* Overlap inside the batch, then with an existing mapping. */
        r[0] = (struct range){0, 0, 0x100000, 2 * PAGE};
        r[1] = (struct range){0, 2 * PAGE, 0x101000, PAGE};
        ck_assert_int_eq(map(domain, r, 2, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "overlaps"));
        ck_assert_int_eq(map(domain, r, 1, &sealed, 1, NULL), 0);
        ck_assert_int_eq(map(domain, r + 1, 1, &sealed, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "overlaps"));
        ck_assert_uint_eq(fake_kernel_mappings(), 1);
        /* Unknown domain. */
        ck_assert_int_eq(map(domain + 77, r + 1, 1, &sealed, 1, NULL), ENOENT);
        close(sealed);
        close(unsealed);
        close(grow_only);
        stop();
}
END_TEST

START_TEST(map_is_all_or_nothing)
{
        int mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK);
        struct range r[3] = {
            {0, 0, 0x100000, PAGE}, {0, PAGE, 0x200000, PAGE}, {0, 2 * PAGE, 0x300000, PAGE}};
        char reason[256];

        start(NULL);
        fake_kernel_fail("kvfio_dma_map", ENOMEM, 2); /* the third range fails */
        fake_kernel_trace_clear();
        ck_assert_int_eq(map(domain, r, 3, &mfd, 1, reason), ENOMEM);
        ck_assert_ptr_nonnull(strstr(reason, "range 2"));
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert(fake_kernel_trace_has("dma_map 0x100000", "dma_map 0x200000",
                                        "kvfio_dma_map=FAIL", "dma_unmap 0x200000",
                                        "dma_unmap 0x100000", NULL));
        /* Later the same batch works. */
        ck_assert_int_eq(map(domain, r, 3, &mfd, 1, NULL), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 3);
        close(mfd);
        stop();
}
END_TEST

START_TEST(unmap_rules)
{
        int mfd = h_memfd(8 * PAGE, F_SEAL_SHRINK);
        struct range r[2] = {{0, 0, 0x100000, 2 * PAGE}, {0, 2 * PAGE, 0x102000, 2 * PAGE}};
        uint32_t n = 0;

        start(NULL);
        ck_assert_int_eq(map(domain, r, 2, &mfd, 1, NULL), 0);
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, NULL), EINVAL); /* splits one */
        ck_assert_int_eq(unmap(domain, 0x101000, 2 * PAGE, NULL), EINVAL);
        ck_assert_int_eq(unmap(domain, 0x400000, PAGE, NULL), ENOENT);
        ck_assert_int_eq(unmap(domain, 0x100000, 0, NULL), EINVAL);
        ck_assert_uint_eq(fake_kernel_mappings(), 2);
        ck_assert_int_eq(unmap(domain, 0x100000, 4 * PAGE, &n), 0); /* both, whole */
        ck_assert_uint_eq(n, 2);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert_int_eq(unmap(domain + 9, 0x100000, PAGE, NULL), ENOENT);
        close(mfd);
        stop();
}
END_TEST

/*
 * Mappings that go together and are neighbours in the domain's table leave
 * in one VFIO_IOMMU_UNMAP_DMA over their span; a mapping that stays splits
 * the span; a span the kernel refuses is unmapped mapping by mapping.
 */
START_TEST(unmap_coalesces_neighbours)
{
        int mfd = h_memfd(8 * PAGE, F_SEAL_SHRINK);
        /* A and B adjacent, C after a one-page hole, D far away. */
        struct range r[4] = {{0, 0, 0x100000, PAGE},
                             {0, PAGE, 0x101000, PAGE},
                             {0, 2 * PAGE, 0x103000, PAGE},
                             {0, 3 * PAGE, 0x200000, PAGE}};
        const uint64_t cab[3][2] = {{0x103000, PAGE}, {0x100000, PAGE}, {0x101000, PAGE}};
        const uint64_t ac[2][2] = {{0x100000, PAGE}, {0x103000, PAGE}};
        uint32_t n = 0;

        start(NULL);
        ck_assert_int_eq(map(domain, r, 4, &mfd, 1, NULL), 0);
        fake_kernel_trace_clear();
        ck_assert_int_eq(unmap_n(domain, cab, 3, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert(fake_kernel_trace_has("dma_unmap 0x100000+0x4000", NULL));
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "dma_unmap 0x101000"));
        ck_assert_ptr_null(strstr(fake_kernel_trace(), "dma_unmap 0x103000"));
        ck_assert_uint_eq(fake_kernel_mappings(), 1); /* D */

        /* B stays: A and C are two runs. */
        ck_assert_int_eq(map(domain, r, 3, &mfd, 1, NULL), 0);
        fake_kernel_trace_clear();
        ck_assert_int_eq(unmap_n(domain, ac, 2, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert(
            fake_kernel_trace_has("dma_unmap 0x100000+0x1000", "dma_unmap 0x103000+0x1000", NULL));
        ck_assert_uint_eq(fake_kernel_mappings(), 2); /* B and D */
        ck_assert_int_eq(unmap(domain, 0x101000, PAGE, NULL), 0);

        /* The span fails: one by one, and the reply still counts all three. */
        ck_assert_int_eq(map(domain, r, 3, &mfd, 1, NULL), 0);
        fake_kernel_fail("kvfio_dma_unmap", EIO, 0);
        fake_kernel_trace_clear();
        ck_assert_int_eq(unmap(domain, 0x100000, 4 * PAGE, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert(fake_kernel_trace_has("kvfio_dma_unmap=FAIL", "dma_unmap 0x100000+0x1000",
                                        "dma_unmap 0x101000+0x1000", "dma_unmap 0x103000+0x1000",
                                        NULL));
        ck_assert_uint_eq(fake_kernel_mappings(), 1);
        close(mfd);
        stop();
}
END_TEST

/*
 * The daemon's (this process's) mappings of the tests' memfds: how many
 * (lines of /proc/self/maps) and, when ret_bytes is not NULL, their bytes.
 */
static int memfd_maps(uint64_t *ret_bytes)
{
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];
        uint64_t sum = 0;
        int n = 0;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned long long lo, hi;

                if (!strstr(line, "/memfd:vfiod-test"))
                        continue;
                n++;
                if (sscanf(line, "%llx-%llx", &lo, &hi) == 2)
                        sum += hi - lo;
        }
        fclose(f);
        if (ret_bytes)
                *ret_bytes = sum;
        return n;
}

static int memfd_views(void)
{
        return memfd_maps(NULL);
}

/*
 * A view whose last mapping goes stays mapped for the next MapDma of the same
 * memory (no second mmap); at most 8 per domain and MaxPinnedBytesPerClient
 * in all, least recently used out first; all go with the last lease.
 */
START_TEST(idle_views_are_reused_and_bounded)
{
        struct range r = {0, 0, 0x100000, 2 * PAGE};
        int mfd[10], big;

        start("[Daemon]\nMaxPinnedBytesPerClient=96K\n");
        for (int i = 0; i < 10; i++)
                mfd[i] = h_memfd(2 * PAGE, F_SEAL_SHRINK);
        ck_assert_int_eq(map(domain, &r, 1, &mfd[0], 1, NULL), 0);
        ck_assert_int_eq(memfd_views(), 1);
        ck_assert_int_eq(unmap(domain, 0x100000, 2 * PAGE, NULL), 0);
        ck_assert_int_eq(memfd_views(), 1); /* idle */
        ck_assert_int_eq(map(domain, &r, 1, &mfd[0], 1, NULL), 0);
        ck_assert_int_eq(memfd_views(), 1); /* the idle one, again */
        ck_assert_int_eq(unmap(domain, 0x100000, 2 * PAGE, NULL), 0);

        /* Ten memfds mapped and unmapped in turn: eight stay. */
        for (int i = 1; i < 10; i++) {
                ck_assert_int_eq(map(domain, &r, 1, &mfd[i], 1, NULL), 0);
                ck_assert_int_eq(unmap(domain, 0x100000, 2 * PAGE, NULL), 0);
        }
        ck_assert_int_eq(memfd_views(), 8);
        /* The oldest (mfd[0], mfd[1]) went: mapping mfd[0] again maps it anew. */
        ck_assert_int_eq(map(domain, &r, 1, &mfd[0], 1, NULL), 0);
        ck_assert_int_eq(memfd_views(), 9); /* 8 idle + 1 in use */
        ck_assert_int_eq(unmap(domain, 0x100000, 2 * PAGE, NULL), 0);
        ck_assert_int_eq(memfd_views(), 8);

        /* An 80K view idle beside 8K ones: two of those fit with it in 96K. */
        big = h_memfd(20 * PAGE, F_SEAL_SHRINK);
        r.size = 20 * PAGE;
        ck_assert_int_eq(map(domain, &r, 1, &big, 1, NULL), 0);
        ck_assert_int_eq(unmap(domain, 0x100000, 20 * PAGE, NULL), 0);
        ck_assert_int_eq(memfd_views(), 3);

        /* The domain's last lease goes, and every idle view with it. */
        ck_assert_int_eq(h_release(client_fd, lease), 0);
        ck_assert_int_eq(memfd_views(), 0);
        for (int i = 0; i < 10; i++)
                close(mfd[i]);
        close(big);
        stop();
}
END_TEST

START_TEST(mapping_limits)
{
        int mfd = h_memfd(16 * PAGE, F_SEAL_SHRINK);
        /* Apart in the file: each range is a view of its own. */
        struct range r[3] = {
            {0, 0, 0x100000, PAGE}, {0, 4 * PAGE, 0x200000, PAGE}, {0, 2 * PAGE, 0x300000, PAGE}};
        char reason[256];

        start("[Daemon]\nMaxMappingsPerClient=2\nMaxPinnedBytesPerClient=12K\n"
              "MaxRangesPerRequest=2\n");
        ck_assert_int_eq(map(domain, r, 3, &mfd, 1, reason), ENOSPC);
        ck_assert_ptr_nonnull(strstr(reason, "MaxRangesPerRequest=2"));
        ck_assert_int_eq(map(domain, r, 2, &mfd, 1, NULL), 0);
        ck_assert_int_eq(map(domain, r + 2, 1, &mfd, 1, reason), ENOSPC);
        ck_assert_ptr_nonnull(strstr(reason, "MaxMappingsPerClient=2"));
        ck_assert_int_eq(unmap(domain, 0x200000, PAGE, NULL), 0);
        /* 1 page mapped; 3 more would make 16K > 12K. */
        r[2].size = 3 * PAGE;
        ck_assert_int_eq(map(domain, r + 2, 1, &mfd, 1, reason), EDQUOT);
        ck_assert_ptr_nonnull(strstr(reason, "MaxPinnedBytesPerClient=12288"));
        r[2].size = 2 * PAGE;
        ck_assert_int_eq(map(domain, r + 2, 1, &mfd, 1, NULL), 0);
        close(mfd);
        stop();
}
END_TEST

START_TEST(map_needs_a_brokered_domain)
{
        int mfd = h_memfd(PAGE, F_SEAL_SHRINK), f2[3];
        struct range r = {0, 0, 0x100000, PAGE};
        uint64_t d2;
        size_t n2;
        char reason[256];

        start(NULL);
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        h_acquire_ok(client_fd, "0000:00:02.0", 0, DIRECT, f2, &n2, &d2);
        ck_assert_int_eq(map(d2, &r, 1, &mfd, 1, reason), EINVAL);
        ck_assert_ptr_nonnull(strstr(reason, "not a brokered domain"));
        h_close_all(f2, n2);
        close(mfd);
        stop();
}
END_TEST

/*
 * An fd that is not a memfd in MapDma breaks a transport rule (vfiod.proto):
 * the connection is dropped, its lease released, the fd closed.
 */
START_TEST(not_a_memfd_over_the_wire)
{
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &md);
        Vfiod__DmaRange dr = VFIOD__DMA_RANGE__INIT, *p = &dr;
        int fds[3], pipefd[2];

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        fds[0] = pipefd[0];
        fds[1] = open("/dev/null", O_RDWR | O_CLOEXEC);
        fds[2] = eventfd(0, EFD_CLOEXEC);
        for (int i = 0; i < 3; i++) {
                start(NULL);
                dr.iova = 0x100000;
                dr.size = PAGE;
                md.domain_id = domain;
                md.n_ranges = 1;
                md.ranges = &p;
                env.id = 0;
                /* Raw: the transport's send would refuse it. */
                h_send_raw(client_fd, &env, &fds[i], 1);
                ck_assert(h_closed(client_fd));
                stop();
        }
        close(pipefd[0]);
        close(pipefd[1]);
        close(fds[1]);
        close(fds[2]);
}
END_TEST

/* The domain API itself on fds that are not memfds. */
START_TEST(not_a_memfd_in_the_domain)
{
        struct vfiod_usage usage = {0}, user = {0};
        struct vfiod_fd_budget budget = {.left = 8, .errnum = ENOSPC};
        struct vfiod_config_limits lim = VFIOD_LIMITS_DEFAULT;
        struct vfiod_domain *d = NULL;
        struct vfiod_error err = {0};
        int p[2], devnull, efd, gfd;
        uint64_t bytes;

        h_start(NULL);
        h_add_device(DEV1, 1, "vfio-pci");
        ck_assert_int_eq(vfiod_domain_new("unused", KVFIO_IOMMU_AUTO, 1, &usage, &d, &err), 0);
        ck_assert_uint_eq(usage.domains, 1);
        gfd = kvfio_group_open(1, NULL);
        ck_assert_int_ge(gfd, 0);
        ck_assert_int_eq(vfiod_domain_attach(d, gfd, &err), 0);
        d->mode = BROKERED;
        d->n_leases = 1;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        efd = eventfd(0, EFD_CLOEXEC);
        {
                int fds[] = {p[0], devnull, efd};
                for (size_t i = 0; i < 3; i++) {
                        struct vfiod_map_range r = {.fd = fds[i],
                                                    .fd_index = (uint32_t)i,
                                                    .iova = 0x100000,
                                                    .size = PAGE,
                                                    .readable = true};
                        ck_assert_int_eq(
                            vfiod_domain_map(d, &r, 1, &lim, &user, &budget, &bytes, &err),
                            -EINVAL);
                        ck_assert_msg(strstr(err.reason, "not a memfd"), "%s", err.reason);
                }
        }
        ck_assert_uint_eq(usage.mappings, 0);
        close(p[0]);
        close(p[1]);
        close(devnull);
        close(efd);
        ck_assert_int_eq(kvfio_group_unset_container(gfd), 0);
        close(gfd);
        vfiod_domain_free(d);
        ck_assert_uint_eq(usage.domains, 0);
        h_stop();
}
END_TEST

/*
 * A release that ends in quarantine (the holder kept its device fd) leaves
 * the group attached to the domain's container: the domain must not take new
 * mappings or leases, or the kept device fd would reach them.
 */
START_TEST(quarantined_domain_takes_no_mapping)
{
        int mfd = h_memfd(PAGE, F_SEAL_SHRINK), f2[3], err = 0;
        struct range r = {0, 0, 0x100000, PAGE};
        char reason[256] = "";
        uint64_t dom2 = 0;
        size_t n2;

        start(NULL);
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        ck_assert_int_eq(map(domain, &r, 1, &mfd, 1, NULL), 0);
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, NULL), 0);
        /* lease_fds[0], the device fd, stays open across the release. */
        ck_assert_int_eq(h_release(client_fd, lease), 0);
        ck_assert_int_eq(h_state(client_fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED);
        ck_assert_int_eq(map(domain, &r, 1, &mfd, 1, reason), EBUSY);
        ck_assert_msg(strstr(reason, "group 1 "), "%s", reason);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert_uint_eq(
            h_acquire(client_fd, "0000:00:02.0", domain, BROKERED, f2, &n2, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        ck_assert(!fake_kernel_group_attached(2));
        h_close_all(lease_fds, n_lease_fds);
        n_lease_fds = 0;
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(h_state(client_fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        /* The group left the container, and the domain, which Acquire made, went with it. */
        ck_assert_uint_eq(
            h_acquire(client_fd, "0000:00:02.0", domain, BROKERED, f2, &n2, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT);
        (void)h_acquire_ok(client_fd, "0000:00:02.0", 0, BROKERED, f2, &n2, &dom2);
        ck_assert_int_eq(map(dom2, &r, 1, &mfd, 1, NULL), 0);
        h_close_all(f2, n2);
        close(mfd);
        stop();
}
END_TEST

/*
 * The same with another lease still in the domain: a group whose lease was
 * released (by its holder, an admin's Revoke or a policy reload) while its
 * device fd stays open must not get the domain's new mappings through that
 * lease, nor a new lease into the domain. Once the fd is closed, both work.
 */
START_TEST(released_group_taints_its_domain)
{
        static const char *const how[] = {"release", "revoke", "reload"};
        int mfd = h_memfd(2 * PAGE, F_SEAL_SHRINK), f2[3], f3[3], admin, err = 0;
        struct range r1 = {0, 0, 0x100000, PAGE}, r2 = {0, PAGE, 0x200000, PAGE};
        char reason[256] = "";
        uint64_t dom3 = 0;
        size_t n2, n3;

        start(NULL);
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        h_add_device("0000:00:03.0", 3, "vfio-pci");
        admin = h_connect(0, 0);
        h_hello(admin, 0);
        (void)h_acquire_ok(client_fd, "0000:00:02.0", domain, BROKERED, f2, &n2, NULL);
        h_close_all(f2, n2);
        ck_assert_int_eq(map(domain, &r1, 1, &mfd, 1, NULL), 0);
        /* lease_fds[0], DEV1's device fd, stays open. */
        if (_i == 0)
                ck_assert_int_eq(h_release(client_fd, lease), 0);
        else if (_i == 1)
                h_revoke(admin, lease, "maintenance", 0);
        else {
                testutil_write_file(H.root, "vfiod.conf",
                                    "[Device test]\nMatch=0000:00:02.0 0000:00:03.0\nUsers=1000\n");
                h_reload(admin, 1);
        }
        /* (After the reload the client may not even see DEV1 any more.) */
        ck_assert_int_eq(vfiod_registry_group_state(H.server->devices, 1), VFIOD_GROUP_QUARANTINED);
        ck_assert(fake_kernel_group_attached(1));

        ck_assert_msg(map(domain, &r2, 1, &mfd, 1, reason) == EBUSY, "%s: mapped (%s)", how[_i],
                      reason);
        ck_assert_msg(strstr(reason, "group 1 "), "%s", reason);
        ck_assert_uint_eq(fake_kernel_mappings(), 1);
        ck_assert_uint_eq(
            h_acquire(client_fd, "0000:00:03.0", domain, BROKERED, f3, &n3, NULL, &err), 0);
        ck_assert_int_eq(err, EBUSY);
        ck_assert(!fake_kernel_group_attached(3));
        /* What is mapped can still be unmapped. */
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, NULL), 0);

        h_close_all(lease_fds, n_lease_fds);
        n_lease_fds = 0;
        vfiod_quarantine_check(H.server);
        ck_assert_int_eq(vfiod_registry_group_state(H.server->devices, 1), VFIOD_GROUP_FREE);
        ck_assert_int_eq(map(domain, &r2, 1, &mfd, 1, NULL), 0);
        (void)h_acquire_ok(client_fd, "0000:00:03.0", domain, BROKERED, f3, &n3, &dom3);
        ck_assert_uint_eq(dom3, domain);
        h_close_all(f3, n3);
        close(admin);
        close(mfd);
        stop();
}
END_TEST

/* True when [off, off + len) of fd has a hole (a page never written). */
static bool has_hole(int fd, off_t off, off_t len)
{
        off_t hole = lseek(fd, off, SEEK_HOLE);

        return hole >= 0 && hole < off + len;
}

/*
 * The pages of a MapDma are the client's: a range with a hole (a page the
 * client never wrote) is refused, and the daemon faults nothing in, which
 * would charge the page to the daemon's memory cgroup instead.
 */
START_TEST(map_refuses_holes)
{
        /* 32 pages: more than what the daemon would populate before the pin. */
        int mfd = h_memfd_sparse(32 * PAGE, 0), ok;
        static const char page[PAGE] = "written";
        struct range r = {0, 0, 0x100000, 32 * PAGE};
        char reason[256] = "";

        for (int i = 0; i < 32; i++)
                if (i != 17)
                        ck_assert_int_eq(pwrite(mfd, page, PAGE, (off_t)(i * PAGE)), PAGE);
        ck_assert_int_eq(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        start(NULL);
        ck_assert_int_eq(map(domain, &r, 1, &mfd, 1, reason), EFAULT);
        ck_assert_msg(strstr(reason, "range 0: memfd 0 has a hole at offset 0x11000"), "%s",
                      reason);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        ck_assert(has_hole(mfd, 17 * PAGE, PAGE));
        /* A range around the hole is fine; once written, the whole file is too. */
        r.size = 17 * PAGE;
        ck_assert_int_eq(map(domain, &r, 1, &mfd, 1, NULL), 0);
        ck_assert(has_hole(mfd, 17 * PAGE, PAGE));
        ck_assert_int_eq(unmap(domain, 0x100000, 17 * PAGE, NULL), 0);
        ck_assert_int_eq(pwrite(mfd, page, PAGE, 17 * PAGE), PAGE);
        r.size = 32 * PAGE;
        ok = map(domain, &r, 1, &mfd, 1, reason);
        ck_assert_msg(ok == 0, "%s", reason);
        close(mfd);
        stop();
}
END_TEST

/*
 * The daemon's SEEK_HOLE calls: the program's own lseek() is the one the
 * daemon, linked in, calls.
 */
static unsigned seek_holes;

off_t lseek(int fd, off_t offset, int whence)
{
        if (whence == SEEK_HOLE)
                __atomic_add_fetch(&seek_holes, 1, __ATOMIC_RELAXED);
        return (off_t)syscall(SYS_lseek, fd, offset, whence);
}

/*
 * SEEK_HOLE walks a memfd's pages from the offset to the first hole: to the
 * end of a file that has none. A MapDma finds its ranges' holes with one walk
 * per memfd, not one per range (a walk of the whole memfd per range), in
 * whatever order the ranges come, and with none for a range whose pages are
 * all resident in a view the daemon has already; a hole is still refused,
 * in any range, a hole punched in a view's pages too.
 */
START_TEST(map_walks_a_memfd_once)
{
        int mfd = h_memfd(64 * PAGE, F_SEAL_SHRINK), ok;
        struct range r[8];
        char reason[256] = "";

        /* Touching in the file, last page first in the request. */
        for (int i = 0; i < 8; i++)
                r[i] = (struct range){0, (uint64_t)(7 - i) * PAGE, 0x100000 + i * 2 * PAGE, PAGE};
        start(NULL);
        seek_holes = 0;
        ok = map(domain, r, 8, &mfd, 1, reason);
        ck_assert_msg(ok == 0, "%s", reason);
        ck_assert_uint_eq(seek_holes, 1);
        ck_assert_int_eq(unmap(domain, 0x100000, 16 * PAGE, NULL), 0);
        /* Again, in the idle view of the 8 pages, all resident: no walk. */
        seek_holes = 0;
        ck_assert_int_eq(map(domain, r, 8, &mfd, 1, NULL), 0);
        ck_assert_uint_eq(seek_holes, 0);
        ck_assert_int_eq(unmap(domain, 0x100000, 16 * PAGE, NULL), 0);
        /* A hole punched in the view's pages: refused, in the range that has it. */
        ck_assert_int_eq(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * PAGE, PAGE),
                         0);
        ck_assert_int_eq(map(domain, r, 8, &mfd, 1, reason), EFAULT);
        ck_assert_msg(strstr(reason, "range 5: memfd 0 has a hole at offset 0x2000"), "%s", reason);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        /* The ranges after the hole in the file are checked too. */
        ck_assert_int_eq(pwrite(mfd, "x", 1, 2 * PAGE), 1);
        ck_assert_int_eq(
            fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 40 * PAGE, PAGE), 0);
        r[0].offset = 40 * PAGE;
        ck_assert_int_eq(map(domain, r, 8, &mfd, 1, reason), EFAULT);
        ck_assert_msg(strstr(reason, "range 0: memfd 0 has a hole at offset 0x28000"), "%s",
                      reason);
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        close(mfd);
        stop();
}
END_TEST

static uint64_t memfd_view_bytes(void)
{
        uint64_t bytes;

        (void)memfd_maps(&bytes);
        return bytes;
}

/*
 * The daemon maps what is mapped for DMA, not the span between: two pages at
 * the two ends of a 1 TiB sparse memfd cost it two pages of address space.
 * The ranges of a request that touch in the file share one view.
 */
START_TEST(views_map_only_the_ranges)
{
        const uint64_t far = 1ull << 40;
        int mfd = h_memfd_sparse(far, 0);
        struct range r[4] = {{0, 0, 0x100000, PAGE},
                             {0, far - PAGE, 0x200000, PAGE},
                             {0, PAGE, 0x300000, PAGE},
                             {0, 3 * PAGE, 0x400000, PAGE}};
        char reason[256] = "";
        int ok;

        ck_assert_int_eq(pwrite(mfd, "a", 1, 0), 1);
        ck_assert_int_eq(pwrite(mfd, "b", 1, 1 * PAGE), 1);
        ck_assert_int_eq(pwrite(mfd, "c", 1, 3 * PAGE), 1);
        ck_assert_int_eq(pwrite(mfd, "z", 1, (off_t)(far - PAGE)), 1);
        ck_assert_int_eq(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
        start(NULL);
        ok = map(domain, r, 2, &mfd, 1, reason);
        ck_assert_msg(ok == 0, "%s", reason);
        ck_assert_uint_eq(memfd_view_bytes(), 2 * PAGE);
        ck_assert_int_eq(memfd_views(), 2);
        ck_assert_int_eq(unmap(domain, 0x100000, 0x200000, NULL), 0);
        /* Pages 1 and 3 are not neighbours: two views; then 0..1 share one. */
        vfiod_domain_drop_idle_views(vfiod_client_find_domain(
            container_of(H.server->clients.next, struct vfiod_client, link), domain));
        ck_assert_int_eq(map(domain, r + 2, 2, &mfd, 1, NULL), 0);
        ck_assert_int_eq(memfd_views(), 2);
        ck_assert_uint_eq(memfd_view_bytes(), 2 * PAGE);
        ck_assert_int_eq(map(domain, r, 1, &mfd, 1, NULL), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 3);
        close(mfd);
        stop();
}
END_TEST

/*
 * A view stays mapped while any mapping lies in it: the daemon's mapped
 * bytes, not only the mapped ranges, count against MaxPinnedBytesPerClient.
 */
START_TEST(view_bytes_count_against_the_quota)
{
        int a = h_memfd(3 * PAGE, F_SEAL_SHRINK), b = h_memfd(2 * PAGE, F_SEAL_SHRINK);
        /* Adjacent in the file: one 12K view. */
        struct range r[2] = {{0, 0, 0x100000, PAGE}, {0, PAGE, 0x200000, 2 * PAGE}};
        struct range rb = {0, 0, 0x300000, 2 * PAGE};
        char reason[256] = "";

        start("[Daemon]\nMaxPinnedBytesPerClient=16K\n");
        ck_assert_int_eq(map(domain, r, 2, &a, 1, NULL), 0);
        ck_assert_int_eq(unmap(domain, 0x200000, 2 * PAGE, NULL), 0);
        /* 4K mapped, but the 12K view stays: 8K more would keep 20K mapped. */
        ck_assert_uint_eq(memfd_view_bytes(), 3 * PAGE);
        ck_assert_int_eq(map(domain, &rb, 1, &b, 1, reason), EDQUOT);
        ck_assert_msg(strstr(reason, "MaxPinnedBytesPerClient=16384") &&
                          strstr(reason, "12288 bytes of memfds mapped by the daemon"),
                      "%s", reason);
        ck_assert_uint_eq(memfd_view_bytes(), 3 * PAGE);
        /* Once the first view goes, it fits. */
        ck_assert_int_eq(unmap(domain, 0x100000, PAGE, NULL), 0);
        ck_assert_int_eq(map(domain, &rb, 1, &b, 1, reason), 0);
        ck_assert_uint_eq(memfd_view_bytes(), 2 * PAGE);
        close(a);
        close(b);
        stop();
}
END_TEST

/* Maps n pages at iova from connection fd (the helpers above use client_fd). */
static int map_on(int fd, uint64_t dom, uint64_t iova, uint64_t pages, int mfd, char *reason)
{
        struct range r = {0, 0, iova, pages * PAGE};
        int saved = client_fd, ret;

        client_fd = fd;
        ret = map(dom, &r, 1, &mfd, 1, reason);
        client_fd = saved;
        return ret;
}

/*
 * Beside client_fd (uid 1000, DEV1): a second connection of uid 1000 with a
 * brokered lease of 0000:00:02.0 and one of uid 1001 with 0000:00:03.0.
 */
struct others {
        int fd2, fd3, f2[3], f3[3];
        size_t n2, n3;
        uint64_t dom2, dom3, lease3;
};

static void start_with_others(const char *daemon_section, struct others *o)
{
        char conf[512];

        snprintf(conf, sizeof(conf), "%s[Device other]\nMatch=0000:00:03.0\nUsers=1001\n",
                 daemon_section);
        start(conf);
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        h_add_device("0000:00:03.0", 3, "vfio-pci");
        o->fd2 = h_connect(1000, 1000);
        o->fd3 = h_connect(1001, 1001);
        h_hello(o->fd2, 0);
        h_hello(o->fd3, 0);
        (void)h_acquire_ok(o->fd2, "0000:00:02.0", 0, BROKERED, o->f2, &o->n2, &o->dom2);
        o->lease3 = h_acquire_ok(o->fd3, "0000:00:03.0", 0, BROKERED, o->f3, &o->n3, &o->dom3);
}

static void stop_with_others(struct others *o)
{
        h_close_all(o->f2, o->n2);
        h_close_all(o->f3, o->n3);
        close(o->fd2);
        close(o->fd3);
        stop();
}

/*
 * MaxPinnedBytesPerUser counts every connection of a uid together: a second
 * connection does not bring a second quota. Another user has its own.
 */
START_TEST(pinned_bytes_per_user)
{
        int mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK);
        struct others o;
        char reason[256] = "";

        start_with_others("[Daemon]\nMaxPinnedBytesPerUser=8K\n", &o);

        ck_assert_int_eq(map_on(client_fd, domain, 0x100000, 1, mfd, NULL), 0);
        ck_assert_int_eq(map_on(o.fd2, o.dom2, 0x100000, 2, mfd, reason), EDQUOT);
        ck_assert_msg(strstr(reason, "MaxPinnedBytesPerUser=8192"), "%s", reason);
        ck_assert_int_eq(map_on(o.fd2, o.dom2, 0x100000, 1, mfd, NULL), 0);
        ck_assert_int_eq(map_on(client_fd, domain, 0x200000, 1, mfd, NULL), EDQUOT);
        ck_assert_int_eq(map_on(o.fd3, o.dom3, 0x100000, 2, mfd, NULL), 0);
        ck_assert_uint_eq(fake_kernel_mappings(), 3);

        close(mfd);
        stop_with_others(&o);
}
END_TEST

/*
 * The fds the daemon keeps for a client (a memfd per view, an eventfd per
 * vector) have a budget per client and per user; refused requests leave the
 * connection and the lease alone, and another user is not touched.
 */
START_TEST(fd_budget_per_client_and_user)
{
        int mfd[8], efd = eventfd(0, EFD_CLOEXEC);
        struct others o;
        char reason[256] = "";

        start_with_others("[Daemon]\nMaxFdsPerClient=4\nMaxFdsPerUser=6\n", &o);
        for (int i = 0; i < 8; i++)
                mfd[i] = h_memfd(PAGE, F_SEAL_SHRINK);

        /* One-page mappings of distinct memfds: a kept fd each. */
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(
                    map_on(client_fd, domain, 0x100000 + i * 0x10000ull, 1, mfd[i], NULL), 0);
        ck_assert_int_eq(map_on(client_fd, domain, 0x200000, 1, mfd[4], reason), ENOSPC);
        ck_assert_msg(strstr(reason, "MaxFdsPerClient=4"), "%s", reason);
        ck_assert_int_eq(h_set_irqs(client_fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 1, efd, reason),
                         ENOSPC);
        ck_assert_msg(strstr(reason, "MaxFdsPerClient=4"), "%s", reason);
        /* Inside a view it has already: no new fd. */
        ck_assert_int_eq(map_on(client_fd, domain, 0x300000, 1, mfd[0], NULL), 0);

        /* The same user's second connection has what is left of MaxFdsPerUser. */
        ck_assert_int_eq(map_on(o.fd2, o.dom2, 0x100000, 1, mfd[4], NULL), 0);
        ck_assert_int_eq(h_set_irqs(o.fd2, 0, VFIO_PCI_MSIX_IRQ_INDEX, 1, efd, NULL),
                         ENOENT); /* (no such lease) */
        ck_assert_int_eq(map_on(o.fd2, o.dom2, 0x110000, 1, mfd[5], NULL), 0);
        ck_assert_int_eq(map_on(o.fd2, o.dom2, 0x120000, 1, mfd[6], reason), ENOSPC);
        ck_assert_msg(strstr(reason, "MaxFdsPerUser=6"), "%s", reason);

        /* Another user is not touched. */
        ck_assert_int_eq(map_on(o.fd3, o.dom3, 0x100000, 1, mfd[6], NULL), 0);
        ck_assert_int_eq(h_set_irqs(o.fd3, o.lease3, VFIO_PCI_MSIX_IRQ_INDEX, 1, efd, NULL), 0);
        ck_assert_int_eq(h_state(o.fd3, "0000:00:03.0"),
                         VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);

        /* An idle view gives its fd up for a new one. */
        ck_assert_int_eq(unmap(domain, 0x110000, PAGE, NULL), 0);
        ck_assert_int_eq(map_on(client_fd, domain, 0x400000, 1, mfd[7], reason), 0);
        ck_assert_int_eq(h_state(client_fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);

        h_close_all(mfd, 8);
        close(efd);
        stop_with_others(&o);
}
END_TEST

/*
 * Near its own RLIMIT_NOFILE the daemon refuses what would make it keep more
 * fds (EMFILE), and keeps VFIOD_FD_HEADROOM free: a request that carries fds
 * is still received and answered, nobody is dropped, no lease is lost.
 */
START_TEST(daemon_keeps_fd_headroom)
{
        struct rlimit rl;
        int fd3, f3[3], mfd, r = 0, mapped = 0;
        uint64_t dom3;
        size_t n3;
        char reason[256] = "";

        start("[Device other]\nMatch=0000:00:03.0\nUsers=1001\n");
        h_add_device("0000:00:03.0", 3, "vfio-pci");
        fd3 = h_connect(1001, 1001);
        h_hello(fd3, 0);
        (void)h_acquire_ok(fd3, "0000:00:03.0", 0, BROKERED, f3, &n3, &dom3);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = (rlim_t)testutil_count_fds() + VFIOD_FD_HEADROOM + 40;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        usleep(110 * 1000); /* the daemon counts its fds again */

        /* One user fills the daemon's table with one-page mappings. */
        while (r == 0 && mapped < 400) {
                mfd = h_memfd(PAGE, F_SEAL_SHRINK);
                r = map_on(client_fd, domain, 0x100000 + (uint64_t)mapped * PAGE, 1, mfd, reason);
                close(mfd);
                mapped += r == 0;
        }
        ck_assert_int_eq(r, EMFILE);
        ck_assert_msg(strstr(reason, "the daemon has") && strstr(reason, "fds open"), "%s", reason);
        ck_assert_int_ge(mapped, 20);

        /* The other user's MapDma carries an fd: refused, answered, the lease kept. */
        mfd = h_memfd(PAGE, F_SEAL_SHRINK);
        ck_assert_int_eq(map_on(fd3, dom3, 0x100000, 1, mfd, reason), EMFILE);
        ck_assert_int_eq(h_state(fd3, "0000:00:03.0"),
                         VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        ck_assert_int_eq(h_state(client_fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);

        /* Once the first user lets go, there is room again. */
        ck_assert_int_eq(h_release(client_fd, lease), 0);
        usleep(110 * 1000);
        ck_assert_int_eq(map_on(fd3, dom3, 0x100000, 1, mfd, reason), 0);
        close(mfd);
        h_close_all(f3, n3);
        close(fd3);
        stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-domain");
        TCase *tc = tcase_create("dma");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, map_shares_the_pages);
        tcase_add_test(tc, stats_totals_follow_usage);
        tcase_add_test(tc, map_validation);
        tcase_add_test(tc, map_is_all_or_nothing);
        tcase_add_test(tc, unmap_rules);
        tcase_add_test(tc, unmap_coalesces_neighbours);
        tcase_add_test(tc, idle_views_are_reused_and_bounded);
        tcase_add_test(tc, mapping_limits);
        tcase_add_test(tc, map_needs_a_brokered_domain);
        tcase_add_test(tc, not_a_memfd_over_the_wire);
        tcase_add_test(tc, not_a_memfd_in_the_domain);
        tcase_add_test(tc, quarantined_domain_takes_no_mapping);
        tcase_add_loop_test(tc, released_group_taints_its_domain, 0, 3);
        tcase_add_test(tc, pinned_bytes_per_user);
        tcase_add_test(tc, map_refuses_holes);
        tcase_add_test(tc, map_walks_a_memfd_once);
        tcase_add_test(tc, views_map_only_the_ranges);
        tcase_add_test(tc, view_bytes_count_against_the_quota);
        tcase_add_test(tc, fd_budget_per_client_and_user);
        tcase_add_test(tc, daemon_keeps_fd_headroom);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
