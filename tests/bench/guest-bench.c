/* SPDX-License-Identifier: MIT */
/*
 * The guest half of `make bench`: on one edu device, what going through
 * vfiod costs compared to opening VFIO yourself. Runs in the QEMU guest of
 * tests/vm (real kernel, emulated IOMMU) as an unprivileged user, with vfiod
 * running as root and a policy that allows this user the device; the
 * device's group node is chowned to the user so that the raw side can open
 * it too, as a launcher given the node by its manager would.
 *
 *   guest-bench BDF [--rounds N] [--quick] [--verbose]
 *
 * Prints rows (bench-util.h) on stdout, progress on stderr (--verbose: also
 * each side's time and CPU time, this process's and vfiod's, per operation).
 *
 * First the no-op round trip as on the host (Stats, the guest's policy makes
 * the user an admin, against a raw SOCK_SEQPACKET ping-pong carrying one
 * fd): every vfiod request pays it, and under TCG it is far dearer than on
 * the host (each process switch flushes the emulated TLB).
 *
 * Each round runs both sides on the same device, alternating which goes
 * first; between the sides the device changes hands (the raw side closes
 * everything, vfiod acquires it, and back), outside the timed parts:
 * - DMA: the vfiod side holds a BROKERED lease and calls vfiod_map_dma() +
 *   vfiod_unmap_dma() with a memfd; the raw side holds its own container
 *   (Type1v2) and issues VFIO_IOMMU_MAP_DMA + VFIO_IOMMU_UNMAP_DMA on its
 *   own MAP_SHARED mapping of the same memfd (pages touched beforehand, on
 *   both sides the same pages). Sizes 4 KiB, 2 MiB and 64 MiB; then 256
 *   ranges of 4 KiB: one MapDma + one UnmapDma of 256 ranges against 256
 *   map ioctls + 256 unmap ioctls (a throughput: raw time / vfiod time).
 *   A side's figure in a round is its median repetition. From the vfiod
 *   side's figures, a range of the 256-range MapDma against a MapDma of one
 *   range: what the daemon spends per range, beyond the request.
 * - Pipelined: on one BROKERED lease, 4 KiB MapDma+UnmapDma cycles with
 *   vfiod_submit_map_dma(), vfiod_submit_unmap_dma() and vfiod_collect()
 *   (the daemon's MaxRequestsInFlight in flight) against the same cycles
 *   with vfiod_map_dma() + vfiod_unmap_dma() (a throughput: sync time /
 *   pipelined time).
 * - Acquire: vfiod_acquire(DIRECT) (into a new domain) + closing the 3 fds +
 *   vfiod_release() (the domain goes with it) against open container, open
 *   group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD, close all. Reset
 *   INCLUDED in both: vfio-pci resets the device when its fd is first opened
 *   and when it is last closed, on both sides; neither calls
 *   VFIO_DEVICE_RESET (vfiod's release leaves the reset to the next open: see
 *   vfiod(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "client-lib/vfiod.h"
#include "tests/bench/bench-util.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)

#define MEMFD_SIZE (64 * MiB)
#define IOVA_BASE  UINT64_C(0x10000000)
#define BATCH      256
#define BATCH_SIZE (4 * KiB)
#define BATCH_IOVA UINT64_C(0x20000000)
#define MAX_ROUNDS 64
#define MAX_REPS   100

static const char *bdf;
static int group_id;
static int memfd = -1;
static uint8_t *mem; /* this process's mapping of memfd */
static struct vfiod *conn;
static bool quick, verbose;
static pid_t daemon_pid = -1;

/* CPU time (user, system) in ms of pid (0: this process), from /proc/PID/stat. */
static void cpu_ms(pid_t pid, double *ret_user, double *ret_sys)
{
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;

        *ret_user = *ret_sys = 0;
        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/stat");
        else
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return;
        if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
                long hz = sysconf(_SC_CLK_TCK);

                *ret_user = ut * 1000.0 / hz;
                *ret_sys = st * 1000.0 / hz;
        }
        fclose(f);
}

static void fail(const char *what, int r)
{
        fprintf(stderr, "guest-bench: %s: %s%s%s\n", what, strerror(r < 0 ? -r : r),
                conn && vfiod_last_error(conn)[0] ? ": " : "", conn ? vfiod_last_error(conn) : "");
}

/* ---- the two sides' DMA operations ----------------------------------------------- */

enum side { RAW, VFIOD };

struct holder {
        enum side side;
        /* RAW */
        int container, group, device;
        /* VFIOD */
        struct vfiod_lease lease;
};

static int raw_open(struct holder *h)
{
        struct vfio_group_status st = {.argsz = sizeof(st)};
        char path[64];

        h->container = h->group = h->device = -1;
        h->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (h->container < 0)
                return -errno;
        snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
        h->group = open(path, O_RDWR | O_CLOEXEC);
        if (h->group < 0)
                return -errno;
        if (ioctl(h->group, VFIO_GROUP_GET_STATUS, &st) < 0)
                return -errno;
        if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
                return -EBUSY;
        if (ioctl(h->group, VFIO_GROUP_SET_CONTAINER, &h->container) < 0)
                return -errno;
        if (ioctl(h->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                return -errno;
        h->device = ioctl(h->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
        if (h->device < 0)
                return -errno;
        return 0;
}

static int raw_close(struct holder *h)
{
        int r = 0;

        if (h->device >= 0)
                close(h->device);
        if (h->group >= 0)
                close(h->group);
        if (h->container >= 0)
                close(h->container);
        h->container = h->group = h->device = -1;
        return r;
}

static int holder_open(struct holder *h, enum side side)
{
        int r;

        memset(h, 0, sizeof(*h));
        h->side = side;
        if (side == RAW) {
                r = raw_open(h);
                if (r < 0)
                        (void)raw_close(h);
                return r;
        }
        return vfiod_acquire(conn, bdf, 0, VFIOD_MODE_BROKERED, &h->lease);
}

static int holder_close(struct holder *h)
{
        if (h->side == RAW)
                return raw_close(h);
        vfiod_lease_close_fds(&h->lease);
        /* Acquire made the domain (domain 0): it goes with the lease, as the raw side's
         * container. */
        return vfiod_release(conn, h->lease.lease_id);
}

static int map_one(struct holder *h, uint64_t offset, uint64_t iova, uint64_t size)
{
        int r;

        if (h->side == RAW) {
                struct vfio_iommu_type1_dma_map m = {
                    .argsz = sizeof(m),
                    .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                    .vaddr = (uintptr_t)(mem + offset),
                    .iova = iova,
                    .size = size,
                };
                return ioctl(h->container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
        }
        r = vfiod_map_dma(conn, h->lease.domain_id,
                          &(struct vfiod_dma_range){.fd = memfd,
                                                    .offset = offset,
                                                    .iova = iova,
                                                    .size = size,
                                                    .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                          1, NULL);
        return r < 0 ? r : 0;
}

static int unmap_one(struct holder *h, uint64_t iova, uint64_t size)
{
        int r;

        if (h->side == RAW) {
                struct vfio_iommu_type1_dma_unmap u = {
                    .argsz = sizeof(u), .iova = iova, .size = size};
                return ioctl(h->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : 0;
        }
        r = vfiod_unmap_dma(conn, h->lease.domain_id,
                            &(struct vfiod_iova_range){.iova = iova, .size = size}, 1, NULL);
        return r < 0 ? r : 0;
}

/* 256 ranges of 4 KiB, mapped then unmapped: one request each for vfiod, 512 ioctls raw. */
static int batch(struct holder *h)
{
        static struct vfiod_dma_range ranges[BATCH];
        static struct vfiod_iova_range iovas[BATCH];
        int r;

        for (size_t i = 0; i < BATCH; i++) {
                ranges[i] = (struct vfiod_dma_range){.fd = memfd,
                                                     .offset = i * BATCH_SIZE,
                                                     .iova = BATCH_IOVA + i * 2 * BATCH_SIZE,
                                                     .size = BATCH_SIZE,
                                                     .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE};
                iovas[i] = (struct vfiod_iova_range){.iova = ranges[i].iova, .size = BATCH_SIZE};
        }
        if (h->side == VFIOD) {
                r = vfiod_map_dma(conn, h->lease.domain_id, ranges, BATCH, NULL);
                if (r < 0)
                        return r;
                if (r != BATCH)
                        return -EIO;
                r = vfiod_unmap_dma(conn, h->lease.domain_id, iovas, BATCH, NULL);
                return r < 0 ? r : 0;
        }
        for (size_t i = 0; i < BATCH; i++) {
                r = map_one(h, ranges[i].offset, ranges[i].iova, BATCH_SIZE);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < BATCH; i++) {
                r = unmap_one(h, iovas[i].iova, BATCH_SIZE);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the DMA comparisons ------------------------------------------------------------- */

struct dma_test {
        const char *name;
        uint64_t size; /* 0: the batch */
        int reps;
        double target; /* <= 0: none */
        bool throughput;
        double ratio[MAX_ROUNDS], vfiod_ns[MAX_ROUNDS], raw_ns[MAX_ROUNDS];
};

static struct dma_test dma_tests[] = {
    {"MapDma+UnmapDma 4 KiB (VM)", 4 * KiB, 100, 1.5, false},
    {"MapDma+UnmapDma 2 MiB (VM)", 2 * MiB, 20, 1.1, false},
    {"MapDma+UnmapDma 64 MiB (VM)", 64 * MiB, 5, 0, false},
    {"256 ranges: 1 MapDma vs 256 ioctls, thr. (VM)", 0, 9, 0.9, true},
};
#define N_DMA_TESTS (sizeof(dma_tests) / sizeof(dma_tests[0]))
#define DMA_4K      0 /* dma_tests[] */
#define DMA_BATCH   3

/*
 * What a range of a MapDma costs vfiod beyond the request: the 256-range
 * MapDma+UnmapDma per range against a MapDma+UnmapDma of one 4 KiB range
 * (both the vfiod side's, same round). The kernel pins a page either way;
 * the request's round trip is shared by the batch. A daemon whose work per
 * range grows (a walk of the memfd per range) brings it towards 1.
 */
#define RANGE_ROW    "MapDma: a range of 256 vs 1 range alone (VM)"
#define RANGE_TARGET 0.1

/* Runs every DMA test on one side; stores per-op ns in out[test]. */
static int dma_side(enum side side, double out[N_DMA_TESTS])
{
        struct holder h;
        int r;

        r = holder_open(&h, side);
        if (r < 0) {
                fail(side == RAW ? "opening the device" : "vfiod_acquire(BROKERED)", r);
                return r;
        }
        for (size_t k = 0; k < N_DMA_TESTS; k++) {
                struct dma_test *t = &dma_tests[k];
                int reps = quick ? (t->reps + 3) / 4 : t->reps;
                double t0 = bench_now_ns(), rep_ns[MAX_REPS];
                double cu0, cs0, du0, ds0;

                cpu_ms(0, &cu0, &cs0);
                cpu_ms(daemon_pid, &du0, &ds0);
                for (int i = 0; i < reps; i++) {
                        double t1 = bench_now_ns();

                        r = t->size ? map_one(&h, 0, IOVA_BASE, t->size) : batch(&h);
                        if (r == 0 && t->size)
                                r = unmap_one(&h, IOVA_BASE, t->size);
                        if (r < 0) {
                                fail(t->name, r);
                                (void)holder_close(&h);
                                return r;
                        }
                        rep_ns[i] = bench_now_ns() - t1;
                }
                /* The median repetition: a stall of the emulator spoils one, not the side. */
                out[k] = bench_median(rep_ns, (size_t)reps);
                if (verbose) {
                        double cu1, cs1, du1, ds1;

                        cpu_ms(0, &cu1, &cs1);
                        cpu_ms(daemon_pid, &du1, &ds1);
                        fprintf(stderr,
                                "guest-bench: %s %s: median %.3f ms/op, mean %.3f; per op cpu "
                                "ms: self user %.3f sys %.3f, vfiod user %.3f sys %.3f\n",
                                side == RAW ? "raw" : "vfiod", t->name, out[k] / 1e6,
                                (bench_now_ns() - t0) / reps / 1e6, (cu1 - cu0) / reps,
                                (cs1 - cs0) / reps, side == RAW ? 0 : (du1 - du0) / reps,
                                side == RAW ? 0 : (ds1 - ds0) / reps);
                }
        }
        r = holder_close(&h);
        if (r < 0)
                fail(side == RAW ? "closing the device" : "vfiod_release", r);
        return r;
}

/* ---- pipelined against synchronous map+unmap ------------------------------------------ */

#define PIPE_SLOTS 8 /* IOVAs (and pages of the memfd) the cycles go round */

/* Waits for the oldest reply; its failure is the cycle's. */
static int collect_one(void)
{
        struct vfiod_reply rep;
        int r = vfiod_collect(conn, &rep);

        return r < 0 ? r : rep.result < 0 ? rep.result : 0;
}

/*
 * k cycles of a 4 KiB MapDma and its UnmapDma on domain dom: one round trip
 * each (window 0), or submitted with up to `window` requests in flight.
 */
static int pipe_cycles(uint64_t dom, int k, size_t window)
{
        int r = 0;

        for (int i = 0; r >= 0 && i < 2 * k; i++) {
                uint64_t slot = (uint64_t)(i / 2 % PIPE_SLOTS);
                struct vfiod_dma_range m = {.fd = memfd,
                                            .offset = slot * 4 * KiB,
                                            .iova = IOVA_BASE + slot * 4 * KiB,
                                            .size = 4 * KiB,
                                            .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE};
                struct vfiod_iova_range u = {.iova = m.iova, .size = m.size};

                if (window == 0) {
                        r = i % 2 == 0 ? vfiod_map_dma(conn, dom, &m, 1, NULL)
                                       : vfiod_unmap_dma(conn, dom, &u, 1, NULL);
                        continue;
                }
                if (vfiod_in_flight(conn) == window)
                        r = collect_one();
                if (r >= 0)
                        r = i % 2 == 0 ? vfiod_submit_map_dma(conn, dom, &m, 1, NULL)
                                       : vfiod_submit_unmap_dma(conn, dom, &u, 1, NULL);
        }
        while (r >= 0 && vfiod_in_flight(conn) > 0)
                r = collect_one();
        return r < 0 ? r : 0;
}

/*
 * The row: 4 KiB map+unmap cycles per second pipelined (the daemon's
 * MaxRequestsInFlight in flight) over one round trip each, on one BROKERED
 * lease; rounds alternate which side goes first.
 */
static int bench_pipelined(int rounds)
{
        const char *name = "pipelined vs sync 4 KiB map+unmap, thr. (VM)";
        double ratio[MAX_ROUNDS], pipe_ns[MAX_ROUNDS], sync_ns[MAX_ROUNDS];
        struct vfiod_server_info info;
        struct holder h;
        size_t window = 1;
        int k = quick ? 25 : 100, r;

        if (vfiod_get_server_info(conn, &info) == 0 && info.limits.max_requests_in_flight > 0)
                window = info.limits.max_requests_in_flight;
        r = holder_open(&h, VFIOD);
        if (r < 0) {
                fail("vfiod_acquire(BROKERED)", r);
                bench_row_failed(stdout, name, "vfiod_acquire() failed (console)");
                return r;
        }
        /* Round -1 warms both sides up and is not counted. */
        for (int round = -1; r == 0 && round < rounds; round++) {
                double t[2] = {0, 0};

                for (int s = 0; r == 0 && s < 2; s++) {
                        int pipelined = s ^ (round & 1);
                        double t0 = bench_now_ns();

                        r = pipe_cycles(h.lease.domain_id, k, pipelined ? window : 0);
                        t[pipelined] = (bench_now_ns() - t0) / k;
                }
                if (r < 0 || round < 0)
                        continue;
                pipe_ns[round] = t[1];
                sync_ns[round] = t[0];
                ratio[round] = t[0] / t[1];
        }
        if (r < 0) {
                fail(name, r);
                bench_row_failed(stdout, name, "a request failed (console)");
        } else
                bench_row_ratio(stdout, name, true, 0, ratio, (size_t)rounds, pipe_ns, sync_ns);
        (void)holder_close(&h);
        return r;
}

/* ---- Acquire + Release -------------------------------------------------------------- */

static int acquire_side(enum side side, double *ret_ns)
{
        double t0 = bench_now_ns();
        int r;

        if (side == RAW) {
                struct holder h = {.side = RAW};

                r = raw_open(&h);
                if (r < 0) {
                        (void)raw_close(&h);
                        fail("raw open sequence", r);
                        return r;
                }
                r = raw_close(&h);
                if (r < 0) {
                        fail("closing the raw side", r);
                        return r;
                }
        } else {
                struct vfiod_lease l;

                r = vfiod_acquire(conn, bdf, 0, VFIOD_MODE_DIRECT, &l);
                if (r < 0) {
                        fail("vfiod_acquire(DIRECT)", r);
                        return r;
                }
                vfiod_lease_close_fds(&l);
                r = vfiod_release(conn, l.lease_id);
                if (r < 0) {
                        fail("vfiod_release", r);
                        return r;
                }
        }
        *ret_ns = bench_now_ns() - t0;
        return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static int stats_op(void *userdata)
{
        struct vfiod_stats st;

        return vfiod_stats(userdata, &st);
}

static int read_group(const char *dev)
{
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", dev);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        return atoi(basename(target));
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"rounds", required_argument, NULL, 'r'},
            {"quick", no_argument, NULL, 'q'},
            {"verbose", no_argument, NULL, 'v'},
            {},
        };
        double acq_ratio[MAX_ROUNDS], acq_vfiod[MAX_ROUNDS], acq_raw[MAX_ROUNDS];
        double range_ratio[MAX_ROUNDS], range_batch[MAX_ROUNDS], range_one[MAX_ROUNDS];
        int rounds = 11, c, r, failed = 0;
        bool dma_ok = true, acq_ok = true;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        rounds = atoi(optarg);
                        break;
                case 'q':
                        quick = true;
                        break;
                case 'v':
                        verbose = true;
                        break;
                default:
                        return 2;
                }
        }
        if (optind != argc - 1 || rounds < 1 || rounds > MAX_ROUNDS) {
                fprintf(stderr, "usage: guest-bench BDF [--rounds N<=%d] [--quick] [--verbose]\n",
                        MAX_ROUNDS);
                return 2;
        }
        bdf = argv[optind];
        if (quick && rounds > 3)
                rounds = 3;
        group_id = read_group(bdf);
        if (group_id < 0) {
                fail("reading the IOMMU group", group_id);
                return 1;
        }
        r = vfiod_connect(NULL, &conn);
        if (r < 0) {
                fail("connecting to vfiod", r);
                return 1;
        }
        {
                struct ucred cred;
                socklen_t len = sizeof(cred);

                if (getsockopt(vfiod_get_fd(conn), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                        daemon_pid = cred.pid;
        }
        r = vfiod_memfd_create("guest-bench", MEMFD_SIZE, &memfd);
        if (r < 0) {
                fail("vfiod_memfd_create", r);
                return 1;
        }
        mem = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED) {
                fail("mmap", errno);
                return 1;
        }
        memset(mem, 0x5a, MEMFD_SIZE); /* every page present before anything is timed */

        /* The floor of every request: one round trip, here under TCG. */
        failed +=
            bench_noop("no-op round trip (VM)", 0, stats_op, conn, rounds, quick ? 200 : 1000) < 0;

        /* Round -1 warms both sides up and is not counted. */
        for (int round = -1; round < rounds && dma_ok; round++) {
                double out[2][N_DMA_TESTS];

                for (int s = 0; s < 2 && dma_ok; s++) {
                        enum side side = (s ^ (round & 1)) ? VFIOD : RAW;

                        dma_ok = dma_side(side, out[side]) == 0;
                }
                if (!dma_ok || round < 0)
                        continue;
                for (size_t k = 0; k < N_DMA_TESTS; k++) {
                        struct dma_test *t = &dma_tests[k];

                        t->vfiod_ns[round] = out[VFIOD][k];
                        t->raw_ns[round] = out[RAW][k];
                        t->ratio[round] = t->throughput ? out[RAW][k] / out[VFIOD][k]
                                                        : out[VFIOD][k] / out[RAW][k];
                }
                /* vfiod alone: a range of the batch against a request of one range. */
                range_batch[round] = out[VFIOD][DMA_BATCH] / BATCH;
                range_one[round] = out[VFIOD][DMA_4K];
                range_ratio[round] = range_batch[round] / range_one[round];
                fprintf(stderr, "guest-bench: DMA round %d of %d done\n", round + 1, rounds);
        }
        for (size_t k = 0; k < N_DMA_TESTS; k++) {
                struct dma_test *t = &dma_tests[k];

                if (dma_ok)
                        bench_row_ratio(stdout, t->name, t->throughput, t->target, t->ratio,
                                        (size_t)rounds, t->vfiod_ns, t->raw_ns);
                else
                        bench_row_failed(stdout, t->name, "a request or ioctl failed (console)");
        }
        if (dma_ok)
                bench_row_ratio(stdout, RANGE_ROW, false, RANGE_TARGET, range_ratio, (size_t)rounds,
                                range_batch, range_one);
        else
                bench_row_failed(stdout, RANGE_ROW, "a request or ioctl failed (console)");
        failed += !dma_ok;
        failed += bench_pipelined(rounds) < 0;

        for (int round = -1; round < rounds && acq_ok; round++) {
                double ns[2];

                for (int s = 0; s < 2 && acq_ok; s++) {
                        enum side side = (s ^ (round & 1)) ? VFIOD : RAW;

                        acq_ok = acquire_side(side, &ns[side]) == 0;
                }
                if (!acq_ok || round < 0)
                        continue;
                acq_vfiod[round] = ns[VFIOD];
                acq_raw[round] = ns[RAW];
                acq_ratio[round] = ns[VFIOD] / ns[RAW];
                fprintf(stderr, "guest-bench: acquire round %d of %d done\n", round + 1, rounds);
        }
        if (acq_ok)
                bench_row_ratio(stdout, "Acquire+Release vs raw open..close (VM)", false, 1.5,
                                acq_ratio, (size_t)rounds, acq_vfiod, acq_raw);
        else
                bench_row_failed(stdout, "Acquire+Release vs raw open..close (VM)",
                                 "a request or ioctl failed (console)");
        failed += !acq_ok;

        munmap(mem, MEMFD_SIZE);
        close(memfd);
        vfiod_close(conn);
        return failed ? 1 : 0;
}
