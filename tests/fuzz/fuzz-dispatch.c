/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the datagram decoder (vfiod_msg_recv) and the request
 * dispatcher (permission table, every handler) of a vfiod server running in
 * this process on the fake ioctl layer, fed by one client connection. The
 * input format is in fuzz.h.
 *
 * Every input gets a fresh server (ids start at 1, so the seeds can name
 * lease 1 and domain 1), and when it is done the server is freed and the
 * process must hold exactly the fds it held before the input (abort
 * otherwise, so a leak is a finding), with no fake VFIO fd left open
 * anywhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/policy.h"
#include "daemon/server.h"
#include "proto/envelope.h"
#include "proto/transport.h"
#include "tests/daemon/fake-kernel.h"
#include "tests/daemon/harness.h"
#include "tests/fakesys.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Two single-device groups, a group of two, and a device vfio-pci does not hold. */
static const struct {
        const char *bdf;
        int group;
        const char *driver;
} devices[] = {
    {"0000:00:01.0", 1, "vfio-pci"}, {"0000:00:02.0", 2, "vfio-pci"},
    {"0000:00:03.0", 3, "vfio-pci"}, {"0000:00:04.0", 3, "vfio-pci"},
    {"0000:00:05.0", 5, "e1000e"},
};

static const char conf[] = "[Daemon]\n"
                           "MaxMappingsPerClient=64\n"
                           "MaxPinnedBytesPerClient=1M\n"
                           "ReleaseGraceMs=100\n"
                           "[Device fuzz]\n"
                           "Match=0000:00:01.0 0000:00:02.0 0000:00:03.0 0000:00:04.0 "
                           "0000:00:05.0\n"
                           "Users=1000 0\n"
                           "[Device brokered]\n"
                           "Match=0000:00:02.0\n"
                           "Users=0\n"
                           "Modes=brokered\n";

static struct ev_loop *loop;
static int fd_baseline = -1;
static pid_t setup_pid;

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        if (!d)
                abort();
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

static void add_fake_devices(void)
{
        for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
                if (strcmp(devices[i].driver, "vfio-pci") == 0)
                        fake_kernel_add_device(devices[i].group, devices[i].bdf);
}

static void cleanup(void)
{
        /* Only the process that made it: check's forked tests exit too. */
        if (H.root && getpid() == setup_pid) {
                char cmd[4200];

                /* At exit, outside any test: no check assertions here. */
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.root);
                if (system(cmd) != 0)
                        fprintf(stderr, "fuzz-dispatch: cannot remove %s\n", H.root);
        }
}

/* The fake sysfs tree (tests/fakesys.h: no check assertions, which must not run under libFuzzer).
 */
static void put(const char *rel, const char *text)
{
        if (fakesys_write(H.root, rel, text) < 0)
                abort();
}

static void add_sysfs_device(const char *bdf, int group, const char *driver)
{
        if (fakesys_add_pci(H.root, bdf, group, driver) < 0)
                abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        const char *tmp = getenv("TMPDIR");
        char *root = NULL;

        /* Quiet unless asked: libFuzzer and the sanitizers report on stderr. */
        vfiod_log_set_max_level(getenv("VFIOD_FUZZ_LOG") ? LOG_DEBUG : -1);
        (void)signal(SIGPIPE, SIG_IGN);
        memset(&H, 0, sizeof(H));
        if (asprintf(&root, "%s/vfiod-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
            !mkdtemp(root))
                abort();
        H.root = root;
        put("sys/bus/pci/devices/.keep", "");
        put("dev/vfio/.keep", "");
        snprintf(H.vfio_dir, sizeof(H.vfio_dir), "%s/dev/vfio", root);
        snprintf(H.conf, sizeof(H.conf), "%s/vfiod.conf", root);
        put("vfiod.conf", conf);
        for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
                add_sysfs_device(devices[i].bdf, devices[i].group, devices[i].driver);
        setup_pid = getpid();
        atexit(cleanup);
        loop = ev_loop_new(EVFLAG_AUTO);
        if (!loop)
                abort();
        /*
         * The loop's wake-up fd, which libev opens with the first ev_async (the
         * server's closer) and keeps as long as the loop: part of the baseline.
         */
        {
                ev_async wake;

                ev_async_init(&wake, NULL);
                ev_async_start(loop, &wake);
                ev_async_stop(loop, &wake);
        }
        return 0;
}

/* Reads and throws away everything the daemon sent (closing the fds that came with it). */
static void drain(int fd)
{
        static uint8_t buf[VFIOD_PROTO_MAX_DATAGRAM];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VFIOD_PROTO_MAX_FDS)];
        } control;

        for (;;) {
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = control.buf,
                                    .msg_controllen = sizeof(control.buf)};
                ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

                if (n < 0)
                        return;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < k; i++) {
                                int got;

                                memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(got));
                                close(got);
                        }
                }
                if (n == 0 && mh.msg_controllen == 0)
                        return; /* EOF */
        }
}

static void pump(int fd)
{
        for (int i = 0; i < 4; i++) {
                ev_run(loop, EVRUN_NOWAIT);
                if (fd >= 0)
                        drain(fd);
        }
}

static int make_fd(unsigned kind)
{
        int fd = -1, p[2];

        switch (kind) {
        case FUZZ_FD_SEALED_MEMFD:
        case FUZZ_FD_MEMFD:
                fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd < 0 || ftruncate(fd, FUZZ_MEMFD_SIZE) < 0)
                        abort();
                if (kind == FUZZ_FD_SEALED_MEMFD && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
                        abort();
                return fd;
        case FUZZ_FD_EVENTFD:
                fd = eventfd(0, EFD_CLOEXEC);
                if (fd < 0)
                        abort();
                return fd;
        default:
                if (pipe2(p, O_CLOEXEC) < 0)
                        abort();
                close(p[1]);
                return p[0];
        }
}

static void send_datagram(int sock, const uint8_t *buf, size_t len, const int *fds, size_t n_fds)
{
        /* A full socket or a closed connection: the datagram is simply lost. */
        (void)vfiod_datagram_send(sock, buf, len, fds, n_fds, MSG_DONTWAIT);
}

static void send_env(int sock, Vfiod__Envelope *env)
{
        uint8_t buf[512];
        size_t len = vfiod__envelope__get_packed_size(env);

        if (len > sizeof(buf))
                abort();
        vfiod__envelope__pack(env, buf);
        send_datagram(sock, buf, len, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct vfiod_policy *policy = NULL;
        struct vfiod_server *s = NULL;
        struct vfiod_peer peer = {.pid = getpid()};
        unsigned flags;
        int sv[2], n;

        if (!loop)
                LLVMFuzzerInitialize(NULL, NULL);
        if (size < 1)
                return 0;
        fd_baseline = count_fds();
        flags = data[0];
        data++, size--;
        if (vfiod_policy_load(H.conf, false, &policy, NULL) < 0)
                abort();
        /* The policy moves to the server. */
        if (vfiod_server_new(loop,
                             &(struct vfiod_server_options){.sysfs_root = H.root,
                                                            .vfio_dir = H.vfio_dir,
                                                            .config_path = H.conf},
                             policy, &s) < 0)
                abort();
        add_fake_devices();
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                abort();
        peer.uid = peer.gid = flags & FUZZ_ADMIN ? 0 : 1000;
        /* sv[1] moves to the server. */
        if (vfiod_server_add_client_take(s, sv[1], &peer) < 0)
                abort();

        if (flags & (FUZZ_HELLO | FUZZ_ACQUIRE)) {
                Vfiod__Hello h = VFIOD__HELLO__INIT;
                Vfiod__Envelope env = ENVELOPE(hello, &h);

                h.major = VFIOD_PROTO_VERSION_MAJOR;
                h.capabilities = 0xf;
                env.id = 1;
                send_env(sv[0], &env);
                pump(sv[0]);
        }
        if (flags & FUZZ_ACQUIRE) {
                Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
                Vfiod__Envelope env = ENVELOPE(acquire, &a);

                a.device = (char *)"0000:00:01.0";
                a.mode = VFIOD__MODE__MODE_BROKERED;
                env.id = 2;
                send_env(sv[0], &env);
                pump(sv[0]);
        }

        while (size >= 3) {
                size_t len = (size_t)data[0] | (size_t)data[1] << 8;
                unsigned spec = data[2];
                int fds[3];
                size_t n_fds = spec & 3u;

                data += 3, size -= 3;
                if (len > size)
                        len = size;
                for (size_t i = 0; i < n_fds; i++)
                        fds[i] = make_fd((spec >> (2 + 2 * i)) & 3u);
                send_datagram(sv[0], data, len, fds, n_fds);
                for (size_t i = 0; i < n_fds; i++)
                        close(fds[i]);
                data += len, size -= len;
                pump(sv[0]);
        }

        /* The client goes away; the server sees EOF, reaps it, then is freed. */
        close(sv[0]);
        pump(-1);
        vfiod_server_free(s);
        if (fake_kernel_live() != 0) {
                fprintf(stderr, "fuzz-dispatch: %zu fake VFIO fds still open\n",
                        fake_kernel_live());
                abort();
        }
        fake_kernel_reset();
        n = count_fds();
        if (n != fd_baseline) {
                fprintf(stderr, "fuzz-dispatch: fd leak: %d open, %d before\n", n, fd_baseline);
                abort();
        }
        return 0;
}
