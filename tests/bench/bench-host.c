/* SPDX-License-Identifier: MIT */
/*
 * The host half of `make bench`: what going through vfiod costs compared to
 * doing it yourself, on the host with the fake sysfs tree (no VFIO node is
 * ever opened here).
 *
 *   bench-host --vfiod PATH [--rounds N] [--quick] [--only noop|memory|discovery]
 *
 * Rows (see bench-util.h for the format):
 * - no-op request round trip: libvfiod's vfiod_stats() (Stats, the cheapest
 *   real request: the daemon answers from its counters, touching neither
 *   sysfs nor VFIO; the benchmark is an admin through AdminUsers=) against a
 *   raw SOCK_SEQPACKET ping-pong between this process and a forked child in
 *   which every request carries one fd (SCM_RIGHTS; the child closes it) and
 *   the child answers with a 32-byte datagram. Within each round the two
 *   sides alternate in blocks of 50 requests, 40 blocks each; a round's
 *   ratio is the vfiod side's median block over the raw side's.
 * - start-up discovery: kvfio_pci_discover() (what vfiod's ListDevices and
 *   Acquire call) on a fake sysfs tree of 4,096 devices laid out as on a
 *   real system (modalias, driver and iommu_group links); median of runs
 *   after one warm-up.
 * - memory per idle connection: vfiod's VmRSS (and Pss) before and after
 *   10,000 connections that said Hello and stay idle, divided by 10,000.
 *
 * All of it runs pinned to one CPU (see pin_to_one_cpu()). Exits 1 only when
 * a comparison could not run at all.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/vfiod.h"
#include "kernel/sysfs.h"
#include "tests/bench/bench-util.h"

#define MEM_CONNECTIONS 10000

static char tmpdir[] = "/tmp/vfiod-bench-XXXXXX";
static char sock_path[256], conf_path[256], log_path[256];
static pid_t vfiod_pid = -1;
static bool quick;

static void die(const char *what)
{
        fprintf(stderr, "bench-host: %s: %s\n", what, strerror(errno));
        exit(1);
}

/* ---- files ------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
        char buf[4096];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
                die(path);
        close(fd);
}

static void rm_rf(const char *path)
{
        pid_t pid = fork();

        if (pid == 0) {
                execlp("rm", "rm", "-rf", path, (char *)NULL);
                _exit(127);
        }
        if (pid > 0)
                (void)waitpid(pid, NULL, 0);
}

/* ---- vfiod ------------------------------------------------------------------- */

static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static int start_vfiod(const char *vfiod)
{
        char root[300], vfio[300];
        char conf[256];
        int r;

        snprintf(root, sizeof(root), "%s/empty-root/sys/bus/pci/devices", tmpdir);
        if (mkdir_p(root) < 0)
                die(root);
        snprintf(root, sizeof(root), "%s/empty-root", tmpdir);
        snprintf(vfio, sizeof(vfio), "%s/vfio", tmpdir);
        if (mkdir_p(vfio) < 0)
                die(vfio);
        snprintf(sock_path, sizeof(sock_path), "%s/vfiod.sock", tmpdir);
        snprintf(conf_path, sizeof(conf_path), "%s/vfiod.conf", tmpdir);
        snprintf(log_path, sizeof(log_path), "%s/vfiod.log", tmpdir);
        snprintf(conf, sizeof(conf),
                 "[Daemon]\nAdminUsers=%u\nMaxConnections=%u\nMaxConnectionsPerUser=%u\n",
                 (unsigned)getuid(), MEM_CONNECTIONS + 16, MEM_CONNECTIONS + 16);
        write_file(conf_path, conf);

        vfiod_pid = fork();
        if (vfiod_pid < 0)
                die("fork");
        if (vfiod_pid == 0) {
                int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                if (log >= 0)
                        dup2(log, STDERR_FILENO);
                (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                unsetenv("NOTIFY_SOCKET");
                unsetenv("JOURNAL_STREAM");
                execl(vfiod, vfiod, "--socket", sock_path, "--config", conf_path, "--sysfs-root",
                      root, "--vfio-dir", vfio, (char *)NULL);
                _exit(127);
        }
        r = bench_wait_vfiod(sock_path, vfiod_pid, 500);
        if (r == -ECHILD)
                vfiod_pid = -1;
        return r;
}

static void stop_vfiod(void)
{
        if (vfiod_pid <= 0)
                return;
        kill(vfiod_pid, SIGTERM);
        (void)waitpid(vfiod_pid, NULL, 0);
        vfiod_pid = -1;
}

/* ---- no-op round trip ------------------------------------------------------- */

static int stats_op(void *userdata)
{
        struct vfiod_stats st;

        return vfiod_stats(userdata, &st);
}

static int bench_noop_host(int rounds)
{
        const char *name = "no-op round trip (host)";
        struct vfiod *c = NULL;
        int r;

        r = vfiod_connect(sock_path, &c);
        if (r < 0) {
                bench_row_failed(stdout, name, "cannot connect to vfiod");
                return r;
        }
        r = bench_noop(name, 1.3, stats_op, c, rounds, quick ? 400 : 2000);
        vfiod_close(c);
        return r;
}

/* ---- discovery -------------------------------------------------------------- */

static void make_link(const char *target, const char *path)
{
        if (symlink(target, path) < 0 && errno != EEXIST)
                die(path);
}

/* 4,096 devices as on a real system: folders under sys/devices, links elsewhere. */
static void build_tree(const char *root)
{
        char p[1024], t[1024];

        snprintf(p, sizeof(p), "%s/sys/bus/pci/devices", root);
        if (mkdir_p(p) < 0)
                die(p);
        snprintf(p, sizeof(p), "%s/sys/bus/pci/drivers/vfio-pci", root);
        if (mkdir_p(p) < 0)
                die(p);
        snprintf(p, sizeof(p), "%s/sys/bus/pci/drivers/e1000e", root);
        if (mkdir_p(p) < 0)
                die(p);
        for (int bus = 0; bus < 16; bus++)
                for (int slot = 0; slot < 32; slot++)
                        for (int fn = 0; fn < 8; fn++) {
                                int group = bus * 256 + slot * 8 + fn;
                                char bdf[KVFIO_BDF_MAX], dev[512];

                                snprintf(bdf, sizeof(bdf), "0000:%02x:%02x.%x", bus, slot, fn);
                                snprintf(dev, sizeof(dev), "%s/sys/devices/pci0000:00/%s", root,
                                         bdf);
                                if (mkdir_p(dev) < 0)
                                        die(dev);
#define FILE_AT(name, text)                                 \
        do {                                                \
                snprintf(p, sizeof(p), "%s/%s", dev, name); \
                write_file(p, text);                        \
        } while (0)
                                FILE_AT("vendor", "0x8086\n");
                                FILE_AT("device", "0x10d3\n");
                                snprintf(t, sizeof(t), "0x%06x\n", 0x020000 + fn);
                                FILE_AT("class", t);
                                FILE_AT("subsystem_vendor", "0x1af4\n");
                                FILE_AT("subsystem_device", "0x1100\n");
                                FILE_AT("driver_override", "(null)\n");
                                snprintf(
                                    t, sizeof(t),
                                    "pci:v00008086d000010D3sv00001AF4sd00001100bc02sc00i%02X\n",
                                    fn);
                                FILE_AT("modalias", t);
#undef FILE_AT
                                snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s", root, bdf);
                                snprintf(t, sizeof(t), "../../../devices/pci0000:00/%s", bdf);
                                make_link(t, p);
                                snprintf(p, sizeof(p), "%s/driver", dev);
                                snprintf(t, sizeof(t), "../../../bus/pci/drivers/%s",
                                         fn % 2 ? "vfio-pci" : "e1000e");
                                make_link(t, p);
                                snprintf(p, sizeof(p), "%s/sys/kernel/iommu_groups/%d/devices",
                                         root, group);
                                if (mkdir_p(p) < 0)
                                        die(p);
                                snprintf(p, sizeof(p), "%s/sys/kernel/iommu_groups/%d/devices/%s",
                                         root, group, bdf);
                                snprintf(t, sizeof(t), "../../../../devices/pci0000:00/%s", bdf);
                                make_link(t, p);
                                snprintf(p, sizeof(p), "%s/iommu_group", dev);
                                snprintf(t, sizeof(t), "../../../kernel/iommu_groups/%d", group);
                                make_link(t, p);
                        }
}

static int bench_discovery(void)
{
        const char *name = "start-up discovery, 4096 devices (ms)";
        const int runs = quick ? 3 : 9;
        double ms[16];
        char root[300], note[128];

        snprintf(root, sizeof(root), "%s/tree", tmpdir);
        build_tree(root);
        for (int run = -1; run < runs; run++) { /* run -1 warms the dentry cache */
                struct kvfio_pci_list *list = NULL;
                double t0 = bench_now_ns();
                int r = kvfio_pci_discover(root, &list);
                double t = (bench_now_ns() - t0) / 1e6;

                if (r < 0 || list->n != 4096) {
                        bench_row_failed(stdout, name, "discovery failed or miscounted");
                        kvfio_pci_list_free(list);
                        return -EIO;
                }
                kvfio_pci_list_free(list);
                if (run >= 0)
                        ms[run] = t;
        }
        snprintf(note, sizeof(note), "kvfio_pci_discover(), modalias layout, %d runs", runs);
        bench_row_value(stdout, name, 100, ms, (size_t)runs, note);
        return 0;
}

/* ---- memory per idle connection --------------------------------------------- */

/* VmRSS of /proc/PID/status and Pss of smaps_rollup, in KiB. */
static int read_mem(pid_t pid, double *ret_rss, double *ret_pss)
{
        char path[64], line[256];
        FILE *f;

        *ret_rss = *ret_pss = -1;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %lf kB", ret_rss) == 1)
                        break;
        fclose(f);
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        if (sscanf(line, "Pss: %lf kB", ret_pss) == 1)
                                break;
                fclose(f);
        }
        return *ret_rss >= 0 ? 0 : -EIO;
}

static int bench_memory(void)
{
        const char *name = "memory per idle connection (KiB)";
        const int n = quick ? 1000 : MEM_CONNECTIONS;
        struct vfiod **conns = calloc((size_t)n, sizeof(*conns));
        double rss0, pss0, rss1, pss1, per;
        struct vfiod_stats st;
        char note[256];
        int r = 0, opened = 0;

        if (!conns)
                die("calloc");
        /* Baseline after a connection came and went (the daemon's first allocations). */
        {
                struct vfiod *c = NULL;

                if (vfiod_connect(sock_path, &c) == 0) {
                        (void)vfiod_stats(c, &st);
                        vfiod_close(c);
                }
                usleep(100000);
        }
        if (read_mem(vfiod_pid, &rss0, &pss0) < 0) {
                bench_row_failed(stdout, name, "cannot read vfiod's memory figures");
                free(conns);
                return -EIO;
        }
        for (; opened < n; opened++) {
                r = vfiod_connect(sock_path, &conns[opened]);
                if (r < 0)
                        break;
        }
        if (opened < n) {
                snprintf(note, sizeof(note), "only %d of %d connections: %s", opened, n,
                         strerror(-r));
                bench_row_failed(stdout, name, note);
                r = -EIO;
                goto out;
        }
        /* Every Hello was answered, so the daemon holds them all; let it settle. */
        usleep(200000);
        if (read_mem(vfiod_pid, &rss1, &pss1) < 0 || vfiod_stats(conns[0], &st) < 0) {
                bench_row_failed(stdout, name, "cannot read vfiod's memory figures");
                r = -EIO;
                goto out;
        }
        per = (rss1 - rss0) / n;
        snprintf(note, sizeof(note),
                 "%u clients; VmRSS %.1f -> %.1f MiB, Pss %+.2f KiB/conn (kernel socket "
                 "buffers not included)",
                 st.clients, rss0 / 1024, rss1 / 1024, (pss1 - pss0) / n);
        bench_row_value(stdout, name, 8, &per, 1, note);
out:
        for (int i = 0; i < opened; i++)
                vfiod_close(conns[i]);
        free(conns);
        return r;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"vfiod", required_argument, NULL, 'v'},
            {"rounds", required_argument, NULL, 'r'},
            {"quick", no_argument, NULL, 'q'},
            {"only", required_argument, NULL, 'o'},
            {},
        };
        const char *vfiod = NULL, *only = NULL;
        int rounds = 21, c, failed = 0;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'v':
                        vfiod = optarg;
                        break;
                case 'r':
                        rounds = atoi(optarg);
                        break;
                case 'q':
                        quick = true;
                        break;
                case 'o':
                        only = optarg;
                        break;
                default:
                        return 2;
                }
        }
        if (!vfiod || rounds < 1 || rounds > 1000) {
                fprintf(stderr, "usage: bench-host --vfiod PATH [--rounds N] [--quick] "
                                "[--only noop|memory|discovery]\n");
                return 2;
        }
        if (quick && rounds > 5)
                rounds = 5;
        (void)signal(SIGPIPE, SIG_IGN);
        raise_nofile();
        /*
         * Every process of the benchmark (this one, vfiod, the raw side's
         * child inherit it) on one CPU: both sides then pay the same kind of
         * switch per round trip, rather than whatever the scheduler's
         * placement and an idle CPU's wake-up latency (tens of microseconds
         * in a virtual machine) make of each.
         */
        bench_pin_to_one_cpu();
        if (!mkdtemp(tmpdir))
                die("mkdtemp");

#define WANT(x) (!only || strcmp(only, x) == 0)
        if (!WANT("noop") && !WANT("memory"))
                ;
        else if (start_vfiod(vfiod) < 0) {
                bench_row_failed(stdout, "no-op round trip (host)", "vfiod did not start");
                bench_row_failed(stdout, "memory per idle connection (KiB)", "vfiod did not start");
                failed += 2;
        } else {
                if (WANT("noop"))
                        failed += bench_noop_host(rounds) < 0;
                if (WANT("memory"))
                        failed += bench_memory() < 0;
        }
        stop_vfiod();
        if (WANT("discovery"))
                failed += bench_discovery() < 0;
#undef WANT
        rm_rf(tmpdir);
        return failed ? 1 : 0;
}
