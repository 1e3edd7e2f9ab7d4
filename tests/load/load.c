/* SPDX-License-Identifier: MIT */
/*
 * Load generator: vfiod-fake (vfiod on the fake ioctl layer) under many
 * clients at once. `make load` runs it (as root: it raises RLIMIT_NOFILE for
 * itself and the daemon).
 *
 *   load-vfiod VFIOD-FAKE [CLIENTS [REQUESTS [IDLE [LEASERS [DEVICES]]]]]
 *
 * defaults 1000 clients x 1000 requests, 10000 idle connections, 16 leasing
 * clients, as many devices. The fake sysfs tree holds DEVICES PCI devices
 * bound to vfio-pci (one IOMMU group each, the policy allows them all).
 * Phase 1 opens IDLE connections (each says Hello) and keeps them; phase 2
 * runs CLIENTS clients at once, each sending REQUESTS requests one after the
 * other (a reply before the next request), while the idle ones stay: the
 * first LEASERS clients each lease a device of their own (BROKERED) and
 * cycle Acquire (into a new domain, which goes with the lease), 4 x (MapDma
 * of a sealed memfd, UnmapDma), Release; the others cycle through 10
 * requests: 3 ListDevices (a page of 32 devices, then twice one device,
 * each time from another place of the tree), 5 Stats, CreateDomain and
 * DestroyDomain. Every reply must be
 * the success body (an Error counts as an error). It prints the latency of
 * every request (p50, p99, max), the wall time, and the daemon's RSS and fd
 * count before, during and after, then "1 passed, 0 failed" (or "0 passed,
 * 1 failed": any error, a dropped connection, or the daemon not back to its
 * fd count and near its RSS at the end).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "proto/transport.h"
#include "tests/fakesys.h"

static char root[256], sock_path[108];
static pid_t daemon_pid;

static void die(const char *what)
{
        fprintf(stderr, "load-vfiod: %s: %s\n", what, strerror(errno));
        if (daemon_pid > 0)
                kill(daemon_pid, SIGKILL);
        exit(2);
}

static double now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- the fake sysfs tree ------------------------------------------------------ */

static void put(const char *rel, const char *text)
{
        if (fakesys_write(root, rel, text) < 0)
                die(rel);
}

/* The PCI address of device i of the tree: 256 a bus. */
static void device_name(int i, char bdf[static 16])
{
        snprintf(bdf, 16, "0000:%02x:%02x.%d", (i / 256) & 0xff, (i / 8) % 32, i % 8);
}

static void add_device(const char *bdf, int group)
{
        if (fakesys_add_pci(root, bdf, group, "vfio-pci") < 0)
                die(bdf);
}

/* ---- the daemon ------------------------------------------------------------------- */

/*
 * The daemon's fds, not counting pipe read ends: the fake ioctl layer keeps
 * one per VFIO object it handed out and closes it only at its next call after
 * the object is gone (tests/daemon/fake-kernel.h), so those linger after a
 * release. Every other fd counts (the fake's VFIO fds are pipe write ends).
 */
static bool pipe_read_end(const char *fd)
{
        char path[320], target[64], line[128];
        unsigned flags = 0;
        bool read_only = false;
        ssize_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)daemon_pid, fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        if (strncmp(target, "pipe:", 5) != 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)daemon_pid, fd);
        f = fopen(path, "re");
        if (!f)
                return false;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "flags: %o", &flags) == 1) {
                        read_only = (flags & O_ACCMODE) == O_RDONLY;
                        break;
                }
        fclose(f);
        return read_only;
}

static int daemon_fds(void)
{
        char path[64];
        DIR *d;
        struct dirent *de;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_pid);
        d = opendir(path);
        if (!d)
                die(path);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.' && !pipe_read_end(de->d_name);
        closedir(d);
        return n;
}

static long daemon_rss_kb(void)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_pid);
        f = fopen(path, "re");
        if (!f)
                die(path);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

static void start_daemon(const char *exe, int devices, int leasers, int max_conn)
{
        char conf[300], vfio[300], log[300], text[4096], *env;
        size_t envlen = 0;
        const char *tmp = getenv("TMPDIR");

        snprintf(root, sizeof(root), "%s/vfiod-load.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(root))
                die("mkdtemp");
        put("dev/vfio/.keep", "");
        env = calloc((size_t)leasers, 32);
        if (!env)
                die("calloc");
        /* Every device of the tree: the fake sysfs's vendor. */
        snprintf(text, sizeof(text),
                 "[Daemon]\nMaxConnections=%d\nMaxConnectionsPerUser=%d\n"
                 "MaxLeasesPerClient=1\n[Device load]\nMatchVendor=1234:*\nUsers=0\n",
                 max_conn, max_conn);
        for (int i = 0; i < devices; i++) {
                char bdf[16];

                device_name(i, bdf);
                add_device(bdf, i + 1);
                /* The fake ioctl layer knows the devices that are leased. */
                if (i < leasers)
                        envlen +=
                            (size_t)sprintf(env + envlen, "%s%d=%s", i ? " " : "", i + 1, bdf);
        }
        put("vfiod.conf", text);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", root);
        snprintf(vfio, sizeof(vfio), "%s/dev/vfio", root);
        snprintf(log, sizeof(log), "%s/vfiod.log", root);
        if (strlen(root) + 16 >= sizeof(sock_path))
                die("socket path too long");
        snprintf(sock_path, sizeof(sock_path), "%s/vfiod.sock", root);
        daemon_pid = fork();
        if (daemon_pid < 0)
                die("fork");
        if (daemon_pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                struct rlimit rl;

                if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(126);
                /* As much as it may: the fake holds two fds per VFIO object. */
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
                /* Never outlive the test, whatever happens to it. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                setenv("VFIOD_FAKE_DEVICES", env, 1);
                unsetenv("LISTEN_FDS");
                unsetenv("NOTIFY_SOCKET");
                unsetenv("JOURNAL_STREAM");
                execl(exe, "vfiod", "--socket", sock_path, "--config", conf, "--sysfs-root", root,
                      "--vfio-dir", vfio, (char *)NULL);
                _exit(127);
        }
        free(env);
        for (int i = 0; i < 500; i++) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r;

                memcpy(sa.sun_path, sock_path, sizeof(sock_path));
                r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                close(fd);
                if (r == 0)
                        return;
                if (waitpid(daemon_pid, NULL, WNOHANG) != 0) {
                        fprintf(stderr, "load-vfiod: vfiod-fake exited; see %s\n", log);
                        exit(2);
                }
                usleep(10000);
        }
        die("the daemon does not answer");
}

/* ---- clients ------------------------------------------------------------------------ */

struct client {
        int fd;
        int n;       /* requests answered */
        int step;    /* position in the cycle */
        bool device; /* leases a device of its own */
        char bdf[32];
        uint64_t lease, domain, id;
        double sent_at;
};

#define LIST_PAGE 32 /* devices a paged ListDevices asks for */

static int memfd_fd = -1;
static int tree_devices;     /* devices in the fake tree */
static unsigned long listed; /* ListDevices sent: the next one asks for device listed % tree */
static double *lat;
static size_t n_lat;
static long errors;

static int connect_one(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        if (fd < 0)
                die("socket");
        memcpy(sa.sun_path, sock_path, sizeof(sock_path));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect");
        return fd;
}

static void send_or_die(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        int r = vfiod_msg_send(fd, env, fds, n_fds);

        if (r < 0) {
                errno = -r;
                die("send");
        }
}

static struct vfiod_msg *recv_or_die(int fd)
{
        struct vfiod_msg *m = NULL;
        const char *reason = NULL;
        int r = vfiod_msg_recv(fd, 0, &m, &reason);

        if (r != 1) {
                fprintf(stderr, "load-vfiod: receive: %d %s\n", r, reason ? reason : "");
                errors++;
                return NULL;
        }
        return m;
}

static void hello(int fd)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        send_or_die(fd, &env, NULL, 0);
        m = recv_or_die(fd);
        if (!m || m->env->body_case != VFIOD__ENVELOPE__BODY_HELLO_REPLY)
                errors++;
        vfiod_msg_free(m);
}

/* Sends the client's next request. */
static void next_request(struct client *c)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__DmaRange r = VFIOD__DMA_RANGE__INIT, *rs[] = {&r};
        Vfiod__UnmapDma un = VFIOD__UNMAP_DMA__INIT;
        Vfiod__IovaRange u = VFIOD__IOVA_RANGE__INIT, *us[] = {&u};
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__CreateDomain cd = VFIOD__CREATE_DOMAIN__INIT;
        Vfiod__DestroyDomain dd = VFIOD__DESTROY_DOMAIN__INIT;
        Vfiod__Stats st = VFIOD__STATS__INIT;
        char list_bdf[16];
        bool with_fd = false;

        if (c->device) {
                /* Acquire, 4 x (MapDma, UnmapDma), Release. */
                int s = c->step % 10;

                if (s == 0) {
                        /* A new domain each time: it goes with the lease. */
                        a.domain_id = 0;
                        a.device = c->bdf;
                        a.mode = VFIOD__MODE__MODE_BROKERED;
                        env = ENVELOPE(acquire, &a);
                } else if (s == 9) {
                        rel.lease_id = c->lease;
                        env = ENVELOPE(release, &rel);
                } else if (s % 2 == 1) {
                        r.iova = 0x100000;
                        r.size = 0x2000;
                        r.readable = r.writable = 1;
                        map.domain_id = c->domain;
                        map.n_ranges = 1;
                        map.ranges = rs;
                        env = ENVELOPE(map_dma, &map);
                        with_fd = true;
                } else {
                        u.iova = 0x100000;
                        u.size = 0x2000;
                        un.domain_id = c->domain;
                        un.n_ranges = 1;
                        un.ranges = us;
                        env = ENVELOPE(unmap_dma, &un);
                }
        } else {
                /* ListDevices, Stats, and now and then a domain made and destroyed. */
                switch (c->step % 10) {
                case 0:
                        /* A page of the list, after a device that goes round the tree. */
                        device_name((int)(listed++ % (unsigned long)tree_devices), list_bdf);
                        ld.after = list_bdf;
                        ld.limit = LIST_PAGE;
                        env = ENVELOPE(list_devices, &ld);
                        break;
                case 4:
                case 8:
                        device_name((int)(listed++ % (unsigned long)tree_devices), list_bdf);
                        ld.device = list_bdf;
                        env = ENVELOPE(list_devices, &ld);
                        break;
                case 2:
                        env = ENVELOPE(create_domain, &cd);
                        break;
                case 3:
                        dd.domain_id = c->domain;
                        env = ENVELOPE(destroy_domain, &dd);
                        break;
                default:
                        env = ENVELOPE(stats, &st);
                        break;
                }
        }
        env.id = ++c->id;
        c->sent_at = now_ms();
        send_or_die(c->fd, &env, with_fd ? &memfd_fd : NULL, with_fd ? 1 : 0);
}

/* Handles the reply; false when it is not the request's success body. */
static bool on_reply(struct client *c, struct vfiod_msg *m)
{
        const Vfiod__Envelope *e = m->env;

        lat[n_lat++] = now_ms() - c->sent_at;
        if (e->id != c->id || e->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                if (e->body_case == VFIOD__ENVELOPE__BODY_ERROR && errors < 10)
                        fprintf(stderr, "load-vfiod: error: %s\n", e->error->reason);
                return false;
        }
        if (e->body_case == VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY) {
                c->lease = e->acquire_reply->lease_id;
                c->domain = e->acquire_reply->domain_id;
        } else if (e->body_case == VFIOD__ENVELOPE__BODY_CREATE_DOMAIN_REPLY)
                c->domain = e->create_domain_reply->domain_id;
        return true;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* The soft limit to n (the daemon, a child, inherits it); the hard one too if need be. */
static void raise_nofile(rlim_t n)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                die("getrlimit");
        if (rl.rlim_max < n)
                rl.rlim_max = n;
        rl.rlim_cur = n;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                die("setrlimit(RLIMIT_NOFILE) (the hard limit is too low; run as root)");
}

int main(int argc, char **argv)
{
        int clients = argc > 2 ? atoi(argv[2]) : 1000;
        int requests = argc > 3 ? atoi(argv[3]) : 1000;
        int idle = argc > 4 ? atoi(argv[4]) : 10000;
        int leasers = argc > 5 ? atoi(argv[5]) : 16;
        int devices = argc > 6 ? atoi(argv[6]) : leasers;
        struct client *cs;
        int *idle_fds, ep, live, fds0, fds_idle, fds_busy = 0, fds_after = -1;
        long rss0, rss_idle, rss_busy = 0, rss_after = -1;
        double t0, t_idle, t_busy, wall;
        unsigned long rounds = 0;
        bool ok;

        if (argc < 2 || clients < 1 || requests < 1 || idle < 0 || leasers < 1 || leasers > 1000 ||
            leasers > clients || devices < leasers || devices > 65536) {
                fprintf(stderr,
                        "usage: %s VFIOD-FAKE [CLIENTS [REQUESTS [IDLE [LEASERS [DEVICES]]]]]\n",
                        argv[0]);
                return 2;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        /* Our ends of every connection; the daemon, which inherits it, has the others. */
        raise_nofile((rlim_t)(idle + clients) + 1024);
        tree_devices = devices;
        start_daemon(argv[1], devices, leasers, idle + clients + 16);
        /* Written, as MapDma wants: the daemon maps no range with a hole. */
        memfd_fd = memfd_create("load", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd_fd < 0 || pwrite(memfd_fd, (char[0x2000]){0}, 0x2000, 0) != 0x2000 ||
            fcntl(memfd_fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
                die("memfd");
        lat = malloc(sizeof(*lat) * ((size_t)clients * (size_t)requests + 1));
        cs = calloc((size_t)clients, sizeof(*cs));
        idle_fds = calloc((size_t)idle + 1, sizeof(int));
        if (!lat || !cs || !idle_fds)
                die("malloc");
        usleep(100000);
        fds0 = daemon_fds();
        rss0 = daemon_rss_kb();
        printf("load: vfiod-fake pid %d, %d devices, %d of %d clients lease one; before: RSS %ld "
               "KiB, %d fds\n",
               (int)daemon_pid, devices, leasers, clients, rss0, fds0);

        /* Phase 1: idle connections, each past Hello. */
        t0 = now_ms();
        for (int i = 0; i < idle; i++) {
                idle_fds[i] = connect_one();
                hello(idle_fds[i]);
        }
        t_idle = now_ms() - t0;
        fds_idle = daemon_fds();
        rss_idle = daemon_rss_kb();
        printf("load: %d idle connections in %.1f s: RSS %ld KiB, %d fds\n", idle, t_idle / 1e3,
               rss_idle, fds_idle);

        /* Phase 2: the busy clients, one request in flight each. */
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0)
                die("epoll");
        for (int i = 0; i < clients; i++) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};

                cs[i].fd = connect_one();
                hello(cs[i].fd);
                cs[i].id = 1;
                cs[i].device = i < leasers;
                device_name(i, cs[i].bdf);
                if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
                        die("epoll_ctl");
        }
        t0 = now_ms();
        for (int i = 0; i < clients; i++)
                next_request(&cs[i]);
        live = clients;
        while (live > 0) {
                struct epoll_event evs[256];
                int n = epoll_wait(ep, evs, 256, 10000);

                if (n <= 0) {
                        fprintf(stderr, "load-vfiod: no reply in 10 s\n");
                        errors++;
                        break;
                }
                for (int k = 0; k < n; k++) {
                        struct client *c = evs[k].data.ptr;
                        struct vfiod_msg *m = recv_or_die(c->fd);

                        if (!m) {
                                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                                live--;
                                continue;
                        }
                        if (!on_reply(c, m))
                                errors++;
                        vfiod_msg_free(m);
                        c->step++;
                        if (++c->n == requests) {
                                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                                live--;
                                continue;
                        }
                        next_request(c);
                }
                if (++rounds % 2000 == 0) {
                        long rss = daemon_rss_kb();
                        int fds = daemon_fds();

                        if (rss > rss_busy)
                                rss_busy = rss;
                        if (fds > fds_busy)
                                fds_busy = fds;
                }
        }
        t_busy = now_ms() - t0;
        wall = t_busy;
        close(ep);
        /* A device client ends after a MapDma cycle: its lease goes with its connection. */
        for (int i = 0; i < clients; i++)
                close(cs[i].fd);
        for (int i = 0; i < idle; i++)
                close(idle_fds[i]);
        for (int i = 0; i < 500; i++) {
                usleep(20000);
                fds_after = daemon_fds();
                if (fds_after <= fds0)
                        break;
        }
        usleep(200000);
        fds_after = daemon_fds();
        rss_after = daemon_rss_kb();
        qsort(lat, n_lat, sizeof(*lat), cmp_double);
        printf("load: %d clients x %d requests = %zu requests in %.1f s (%.0f/s), %ld errors\n",
               clients, requests, n_lat, wall / 1e3, (double)n_lat / (wall / 1e3), errors);
        if (n_lat)
                printf("load: latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", lat[n_lat / 2],
                       lat[n_lat * 99 / 100], lat[n_lat - 1]);
        printf("load: daemon RSS before %ld KiB, with %d idle %ld KiB, busy max %ld KiB, after "
               "%ld KiB\n",
               rss0, idle, rss_idle, rss_busy, rss_after);
        printf("load: daemon fds  before %d, with %d idle %d, busy max %d, after %d\n", fds0, idle,
               fds_idle, fds_busy, fds_after);
        ok = errors == 0 && n_lat == (size_t)clients * (size_t)requests && fds_after == fds0 &&
             rss_after < rss_idle + 64 * 1024;
        kill(daemon_pid, SIGTERM);
        {
                int status = 0;

                waitpid(daemon_pid, &status, 0);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        printf("load: vfiod-fake exited with status 0x%x\n", status);
                        ok = false;
                }
        }
        if (ok) {
                char cmd[300];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
                if (system(cmd) != 0)
                        fprintf(stderr, "load-vfiod: cannot remove %s\n", root);
        } else
                printf("load: FAILED; the daemon's log is in %s/vfiod.log\n", root);
        printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
        return ok ? 0 : 1;
}
