/* SPDX-License-Identifier: MIT */
/*
 * The instruction budget of `make bench`: instructions per request, counted
 * by valgrind's callgrind on the host against the fake ioctl layer
 * (tests/daemon/vfiod-fake). A count is the same on any machine and under
 * any load, unlike a time.
 *
 *   bench-insns --vfiod-fake PATH [--quick]
 *   bench-insns --client noop|map|map-pipelined SOCKET N   (run by the above)
 *
 * Rows (see bench-util.h for the format):
 * - daemon, no-op request: Stats (answered from the daemon's counters).
 * - daemon, MapDma+UnmapDma 4 KiB: one 4 KiB range of a sealed memfd mapped
 *   and unmapped on a BROKERED lease (two requests, one cycle).
 * - libvfiod, the same two: the client's side of each (vfiod_stats(), and
 *   vfiod_map_dma() + vfiod_unmap_dma()).
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
#include <sched.h>
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

static char tmpdir[] = "/tmp/vfiod-insns-XXXXXX";
static char sock_path[100];
static const char *self;

static void die(const char *what)
{
        fprintf(stderr, "bench-insns: %s: %s\n", what, strerror(errno));
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
                fprintf(stderr, "bench-insns: connect: %s\n", strerror(-r));
                return 1;
        }
        if (strcmp(kind, "noop") == 0)
                r = client_noop(c, n);
        else if (strcmp(kind, "map") == 0)
                r = client_map(c, n);
        else
                r = -EINVAL;
        if (r < 0)
                fprintf(stderr, "bench-insns: %s: %s (%s)\n", kind, strerror(-r),
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

/* Waits until the socket accepts a connection (valgrind starts slowly). */
static int wait_socket(pid_t daemon)
{
        for (int i = 0; i < 3000; i++) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r;

                memcpy(sa.sun_path, sock_path, sizeof(sock_path));
                r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                close(fd);
                if (r == 0)
                        return 0;
                if (waitpid(daemon, NULL, WNOHANG) == daemon)
                        return -ECHILD;
                usleep(10000);
        }
        return -ETIMEDOUT;
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
        } else {
                char *argv[] = {(char *)vfiod_fake, "--socket", sock_path,    "--config", conf,
                                "--sysfs-root",     root,       "--vfio-dir", vfio,       NULL};

                daemon = spawn(argv, log);
        }
        if (wait_socket(daemon) < 0) {
                fprintf(stderr, "bench-insns: the daemon did not start (see %s)\n", log);
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
                fprintf(stderr, "bench-insns: the %s run of %ld failed (see %s)\n", kind, n, log);
                return -1;
        }
        v = callgrind_total(out);
        if (v < 0)
                fprintf(stderr, "bench-insns: no total in %s\n", out);
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
                bench_row_failed(stdout, name, "the callgrind run failed (see bench-insns' log)");
                return false;
        }
        bench_row_value(stdout, name, target, v, (size_t)reps, note);
        return true;
}

/*
 * Everything on one CPU: the daemon then mostly finds the next request only
 * after its reply was read, as on a busy machine, rather than sometimes in
 * the same wake-up, which the count would show as noise.
 */
static void pin_to_one_cpu(void)
{
        cpu_set_t set;
        int cpu = sched_getcpu();

        if (cpu < 0)
                return;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void)sched_setaffinity(0, sizeof(set), &set);
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
            {},
        };
        const char *vfiod_fake = NULL;
        bool client = false, quick = false;
        long n;
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
                default:
                        return 2;
                }
        }
        if (client && argc - optind == 3)
                return run_client(argv[optind], argv[optind + 1], atol(argv[optind + 2]));
        if (!vfiod_fake) {
                fprintf(stderr, "usage: bench-insns --vfiod-fake PATH [--quick]\n");
                return 2;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        if (!mkdtemp(tmpdir))
                die("mkdtemp");
        setup_tree();
        n = quick ? 200 : 1000;
        pin_to_one_cpu();

        snprintf(note, sizeof(note),
                 "Stats; callgrind, daemon's io_cb, (I(%ld)-I(%ld))/%ld, %d runs", 2 * n, n, n,
                 REPS);
        ok = row(vfiod_fake, "noop", n, true, "instructions/no-op request, daemon", BUDGET_NOOP,
                 note);
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
                        fprintf(stderr, "bench-insns: cannot remove %s\n", tmpdir);
                return 0;
        }
        return 1;
}
