/* SPDX-License-Identifier: MIT */
/*
 * The hostile-input suite on the host: vfiod-fake (vfiod on the fake ioctl
 * layer) runs as a process of its own for every test, so its fds and memory
 * can be read in /proc/<pid>; the cases (hostile.c) talk to it over its
 * socket as uid 1000 (devices granted), uid 1001 (another client) and root
 * (admin). Every test ends by proving the daemon recovered (hostile.h).
 * VFIOD_TEST_VALGRIND="valgrind --error-exitcode=3 ..." runs the daemon
 * under it; its exit status must be 0 after SIGTERM either way.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/hostile/hostile.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

static const char conf[] = "[Daemon]\n"
                           "ReleaseGraceMs=1000\n"
                           "[Device test]\n"
                           "Match=0000:00:01.0 0000:00:02.0\n"
                           "Users=1000 1001\n";

/* The same with an IOVA window: 256 MiB. */
#define WINDOW_LAST 0xfffffffull
static const char conf_windows[] = "[Daemon]\n"
                                   "ReleaseGraceMs=1000\n"
                                   "[Device test]\n"
                                   "Match=0000:00:01.0 0000:00:02.0\n"
                                   "Users=1000 1001\n"
                                   "IovaWindows=0x0-0xfffffff\n";

/* The configuration of the next daemon. */
static const char *daemon_conf = conf;

/* RLIMIT_NOFILE of the daemon; 0 = inherited. */
static rlim_t daemon_nofile;

static void start_daemon(void)
{
        char log[4200];
        pid_t pid;

        memset(&H, 0, sizeof(H));
        H.root = testutil_mkdtemp("vfiod-hostile");
        /* The test users connect to the socket in it. */
        ck_assert_int_eq(chmod(H.root, 0755), 0);
        testutil_write_file(H.root, "sys/bus/pci/devices/.keep", "");
        testutil_write_file(H.root, "dev/vfio/.keep", "");
        testutil_write_file(H.root, "run/.keep", "");
        testutil_write_file(H.root, "vfiod.conf", daemon_conf);
        snprintf(H.vfio_dir, sizeof(H.vfio_dir), "%s/dev/vfio", H.root);
        snprintf(H.conf, sizeof(H.conf), "%s/vfiod.conf", H.root);
        h_add_device("0000:00:01.0", 1, "vfio-pci");
        h_add_device("0000:00:02.0", 2, "vfio-pci");
        fake_kernel_reset(); /* the daemon has its own fake kernel */

        memset(&HE, 0, sizeof(HE));
        ck_assert_uint_lt(strlen(H.root) + 20, sizeof(HE.sock));
        snprintf(HE.sock, sizeof(HE.sock), "%s/run/vfiod.sock", H.root);
        snprintf(log, sizeof(log), "%s/vfiod.log", H.root);
        HE.skip_pipe_read_ends = true;
        HE.window_last = daemon_conf == conf_windows ? WINDOW_LAST : 0;
        HE.uid = HE.gid = 1000;
        HE.other_uid = HE.other_gid = 1001;
        snprintf(HE.device, sizeof(HE.device), "0000:00:01.0");

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(126);
                if (daemon_nofile) {
                        struct rlimit rl = {daemon_nofile, daemon_nofile};

                        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                                _exit(125);
                }
                /* Never outlive the test, whatever happens to it. */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                setenv("VFIOD_FAKE_DEVICES", "1=0000:00:01.0 2=0000:00:02.0", 1);
                unsetenv("LISTEN_FDS");
                unsetenv("NOTIFY_SOCKET");
                unsetenv("JOURNAL_STREAM");
                if (getenv("VFIOD_TEST_VALGRIND"))
                        execlp("sh", "sh", "-c", "exec $VFIOD_TEST_VALGRIND \"$@\"", "sh",
                               VFIOD_FAKE_PATH, "--debug", "--socket", HE.sock, "--config", H.conf,
                               "--sysfs-root", H.root, "--vfio-dir", H.vfio_dir, (char *)NULL);
                execl(VFIOD_FAKE_PATH, "vfiod", "--debug", "--socket", HE.sock, "--config", H.conf,
                      "--sysfs-root", H.root, "--vfio-dir", H.vfio_dir, (char *)NULL);
                _exit(127);
        }
        HE.pid = pid;
        /* Up when its socket answers (valgrind takes its time). */
        for (int i = 0; i < 300; i++) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r;

                memcpy(sa.sun_path, HE.sock, sizeof(HE.sock));
                r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                close(fd);
                if (r == 0)
                        break;
                ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "vfiod-fake exited; see %s", log);
                usleep(20000);
        }
        hostile_baseline();
}

static void stop_daemon(void)
{
        int status = -1;

        ck_assert_int_eq(kill(HE.pid, SIGTERM), 0);
        for (int i = 0; i < 1000 && waitpid(HE.pid, &status, WNOHANG) != HE.pid; i++)
                usleep(10000);
        if (!WIFEXITED(status)) {
                kill(HE.pid, SIGKILL);
                waitpid(HE.pid, &status, 0);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "vfiod-fake did not exit cleanly (status 0x%x); see %s/vfiod.log", status,
                      H.root);
        testutil_rmtree(H.root);
        free(H.root);
        H.root = NULL;
}

static void setup(void)
{
        start_daemon();
}

static void teardown(void)
{
        hostile_check_recovered();
        stop_daemon();
}

/* utime + stime of the daemon, in clock ticks. */
static unsigned long daemon_cpu_ticks(void)
{
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)HE.pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
        fclose(f);
        /* After the command's ")": state is field 3, utime 14, stime 15. */
        p = strrchr(buf, ')');
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
        return ut + st;
}

static long log_size(void)
{
        char path[4200];
        struct stat st;

        snprintf(path, sizeof(path), "%s/vfiod.log", H.root);
        return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void setup_windows(void)
{
        daemon_conf = conf_windows;
        start_daemon();
}

static void setup_nofile(void)
{
        daemon_nofile = 24;
        start_daemon();
}

/*
 * Out of fds: connections it cannot accept wait in the backlog. The daemon
 * must neither spin on the listening socket nor flood its log, must answer
 * the clients it has, and must serve again once fds are free.
 */
START_TEST(test_nofile_accept)
{
        enum { N = 40 };
        int fds[N], admin;
        unsigned long t0, t1;
        long log0, log1;

        admin = hostile_connect(0, 0);
        hostile_hello(admin);
        for (int i = 0; i < N; i++)
                fds[i] = hostile_connect(HE.uid, HE.gid);
        usleep(200000);
        t0 = daemon_cpu_ticks();
        log0 = log_size();
        sleep(1);
        t1 = daemon_cpu_ticks();
        log1 = log_size();
        ck_assert_msg(t1 - t0 < (unsigned long)sysconf(_SC_CLK_TCK) / 5,
                      "the daemon used %lu of %ld ticks in 1 s out of fds (spinning)", t1 - t0,
                      sysconf(_SC_CLK_TCK));
        ck_assert_msg(log1 - log0 < 4096, "the daemon logged %ld bytes in 1 s out of fds",
                      log1 - log0);
        /* The first clients were accepted: their requests get clear errors, or work. */
        {
                Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
                Vfiod__Envelope env = ENVELOPE(acquire, &a);
                struct vfiod_msg *m;
                int e;

                hostile_hello(fds[0]);
                a.device = HE.device;
                a.mode = VFIOD__MODE__MODE_DIRECT;
                m = hostile_call(fds[0], &env, NULL, 0);
                e = m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? m->env->error->errnum : 0;
                ck_assert_msg(e == 0 || e == EMFILE, "Acquire out of fds: errno %d (%s)", e,
                              strerror(e));
                vfiod_msg_free(m);
                fprintf(stderr, "out of fds: Acquire %s\n", e ? strerror(e) : "worked");
        }
        for (int i = 0; i < N; i++)
                close(fds[i]);
        close(admin);
}
END_TEST

/*
 * A socket whose close blocks: TCP on loopback with data its peer never
 * reads still in its send queue, and SO_LINGER {1, INT_MAX}. The last close
 * waits until the data is sent or the peer resets. Returns it; the peer (the
 * test's to close: that resets the connection and ends the wait) in
 * *ret_peer.
 */
static int lingering_socket(int *ret_peer)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        struct linger lg = {.l_onoff = 1, .l_linger = INT_MAX};
        int small = 4096, listener, fd, peer;
        char junk[4096] = {0};

        listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(listener, 0);
        ck_assert_int_eq(setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        ck_assert_int_eq(bind(listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(getsockname(listener, (struct sockaddr *)&sa, &len), 0);
        ck_assert_int_eq(listen(listener, 1), 0);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
        peer = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(peer, 0);
        close(listener);
        /* Fill the peer's window and our send queue: the rest stays unsent. */
        for (int i = 0; i < 10000; i++) {
                ssize_t n = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);

                if (n < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        break;
                }
        }
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        *ret_peer = peer;
        return fd;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A Hello, packed into buf; returns its length. */
static size_t pack_hello(uint8_t *buf, size_t size)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        size_t len;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        env.id = 1;
        len = vfiod__envelope__get_packed_size(&env);
        ck_assert_uint_le(len, size);
        vfiod__envelope__pack(&env, buf);
        return len;
}

/*
 * The test user sends a Hello with an fd whose close blocks until *ret_peer
 * is closed (a lingering TCP socket), so that the daemon holds its last
 * reference. Returns the test user's connection.
 */
static int block_the_closer(int *ret_peer)
{
        uint8_t buf[64];
        size_t len = pack_hello(buf, sizeof(buf));
        int bad = lingering_socket(ret_peer), attacker = hostile_connect(HE.uid, HE.gid);

        /*
         * Stopped, the daemon cannot receive the datagram before the test
         * closes its own copy (the datagram in flight holds one, so this close
         * does not block).
         */
        ck_assert_int_eq(kill(HE.pid, SIGSTOP), 0);
        ck_assert_int_eq(rawclient_send_bytes(attacker, buf, len, &bad, 1), (ssize_t)len);
        close(bad);
        ck_assert_int_eq(kill(HE.pid, SIGCONT), 0);
        usleep(100000);
        return attacker;
}

/* How long a new client of the other test user waits for Hello and ListDevices. */
static double other_user_served_in(void)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        double t0 = now_s(), took;
        int other = hostile_connect(HE.other_uid, HE.other_gid);
        struct vfiod_msg *m;

        hostile_hello(other);
        m = hostile_call(other, &env, NULL, 0);
        took = now_s() - t0;
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        vfiod_msg_free(m);
        close(other);
        return took;
}

/*
 * An fd whose close blocks, attached to a Hello: the daemon must not close it
 * on its event loop. The attacker's connection is dropped and another client
 * is served meanwhile, within a second, while the close still waits.
 */
START_TEST(test_blocking_close_does_not_stall)
{
        int peer, attacker = block_the_closer(&peer);
        double took = other_user_served_in();

        ck_assert_msg(took < 1.0, "another client waited %.2f s", took);
        ck_assert(hostile_dropped(attacker));
        close(attacker);
        /* The peer resets the connection: the daemon's close ends. */
        close(peer);
}
END_TEST

/*
 * A user whose own close blocks may hold the closer, and a second user may
 * fill every place it has for that user: a third user, who sends nothing
 * but what requests take, is still served at once.
 */
START_TEST(test_two_users_cannot_stall_a_third)
{
        int nulls[VFIOD_PROTO_MAX_FDS];
        uint8_t buf[64];
        size_t len = pack_hello(buf, sizeof(buf));
        int peer, attacker = block_the_closer(&peer);
        double took;

        ck_assert(hostile_dropped(attacker));
        /* root, a second user: two datagrams full of fds no request takes, each dropped. */
        for (size_t i = 0; i < VFIOD_PROTO_MAX_FDS; i++)
                ck_assert_int_ge(nulls[i] = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
        for (int round = 0; round < 2; round++) {
                int flooder = hostile_connect(0, 0);

                ck_assert_int_eq(
                    rawclient_send_bytes(flooder, buf, len, nulls, VFIOD_PROTO_MAX_FDS),
                    (ssize_t)len);
                ck_assert(hostile_dropped(flooder));
                close(flooder);
        }
        for (size_t i = 0; i < VFIOD_PROTO_MAX_FDS; i++)
                close(nulls[i]);
        took = other_user_served_in();
        ck_assert_msg(took < 1.0, "a third user waited %.2f s", took);
        close(attacker);
        close(peer);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("hostile");
        TCase *tc = tcase_create("protocol");
        TCase *kill = tcase_create("sigkill");

        /* The tests run as root and act as uid 1000/1001 with seteuid(). */
        if (geteuid() != 0) {
                fprintf(stderr, "test-hostile: needs root (seteuid to the test users); skipped\n");
                return 77;
        }
        tcase_add_checked_fixture(tc, setup, teardown);
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 120);
        hostile_add_cases(tc);
        /* Host only: it needs TCP on loopback. */
        tcase_add_test(tc, test_blocking_close_does_not_stall);
        tcase_add_test(tc, test_two_users_cannot_stall_a_third);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(kill, setup, teardown);
        testutil_tcase_fd_checked(kill);
        tcase_set_timeout(kill, 60);
        hostile_add_kill_cases(kill);
        suite_add_tcase(s, kill);

        tc = tcase_create("windows");
        tcase_add_checked_fixture(tc, setup_windows, teardown);
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 60);
        hostile_add_window_cases(tc);
        suite_add_tcase(s, tc);

        /* valgrind needs fds of its own: not with RLIMIT_NOFILE 24. */
        if (getenv("VFIOD_TEST_VALGRIND")) {
                fprintf(stderr, "test-hostile: the out-of-fds case is left out under valgrind\n");
                return testutil_run_suite(s);
        }
        tc = tcase_create("nofile");
        tcase_add_checked_fixture(tc, setup_nofile, teardown);
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_nofile_accept);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
