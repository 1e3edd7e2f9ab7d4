/* SPDX-License-Identifier: MIT */
/* The suites' raw-protocol client; see rawclient.h. */
#include "tests/rawclient.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/envelope.h"

uint64_t rawclient_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds,
                        uint64_t *next_id)
{
        int r;

        if (!env->id)
                env->id = ++*next_id;
        r = vfiod_msg_send(fd, env, fds, n_fds);
        ck_assert_msg(r == 0, "send: %s", strerror(-r));
        return env->id;
}

ssize_t rawclient_send_bytes(int fd, const void *buf, size_t len, const int *fds, size_t n_fds)
{
        size_t space = CMSG_SPACE(sizeof(int) * (n_fds ? n_fds : 1));
        char *control = calloc(1, space);
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        ck_assert_ptr_nonnull(control);
        if (n_fds) {
                struct cmsghdr *cm;

                mh.msg_control = control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        free(control);
        return n < 0 ? -errno : n;
}

void rawclient_send_raw(int fd, const Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        size_t len = vfiod__envelope__get_packed_size(env);
        uint8_t *buf = malloc(len ? len : 1);
        ssize_t n;

        ck_assert_ptr_nonnull(buf);
        vfiod__envelope__pack(env, buf);
        n = rawclient_send_bytes(fd, buf, len, fds, n_fds);
        ck_assert_msg(n == (ssize_t)len, "sendmsg: %zd", n);
        free(buf);
}

struct vfiod_msg *rawclient_call_blocking(int fd, Vfiod__Envelope *env, const int *fds,
                                          size_t n_fds)
{
        static uint64_t next_id = 1000;
        struct vfiod_msg *m = NULL;

        if (!env->id)
                env->id = ++next_id;
        ck_assert_int_eq(vfiod_msg_send(fd, env, fds, n_fds), 0);
        ck_assert_int_eq(vfiod_msg_recv(fd, 0, &m, NULL), 1);
        ck_assert_uint_eq(m->env->id, env->id);
        return m;
}

int rawclient_error(struct vfiod_msg *msg)
{
        int e;

        ck_assert_msg(msg->env->body_case == VFIOD__ENVELOPE__BODY_ERROR,
                      "expected an Error, got %s", vfiod_envelope_body_name(msg->env));
        e = msg->env->error->errnum;
        vfiod_msg_free(msg);
        return e;
}

void rawclient_ok(struct vfiod_msg *msg)
{
        ck_assert_msg(msg->env->body_case == VFIOD__ENVELOPE__BODY_OK, "expected Ok, got %s (%s)",
                      vfiod_envelope_body_name(msg->env),
                      msg->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? msg->env->error->reason
                                                                         : "");
        vfiod_msg_free(msg);
}

int rawclient_errnum(struct vfiod_msg *msg)
{
        int e = msg->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? msg->env->error->errnum : 0;

        vfiod_msg_free(msg);
        return e;
}

int rawclient_outcome(struct vfiod_msg *msg, Vfiod__Envelope__BodyCase ok_body, char *ret_reason)
{
        if (msg->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                int e = msg->env->error->errnum;

                ck_assert_msg(e > 0, "an Error with errnum %d", e);
                ck_assert_msg(msg->env->error->reason && *msg->env->error->reason,
                              "an Error without a reason");
                if (ret_reason)
                        snprintf(ret_reason, 256, "%s", msg->env->error->reason);
                vfiod_msg_free(msg);
                return e;
        }
        ck_assert_msg(msg->env->body_case == ok_body, "expected %s, got %s",
                      vfiod_envelope_body_name(&(Vfiod__Envelope){.body_case = ok_body}),
                      vfiod_envelope_body_name(msg->env));
        vfiod_msg_free(msg);
        return 0;
}

void rawclient_hello(rawclient_call_fn call, int fd, uint64_t caps)
{
        rawclient_hello_limits(call, fd, caps, 0, 0);
}

void rawclient_hello_limits(rawclient_call_fn call, int fd, uint64_t caps, uint32_t max_datagram,
                            uint32_t max_fds)
{
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope env = ENVELOPE(hello, &h);
        struct vfiod_msg *m;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        h.minor = VFIOD_PROTO_VERSION_MINOR;
        h.capabilities = caps;
        h.max_datagram = max_datagram;
        h.max_fds = max_fds;
        m = call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_HELLO_REPLY);
        vfiod_msg_free(m);
}

uint64_t rawclient_acquire(rawclient_call_fn call, int fd, const char *device, uint64_t domain,
                           int mode, struct rawclient_acquired *ret)
{
        return rawclient_acquire_iface(call, fd, device, domain, mode,
                                       VFIOD__INTERFACE__INTERFACE_UNSPECIFIED, ret);
}

uint64_t rawclient_acquire_iface(rawclient_call_fn call, int fd, const char *device,
                                 uint64_t domain, int mode, int iface,
                                 struct rawclient_acquired *ret)
{
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire, &a);
        const Vfiod__AcquireReply *r;
        struct vfiod_msg *m;
        uint64_t lease;

        a.device = (char *)device;
        a.domain_id = domain;
        a.mode = mode;
        a.interface = iface;
        m = call(fd, &env, NULL, 0);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                ret->errnum = m->env->error->errnum;
                snprintf(ret->reason, sizeof(ret->reason), "%s", m->env->error->reason);
                vfiod_msg_free(m);
                return 0;
        }
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY);
        ck_assert_uint_le(m->n_fds, 3);
        for (size_t i = 0; i < m->n_fds; i++)
                ret->fds[i] = vfiod_msg_take_fd(m, i); /* moves to the caller */
        ret->n_fds = m->n_fds;
        r = m->env->acquire_reply;
        ret->domain = r->domain_id;
        ret->iface = r->interface;
        ret->device_fd = r->has_device_fd_case == VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD
                             ? (int)r->device_fd
                             : -1;
        ret->iommufd = r->has_iommufd_fd_case == VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD
                           ? (int)r->iommufd_fd
                           : -1;
        snprintf(ret->cdev, sizeof(ret->cdev), "%s", r->cdev ? r->cdev : "");
        lease = r->lease_id;
        vfiod_msg_free(m);
        return lease;
}

int rawclient_release(rawclient_call_fn call, int fd, uint64_t lease)
{
        Vfiod__Release r = VFIOD__RELEASE__INIT;
        Vfiod__Envelope env = ENVELOPE(release, &r);

        r.lease_id = lease;
        return rawclient_outcome(call(fd, &env, NULL, 0), VFIOD__ENVELOPE__BODY_OK, NULL);
}

int rawclient_revoke(rawclient_call_fn call, int admin, uint64_t lease, const char *why)
{
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__Envelope env = ENVELOPE(revoke, &rv);

        rv.lease_id = lease;
        rv.reason = (char *)why;
        return rawclient_outcome(call(admin, &env, NULL, 0), VFIOD__ENVELOPE__BODY_OK, NULL);
}

void rawclient_reload(rawclient_call_fn call, int admin, uint32_t want_revoked)
{
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Envelope env = ENVELOPE(reload_policy, &rp);
        struct vfiod_msg *m;

        m = call(admin, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_RELOAD_POLICY_REPLY);
        ck_assert_msg(m->env->reload_policy_reply->n_errors == 0, "%s",
                      m->env->reload_policy_reply->errors[0]);
        ck_assert_uint_eq(m->env->reload_policy_reply->leases_revoked, want_revoked);
        vfiod_msg_free(m);
}

void rawclient_set_irqs_init(struct rawclient_set_irqs *m, uint64_t lease, uint32_t index,
                             uint32_t start, uint32_t count, size_t n_efds)
{
        ck_assert_uint_le(count, RAWCLIENT_MAX_VECTORS);
        vfiod__set_irqs__init(&m->set_irqs);
        for (size_t i = 0; i < count; i++)
                m->eventfds[i] = (int32_t)(i < n_efds ? i : 0);
        m->set_irqs.lease_id = lease;
        m->set_irqs.index = index;
        m->set_irqs.start = start;
        m->set_irqs.count = count;
        m->set_irqs.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        m->set_irqs.data =
            count ? VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD : VFIOD__IRQ_DATA__IRQ_DATA_NONE;
        m->set_irqs.n_eventfds = count;
        m->set_irqs.eventfds = m->eventfds;
        m->env = ENVELOPE(set_irqs, &m->set_irqs);
}

int rawclient_set_irqs(rawclient_call_fn call, int fd, uint64_t lease, uint32_t index,
                       uint32_t start, uint32_t count, const int *efds, size_t n_efds,
                       char *ret_reason)
{
        struct rawclient_set_irqs m;

        rawclient_set_irqs_init(&m, lease, index, start, count, n_efds);
        return rawclient_outcome(call(fd, &m.env, efds, n_efds), VFIOD__ENVELOPE__BODY_OK,
                                 ret_reason);
}

void rawclient_map_dma_init(struct rawclient_map_dma *m, uint64_t domain, uint64_t offset,
                            uint64_t iova, uint64_t size)
{
        vfiod__dma_range__init(&m->range);
        m->range.offset = offset;
        m->range.iova = iova;
        m->range.size = size;
        m->range.readable = m->range.writable = 1;
        m->ranges[0] = &m->range;
        vfiod__map_dma__init(&m->map_dma);
        m->map_dma.domain_id = domain;
        m->map_dma.n_ranges = 1;
        m->map_dma.ranges = m->ranges;
        m->env = ENVELOPE(map_dma, &m->map_dma);
}

int rawclient_map_dma(rawclient_call_fn call, int fd, uint64_t domain, uint64_t offset,
                      uint64_t iova, uint64_t size, int mfd)
{
        struct rawclient_map_dma m;

        rawclient_map_dma_init(&m, domain, offset, iova, size);
        return rawclient_outcome(call(fd, &m.env, &mfd, 1), VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY,
                                 NULL);
}

int rawclient_unmap_dma(rawclient_call_fn call, int fd, uint64_t domain, uint64_t iova,
                        uint64_t size)
{
        Vfiod__UnmapDma u = VFIOD__UNMAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(unmap_dma, &u);
        Vfiod__IovaRange r = VFIOD__IOVA_RANGE__INIT, *rs[] = {&r};

        r.iova = iova;
        r.size = size;
        u.domain_id = domain;
        u.n_ranges = 1;
        u.ranges = rs;
        return rawclient_outcome(call(fd, &env, NULL, 0), VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY,
                                 NULL);
}
