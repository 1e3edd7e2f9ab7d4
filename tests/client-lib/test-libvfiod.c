/* SPDX-License-Identifier: MIT */
/*
 * libvfiod against a scripted fake daemon (tests/client-lib/fake-daemon.h):
 * each test runs a script on the daemon's end of a socketpair and checks what
 * the library returns, which fds it hands out and what it sent.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client-lib/vfiod.h"
#include "proto/macro.h"
#include "tests/client-lib/fake-daemon.h"
#include "tests/testutil.h"

#define CAPS_ALL (VFIOD_CAP_DIRECT | VFIOD_CAP_BROKERED | VFIOD_CAP_IRQS | VFIOD_CAP_EVENTS)

/* A connection to a fake running `script` (Hello done by the script's fake_hello()). */
static struct vfiod *connect_fake(struct fake *f, fake_script_fn script, void *userdata)
{
        struct vfiod *c = NULL;
        int fd = fake_start(f, script, userdata);

        ck_assert_int_eq(vfiod_connect_take_fd(fd, VFIOD_CONNECT_HELLO, &c), 0);
        ck_assert_ptr_nonnull(c);
        return c;
}

/* ------------------------------------------------------------------------- */
/* Hello */

static void script_hello_ok(int sock, void *userdata)
{
        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        fake_expect_eof(sock);
}

START_TEST(test_hello_ok)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_hello_ok, NULL);
        struct vfiod_server_info info;

        ck_assert_int_eq(vfiod_get_server_info(c, &info), 0);
        ck_assert_uint_eq(info.major, 1);
        ck_assert_uint_eq(info.minor, 3);
        ck_assert_uint_eq(info.capabilities, CAPS_ALL | VFIOD_CAP_ADMIN);
        ck_assert_uint_eq(info.max_datagram, 4096);
        ck_assert_uint_eq(info.max_fds, 8);
        ck_assert_uint_eq(info.limits.max_domains, 4);
        ck_assert_uint_eq(info.limits.max_pinned_bytes, UINT64_C(1) << 30);
        ck_assert_str_eq(info.server_version, "fake 1.0");
        ck_assert_str_eq(vfiod_last_error(c), "");
        ck_assert_int_ge(vfiod_get_fd(c), 0);
        ck_assert(fcntl(vfiod_get_fd(c), F_GETFD) & FD_CLOEXEC);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

static void script_hello_major2(int sock, void *userdata)
{
        fake_hello(sock, 2, CAPS_ALL);
        fake_expect_eof(sock);
}

static void script_hello_refused(int sock, void *userdata)
{
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_HELLO);

        fake_reply_error(sock, m->env->id, EPROTONOSUPPORT, "protocol 1 is not spoken here");
        vfiod_msg_free(m);
        /* The daemon drops the connection after this error. */
}

static void script_hello_bad_body(int sock, void *userdata)
{
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_HELLO);

        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

START_TEST(test_hello_wrong_major)
{
        struct vfiod *c = (struct vfiod *)0x1;
        struct fake f;
        int fd;

        /* Each failure closes the fd it took: the fixture checks that nothing leaks. */
        fd = fake_start(&f, script_hello_major2, NULL);
        ck_assert_int_eq(vfiod_connect_take_fd(fd, VFIOD_CONNECT_HELLO, &c), -EPROTONOSUPPORT);
        ck_assert_ptr_eq(c, (struct vfiod *)0x1); /* untouched on failure */
        fake_finish(&f);

        fd = fake_start(&f, script_hello_refused, NULL);
        ck_assert_int_eq(vfiod_connect_take_fd(fd, VFIOD_CONNECT_HELLO, &c), -EPROTONOSUPPORT);
        fake_finish(&f);

        fd = fake_start(&f, script_hello_bad_body, NULL);
        ck_assert_int_eq(vfiod_connect_take_fd(fd, VFIOD_CONNECT_HELLO, &c), -EPROTO);
        fake_finish(&f);
        ck_assert_ptr_eq(c, (struct vfiod *)0x1);
}
END_TEST

START_TEST(test_take_fd_checks)
{
        struct vfiod *c = NULL;
        int p[2], sv[2];

        ck_assert_int_eq(vfiod_connect_take_fd(-1, 0, &c), -EBADF);

        /* Not a socket: refused, and the fd is closed anyway (it was taken). */
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(vfiod_connect_take_fd(p[0], 0, &c), -ENOTSOCK);
        ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
        ck_assert_int_eq(vfiod_connect_take_fd(p[1], 0x100, &c), -EINVAL);
        ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);

        /* A stream socket is not the protocol's socket type. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(vfiod_connect_take_fd(sv[0], 0, &c), -ESOCKTNOSUPPORT);
        ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
        (void)close(sv[1]);
        ck_assert_ptr_null(c);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Connecting by path and by environment */

static void script_stats_only(int sock, void *userdata)
{
        struct vfiod_msg *m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
        Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;

        sr.clients = 3;
        FAKE_ANSWER(sock, m, stats_reply, &sr);
        fake_expect_eof(sock);
}

static void script_hello_stats(int sock, void *userdata)
{
        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);
        script_stats_only(sock, userdata);
}

START_TEST(test_connect_path)
{
        char *dir = testutil_mkdtemp("vfiod-client");
        char *path;
        struct vfiod *c = NULL;
        struct vfiod_stats st;
        struct fake f;

        ck_assert_int_gt(asprintf(&path, "%s/sock", dir), 0);
        ck_assert_int_eq(vfiod_connect(path, &c), -ENOENT);

        fake_start_listen(&f, path, script_hello_stats, NULL);
        ck_assert_int_eq(vfiod_connect(path, &c), 0);
        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        ck_assert_uint_eq(st.clients, 3);
        vfiod_close(c);
        fake_finish(&f);
        ck_assert_int_eq(unlink(path), 0);

        /* NULL: $VFIOD_SOCKET. */
        fake_start_listen(&f, path, script_hello_stats, NULL);
        ck_assert_int_eq(setenv("VFIOD_SOCKET", path, 1), 0);
        c = NULL;
        ck_assert_int_eq(vfiod_connect(NULL, &c), 0);
        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        vfiod_close(c);
        fake_finish(&f);
        ck_assert_int_eq(unsetenv("VFIOD_SOCKET"), 0);

        ck_assert_int_eq(vfiod_connect("/nonexistent/x", &c), -ENOENT);
        free(path);
        testutil_rmtree(dir);
        free(dir);
}
END_TEST

START_TEST(test_connect_env)
{
        struct vfiod_server_info info;
        struct vfiod *c = NULL;
        struct vfiod_stats st;
        struct fake f;
        char num[16];
        int fd;

        ck_assert_int_eq(unsetenv("VFIOD_CONNECTION_FD"), 0);
        ck_assert_int_eq(vfiod_connect_env(&c), -ENXIO);
        ck_assert_int_eq(setenv("VFIOD_CONNECTION_FD", "12x", 1), 0);
        ck_assert_int_eq(vfiod_connect_env(&c), -EINVAL);

        /* An inherited connection: Hello was done by someone else; it is said again. */
        fd = fake_start(&f, script_hello_stats, NULL);
        ck_assert_int_eq(fcntl(fd, F_SETFD, 0), 0); /* as inherited over exec */
        (void)snprintf(num, sizeof(num), "%d", fd);
        ck_assert_int_eq(setenv("VFIOD_CONNECTION_FD", num, 1), 0);
        ck_assert_int_eq(vfiod_connect_env(&c), 0);
        ck_assert_ptr_null(getenv("VFIOD_CONNECTION_FD"));
        ck_assert_int_eq(vfiod_get_fd(c), fd);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(vfiod_get_server_info(c, &info), 0);
        ck_assert_str_eq(info.server_version, "fake 1.0");
        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        ck_assert_uint_eq(st.clients, 3);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Devices and domains */

static void script_devices(int sock, void *userdata)
{
        Vfiod__Mode modes[] = {VFIOD__MODE__MODE_DIRECT, VFIOD__MODE__MODE_BROKERED};
        Vfiod__DeviceInfo d0 = VFIOD__DEVICE_INFO__INIT, d1 = VFIOD__DEVICE_INFO__INIT;
        Vfiod__DeviceInfo *devs[] = {&d0, &d1};
        Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        fake_check(strcmp(m->env->list_devices->device, "") == 0, "filter '%s'",
                   m->env->list_devices->device);
        d0.device = "0000:00:04.0";
        d0.vendor_id = 0x1234;
        d0.device_id = 0x11e8;
        d0.class_code = 0x00ff00;
        d0.iommu_group = 5;
        d0.driver = "vfio-pci";
        d0.state = VFIOD__LEASE_STATE__LEASE_STATE_FREE;
        d0.n_allowed_modes = 2;
        d0.allowed_modes = modes;
        d1.device = "0000:00:05.0";
        d1.iommu_group = 6;
        d1.state = VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU;
        d1.n_allowed_modes = 1;
        d1.allowed_modes = &modes[1];
        d1.lease_id = 9;
        lr.n_devices = 2;
        lr.devices = devs;
        FAKE_ANSWER(sock, m, list_devices_reply, &lr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        fake_check(strcmp(m->env->list_devices->device, "0000:00:07.0") == 0, "filter '%s'",
                   m->env->list_devices->device);
        fake_reply_error(sock, m->env->id, ENOENT, "no device '0000:00:07.0'");
        vfiod_msg_free(m);

        /* An empty list. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        lr.n_devices = 0;
        lr.devices = NULL;
        FAKE_ANSWER(sock, m, list_devices_reply, &lr);
        fake_expect_eof(sock);
}

START_TEST(test_list_devices)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_devices, NULL);
        struct vfiod_device_info *devs = NULL;
        size_t n = 0;

        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(devs[0].device, "0000:00:04.0");
        ck_assert_uint_eq(devs[0].vendor_id, 0x1234);
        ck_assert_uint_eq(devs[0].device_id, 0x11e8);
        ck_assert_uint_eq(devs[0].class_code, 0x00ff00);
        ck_assert_uint_eq(devs[0].iommu_group, 5);
        ck_assert_str_eq(devs[0].driver, "vfio-pci");
        ck_assert_int_eq(devs[0].state, VFIOD_LEASE_STATE_FREE);
        ck_assert_uint_eq(devs[0].allowed_modes,
                          VFIOD_MODE_BIT(VFIOD_MODE_DIRECT) | VFIOD_MODE_BIT(VFIOD_MODE_BROKERED));
        ck_assert_uint_eq(devs[0].lease_id, 0);
        ck_assert_str_eq(devs[1].device, "0000:00:05.0");
        ck_assert_str_eq(devs[1].driver, "");
        ck_assert_int_eq(devs[1].state, VFIOD_LEASE_STATE_LEASED_BY_YOU);
        ck_assert_uint_eq(devs[1].allowed_modes, VFIOD_MODE_BIT(VFIOD_MODE_BROKERED));
        ck_assert_uint_eq(devs[1].lease_id, 9);
        vfiod_devices_free(devs, n);

        devs = (void *)0x1;
        ck_assert_int_eq(vfiod_list_devices(c, "0000:00:07.0", &devs, &n), -ENOENT);
        ck_assert_str_eq(vfiod_last_error(c), "no device '0000:00:07.0'");
        ck_assert_ptr_eq(devs, (void *)0x1);

        ck_assert_int_eq(vfiod_list_devices(c, "", &devs, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_ptr_null(devs);
        ck_assert_str_eq(vfiod_last_error(c), "");
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

/* A 1.3 daemon: ListDevices in pages, the caller's `after` echoed back as the page's start. */
static void script_device_pages(int sock, void *userdata)
{
        Vfiod__DeviceInfo d[3] = {VFIOD__DEVICE_INFO__INIT, VFIOD__DEVICE_INFO__INIT,
                                  VFIOD__DEVICE_INFO__INIT};
        Vfiod__DeviceInfo *page0[] = {&d[0], &d[1]}, *page1[] = {&d[2]};
        Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        d[0].device = "0000:00:04.0";
        d[1].device = "0000:00:05.0";
        d[2].device = "6d646d61-0000-4000-8000-000000000001";
        for (int round = 0; round < 2; round++) {
                m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
                fake_check(m->env->list_devices->limit > 0, "no limit");
                fake_check(strcmp(m->env->list_devices->after, "") == 0, "after '%s'",
                           m->env->list_devices->after);
                lr.n_devices = 2;
                lr.devices = page0;
                lr.next = "0000:00:05.0";
                FAKE_ANSWER(sock, m, list_devices_reply, &lr);
                m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
                fake_check(strcmp(m->env->list_devices->after, "0000:00:05.0") == 0, "after '%s'",
                           m->env->list_devices->after);
                if (round == 1) {
                        /* The second time, the second page fails: so does the whole call. */
                        fake_reply_error(sock, m->env->id, EINVAL, "after 'x'");
                        vfiod_msg_free(m);
                        continue;
                }
                lr.n_devices = 1;
                lr.devices = page1;
                lr.next = "";
                FAKE_ANSWER(sock, m, list_devices_reply, &lr);
        }
        fake_expect_eof(sock);
}

START_TEST(test_list_devices_pages)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_device_pages, NULL);
        struct vfiod_device_info *devs = NULL;
        size_t n = 0;

        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_str_eq(devs[0].device, "0000:00:04.0");
        ck_assert_str_eq(devs[1].device, "0000:00:05.0");
        ck_assert_str_eq(devs[2].device, "6d646d61-0000-4000-8000-000000000001");
        vfiod_devices_free(devs, n);
        devs = (void *)0x1;
        n = 77;
        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), -EINVAL);
        ck_assert_ptr_eq(devs, (void *)0x1);
        ck_assert_uint_eq(n, 77);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

static void script_domains(int sock, void *userdata)
{
        Vfiod__CreateDomainReply cr = VFIOD__CREATE_DOMAIN_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_CREATE_DOMAIN);
        fake_check(m->env->create_domain->iommu_type == VFIOD__IOMMU_TYPE__IOMMU_TYPE_UNSPECIFIED,
                   "type %d", m->env->create_domain->iommu_type);
        cr.domain_id = 7;
        cr.iommu_type = VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1V2;
        FAKE_ANSWER(sock, m, create_domain_reply, &cr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_CREATE_DOMAIN);
        fake_reply_error(sock, m->env->id, ENOSPC, "client has 4 domains, the limit");
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_DESTROY_DOMAIN);
        fake_check(m->env->destroy_domain->domain_id == 7, "domain %llu",
                   (unsigned long long)m->env->destroy_domain->domain_id);
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_DESTROY_DOMAIN);
        fake_reply_error(sock, m->env->id, EBUSY, "domain 8 holds 1 lease");
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

START_TEST(test_domains)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_domains, NULL);
        enum vfiod_iommu_type type = VFIOD_IOMMU_TYPE_UNSPECIFIED;
        uint64_t id = 0;

        ck_assert_int_eq(vfiod_create_domain(c, VFIOD_IOMMU_TYPE_UNSPECIFIED, &id, &type), 0);
        ck_assert_uint_eq(id, 7);
        ck_assert_int_eq(type, VFIOD_IOMMU_TYPE_TYPE1V2);
        ck_assert_int_eq(vfiod_create_domain(c, VFIOD_IOMMU_TYPE_UNSPECIFIED, &id, NULL), -ENOSPC);
        ck_assert_str_eq(vfiod_last_error(c), "client has 4 domains, the limit");
        ck_assert_uint_eq(id, 7);
        ck_assert_int_eq(vfiod_destroy_domain(c, 7), 0);
        ck_assert_int_eq(vfiod_destroy_domain(c, 8), -EBUSY);
        ck_assert_str_eq(vfiod_last_error(c), "domain 8 holds 1 lease");
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Acquire, release, reset */

/* Three distinct files the fake hands out as container, group and device fds. */
struct acquire_fds {
        int container, group, device;
};

static void send_acquire_reply(int sock, uint64_t id, Vfiod__Mode mode, const struct acquire_fds *a)
{
        Vfiod__AcquireReply ar = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire_reply, &ar);
        Vfiod__LeaseGrant grant = VFIOD__LEASE_GRANT__INIT;
        int fds[3];
        size_t n = 0;

        ar.lease_id = 3;
        ar.domain_id = mode == VFIOD__MODE__MODE_GROUP && a && a->device < 0 ? 0 : 11;
        ar.iommu_group = 5;
        ar.device = "0000:00:04.0";
        ar.mode = mode;
        ar.num_regions = 9;
        ar.num_irqs = 5;
        ar.device_flags = 2;
        /* GROUP: what the daemon did to the holder's RLIMIT_MEMLOCK. */
        if (mode == VFIOD__MODE__MODE_GROUP) {
                grant.memlock_bytes = UINT64_C(1) << 30;
                grant.memlock_error = "";
                ar.grant = &grant;
        }
        /* The device fd first, to check that indices, not positions, are followed. */
        if (a && a->device >= 0) {
                ar.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
                ar.device_fd = n;
                fds[n++] = a->device;
        }
        if (a && a->container >= 0) {
                ar.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD;
                ar.container_fd = n;
                fds[n++] = a->container;
        }
        if (a && a->group >= 0) {
                ar.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
                ar.group_fd = n;
                fds[n++] = a->group;
        }
        env.id = id;
        fake_send(sock, &env, fds, n);
}

static void script_acquire(int sock, void *userdata)
{
        const struct acquire_fds *a = userdata;
        const struct acquire_fds brokered = {.container = -1, .group = -1, .device = a->device};
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        fake_check(strcmp(m->env->acquire->device, "0000:00:04.0") == 0, "device '%s'",
                   m->env->acquire->device);
        fake_check(m->env->acquire->domain_id == 0, "domain");
        fake_check(m->env->acquire->mode == VFIOD__MODE__MODE_DIRECT, "mode");
        send_acquire_reply(sock, m->env->id, VFIOD__MODE__MODE_DIRECT, a);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        fake_check(m->env->acquire->mode == VFIOD__MODE__MODE_BROKERED, "mode");
        fake_check(m->env->acquire->domain_id == 11, "domain");
        send_acquire_reply(sock, m->env->id, VFIOD__MODE__MODE_BROKERED, &brokered);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        fake_reply_error(sock, m->env->id, EPERM, "policy denies '0000:00:06.0' to uid 1000");
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RESET);
        fake_check(m->env->reset->lease_id == 3, "lease");
        fake_check(strcmp(m->env->reset->device, "") == 0, "device");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELEASE);
        fake_check(m->env->release->lease_id == 3, "lease");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELEASE);
        fake_reply_error(sock, m->env->id, ENOENT, "no lease 3");
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

static int new_memfd(const char *name)
{
        int fd = memfd_create(name, MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

START_TEST(test_acquire)
{
        struct acquire_fds a = {
            .container = new_memfd("container"),
            .group = new_memfd("group"),
            .device = new_memfd("device"),
        };
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_acquire, &a);
        struct vfiod_lease lease, untouched = {.lease_id = 77};

        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_DIRECT, &lease), 0);
        ck_assert_uint_eq(lease.lease_id, 3);
        ck_assert_uint_eq(lease.domain_id, 11);
        ck_assert_uint_eq(lease.iommu_group, 5);
        ck_assert_str_eq(lease.device, "0000:00:04.0");
        ck_assert_int_eq(lease.mode, VFIOD_MODE_DIRECT);
        ck_assert_uint_eq(lease.num_regions, 9);
        ck_assert_uint_eq(lease.num_irqs, 5);
        ck_assert_uint_eq(lease.device_flags, 2);
        /* The fds are the files the daemon sent, each in its own field. */
        ck_assert_uint_eq(fake_inode(lease.container_fd), fake_inode(a.container));
        ck_assert_uint_eq(fake_inode(lease.group_fd), fake_inode(a.group));
        ck_assert_uint_eq(fake_inode(lease.device_fd), fake_inode(a.device));
        ck_assert(fcntl(lease.device_fd, F_GETFD) & FD_CLOEXEC);
        vfiod_lease_close_fds(&lease);
        ck_assert_int_eq(lease.container_fd, -1);
        ck_assert_int_eq(lease.group_fd, -1);
        ck_assert_int_eq(lease.device_fd, -1);
        vfiod_lease_close_fds(&lease); /* twice is fine */
        vfiod_lease_close_fds(NULL);

        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 11, VFIOD_MODE_BROKERED, &lease), 0);
        ck_assert_int_eq(lease.mode, VFIOD_MODE_BROKERED);
        ck_assert_int_eq(lease.container_fd, -1);
        ck_assert_int_eq(lease.group_fd, -1);
        ck_assert_uint_eq(fake_inode(lease.device_fd), fake_inode(a.device));
        vfiod_lease_close_fds(&lease);

        ck_assert_int_eq(vfiod_acquire(c, "0000:00:06.0", 0, VFIOD_MODE_DIRECT, &untouched),
                         -EPERM);
        ck_assert_str_eq(vfiod_last_error(c), "policy denies '0000:00:06.0' to uid 1000");
        ck_assert_uint_eq(untouched.lease_id, 77);

        /* An invalid mode never reaches the daemon. */
        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_UNSPECIFIED, &lease),
                         -EINVAL);

        ck_assert_int_eq(vfiod_reset(c, 3, NULL), 0);
        ck_assert_int_eq(vfiod_release(c, 3), 0);
        ck_assert_int_eq(vfiod_release(c, 3), -ENOENT);
        ck_assert_str_eq(vfiod_last_error(c), "no lease 3");
        vfiod_close(c);
        fake_finish(&f);
        close(a.container);
        close(a.group);
        close(a.device);
}
END_TEST

static void script_acquire_bad(int sock, void *userdata)
{
        const struct acquire_fds *a = userdata;
        const struct acquire_fds no_device = {
            .container = a->container, .group = a->group, .device = -1};
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        send_acquire_reply(sock, m->env->id, VFIOD__MODE__MODE_DIRECT, &no_device);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

static void script_acquire_extra_fds(int sock, void *userdata)
{
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        /* A brokered lease must not carry container or group fds. */
        send_acquire_reply(sock, m->env->id, VFIOD__MODE__MODE_BROKERED, userdata);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

static void script_acquire_group(int sock, void *userdata)
{
        const struct acquire_fds *a = userdata;
        const struct acquire_fds group = {.container = -1, .group = a->group, .device = -1};
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_ACQUIRE);
        fake_check(m->env->acquire->mode == VFIOD__MODE__MODE_GROUP, "mode");
        fake_check(m->env->acquire->domain_id == 0, "domain");
        send_acquire_reply(sock, m->env->id, VFIOD__MODE__MODE_GROUP, &group);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

/* A 1.1 daemon knows no GROUP lease: nothing is sent. */
static void script_hello_1_1(int sock, void *userdata)
{
        fake_hello_version(sock, 1, 1, CAPS_ALL);
        fake_expect_eof(sock);
}

START_TEST(test_acquire_group)
{
        struct acquire_fds a = {.container = -1, .group = new_memfd("group"), .device = -1};
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_acquire_group, &a);
        struct vfiod_lease lease, untouched = {.lease_id = 77};

        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_GROUP, &lease), 0);
        ck_assert_int_eq(lease.mode, VFIOD_MODE_GROUP);
        ck_assert_uint_eq(lease.domain_id, 0);
        ck_assert_uint_eq(fake_inode(lease.group_fd), fake_inode(a.group));
        ck_assert(fcntl(lease.group_fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(lease.container_fd, -1);
        ck_assert_int_eq(lease.device_fd, -1);
        ck_assert(lease.grant.known);
        ck_assert_uint_eq(lease.grant.memlock_bytes, UINT64_C(1) << 30);
        ck_assert_str_eq(lease.grant.memlock_error, "");
        vfiod_lease_close_fds(&lease);
        vfiod_close(c);
        fake_finish(&f);
        c = connect_fake(&f, script_hello_1_1, NULL);
        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_GROUP, &untouched),
                         -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(c), "1.2"));
        ck_assert_uint_eq(untouched.lease_id, 77);
        vfiod_close(c);
        fake_finish(&f);
        close(a.group);
}
END_TEST

START_TEST(test_acquire_protocol_errors)
{
        struct acquire_fds a = {
            .container = new_memfd("container"),
            .group = new_memfd("group"),
            .device = new_memfd("device"),
        };
        struct vfiod_lease lease;
        struct fake f;
        struct vfiod *c;

        /* No device fd: a protocol error, and the fds that came are closed. */
        c = connect_fake(&f, script_acquire_bad, &a);
        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_DIRECT, &lease), -EPROTO);
        ck_assert_str_ne(vfiod_last_error(c), "");
        ck_assert_int_eq(vfiod_release(c, 3), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);

        c = connect_fake(&f, script_acquire_extra_fds, &a);
        ck_assert_int_eq(vfiod_acquire(c, "0000:00:04.0", 0, VFIOD_MODE_BROKERED, &lease), -EPROTO);
        vfiod_close(c);
        fake_finish(&f);
        close(a.container);
        close(a.group);
        close(a.device);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Protocol errors and the daemon going away */

static void script_wrong_id(int sock, void *userdata)
{
        Vfiod__ListDevicesReply lr = VFIOD__LIST_DEVICES_REPLY__INIT;
        struct vfiod_msg *m;
        Vfiod__Envelope env;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        env = ENVELOPE(list_devices_reply, &lr);
        env.id = m->env->id + 5; /* not the request's */
        fake_send(sock, &env, NULL, 0);
        vfiod_msg_free(m);
        /* The client must not send anything more. */
        fake_expect_eof(sock);
}

static void script_wrong_body(int sock, void *userdata)
{
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

static void script_garbage(int sock, void *userdata)
{
        static const char junk[] = "\xff\xff\xff\xff not an envelope";
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_DEVICES);
        fake_check(send(sock, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk), "send");
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

START_TEST(test_wrong_reply)
{
        struct vfiod_device_info *devs = NULL;
        size_t n = 0;
        struct fake f;
        struct vfiod *c;

        c = connect_fake(&f, script_wrong_id, NULL);
        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), -EPROTO);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(c), "id"));
        /* The connection is dead: nothing is sent any more. */
        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), -ENOTCONN);
        ck_assert_int_eq(vfiod_release(c, 1), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);

        c = connect_fake(&f, script_wrong_body, NULL);
        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), -EPROTO);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(c), "ok"));
        ck_assert_int_eq(vfiod_release(c, 1), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);

        /* A datagram the transport rejects. */
        c = connect_fake(&f, script_garbage, NULL);
        ck_assert_int_eq(vfiod_list_devices(c, NULL, &devs, &n), -EPROTO);
        ck_assert_ptr_nonnull(strstr(vfiod_last_error(c), "bad datagram"));
        ck_assert_int_eq(vfiod_release(c, 1), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);
        ck_assert_ptr_null(devs);
}
END_TEST

static void script_die_mid_call(int sock, void *userdata)
{
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_CREATE_DOMAIN);
        vfiod_msg_free(m);
        /* Returning closes the socket without a reply. */
}

START_TEST(test_daemon_closes_mid_call)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_die_mid_call, NULL);
        struct vfiod_event ev;
        uint64_t id = 0;

        ck_assert_int_eq(vfiod_create_domain(c, VFIOD_IOMMU_TYPE_UNSPECIFIED, &id, NULL),
                         -ECONNRESET);
        ck_assert_str_ne(vfiod_last_error(c), "");
        ck_assert_uint_eq(id, 0);
        ck_assert_int_eq(vfiod_destroy_domain(c, 1), -ENOTCONN);
        ck_assert_int_eq(vfiod_next_event(c, &ev), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

static void script_die_idle(int sock, void *userdata)
{
        fake_hello(sock, 1, CAPS_ALL);
}

START_TEST(test_daemon_closes_idle)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_die_idle, NULL);
        struct pollfd p = {.fd = vfiod_get_fd(c), .events = POLLIN};
        struct vfiod_event ev;

        fake_finish(&f);
        /* EOF makes the fd readable; the next event call reports it. */
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(vfiod_next_event(c, &ev), -ECONNRESET);
        ck_assert_int_eq(vfiod_release(c, 1), -ENOTCONN);
        vfiod_close(c);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Events */

static void script_events(int sock, void *userdata)
{
        Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
        /* Two events before the reply: the library must queue them. */
        fake_send_release_requested(sock, 3, "0000:00:04.0", 5000, "maintenance");
        fake_send_device_error(sock, 3, "0000:00:04.0");
        FAKE_ANSWER(sock, m, stats_reply, &sr);

        /* One while the client is idle. */
        fake_send_lease_revoked(sock, 3, "0000:00:04.0", "policy reloaded");
        fake_expect_eof(sock);
}

START_TEST(test_events)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_events, NULL);
        struct pollfd p = {.fd = vfiod_get_fd(c), .events = POLLIN};
        struct vfiod_stats st;
        struct vfiod_event ev;

        ck_assert_uint_eq(vfiod_pending_events(c), 0);
        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        ck_assert_uint_eq(vfiod_pending_events(c), 2);

        ck_assert_int_eq(vfiod_next_event(c, &ev), 0);
        ck_assert_int_eq(ev.type, VFIOD_EVENT_RELEASE_REQUESTED);
        ck_assert_uint_eq(ev.lease_id, 3);
        ck_assert_str_eq(ev.device, "0000:00:04.0");
        ck_assert_int_eq(ev.reason, VFIOD_RELEASE_REASON_ADMIN_REVOKE);
        ck_assert_uint_eq(ev.grace_ms, 5000);
        ck_assert_str_eq(ev.detail, "maintenance");

        ck_assert_int_eq(vfiod_next_event(c, &ev), 0);
        ck_assert_int_eq(ev.type, VFIOD_EVENT_DEVICE_ERROR);
        ck_assert_str_eq(ev.device, "0000:00:04.0");
        ck_assert_uint_eq(vfiod_pending_events(c), 0);

        /* The idle one makes the fd readable. */
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(vfiod_next_event(c, &ev), 0);
        ck_assert_int_eq(ev.type, VFIOD_EVENT_LEASE_REVOKED);
        ck_assert_int_eq(ev.reason, VFIOD_RELEASE_REASON_POLICY_CHANGE);
        ck_assert_str_eq(ev.detail, "policy reloaded");
        ck_assert_str_eq(vfiod_event_type_name(ev.type), "lease-revoked");

        ck_assert_int_eq(vfiod_next_event(c, &ev), -EAGAIN);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

static void script_event_flood(int sock, void *userdata)
{
        Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
        for (uint64_t i = 1; i <= VFIOD_EVENT_QUEUE_MAX + 5; i++)
                fake_send_device_error(sock, i, "0000:00:04.0");
        FAKE_ANSWER(sock, m, stats_reply, &sr);
        fake_expect_eof(sock);
}

START_TEST(test_event_queue_bounded)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_event_flood, NULL);
        struct vfiod_stats st;
        struct vfiod_event ev;

        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        ck_assert_uint_eq(vfiod_pending_events(c), VFIOD_EVENT_QUEUE_MAX + 1);
        for (uint64_t i = 1; i <= VFIOD_EVENT_QUEUE_MAX; i++) {
                ck_assert_int_eq(vfiod_next_event(c, &ev), 0);
                ck_assert_int_eq(ev.type, VFIOD_EVENT_DEVICE_ERROR);
                ck_assert_uint_eq(ev.lease_id, i); /* in order */
        }
        ck_assert_int_eq(vfiod_next_event(c, &ev), 0);
        ck_assert_int_eq(ev.type, VFIOD_EVENT_DROPPED);
        ck_assert_uint_eq(ev.dropped, 5);
        ck_assert_int_eq(vfiod_next_event(c, &ev), -EAGAIN);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

static void script_unsolicited_reply(int sock, void *userdata)
{
        fake_hello(sock, 1, CAPS_ALL);
        fake_reply_ok(sock, 42);
        fake_expect_eof(sock);
}

START_TEST(test_unsolicited_reply)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_unsolicited_reply, NULL);
        struct pollfd p = {.fd = vfiod_get_fd(c), .events = POLLIN};
        struct vfiod_event ev;

        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert_int_eq(vfiod_next_event(c, &ev), -EPROTO);
        ck_assert_int_eq(vfiod_next_event(c, &ev), -ENOTCONN);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* DMA */

struct dma_expect {
        uint64_t inode[2]; /* of the memfds the test maps */
};

static void script_map_dma(int sock, void *userdata)
{
        const struct dma_expect *x = userdata;
        Vfiod__MapDmaReply mr = VFIOD__MAP_DMA_REPLY__INIT;
        Vfiod__UnmapDmaReply ur = VFIOD__UNMAP_DMA_REPLY__INIT;
        const Vfiod__MapDma *md;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);

        /* Two ranges of one memfd: one fd in the datagram, named twice. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_MAP_DMA);
        md = m->env->map_dma;
        fake_check(md->domain_id == 11, "domain");
        fake_check(m->n_fds == 1, "%zu fds", m->n_fds);
        fake_check(fake_inode(m->fds[0]) == x->inode[0], "not the memfd");
        fake_check(md->n_ranges == 2, "%zu ranges", md->n_ranges);
        fake_check(md->ranges[0]->fd_index == 0 && md->ranges[1]->fd_index == 0, "indices");
        fake_check(md->ranges[0]->offset == 0 && md->ranges[0]->iova == 0x100000 &&
                       md->ranges[0]->size == 4096,
                   "range 0");
        fake_check(md->ranges[0]->readable && md->ranges[0]->writable, "range 0 flags");
        fake_check(md->ranges[1]->offset == 4096 && md->ranges[1]->iova == 0x200000 &&
                       md->ranges[1]->size == 4096,
                   "range 1");
        fake_check(md->ranges[1]->readable && !md->ranges[1]->writable, "range 1 flags");
        mr.mapped = 2;
        mr.bytes = 8192;
        FAKE_ANSWER(sock, m, map_dma_reply, &mr);

        /* Three ranges of two memfds: two fds, each once. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_MAP_DMA);
        md = m->env->map_dma;
        fake_check(m->n_fds == 2, "%zu fds", m->n_fds);
        fake_check(md->n_ranges == 3, "%zu ranges", md->n_ranges);
        fake_check(fake_inode(m->fds[md->ranges[0]->fd_index]) == x->inode[0], "range 0 fd");
        fake_check(fake_inode(m->fds[md->ranges[1]->fd_index]) == x->inode[1], "range 1 fd");
        fake_check(fake_inode(m->fds[md->ranges[2]->fd_index]) == x->inode[0], "range 2 fd");
        fake_reply_error(sock, m->env->id, EDQUOT, "12288 bytes exceed the pinned quota");
        vfiod_msg_free(m);

        /* vfiod_map_memfd(). */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_MAP_DMA);
        md = m->env->map_dma;
        fake_check(m->n_fds == 1 && md->n_ranges == 1, "one range");
        fake_check(fake_inode(m->fds[0]) == x->inode[1], "memfd");
        fake_check(md->ranges[0]->iova == 0x300000 && md->ranges[0]->size == 8192, "range");
        fake_check(!md->ranges[0]->readable && md->ranges[0]->writable, "flags");
        mr.mapped = 1;
        FAKE_ANSWER(sock, m, map_dma_reply, &mr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_UNMAP_DMA);
        fake_check(m->env->unmap_dma->domain_id == 11, "domain");
        fake_check(m->env->unmap_dma->n_ranges == 2, "ranges");
        fake_check(m->env->unmap_dma->ranges[1]->iova == 0x200000 &&
                       m->env->unmap_dma->ranges[1]->size == 4096,
                   "range 1");
        ur.unmapped = 2;
        ur.unmapped_bytes = 8192;
        FAKE_ANSWER(sock, m, unmap_dma_reply, &ur);
        fake_expect_eof(sock);
}

START_TEST(test_map_dma)
{
        struct dma_expect x;
        int mem[2];
        struct fake f;
        struct vfiod *c;
        uint64_t bytes = 0;

        ck_assert_int_eq(vfiod_memfd_create("ram0", 8192, &mem[0]), 0);
        ck_assert_int_eq(vfiod_memfd_create("ram1", 8192, &mem[1]), 0);
        x.inode[0] = fake_inode(mem[0]);
        x.inode[1] = fake_inode(mem[1]);
        c = connect_fake(&f, script_map_dma, &x);

        {
                const struct vfiod_dma_range r[] = {
                    {mem[0], 0, 0x100000, 4096, VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                    {mem[0], 4096, 0x200000, 4096, VFIOD_DMA_READ},
                };
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 2, &bytes), 2);
                ck_assert_uint_eq(bytes, 8192);
        }
        {
                const struct vfiod_dma_range r[] = {
                    {mem[0], 0, 0x400000, 4096, VFIOD_DMA_READ},
                    {mem[1], 0, 0x500000, 4096, VFIOD_DMA_READ},
                    {mem[0], 4096, 0x600000, 4096, VFIOD_DMA_READ},
                };
                bytes = 1;
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 3, &bytes), -EDQUOT);
                ck_assert_str_eq(vfiod_last_error(c), "12288 bytes exceed the pinned quota");
                ck_assert_uint_eq(bytes, 1);
        }
        /* Refused locally, nothing sent: no range, a bad fd, unknown flags, too many fds. */
        {
                struct vfiod_dma_range r[9];

                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 0, NULL), -EINVAL);
                r[0] = (struct vfiod_dma_range){-1, 0, 0, 4096, VFIOD_DMA_READ};
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 1, NULL), -EINVAL);
                r[0] = (struct vfiod_dma_range){mem[0], 0, 0, 4096, 0x10};
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 1, NULL), -EINVAL);
                /* The fake accepts 8 fds per datagram; 9 distinct fds do not fit. */
                for (int i = 0; i < 9; i++)
                        r[i] = (struct vfiod_dma_range){mem[0] + 1000 + i, 0, 0, 4096, 1};
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 9, NULL), -EMSGSIZE);
                /* Not a memfd: -EBADFD, said as a local refusal, not a failed send. */
                r[0] =
                    (struct vfiod_dma_range){eventfd(0, EFD_CLOEXEC), 0, 0, 4096, VFIOD_DMA_READ};
                ck_assert_int_ge(r[0].fd, 0);
                ck_assert_int_eq(vfiod_map_dma(c, 11, r, 1, NULL), -EBADFD);
                ck_assert_msg(strstr(vfiod_last_error(c), "not a memfd") &&
                                  !strstr(vfiod_last_error(c), "sending"),
                              "'%s'", vfiod_last_error(c));
                close(r[0].fd);
        }

        ck_assert_int_eq(vfiod_map_memfd(c, 11, mem[1], 0, 0x300000, 8192, VFIOD_DMA_WRITE), 0);
        {
                const struct vfiod_iova_range u[] = {{0x100000, 4096}, {0x200000, 4096}};

                ck_assert_int_eq(vfiod_unmap_dma(c, 11, u, 2, &bytes), 2);
                ck_assert_uint_eq(bytes, 8192);
                ck_assert_int_eq(vfiod_unmap_dma(c, 11, u, 0, NULL), -EINVAL);
        }
        vfiod_close(c);
        fake_finish(&f);
        /* The library borrowed the memfds: they are still open. */
        ck_assert_int_ge(fcntl(mem[0], F_GETFD), 0);
        ck_assert_int_ge(fcntl(mem[1], F_GETFD), 0);
        close(mem[0]);
        close(mem[1]);
}
END_TEST

START_TEST(test_memfd_create)
{
        struct stat st;
        char *p;
        int fd = -7, seals;

        ck_assert_int_eq(vfiod_memfd_create("guest-ram", 0, &fd), -EINVAL);
        ck_assert_int_eq(vfiod_memfd_create("guest-ram", UINT64_MAX, &fd), -EFBIG);
        ck_assert_int_eq(fd, -7);

        ck_assert_int_eq(vfiod_memfd_create("guest-ram", 3 * 4096, &fd), 0);
        ck_assert_int_ge(fd, 0);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 3 * 4096);
        /* Every page is the caller's already: MapDma refuses a range with a hole. */
        ck_assert_int_eq(lseek(fd, 0, SEEK_HOLE), 3 * 4096);
        seals = fcntl(fd, F_GET_SEALS);
        ck_assert_int_ge(seals, 0);
        ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        ck_assert_int_eq(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);
        /* The size is fixed, no seal can be added, and the pages stay writable. */
        ck_assert_int_eq(ftruncate(fd, 4096), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(fd, 4 * 4096), -1);
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
        p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        p[2 * 4096] = 'x';
        ck_assert_int_eq(munmap(p, 3 * 4096), 0);
        close(fd);

        ck_assert_int_eq(vfiod_memfd_create(NULL, 1, &fd), 0);
        close(fd);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Interrupts */

static void script_irqs(int sock, void *userdata)
{
        const Vfiod__SetIrqs *s;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL);

        /* vfiod_setup_msi(): three fresh eventfds for MSI-X vectors 0..2. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_SET_IRQS);
        s = m->env->set_irqs;
        fake_check(s->lease_id == 3 && s->index == VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX, "target");
        fake_check(s->start == 0 && s->count == 3, "vectors");
        fake_check(s->action == VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER, "action");
        fake_check(s->data == VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD, "data");
        fake_check(m->n_fds == 3 && s->n_eventfds == 3, "%zu fds", m->n_fds);
        /* Signal vector i i+1 times: the client reads the counts back on its fds. */
        for (size_t i = 0; i < 3; i++) {
                uint64_t v = i + 1;

                fake_check(write(m->fds[s->eventfds[i]], &v, sizeof(v)) == sizeof(v), "write");
        }
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        /* A refused setup. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_SET_IRQS);
        fake_check(m->n_fds == 2, "%zu fds", m->n_fds);
        fake_reply_error(sock, m->env->id, EINVAL, "device has no MSI capability");
        vfiod_msg_free(m);

        /* One eventfd for two vectors, a de-assigned vector in between. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_SET_IRQS);
        s = m->env->set_irqs;
        fake_check(m->n_fds == 1, "%zu fds", m->n_fds);
        fake_check(s->n_eventfds == 3 && s->eventfds[0] == 0 && s->eventfds[1] == -1 &&
                       s->eventfds[2] == 0,
                   "eventfds");
        fake_check(strcmp(s->device, "0000:00:04.1") == 0 && s->start == 4, "target");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        /* Bools: unmask. */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_SET_IRQS);
        s = m->env->set_irqs;
        fake_check(s->data == VFIOD__IRQ_DATA__IRQ_DATA_BOOL && s->n_bools == 2, "bools");
        fake_check(s->bools[0] && !s->bools[1], "bool values");
        fake_check(s->action == VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK, "action");
        fake_check(m->n_fds == 0, "fds");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        /* vfiod_disable_irqs(). */
        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_SET_IRQS);
        s = m->env->set_irqs;
        fake_check(s->count == 0 && s->data == VFIOD__IRQ_DATA__IRQ_DATA_NONE &&
                       s->action == VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER &&
                       s->index == VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX,
                   "disable");
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);
        fake_expect_eof(sock);
}

START_TEST(test_irqs)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_irqs, NULL);
        int efd[3] = {-2, -2, -2};
        int before;

        ck_assert_int_eq(vfiod_setup_msi(c, 3, VFIOD_IRQ_INDEX_MSIX, 3, efd), 0);
        for (int i = 0; i < 3; i++) {
                uint64_t v = 0;

                ck_assert_int_ge(efd[i], 0);
                ck_assert(fcntl(efd[i], F_GETFD) & FD_CLOEXEC);
                ck_assert(fcntl(efd[i], F_GETFL) & O_NONBLOCK);
                ck_assert_int_eq(read(efd[i], &v, sizeof(v)), sizeof(v));
                ck_assert_uint_eq(v, (uint64_t)i + 1);
        }

        /* Failure: every eventfd it made is closed, the output untouched. */
        {
                int out[2] = {-2, -2};

                before = testutil_count_fds();
                ck_assert_int_eq(vfiod_setup_msi(c, 3, VFIOD_IRQ_INDEX_MSI, 2, out), -EINVAL);
                ck_assert_str_eq(vfiod_last_error(c), "device has no MSI capability");
                ck_assert_int_eq(testutil_count_fds(), before);
                ck_assert_int_eq(out[0], -2);
                ck_assert_int_eq(out[1], -2);
                /* Refused locally. */
                ck_assert_int_eq(vfiod_setup_msi(c, 3, VFIOD_IRQ_INDEX_INTX, 1, out), -EINVAL);
                ck_assert_int_eq(vfiod_setup_msi(c, 3, VFIOD_IRQ_INDEX_MSI, 0, out), -EINVAL);
                ck_assert_int_eq(testutil_count_fds(), before);
        }
        {
                const int fds[] = {efd[0], -1, efd[0]};
                const struct vfiod_irq_set set = {
                    .device = "0000:00:04.1",
                    .index = VFIOD_IRQ_INDEX_MSIX,
                    .start = 4,
                    .count = 3,
                    .action = VFIOD_IRQ_ACTION_TRIGGER,
                    .eventfds = fds,
                };
                ck_assert_int_eq(vfiod_set_irqs(c, 3, &set), 0);
        }
        {
                const bool bools[] = {true, false};
                const int bad[] = {-5};
                struct vfiod_irq_set set = {
                    .index = VFIOD_IRQ_INDEX_INTX,
                    .count = 2,
                    .action = VFIOD_IRQ_ACTION_UNMASK,
                    .bools = bools,
                };
                ck_assert_int_eq(vfiod_set_irqs(c, 3, &set), 0);
                set.eventfds = bad; /* both payloads */
                ck_assert_int_eq(vfiod_set_irqs(c, 3, &set), -EINVAL);
                set.bools = NULL;
                set.count = 1;
                ck_assert_int_eq(vfiod_set_irqs(c, 3, &set), -EINVAL);
        }
        ck_assert_int_eq(vfiod_disable_irqs(c, 3, VFIOD_IRQ_INDEX_MSIX), 0);
        vfiod_close(c);
        fake_finish(&f);
        for (int i = 0; i < 3; i++)
                close(efd[i]);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* Admin */

static void script_admin(int sock, void *userdata)
{
        char *devs0[] = {"0000:00:04.0", "0000:00:04.1"};
        Vfiod__LeaseInfo l0 = VFIOD__LEASE_INFO__INIT;
        Vfiod__LeaseInfo *leases[] = {&l0};
        Vfiod__ListLeasesReply llr = VFIOD__LIST_LEASES_REPLY__INIT;
        char *errors[] = {"/etc/vfiod/vfiod.conf:3: unknown key 'colour'"};
        Vfiod__ReloadPolicyReply rr = VFIOD__RELOAD_POLICY_REPLY__INIT;
        Vfiod__StatsReply sr = VFIOD__STATS_REPLY__INIT;
        struct vfiod_msg *m;

        fake_hello(sock, 1, CAPS_ALL | VFIOD_CAP_ADMIN);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_LIST_LEASES);
        l0.lease_id = 3;
        l0.n_devices = 2;
        l0.devices = devs0;
        l0.iommu_group = 5;
        l0.uid = 1000;
        l0.gid = 1001;
        l0.pid = 4242;
        l0.unit = "vm@web.service";
        l0.mode = VFIOD__MODE__MODE_BROKERED;
        l0.domain_id = 11;
        l0.pinned_bytes = 1 << 20;
        l0.mappings = 2;
        l0.status = VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE;
        llr.n_leases = 1;
        llr.leases = leases;
        FAKE_ANSWER(sock, m, list_leases_reply, &llr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_REVOKE);
        fake_check(m->env->revoke->lease_id == 3, "lease");
        fake_check(strcmp(m->env->revoke->reason, "maintenance") == 0, "reason '%s'",
                   m->env->revoke->reason);
        fake_reply_ok(sock, m->env->id);
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_REVOKE);
        fake_reply_error(sock, m->env->id, EPERM, "peer uid 1000 is not an admin");
        vfiod_msg_free(m);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELOAD_POLICY);
        rr.n_errors = 1;
        rr.errors = errors;
        FAKE_ANSWER(sock, m, reload_policy_reply, &rr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_RELOAD_POLICY);
        rr.n_errors = 0;
        rr.errors = NULL;
        rr.leases_revoked = 2;
        FAKE_ANSWER(sock, m, reload_policy_reply, &rr);

        m = fake_recv(sock, VFIOD__ENVELOPE__BODY_STATS);
        sr.clients = 2;
        sr.leases = 1;
        sr.domains = 1;
        sr.mappings = 2;
        sr.pinned_bytes = 1 << 20;
        sr.requests = 99;
        sr.errors = 4;
        sr.quarantined_groups = 1;
        sr.uptime_ms = 123456;
        FAKE_ANSWER(sock, m, stats_reply, &sr);
        fake_expect_eof(sock);
}

START_TEST(test_admin)
{
        struct fake f;
        struct vfiod *c = connect_fake(&f, script_admin, NULL);
        struct vfiod_lease_info *leases = NULL;
        struct vfiod_reload_result res;
        struct vfiod_stats st;
        size_t n = 0;

        ck_assert_int_eq(vfiod_list_leases(c, &leases, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(leases[0].lease_id, 3);
        ck_assert_uint_eq(leases[0].n_devices, 2);
        ck_assert_str_eq(leases[0].devices[0], "0000:00:04.0");
        ck_assert_str_eq(leases[0].devices[1], "0000:00:04.1");
        ck_assert_uint_eq(leases[0].uid, 1000);
        ck_assert_uint_eq(leases[0].gid, 1001);
        ck_assert_uint_eq(leases[0].pid, 4242);
        ck_assert_str_eq(leases[0].unit, "vm@web.service");
        ck_assert_int_eq(leases[0].mode, VFIOD_MODE_BROKERED);
        ck_assert_uint_eq(leases[0].domain_id, 11);
        ck_assert_uint_eq(leases[0].pinned_bytes, 1 << 20);
        ck_assert_uint_eq(leases[0].mappings, 2);
        ck_assert_int_eq(leases[0].status, VFIOD_LEASE_STATUS_ACTIVE);
        vfiod_leases_free(leases, n);
        vfiod_leases_free(NULL, 0);

        ck_assert_int_eq(vfiod_revoke(c, 3, "maintenance"), 0);
        ck_assert_int_eq(vfiod_revoke(c, 3, NULL), -EPERM);
        ck_assert_str_eq(vfiod_last_error(c), "peer uid 1000 is not an admin");

        ck_assert_int_eq(vfiod_reload_policy(c, &res), 0);
        ck_assert(!res.applied);
        ck_assert_uint_eq(res.n_errors, 1);
        ck_assert_str_eq(res.errors[0], "/etc/vfiod/vfiod.conf:3: unknown key 'colour'");
        vfiod_reload_result_clear(&res);
        ck_assert_ptr_null(res.errors);
        ck_assert_int_eq(vfiod_reload_policy(c, &res), 0);
        ck_assert(res.applied);
        ck_assert_uint_eq(res.leases_revoked, 2);
        vfiod_reload_result_clear(&res);

        ck_assert_int_eq(vfiod_stats(c, &st), 0);
        ck_assert_uint_eq(st.clients, 2);
        ck_assert_uint_eq(st.leases, 1);
        ck_assert_uint_eq(st.domains, 1);
        ck_assert_uint_eq(st.mappings, 2);
        ck_assert_uint_eq(st.pinned_bytes, 1 << 20);
        ck_assert_uint_eq(st.requests, 99);
        ck_assert_uint_eq(st.errors, 4);
        ck_assert_uint_eq(st.quarantined_groups, 1);
        ck_assert_uint_eq(st.uptime_ms, 123456);
        vfiod_close(c);
        fake_finish(&f);
}
END_TEST

START_TEST(test_names)
{
        ck_assert_str_eq(vfiod_mode_name(VFIOD_MODE_DIRECT), "direct");
        ck_assert_str_eq(vfiod_mode_name(VFIOD_MODE_BROKERED), "brokered");
        ck_assert_str_eq(vfiod_mode_name((enum vfiod_mode)42), "unknown");
        ck_assert_str_eq(vfiod_lease_state_name(VFIOD_LEASE_STATE_LEASED_BY_YOU), "leased-by-you");
        ck_assert_str_eq(vfiod_lease_status_name(VFIOD_LEASE_STATUS_RELEASING), "releasing");
        ck_assert_str_eq(vfiod_iommu_type_name(VFIOD_IOMMU_TYPE_TYPE1V2), "type1v2");
        ck_assert_str_eq(vfiod_release_reason_name(VFIOD_RELEASE_REASON_KERNEL_REQUEST),
                         "kernel-request");
        ck_assert_str_eq(vfiod_release_reason_name(VFIOD_RELEASE_REASON_DEVICE_GONE),
                         "device-gone");
        ck_assert_str_eq(vfiod_event_type_name(VFIOD_EVENT_DROPPED), "dropped");
        /* NULL-safe destructors and getters. */
        vfiod_close(NULL);
        vfiod_devices_free(NULL, 0);
        vfiod_reload_result_clear(NULL);
        ck_assert_str_eq(vfiod_last_error(NULL), "");
        ck_assert_int_eq(vfiod_get_fd(NULL), -EINVAL);
}
END_TEST

static Suite *libvfiod_suite(void)
{
        Suite *s = suite_create("libvfiod");
        struct {
                const char *name;
                const TTest *test;
        } cases[] = {
            {"hello", test_hello_ok},
            {"hello", test_hello_wrong_major},
            {"hello", test_take_fd_checks},
            {"connect", test_connect_path},
            {"connect", test_connect_env},
            {"devices", test_list_devices},
            {"devices in pages", test_list_devices_pages},
            {"domains", test_domains},
            {"leases", test_acquire},
            {"leases", test_acquire_protocol_errors},
            {"leases", test_acquire_group},
            {"protocol", test_wrong_reply},
            {"protocol", test_daemon_closes_mid_call},
            {"protocol", test_daemon_closes_idle},
            {"protocol", test_unsolicited_reply},
            {"events", test_events},
            {"events", test_event_queue_bounded},
            {"dma", test_map_dma},
            {"dma", test_memfd_create},
            {"irqs", test_irqs},
            {"admin", test_admin},
            {"names", test_names},
        };
        TCase *tc = NULL;
        const char *current = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (!current || strcmp(current, cases[i].name) != 0) {
                        tc = tcase_create(cases[i].name);
                        testutil_tcase_fd_checked(tc);
                        suite_add_tcase(s, tc);
                        current = cases[i].name;
                }
                tcase_add_test(tc, cases[i].test);
        }
        return s;
}

int main(void)
{
        return testutil_run_suite(libvfiod_suite());
}
