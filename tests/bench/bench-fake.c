/* SPDX-License-Identifier: MIT */
/*
 * The host figures of `make bench` that need the fake ioctl layer
 * (tests/daemon/vfiod-fake, vfiod on an in-memory VFIO): instructions per
 * request, counted by valgrind's callgrind (the same on any machine and
 * under any load, unlike a time), and pipelined against synchronous DMA
 * requests, timed.
 *
 *   bench-fake --vfiod-fake PATH [--quick] [--rounds N]
 *   bench-fake --client noop|map SOCKET N   (run by the above)
 *
 * Rows (see bench-util.h for the format):
 * - daemon, no-op request: Stats (answered from the daemon's counters).
 * - daemon, MapDma+UnmapDma 4 KiB: one 4 KiB range of a sealed memfd mapped
 *   and unmapped on a BROKERED lease (two requests, one cycle).
 * - libvfiod, the same two: the client's side of each (vfiod_stats(), and
 *   vfiod_map_dma() + vfiod_unmap_dma()).
 * - pipelined 4 KiB map+unmap: cycles per second with vfiod_submit_*() and
 *   vfiod_collect() (the daemon's MaxRequestsInFlight in flight) over those
 *   with vfiod_map_dma() + vfiod_unmap_dma(), one round trip each; rounds
 *   alternate which side goes first; vfiod-fake runs natively, and the
 *   processes are not pinned to one CPU (the daemon works while the client
 *   submits). For information: no target.
 *
 * How: the daemon runs under `valgrind --tool=callgrind
 * --toggle-collect=io_cb`, so what is counted is everything the daemon does
 * for a readable client socket (receive, decode, check, handle, encode,
 * send; libev's loop around it and the kernel are not counted), except the
 * fake's own kvfio_dma_map() and kvfio_dma_unmap() (on a real kernel those
 * are one ioctl each, kernel time): nested toggles turn counting off in
 * them. Each figure
 * is the difference between a run of 2N requests and a run of N divided by
 * N: connecting, Hello, acquiring the lease and the first calls' one-time
 * allocations cancel out. The client's side is counted the same way, the
 * client under callgrind with --toggle-collect on the library's calls and
 * the daemon running natively. Exits 1 when valgrind is missing or a run
 * failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/vfiod.h"
#include "tests/bench/bench-util.h"
#include "tests/fakesys.h"

#define DEVICE      "0000:00:01.0"
#define MAP_SIZE    4096
#define BUDGET_NOOP 2500
#define BUDGET_MAP  5000
#define REPS        3 /* runs of the daemon's counts: min, median, max */

static char tmpdir[] = "/tmp/vfiod-bench-fake-XXXXXX";
static char sock_path[100];
static const char *self;

static void die(const char *what)
{
        fprintf(stderr, "bench-fake: %s: %s\n", what, strerror(errno));
        exit(1);
}

/* ---- the client side (run as a child, under callgrind or not) ---------------------- */

static int client_noop(struct vfiod *c, long n)
{
        struct vfiod_stats st;

        for (long i = 0; i < n; i++) {
                int r = vfiod_stats(c, &st);

                if (r < 0)
                        return r;
        }
        return 0;
}

static int client_map(struct vfiod *c, long n)
{
        struct vfiod_lease lease;
        int memfd = -1, r;

        r = vfiod_acquire(c, DEVICE, 0, VFIOD_MODE_BROKERED, &lease);
        if (r < 0)
                return r;
        r = vfiod_memfd_create("bench", MAP_SIZE, &memfd);
        for (long i = 0; r >= 0 && i < n; i++) {
                struct vfiod_dma_range m = {.fd = memfd,
                                            .iova = 0x100000,
                                            .size = MAP_SIZE,
                                            .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE};
                struct vfiod_iova_range u = {.iova = 0x100000, .size = MAP_SIZE};

                r = vfiod_map_dma(c, lease.domain_id, &m, 1, NULL);
                if (r >= 0)
                        r = vfiod_unmap_dma(c, lease.domain_id, &u, 1, NULL);
        }
        if (memfd >= 0)
                close(memfd);
        vfiod_lease_close_fds(&lease);
        return r;
}

static int run_client(const char *kind, const char *sock, long n)
{
        struct vfiod *c = NULL;
        int r = vfiod_connect(sock, &c);

        if (r < 0) {
                fprintf(stderr, "bench-fake: connect: %s\n", strerror(-r));
                return 1;
        }
        if (strcmp(kind, "noop") == 0)
                r = client_noop(c, n);
        else if (strcmp(kind, "map") == 0)
                r = client_map(c, n);
        else
                r = -EINVAL;
        if (r < 0)
                fprintf(stderr, "bench-fake: %s: %s (%s)\n", kind, strerror(-r),
                        vfiod_last_error(c));
        vfiod_close(c);
        return r < 0 ? 1 : 0;
}

/* ---- running things ------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *log)
{
        pid_t pid = fork();

        if (pid < 0)
                die("fork");
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                if (fd >= 0) {
                        (void)dup2(fd, STDOUT_FILENO);
                        (void)dup2(fd, STDERR_FILENO);
                }
                (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static bool wait_ok(pid_t pid)
{
        int status = 0;

        return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* vfiod-fake, not under valgrind, on the tree setup_tree() made (not waited for). */
static pid_t start_native(const char *vfiod_fake)
{
        char log[300], root[300], conf[300], vfio[300];

        snprintf(log, sizeof(log), "%s/log.txt", tmpdir);
        snprintf(root, sizeof(root), "%s/root", tmpdir);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", tmpdir);
        snprintf(vfio, sizeof(vfio), "%s/root/dev/vfio", tmpdir);
        (void)unlink(sock_path);
        {
                char *argv[] = {(char *)vfiod_fake, "--socket", sock_path,    "--config", conf,
                                "--sysfs-root",     root,       "--vfio-dir", vfio,       NULL};

                return spawn(argv, log);
        }
}

/* The "totals:" (or "summary:") count of a callgrind output file; -1 if none. */
static double callgrind_total(const char *path)
{
        char line[512];
        double v = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "totals: %lf", &v) == 1 || sscanf(line, "summary: %lf", &v) == 1)
                        break;
        fclose(f);
        return v;
}

/*
 * One run: the daemon (under callgrind when daemon_side) serves one client
 * doing n requests of `kind` (under callgrind otherwise). Returns the
 * instructions counted, or -1.
 */
static double run_once(const char *vfiod_fake, const char *kind, long n, bool daemon_side)
{
        static unsigned serial;
        char out[512], opt_out[600], log[300], root[300], conf[300], vfio[300], nbuf[32];
        const char *toggle = strcmp(kind, "noop") == 0 ? "--toggle-collect=vfiod_stats"
                                                       : "--toggle-collect=vfiod_map_dma";
        pid_t daemon, client;
        double v;
        bool ok;

        snprintf(out, sizeof(out), "%s/callgrind.%s.%ld.%s.%u", tmpdir, kind, n,
                 daemon_side ? "daemon" : "client", serial++);
        snprintf(opt_out, sizeof(opt_out), "--callgrind-out-file=%s", out);
        snprintf(log, sizeof(log), "%s/log.txt", tmpdir);
        snprintf(root, sizeof(root), "%s/root", tmpdir);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", tmpdir);
        snprintf(vfio, sizeof(vfio), "%s/root/dev/vfio", tmpdir);
        snprintf(nbuf, sizeof(nbuf), "%ld", n);
        (void)unlink(sock_path);
        if (daemon_side) {
                /* Inside io_cb, the fake's DMA calls toggle counting off again. */
                char *argv[] = {"valgrind",
                                "--tool=callgrind",
                                "--toggle-collect=io_cb",
                                "--toggle-collect=kvfio_dma_map",
                                "--toggle-collect=kvfio_dma_unmap",
                                opt_out,
                                (char *)vfiod_fake,
                                "--socket",
                                sock_path,
                                "--config",
                                conf,
                                "--sysfs-root",
                                root,
                                "--vfio-dir",
                                vfio,
                                NULL};

                daemon = spawn(argv, log);
        } else
                daemon = start_native(vfiod_fake);
        if (bench_wait_vfiod(sock_path, daemon, 3000) < 0) {
                fprintf(stderr, "bench-fake: the daemon did not start (see %s)\n", log);
                kill(daemon, SIGKILL);
                (void)waitpid(daemon, NULL, 0);
                return -1;
        }
        if (daemon_side) {
                char *argv[] = {(char *)self, "--client", (char *)kind, sock_path, nbuf, NULL};

                client = spawn(argv, log);
        } else {
                /* vfiod_unmap_dma() is counted too: a second toggle. */
                char *argv[] = {"valgrind",
                                "--tool=callgrind",
                                (char *)toggle,
                                "--toggle-collect=vfiod_unmap_dma",
                                opt_out,
                                (char *)self,
                                "--client",
                                (char *)kind,
                                sock_path,
                                nbuf,
                                NULL};

                client = spawn(argv, log);
        }
        ok = wait_ok(client);
        kill(daemon, SIGTERM);
        ok = wait_ok(daemon) && ok;
        if (!ok) {
                fprintf(stderr, "bench-fake: the %s run of %ld failed (see %s)\n", kind, n, log);
                return -1;
        }
        v = callgrind_total(out);
        if (v < 0)
                fprintf(stderr, "bench-fake: no total in %s\n", out);
        return v;
}

/*
 * Instructions per request (cycle) of kind, from a run of n and one of 2n,
 * `reps` times into v[]. Returns false when a run failed.
 */
static bool per_op(const char *vfiod_fake, const char *kind, long n, bool daemon_side, double *v,
                   int reps)
{
        for (int i = 0; i < reps; i++) {
                double a = run_once(vfiod_fake, kind, n, daemon_side);
                double b = a < 0 ? -1 : run_once(vfiod_fake, kind, 2 * n, daemon_side);

                if (b < 0)
                        return false;
                v[i] = (b - a) / (double)n;
        }
        return true;
}

static bool row(const char *vfiod_fake, const char *kind, long n, bool daemon_side,
                const char *name, double target, const char *note)
{
        double v[REPS];
        int reps = daemon_side ? REPS : 1; /* the client's count does not vary */

        if (!per_op(vfiod_fake, kind, n, daemon_side, v, reps)) {
                bench_row_failed(stdout, name, "the callgrind run failed (see bench-fake' log)");
                return false;
        }
        bench_row_value(stdout, name, target, v, (size_t)reps, note);
        return true;
}

/* ---- pipelined against synchronous (timed) ---------------------------------------------- */

#define SLOTS 8 /* pages of the memfd, and IOVAs, the cycles go round */

static struct vfiod_dma_range slot_map(int memfd, long i)
{
        return (struct vfiod_dma_range){.fd = memfd,
                                        .offset = (uint64_t)(i % SLOTS) * MAP_SIZE,
                                        .iova = 0x100000 + (uint64_t)(i % SLOTS) * MAP_SIZE,
                                        .size = MAP_SIZE,
                                        .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE};
}

static int cycles_sync(struct vfiod *c, uint64_t dom, int memfd, long k)
{
        for (long i = 0; i < k; i++) {
                struct vfiod_dma_range m = slot_map(memfd, i);
                struct vfiod_iova_range u = {.iova = m.iova, .size = m.size};
                int r = vfiod_map_dma(c, dom, &m, 1, NULL);

                if (r >= 0)
                        r = vfiod_unmap_dma(c, dom, &u, 1, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Collects the oldest reply; its failure is the cycle's. */
static int collect_one(struct vfiod *c)
{
        struct vfiod_reply rep;
        int r = vfiod_collect(c, &rep);

        return r < 0 ? r : rep.result < 0 ? rep.result : 0;
}

/* k cycles, each a submitted map and unmap, `window` requests in flight at most. */
static int cycles_pipelined(struct vfiod *c, uint64_t dom, int memfd, long k, size_t window)
{
        int r = 0;

        for (long i = 0; r >= 0 && i < 2 * k; i++) {
                struct vfiod_dma_range m = slot_map(memfd, i / 2);
                struct vfiod_iova_range u = {.iova = m.iova, .size = m.size};

                if (vfiod_in_flight(c) == window)
                        r = collect_one(c);
                if (r >= 0)
                        r = i % 2 == 0 ? vfiod_submit_map_dma(c, dom, &m, 1, NULL)
                                       : vfiod_submit_unmap_dma(c, dom, &u, 1, NULL);
        }
        while (r >= 0 && vfiod_in_flight(c) > 0)
                r = collect_one(c);
        return r;
}

/* The row: pipelined cycles per second over synchronous ones, per round. */
static bool bench_pipelined(const char *vfiod_fake, int rounds, long k)
{
        const char *name = "pipelined vs sync 4 KiB map+unmap, thr. (host)";
        double ratio[64], a_ns[64], b_ns[64];
        struct vfiod_server_info info;
        struct vfiod_lease lease;
        struct vfiod *c = NULL;
        size_t window = 1;
        pid_t daemon = start_native(vfiod_fake);
        int memfd = -1, r = -ECHILD;

        if (bench_wait_vfiod(sock_path, daemon, 3000) < 0)
                goto out;
        r = vfiod_connect(sock_path, &c);
        if (r < 0)
                goto out;
        if (vfiod_get_server_info(c, &info) == 0 && info.limits.max_requests_in_flight > 0)
                window = info.limits.max_requests_in_flight;
        r = vfiod_acquire(c, DEVICE, 0, VFIOD_MODE_BROKERED, &lease);
        if (r < 0)
                goto out;
        vfiod_lease_close_fds(&lease);
        r = vfiod_memfd_create("bench", SLOTS * MAP_SIZE, &memfd);
        /* A warm-up of each. */
        if (r >= 0)
                r = cycles_sync(c, lease.domain_id, memfd, k / 10 + 1);
        if (r >= 0)
                r = cycles_pipelined(c, lease.domain_id, memfd, k / 10 + 1, window);
        for (int round = 0; r >= 0 && round < rounds; round++) {
                double t[2] = {0, 0};

                for (int side = 0; r >= 0 && side < 2; side++) {
                        /* Rounds alternate which side goes first. */
                        bool pipelined = (side + round) % 2 == 0;
                        double t0 = bench_now_ns();

                        r = pipelined ? cycles_pipelined(c, lease.domain_id, memfd, k, window)
                                      : cycles_sync(c, lease.domain_id, memfd, k);
                        t[pipelined ? 0 : 1] = (bench_now_ns() - t0) / (double)k;
                }
                a_ns[round] = t[0];
                b_ns[round] = t[1];
                ratio[round] = t[0] > 0 ? t[1] / t[0] : 0;
        }
out:
        if (r < 0) {
                char why[300];

                snprintf(why, sizeof(why), "%s (%s)", strerror(-r), c ? vfiod_last_error(c) : "");
                bench_row_failed(stdout, name, why);
        } else
                bench_row_ratio(stdout, name, true, 0, ratio, (size_t)rounds, a_ns, b_ns);
        if (memfd >= 0)
                close(memfd);
        vfiod_close(c);
        kill(daemon, SIGTERM);
        (void)waitpid(daemon, NULL, 0);
        return r >= 0;
}

static void setup_tree(void)
{
        char root[300], text[512];

        snprintf(root, sizeof(root), "%s/root", tmpdir);
        if (fakesys_add_pci(root, DEVICE, 1, "vfio-pci") < 0 ||
            fakesys_write(root, "dev/vfio/.keep", "") < 0)
                die("fake tree");
        snprintf(text, sizeof(text),
                 "[Daemon]\nAdminUsers=%u\n[Device bench]\nMatch=" DEVICE "\nUsers=%u\n",
                 (unsigned)getuid(), (unsigned)getuid());
        if (fakesys_write(tmpdir, "vfiod.conf", text) < 0)
                die("vfiod.conf");
        snprintf(sock_path, sizeof(sock_path), "%s/vfiod.sock", tmpdir);
        /* vfiod-fake's ioctl layer knows the device from the environment. */
        setenv("VFIOD_FAKE_DEVICES", "1=" DEVICE, 1);
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("NOTIFY_SOCKET");
        unsetenv("JOURNAL_STREAM");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"vfiod-fake", required_argument, NULL, 'v'},
            {"client", no_argument, NULL, 'c'},
            {"quick", no_argument, NULL, 'q'},
            {"rounds", required_argument, NULL, 'r'},
            {},
        };
        const char *vfiod_fake = NULL;
        bool client = false, quick = false;
        long n;
        int rounds = 21;
        bool ok;
        char note[256];
        int c;

        self = argv[0];
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'v':
                        vfiod_fake = optarg;
                        break;
                case 'c':
                        client = true;
                        break;
                case 'q':
                        quick = true;
                        break;
                case 'r':
                        rounds = atoi(optarg);
                        break;
                default:
                        return 2;
                }
        }
        if (client && argc - optind == 3)
                return run_client(argv[optind], argv[optind + 1], atol(argv[optind + 2]));
        if (!vfiod_fake || rounds < 1 || rounds > 64) {
                fprintf(stderr, "usage: bench-fake --vfiod-fake PATH [--quick] [--rounds N]\n");
                return 2;
        }
        if (quick && rounds > 5)
                rounds = 5;
        (void)signal(SIGPIPE, SIG_IGN);
        if (!mkdtemp(tmpdir))
                die("mkdtemp");
        setup_tree();
        n = quick ? 200 : 1000;
        /* Before the CPU is pinned: the daemon works while the client submits. */
        ok = bench_pipelined(vfiod_fake, rounds, quick ? 200 : 2000);
        /*
         * Everything on one CPU: the daemon then mostly finds the next request
         * only after its reply was read, rather than sometimes in the same
         * wake-up, which the count would show as noise.
         */
        bench_pin_to_one_cpu();

        snprintf(note, sizeof(note),
                 "Stats; callgrind, daemon's io_cb, (I(%ld)-I(%ld))/%ld, %d runs", 2 * n, n, n,
                 REPS);
        ok = row(vfiod_fake, "noop", n, true, "instructions/no-op request, daemon", BUDGET_NOOP,
                 note) &&
             ok;
        ok = row(vfiod_fake, "map", n, true, "instructions/4 KiB map+unmap, daemon", BUDGET_MAP,
                 "MapDma+UnmapDma, BROKERED, fake ioctl layer, same method") &&
             ok;
        ok = row(vfiod_fake, "noop", n, false, "instructions/no-op request, libvfiod", 0,
                 "vfiod_stats(), user space only") &&
             ok;
        ok = row(vfiod_fake, "map", n, false, "instructions/4 KiB map+unmap, libvfiod", 0,
                 "vfiod_map_dma()+vfiod_unmap_dma(), user space only") &&
             ok;
        if (!getenv("VFIOD_BENCH_KEEP") && ok) {
                char cmd[300];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-fake: cannot remove %s\n", tmpdir);
                return 0;
        }
        return 1;
}
