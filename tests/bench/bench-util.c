/* SPDX-License-Identifier: MIT */
#include "tests/bench/bench-util.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client-lib/vfiod.h"

static int safe_close_fd(int fd)
{
        if (fd >= 0)
                close(fd);
        return -1;
}

void bench_pin_to_one_cpu(void)
{
        cpu_set_t set;
        int cpu = sched_getcpu();

        if (cpu < 0)
                return;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void)sched_setaffinity(0, sizeof(set), &set);
}

int bench_wait_vfiod(const char *sock, pid_t pid, int tries)
{
        for (int i = 0; i < tries; i++) {
                struct vfiod *c = NULL;

                if (vfiod_connect(sock, &c) == 0) {
                        vfiod_close(c);
                        return 0;
                }
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        return -ECHILD;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

double bench_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

double bench_median(const double *v, size_t n)
{
        double *c = malloc(n * sizeof(*c)), m;

        if (!c || n == 0) {
                free(c);
                return 0;
        }
        memcpy(c, v, n * sizeof(*c));
        qsort(c, n, sizeof(*c), cmp_double);
        m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
        free(c);
        return m;
}

double bench_min(const double *v, size_t n)
{
        double m = n ? v[0] : 0;

        for (size_t i = 1; i < n; i++)
                if (v[i] < m)
                        m = v[i];
        return m;
}

double bench_max(const double *v, size_t n)
{
        double m = n ? v[0] : 0;

        for (size_t i = 1; i < n; i++)
                if (v[i] > m)
                        m = v[i];
        return m;
}

const char *bench_fmt_ns(double ns, char *buf, size_t size)
{
        if (ns < 1e3)
                snprintf(buf, size, "%.0f ns", ns);
        else if (ns < 1e6)
                snprintf(buf, size, "%.1f us", ns / 1e3);
        else if (ns < 1e9)
                snprintf(buf, size, "%.2f ms", ns / 1e6);
        else
                snprintf(buf, size, "%.2f s", ns / 1e9);
        return buf;
}

void bench_row_ratio(FILE *f, const char *name, bool higher_is_better, double target,
                     const double *ratios, size_t n, const double *a_ns, const double *b_ns)
{
        double med = bench_median(ratios, n);
        bool met = higher_is_better ? med >= target : med <= target;
        char t[32] = "none", a[32] = "", b[32] = "";

        if (target > 0)
                snprintf(t, sizeof(t), "%s %.2fx", higher_is_better ? ">=" : "<=", target);
        if (a_ns && b_ns) {
                bench_fmt_ns(bench_median(a_ns, n), a, sizeof(a));
                bench_fmt_ns(bench_median(b_ns, n), b, sizeof(b));
        }
        fprintf(f, "row %-46s %-9s %6.2f %6.2f %6.2f  %-6s  %s%s%s (%zu rounds)\n", name, t,
                bench_min(ratios, n), med, bench_max(ratios, n),
                target <= 0 ? "-"
                : met       ? "met"
                            : "missed",
                a, a_ns ? " | " : "", b, n);
        fflush(f);
}

void bench_row_value(FILE *f, const char *name, double target, const double *v, size_t n,
                     const char *note)
{
        double med = bench_median(v, n);
        char t[32];

        /* Counts (instructions) in thousands of units need no decimals. */
        int prec = med >= 1000 ? 0 : 2;

        snprintf(t, sizeof(t), target > 0 ? "<= %g" : "-", target);
        fprintf(f, "row %-46s %-9s %6.*f %6.*f %6.*f  %-6s  %s\n", name, t, prec, bench_min(v, n),
                prec, med, prec, bench_max(v, n),
                target <= 0     ? "info"
                : med <= target ? "met"
                                : "missed",
                note);
        fflush(f);
}

void bench_row_failed(FILE *f, const char *name, const char *why)
{
        fprintf(f, "row %-46s %-9s %6s %6s %6s  %-6s  %s\n", name, "-", "-", "-", "-", "FAILED",
                why);
        fflush(f);
}

/* ---- the raw side of the no-op round trip ---------------------------------- */

struct raw_req {
        uint64_t id;
        uint64_t body;
};

struct raw_reply {
        uint64_t id;
        uint64_t counters[3];
};

/* The raw peer: receive a datagram and its fd, close the fd, answer. */
void bench_raw_server(int sock)
{
        for (;;) {
                struct raw_req req;
                struct raw_reply rep = {0};
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control;
                struct iovec iov = {.iov_base = &req, .iov_len = sizeof(req)};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = control.buf,
                                    .msg_controllen = sizeof(control.buf)};
                ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

                if (n <= 0)
                        _exit(n == 0 ? 0 : 1);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(c), sizeof(fd));
                                close(fd);
                        }
                rep.id = req.id;
                rep.counters[0] = req.body + 1;
                if (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep))
                        _exit(1);
        }
}

int bench_raw_call(int sock, int fd, uint64_t id)
{
        struct raw_req req = {.id = id, .body = id};
        struct raw_reply rep;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = {.iov_base = &req, .iov_len = sizeof(req)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = sizeof(control.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        memset(&control, 0, sizeof(control));
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(fd));
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) != sizeof(req))
                return -EIO;
        if (recv(sock, &rep, sizeof(rep), 0) != sizeof(rep) || rep.id != id)
                return -EIO;
        return 0;
}

/* ---- the no-op round trip ---------------------------------------------------- */

int bench_noop(const char *name, double target, int (*op)(void *userdata), void *userdata,
               int rounds, int ops)
{
        const int block = 50, nb = ops / block;
        double *ratio = calloc((size_t)rounds, sizeof(double));
        double *a_ns = calloc((size_t)rounds, sizeof(double));
        double *b_ns = calloc((size_t)rounds, sizeof(double));
        double *blocks = calloc((size_t)(2 * nb), sizeof(double));
        int sv[2] = {-1, -1}, efd = -1, r = -ENOMEM;
        uint64_t id = 0;
        pid_t child = -1;

        if (!ratio || !a_ns || !b_ns || !blocks || nb < 1)
                goto out;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
            (efd = eventfd(0, EFD_CLOEXEC)) < 0 || (child = fork()) < 0) {
                r = -errno;
                bench_row_failed(stdout, name, "cannot set up the raw side");
                goto out;
        }
        if (child == 0) {
                close(sv[0]);
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                bench_raw_server(sv[1]);
        }
        sv[1] = safe_close_fd(sv[1]);

        /* Warm up both paths (page faults, caches, the daemon's first allocations). */
        for (int i = 0; i < ops / 4; i++) {
                if (op(userdata) < 0 || bench_raw_call(sv[0], efd, ++id) < 0) {
                        bench_row_failed(stdout, name, "a warm-up request failed");
                        r = -EIO;
                        goto out;
                }
        }
        /*
         * A round alternates the two sides in blocks of `block` requests, and each
         * side's time per request in the round is its median block: a burst of
         * load from elsewhere (the machine is shared) spoils a block or two of
         * either side, not the round.
         */
        for (int round = 0; round < rounds; round++) {
                for (int b = 0; b < nb; b++)
                        for (int side = 0; side < 2; side++) {
                                bool vfiod_side = (side ^ ((round + b) & 1)) == 0;
                                double t0 = bench_now_ns();

                                for (int i = 0; i < block; i++) {
                                        r = vfiod_side ? op(userdata)
                                                       : bench_raw_call(sv[0], efd, ++id);
                                        if (r < 0) {
                                                bench_row_failed(stdout, name, "a request failed");
                                                goto out;
                                        }
                                }
                                blocks[vfiod_side * nb + b] = (bench_now_ns() - t0) / block;
                        }
                a_ns[round] = bench_median(blocks + nb, (size_t)nb);
                b_ns[round] = bench_median(blocks, (size_t)nb);
                ratio[round] = a_ns[round] / b_ns[round];
        }
        bench_row_ratio(stdout, name, false, target, ratio, (size_t)rounds, a_ns, b_ns);
        r = 0;
out:
        safe_close_fd(sv[0]);
        safe_close_fd(sv[1]);
        safe_close_fd(efd);
        if (child > 0)
                (void)waitpid(child, NULL, 0);
        free(ratio);
        free(a_ns);
        free(b_ns);
        free(blocks);
        return r;
}
