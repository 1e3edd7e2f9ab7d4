/* SPDX-License-Identifier: MIT */
/* The hostile-input cases; see hostile.h. */
#include "tests/hostile/hostile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "tests/rawclient.h"

struct hostile_env HE;

static uint64_t next_id = 100;

/*
 * RSS may grow this much over a test (malloc keeps freed memory). Built with
 * ASan (the daemon of the same build is too), freed memory waits in ASan's
 * quarantine (256 MiB by default), so RSS says little there.
 */
#ifdef __SANITIZE_ADDRESS__
#define RSS_SLACK_KB (256 * 1024)
#else
#define RSS_SLACK_KB (8 * 1024)
#endif

/* Under valgrind (VFIOD_TEST_VALGRIND) the daemon's own memory is valgrind's too. */
static long rss_slack_kb(void)
{
        return getenv("VFIOD_TEST_VALGRIND") && RSS_SLACK_KB < 64 * 1024 ? 64 * 1024 : RSS_SLACK_KB;
}

/* ---- helpers ------------------------------------------------------------------- */

int hostile_connect(uid_t uid, gid_t gid)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        int fd, r;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        memcpy(sa.sun_path, HE.sock, sizeof(HE.sock));
        /* SO_PEERCRED takes the effective ids at connect(). */
        ck_assert_int_eq(setegid(gid), 0);
        ck_assert_int_eq(seteuid(uid), 0);
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        ck_assert_int_eq(seteuid(0), 0);
        ck_assert_int_eq(setegid(0), 0);
        ck_assert_msg(r == 0, "connect %s: %s", HE.sock, strerror(errno));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return fd;
}

uint64_t hostile_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        return rawclient_send(fd, env, fds, n_fds, &next_id);
}

struct vfiod_msg *hostile_recv(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct vfiod_msg *msg = NULL;
        const char *reason = NULL;
        int r;

        ck_assert_msg(poll(&p, 1, 5000) == 1, "no answer from the daemon in 5 s");
        r = vfiod_msg_recv(fd, MSG_DONTWAIT, &msg, &reason);
        if (r == 0 || r == -ECONNRESET)
                return NULL;
        ck_assert_msg(r == 1, "recv: %s (%s)", strerror(-r), reason ? reason : "");
        return msg;
}

struct vfiod_msg *hostile_call(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        uint64_t id = hostile_send(fd, env, fds, n_fds);

        for (;;) {
                struct vfiod_msg *m = hostile_recv(fd);

                ck_assert_msg(m != NULL, "the daemon closed the connection instead of answering");
                if (m->env->id == id)
                        return m;
                ck_assert_uint_eq(m->env->id, 0); /* an event; anything else is wrong */
                vfiod_msg_free(m);
        }
}

bool hostile_dropped(int fd)
{
        static uint8_t buf[VFIOD_PROTO_MAX_DATAGRAM];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VFIOD_PROTO_MAX_FDS)];
        } control;

        for (int i = 0; i < 1000; i++) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = control.buf,
                                    .msg_controllen = sizeof(control.buf)};
                ssize_t n;

                if (poll(&p, 1, 3000) != 1)
                        return false;
                n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0)
                        return errno == ECONNRESET;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
                                int got;

                                memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof(got));
                                close(got);
                        }
                if (n == 0 && mh.msg_controllen == 0)
                        return true;
        }
        return false;
}

void hostile_hello(int fd)
{
        rawclient_hello(hostile_call, fd, 0);
}

uint64_t hostile_acquire(int fd, uint64_t *ret_domain)
{
        struct rawclient_acquired got = {0};
        uint64_t lease =
            rawclient_acquire(hostile_call, fd, HE.device, 0, VFIOD__MODE__MODE_BROKERED, &got);

        ck_assert_msg(lease != 0, "Acquire: %s", got.reason);
        for (size_t i = 0; i < got.n_fds; i++)
                close(got.fds[i]); /* the device fd we got */
        if (ret_domain)
                *ret_domain = got.domain;
        return lease;
}

static int count_dir(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        int n = 0;

        ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* True when fd of the daemon is the read end of a pipe (fdinfo flags O_RDONLY). */
static bool pipe_read_end(const char *fd) __attribute__((nonnull));

static bool pipe_read_end(const char *fd)
{
        char path[320], target[64], line[128];
        unsigned flags = 0;
        bool read_only = false;
        ssize_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)HE.pid, fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        if (strncmp(target, "pipe:", 5) != 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)HE.pid, fd);
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

int hostile_daemon_fds(void)
{
        char path[64];
        DIR *d;
        struct dirent *de;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)HE.pid);
        if (!HE.skip_pipe_read_ends)
                return count_dir(path);
        d = opendir(path);
        ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && !pipe_read_end(de->d_name))
                        n++;
        closedir(d);
        return n;
}

long hostile_daemon_rss_kb(void)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)HE.pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

static Vfiod__StatsReply *stats(int admin, struct vfiod_msg **ret_msg)
{
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__Envelope env = ENVELOPE(stats, &st);
        struct vfiod_msg *m;

        m = hostile_call(admin, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_STATS_REPLY);
        *ret_msg = m;
        return m->env->stats_reply;
}

static size_t list_devices(int fd, Vfiod__LeaseState *ret_state)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        struct vfiod_msg *m;
        size_t n;

        m = hostile_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        n = m->env->list_devices_reply->n_devices;
        for (size_t i = 0; ret_state && i < n; i++)
                if (strcmp(m->env->list_devices_reply->devices[i]->device, HE.device) == 0)
                        *ret_state = m->env->list_devices_reply->devices[i]->state;
        vfiod_msg_free(m);
        return n;
}

void hostile_baseline(void)
{
        int fd;

        ck_assert_msg(kill(HE.pid, 0) == 0, "no daemon (pid %d)", (int)HE.pid);
        fd = hostile_connect(HE.uid, HE.gid);
        hostile_hello(fd);
        ck_assert_uint_gt(list_devices(fd, NULL), 0);
        close(fd);
        /* The daemon notices the close; then it holds what it holds when idle. */
        for (int i = 0; i < 50; i++) {
                struct vfiod_msg *m;
                int admin = hostile_connect(0, 0);
                uint32_t clients;

                hostile_hello(admin);
                clients = stats(admin, &m)->clients;
                vfiod_msg_free(m);
                close(admin);
                if (clients == 1)
                        break;
                usleep(20000);
        }
        usleep(50000);
        HE.baseline_fds = hostile_daemon_fds();
        HE.baseline_rss_kb = hostile_daemon_rss_kb();
}

void hostile_check_recovered(void)
{
        Vfiod__LeaseState state = 0;
        Vfiod__StatsReply *st = NULL;
        struct vfiod_msg *m = NULL;
        int fd, admin, fds = -1;
        long rss;

        ck_assert_msg(kill(HE.pid, 0) == 0, "the daemon is gone");
        /* A well-behaved client is served. */
        fd = hostile_connect(HE.uid, HE.gid);
        hostile_hello(fd);
        ck_assert_uint_gt(list_devices(fd, &state), 0);
        admin = hostile_connect(0, 0);
        hostile_hello(admin);
        /* Nothing is left of the hostile clients (quarantines end within a re-check or two). */
        for (int i = 0; i < 100; i++) {
                vfiod_msg_free(m);
                st = stats(admin, &m);
                if (st->clients == 2 && st->leases == 0 && st->domains == 0 && st->mappings == 0 &&
                    st->pinned_bytes == 0 && st->quarantined_groups == 0)
                        break;
                usleep(50000);
        }
        ck_assert_msg(st->clients == 2 && st->leases == 0 && st->domains == 0 &&
                          st->mappings == 0 && st->pinned_bytes == 0 && st->quarantined_groups == 0,
                      "daemon not idle: %u clients, %u leases, %u domains, %u mappings, %u "
                      "quarantined",
                      st->clients, st->leases, st->domains, st->mappings, st->quarantined_groups);
        vfiod_msg_free(m);
        ck_assert_int_eq(list_devices(fd, &state) > 0, 1);
        ck_assert_int_eq(state, VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        close(fd);
        close(admin);
        /* Its fds come back to the baseline once it has seen both closes. */
        for (int i = 0; i < 100; i++) {
                fds = hostile_daemon_fds();
                if (fds == HE.baseline_fds)
                        break;
                usleep(20000);
        }
        ck_assert_msg(fds == HE.baseline_fds, "the daemon holds %d fds, %d at the start", fds,
                      HE.baseline_fds);
        rss = hostile_daemon_rss_kb();
        ck_assert_msg(rss <= HE.baseline_rss_kb + rss_slack_kb(),
                      "the daemon's RSS grew from %ld to %ld KiB", HE.baseline_rss_kb, rss);
}

/* ---- fds of every kind ------------------------------------------------------------ */

enum fd_kind {
        FD_SOCKET,
        FD_PIPE,
        FD_DEVNULL,
        FD_OPATH,
        FD_DIRECTORY,
        FD_MEMFD_UNSEALED,
        FD_MEMFD_SMALL,
        FD_EVENTFD,
        FD_MEMFD_GOOD,
        N_FD_KINDS
};

static const char *const fd_kind_names[] = {
    "socket",         "pipe",        "/dev/null", "O_PATH",       "directory",
    "unsealed memfd", "small memfd", "eventfd",   "sealed memfd",
};

static int memfd(size_t size, int seals)
{
        int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        /* Every page written: MapDma refuses a range with a hole. */
        for (size_t off = 0; off < size; off += 4096)
                ck_assert_int_eq(pwrite(fd, "", 1, (off_t)off), 1);
        if (seals)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

static int make_fd(enum fd_kind kind)
{
        int fd = -1, p[2];

        switch (kind) {
        case FD_SOCKET:
                fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                break;
        case FD_PIPE:
                /* The write end: see hostile_env.skip_pipe_read_ends. */
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                close(p[0]);
                fd = p[1];
                break;
        case FD_DEVNULL:
                fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                break;
        case FD_OPATH:
                fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
                break;
        case FD_DIRECTORY:
                fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                break;
        case FD_MEMFD_UNSEALED:
                fd = memfd(0x2000, 0);
                break;
        case FD_MEMFD_SMALL:
                fd = memfd(0x1000, F_SEAL_SHRINK);
                break;
        case FD_EVENTFD:
                fd = eventfd(0, EFD_CLOEXEC);
                break;
        case FD_MEMFD_GOOD:
        case N_FD_KINDS:
                fd = memfd(0x2000, F_SEAL_SHRINK);
                break;
        }
        ck_assert_int_ge(fd, 0);
        return fd;
}

/* ---- requests ------------------------------------------------------------------- */

/*
 * Sends by hand (the transport would refuse to send an fd of the wrong kind)
 * and receives the answer, which must come.
 */
static struct vfiod_msg *call_by_hand(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        struct vfiod_msg *m;

        env->id = ++next_id;
        rawclient_send_raw(fd, env, fds, n_fds);
        m = hostile_recv(fd);
        ck_assert_msg(m != NULL, "%s: the daemon dropped the connection",
                      vfiod_envelope_body_name(env));
        ck_assert_uint_eq(m->env->id, env->id);
        return m;
}

/* Sends MapDma of one range of memfd_fd (of any kind: by hand); returns its id. */
static uint64_t send_map_dma(int fd, uint64_t domain, uint64_t offset, uint64_t iova, uint64_t size,
                             int memfd_fd)
{
        struct rawclient_map_dma m;

        rawclient_map_dma_init(&m, domain, offset, iova, size);
        m.env.id = ++next_id;
        rawclient_send_raw(fd, &m.env, &memfd_fd, 1);
        return m.env.id;
}

/* MapDma answered: 0 (mapped) or the Error's errnum. */
static int map_dma(int fd, uint64_t domain, uint64_t offset, uint64_t iova, uint64_t size,
                   int memfd_fd)
{
        return rawclient_map_dma(call_by_hand, fd, domain, offset, iova, size, memfd_fd);
}

static int unmap_dma(int fd, uint64_t domain, uint64_t iova, uint64_t size)
{
        return rawclient_unmap_dma(hostile_call, fd, domain, iova, size);
}

/* Sends SetIrqs of one vector with efd (of any kind: by hand). */
static void send_set_irqs_eventfd(int fd, uint64_t lease, uint32_t index, int efd)
{
        struct rawclient_set_irqs m;

        rawclient_set_irqs_init(&m, lease, index, 0, 1, 1);
        m.env.id = ++next_id;
        rawclient_send_raw(fd, &m.env, &efd, 1);
}

/* SetIrqs answered: 0 (Ok) or the Error's errnum. */
static int set_irqs_eventfd(int fd, uint64_t lease, uint32_t index, int efd)
{
        return rawclient_set_irqs(call_by_hand, fd, lease, index, 0, 1, &efd, 1, NULL);
}

static int release(int fd, uint64_t lease)
{
        return rawclient_release(hostile_call, fd, lease);
}

/* A connection of the unprivileged user past Hello. */
static int ready_client(void)
{
        int fd = hostile_connect(HE.uid, HE.gid);

        hostile_hello(fd);
        return fd;
}

/* ---- the cases --------------------------------------------------------------------- */

START_TEST(test_random_bytes)
{
        unsigned seed = 12345;
        static uint8_t buf[4096];

        for (int i = 0; i < 200; i++) {
                int fd = i % 2 ? ready_client() : hostile_connect(HE.uid, HE.gid);
                size_t len = 1 + (size_t)rand_r(&seed) % sizeof(buf);

                for (size_t k = 0; k < len; k++)
                        buf[k] = (uint8_t)rand_r(&seed);
                ck_assert_int_eq(rawclient_send_bytes(fd, buf, len, NULL, 0), (ssize_t)len);
                /* An Error, a reply, or (almost always) the connection dropped. */
                (void)hostile_dropped(fd);
                close(fd);
        }
}
END_TEST

START_TEST(test_truncated)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        uint8_t buf[256];
        size_t len;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        h.capabilities = 0xf;
        h.max_datagram = 4096;
        env.id = 1;
        len = vfiod__envelope__pack(&env, buf);
        for (size_t cut = 0; cut < len; cut++) {
                int fd = hostile_connect(HE.uid, HE.gid);

                ck_assert_int_eq(rawclient_send_bytes(fd, buf, cut, NULL, 0), (ssize_t)cut);
                ck_assert_msg(hostile_dropped(fd), "a Hello cut to %zu of %zu bytes was served",
                              cut, len);
                close(fd);
        }
        a.device = HE.device;
        a.mode = VFIOD__MODE__MODE_BROKERED;
        env = ENVELOPE(acquire, &a);
        env.id = 1;
        len = vfiod__envelope__pack(&env, buf);
        for (size_t cut = 3; cut < len; cut++) {
                int fd = ready_client();

                ck_assert_int_eq(rawclient_send_bytes(fd, buf, cut, NULL, 0), (ssize_t)cut);
                ck_assert_msg(hostile_dropped(fd), "an Acquire cut to %zu of %zu bytes was served",
                              cut, len);
                close(fd);
        }
}
END_TEST

START_TEST(test_oversized)
{
        static const size_t sizes[] = {VFIOD_PROTO_MAX_DATAGRAM + 1, 3 * VFIOD_PROTO_MAX_DATAGRAM};
        int efd = make_fd(FD_EVENTFD);

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                uint8_t *buf = calloc(1, sizes[i]);
                int fd = ready_client(), sndbuf = 4 * VFIOD_PROTO_MAX_DATAGRAM;
                ssize_t n;

                ck_assert_ptr_nonnull(buf);
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
                /* A valid-looking start: a ListDevices with a huge device string. */
                buf[0] = 0xa2; /* field 20, length-delimited */
                buf[1] = 0x01;
                n = rawclient_send_bytes(fd, buf, sizes[i], &efd, 1);
                ck_assert_msg(n == (ssize_t)sizes[i] || n == -EMSGSIZE, "sendmsg: %zd", n);
                if (n > 0)
                        ck_assert_msg(hostile_dropped(fd), "a %zu-byte datagram was served",
                                      sizes[i]);
                close(fd);
                free(buf);
        }
        close(efd);
}
END_TEST

START_TEST(test_wrong_major)
{
        static const uint32_t majors[] = {0, VFIOD_PROTO_VERSION_MAJOR + 1, 0xffffffffu};

        for (size_t i = 0; i < sizeof(majors) / sizeof(majors[0]); i++) {
                Vfiod__Hello h = VFIOD__HELLO__INIT;
                Vfiod__Envelope env = ENVELOPE(hello, &h);
                int fd = hostile_connect(HE.uid, HE.gid);
                struct vfiod_msg *m;

                h.major = majors[i];
                m = hostile_call(fd, &env, NULL, 0);
                ck_assert_int_eq(rawclient_errnum(m), EPROTONOSUPPORT);
                ck_assert_msg(hostile_dropped(fd), "major %u: connection kept", majors[i]);
                close(fd);
        }
}
END_TEST

START_TEST(test_before_hello)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        int efd = make_fd(FD_EVENTFD), fd;

        fd = hostile_connect(HE.uid, HE.gid);
        hostile_send(fd, &env, NULL, 0);
        ck_assert(hostile_dropped(fd));
        close(fd);
        /* Even root's Stats. */
        env = ENVELOPE(stats, &st);
        fd = hostile_connect(0, 0);
        hostile_send(fd, &env, NULL, 0);
        ck_assert(hostile_dropped(fd));
        close(fd);
        /* A SetIrqs with an fd before Hello: dropped, the fd closed (the fd count says so). */
        {
                Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
                int32_t idx[] = {0};

                s.lease_id = 1;
                s.count = 1;
                s.n_eventfds = 1;
                s.eventfds = idx;
                s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                env = ENVELOPE(set_irqs, &s);
                fd = hostile_connect(HE.uid, HE.gid);
                hostile_send(fd, &env, &efd, 1);
                ck_assert(hostile_dropped(fd));
                close(fd);
        }
        /* A second Hello is answered (an adopted connection), but not one of another major. */
        fd = ready_client();
        h.major = VFIOD_PROTO_VERSION_MAJOR + 1;
        env = ENVELOPE(hello, &h);
        hostile_send(fd, &env, NULL, 0);
        ck_assert(hostile_dropped(fd));
        close(fd);
        close(efd);
}
END_TEST

START_TEST(test_unknown_cases_and_fields)
{
        /* id 5, then field 99 (length-delimited, empty): a oneof case this version lacks. */
        static const uint8_t unknown_case[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
        /* id 6, ListDevices {field 7: varint 1} and, in the envelope, field 500: varint 2. */
        static const uint8_t unknown_fields[] = {0x08, 0x06, 0xa2, 0x01, 0x02,
                                                 0x38, 0x01, 0xa0, 0x1f, 0x02};
        /* id 7, a reply body (HelloReply) sent by the client. */
        static const uint8_t reply_body[] = {0x08, 0x07, 0x5a, 0x00};
        struct vfiod_msg *m;
        int fd;

        fd = ready_client();
        ck_assert_int_eq(rawclient_send_bytes(fd, unknown_case, sizeof(unknown_case), NULL, 0),
                         (ssize_t)sizeof(unknown_case));
        ck_assert(hostile_dropped(fd));
        close(fd);

        fd = ready_client();
        ck_assert_int_eq(rawclient_send_bytes(fd, unknown_fields, sizeof(unknown_fields), NULL, 0),
                         (ssize_t)sizeof(unknown_fields));
        m = hostile_recv(fd);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->env->id, 6);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        vfiod_msg_free(m);
        ck_assert_int_eq(rawclient_send_bytes(fd, reply_body, sizeof(reply_body), NULL, 0),
                         (ssize_t)sizeof(reply_body));
        ck_assert(hostile_dropped(fd));
        close(fd);
}
END_TEST

START_TEST(test_253_fds)
{
        enum { N = 253 };
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &map);
        Vfiod__DmaRange r[N], *rs[N];
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        int fds[N], fd;
        uint64_t domain;
        struct vfiod_msg *m;

        for (int i = 0; i < N; i++) {
                fds[i] = make_fd(FD_MEMFD_GOOD);
                vfiod__dma_range__init(&r[i]);
                r[i].fd_index = (uint32_t)i;
                r[i].iova = 0x100000 + (uint64_t)i * 0x2000;
                r[i].size = 0x2000;
                r[i].readable = 1;
                rs[i] = &r[i];
        }
        fd = ready_client();
        (void)hostile_acquire(fd, &domain);
        map.domain_id = domain;
        map.n_ranges = N;
        map.ranges = rs;
        /* Well-formed, over MaxFdsPerMessage (64 by default): an error, the connection stays. */
        m = hostile_call(fd, &env, fds, N);
        ck_assert_int_eq(rawclient_errnum(m), ENOSPC);
        ck_assert_uint_gt(list_devices(fd, NULL), 0);
        /* The same fds with a body that names none: dropped. */
        env = ENVELOPE(list_devices, &l);
        env.id = ++next_id;
        rawclient_send_raw(fd, &env, fds, N);
        ck_assert(hostile_dropped(fd));
        close(fd);
        for (int i = 0; i < N; i++)
                close(fds[i]);
}
END_TEST

START_TEST(test_unnamed_fds)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__DmaRange r = VFIOD__DMA_RANGE__INIT, *rs[] = {&r};
        int fds[2] = {make_fd(FD_MEMFD_GOOD), make_fd(FD_EVENTFD)}, fd;

        env.id = 1;
        fd = ready_client();
        rawclient_send_raw(fd, &env, fds, 1);
        ck_assert(hostile_dropped(fd));
        close(fd);

        /* MapDma names fd 0 of 2. */
        r.size = 0x2000;
        r.iova = 0x100000;
        r.readable = 1;
        map.domain_id = 1;
        map.n_ranges = 1;
        map.ranges = rs;
        env = ENVELOPE(map_dma, &map);
        env.id = 1;
        fd = ready_client();
        rawclient_send_raw(fd, &env, fds, 2);
        ck_assert(hostile_dropped(fd));
        close(fd);

        /* MapDma names fd 5 of 1. */
        r.fd_index = 5;
        fd = ready_client();
        rawclient_send_raw(fd, &env, fds, 1);
        ck_assert(hostile_dropped(fd));
        close(fd);

        /* SetIrqs names eventfd index -7. */
        {
                Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
                int32_t idx[] = {-7};

                s.lease_id = 1;
                s.count = 1;
                s.n_eventfds = 1;
                s.eventfds = idx;
                s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                env = ENVELOPE(set_irqs, &s);
                env.id = 1;
                fd = ready_client();
                rawclient_send_raw(fd, &env, &fds[1], 1);
                ck_assert(hostile_dropped(fd));
                close(fd);
        }
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/*
 * MapDma with an fd of every kind on a fresh connection: a memfd is taken or
 * answered (EINVAL: no seal, too small), any other kind breaks a transport
 * rule and drops the connection. Returns the errnum, or -1 when dropped.
 */
static int map_dma_kind(enum fd_kind k)
{
        uint64_t domain, lease, id;
        int fd = ready_client(), bad = make_fd(k), e;
        struct vfiod_msg *m;

        lease = hostile_acquire(fd, &domain);
        id = send_map_dma(fd, domain, 0, 0x100000, 0x2000, bad);
        close(bad);
        m = hostile_recv(fd);
        if (!m) {
                close(fd);
                return -1;
        }
        ck_assert_uint_eq(m->env->id, id);
        e = m->env->body_case == VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY ? 0 : rawclient_errnum(m);
        if (e == 0) {
                vfiod_msg_free(m);
                ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0x2000), 0);
        }
        ck_assert_uint_gt(list_devices(fd, NULL), 0);
        ck_assert_int_eq(release(fd, lease), 0);
        close(fd);
        return e;
}

START_TEST(test_map_dma_wrong_fds)
{
        for (int k = 0; k < N_FD_KINDS; k++) {
                int e = map_dma_kind((enum fd_kind)k);

                if (k == FD_MEMFD_GOOD)
                        ck_assert_msg(e == 0, "a sealed memfd: %s", strerror(e));
                else if (k == FD_MEMFD_UNSEALED || k == FD_MEMFD_SMALL)
                        ck_assert_msg(e == EINVAL, "MapDma of a %s: errno %d (%s), not EINVAL",
                                      fd_kind_names[k], e, strerror(e));
                else
                        ck_assert_msg(e == -1, "MapDma of a %s: errno %d (%s), not dropped",
                                      fd_kind_names[k], e, strerror(e));
        }
}
END_TEST

START_TEST(test_set_irqs_wrong_fds)
{
        for (int k = 0; k < N_FD_KINDS; k++) {
                int fd = ready_client(), bad = make_fd((enum fd_kind)k);
                uint64_t lease = hostile_acquire(fd, NULL);

                if (k == FD_EVENTFD) {
                        int e = set_irqs_eventfd(fd, lease, VFIOD__IRQ_INDEX__IRQ_INDEX_MSI, bad);

                        ck_assert_msg(e == 0, "an eventfd: %s", strerror(e));
                        ck_assert_int_eq(release(fd, lease), 0);
                } else {
                        /* Any other kind breaks a transport rule: dropped, the lease released. */
                        send_set_irqs_eventfd(fd, lease, VFIOD__IRQ_INDEX__IRQ_INDEX_MSI, bad);
                        ck_assert_msg(hostile_dropped(fd), "SetIrqs with a %s: not dropped",
                                      fd_kind_names[k]);
                }
                close(bad);
                close(fd);
        }
}
END_TEST

START_TEST(test_map_dma_bad_ranges)
{
        static const struct {
                const char *what;
                uint64_t offset, iova, size;
                int errnum;
        } cases[] = {
            {"iova + size overflows", 0, 0xfffffffffffff000ull, 0x2000, EINVAL},
            {"offset + size overflows", 0xfffffffffffff000ull, 0x100000, 0x2000, EINVAL},
            {"zero size", 0, 0x100000, 0, EINVAL},
            {"unaligned iova", 0, 0x100800, 0x1000, EINVAL},
            {"unaligned size", 0, 0x100000, 0x1800, EINVAL},
            {"unaligned offset", 0x800, 0x100000, 0x1000, EINVAL},
            {"past the memfd", 0x1000, 0x100000, 0x2000, EINVAL},
            {"iova in the MSI window", 0, 0xfee00000ull, 0x1000, EINVAL},
            {"iova above the IOMMU's width", 0, 1ull << 52, 0x1000, EINVAL},
            {"size of the whole space", 0, 0, 0xfffffffffffff000ull, EINVAL},
        };
        uint64_t domain, lease;
        int fd = ready_client(), mfd = make_fd(FD_MEMFD_GOOD);

        lease = hostile_acquire(fd, &domain);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int e = map_dma(fd, domain, cases[i].offset, cases[i].iova, cases[i].size, mfd);

                ck_assert_msg(e == cases[i].errnum, "%s: errno %d (%s), not %d", cases[i].what, e,
                              strerror(e), cases[i].errnum);
        }
        /* Another client's domain id, and one that never was. */
        ck_assert_int_eq(map_dma(fd, domain + 1000, 0, 0x100000, 0x2000, mfd), ENOENT);
        /* State is consistent: a good mapping, an overlap refused, a split refused, unmap. */
        ck_assert_int_eq(map_dma(fd, domain, 0, 0x100000, 0x2000, mfd), 0);
        ck_assert_int_eq(map_dma(fd, domain, 0, 0x101000, 0x1000, mfd), EINVAL);
        ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0x1000), EINVAL);
        ck_assert_int_eq(unmap_dma(fd, domain, 0xfffffffffffff000ull, 0x2000), EINVAL);
        ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0), EINVAL);
        ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0x2000), 0);
        ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0x2000), ENOENT);
        ck_assert_int_eq(release(fd, lease), 0);
        close(mfd);
        close(fd);
}
END_TEST

START_TEST(test_huge_counts)
{
        enum { RANGES = 2000, EVENTFDS = 12000 };
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        Vfiod__Envelope env = ENVELOPE(set_irqs, &s);
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__UnmapDma un = VFIOD__UNMAP_DMA__INIT;
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__DmaRange *r = calloc(RANGES, sizeof(*r)), **rs = calloc(RANGES, sizeof(*rs));
        Vfiod__IovaRange *u = calloc(RANGES, sizeof(*u)), **us = calloc(RANGES, sizeof(*us));
        int32_t *idx = calloc(EVENTFDS, sizeof(*idx));
        char *name = malloc(60000);
        uint64_t domain, lease;
        int fd = ready_client(), mfd = make_fd(FD_MEMFD_GOOD);

        ck_assert(r && rs && u && us && idx && name);
        lease = hostile_acquire(fd, &domain);
        /* SetIrqs: count 2^32-1, 12000 eventfd slots, start at the end of the range. */
        s.lease_id = lease;
        s.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
        s.count = 0xffffffffu;
        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EINVAL);
        for (int i = 0; i < EVENTFDS; i++)
                idx[i] = -1;
        s.count = EVENTFDS;
        s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
        s.n_eventfds = EVENTFDS;
        s.eventfds = idx;
        env.id = 0;
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EINVAL);
        s.count = 1;
        s.start = 0xffffffffu;
        s.n_eventfds = 1;
        env.id = 0;
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EINVAL);
        /* MapDma and UnmapDma with 2000 ranges (MaxRangesPerRequest is 256). */
        for (int i = 0; i < RANGES; i++) {
                vfiod__dma_range__init(&r[i]);
                r[i].iova = 0x100000 + (uint64_t)i * 0x1000;
                r[i].size = 0x1000;
                r[i].readable = 1;
                rs[i] = &r[i];
                vfiod__iova_range__init(&u[i]);
                u[i].iova = r[i].iova;
                u[i].size = 0x1000;
                us[i] = &u[i];
        }
        map.domain_id = domain;
        map.n_ranges = RANGES;
        map.ranges = rs;
        env = ENVELOPE(map_dma, &map);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, &mfd, 1)), ENOSPC);
        un.domain_id = domain;
        un.n_ranges = RANGES;
        un.ranges = us;
        env = ENVELOPE(unmap_dma, &un);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), ENOSPC);
        /* A 60000-byte device name. */
        memset(name, 'a', 59999);
        name[59999] = '\0';
        l.device = name;
        env = ENVELOPE(list_devices, &l);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EINVAL);
        ck_assert_int_eq(release(fd, lease), 0);
        close(mfd);
        close(fd);
        free(r);
        free(rs);
        free(u);
        free(us);
        free(idx);
        free(name);
}
END_TEST

START_TEST(test_reused_ids)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        int fd = ready_client();

        env.id = 7;
        for (int i = 0; i < 3; i++)
                hostile_send(fd, &env, NULL, 0);
        /* Each gets its answer (ids are the client's business). */
        for (int i = 0; i < 3; i++) {
                struct vfiod_msg *m = hostile_recv(fd);

                ck_assert_ptr_nonnull(m);
                ck_assert_uint_eq(m->env->id, 7);
                ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
                vfiod_msg_free(m);
        }
        /* The id of the client's own Hello, and id 0 (dropped). */
        env.id = 1;
        ck_assert_uint_gt(list_devices(fd, NULL), 0);
        env.id = 0;
        ck_assert_int_eq(rawclient_send_bytes(fd, (const uint8_t[]){0xa2, 0x01, 0x00}, 3, NULL, 0),
                         3);
        ck_assert(hostile_dropped(fd));
        close(fd);
}
END_TEST

START_TEST(test_other_clients_lease)
{
        Vfiod__Reset rst = VFIOD__RESET__INIT;
        Vfiod__Envelope env = ENVELOPE(reset, &rst);
        Vfiod__DestroyDomain dd = VFIOD__DESTROY_DOMAIN__INIT;
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__LeaseState state = 0;
        int fd = ready_client(), other, efd = make_fd(FD_EVENTFD), mfd = make_fd(FD_MEMFD_GOOD);
        uint64_t domain, lease = hostile_acquire(fd, &domain);

        other = hostile_connect(HE.other_uid, HE.other_gid);
        hostile_hello(other);
        ck_assert_int_eq(release(other, lease), ENOENT);
        rst.lease_id = lease;
        ck_assert_int_eq(rawclient_errnum(hostile_call(other, &env, NULL, 0)), ENOENT);
        ck_assert_int_eq(set_irqs_eventfd(other, lease, VFIOD__IRQ_INDEX__IRQ_INDEX_MSI, efd),
                         ENOENT);
        ck_assert_int_eq(map_dma(other, domain, 0, 0x100000, 0x2000, mfd), ENOENT);
        ck_assert_int_eq(unmap_dma(other, domain, 0x100000, 0x2000), ENOENT);
        dd.domain_id = domain;
        env = ENVELOPE(destroy_domain, &dd);
        ck_assert_int_eq(rawclient_errnum(hostile_call(other, &env, NULL, 0)), ENOENT);
        a.device = HE.device;
        a.mode = VFIOD__MODE__MODE_BROKERED;
        env = ENVELOPE(acquire, &a);
        ck_assert_int_eq(rawclient_errnum(hostile_call(other, &env, NULL, 0)), EBUSY);
        a.device = (char *)"";
        a.domain_id = domain;
        env.id = 0;
        ck_assert_int_ne(rawclient_errnum(hostile_call(other, &env, NULL, 0)), 0);
        /* The holder still has it, untouched. */
        ck_assert_uint_gt(list_devices(fd, &state), 0);
        ck_assert_int_eq(state, VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        ck_assert_int_eq(map_dma(fd, domain, 0, 0x100000, 0x2000, mfd), 0);
        ck_assert_int_eq(release(fd, lease), 0);
        close(other);
        close(fd);
        close(efd);
        close(mfd);
}
END_TEST

START_TEST(test_admin_from_non_admin)
{
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_leases, &ll);
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Stats st = VFIOD__STATS__INIT;
        int fd = ready_client();
        uint64_t lease = hostile_acquire(fd, NULL);

        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EPERM);
        rv.lease_id = lease;
        rv.reason = (char *)"mine";
        env = ENVELOPE(revoke, &rv);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EPERM);
        env = ENVELOPE(reload_policy, &rp);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EPERM);
        env = ENVELOPE(stats, &st);
        ck_assert_int_eq(rawclient_errnum(hostile_call(fd, &env, NULL, 0)), EPERM);
        /* Still served, still holding its lease. */
        ck_assert_int_eq(release(fd, lease), 0);
        close(fd);
}
END_TEST

START_TEST(test_never_reads)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        uint8_t buf[64];
        size_t len;
        long max_rss = 0;
        int fd = ready_client(), sent = 0, stalls = 0;
        struct timespec t0, t1;

        env.id = 9;
        len = vfiod__envelope__pack(&env, buf);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* Requests until the socket stays full (the daemon stopped reading us) or 20000. */
        while (sent < 20000) {
                ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0 && errno == EAGAIN) {
                        if (++stalls > 20)
                                break;
                        usleep(20000);
                        continue;
                }
                if (n < 0)
                        break; /* dropped: EPIPE / ECONNRESET */
                stalls = 0;
                if (++sent % 500 == 0) {
                        /* Meanwhile another client is served at once. */
                        int good = ready_client();
                        struct timespec a, b;

                        clock_gettime(CLOCK_MONOTONIC, &a);
                        ck_assert_uint_gt(list_devices(good, NULL), 0);
                        clock_gettime(CLOCK_MONOTONIC, &b);
                        close(good);
                        ck_assert_msg(
                            (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 2000,
                            "a second client waited over 2 s");
                        if (hostile_daemon_rss_kb() > max_rss)
                                max_rss = hostile_daemon_rss_kb();
                }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* It stopped reading us (or dropped us): the queue is bounded. */
        ck_assert_msg(sent < 20000, "the daemon read 20000 requests nobody reads the answers to");
        {
                int good = ready_client();

                ck_assert_uint_gt(list_devices(good, NULL), 0);
                close(good);
        }
        if (hostile_daemon_rss_kb() > max_rss)
                max_rss = hostile_daemon_rss_kb();
        ck_assert_msg(max_rss <= HE.baseline_rss_kb + rss_slack_kb(),
                      "the daemon grew from %ld to %ld KiB", HE.baseline_rss_kb, max_rss);
        fprintf(stderr,
                "never-reads: %d requests sent before the daemon stopped reading; RSS %ld -> %ld "
                "KiB max\n",
                sent, HE.baseline_rss_kb, max_rss);
        close(fd);
}
END_TEST

void hostile_add_cases(TCase *tc)
{
        tcase_add_test(tc, test_random_bytes);
        tcase_add_test(tc, test_truncated);
        tcase_add_test(tc, test_oversized);
        tcase_add_test(tc, test_wrong_major);
        tcase_add_test(tc, test_before_hello);
        tcase_add_test(tc, test_unknown_cases_and_fields);
        tcase_add_test(tc, test_253_fds);
        tcase_add_test(tc, test_unnamed_fds);
        tcase_add_test(tc, test_map_dma_wrong_fds);
        tcase_add_test(tc, test_set_irqs_wrong_fds);
        tcase_add_test(tc, test_map_dma_bad_ranges);
        tcase_add_test(tc, test_huge_counts);
        tcase_add_test(tc, test_reused_ids);
        tcase_add_test(tc, test_other_clients_lease);
        tcase_add_test(tc, test_admin_from_non_admin);
        tcase_add_test(tc, test_never_reads);
}

/* ---- SIGKILL at every step ---------------------------------------------------------- */

/* What the client has done when it is killed. */
static const char *const kill_steps[] = {
    "connected",       "Hello answered", "Acquire sent",     "Acquire answered", "MapDma sent",
    "MapDma answered", "SetIrqs sent",   "SetIrqs answered", "Release sent",     "Release answered",
};
#define N_KILL_STEPS ((int)(sizeof(kill_steps) / sizeof(kill_steps[0])))

/*
 * The client, in a child that dropped to HE.uid: runs steps 0..last, writes a
 * byte to `report` after each, then waits to be killed. Never calls check.
 */
static int kill_child(int report, int last)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__DmaRange r = VFIOD__DMA_RANGE__INIT, *rs[] = {&r};
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        int32_t idx[] = {0};
        struct vfiod_msg *m = NULL;
        uint64_t lease = 0, domain = 0;
        int fd, mfd, efd, device_fd = -1;

        if (setgroups(0, NULL) < 0 || setresgid(HE.gid, HE.gid, HE.gid) < 0 ||
            setresuid(HE.uid, HE.uid, HE.uid) < 0 || setuid(0) == 0)
                return 10;
        mfd = memfd_create("kill", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        efd = eventfd(0, EFD_CLOEXEC);
        if (mfd < 0 || efd < 0 || pwrite(mfd, (char[0x2000]){0}, 0x2000, 0) != 0x2000 ||
            fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
                return 11;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, HE.sock, sizeof(HE.sock));
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return 12;
        for (int step = 0; step <= last; step++) {
                int rc = 0;

                switch (step) {
                case 0:
                        break;
                case 1:
                        h.major = VFIOD_PROTO_VERSION_MAJOR;
                        env.id = 1;
                        rc = vfiod_msg_send(fd, &env, NULL, 0) < 0 ||
                             vfiod_msg_recv(fd, 0, &m, NULL) != 1 ||
                             m->env->body_case != VFIOD__ENVELOPE__BODY_HELLO_REPLY;
                        break;
                case 2:
                        a.device = HE.device;
                        a.mode = VFIOD__MODE__MODE_BROKERED;
                        env = ENVELOPE(acquire, &a);
                        env.id = 2;
                        rc = vfiod_msg_send(fd, &env, NULL, 0) < 0;
                        break;
                case 3:
                        rc = vfiod_msg_recv(fd, 0, &m, NULL) != 1 ||
                             m->env->body_case != VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY;
                        if (!rc) {
                                lease = m->env->acquire_reply->lease_id;
                                domain = m->env->acquire_reply->domain_id;
                                /* Kept: the kill must also close a device fd. */
                                device_fd = vfiod_msg_take_fd(m, 0);
                        }
                        break;
                case 4:
                        r.iova = 0x100000;
                        r.size = 0x2000;
                        r.readable = r.writable = 1;
                        map.domain_id = domain;
                        map.n_ranges = 1;
                        map.ranges = rs;
                        env = ENVELOPE(map_dma, &map);
                        env.id = 3;
                        rc = vfiod_msg_send(fd, &env, &mfd, 1) < 0;
                        break;
                case 6:
                        s.lease_id = lease;
                        s.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSI;
                        s.count = 1;
                        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                        s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                        s.n_eventfds = 1;
                        s.eventfds = idx;
                        env = ENVELOPE(set_irqs, &s);
                        env.id = 4;
                        rc = vfiod_msg_send(fd, &env, &efd, 1) < 0;
                        break;
                case 8:
                        rel.lease_id = lease;
                        env = ENVELOPE(release, &rel);
                        env.id = 5;
                        rc = vfiod_msg_send(fd, &env, NULL, 0) < 0;
                        break;
                case 5:
                case 7:
                case 9:
                        rc = vfiod_msg_recv(fd, 0, &m, NULL) != 1 ||
                             m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR;
                        break;
                }
                vfiod_msg_free(m);
                m = NULL;
                if (rc || write(report, "s", 1) != 1)
                        return 20 + step;
        }
        (void)device_fd; /* still open: closed by the kill */
        for (;;)
                pause();
}

START_TEST(test_sigkill_at_step)
{
        int p[2], status, got = 0, fd;
        uint64_t lease;
        pid_t pid;
        char c;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(p[0]);
                _exit(kill_child(p[1], _i));
        }
        close(p[1]);
        while (got <= _i && read(p[0], &c, 1) == 1)
                got++;
        ck_assert_msg(got == _i + 1, "the client stopped after %d of %d steps", got, _i + 1);
        /* Let the last request reach the daemon before the kill. */
        usleep(_i % 2 == 0 ? 20000 : 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(p[0]);
        /* Everything is released (hostile_check_recovered() in the teardown counts it all)... */
        hostile_check_recovered();
        /* ...and the device can be leased again, and mapped. */
        fd = ready_client();
        {
                uint64_t domain;
                int mfd = make_fd(FD_MEMFD_GOOD);

                lease = hostile_acquire(fd, &domain);
                ck_assert_int_eq(map_dma(fd, domain, 0, 0x100000, 0x2000, mfd), 0);
                close(mfd);
        }
        ck_assert_int_eq(release(fd, lease), 0);
        close(fd);
        fprintf(stderr, "killed after '%s': released, device free and leased again\n",
                kill_steps[_i]);
}
END_TEST

void hostile_add_kill_cases(TCase *tc)
{
        tcase_add_loop_test(tc, test_sigkill_at_step, 0, N_KILL_STEPS);
}

/* ---- the policy's IOVA windows ------------------------------------------------------ */

/* Needs a policy whose rule has IovaWindows=0x0-HE.window_last (the host suite). */
START_TEST(test_iova_windows)
{
        uint64_t domain, lease, end = HE.window_last;
        int fd = ready_client(), mfd = make_fd(FD_MEMFD_GOOD);

        ck_assert_uint_gt(end, 0x200000);
        lease = hostile_acquire(fd, &domain);
        ck_assert_int_eq(map_dma(fd, domain, 0, end + 1, 0x2000, mfd), EPERM);
        ck_assert_int_eq(map_dma(fd, domain, 0, end + 1 - 0x1000, 0x2000, mfd), EPERM);
        ck_assert_int_eq(map_dma(fd, domain, 0, 0xfffffffffffff000ull, 0x2000, mfd), EPERM);
        ck_assert_int_eq(map_dma(fd, domain, 0, 0x100000, 0, mfd), EPERM);
        ck_assert_int_eq(map_dma(fd, domain, 0, 0xfee00000ull, 0x1000, mfd),
                         end >= 0xfee00fffull ? EINVAL : EPERM);
        /* Inside: works; and the last page of the window. */
        ck_assert_int_eq(map_dma(fd, domain, 0, 0x100000, 0x2000, mfd), 0);
        ck_assert_int_eq(map_dma(fd, domain, 0, end + 1 - 0x2000, 0x2000, mfd), 0);
        ck_assert_int_eq(unmap_dma(fd, domain, 0x100000, 0x2000), 0);
        ck_assert_int_eq(release(fd, lease), 0);
        close(mfd);
        close(fd);
}
END_TEST

void hostile_add_window_cases(TCase *tc)
{
        tcase_add_test(tc, test_iova_windows);
}
