/* SPDX-License-Identifier: MIT */
/*
 * The server: its own socket (fresh, stale, taken by a live daemon, not a
 * socket), peer credentials from the kernel (a child process with another
 * uid), the connection limit, and vfiod itself as a process on the fake
 * ioctl layer (tests/daemon/vfiod-fake): options, a second instance,
 * SIGHUP, SIGTERM releasing leases and removing the socket.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/server.h"
#include "proto/envelope.h"
#include "proto/transport.h"
#include "tests/daemon/harness.h"
#include "tests/testutil.h"

static char sock_path[4200];

static int connect_to(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -errno;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

START_TEST(own_socket)
{
        char *dir = testutil_mkdtemp("vfiod-sock");
        char path[4400], parent[4200];
        struct stat st;
        int fd1, fd2, fd3;

        snprintf(parent, sizeof(parent), "%s/vfiod", dir);
        snprintf(path, sizeof(path), "%s/vfiod.sock", parent);
        vfiod_log_set_max_level(LOG_CRIT);
        fd1 = vfiod_socket_bind(path);
        ck_assert_int_ge(fd1, 0);
        ck_assert_int_eq(stat(parent, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0755);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0666);
        ck_assert(fcntl(fd1, F_GETFD) & FD_CLOEXEC);
        /* A live daemon answers there: refuse. */
        ck_assert_int_eq(vfiod_socket_bind(path), -EADDRINUSE);
        /* It dies without cleaning up: the stale socket is replaced. */
        close(fd1);
        fd2 = vfiod_socket_bind(path);
        ck_assert_int_ge(fd2, 0);
        close(fd2);
        /* Not a socket at all: left alone. */
        ck_assert_int_eq(unlink(path), 0);
        testutil_write_file(parent, "vfiod.sock", "precious");
        ck_assert_int_lt(vfiod_socket_bind(path), 0);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(unlink(path), 0);
        fd3 = vfiod_socket_bind(path);
        ck_assert_int_ge(fd3, 0);
        close(fd3);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

/* Runs in a child as uid/gid 65534: Hello, then Stats must be EPERM; exit 0 when so. */
static int child_unprivileged(const char *path)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        struct vfiod_msg *m = NULL;
        int fd;

        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
                return 10;
        fd = connect_to(path);
        if (fd < 0)
                return 11;
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        if (vfiod_msg_send(fd, &env, NULL, 0) < 0 || vfiod_msg_recv(fd, 0, &m, NULL) != 1)
                return 12;
        if (m->env->body_case != VFIOD__ENVELOPE__BODY_HELLO_REPLY ||
            (m->env->hello_reply->capabilities & VFIOD__CAPABILITY__CAPABILITY_ADMIN))
                return 13;
        vfiod_msg_free(m);
        env = ENVELOPE(stats, &st);
        env.id = 2;
        if (vfiod_msg_send(fd, &env, NULL, 0) < 0 || vfiod_msg_recv(fd, 0, &m, NULL) != 1)
                return 14;
        if (m->env->body_case != VFIOD__ENVELOPE__BODY_ERROR || m->env->error->errnum != EPERM)
                return 15;
        vfiod_msg_free(m);
        /* The policy names uid 1000 only: this peer sees nothing. */
        env = ENVELOPE(list_devices, &ld);
        env.id = 3;
        if (vfiod_msg_send(fd, &env, NULL, 0) < 0 || vfiod_msg_recv(fd, 0, &m, NULL) != 1)
                return 16;
        if (m->env->body_case != VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY ||
            m->env->list_devices_reply->n_devices != 0)
                return 17;
        vfiod_msg_free(m);
        close(fd);
        return 0;
}

static void listen_in_root(void)
{
        int fd;

        snprintf(sock_path, sizeof(sock_path), "%s/run/vfiod.sock", H.root);
        ck_assert_int_eq(chmod(H.root, 0755), 0); /* the unprivileged child must get in */
        fd = vfiod_socket_bind(sock_path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(vfiod_server_listen_take(H.server, fd), 0);
}

START_TEST(peer_credentials_from_the_kernel)
{
        struct vfiod_client *c;
        pid_t pid;
        int status = -1, fd;

        h_start(h_default_conf);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        listen_in_root();
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(child_unprivileged(sock_path));
        for (int i = 0; i < 1000; i++) {
                h_spin();
                if (waitpid(pid, &status, WNOHANG) == pid)
                        break;
                usleep(2000);
        }
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        /* And this process (root) is admin, with its own pid. */
        fd = connect_to(sock_path);
        ck_assert_int_ge(fd, 0);
        h_spin();
        c = container_of(H.server->clients.prev, struct vfiod_client, link);
        ck_assert_uint_eq(c->peer.uid, getuid());
        ck_assert_int_eq(c->peer.pid, getpid());
        h_hello(fd, 0);
        ck_assert(c->admin);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/*
 * A connection made by a child process on a socket of this process: the child
 * connects it and then waits until this process closes hold[1] (hold NULL: it
 * exits at once and is reaped). The kernel's SO_PEERCRED names the child.
 * Returns its pid.
 */
static pid_t connect_in_child(int fd, const int *hold)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int ready[2], status;
        char b;
        pid_t pid;

        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        _exit(1);
                (void)write(ready[1], "c", 1);
                if (hold) {
                        close(hold[1]);
                        (void)read(hold[0], &b, 1);
                }
                _exit(0);
        }
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &b, 1), 1);
        close(ready[0]);
        if (!hold) {
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        return pid;
}

/* The client the server accepted last. */
static struct vfiod_client *last_client(void)
{
        ck_assert(!list_empty(&H.server->clients));
        return container_of(H.server->clients.prev, struct vfiod_client, link);
}

/*
 * The unit and slice belong to the process that connected, not to its pid:
 * what the fake lookup (VFIOD_FAKE_UNITS, tests/daemon/fake-units.c) says of
 * a pid stands for what /proc/PID/cgroup says of it now. A client alive
 * through the lookup gets its unit; one that connected and exited before the
 * daemon accepted (its pid now a process of vm@9.service), or that exits
 * during the lookup, gets none, and Units=vm@*.service does not name it.
 */
START_TEST(unit_of_the_process_not_the_pid)
{
        char units[4300], line[256];
        struct vfiod_client *c;
        int fds[3], hold[2], live, gone, dying, e = 0;
        size_t n;
        pid_t pid;

        h_start("[Device t]\nMatch=0000:00:01.0\nUnits=vm@*.service\n");
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        listen_in_root();
        snprintf(units, sizeof(units), "%s/units", H.root);
        ck_assert_int_eq(setenv("VFIOD_FAKE_UNITS", units, 1), 0);

        /* Alive from connect to well after the lookup. */
        ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
        live = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        pid = connect_in_child(live, hold);
        snprintf(line, sizeof(line), "%d vm@1.service machine.slice\n", (int)pid);
        testutil_write_file(H.root, "units", line);
        h_spin();
        c = last_client();
        ck_assert_int_eq(c->peer.pid, pid);
        ck_assert_pstr_eq(c->peer.unit, "vm@1.service");
        ck_assert_pstr_eq(c->peer.slice, "machine.slice");
        h_hello(live, 0);
        ck_assert_uint_ne(
            h_acquire_ok(live, "0000:00:01.0", 0, VFIOD__MODE__MODE_DIRECT, fds, &n, NULL), 0);
        h_close_all(fds, n);
        close(live);
        close(hold[1]);
        close(hold[0]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        h_spin();

        /* Connected, then gone before the accept; its pid is now vm@9.service's. */
        gone = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        pid = connect_in_child(gone, NULL);
        snprintf(line, sizeof(line), "%d vm@9.service machine.slice\n", (int)pid);
        testutil_write_file(H.root, "units", line);
        h_spin();
        c = last_client();
        ck_assert_int_eq(c->peer.pid, pid);
        ck_assert_msg(!c->peer.unit, "unit '%s' of a pid whose process is gone", c->peer.unit);
        ck_assert_msg(!c->peer.slice, "slice '%s' of a pid whose process is gone", c->peer.slice);
        h_hello(gone, 0);
        ck_assert_uint_eq(
            h_acquire(gone, "0000:00:01.0", 0, VFIOD__MODE__MODE_DIRECT, fds, &n, NULL, &e), 0);
        ck_assert_int_eq(e, EPERM);
        close(gone);

        /* Alive at the accept, gone by the end of the lookup. */
        ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
        dying = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        pid = connect_in_child(dying, hold);
        snprintf(line, sizeof(line), "%d vm@9.service machine.slice exit\n", (int)pid);
        testutil_write_file(H.root, "units", line);
        h_spin();
        c = last_client();
        ck_assert_int_eq(c->peer.pid, pid);
        ck_assert_msg(!c->peer.unit, "unit '%s' read while its process exited", c->peer.unit);
        ck_assert_msg(!c->peer.slice, "slice '%s' read while its process exited", c->peer.slice);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        close(hold[1]);
        close(hold[0]);
        close(dying);
        h_spin();
        unsetenv("VFIOD_FAKE_UNITS");
        h_stop();
}
END_TEST

/*
 * Starts a daemon with conf, listening in its root; connects twice (*ret_a,
 * *ret_b), then a third time: that one is refused, ENOSPC with a reason
 * holding `reason`, and closed. Returns it.
 */
static int third_refused(const char *conf, const char *reason, int *ret_a, int *ret_b)
{
        struct vfiod_msg *m;
        int c;

        h_start(conf);
        listen_in_root();
        *ret_a = connect_to(sock_path);
        *ret_b = connect_to(sock_path);
        h_spin();
        c = connect_to(sock_path);
        h_spin();
        ck_assert_uint_eq(H.server->n_clients, 2);
        m = h_recv(c);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ERROR);
        ck_assert_msg(strstr(m->env->error->reason, reason), "reason: %s", m->env->error->reason);
        ck_assert_int_eq(h_error(m), ENOSPC);
        ck_assert(h_closed(c));
        return c;
}

START_TEST(connection_limit)
{
        int a, b, c;

        c = third_refused("[Daemon]\nMaxConnections=2\n", "MaxConnections=2", &a, &b);
        h_hello(a, 0);
        close(c);
        close(b);
        h_spin();
        ck_assert_uint_eq(H.server->n_clients, 1);
        c = connect_to(sock_path);
        h_hello(c, 0);
        close(a);
        close(c);
        h_spin();
        h_stop();
}
END_TEST

/* Receives one fd sent with SCM_RIGHTS on sock. */
static int recv_fd(int sock)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = sizeof(control.buf)};
        struct cmsghdr *c;
        int fd;

        ck_assert_int_eq(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC), 1);
        c = CMSG_FIRSTHDR(&mh);
        ck_assert(c && c->cmsg_type == SCM_RIGHTS);
        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        return fd;
}

/* One uid may not take every connection: the others still get theirs. */
START_TEST(connection_limit_per_user)
{
        int a, b, other, sv[2], status = -1;
        pid_t pid;

        close(third_refused("[Daemon]\nMaxConnectionsPerUser=2\n",
                            "MaxConnectionsPerUser=2 reached for uid", &a, &b));

        /* uid 1000 connects (a child that hands its socket back): taken on. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd;

                if (setresgid(1000, 1000, 1000) < 0 || setgroups(0, NULL) < 0 ||
                    setresuid(1000, 1000, 1000) < 0)
                        _exit(2);
                fd = connect_to(sock_path);
                _exit(fd >= 0 && vfiod_datagram_send(sv[1], "s", 1, &fd, 1, 0) == 0 ? 0 : 1);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
        other = recv_fd(sv[0]);
        close(sv[0]);
        close(sv[1]);
        h_spin();
        ck_assert_uint_eq(H.server->n_clients, 3);
        h_hello(other, 0);
        close(other);
        close(a);
        close(b);
        h_spin();
        h_stop();
}
END_TEST

/* ---- vfiod as a process --------------------------------------------------------------- */

static pid_t spawn_daemon_fd(const char *conf_path, const char *own_sock, int listen_fd,
                             int *ret_stderr)
{
        char vfio[4200];
        int errpipe[2];
        pid_t pid;

        snprintf(vfio, sizeof(vfio), "%s/dev/vfio", H.root);
        ck_assert_int_eq(pipe2(errpipe, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(errpipe[1], STDERR_FILENO);
                setenv("VFIOD_FAKE_DEVICES", "1=0000:00:01.0", 1);
                unsetenv("LISTEN_FDS");
                if (listen_fd >= 0) {
                        char pidbuf[32];

                        /* systemd's protocol: fd 3, LISTEN_FDS=1, LISTEN_PID=us. */
                        dup2(listen_fd, 3);
                        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                        setenv("LISTEN_FDS", "1", 1);
                        setenv("LISTEN_PID", pidbuf, 1);
                }
                if (getenv("TEST_WATCHDOG_USEC")) {
                        char pidbuf[32];

                        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                        setenv("WATCHDOG_USEC", getenv("TEST_WATCHDOG_USEC"), 1);
                        setenv("WATCHDOG_PID", pidbuf, 1);
                }
                unsetenv("JOURNAL_STREAM");
                if (getenv("VFIOD_TEST_VALGRIND")) /* e.g. "valgrind --error-exitcode=3 -q" */
                        execlp("sh", "sh", "-c", "exec $VFIOD_TEST_VALGRIND \"$@\"", "sh",
                               VFIOD_FAKE_PATH, "--socket", own_sock, "--config", conf_path,
                               "--sysfs-root", H.root, "--vfio-dir", vfio, (char *)NULL);
                execl(VFIOD_FAKE_PATH, "vfiod", "--socket", own_sock, "--config", conf_path,
                      "--sysfs-root", H.root, "--vfio-dir", vfio, (char *)NULL);
                _exit(127);
        }
        close(errpipe[1]);
        *ret_stderr = errpipe[0];
        return pid;
}

static pid_t spawn_daemon(const char *conf_path, int *ret_stderr)
{
        return spawn_daemon_fd(conf_path, sock_path, -1, ret_stderr);
}

static int wait_exit(pid_t pid)
{
        int status = -1;

        for (int i = 0; i < 500; i++) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("the daemon did not exit");
        return -1;
}

static int wait_socket(void)
{
        for (int i = 0; i < 500; i++) {
                int fd = connect_to(sock_path);
                if (fd >= 0)
                        return fd;
                usleep(10000);
        }
        ck_abort_msg("the daemon did not come up");
        return -1;
}

static struct vfiod_msg *ext_call(int fd, Vfiod__Envelope *env)
{
        struct vfiod_msg *m = NULL;

        ck_assert_int_eq(vfiod_msg_send(fd, env, NULL, 0), 0);
        ck_assert_int_eq(vfiod_msg_recv(fd, 0, &m, NULL), 1);
        ck_assert_uint_eq(m->env->id, env->id);
        return m;
}

static void drain(int fd, char *buf, size_t size)
{
        size_t o = 0;
        ssize_t n;

        while (o + 1 < size && (n = read(fd, buf + o, size - o - 1)) > 0)
                o += (size_t)n;
        buf[o] = '\0';
}

START_TEST(daemon_process)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        struct vfiod_msg *m;
        char conf[4200], log[16384];
        int fd, err1, err2, status;
        pid_t pid, second;
        struct stat st;

        h_start(NULL);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        snprintf(sock_path, sizeof(sock_path), "%s/run/vfiod.sock", H.root);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", H.root);
        testutil_write_file(H.root, "vfiod.conf", "[Device t]\nMatch=0000:00:01.0\nUsers=0\n");
        pid = spawn_daemon(conf, &err1);
        fd = wait_socket();

        /* A second daemon on the same socket refuses to start. */
        second = spawn_daemon(conf, &err2);
        ck_assert_int_eq(wait_exit(second), 1);
        drain(err2, log, sizeof(log));
        ck_assert_msg(strstr(log, "in use by a running daemon"), "%s", log);
        close(err2);

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        m = ext_call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        vfiod_msg_free(m);
        a.device = "0000:00:01.0";
        a.mode = VFIOD__MODE__MODE_BROKERED;
        env = ENVELOPE(acquire, &a);
        env.id = 2;
        m = ext_call(fd, &env);
        ck_assert_msg(m->env->body_case == VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY, "%s",
                      m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? m->env->error->reason
                                                                       : "?");
        ck_assert_uint_eq(m->n_fds, 1);
        vfiod_msg_free(m); /* closes our device fd */

        /* SIGHUP with a broken file keeps the old configuration. */
        testutil_write_file(H.root, "vfiod.conf", "[Device t]\nMatch=0000:00:01.0\nUsers=0\nX=1\n");
        ck_assert_int_eq(kill(pid, SIGHUP), 0);
        usleep(100000);
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);

        /* SIGTERM: the lease is released (full sequence), the socket removed. */
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        status = wait_exit(pid);
        drain(err1, log, sizeof(log));
        ck_assert_msg(status == 0, "exit status %d: %s", status, log);
        close(err1);
        ck_assert_msg(strstr(log, "unknown key 'X'"), "%s", log);
        ck_assert_msg(strstr(log, "the old configuration stays"), "%s", log);
        ck_assert_msg(strstr(log, "leased device '0000:00:01.0'"), "%s", log);
        ck_assert_msg(strstr(log, "released; group 1 is free"), "%s", log);
        ck_assert_msg(strstr(log, "peer_uid=0"), "%s", log);
        ck_assert_int_eq(stat(sock_path, &st), -1);
        ck_assert(h_closed(fd));
        close(fd);
        h_stop();
}
END_TEST

static int listening(int type, const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        return fd;
}

START_TEST(socket_activation)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m;
        char conf[4200], unused[4300], log[16384];
        int lfd, err, fd;
        pid_t pid;
        struct stat st;

        h_start(NULL);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", H.root);
        snprintf(sock_path, sizeof(sock_path), "%s/activated.sock", H.root);
        snprintf(unused, sizeof(unused), "%s/own.sock", H.root);
        testutil_write_file(H.root, "vfiod.conf", "");
        /* A stream socket is refused. */
        lfd = listening(SOCK_STREAM, sock_path);
        pid = spawn_daemon_fd(conf, unused, lfd, &err);
        ck_assert_int_eq(wait_exit(pid), 1);
        drain(err, log, sizeof(log));
        ck_assert_msg(strstr(log, "SOCK_SEQPACKET"), "%s", log);
        close(err);
        close(lfd);
        unlink(sock_path);
        /* A SEQPACKET one is used, and vfiod binds nothing of its own. */
        lfd = listening(SOCK_SEQPACKET, sock_path);
        pid = spawn_daemon_fd(conf, unused, lfd, &err);
        close(lfd);
        fd = wait_socket();
        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        m = ext_call(fd, &env);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        vfiod_msg_free(m);
        ck_assert_int_eq(stat(unused, &st), -1);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        ck_assert_int_eq(wait_exit(pid), 0);
        drain(err, log, sizeof(log));
        close(err);
        ck_assert_msg(strstr(log, "the socket from systemd"), "%s", log);
        /* The socket belongs to systemd: vfiod leaves it. */
        ck_assert_int_eq(stat(sock_path, &st), 0);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(notify_and_watchdog)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        char conf[4200], notify[4200], buf[512], all[4096] = "";
        int nfd, err, fd;
        pid_t pid;

        h_start(NULL);
        snprintf(conf, sizeof(conf), "%s/vfiod.conf", H.root);
        snprintf(sock_path, sizeof(sock_path), "%s/run/vfiod.sock", H.root);
        snprintf(notify, sizeof(notify), "%s/notify", H.root);
        testutil_write_file(H.root, "vfiod.conf", "");
        nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(nfd, 0);
        ck_assert_uint_lt(strlen(notify), sizeof(sa.sun_path));
        memcpy(sa.sun_path, notify, strlen(notify) + 1);
        ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        setenv("NOTIFY_SOCKET", notify, 1);
        setenv("TEST_WATCHDOG_USEC", "100000", 1);
        pid = spawn_daemon(conf, &err);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("TEST_WATCHDOG_USEC");
        fd = wait_socket();
        /* READY=1, STATUS= with the counts, then pings every 50 ms. */
        for (int i = 0; i < 8; i++) {
                ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);

                ck_assert_int_gt(n, 0);
                buf[n] = '\0';
                strncat(all, buf, sizeof(all) - strlen(all) - 2);
                strcat(all, "|");
        }
        ck_assert_msg(strstr(all, "READY=1"), "%s", all);
        ck_assert_msg(strstr(all, "STATUS=Serving: 0 lease(s), 1 client(s)|"), "%s", all);
        ck_assert_msg(strstr(all, "WATCHDOG=1|WATCHDOG=1"), "%s", all);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        ck_assert_int_eq(wait_exit(pid), 0);
        {
                ssize_t n = recv(nfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                bool stopping = false;

                while (n > 0) {
                        buf[n] = '\0';
                        stopping |= strstr(buf, "STOPPING=1") != NULL;
                        n = recv(nfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                }
                ck_assert(stopping);
        }
        close(err);
        close(nfd);
        close(fd);
        h_stop();
}
END_TEST

static int run_status(const char *a1, const char *a2)
{
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                execl(VFIOD_FAKE_PATH, "vfiod", a1, a2, (char *)NULL);
                _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

START_TEST(options)
{
        char *dir = testutil_mkdtemp("vfiod-opts");
        char good[4200], bad[4200];

        snprintf(good, sizeof(good), "%s/good.conf", dir);
        snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
        testutil_write_file(dir, "good.conf", "[Device a]\nMatch=0000:00:01.0\nUsers=0\n");
        testutil_write_file(dir, "bad.conf", "[Device a]\nUsers=0\n");
        ck_assert_int_eq(run_status("--check-config", good), 0);
        ck_assert_int_eq(run_status("--check-config", bad), 1);
        ck_assert_int_eq(run_status("--help", NULL), 0);
        ck_assert_int_eq(run_status("--version", NULL), 0);
        ck_assert_int_eq(run_status("--no-such-option", NULL), 1);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-server");
        TCase *tc = tcase_create("server");

        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, own_socket);
        tcase_add_test(tc, peer_credentials_from_the_kernel);
        tcase_add_test(tc, unit_of_the_process_not_the_pid);
        tcase_add_test(tc, connection_limit);
        tcase_add_test(tc, connection_limit_per_user);
        tcase_add_test(tc, daemon_process);
        tcase_add_test(tc, socket_activation);
        tcase_add_test(tc, notify_and_watchdog);
        tcase_add_test(tc, options);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
