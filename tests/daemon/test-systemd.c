/* SPDX-License-Identifier: MIT */
/*
 * vfiod under systemd's protocols, on the fake ioctl layer: started by
 * systemd-socket-activate on the first connection (the socket named
 * "vfiod" with sd_listen_fds_with_names), its sd_notify messages read by a
 * receiver of the test's own (READY=1, STATUS= with the counts, RELOADING=1
 * with MONOTONIC_USEC= on SIGHUP, FDSTOREREMOVE=1 for an fd-store entry it
 * does not restore), and its exit when idle (--exit-idle). With --fd-store:
 * the fds it stores and removes as a lease comes and goes (read with their
 * names from the notify socket), a stop that keeps the client, a client
 * restored from a stored state (its connection answers the next vfiod), a
 * torn state torn down (the connection closed, the entries removed), and
 * GROUP and IOMMUFD leases restored.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "proto/macro.h"
#include "tests/daemon/harness.h"
#include "tests/fakesys.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define SOCKET_ACTIVATE "systemd-socket-activate"

/*
 * The notify socket. A datagram socket queues at most net.unix.max_dgram_qlen
 * messages (10 by default; systemd raises it to 512), and vfiod's sd_notify()
 * blocks when the queue is full: a test that reads only after its next
 * request would stall vfiod. So a thread moves each message (and its fds) at
 * once from the bound datagram socket to a SOCK_SEQPACKET pair, whose queue is
 * bounded by bytes, not by a count; the test reads the pair's other end.
 */
struct notify_relay {
        int in, out; /* owned by the thread */
        int test_fd; /* the test's end; -1: slot free */
        pthread_t thread;
};
static struct notify_relay relays[4] = {
    {.test_fd = -1}, {.test_fd = -1}, {.test_fd = -1}, {.test_fd = -1}};

static void *relay_main(void *userdata)
{
        struct notify_relay *r = userdata;

        for (;;) {
                struct pollfd pf[2] = {{.fd = r->in, .events = POLLIN}, {.fd = r->out}};
                char buf[4096], cbuf[CMSG_SPACE(sizeof(int) * 16)];
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = cbuf,
                                    .msg_controllen = sizeof(cbuf)};
                ssize_t n;
                bool sent;

                if (poll(pf, 2, -1) < 0)
                        continue;
                if (pf[1].revents & (POLLHUP | POLLERR))
                        break; /* the test closed its end */
                if (!(pf[0].revents & POLLIN))
                        continue;
                n = recvmsg(r->in, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0)
                        continue;
                iov.iov_len = (size_t)n;
                if (mh.msg_controllen == 0)
                        mh.msg_control = NULL;
                sent = sendmsg(r->out, &mh, MSG_NOSIGNAL) == n;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                     i++)
                                        close(((int *)CMSG_DATA(c))[i]);
                if (!sent)
                        break;
        }
        close(r->in);
        close(r->out);
        return NULL;
}

static int dgram_receiver(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */
        struct notify_relay *r = NULL;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), pair[2];

        ck_assert_int_ge(fd, 0);
        ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        ck_assert_int_eq(setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]) && !r; i++)
                if (relays[i].test_fd < 0)
                        r = &relays[i];
        ck_assert_ptr_nonnull(r);
        *r = (struct notify_relay){.in = fd, .out = pair[1], .test_fd = pair[0]};
        ck_assert_int_eq(pthread_create(&r->thread, NULL, relay_main, r), 0);
        return pair[0];
}

/* Closes the test's end of a notify socket and waits for its relay to end. */
static void notify_close(int nfd)
{
        close(nfd);
        for (size_t i = 0; i < sizeof(relays) / sizeof(relays[0]); i++)
                if (relays[i].test_fd == nfd) {
                        pthread_join(relays[i].thread, NULL);
                        relays[i].test_fd = -1;
                }
}

/* Reads notify messages until one contains `want`; everything read goes to all ('|' between). */
static void notify_until(int nfd, const char *want, char *all, size_t size)
{
        char buf[1024];

        while (!strstr(all, want)) {
                ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);

                ck_assert_msg(n > 0, "no notify message with '%s'; got: %s", want, all);
                buf[n] = '\0';
                ck_assert_uint_lt(strlen(all) + (size_t)n + 2, size);
                strcat(all, buf);
                strcat(all, "|");
        }
}

static int connect_retry(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */

        memcpy(sa.sun_path, path, strlen(path) + 1);
        for (int i = 0; i < 500; i++) {
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

                ck_assert_int_ge(fd, 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                        return fd;
                }
                close(fd);
                usleep(10000);
        }
        ck_abort_msg("nothing listens on '%s'", path);
        return -1;
}

static int wait_exit(pid_t pid, int seconds)
{
        int status;

        for (int i = 0; i < seconds * 100; i++) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("vfiod did not exit within %d s", seconds);
        return -1;
}

static void drain(int fd, char *buf, size_t size)
{
        size_t o = 0;
        ssize_t n;

        while (o + 1 < size && (n = read(fd, buf + o, size - o - 1)) > 0)
                o += (size_t)n;
        buf[o] = '\0';
}

START_TEST(socket_activated_notify_reload_idle_exit)
{
        char sock[4200], stale[4200], notify[4200], conf[4200], vfio[4200], env_notify[4300];
        char all[8192] = "", log[16384];
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m = NULL;
        int nfd, errpipe[2], fd;
        struct stat st;
        pid_t pid;

        h_start(NULL);
        snprintf(sock, sizeof(sock), "%s/vfiod.sock", H.root);
        snprintf(stale, sizeof(stale), "%s/stored.sock", H.root);
        snprintf(notify, sizeof(notify), "%s/notify", H.root);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", H.root);
        snprintf(vfio, sizeof(vfio), "%s/dev/vfio", H.root);
        snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify);
        testutil_write_file(H.root, "vfiod.conf", "[Device t]\nMatch=0000:00:01.0\nUsers=0\n");
        nfd = dgram_receiver(notify);
        ck_assert_int_eq(pipe2(errpipe, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(errpipe[1], STDERR_FILENO);
                unsetenv("JOURNAL_STREAM");
                unsetenv("LISTEN_FDS");
                /* Without --accept it execs vfiod in place on the first connection. */
                execlp(SOCKET_ACTIVATE, SOCKET_ACTIVATE, "--seqpacket", "-l", sock, "-l", stale,
                       "--fdname=vfiod:client-7", "-E", env_notify, "-E",
                       "VFIOD_FAKE_DEVICES=1=0000:00:01.0", VFIOD_FAKE_PATH, "--config", conf,
                       "--sysfs-root", H.root, "--vfio-dir", vfio, "--exit-idle", "0.5",
                       (char *)NULL);
                fprintf(stderr,
                        "cannot run " SOCKET_ACTIVATE " (Debian: apt-get install systemd)\n");
                _exit(127);
        }
        close(errpipe[1]);

        /* The first connection starts vfiod; it takes the socket named "vfiod". */
        fd = connect_retry(sock);
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        ck_assert_int_eq(vfiod_msg_send(fd, &env, NULL, 0), 0);
        ck_assert_int_eq(vfiod_msg_recv(fd, 0, &m, NULL), 1);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        vfiod_msg_free(m);
        notify_until(nfd, "READY=1", all, sizeof(all));
        notify_until(nfd, "STATUS=Serving: 0 lease(s), 1 client(s)", all, sizeof(all));
        /* The other fd is an fd-store entry without a state: torn down and removed from the store.
         */
        ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=client-7"), "%s", all);

        /* systemctl reload: RELOADING=1 with the time, then READY=1 again. */
        all[0] = '\0';
        ck_assert_int_eq(kill(pid, SIGHUP), 0);
        notify_until(nfd, "RELOADING=1", all, sizeof(all));
        ck_assert_msg(strstr(all, "MONOTONIC_USEC="), "%s", all);
        notify_until(nfd, "READY=1", all, sizeof(all));

        /* Alone and idle for 0.5 s: it exits on its own, cleanly. */
        close(fd);
        notify_until(nfd, "STATUS=Serving: 0 lease(s), 0 client(s)", all, sizeof(all));
        ck_assert_int_eq(wait_exit(pid, 5), 0);
        notify_until(nfd, "STOPPING=1", all, sizeof(all));
        drain(errpipe[0], log, sizeof(log));
        close(errpipe[0]);
        ck_assert_msg(strstr(log, "ready on the socket from systemd"), "%s", log);
        ck_assert_msg(strstr(log, "Cannot restore the state from the fd store: no 'state'"), "%s",
                      log);
        ck_assert_msg(strstr(log, "Configuration '"), "%s", log);
        ck_assert_msg(strstr(log, "Idle for 0.5s"), "%s", log);
        /* The socket is the service manager's: vfiod leaves it in place. */
        ck_assert_int_eq(stat(sock, &st), 0);
        notify_close(nfd);
        h_stop();
}
END_TEST

/* ---- --fd-store ------------------------------------------------------------------------ */

/* The text of the last state notify_drain() saw stored. */
static char last_state[4096];

/*
 * Reads notify messages (closing any fds they carry) for up to 300 ms after the
 * last one; appends "FDSTORE name|" / "FDSTOREREMOVE name|" / other text to all.
 */
static void notify_drain(int nfd, char *all, size_t size)
{
        struct timeval tv = {.tv_usec = 300000};

        ck_assert_int_eq(setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        for (;;) {
                char buf[1024], cbuf[CMSG_SPACE(sizeof(int) * 16)];
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = cbuf,
                                    .msg_controllen = sizeof(cbuf)};
                ssize_t n = recvmsg(nfd, &mh, MSG_CMSG_CLOEXEC);

                if (n <= 0)
                        break;
                buf[n] = '\0';
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                int *fds = (int *)CMSG_DATA(c);
                                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                                if (k == 1 && strstr(buf, "FDNAME=state-"))
                                        last_state[pread(fds[0], last_state, sizeof(last_state) - 1,
                                                         0)] = '\0';
                                for (size_t i = 0; i < k; i++)
                                        close(fds[i]);
                        }
                ck_assert_uint_lt(strlen(all) + (size_t)n + 2, size);
                strcat(all, buf);
                strcat(all, "|");
        }
}

/* For the next spawn_fake(): RLIMIT_FSIZE (a write past it kills with SIGXFSZ). */
static rlim_t spawn_fsize = RLIM_INFINITY;
/* For the next spawn_fake(): VFIOD_CRASH_AT_SAVE_STEP, when not NULL. */
static const char *spawn_crash_step;

/*
 * vfiod-fake --fd-store, as the service manager starts it: the n fds from 3 on,
 * with their names (LISTEN_FDNAMES, ':' between), and NOTIFY_SOCKET=notify.
 */
static pid_t spawn_fake(const char *notify, const char *sock, const int *fds, size_t n,
                        const char *names, int *ret_stderr)
{
        char conf[4200], vfio[4200];
        int errpipe[2];
        pid_t pid;

        snprintf(conf, sizeof(conf), "%s/vfiod.conf", H.root);
        snprintf(vfio, sizeof(vfio), "%s/dev/vfio", H.root);
        ck_assert_int_eq(pipe2(errpipe, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char pidbuf[32], count[32];

                dup2(errpipe[1], STDERR_FILENO);
                unsetenv("JOURNAL_STREAM");
                unsetenv("LISTEN_FDS");
                setenv("NOTIFY_SOCKET", notify, 1);
                setenv("VFIOD_FAKE_DEVICES", "1=0000:00:01.0@0", 1);
                if (spawn_crash_step)
                        setenv("VFIOD_CRASH_AT_SAVE_STEP", spawn_crash_step, 1);
                if (spawn_fsize != RLIM_INFINITY &&
                    setrlimit(RLIMIT_FSIZE, &(struct rlimit){spawn_fsize, spawn_fsize}) < 0)
                        _exit(126);
                if (n > 0) {
                        /* The service manager's protocol: fds from 3, their names, our pid. */
                        int high[64];

                        if (n > 64)
                                _exit(126);
                        for (size_t i = 0; i < n; i++)
                                high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
                        for (size_t i = 0; i < n; i++)
                                dup2(high[i], 3 + (int)i);
                        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                        snprintf(count, sizeof(count), "%zu", n);
                        setenv("LISTEN_FDS", count, 1);
                        setenv("LISTEN_PID", pidbuf, 1);
                        setenv("LISTEN_FDNAMES", names, 1);
                }
                if (getenv("VFIOD_TEST_VALGRIND"))
                        execlp("sh", "sh", "-c", "exec $VFIOD_TEST_VALGRIND \"$@\"", "sh",
                               VFIOD_FAKE_PATH, "--fd-store", "--socket", sock, "--config", conf,
                               "--sysfs-root", H.root, "--vfio-dir", vfio, (char *)NULL);
                execl(VFIOD_FAKE_PATH, "vfiod", "--fd-store", "--socket", sock, "--config", conf,
                      "--sysfs-root", H.root, "--vfio-dir", vfio, (char *)NULL);
                _exit(127);
        }
        close(errpipe[1]);
        *ret_stderr = errpipe[0];
        return pid;
}

/*
 * A root with device 0000:00:01.0 for uid 0, the socket and notify paths in
 * sock and notify (4200 bytes each); returns the notify socket.
 */
static int fd_store_begin(char *sock, char *notify)
{
        h_start(NULL);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        snprintf(sock, 4200, "%s/vfiod.sock", H.root);
        snprintf(notify, 4200, "%s/notify", H.root);
        testutil_write_file(H.root, "vfiod.conf", "[Device t]\nMatch=0000:00:01.0\nUsers=0\n");
        return dgram_receiver(notify);
}

static struct vfiod_msg *call(int fd, Vfiod__Envelope *env)
{
        return rawclient_call_blocking(fd, env, NULL, 0);
}

START_TEST(fd_store_follows_the_leases)
{
        char sock[4200], notify[4200], all[16384] = "", log[16384];
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        struct vfiod_msg *m;
        int nfd, err, fd, status;
        pid_t pid;

        nfd = fd_store_begin(sock, notify);
        pid = spawn_fake(notify, sock, NULL, 0, NULL, &err);
        fd = connect_retry(sock);
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        vfiod_msg_free(call(fd, &env));
        a.device = "0000:00:01.0";
        a.mode = VFIOD__MODE__MODE_BROKERED;
        env = ENVELOPE(acquire, &a);
        env.id = 2;
        m = call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY);
        rel.lease_id = m->env->acquire_reply->lease_id;
        vfiod_msg_free(m);
        notify_drain(nfd, all, sizeof(all));
        /*
         * Every fd of the lease and the connection, each once, with FDPOLL=0;
         * domain 1, lease 2 (one counter for both).
         */
        ck_assert_msg(strstr(all, "FDSTORE=1\nFDPOLL=0\nFDNAME=state-"), "%s", all);
        ck_assert_msg(strstr(all, "FDNAME=client-1|"), "%s", all);
        ck_assert_msg(strstr(all, "FDNAME=container-1|"), "%s", all);
        ck_assert_msg(strstr(all, "FDNAME=group-2|"), "%s", all);
        ck_assert_msg(strstr(all, "FDNAME=device-2-0|"), "%s", all);
        ck_assert_ptr_null(strstr(strstr(all, "FDNAME=group-2|") + 1, "FDNAME=group-2|"));
        /*
         * The state, byte for byte as vfiod has always written it (a state of
         * an older vfiod must load): the unit and slice are the test's own.
         */
        ck_assert_msg(strncmp(last_state, "vfiod-state 1\nnext 1 2 2\nclient 1 1 0 1 65536 253 ",
                              strlen("vfiod-state 1\nnext 1 2 2\nclient 1 1 0 1 65536 253 ")) == 0,
                      "%s", last_state);
        ck_assert_msg(strstr(last_state, "\ndomain 1 1 3 1 2 1\n"
                                         "lease 1 2 1 1 2 1 0 0000:00:01.0 1\n"
                                         "dev 2 0 0000:00:01.0\n"
                                         "end "),
                      "%s", last_state);

        /* The release removes the lease's fds from the store. */
        all[0] = '\0';
        env = ENVELOPE(release, &rel);
        env.id = 3;
        vfiod_msg_free(call(fd, &env));
        notify_drain(nfd, all, sizeof(all));
        ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=group-2|"), "%s", all);
        ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=device-2-0|"), "%s", all);
        /* The domain, which Acquire made, went with it. */
        ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=container-1|"), "%s", all);
        ck_assert_ptr_null(strstr(all, "FDNAME=client-1|"));

        /* A stop with a client connected keeps it for the next vfiod. */
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        if (status != 0)
                testutil_write_file("/tmp", "vfiod-systemd-test.log", log);
        ck_assert_int_eq(status, 0);
        ck_assert_msg(strstr(log, "leases stay in the fd store"), "%s", log);
        ck_assert_msg(strstr(log, "kept in the fd store"), "%s", log);
        close(fd);
        notify_close(nfd);
        h_stop();
}
END_TEST

/* An IOMMUFD lease: its domain's iommufd and its cdev in the store, no group fd. */
START_TEST(fd_store_keeps_an_iommufd_lease)
{
        char sock[4200], notify[4200], all[16384] = "", log[16384];
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        struct vfiod_msg *m;
        int nfd, err, fd, status;
        pid_t pid;

        nfd = fd_store_begin(sock, notify);
        ck_assert_int_eq(fakesys_add_cdev(H.root, "0000:00:01.0", 0), 0);
        pid = spawn_fake(notify, sock, NULL, 0, NULL, &err);
        fd = connect_retry(sock);
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        vfiod_msg_free(call(fd, &env));
        a.device = "0000:00:01.0";
        a.mode = VFIOD__MODE__MODE_BROKERED;
        a.interface = VFIOD__INTERFACE__INTERFACE_IOMMUFD;
        env = ENVELOPE(acquire, &a);
        env.id = 2;
        m = call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY);
        ck_assert_int_eq(m->env->acquire_reply->interface, VFIOD__INTERFACE__INTERFACE_IOMMUFD);
        vfiod_msg_free(m);
        notify_drain(nfd, all, sizeof(all));
        ck_assert_msg(strstr(all, "FDNAME=iommufd-1|"), "%s", all);
        ck_assert_msg(strstr(all, "FDNAME=device-2-0|"), "%s", all);
        ck_assert_ptr_null(strstr(all, "FDNAME=group-2|"));
        ck_assert_ptr_null(strstr(all, "FDNAME=container-1|"));
        /* The interface (2) and the IOAS (1) of the domain; the interface and cdev of the lease. */
        ck_assert_msg(strstr(last_state, " 1 2 1 2 1\nlease 1 2 1 1 2 1 0 0000:00:01.0 1 2 0\n"
                                         "dev 2 0 0000:00:01.0\n"),
                      "%s", last_state);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_int_eq(status, 0);
        ck_assert_msg(strstr(log, "leases stay in the fd store"), "%s", log);
        close(fd);
        notify_close(nfd);
        h_stop();
}
END_TEST

static uint64_t fnv1a(const char *p, size_t n)
{
        uint64_t hash = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++) {
                hash ^= (unsigned char)p[i];
                hash *= UINT64_C(0x100000001b3);
        }
        return hash;
}

/* A memfd holding a state of the lines in body, with its "end" line; the hash is broken when torn.
 */
static int state_memfd_of(const char *body, bool torn)
{
        char text[2048];
        int fd = memfd_create("state", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        snprintf(text, sizeof(text), "%send %016llx\n", body,
                 (unsigned long long)(fnv1a(body, strlen(body)) ^ (torn ? 1 : 0)));
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        return fd;
}

/* A memfd holding a state for client 7 (READY); the hash is broken when torn. */
static int state_memfd(bool torn)
{
        return state_memfd_of("vfiod-state 1\nnext 7 0 0\nclient 7 1 0 0 65536 64\n", torn);
}

static void restore_case(bool torn)
{
        char sock[4200], notify[4200], all[16384] = "", log[16384];
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */
        struct vfiod_msg *m = NULL;
        int nfd, err, sp[2], state, status;
        pid_t pid;

        nfd = fd_store_begin(sock, notify);
        /* The client's connection as a previous vfiod would have stored it. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        state = state_memfd(torn);
        pid = spawn_fake(notify, sock, (int[]){state, sp[1]}, 2, "state:client-7", &err);
        close(state);
        close(sp[1]);
        close(connect_retry(sock)); /* it is up */
        env.id = 11;
        if (torn) {
                /* Never half-used: the connection is closed, the entries removed. */
                char b;

                ck_assert_int_eq(recv(sp[0], &b, 1, 0), 0);
        } else {
                /* The same connection, after Hello (READY), answers the new vfiod. */
                m = call(sp[0], &env);
                ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
                vfiod_msg_free(m);
        }
        notify_drain(nfd, all, sizeof(all));
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        if (status != 0)
                testutil_write_file("/tmp", "vfiod-systemd-test.log", log);
        ck_assert_int_eq(status, 0);
        if (torn) {
                ck_assert_msg(strstr(log, "torn (its hash does not match)"), "%s", log);
                ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=client-7|"), "%s", all);
                ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=state|"), "%s", all);
        } else {
                ck_assert_msg(strstr(log, "Restored 0 lease(s) and 1 client(s)"), "%s", log);
                /* Already in the store: not stored a second time. */
                ck_assert_ptr_null(strstr(all, "FDNAME=client-7|"));
        }
        close(sp[0]);
        notify_close(nfd);
        h_stop();
}

START_TEST(fd_store_client_restored)
{
        restore_case(false);
}
END_TEST

START_TEST(fd_store_torn_state_torn_down)
{
        restore_case(true);
}
END_TEST

/*
 * The server's end of a connection whose client end is *ret_client, made by a
 * child process that exits (and is reaped) at once: SO_PEERCRED names a pid
 * whose process is gone. *ret_pid is that pid.
 */
static int connection_of_a_gone_process(const char *listen_path, int *ret_client, pid_t *ret_pid)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */
        int l, c, s, status;
        pid_t pid;

        memcpy(sa.sun_path, listen_path, strlen(listen_path) + 1);
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(l, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 1), 0);
        c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c, 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 1);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(s, 0);
        close(l);
        unlink(listen_path);
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        *ret_client = c;
        *ret_pid = pid;
        return s;
}

/*
 * A restored client keeps the unit and slice it had when it connected (the
 * state's), not those of whatever process has its pid now. Clients 7 (no
 * unit) and 8 (vm@1.service) connected, exited, and their pids now name
 * processes of vm@9.service and of no unit (the fake lookup,
 * VFIOD_FAKE_UNITS). Units=vm@*.service names 8, not 7.
 */
START_TEST(fd_store_restores_the_unit_it_saved)
{
        char sock[4200], notify[4200], units[4200], path[4300], line[256], all[16384] = "",
                                                                           log[16384];
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire, &a);
        struct vfiod_msg *m;
        int nfd, err, state, s7, s8, c7, c8, status;
        pid_t pid, p7, p8;

        h_start(NULL);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        snprintf(sock, sizeof(sock), "%s/vfiod.sock", H.root);
        snprintf(notify, sizeof(notify), "%s/notify", H.root);
        snprintf(units, sizeof(units), "%s/units", H.root);
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device t]\nMatch=0000:00:01.0\nUnits=vm@*.service\n");
        nfd = dgram_receiver(notify);
        snprintf(path, sizeof(path), "%s/old.sock", H.root);
        s7 = connection_of_a_gone_process(path, &c7, &p7);
        s8 = connection_of_a_gone_process(path, &c8, &p8);
        snprintf(line, sizeof(line), "%d vm@9.service machine.slice\n%d - -\n", (int)p7, (int)p8);
        testutil_write_file(H.root, "units", line);
        state = state_memfd_of("vfiod-state 1\nnext 8 0 0\n"
                               "client 7 1 0 0 65536 64 - -\n"
                               "client 8 1 0 0 65536 64 vm@1.service machine.slice\n",
                               false);
        ck_assert_int_eq(setenv("VFIOD_FAKE_UNITS", units, 1), 0);
        pid = spawn_fake(notify, sock, (int[]){state, s7, s8}, 3, "state:client-7:client-8", &err);
        unsetenv("VFIOD_FAKE_UNITS");
        close(state);
        close(s7);
        close(s8);
        close(connect_retry(sock)); /* it is up */

        a.device = "0000:00:01.0";
        a.mode = VFIOD__MODE__MODE_BROKERED;
        env.id = 21;
        m = call(c7, &env);
        ck_assert_msg(m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR,
                      "client 7 (no unit when it connected) was granted the device");
        ck_assert_int_eq(m->env->error->errnum, EPERM);
        vfiod_msg_free(m);
        env.id = 22;
        m = call(c8, &env);
        ck_assert_msg(m->env->body_case == VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY,
                      "client 8 (vm@1.service when it connected) was refused: %s",
                      m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? m->env->error->reason
                                                                       : "?");
        vfiod_msg_free(m);

        notify_drain(nfd, all, sizeof(all));
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(status == 0, "%s", log);
        ck_assert_msg(strstr(log, "Restored 0 lease(s) and 2 client(s)"), "%s", log);
        close(c7);
        close(c8);
        notify_close(nfd);
        h_stop();
}
END_TEST

/* ---- a crash while saving ----------------------------------------------------------- */

/* The service manager's fd store, as systemd keeps it: FDSTORE=1 adds, FDSTOREREMOVE=1 removes. */
struct store {
        char names[64][96];
        int fds[64];
        size_t n;
};

static void store_remove(struct store *st, const char *name)
{
        for (size_t i = 0; i < st->n;)
                if (strcmp(st->names[i], name) == 0) {
                        close(st->fds[i]);
                        st->n--;
                        memmove(st->names + i, st->names + i + 1, (st->n - i) * sizeof(*st->names));
                        memmove(st->fds + i, st->fds + i + 1, (st->n - i) * sizeof(*st->fds));
                } else
                        i++;
}

/* Adds fd (taken) as name, unless the same file is stored already (systemd's rule). */
static void store_add_take(struct store *st, const char *name, int fd)
{
        struct stat a, b;

        ck_assert_int_eq(fstat(fd, &a), 0);
        for (size_t i = 0; i < st->n; i++)
                if (fstat(st->fds[i], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
                        close(fd);
                        return;
                }
        ck_assert_uint_lt(st->n, 64);
        snprintf(st->names[st->n], sizeof(st->names[0]), "%s", name);
        st->fds[st->n++] = fd;
}

/*
 * Applies the notify messages waiting (up to ms after the last) to st: 300 ms
 * while vfiod runs, less once it has exited (all it sent is queued).
 */
static void store_follow(int nfd, struct store *st, int ms)
{
        struct timeval tv = {.tv_usec = ms * 1000};

        ck_assert_int_eq(setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        for (;;) {
                char buf[1024], cbuf[CMSG_SPACE(sizeof(int) * 16)], *name;
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = cbuf,
                                    .msg_controllen = sizeof(cbuf)};
                ssize_t n = recvmsg(nfd, &mh, MSG_CMSG_CLOEXEC);
                int fds[16];
                size_t k = 0;

                if (n <= 0)
                        break;
                buf[n] = '\0';
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                memcpy(fds, CMSG_DATA(c), k * sizeof(int));
                        }
                name = strstr(buf, "FDNAME=");
                if (name) {
                        name += 7;
                        name[strcspn(name, "\n")] = '\0';
                }
                if (strstr(buf, "FDSTOREREMOVE=1") && name)
                        store_remove(st, name);
                for (size_t i = 0; i < k; i++) {
                        if (strstr(buf, "FDSTORE=1") && name)
                                store_add_take(st, name, fds[i]);
                        else
                                close(fds[i]);
                }
        }
}

static void store_clear(struct store *st)
{
        for (size_t i = 0; i < st->n; i++)
                close(st->fds[i]);
        st->n = 0;
}

/* Starts vfiod-fake with everything in st (the fds stay st's). */
static pid_t spawn_from(const char *notify, const char *sock, const struct store *st, int *ret_err)
{
        char names[64 * 97] = "";

        for (size_t i = 0; i < st->n; i++) {
                if (i)
                        strcat(names, ":");
                strcat(names, st->names[i]);
        }
        return spawn_fake(notify, sock, st->fds, st->n, names, ret_err);
}

/* The size of the state in st (the one stored last). */
static off_t stored_state_size(const struct store *st)
{
        struct stat sb = {0};

        for (size_t i = 0; i < st->n; i++)
                if (strncmp(st->names[i], "state", 5) == 0)
                        ck_assert_int_eq(fstat(st->fds[i], &sb), 0);
        ck_assert_int_gt(sb.st_size, 0);
        return sb.st_size;
}

static int wait_status(pid_t pid)
{
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SIGTERM: vfiod stops (exit 0, its log in log), st follows what it stored until then. */
static void stop_following(int nfd, struct store *st, pid_t pid, int err, char *log, size_t size)
{
        int status;

        store_follow(nfd, st, 50);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, size);
        close(err);
        ck_assert_msg(status == 0, "%s", log);
        store_follow(nfd, st, 20);
}

/* Hello, and its answer if one comes (vfiod may be killed meanwhile). */
static void try_hello(int fd)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m = NULL;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        if (vfiod_msg_send(fd, &env, NULL, 0) == 0 && vfiod_msg_recv(fd, 0, &m, NULL) == 1)
                vfiod_msg_free(m);
}

/* A request on fd (ListDevices) is answered: the number of devices it lists. */
static size_t ping(int fd, uint64_t id)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        struct vfiod_msg *m;
        size_t n;

        env.id = id;
        m = call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        n = m->env->list_devices_reply->n_devices;
        vfiod_msg_free(m);
        return n;
}

/*
 * h_start(), a device root may have, vfiod-fake --fd-store with the notify
 * socket *ret_nfd (paths in sock and notify, 4200 bytes each) and a client
 * after Hello (*ret_c). Returns vfiod's pid; its log is read from *ret_err.
 */
static pid_t start_with_a_client(char *sock, char *notify, int *ret_nfd, int *ret_err, int *ret_c)
{
        pid_t pid;

        *ret_nfd = fd_store_begin(sock, notify);
        pid = spawn_fake(notify, sock, NULL, 0, NULL, ret_err);
        *ret_c = connect_retry(sock);
        rawclient_hello(rawclient_call_blocking, *ret_c, 0);
        return pid;
}

/*
 * A GROUP lease: its group fd alone in the store, its devices on "member"
 * lines; and a next vfiod restores one (the fake ioctl layer cannot hand a
 * group to another process, but a GROUP lease's restore asks the kernel
 * nothing: a pipe stands in for the group).
 */
START_TEST(fd_store_keeps_a_group_lease)
{
        char sock[4200], notify[4200], all[16384] = "", log[16384];
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Envelope env;
        struct rawclient_acquired got = {0};
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */
        struct vfiod_msg *m;
        int nfd, err, c, sp[2], group[2], state, status;
        pid_t pid;

        pid = start_with_a_client(sock, notify, &nfd, &err, &c);
        ck_assert_uint_eq(rawclient_acquire(rawclient_call_blocking, c, "0000:00:01.0", 0,
                                            VFIOD__MODE__MODE_GROUP, &got),
                          1);
        ck_assert_uint_eq(got.n_fds, 1);
        close(got.fds[0]);
        notify_drain(nfd, all, sizeof(all));
        ck_assert_msg(strstr(all, "FDNAME=group-1|"), "%s", all);
        ck_assert_msg(!strstr(all, "FDNAME=device-") && !strstr(all, "FDNAME=container-"), "%s",
                      all);
        ck_assert_msg(strstr(last_state, "\nlease 1 1 0 1 3 1 0 0000:00:01.0 1\n"
                                         "member 1 0 0000:00:01.0\n"),
                      "%s", last_state);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(status == 0, "%s", log);
        close(c);
        notify_close(nfd);
        h_stop();

        /* What a previous vfiod stored: client 7 holding group 1 in lease 8. */
        nfd = fd_store_begin(sock, notify);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        ck_assert_int_eq(pipe2(group, O_CLOEXEC), 0);
        state = state_memfd_of("vfiod-state 1\nnext 7 8 8\nclient 7 1 0 0 65536 64\n"
                               "lease 7 8 0 1 3 1 0 0000:00:01.0 1\nmember 8 0 0000:00:01.0\n",
                               false);
        pid = spawn_fake(notify, sock, (int[]){state, sp[1], group[1]}, 3, "state:client-7:group-8",
                         &err);
        close(state);
        close(sp[1]);
        close(group[1]);
        close(connect_retry(sock)); /* it is up */
        ld.device = "0000:00:01.0";
        env = (Vfiod__Envelope)ENVELOPE(list_devices, &ld);
        env.id = 11;
        m = call(sp[0], &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
        ck_assert_int_eq(m->env->list_devices_reply->devices[0]->state,
                         VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        ck_assert_uint_eq(m->env->list_devices_reply->devices[0]->lease_id, 8);
        vfiod_msg_free(m);
        /* Its device, as its "member" line named it (root is an admin). */
        env = (Vfiod__Envelope)ENVELOPE(list_leases, &ll);
        env.id = 12;
        m = call(sp[0], &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY);
        ck_assert_uint_eq(m->env->list_leases_reply->n_leases, 1);
        ck_assert_int_eq(m->env->list_leases_reply->leases[0]->mode, VFIOD__MODE__MODE_GROUP);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->n_devices, 1);
        ck_assert_str_eq(m->env->list_leases_reply->leases[0]->devices[0], "0000:00:01.0");
        vfiod_msg_free(m);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(status == 0, "%s", log);
        ck_assert_msg(strstr(log, "Restored 1 lease(s) and 1 client(s)"), "%s", log);
        close(sp[0]);
        close(group[0]);
        notify_close(nfd);
        h_stop();
}
END_TEST

/* The one lease ListLeases shows (root is an admin): its mode, MapDma bytes and ranges. */
static void listed_lease(int fd, uint64_t lid, int *ret_mode, uint64_t *ret_pinned,
                         uint32_t *ret_mappings)
{
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_leases, &ll);
        struct vfiod_msg *m;

        env.id = 31;
        m = call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY);
        ck_assert_uint_eq(m->env->list_leases_reply->n_leases, 1);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->lease_id, lid);
        ck_assert_uint_eq(m->env->list_leases_reply->leases[0]->n_devices, 1);
        ck_assert_str_eq(m->env->list_leases_reply->leases[0]->devices[0], "0000:00:01.0");
        *ret_mode = m->env->list_leases_reply->leases[0]->mode;
        *ret_pinned = m->env->list_leases_reply->leases[0]->pinned_bytes;
        *ret_mappings = m->env->list_leases_reply->leases[0]->mappings;
        vfiod_msg_free(m);
}

/* The device as its holder sees it: its lease, with a grant. */
static void listed_as_ours(int fd, uint64_t lid)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        Vfiod__DeviceInfo *d;
        struct vfiod_msg *m;

        ld.device = "0000:00:01.0";
        env.id = 32;
        m = call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
        d = m->env->list_devices_reply->devices[0];
        ck_assert_int_eq(d->state, VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU);
        ck_assert_uint_eq(d->lease_id, lid);
        ck_assert_ptr_nonnull(d->grant);
        vfiod_msg_free(m);
}

/* The state in st (the one stored last), as text in buf. */
static void stored_state(const struct store *st, char *buf, size_t size)
{
        ssize_t n = -1;

        for (size_t i = 0; i < st->n; i++)
                if (strncmp(st->names[i], "state", 5) == 0)
                        n = pread(st->fds[i], buf, size - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
}

/* The lines of a state from its first "domain" line to its "end" (cut there, in state). */
static const char *domain_lines(char *state)
{
        char *from = strstr(state, "\ndomain "), *end = from ? strstr(from, "\nend ") : NULL;

        ck_assert_msg(end, "%s", state);
        *end = '\0';
        return from;
}

/*
 * For the next vfiod (VFIOD_FAKE_ADOPT): the stored iommufd (IOAS 1) and
 * cdev, as the kernel keeps them across the restart: in DIRECT unbound (the
 * client never bound it), in BROKERED bound to the iommufd and attached.
 */
static void adopt_stored(const struct store *st, int mode, char *buf, size_t size)
{
        int ictx = -1, cdev = -1;

        for (size_t i = 0; i < st->n; i++) {
                if (strncmp(st->names[i], "iommufd-", 8) == 0)
                        ictx = 3 + (int)i;
                if (strncmp(st->names[i], "device-", 7) == 0)
                        cdev = 3 + (int)i;
        }
        ck_assert_int_ge(ictx, 0);
        ck_assert_int_ge(cdev, 0);
        if (mode == VFIOD__MODE__MODE_DIRECT)
                snprintf(buf, size, "%d=iommufd,1 %d=cdev,0000:00:01.0", ictx, cdev);
        else
                snprintf(buf, size, "%d=iommufd,1 %d=cdev,0000:00:01.0,%d,1", ictx, cdev, ictx);
}

/*
 * An IOMMUFD lease (DIRECT: the client holds the iommufd and the unbound
 * cdev; BROKERED: vfiod bound and attached the cdev and mapped a memfd)
 * restored by the next vfiod: listed with its interface and its mappings,
 * and a release then does the whole sequence: the cdev bound (DIRECT) and
 * detached, the group quarantined while the client holds its copy, free
 * once it closes it.
 */
static void iommufd_restore_case(int mode)
{
        char sock[4200], notify[4200], log[16384], adopt[128], first[4096], state[4096], line[128];
        struct rawclient_acquired got = {0}, again = {0};
        struct store st = {0};
        uint64_t lid, lid2, pinned, pinned2;
        uint32_t mappings, mappings2;
        int nfd, err, c, mem = -1, listed_mode;
        pid_t pid;

        nfd = fd_store_begin(sock, notify);
        ck_assert_int_eq(fakesys_add_cdev(H.root, "0000:00:01.0", 0), 0);
        pid = spawn_fake(notify, sock, NULL, 0, NULL, &err);
        c = connect_retry(sock);
        rawclient_hello(rawclient_call_blocking, c, 0);
        lid = rawclient_acquire_iface(rawclient_call_blocking, c, "0000:00:01.0", 0, mode,
                                      VFIOD__INTERFACE__INTERFACE_IOMMUFD, &got);
        ck_assert_msg(lid != 0, "%s", got.reason);
        ck_assert_int_eq(got.iface, VFIOD__INTERFACE__INTERFACE_IOMMUFD);
        ck_assert_int_ge(got.device_fd, 0);
        if (mode == VFIOD__MODE__MODE_DIRECT) {
                ck_assert_int_ge(got.iommufd, 0);
        } else {
                mem = h_memfd(8192, F_SEAL_SHRINK);
                ck_assert_int_eq(rawclient_map_dma(rawclient_call_blocking, c, got.domain, 0,
                                                   0x100000, 8192, mem),
                                 0);
        }
        listed_lease(c, lid, &listed_mode, &pinned, &mappings);
        ck_assert_int_eq(listed_mode, mode);
        ck_assert_uint_eq(pinned, mode == VFIOD__MODE__MODE_DIRECT ? 0 : 8192);
        ck_assert_uint_eq(mappings, mode == VFIOD__MODE__MODE_DIRECT ? 0 : 1);
        stop_following(nfd, &st, pid, err, log, sizeof(log));
        ck_assert_msg(strstr(log, "leases stay in the fd store"), "%s", log);
        stored_state(&st, first, sizeof(first));

        /* The next vfiod, from the store; the client's connection answers it. */
        adopt_stored(&st, mode, adopt, sizeof(adopt));
        ck_assert_int_eq(setenv("VFIOD_FAKE_ADOPT", adopt, 1), 0);
        pid = spawn_from(notify, sock, &st, &err);
        unsetenv("VFIOD_FAKE_ADOPT");
        close(connect_retry(sock)); /* it is up */
        listed_as_ours(c, lid);
        listed_lease(c, lid, &listed_mode, &pinned2, &mappings2);
        ck_assert_int_eq(listed_mode, mode);
        ck_assert_uint_eq(pinned2, pinned);
        ck_assert_uint_eq(mappings2, mappings);
        /* Saved again (a connection came and went) as it was: its interface (2) and cdev (0). */
        store_follow(nfd, &st, 100);
        stored_state(&st, state, sizeof(state));
        snprintf(line, sizeof(line), " %" PRIu64 " 1 1 %d 1 0 0000:00:01.0 1 2 0\n", lid, mode);
        ck_assert_msg(strstr(state, line), "%s in %s", line, state);
        /* Its domain (interface, IOAS), view, mapping and lease lines: as the first vfiod's. */
        ck_assert_str_eq(domain_lines(state), domain_lines(first));
        ck_assert_msg((mode == VFIOD__MODE__MODE_BROKERED) ==
                          !!strstr(state, "\nmap 1 1048576 8192 1 0\n"),
                      "%s", state);

        /* The release: quarantined while the client holds its copy of the cdev. */
        ck_assert_int_eq(rawclient_release(rawclient_call_blocking, c, lid), 0);
        store_follow(nfd, &st, 100); /* the service manager drops what vfiod removed */
        ck_assert_uint_eq(rawclient_acquire_iface(rawclient_call_blocking, c, "0000:00:01.0", 0,
                                                  mode, VFIOD__INTERFACE__INTERFACE_IOMMUFD,
                                                  &again),
                          0);
        ck_assert_int_eq(again.errnum, EBUSY);
        ck_assert_msg(strstr(again.reason, "quarantined"), "%s", again.reason);
        for (size_t i = 0; i < got.n_fds; i++)
                close(got.fds[i]);
        lid2 = rawclient_acquire_iface(rawclient_call_blocking, c, "0000:00:01.0", 0, mode,
                                       VFIOD__INTERFACE__INTERFACE_IOMMUFD, &again);
        ck_assert_msg(lid2 != 0, "%s", again.reason);
        for (size_t i = 0; i < again.n_fds; i++)
                close(again.fds[i]);
        ck_assert_int_eq(rawclient_release(rawclient_call_blocking, c, lid2), 0);
        stop_following(nfd, &st, pid, err, log, sizeof(log));
        ck_assert_msg(strstr(log, "Restored 1 lease(s) and 1 client(s)"), "%s", log);
        ck_assert_msg(strstr(log, "group 1 is quarantined"), "%s", log);
        ck_assert_msg(!strstr(log, "detaching '") && !strstr(log, "at release:"), "%s", log);
        store_clear(&st);
        if (mem >= 0)
                close(mem);
        close(c);
        notify_close(nfd);
        h_stop();
}

START_TEST(fd_store_restores_an_iommufd_direct_lease)
{
        iommufd_restore_case(VFIOD__MODE__MODE_DIRECT);
}
END_TEST

START_TEST(fd_store_restores_an_iommufd_brokered_lease)
{
        iommufd_restore_case(VFIOD__MODE__MODE_BROKERED);
}
END_TEST

/*
 * vfiod dies in the middle of writing the state (a write past RLIMIT_FSIZE:
 * SIGXFSZ): the next vfiod still has a complete state, and every client in
 * it keeps its connection. (The fake ioctl layer cannot hand a lease to
 * another process; tests/vm-systemd kills vfiod at every step of a save
 * with leases held, on the real kernel.)
 */
START_TEST(fd_store_crash_while_saving)
{
        char sock[4200], notify[4200], log[16384];
        struct store st = {0};
        int nfd, err, c, c2, status;
        pid_t pid;

        pid = start_with_a_client(sock, notify, &nfd, &err, &c);
        store_follow(nfd, &st, 300);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(wait_status(pid), 128 + SIGKILL);
        close(err);
        store_follow(nfd, &st, 300);

        /* The next one may write no more than the state it restores, and a few bytes. */
        spawn_fsize = (rlim_t)stored_state_size(&st) + 8;
        pid = spawn_from(notify, sock, &st, &err);
        spawn_fsize = RLIM_INFINITY;
        /* A new client: a longer state, cut short by SIGXFSZ. */
        c2 = connect_retry(sock);
        status = wait_status(pid);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(status == 128 + SIGXFSZ, "status %d: %s", status, log);
        ck_assert_msg(strstr(log, "Restored 0 lease(s) and 1 client(s)"), "%s", log);
        close(c2);
        store_follow(nfd, &st, 300);

        /* The next one restores the client, and its connection answers. */
        pid = spawn_from(notify, sock, &st, &err);
        close(connect_retry(sock));
        ck_assert_uint_eq(ping(c, 2), 1);
        stop_following(nfd, &st, pid, err, log, sizeof(log));
        ck_assert_msg(strstr(log, "Restored 0 lease(s) and 1 client(s)"), "%s", log);
        store_clear(&st);
        close(c);
        notify_close(nfd);
        h_stop();
}
END_TEST

/*
 * A crash between storing a new state and removing the old one leaves two:
 * the newer is restored and the older removed; a newer one that is torn
 * (never written so by vfiod, but the store is not trusted) gives way to
 * the older.
 */
static void two_states_case(bool newer_torn)
{
        char sock[4200], notify[4200], all[16384] = "", log[16384], b;
        struct timeval tv = {.tv_sec = 30}; /* a bound for a failure only */
        int nfd, err, sp7[2], sp8[2], old, new, status;
        pid_t pid;

        nfd = fd_store_begin(sock, notify);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp7), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp8), 0);
        ck_assert_int_eq(setsockopt(sp7[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        ck_assert_int_eq(setsockopt(sp8[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        old = state_memfd_of("vfiod-state 1\nnext 7 0 0\nclient 7 1 0 0 65536 64 - -\n", false);
        new = state_memfd_of("vfiod-state 1\nnext 8 0 0\nclient 7 1 0 0 65536 64 - -\n"
                             "client 8 1 0 0 65536 64 - -\n",
                             newer_torn);
        pid = spawn_fake(notify, sock, (int[]){new, old, sp7[1], sp8[1]}, 4,
                         "state-12:state-11:client-7:client-8", &err);
        close(old);
        close(new);
        close(sp7[1]);
        close(sp8[1]);
        close(connect_retry(sock));
        ck_assert_uint_eq(ping(sp7[0], 1), 1);
        if (newer_torn)
                ck_assert_int_eq(recv(sp8[0], &b, 1, 0), 0); /* client 8: not in the older state */
        else
                ck_assert_uint_eq(ping(sp8[0], 2), 1);
        notify_drain(nfd, all, sizeof(all));
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid, 10);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(status == 0, "%s", log);
        if (newer_torn) {
                ck_assert_msg(strstr(log, "'state-12' is torn"), "%s", log);
                ck_assert_msg(strstr(log, "Restored 0 lease(s) and 1 client(s)"), "%s", log);
                ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=state-12|"), "%s", all);
                ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=client-8|"), "%s", all);
                /* The next state is the one after the older. */
                /* The next state is named after the newest there was. */
                ck_assert_msg(strstr(all, "FDSTORE=1\nFDPOLL=0\nFDNAME=state-13|"), "%s", all);
        } else {
                ck_assert_msg(strstr(log, "Restored 0 lease(s) and 2 client(s)"), "%s", log);
                ck_assert_msg(strstr(all, "FDSTOREREMOVE=1\nFDNAME=state-11|"), "%s", all);
                /* The newer goes only once the next one is stored. */
                ck_assert_msg(strstr(all, "FDNAME=state-13|") &&
                                  strstr(all, "FDSTOREREMOVE=1\nFDNAME=state-12|") >
                                      strstr(all, "FDNAME=state-13|"),
                              "%s", all);
                ck_assert_ptr_null(strstr(all, "FDSTOREREMOVE=1\nFDNAME=client-8|"));
        }
        close(sp7[0]);
        close(sp8[0]);
        notify_close(nfd);
        h_stop();
}

START_TEST(fd_store_newer_of_two_states)
{
        two_states_case(false);
}
END_TEST

START_TEST(fd_store_older_state_when_the_newer_is_torn)
{
        two_states_case(true);
}
END_TEST

/*
 * VFIOD_CRASH_AT_SAVE_STEP=N kills vfiod at the Nth step of its saves (each
 * fd stored or removed, each half of the state written, the state stored,
 * the old one removed) while a second client comes and goes; for every N
 * until one runs through without a crash, the next vfiod restores the first
 * client from what the store holds, and its connection answers.
 */
START_TEST(fd_store_killed_at_every_step_of_a_save)
{
        char sock[4200], notify[4200], log[16384], step[16];
        struct store st = {0};
        int nfd, err, c, c2, status = 0;
        bool died;
        unsigned n;
        pid_t pid;

        pid = start_with_a_client(sock, notify, &nfd, &err, &c);
        for (n = 1; n < 64; n++) {
                stop_following(nfd, &st, pid, err, log, sizeof(log));
                snprintf(step, sizeof(step), "%u", n);
                spawn_crash_step = step;
                pid = spawn_from(notify, sock, &st, &err);
                spawn_crash_step = NULL;
                /* The workload: a client comes, says Hello, goes. */
                c2 = connect_retry(sock);
                /* Its connection stays open in the store when vfiod dies: do not wait long. */
                ck_assert_int_eq(setsockopt(c2, SOL_SOCKET, SO_RCVTIMEO,
                                            &(struct timeval){.tv_usec = 500000},
                                            sizeof(struct timeval)),
                                 0);
                try_hello(c2);
                close(c2);
                died = false;
                for (int i = 0; i < 30 && !died; i++) {
                        store_follow(nfd, &st, 10);
                        died = waitpid(pid, &status, WNOHANG) == pid;
                }
                if (!died)
                        break; /* past the last step */
                drain(err, log, sizeof(log));
                close(err);
                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s", log);
                ck_assert_msg(strstr(log, "killing vfiod at this step of a save"), "%s", log);
                store_follow(nfd, &st, 20);
                /* The next vfiod has the first client, whatever step the last one died at. */
                pid = spawn_from(notify, sock, &st, &err);
                ck_assert_msg(ping(c, 2) == 1, "after a crash at step %u", n);
        }
        /* Saves of a connect, a Hello and a disconnect: more than a few steps. */
        ck_assert_uint_gt(n, 8);
        ck_assert_uint_lt(n, 64);
        stop_following(nfd, &st, pid, err, log, sizeof(log));
        ck_assert_msg(strstr(log, "Restored 0 lease(s) and 1 client(s)"), "%s", log);
        store_clear(&st);
        close(c);
        notify_close(nfd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-systemd");
        TCase *tc = tcase_create("systemd");

        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, socket_activated_notify_reload_idle_exit);
        tcase_add_test(tc, fd_store_follows_the_leases);
        tcase_add_test(tc, fd_store_keeps_an_iommufd_lease);
        tcase_add_test(tc, fd_store_client_restored);
        tcase_add_test(tc, fd_store_torn_state_torn_down);
        tcase_add_test(tc, fd_store_restores_the_unit_it_saved);
        tcase_add_test(tc, fd_store_keeps_a_group_lease);
        tcase_add_test(tc, fd_store_restores_an_iommufd_direct_lease);
        tcase_add_test(tc, fd_store_restores_an_iommufd_brokered_lease);
        tcase_add_test(tc, fd_store_crash_while_saving);
        tcase_add_test(tc, fd_store_newer_of_two_states);
        tcase_add_test(tc, fd_store_older_state_when_the_newer_is_torn);
        tcase_add_test(tc, fd_store_killed_at_every_step_of_a_save);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
