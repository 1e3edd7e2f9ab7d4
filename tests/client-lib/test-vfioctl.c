/* SPDX-License-Identifier: MIT */
/*
 * vfioctl: its JSON writer, and the binary itself run against the scripted
 * fake daemon listening on a temporary socket path.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/json.h"
#include "client-lib/vfiod.h"
#include "proto/envelope.h"
#include "proto/macro.h"
#include "tests/client-lib/fake-daemon.h"
#include "tests/fakesys.h"
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

/* A vfioctl started by start_vfioctl(): its pid and where its stdout and stderr go. */
struct started {
        pid_t pid;
        int out, err;
};

/* Starts vfioctl with args (NULL-terminated), its stdout and stderr into memfds. */
static struct started start_vfioctl(const char *const *args)
{
        const char *bin = getenv("VFIOCTL") ? getenv("VFIOCTL") : "client-lib/vfioctl";
        const char *argv[32] = {"vfioctl"};
        struct started v = {.out = memfd_create("out", MFD_CLOEXEC),
                            .err = memfd_create("err", MFD_CLOEXEC)};
        size_t n = 1;

        ck_assert_int_ge(v.out, 0);
        ck_assert_int_ge(v.err, 0);
        for (; args[n - 1]; n++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n] = args[n - 1];
        }
        argv[n] = NULL;

        v.pid = fork();
        ck_assert_int_ge(v.pid, 0);
        if (v.pid == 0) {
                if (dup2(v.out, 1) < 0 || dup2(v.err, 2) < 0)
                        _exit(99);
                /* Nothing of the test process but stdio reaches vfioctl. */
                (void)close_range(3, ~0U, 0);
                execv(bin, (char **)argv);
                _exit(98);
        }
        return v;
}

/* Waits for a started vfioctl and collects its stdout and stderr. */
static struct run finish_vfioctl(struct started v)
{
        struct run r = {0};

        testutil_wait_output(v.pid, v.out, v.err, &r.status, &r.out, &r.err);
        return r;
}

/* Runs vfioctl with args (NULL-terminated) and collects its stdout and stderr. */
static struct run run_vfioctl(const char *const *args)
{
        return finish_vfioctl(start_vfioctl(args));
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
        Vfiod__Interface ifaces[] = {VFIOD__INTERFACE__INTERFACE_LEGACY,
                                     VFIOD__INTERFACE__INTERFACE_IOMMUFD};
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
        d0.n_interfaces = 2;
        d0.interfaces = ifaces;
        d0.cdev = "vfio0";
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
            "\"allowed_modes\":[\"direct\",\"brokered\",\"group\"],"
            "\"interfaces\":[\"legacy\",\"iommufd\"],\"cdev\":\"vfio0\","
            "\"lease_id\":null,\"holder\":null},"
            "{\"device\":\"0000:00:05.0\",\"vendor_id\":32902,\"device_id\":4307,"
            "\"class_code\":131072,\"iommu_group\":6,\"driver\":\"odd "
            "\\\"driver\\\"\\n\",\"mdev_type\":null,"
            "\"state\":\"leased\",\"allowed_modes\":[],\"interfaces\":[],\"cdev\":null,"
            "\"lease_id\":null,"
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
        ck_assert_msg(strstr(r.out, "free    direct,brokered,group  legacy,iommufd  -\n"), "%s",
                      r.out);
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
        bool iommufd;        /* an IOMMUFD lease: fds are the cdev and the iommufd */
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
        fake_check(m->env->acquire->interface == (s->iommufd ? VFIOD__INTERFACE__INTERFACE_IOMMUFD
                                                             : VFIOD__INTERFACE__INTERFACE_LEGACY),
                   "interface %d", m->env->acquire->interface);
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
        if (s->iommufd) {
                ar.interface = VFIOD__INTERFACE__INTERFACE_IOMMUFD;
                ar.cdev = "vfio0";
                ar.has_iommufd_fd_case = VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD;
                ar.iommufd_fd = 1;
                n_fds = 2;
        } else if (s->mode == VFIOD__MODE__MODE_DIRECT) {
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

/* The placeholders hold the fd numbers the variables name; exits 7. */
static const char iommufd_check[] =
    "test \"$VFIOD_CDEV\" = vfio0 || exit 9\n"
    "test \"$VFIOD_IOMMUFD_FD\" = \"$1\" || exit 10\n"
    "test \"$VFIOD_DEVICE_FD\" = \"$2\" || exit 11\n"
    "test -z \"$VFIOD_GROUP_FD$VFIOD_CONTAINER_FD\" || exit 12\n"
    "test \"$3\" = \"vfio-pci,iommufd=io0,fd=$VFIOD_DEVICE_FD,id=edu\" || exit 13\n"
    "readlink /proc/$$/fd/$1 /proc/$$/fd/$2\n"
    "exit 7\n";

START_TEST(test_acquire_iommufd)
{
        struct place p = place_new();
        struct acquire_script s = {.mode = VFIOD__MODE__MODE_DIRECT, .iommufd = true};
        const char *args[] = {"--socket",    p.sock,
                              "acquire",     "0000:00:04.0",
                              "--interface", "iommufd",
                              "--",          "/bin/sh",
                              "-c",          iommufd_check,
                              "sh",          "{iommufd-fd}",
                              "{device-fd}", "vfio-pci,iommufd=io0,fd={device-fd},id=edu",
                              NULL};
        char want[256];
        struct fake f;
        struct run r;

        acquire_fds_open(&s);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 7, "status %d, stderr: %s", r.status, r.err);
        /* fds[0] went as the cdev (device), fds[1] as the iommufd. */
        ck_assert_str_eq(r.out, "/memfd:group (deleted)\n/memfd:device (deleted)\n");
        ck_assert_msg(strstr(r.err, "vfioctl: for QEMU: -object iommufd,id=vfiod3,fd="), "%s",
                      r.err);
        snprintf(want, sizeof(want), " -device vfio-pci,iommufd=vfiod3,fd=");
        ck_assert_msg(strstr(r.err, want), "%s", r.err);
        run_done(&r);
        acquire_fds_close(&s);
        place_free(&p);
}
END_TEST

static const char brokered_check[] =
    "test \"$VFIOD_MODE\" = brokered || exit 14\n"
    "test -z \"$VFIOD_GROUP_FD$VFIOD_CONTAINER_FD$VFIOD_GROUP_FDS\" || exit 15\n"
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
        ck_assert_int_eq(setenv("VFIOD_GROUP_FDS", "5:9", 1), 0);
        fake_start_listen(&f, p.sock, script_acquire, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_msg(r.status == 0, "status %d, stderr: %s, out: %s", r.status, r.err, r.out);
        ck_assert_str_eq(r.out, "/memfd:device (deleted)\nsocket\n");
        ck_assert_int_eq(unsetenv("VFIOD_GROUP_FD"), 0);
        ck_assert_int_eq(unsetenv("VFIOD_GROUP_FDS"), 0);
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
/* acquire in group mode, --preload */

/*
 * The daemon's side of `acquire 0000:00:04.0 [0000:00:05.0 0000:00:04.1]
 * --mode group`: groups 5 (devices 04.0 and 04.1) and 6 (05.0), leases 3
 * and 4, each granted max_pinned bytes; the first lease's grant says why
 * vfiod did not raise RLIMIT_MEMLOCK when memlock_error is set.
 */
struct group_script {
        int fds[2];                /* the group fds of groups 5 and 6 */
        bool several;              /* the three devices, else 04.0 alone */
        bool killed;               /* vfioctl is killed: no Release comes, only the end */
        bool refuse_second;        /* several: the Acquire of 05.0 is refused (EPERM) */
        uint64_t max_pinned;       /* grant.max_pinned_bytes */
        uint64_t memlock;          /* grant.memlock_bytes: what vfiod says it set */
        const char *memlock_error; /* first grant's memlock_error */
};

/* Answers an Acquire of device in group mode with lease_id, group and its fd. */
static void group_answer(int sock, const struct group_script *s, const char *device,
                         uint64_t lease_id, uint32_t group, int fd, const char *memlock_error)
{
        Vfiod__AcquireReply ar = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__LeaseGrant g = VFIOD__LEASE_GRANT__INIT;
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);

        fake_check(strcmp(m->env->acquire->device, device) == 0, "device '%s'",
                   m->env->acquire->device);
        fake_check(m->env->acquire->mode == VFIOD__MODE__MODE_GROUP, "mode %d",
                   m->env->acquire->mode);
        fake_check(m->env->acquire->domain_id == 0, "domain");
        g.rule = "vms";
        g.max_pinned_bytes = s->max_pinned;
        g.memlock_bytes = s->memlock;
        g.memlock_error = (char *)memlock_error;
        ar.lease_id = lease_id;
        ar.iommu_group = group;
        ar.device = (char *)device;
        ar.mode = VFIOD__MODE__MODE_GROUP;
        ar.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
        ar.group_fd = 0;
        ar.grant = &g;
        fake_answer(sock, m, &ENVELOPE(acquire_reply, &ar), &fd, 1);
}

/* Answers vfioctl's question about device's group. */
static void group_list_answer(int sock, const char *device, uint32_t group)
{
        Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
        Vfiod__DeviceInfo di = VFIOD__DEVICE_INFO__INIT, *dis[] = {&di};
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);

        fake_check(strcmp(m->env->list_devices->device, device) == 0, "device '%s'",
                   m->env->list_devices->device);
        di.device = (char *)device;
        di.iommu_group = group;
        di.state = VFIOD__LEASE_STATE__LEASE_STATE_FREE;
        lr.n_devices = 1;
        lr.devices = dis;
        FAKE_ANSWER(sock, m, list_devices_reply, &lr);
}

static void group_release_answer(int sock, uint64_t lease_id)
{
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELEASE);

        fake_check(m->env->release->lease_id == lease_id, "lease %" PRIu64,
                   m->env->release->lease_id);
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);
}

static void script_group(int sock, void *userdata)
{
        const struct group_script *s = userdata;

        fake_hello(sock, 1, CAPS_ALL);
        group_answer(sock, s, "0000:00:04.0", 3, 5, s->fds[0], s->memlock_error);
        if (s->several) {
                /* 05.0 is in another group: a lease; 04.1 is in group 5, which lease 3 holds. */
                group_list_answer(sock, "0000:00:05.0", 6);
                if (s->refuse_second) {
                        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);

                        fake_reply_error(sock, m->env->id, EPERM, "policy says no");
                        vfiod_msg_free(m);
                        /* The lease made before is given back; the command never runs. */
                        group_release_answer(sock, 3);
                        fake_expect_eof(sock);
                        return;
                }
                group_answer(sock, s, "0000:00:05.0", 4, 6, s->fds[1], NULL);
                group_list_answer(sock, "0000:00:04.1", 5);
        }
        if (!s->killed) {
                group_release_answer(sock, 3);
                if (s->several)
                        group_release_answer(sock, 4);
        }
        fake_expect_eof(sock);
}

static void group_fds_open(struct group_script *s)
{
        s->fds[0] = memfd_create("group5", MFD_CLOEXEC);
        s->fds[1] = memfd_create("group6", MFD_CLOEXEC);
        ck_assert_int_ge(s->fds[0], 0);
        ck_assert_int_ge(s->fds[1], 0);
}

static void group_fds_close(struct group_script *s)
{
        close(s->fds[0]);
        close(s->fds[1]);
}

/* The library --preload= names: the one built here. */
static char *preload_library(void)
{
        const char *lib = getenv("VFIOD_PRELOAD_LIBRARY");
        char *path = realpath(lib ? lib : "client-lib/.libs/libvfiod-preload.so", NULL);

        ck_assert_ptr_nonnull(path);
        return path;
}

/* The soft limit vfioctl and its command start with (the test's process is its own). */
static void set_memlock(rlim_t bytes)
{
        struct rlimit rl;

        ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
        ck_assert_msg(rl.rlim_max >= bytes, "RLIMIT_MEMLOCK's hard limit is below %lu",
                      (unsigned long)bytes);
        rl.rlim_cur = bytes;
        ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
}

/*
 * COMMAND, a shell with the library loaded: the group fds VFIOD_GROUP_FDS
 * names, the shell's own opens of /dev/vfio/5 and 6 (dash opens with open64),
 * the single-lease variables (none: several leases) and LD_PRELOAD ($1).
 */
static const char preload_check[] =
    "IFS=,\n"
    "for e in $VFIOD_GROUP_FDS; do\n"
    "  echo \"${e%%:*} $(readlink /proc/$$/fd/${e#*:})\"\n"
    "done\n"
    "unset IFS\n"
    "exec 8</dev/vfio/5 9<>/dev/vfio/6\n"
    "readlink /proc/$$/fd/8 /proc/$$/fd/9\n"
    "echo \"${VFIOD_GROUP_FD-unset} ${VFIOD_LEASE_ID-unset} "
    "${VFIOD_MODE-unset} ${VFIOD_DEVICE_FD-unset} ${VFIOD_CONNECTION_FD-unset}\"\n"
    "test \"$LD_PRELOAD\" = \"$1\" || echo \"LD_PRELOAD=$LD_PRELOAD\"\n"
    "exit 7\n";

/*
 * Three devices, two groups: two leases, the command opens both groups'
 * nodes through the library, gets vfioctl's exit status, and both leases
 * are released after it; the RLIMIT_MEMLOCK warnings come first.
 */
START_TEST(test_acquire_preload)
{
        struct place p = place_new();
        struct group_script s = {.several = true,
                                 .max_pinned = 64 << 20,
                                 .memlock_error = "vfiod lacks CAP_SYS_RESOURCE"};
        char *lib = preload_library(), *preload_opt;
        struct fake f;
        struct run r;

        ck_assert_int_gt(asprintf(&preload_opt, "--preload=%s", lib), 0);
        {
                const char *args[] = {"--socket",     p.sock,         "acquire",   "0000:00:04.0",
                                      "0000:00:05.0", "0000:00:04.1", preload_opt, "--memlock",
                                      "1G",           "--",           "/bin/sh",   "-c",
                                      preload_check,  "sh",           lib,         NULL};

                group_fds_open(&s);
                set_memlock(1 << 20);
                /* Stale values from the caller's environment must not reach COMMAND. */
                ck_assert_int_eq(setenv("VFIOD_LEASE_ID", "77", 1), 0);
                ck_assert_int_eq(setenv("VFIOD_CONNECTION_FD", "9", 1), 0);
                fake_start_listen(&f, p.sock, script_group, &s);
                r = run_vfioctl(args);
                fake_finish(&f);
                ck_assert_int_eq(unsetenv("VFIOD_LEASE_ID"), 0);
                ck_assert_int_eq(unsetenv("VFIOD_CONNECTION_FD"), 0);
        }
        ck_assert_msg(r.status == 7, "status %d, stderr: %s, out: %s", r.status, r.err, r.out);
        ck_assert_str_eq(r.out, "5 /memfd:group5 (deleted)\n"
                                "6 /memfd:group6 (deleted)\n"
                                "/memfd:group5 (deleted)\n"
                                "/memfd:group6 (deleted)\n"
                                "unset unset unset unset unset\n");
        ck_assert_str_eq(r.err, "vfioctl: warning: vfiod did not raise RLIMIT_MEMLOCK for lease 3 "
                                "('0000:00:04.0'): vfiod lacks CAP_SYS_RESOURCE\n"
                                "vfioctl: warning: the command's RLIMIT_MEMLOCK (1 MiB) is below "
                                "the 1 GiB it may pin (--memlock): mapping its memory for DMA will "
                                "fail with ENOMEM beyond it\n");
        run_done(&r);
        free(preload_opt);
        free(lib);
        group_fds_close(&s);
        place_free(&p);
}
END_TEST

/* One of several acquires refused: the leases made are released, the command never runs. */
START_TEST(test_acquire_preload_refused)
{
        struct place p = place_new();
        struct group_script s = {.several = true, .refuse_second = true, .max_pinned = 1 << 20};
        char *lib = preload_library(), *preload_opt;
        const char *args[] = {"--socket",     p.sock,         "acquire", "0000:00:04.0",
                              "0000:00:05.0", "0000:00:04.1", NULL,      "--",
                              "touch",        NULL,           NULL};
        char *ran;
        struct fake f;
        struct run r;

        ck_assert_int_gt(asprintf(&preload_opt, "--preload=%s", lib), 0);
        ck_assert_int_gt(asprintf(&ran, "%s/ran", p.dir), 0);
        args[6] = preload_opt;
        args[9] = ran;
        group_fds_open(&s);
        fake_start_listen(&f, p.sock, script_group, &s);
        r = run_vfioctl(args);
        fake_finish(&f);
        ck_assert_int_eq(r.status, 125);
        ck_assert_str_eq(r.err, "vfioctl: acquire '0000:00:05.0': Operation not permitted: "
                                "policy says no\n");
        ck_assert_int_eq(access(ran, F_OK), -1);
        run_done(&r);
        free(ran);
        free(preload_opt);
        free(lib);
        group_fds_close(&s);
        place_free(&p);
}
END_TEST

/* COMMAND of one group lease without the library: the single-lease variables too. */
static const char group_check[] = "test \"$VFIOD_MODE\" = group || exit 14\n"
                                  "test \"$VFIOD_DOMAIN_ID\" = 0 || exit 11\n"
                                  "test \"$VFIOD_GROUP_FDS\" = \"5:$VFIOD_GROUP_FD\" || exit 12\n"
                                  "test -z \"$VFIOD_DEVICE_FD$VFIOD_CONTAINER_FD\" || exit 15\n"
                                  "test -z \"$LD_PRELOAD\" || exit 16\n"
                                  "readlink /proc/$$/fd/$VFIOD_GROUP_FD\n"
                                  "exit 0\n";

/*
 * --mode group without --preload: the lease's variables, VFIOD_GROUP_FDS,
 * no LD_PRELOAD; without --memlock the policy's allowance (the RLIMIT_MEMLOCK
 * vfiod says it set, grant.memlock_bytes) is what the command may pin: a
 * warning when RLIMIT_MEMLOCK is below it, none when not, and none when no
 * rule sets one (a brokered quota, max_pinned_bytes, is no allowance).
 */
START_TEST(test_acquire_group)
{
        const char *args[] = {"--mode",  "group", "0000:00:04.0", "--",
                              "/bin/sh", "-c",    group_check,    NULL};
        const struct group_script cases[] = {
            {.max_pinned = 64 << 20, .memlock = 64 << 20},
            {.max_pinned = 512 << 10, .memlock = 512 << 10},
            {.max_pinned = 16ULL << 30},
        };

        set_memlock(1 << 20);
        for (int enough = 0; enough <= 2; enough++) {
                struct group_script s = cases[enough];
                struct place p = place_new();
                const char *argv[16] = {"--socket", p.sock, "acquire"};
                struct fake f;
                struct run r;

                for (size_t i = 0; args[i]; i++)
                        argv[3 + i] = args[i];
                group_fds_open(&s);
                fake_start_listen(&f, p.sock, script_group, &s);
                r = run_vfioctl(argv);
                fake_finish(&f);
                ck_assert_msg(r.status == 0, "status %d, stderr: %s", r.status, r.err);
                ck_assert_str_eq(r.out, "/memfd:group5 (deleted)\n");
                ck_assert_str_eq(r.err,
                                 enough ? ""
                                        : "vfioctl: warning: the command's RLIMIT_MEMLOCK (1 MiB) "
                                          "is below the 64 MiB it may pin (the policy's "
                                          "allowance): mapping its memory for DMA will fail with "
                                          "ENOMEM beyond it\n");
                run_done(&r);
                group_fds_close(&s);
                place_free(&p);
        }
}
END_TEST

/* Waits (5 s at most) until dir/name exists. */
static void wait_for_file(const char *dir, const char *name)
{
        char path[PATH_MAX];

        ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s", dir, name), (int)sizeof(path));
        for (int i = 0; access(path, F_OK) < 0; i++) {
                ck_assert_msg(i < 500, "'%s' never appeared", path);
                usleep(10 * 1000);
        }
}

/* The command of run_preload_signalled(): traps $2, says so and exits 9. */
static const char trap_check[] = "trap 'echo $2; touch \"$1/trapped\"; exit 9' $2\n"
                                 "touch \"$1/started\"\n"
                                 "while :; do sleep 0.05; done\n";

/*
 * Runs `acquire 0000:00:04.0 --preload -- sh` with trap_check trapping
 * signal trap, sends vfioctl sig once the command runs, and waits until
 * the command trapped its signal; returns what vfioctl printed. killed:
 * sig kills vfioctl, which releases nothing.
 */
static struct run run_preload_signalled(bool killed, const char *trap, int sig)
{
        struct place p = place_new();
        struct group_script s = {.max_pinned = 1 << 20, .killed = killed};
        char *lib = preload_library(), *preload_opt;
        const char *args[] = {"--socket", p.sock,     "acquire", "0000:00:04.0", NULL, "--", "sh",
                              "-c",       trap_check, "sh",      p.dir,          trap, NULL};
        struct started v;
        struct fake f;
        struct run r;

        ck_assert_int_gt(asprintf(&preload_opt, "--preload=%s", lib), 0);
        args[4] = preload_opt;
        group_fds_open(&s);
        set_memlock(1 << 20);
        fake_start_listen(&f, p.sock, script_group, &s);
        v = start_vfioctl(args);
        wait_for_file(p.dir, "started");
        ck_assert_int_eq(kill(v.pid, sig), 0);
        r = finish_vfioctl(v);
        fake_finish(&f);
        wait_for_file(p.dir, "trapped");
        free(preload_opt);
        free(lib);
        group_fds_close(&s);
        place_free(&p);
        return r;
}

/*
 * Signals sent to vfioctl reach the command (SIGUSR1 here; SIGTERM, SIGINT,
 * SIGHUP, SIGQUIT and SIGUSR2 alike), whose exit status vfioctl returns
 * after releasing the lease.
 */
START_TEST(test_acquire_preload_signal)
{
        struct run r = run_preload_signalled(false, "USR1", SIGUSR1);

        ck_assert_msg(r.status == 9, "status %d, stderr: %s", r.status, r.err);
        ck_assert_str_eq(r.out, "USR1\n");
        ck_assert_str_eq(r.err, "");
        run_done(&r);
}
END_TEST

/*
 * vfioctl killed (SIGKILL) while the command runs: the command is told to
 * stop (SIGTERM), and the daemon sees the connection end without a Release
 * (its disconnect path ends the lease: test_acquire_preload_vfiod).
 */
START_TEST(test_acquire_preload_killed)
{
        struct run r = run_preload_signalled(true, "TERM", SIGKILL);

        ck_assert_int_eq(r.status, 128 + SIGKILL);
        run_done(&r);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* acquire against vfiod itself (on the fake VFIO layer, tests/daemon/vfiod-fake) */

/* A vfiod-fake process with groups 1 (00:01.0, 00:02.0) and 2 (00:03.0), all for this uid. */
struct real_daemon {
        char *dir, *sock;
        pid_t pid;
};

static struct real_daemon real_daemon_start(void)
{
        struct real_daemon d = {.dir = testutil_mkdtemp("vfioctl-vfiod")};
        char conf[256], *conf_path, *vfio;
        unsigned uid = (unsigned)getuid();

        ck_assert_int_gt(asprintf(&d.sock, "%s/vfiod.sock", d.dir), 0);
        ck_assert_int_gt(asprintf(&conf_path, "%s/vfiod.conf", d.dir), 0);
        ck_assert_int_gt(asprintf(&vfio, "%s/dev/vfio", d.dir), 0);
        ck_assert_int_lt(snprintf(conf, sizeof(conf),
                                  "[Daemon]\nAdminUsers=%u\n\n[Device vms]\n"
                                  "Match=0000:00:01.0 0000:00:02.0 0000:00:03.0\nUsers=%u\n",
                                  uid, uid),
                         (int)sizeof(conf));
        testutil_write_file(d.dir, "vfiod.conf", conf);
        testutil_write_file(d.dir, "dev/vfio/.keep", "");
        ck_assert_int_eq(fakesys_add_pci(d.dir, "0000:00:01.0", 1, "vfio-pci"), 0);
        ck_assert_int_eq(fakesys_add_pci(d.dir, "0000:00:02.0", 1, "vfio-pci"), 0);
        ck_assert_int_eq(fakesys_add_pci(d.dir, "0000:00:03.0", 2, "vfio-pci"), 0);
        d.pid = fork();
        ck_assert_int_ge(d.pid, 0);
        if (d.pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                /* Gone with the test, even when it fails half-way. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || null < 0 ||
                    dup2(null, STDOUT_FILENO) < 0 ||
                    (!getenv("VFIOD_TEST_VERBOSE") && dup2(null, STDERR_FILENO) < 0))
                        _exit(99);
                setenv("VFIOD_FAKE_DEVICES", "1=0000:00:01.0 1=0000:00:02.0 2=0000:00:03.0", 1);
                unsetenv("LISTEN_FDS");
                unsetenv("NOTIFY_SOCKET");
                execl(VFIOD_FAKE_PATH, "vfiod", "--socket", d.sock, "--config", conf_path,
                      "--sysfs-root", d.dir, "--vfio-dir", vfio, (char *)NULL);
                _exit(127);
        }
        free(conf_path);
        free(vfio);
        return d;
}

/* An admin connection to d, once it listens. */
static struct vfiod *real_daemon_connect(const struct real_daemon *d)
{
        struct vfiod *c = NULL;

        for (int i = 0; vfiod_connect(d->sock, &c) < 0; i++) {
                ck_assert_msg(i < 500, "vfiod-fake never listened on '%s'", d->sock);
                usleep(10 * 1000);
        }
        return c;
}

static void real_daemon_stop(struct real_daemon *d)
{
        int status;

        ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(d->pid, &status, 0), d->pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vfiod-fake: status 0x%x",
                      status);
        testutil_rmtree(d->dir);
        free(d->dir);
        free(d->sock);
}

/* Waits (5 s at most) until d has no lease and every device is free again. */
static void real_daemon_wait_idle(struct vfiod *admin)
{
        for (int i = 0;; i++) {
                struct vfiod_lease_info *leases = NULL;
                struct vfiod_device_info *devices = NULL;
                size_t n_leases = 0, n_devices = 0, n_free = 0;

                ck_assert_int_eq(vfiod_list_leases(admin, &leases, &n_leases), 0);
                ck_assert_int_eq(vfiod_list_devices(admin, NULL, &devices, &n_devices), 0);
                for (size_t k = 0; k < n_devices; k++)
                        n_free += devices[k].state == VFIOD_LEASE_STATE_FREE;
                vfiod_leases_free(leases, n_leases);
                vfiod_devices_free(devices, n_devices);
                if (n_leases == 0 && n_free == 3)
                        return;
                ck_assert_msg(i < 500, "%zu leases, %zu of 3 devices free", n_leases, n_free);
                usleep(10 * 1000);
        }
}

/*
 * The command sees each group of VFIOD_GROUP_FDS as the same open file when
 * it opens /dev/vfio/G (the fake's group fds are pipes); then it says it
 * started and waits; SIGTERM makes it say so and exit.
 */
static const char daemon_check[] =
    "trap 'touch \"$1/terminated\"; exit 0' TERM\n"
    "IFS=,\n"
    "for e in $VFIOD_GROUP_FDS; do\n"
    "  g=${e%%:*}; fd=${e#*:}\n"
    "  exec 8</dev/vfio/$g || exit 3\n"
    "  test \"$(readlink /proc/$$/fd/8)\" = \"$(readlink /proc/$$/fd/$fd)\" && echo \"$g same\"\n"
    "  exec 8<&-\n"
    "done\n"
    "touch \"$1/started\"\n"
    "while :; do sleep 0.05; done\n";

/*
 * vfioctl and vfiod's own code: three devices, two groups, two GROUP
 * leases held by vfioctl's process while the command runs; vfioctl killed
 * with SIGKILL: the command is told to stop and the daemon's disconnect
 * path ends both leases, and every device is free again.
 */
START_TEST(test_acquire_preload_vfiod)
{
        struct real_daemon d = real_daemon_start();
        struct vfiod *admin = real_daemon_connect(&d);
        struct vfiod_lease_info *leases = NULL;
        size_t n_leases = 0;
        char *lib = preload_library(), *preload_opt;
        struct started v;
        struct run r;

        ck_assert_int_gt(asprintf(&preload_opt, "--preload=%s", lib), 0);
        {
                const char *args[] = {
                    "--socket",  d.sock, "acquire", "0000:00:01.0", "0000:00:03.0", "0000:00:02.0",
                    preload_opt, "--",   "sh",      "-c",           daemon_check,   "sh",
                    d.dir,       NULL};

                v = start_vfioctl(args);
        }
        wait_for_file(d.dir, "started");
        ck_assert_int_eq(vfiod_list_leases(admin, &leases, &n_leases), 0);
        ck_assert_uint_eq(n_leases, 2);
        for (size_t i = 0; i < n_leases; i++) {
                ck_assert_int_eq(leases[i].mode, VFIOD_MODE_GROUP);
                ck_assert_uint_eq(leases[i].pid, (uint32_t)v.pid);
                ck_assert_uint_eq(leases[i].n_devices, leases[i].iommu_group == 1 ? 2 : 1);
        }
        vfiod_leases_free(leases, n_leases);

        ck_assert_int_eq(kill(v.pid, SIGKILL), 0);
        r = finish_vfioctl(v);
        ck_assert_int_eq(r.status, 128 + SIGKILL);
        ck_assert_str_eq(r.out, "1 same\n2 same\n");
        wait_for_file(d.dir, "terminated");
        real_daemon_wait_idle(admin);

        run_done(&r);
        vfiod_close(admin);
        free(preload_opt);
        free(lib);
        real_daemon_stop(&d);
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

/* acquire's options that do not go together, each refused before any connection. */
START_TEST(test_usage_acquire)
{
        static const struct {
                const char *args[10];
                int status;
                const char *err;
        } cases[] = {
            {{"acquire", "--mode", "direct", "--preload", "a", "--", "true"},
             2,
             "vfioctl: --preload needs --mode group (its default)\n"},
            {{"acquire", "--brokered", "--mode", "group", "a", "--", "true"},
             2,
             "vfioctl: --brokered, --mode and --preload differ\n"},
            {{"acquire", "--mode", "bogus", "a", "--", "true"},
             2,
             "vfioctl: unknown mode 'bogus'\n"},
            {{"acquire", "a", "b", "--", "true"},
             2,
             "vfioctl: several DEVICEs need --mode group (or --preload)\n"},
            {{"acquire", "--preload", "--", "true"}, 2, "vfioctl: acquire needs a DEVICE\n"},
            {{"acquire", "--preload", "a", "b"},
             2,
             "vfioctl: acquire needs a COMMAND to run (after '--')\n"},
            {{"acquire", "--memlock", "12Q", "a", "--", "true"},
             2,
             "vfioctl: --memlock: '12Q' is no size in bytes (K, M, G, T: powers of 1024)\n"},
            {{"acquire", "--brokered", "--memlock", "1G", "a", "--", "true"},
             2,
             "vfioctl: --memlock: a brokered lease pins nothing in the command\n"},
            {{"list", "--memlock", "1G"}, 2, "vfioctl: --memlock is an option of acquire\n"},
            {{"list", "--preload"},
             2,
             "vfioctl: --brokered, --mode and --preload are options of acquire\n"},
            {{"acquire", "--preload=/nonexistent/libvfiod-preload.so", "a", "--", "true"},
             125,
             "vfioctl: --preload: '/nonexistent/libvfiod-preload.so': No such file or "
             "directory\n"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct run r = run_vfioctl(cases[i].args);
                const char *nl = strchr(r.err, '\n');

                ck_assert_msg(r.status == cases[i].status, "case %zu: status %d, stderr %s", i,
                              r.status, r.err);
                /* The first line; usage errors add a hint after it. */
                ck_assert_ptr_nonnull(nl);
                ck_assert_msg(strncmp(r.err, cases[i].err, (size_t)(nl - r.err + 1)) == 0 &&
                                  strlen(cases[i].err) == (size_t)(nl - r.err + 1),
                              "case %zu: stderr %s", i, r.err);
                run_done(&r);
        }
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
        tcase_add_test(tc, test_acquire_iommufd);
        tcase_add_test(tc, test_acquire_brokered);
        tcase_add_test(tc, test_acquire_brokered_client);
        tcase_add_test(tc, test_acquire_release_requested);
        tcase_add_test(tc, test_acquire_refused);
        tcase_add_test(tc, test_acquire_preload);
        tcase_add_test(tc, test_acquire_preload_refused);
        tcase_add_test(tc, test_acquire_group);
        tcase_add_test(tc, test_acquire_preload_signal);
        tcase_add_test(tc, test_acquire_preload_killed);
        tcase_add_test(tc, test_acquire_preload_vfiod);
        tcase_add_test(tc, test_admin_commands);
        tcase_add_test(tc, test_usage);
        tcase_add_test(tc, test_usage_acquire);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(vfioctl_suite());
}
