/* SPDX-License-Identifier: MIT */
/*
 * vfiod under systemd's protocols, on the fake ioctl layer: started by
 * systemd-socket-activate on the first connection (the socket named
 * "vfiod" with sd_listen_fds_with_names), its sd_notify messages read by a
 * receiver of the test's own (READY=1, STATUS= with the counts, RELOADING=1
 * with MONOTONIC_USEC= on SIGHUP, FDSTOREREMOVE=1 for an fd-store entry it
 * does not restore), and its exit when idle (--exit-idle).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
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

#include "tests/daemon/harness.h"
#include "tests/testutil.h"

#define SOCKET_ACTIVATE "systemd-socket-activate"

static int dgram_receiver(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        return fd;
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
        struct timeval tv = {.tv_sec = 5};

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
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Hello h = VFIOD__HELLO__INIT;
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
        env.body_case = VFIOD__ENVELOPE__BODY_HELLO;
        env.hello = &h;
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
        close(nfd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-systemd");
        TCase *tc = tcase_create("systemd");

        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, socket_activated_notify_reload_idle_exit);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
