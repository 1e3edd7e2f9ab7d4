/* SPDX-License-Identifier: MIT */
#include "tests/daemon/harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/policy.h"
#include "kernel/sysfs.h"
#include "proto/envelope.h"
#include "tests/fakesys.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

struct harness H;

const char *h_default_conf = "[Device test]\n"
                             "Match=0000:00:01.0 0000:00:02.0 0000:00:03.0 0000:00:04.0\n"
                             "Users=1000\n";

void h_start(const char *conf)
{
        struct vfiod_policy *policy = NULL;
        struct vfiod_errors errors = {0};
        int r;

        memset(&H, 0, sizeof(H));
        /* Every log line is formatted (so valgrind sees that code); shown with
         * VFIOD_TEST_VERBOSE=1. */
        vfiod_log_set_max_level(LOG_DEBUG);
        if (!getenv("VFIOD_TEST_VERBOSE")) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                ck_assert_int_ge(null, 0);
                ck_assert_int_eq(dup2(null, STDERR_FILENO), STDERR_FILENO);
                close(null);
        }
        H.root = testutil_mkdtemp("vfiod-daemon");
        testutil_write_file(H.root, "sys/bus/pci/devices/.keep", "");
        testutil_write_file(H.root, "dev/vfio/.keep", "");
        snprintf(H.vfio_dir, sizeof(H.vfio_dir), "%s/dev/vfio", H.root);
        snprintf(H.conf, sizeof(H.conf), "%s/vfiod.conf", H.root);
        if (conf) {
                testutil_write_file(H.root, "vfiod.conf", conf);
                r = vfiod_policy_load(H.conf, false, &policy, &errors);
                ck_assert_msg(r == 0, "config: %s", errors.n ? errors.lines[0] : strerror(-r));
        } else
                ck_assert_int_eq(vfiod_policy_new(&policy), 0);
        vfiod_errors_clear(&errors);
        H.loop = ev_loop_new(EVFLAG_AUTO);
        ck_assert_ptr_nonnull(H.loop);
        r = vfiod_server_new(H.loop,
                             &(struct vfiod_server_options){.sysfs_root = H.root,
                                                            .vfio_dir = H.vfio_dir,
                                                            .config_path = conf ? H.conf : NULL},
                             policy, &H.server);
        ck_assert_int_eq(r, 0);
}

void h_stop(void)
{
        vfiod_server_free(H.server);
        H.server = NULL;
        ck_assert_msg(fake_kernel_live() == 0, "%zu fake VFIO fds still open after the server",
                      fake_kernel_live());
        fake_kernel_reset();
        ev_loop_destroy(H.loop);
        testutil_rmtree(H.root);
        free(H.root);
        H.root = NULL;
}

void h_add_device(const char *bdf, int group, const char *driver)
{
        struct kvfio_pci_dev dev;

        ck_assert_int_eq(fakesys_add_pci(H.root, bdf, group, driver), 0);
        /* The fake kernel knows what VFIO drives: vfio-pci and its variants. */
        ck_assert_int_eq(kvfio_pci_dev_read(H.root, bdf, &dev), 0);
        if (kvfio_dev_is_vfio(&dev))
                fake_kernel_add_device(group, bdf);
        if (H.server)
                h_uevent("add", bdf);
}

void h_add_cdev(const char *bdf, int cdev)
{
        ck_assert_int_eq(fakesys_add_cdev(H.root, bdf, cdev), 0);
        fake_kernel_set_cdev(bdf, cdev);
        /* The kernel makes the cdev as vfio-pci binds the device: its "bind" uevent. */
        if (H.server)
                h_uevent("bind", bdf);
}

void h_add_mdev(const char *uuid, int group, const char *driver)
{
        ck_assert_int_eq(fakesys_add_mdev(H.root, uuid, group, driver), 0);
        if (driver)
                fake_kernel_add_device(group, uuid);
        if (H.server)
                h_uevent("add", uuid);
}

int h_connect(uid_t uid, gid_t gid)
{
        struct vfiod_peer peer = {.uid = uid, .gid = gid, .pid = getpid()};
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        /* sv[1] moves to the server. */
        ck_assert_int_eq(vfiod_server_add_client_take(H.server, sv[1], &peer), 0);
        return sv[0];
}

void h_spin(void)
{
        for (int i = 0; i < 8; i++)
                ev_run(H.loop, EVRUN_NOWAIT);
}

void h_closer_drain(void)
{
        for (int i = 0; i < 400 && vfiod_closer_pending(H.server->closer, false, 0) > 0; i++)
                usleep(5000);
        ck_assert_uint_eq(vfiod_closer_pending(H.server->closer, false, 0), 0);
        h_spin();
}

uint64_t h_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        return rawclient_send(fd, env, fds, n_fds, &H.next_id);
}

void h_send_raw(int fd, const Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        rawclient_send_raw(fd, env, fds, n_fds);
}

struct vfiod_msg *h_recv(int fd)
{
        for (int i = 0; i < 400; i++) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                struct vfiod_msg *msg = NULL;
                const char *reason = NULL;
                int r;

                ev_run(H.loop, EVRUN_NOWAIT);
                if (poll(&p, 1, 5) != 1)
                        continue;
                r = vfiod_msg_recv(fd, MSG_DONTWAIT, &msg, &reason);
                if (r == -EAGAIN)
                        continue;
                ck_assert_msg(r == 1, "recv: %d %s", r, reason ? reason : "");
                return msg;
        }
        ck_abort_msg("no reply from the daemon");
        return NULL;
}

bool h_closed(int fd)
{
        char c;
        ssize_t n;

        h_spin();
        /* Drain what is queued; EOF means closed. */
        for (int i = 0; i < 100; i++) {
                n = recv(fd, &c, 1, MSG_DONTWAIT);
                if (n == 0)
                        return true;
                if (n < 0 && errno == EAGAIN)
                        return false;
        }
        return false;
}

bool h_quiet(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};

        h_spin();
        return poll(&p, 1, 0) == 0;
}

struct vfiod_msg *h_call(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        uint64_t id = h_send(fd, env, fds, n_fds);
        struct vfiod_msg *msg = h_recv(fd);

        ck_assert_uint_eq(msg->env->id, id);
        return msg;
}

int h_error(struct vfiod_msg *msg)
{
        return rawclient_error(msg);
}

void h_ok(struct vfiod_msg *msg)
{
        rawclient_ok(msg);
}

void h_hello(int fd, uint64_t caps)
{
        rawclient_hello(h_call, fd, caps);
}

uint64_t h_acquire(int fd, const char *bdf, uint64_t domain, int mode, int ret_fds[3],
                   size_t *ret_n, uint64_t *ret_domain, int *ret_err)
{
        struct rawclient_acquired got = {0};
        uint64_t lease = rawclient_acquire(h_call, fd, bdf, domain, mode, &got);

        if (!lease) {
                if (ret_err)
                        *ret_err = got.errnum;
                return 0;
        }
        memcpy(ret_fds, got.fds, got.n_fds * sizeof(int)); /* the fds move to the caller */
        *ret_n = got.n_fds;
        if (ret_domain)
                *ret_domain = got.domain;
        return lease;
}

uint64_t h_acquire_ok(int fd, const char *bdf, uint64_t domain, int mode, int ret_fds[3],
                      size_t *ret_n, uint64_t *ret_domain)
{
        int e = 0;
        uint64_t lease = h_acquire(fd, bdf, domain, mode, ret_fds, ret_n, ret_domain, &e);

        ck_assert_msg(lease != 0, "Acquire '%s' failed: %s", bdf, strerror(e));
        return lease;
}

int h_release(int fd, uint64_t lease)
{
        return rawclient_release(h_call, fd, lease);
}

void h_revoke(int admin, uint64_t lease, const char *why, int want)
{
        ck_assert_int_eq(rawclient_revoke(h_call, admin, lease, why), want);
}

void h_reload(int admin, uint32_t want_revoked)
{
        rawclient_reload(h_call, admin, want_revoked);
}

Vfiod__LeaseState h_state(int fd, const char *bdf)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        struct vfiod_msg *m;
        Vfiod__LeaseState s;

        l.device = (char *)bdf;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
        s = m->env->list_devices_reply->devices[0]->state;
        vfiod_msg_free(m);
        return s;
}

void h_close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

int h_memfd_sparse(size_t size, int seals)
{
        int fd = memfd_create("vfiod-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        if (seals)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

int h_memfd(size_t size, int seals)
{
        int fd = h_memfd_sparse(size, 0);
        static const char zeros[4096];

        /* The client's own pages, as MapDma wants them: every page written once. */
        for (size_t off = 0; off < size; off += sizeof(zeros))
                ck_assert_int_eq(pwrite(fd, zeros, sizeof(zeros), (off_t)off), sizeof(zeros));
        if (seals)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

int h_set_irqs(int fd, uint64_t lease, uint32_t index, uint32_t count, int efd, char *ret_reason)
{
        return rawclient_set_irqs(h_call, fd, lease, index, 0, count, &efd, count ? 1 : 0,
                                  ret_reason);
}

void h_uevent(const char *action, const char *name)
{
        char uuid[KVFIO_UUID_MAX];
        bool mdev = kvfio_mdev_uuid_normalize(name, uuid) == 0;

        ck_assert_int_ge(
            vfiod_registry_uevent(H.server->devices, action, mdev ? "mdev" : "pci", name), 0);
        h_spin();
}
