/* SPDX-License-Identifier: MIT */
/*
 * vfioctl: its JSON writer, and the binary itself run against the scripted
 * fake daemon listening on a temporary socket path.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/json.h"
#include "client-lib/vfiod.h"
#include "proto/envelope.h"
#include "proto/macro.h"
#include "tests/client-lib/fake-daemon.h"
#include "tests/testutil.h"

#define CAPS_ALL (VFIOD_CAP_DIRECT | VFIOD_CAP_BROKERED | VFIOD_CAP_IRQS | VFIOD_CAP_EVENTS)

/* ------------------------------------------------------------------------- */
/* JSON writer */

static char *json_of(void (*write)(struct json *j))
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        struct json j;

        ck_assert_ptr_nonnull(f);
        json_init(&j, f);
        write(&j);
        ck_assert_int_eq(fclose(f), 0);
        return buf;
}

static void write_escapes(struct json *j)
{
        json_begin_array(j);
        json_string(j, "quote \" backslash \\ slash /");
        json_string(j, "nl\n tab\t cr\r bs\b ff\f bell\a esc\x1b del\x7f");
        json_string(j, "caf\xc3\xa9");
        json_string(j, NULL);
        json_end_array(j);
}

static void write_nested(struct json *j)
{
        json_begin_object(j);
        json_key(j, "a");
        json_uint(j, UINT64_MAX);
        json_key(j, "b");
        json_begin_array(j);
        json_begin_object(j);
        json_end_object(j);
        json_bool(j, true);
        json_null(j);
        json_end_array(j);
        json_key(j, "c\"");
        json_bool(j, false);
        json_end_object(j);
}

START_TEST(test_json)
{
        char *s = json_of(write_escapes);

        ck_assert_str_eq(s, "[\"quote \\\" backslash \\\\ slash /\","
                            "\"nl\\n tab\\t cr\\r bs\\b ff\\f bell\\u0007 esc\\u001b del\\u007f\","
                            "\"caf\xc3\xa9\",null]");
        free(s);
        s = json_of(write_nested);
        ck_assert_str_eq(s, "{\"a\":18446744073709551615,\"b\":[{},true,null],\"c\\\"\":false}");
        free(s);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Running vfioctl */

struct run {
        int status; /* exit status, or 128 + signal */
        char *out, *err;
};

static char *read_all(int fd)
{
        off_t size = lseek(fd, 0, SEEK_END);
        char *buf;

        ck_assert_int_ge(size, 0);
        buf = calloc(1, (size_t)size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), size);
        return buf;
}

/* Runs vfioctl with args (NULL-terminated) and collects its stdout and stderr. */
static struct run run_vfioctl(const char *const *args)
{
        const char *bin = getenv("VFIOCTL") ? getenv("VFIOCTL") : "client-lib/vfioctl";
        const char *argv[32] = {"vfioctl"};
        int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
        struct run r = {0};
        size_t n = 1;
        pid_t pid;
        int status;

        ck_assert_int_ge(out, 0);
        ck_assert_int_ge(err, 0);
        for (; args[n - 1]; n++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n] = args[n - 1];
        }
        argv[n] = NULL;

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
                        _exit(99);
                /* Nothing of the test process but stdio reaches vfioctl. */
                (void)close_range(3, ~0U, 0);
                execv(bin, (char **)argv);
                _exit(98);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r.out = read_all(out);
        r.err = read_all(err);
        close(out);
        close(err);
        return r;
}

static void run_done(struct run *r)
{
        free(r->out);
        free(r->err);
}

/* A temporary folder with the fake's socket path in it. */
struct place {
        char *dir, *sock;
};

static struct place place_new(void)
{
        struct place p = {.dir = testutil_mkdtemp("vfioctl")};

        ck_assert_int_gt(asprintf(&p.sock, "%s/vfiod.sock", p.dir), 0);
        return p;
}

static void place_free(struct place *p)
{
        testutil_rmtree(p->dir);
        free(p->dir);
        free(p->sock);
}

/* ------------------------------------------------------------------------- */
/* list */

static void script_list(int sock, void *userdata)
{
        Vfiod__Mode modes[] = {VFIOD__MODE__MODE_DIRECT, VFIOD__MODE__MODE_BROKERED,
                               VFIOD__MODE__MODE_GROUP};
        Vfiod__DeviceInfo d0 = VFIOD__DEVICE_INFO__INIT, d1 = VFIOD__DEVICE_INFO__INIT;
        Vfiod__DeviceInfo *devs[] = {&d0, &d1};
        Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
        char *l0_devices[] = {"0000:00:05.0"};
        Vfiod__LeaseInfo l0 = VFIOD__LEASE_INFO__INIT;
        Vfiod__LeaseInfo *leases[] = {&l0};
        Vfiod__ListLeasesReply llr = VFIOD__LIST_LEASES_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices_reply, &lr);
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        d0.device = "0000:00:04.0";
        d0.vendor_id = 0x1234;
        d0.device_id = 0x11e8;
        d0.class_code = 0x00ff00;
        d0.iommu_group = 5;
        d0.driver = "vfio-pci";
        d0.state = VFIOD__LEASE_STATE__LEASE_STATE_FREE;
        d0.n_allowed_modes = 3;
        d0.allowed_modes = modes;
        d1.device = "0000:00:05.0";
        d1.vendor_id = 0x8086;
        d1.device_id = 0x10d3;
        d1.class_code = 0x020000;
        d1.iommu_group = 6;
        d1.driver = "odd \"driver\"\n";
        d1.state = VFIOD__LEASE_STATE__LEASE_STATE_LEASED;
        lr.n_devices = 2;
        lr.devices = devs;
        fake_answer(sock, m, &env, NULL, 0);

        /* An admin's list also shows who holds the others' devices. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_LEASES);
        l0.lease_id = 8;
        l0.n_devices = 1;
        l0.devices = l0_devices;
        l0.iommu_group = 6;
        l0.uid = 1000;
        l0.gid = 1000;
        l0.pid = 4242;
        l0.unit = "vm@web.service";
        l0.mode = VFIOD__MODE__MODE_DIRECT;
        l0.domain_id = 2;
        l0.status = VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE;
        llr.n_leases = 1;
        llr.leases = leases;
        FAKE_ANSWER(sock, m, list_leases_reply, &llr);
        fake_expect_eof(sock);
}

START_TEST(test_list_json)
{
        struct place p = place_new();
        const char *args[] = {"--socket", p.sock, "--json", "list", NULL};
        struct fake f;
        struct run r;

        fake_start_listen(&f, p.sock, script_list, NULL);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
        ck_assert_str_eq(r.err, "");
        ck_assert_str_eq(
            r.out,
            "[{\"device\":\"0000:00:04.0\",\"vendor_id\":4660,\"device_id\":4584,"
            "\"class_code\":65280,\"iommu_group\":5,\"driver\":\"vfio-pci\",\"mdev_type\":null,"
            "\"state\":\"free\","
            "\"allowed_modes\":[\"direct\",\"brokered\",\"group\"],\"lease_id\":null,"
            "\"holder\":null},"
            "{\"device\":\"0000:00:05.0\",\"vendor_id\":32902,\"device_id\":4307,"
            "\"class_code\":131072,\"iommu_group\":6,\"driver\":\"odd "
            "\\\"driver\\\"\\n\",\"mdev_type\":null,"
            "\"state\":\"leased\",\"allowed_modes\":[],\"lease_id\":null,"
            "\"holder\":{\"lease_id\":8,\"uid\":1000,\"gid\":1000,\"pid\":4242,"
            "\"unit\":\"vm@web.service\"}}]\n");
        run_done(&r);
        place_free(&p);
}
END_TEST

START_TEST(test_list_table)
{
        struct place p = place_new();
        const char *args[] = {"list", NULL};
        struct fake f;
        struct run r;

        /* The socket through $VFIOD_SOCKET this time. */
        ck_assert_int_eq(setenv("VFIOD_SOCKET", p.sock, 1), 0);
        fake_start_listen(&f, p.sock, script_list, NULL);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
        ck_assert_msg(strstr(r.out, "DEVICE        ID         CLASS   GROUP  DRIVER") == r.out,
                      "header: %s", r.out);
        ck_assert_ptr_nonnull(strstr(r.out, "0000:00:04.0  1234:11e8  00ff00  5      vfio-pci"));
        ck_assert_ptr_nonnull(strstr(r.out, "free    direct,brokered,group  -\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "uid 1000 pid 4242 vm@web.service (lease 8)\n"));
        run_done(&r);
        place_free(&p);
        ck_assert_int_eq(unsetenv("VFIOD_SOCKET"), 0);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* acquire */

struct acquire_script {
        Vfiod__Mode mode;
        int fds[3]; /* device, group, container */
        bool send_event;
        const char *started; /* with send_event: wait for COMMAND to create this file */
        int refuse;          /* errno to refuse the acquire with, 0 = grant */
        bool child_stats;    /* COMMAND sends Stats on the inherited connection */
};

static void script_acquire(int sock, void *userdata)
{
        const struct acquire_script *s = userdata;
        Vfiod__AcquireReply ar = VFIOD__ACQUIRE_REPLY__INIT;
        struct vfiod_msg *m;
        size_t n_fds = 1;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        fake_check(strcmp(m->env->acquire->device, "0000:00:04.0") == 0, "device");
        fake_check(m->env->acquire->mode == s->mode, "mode %d", m->env->acquire->mode);
        fake_check(m->env->acquire->domain_id == 0, "domain");
        if (s->refuse) {
                fake_reply_error(sock, m->env->id, s->refuse, "policy says no");
                vfiod_msg_free(m);
                fake_expect_eof(sock);
                return;
        }
        ar.lease_id = 3;
        ar.domain_id = 11;
        ar.iommu_group = 5;
        ar.device = "0000:00:04.0";
        ar.mode = s->mode;
        ar.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        ar.device_fd = 0;
        if (s->mode == VFIOD__MODE__MODE_DIRECT) {
                ar.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
                ar.group_fd = 1;
                ar.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD;
                ar.container_fd = 2;
                n_fds = 3;
        }
        fake_answer(sock, m, &ENVELOPE(acquire_reply, &ar), s->fds, n_fds);

        /*
         * COMMAND's own requests, on the connection it inherited: Hello again,
         * its lease's grant (ListDevices), Stats.
         */
        if (s->child_stats) {
                Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;
                Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
                Vfiod__DeviceInfo di = VFIOD__DEVICE_INFO__INIT, *dis[] = {&di};
                Vfiod__LeaseGrant g = VFIOD__LEASE_GRANT__INIT;
                Vfiod__IovaWindow w = VFIOD__IOVA_WINDOW__INIT, *ws[] = {&w};
                uint32_t counts[] = {1, 1, 16, 1, 1};

                fake_hello(sock, 1, CAPS_ALL);
                m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
                fake_check(strcmp(m->env->list_devices->device, "0000:00:04.0") == 0, "device");
                g.rule = "vfs";
                g.max_pinned_bytes = 64 << 20;
                g.iova_restricted = true;
                w.first = 0x100000;
                w.last = 0x1fffff;
                g.n_iova_windows = 1;
                g.iova_windows = ws;
                g.n_irq_counts = 5;
                g.irq_counts = counts;
                di.device = "0000:00:04.0";
                di.state = VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU;
                di.lease_id = 3;
                di.grant = &g;
                lr.n_devices = 1;
                lr.devices = dis;
                FAKE_ANSWER(sock, m, list_devices_reply, &lr);

                m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
                sr.clients = 7;
                FAKE_ANSWER(sock, m, stats_reply, &sr);
        }

        /* Once COMMAND runs, so that the test does not depend on how fast it starts. */
        for (int i = 0; s->send_event && s->started && access(s->started, F_OK) < 0; i++) {
                fake_check(i < 2000, "COMMAND never started");
                usleep(10 * 1000);
        }
        if (s->send_event)
                fake_send_release_requested(sock, 3, "0000:00:04.0", 1000, "maintenance");

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELEASE);
        fake_check(m->env->release->lease_id == 3, "lease");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

static void acquire_fds_open(struct acquire_script *s)
{
        s->fds[0] = memfd_create("device", MFD_CLOEXEC);
        s->fds[1] = memfd_create("group", MFD_CLOEXEC);
        s->fds[2] = memfd_create("container", MFD_CLOEXEC);
        for (int i = 0; i < 3; i++)
                ck_assert_int_ge(s->fds[i], 0);
}

static void acquire_fds_close(struct acquire_script *s)
{
        for (int i = 0; i < 3; i++)
                close(s->fds[i]);
}

/* Prints what COMMAND received; exits 7. */
static const char direct_check[] =
    "test \"$VFIOD_LEASE_ID\" = 3 || exit 10\n"
    "test \"$VFIOD_DOMAIN_ID\" = 11 || exit 11\n"
    "test \"$VFIOD_DEVICE\" = 0000:00:04.0 || exit 12\n"
    "test \"$VFIOD_IOMMU_GROUP\" = 5 || exit 13\n"
    "test \"$VFIOD_MODE\" = direct || exit 14\n"
    "test -z \"$VFIOD_CONNECTION_FD\" || exit 15\n"
    "readlink /proc/$$/fd/$VFIOD_DEVICE_FD /proc/$$/fd/$VFIOD_GROUP_FD "
    "/proc/$$/fd/$VFIOD_CONTAINER_FD\n"
    /* Any other open fd is reported (the glob's own directory fd is closed by then). */
    "for f in /proc/$$/fd/*; do n=${f##*/}; case $n in\n"
    "0|1|2|\"$VFIOD_DEVICE_FD\"|\"$VFIOD_GROUP_FD\"|\"$VFIOD_CONTAINER_FD\") ;;\n"
    "*) test -e \"$f\" && echo \"extra fd $n\";; esac; done\n"
    "exit 7\n";

START_TEST(test_acquire_direct)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_DIRECT};
        const char *args[] = {"--socket", p.sock,       "acquire", "0000:00:04.0", "--", "/bin/sh",
                              "-c",       direct_check, NULL};
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 7, "status %d, stderr: %s", r.status, r.err);
        ck_assert_str_eq(r.err, "");
        /* The three fds, in the right variables, and no other fd than stdio. */
        ck_assert_str_eq(r.out, "/memfd:device (deleted)\n/memfd:group (deleted)\n"
                                "/memfd:container (deleted)\n");
        run_done(&r);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

static const char brokered_check[] = "test \"$VFIOD_MODE\" = brokered || exit 14\n"
                                     "test -z \"$VFIOD_GROUP_FD$VFIOD_CONTAINER_FD\" || exit 15\n"
                                     "readlink /proc/$$/fd/$VFIOD_DEVICE_FD\n"
                                     "readlink /proc/$$/fd/$VFIOD_CONNECTION_FD | cut -d: -f1\n"
                                     "exit 0\n";

START_TEST(test_acquire_brokered)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_BROKERED};
        const char *args[] = {"--socket", p.sock,    "acquire", "--brokered",   "0000:00:04.0",
                              "--",       "/bin/sh", "-c",      brokered_check, NULL};
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        /* Stale values from the caller's environment must not reach COMMAND. */
        ck_assert_int_eq(setenv("VFIOD_GROUP_FD", "9", 1), 0);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s, out: %s", r.status, r.err, r.out);
        ck_assert_str_eq(r.out, "/memfd:device (deleted)\nsocket\n");
        ck_assert_int_eq(unsetenv("VFIOD_GROUP_FD"), 0);
        run_done(&r);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

/*
 * COMMAND adopts the connection with vfiod_connect_env() (Hello again: the
 * daemon's reply is then known), takes its lease with vfiod_lease_from_env()
 * and makes a call on it.
 */
START_TEST(test_acquire_brokered_client)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_BROKERED, .child_stats = true};
        const char *child =
            getenv("BROKERED_CHILD") ? getenv("BROKERED_CHILD") : "tests/client-lib/brokered-child";
        const char *args[] = {"--socket",     p.sock, "acquire", "--brokered",
                              "0000:00:04.0", "--",   child,     NULL};
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
        ck_assert_str_eq(r.out, "server fake 1.0\n"
                                "lease 3 domain 11 brokered, rule 'vfs', window 0x100000, "
                                "16 MSI-X vectors\n"
                                "clients 7\n");
        ck_assert_str_eq(r.err, "");
        run_done(&r);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

START_TEST(test_acquire_release_requested)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_DIRECT, .send_event = true};
        char *started, *command;
        const char *args[] = {"--socket", p.sock, "acquire", "0000:00:04.0", "--", "/bin/sh",
                              "-c",       NULL,   NULL};

        ck_assert_int_gt(asprintf(&started, "%s/started", p.dir), 0);
        ck_assert_int_gt(asprintf(&command, "touch '%s' && exec sleep 30", started), 0);
        s.started = started;
        args[7] = command;
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        /* vfioctl stopped COMMAND (SIGTERM) and released the lease. */
        ck_assert_msg(r.status == 128 + 15, "status %d, stderr: %s", r.status, r.err);
        ck_assert_msg(strstr(r.err, "wants lease 3 ('0000:00:04.0') back") != NULL, "stderr: %s",
                      r.err);
        ck_assert_ptr_nonnull(strstr(r.err, "admin-revoke: maintenance"));
        run_done(&r);
        free(started);
        free(command);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

START_TEST(test_acquire_refused)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_DIRECT, .refuse = EPERM};
        const char *args[] = {"--socket", p.sock, "acquire", "0000:00:04.0", "--", "true", NULL};
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_int_eq(r.status, 125);
        ck_assert_str_eq(r.err, "vfioctl: acquire '0000:00:04.0': Operation not permitted: "
                                "policy says no\n");
        ck_assert_str_eq(r.out, "");
        run_done(&r);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* admin commands */

static void script_leases(int sock, void *userdata)
{
        char *devices[] = {"0000:00:04.0", "0000:00:04.1"};
        Vfiod__LeaseInfo l0 = VFIOD__LEASE_INFO__INIT;
        Vfiod__LeaseInfo *leases[] = {&l0};
        Vfiod__ListLeasesReply llr = VFIOD__LIST_LEASES_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(list_leases_reply, &llr);
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_LEASES);
        l0.lease_id = 3;
        l0.n_devices = 2;
        l0.devices = devices;
        l0.iommu_group = 5;
        l0.uid = 1000;
        l0.gid = 100;
        l0.pid = 4242;
        l0.unit = "";
        l0.mode = VFIOD__MODE__MODE_BROKERED;
        l0.domain_id = 11;
        l0.pinned_bytes = 8192;
        l0.mappings = 2;
        l0.status = VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED;
        llr.n_leases = 1;
        llr.leases = leases;
        fake_answer(sock, m, &env, NULL, 0);
        fake_expect_eof(sock);
}

static void script_stats(int sock, void *userdata)
{
        Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(stats_reply, &sr);
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
        sr.clients = 2;
        sr.leases = 1;
        sr.domains = 1;
        sr.mappings = 2;
        sr.pinned_bytes = 8192;
        sr.requests = 40;
        sr.errors = 3;
        sr.quarantined_groups = 0;
        sr.uptime_ms = 5000;
        fake_answer(sock, m, &env, NULL, 0);
        fake_expect_eof(sock);
}

static void script_reload_bad(int sock, void *userdata)
{
        char *errors[] = {"/etc/vfiod/vfiod.conf:3: unknown key 'Colour'"};
        Vfiod__ReloadPolicyReply rr = VFIOD__RELOAD_POLICY_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(reload_policy_reply, &rr);
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELOAD_POLICY);
        rr.n_errors = 1;
        rr.errors = errors;
        fake_answer(sock, m, &env, NULL, 0);
        fake_expect_eof(sock);
}

static void script_revoke(int sock, void *userdata)
{
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_REVOKE);
        fake_check(m->env->revoke->lease_id == 3, "lease");
        fake_check(strcmp(m->env->revoke->reason, "disk swap") == 0, "reason '%s'",
                   m->env->revoke->reason);
        fake_reply_error(sock, m->env->id, EPERM, "uid 1000 is not an admin");
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

/* Runs vfioctl with args against a fake running script; returns what it printed. */
static struct run run_against(fake_script_fn script, const char *const *args)
{
        struct place p = place_new();
        const char *argv[16] = {"--socket", p.sock};
        struct fake f;
        struct run r;
        size_t n = 2;

        for (size_t i = 0; args[i]; i++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n++] = args[i];
        }
        argv[n] = NULL;
        fake_start_listen(&f, p.sock, script, NULL);
        r = run_vfioctl(argv);
        fake_finish(&f);
        place_free(&p);
        return r;
}

START_TEST(test_admin_commands)
{
        const char *leases_json[] = {"--json", "leases", NULL};
        const char *leases[] = {"leases", NULL};
        const char *stats_json[] = {"stats", "--json", NULL};
        const char *stats[] = {"stats", NULL};
        const char *reload[] = {"reload", NULL};
        const char *revoke[] = {"revoke", "3", "--reason", "disk swap", NULL};
        const char *revoke_bad[] = {"revoke", "3x", NULL};
        struct run r;

        r = run_against(script_leases, leases_json);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
        ck_assert_str_eq(r.out, "[{\"lease_id\":3,\"devices\":[\"0000:00:04.0\",\"0000:00:04.1\"],"
                                "\"iommu_group\":5,\"uid\":1000,\"gid\":100,\"pid\":4242,"
                                "\"unit\":\"\",\"mode\":\"brokered\",\"domain_id\":11,"
                                "\"pinned_bytes\":8192,\"mappings\":2,"
                                "\"status\":\"release-requested\"}]\n");
        run_done(&r);

        r = run_against(script_leases, leases);
        ck_assert_int_eq(r.status, 0);
        ck_assert_msg(strstr(r.out, "LEASE  DEVICES                    GROUP  MODE") == r.out, "%s",
                      r.out);
        ck_assert_ptr_nonnull(strstr(r.out, "3      0000:00:04.0,0000:00:04.1  5      brokered"));
        ck_assert_ptr_nonnull(strstr(r.out, "release-requested\n"));
        run_done(&r);

        r = run_against(script_stats, stats_json);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(r.out, "{\"clients\":2,\"leases\":1,\"domains\":1,\"mappings\":2,"
                                "\"pinned_bytes\":8192,\"quarantined_groups\":0,\"requests\":40,"
                                "\"errors\":3,\"uptime_ms\":5000}\n");
        run_done(&r);

        r = run_against(script_stats, stats);
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "clients             2\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "uptime_ms           5000\n"));
        run_done(&r);

        /* A policy with errors: reported, not applied, exit 1. */
        r = run_against(script_reload_bad, reload);
        ck_assert_int_eq(r.status, 1);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "vfioctl: reload: /etc/vfiod/vfiod.conf:3: unknown key 'Colour'\n"
                                "vfioctl: reload: policy not applied, the old one stays\n");
        run_done(&r);

        r = run_against(script_revoke, revoke);
        ck_assert_int_eq(r.status, 1);
        ck_assert_str_eq(r.err, "vfioctl: revoke lease 3: Operation not permitted: "
                                "uid 1000 is not an admin\n");
        run_done(&r);

        r = run_vfioctl(revoke_bad);
        ck_assert_int_eq(r.status, 2);
        ck_assert_ptr_nonnull(strstr(r.err, "invalid lease id '3x'"));
        run_done(&r);
}
END_TEST

START_TEST(test_usage)
{
        const char *none[] = {NULL};
        const char *unknown[] = {"frobnicate", NULL};
        const char *stray[] = {"--reason", "x", "list", NULL};
        const char *no_command[] = {"acquire", "0000:00:04.0", NULL};
        const char *help[] = {"--help", NULL};
        const char *nosock[] = {"--socket", "/nonexistent/vfiod.sock", "stats", NULL};
        struct run r;

        r = run_vfioctl(none);
        ck_assert_int_eq(r.status, 2);
        run_done(&r);
        r = run_vfioctl(unknown);
        ck_assert_int_eq(r.status, 2);
        ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
        run_done(&r);
        r = run_vfioctl(stray);
        ck_assert_int_eq(r.status, 2);
        run_done(&r);
        r = run_vfioctl(no_command);
        ck_assert_int_eq(r.status, 2);
        run_done(&r);
        r = run_vfioctl(help);
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "Usage: vfioctl"));
        run_done(&r);
        r = run_vfioctl(nosock);
        ck_assert_int_eq(r.status, 1);
        ck_assert_str_eq(r.err,
                         "vfioctl: connect '/nonexistent/vfiod.sock': No such file or directory\n");
        run_done(&r);
}
END_TEST

static Suite *vfioctl_suite(void)
{
        Suite *s = suite_create("vfioctl");
        TCase *tc;

        tc = tcase_create("json");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_json);
        suite_add_tcase(s, tc);

        tc = tcase_create("commands");
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_list_json);
        tcase_add_test(tc, test_list_table);
        tcase_add_test(tc, test_acquire_direct);
        tcase_add_test(tc, test_acquire_brokered);
        tcase_add_test(tc, test_acquire_brokered_client);
        tcase_add_test(tc, test_acquire_release_requested);
        tcase_add_test(tc, test_acquire_refused);
        tcase_add_test(tc, test_admin_commands);
        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(vfioctl_suite());
}
