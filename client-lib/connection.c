/* SPDX-License-Identifier: MIT */
/*
 * libvfiod: the connection (connect, Hello, adopt, close), the synchronous
 * request/reply machinery and the event queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h> /* MIN */
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client-lib/internal.h"
#include "proto/macro.h"

/* What this library implements, announced in Hello. */
#define CLIENT_CAPABILITIES \
        (VFIOD_CAP_DIRECT | VFIOD_CAP_BROKERED | VFIOD_CAP_IRQS | VFIOD_CAP_EVENTS)

_Static_assert(VFIOD_CAP_EVENTS == VFIOD__CAPABILITY__CAPABILITY_EVENTS, "capability bits");
_Static_assert(VFIOD_CAP_ADMIN == VFIOD__CAPABILITY__CAPABILITY_ADMIN, "capability bits");
_Static_assert(VFIOD_MODE_BROKERED == (int)VFIOD__MODE__MODE_BROKERED, "mode values");
_Static_assert(VFIOD_IRQ_INDEX_REQ == (int)VFIOD__IRQ_INDEX__IRQ_INDEX_REQ, "irq index values");

static void vset_error(struct vfiod *c, const char *fmt, va_list ap)
{
        (void)vsnprintf(c->error, sizeof(c->error), fmt, ap);
}

int client_fail(struct vfiod *c, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vset_error(c, fmt, ap);
        va_end(ap);
        return r;
}

int client_fail_dead(struct vfiod *c, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vset_error(c, fmt, ap);
        va_end(ap);
        c->dead = true;
        return r;
}

void copy_text(char *dst, size_t size, const char *src)
{
        if (size == 0)
                return;
        (void)snprintf(dst, size, "%s", src ? src : "");
}

int copy_device_name(struct vfiod *c, char *dst, const char *src)
{
        if (src && strlen(src) >= VFIOD_DEVICE_NAME_MAX)
                return client_fail_dead(c, -EPROTO, "daemon sent a device name of %zu bytes",
                                        strlen(src));
        copy_text(dst, VFIOD_DEVICE_NAME_MAX, src);
        return 0;
}

/* ------------------------------------------------------------------------- */
/* Events */

static bool body_is_event(Vfiod__Envelope__BodyCase body)
{
        return body == VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED ||
               body == VFIOD__ENVELOPE__BODY_DEVICE_ERROR ||
               body == VFIOD__ENVELOPE__BODY_LEASE_REVOKED;
}

/* Converts an event envelope (body_is_event() is true) into *ret. */
static int event_from_envelope(struct vfiod *c, const Vfiod__Envelope *env, struct vfiod_event *ret)
{
        struct vfiod_event e = {0};
        const char *device = NULL;
        int r;

        switch (env->body_case) {
        case VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED:
                e.type = VFIOD_EVENT_RELEASE_REQUESTED;
                e.lease_id = env->release_requested->lease_id;
                device = env->release_requested->device;
                e.reason = (enum vfiod_release_reason)env->release_requested->reason;
                e.grace_ms = env->release_requested->grace_ms;
                copy_text(e.detail, sizeof(e.detail), env->release_requested->detail);
                break;
        case VFIOD__ENVELOPE__BODY_DEVICE_ERROR:
                e.type = VFIOD_EVENT_DEVICE_ERROR;
                e.lease_id = env->device_error->lease_id;
                device = env->device_error->device;
                break;
        case VFIOD__ENVELOPE__BODY_LEASE_REVOKED:
                e.type = VFIOD_EVENT_LEASE_REVOKED;
                e.lease_id = env->lease_revoked->lease_id;
                device = env->lease_revoked->device;
                e.reason = (enum vfiod_release_reason)env->lease_revoked->reason;
                copy_text(e.detail, sizeof(e.detail), env->lease_revoked->detail);
                break;
        default:
                return client_fail_dead(c, -EPROTO, "daemon sent '%s' as an event",
                                        vfiod_envelope_body_name(env));
        }
        r = copy_device_name(c, e.device, device);
        if (r < 0)
                return r;
        *ret = e;
        return 0;
}

/* Queues an event read during a call; counts it as dropped when the ring is full. */
static int queue_event(struct vfiod *c, const Vfiod__Envelope *env)
{
        struct vfiod_event e;
        int r;

        r = event_from_envelope(c, env, &e);
        if (r < 0)
                return r;
        if (!c->queue) {
                c->queue = calloc(VFIOD_EVENT_QUEUE_MAX, sizeof(*c->queue));
                if (!c->queue) {
                        c->dropped++;
                        return 0;
                }
        }
        if (c->queue_len == VFIOD_EVENT_QUEUE_MAX) {
                c->dropped++;
                return 0;
        }
        c->queue[(c->queue_head + c->queue_len) % VFIOD_EVENT_QUEUE_MAX] = e;
        c->queue_len++;
        return 0;
}

size_t vfiod_pending_events(const struct vfiod *c)
{
        if (!c)
                return 0;
        return c->queue_len + (c->dropped > 0 ? 1 : 0);
}

int vfiod_get_fd(const struct vfiod *c)
{
        if (!c)
                return -EINVAL;
        return c->fd;
}

/* Maps a vfiod_msg_recv() failure to what the caller sees; the connection is then dead. */
static int recv_failed(struct vfiod *c, int r, const char *reason)
{
        switch (r) {
        case -EMSGSIZE:
        case -ETOOMANYREFS:
        case -EPROTOTYPE:
        case -EBADMSG:
        case -ENOMSG:
        case -EBADR:
        case -EPROTO:
                return client_fail_dead(c, -EPROTO, "daemon sent a bad datagram: %s", reason);
        case -ECONNRESET:
                return client_fail_dead(c, -ECONNRESET, "connection reset by the daemon");
        default:
                return client_fail_dead(c, r, "receiving from the daemon: %s", reason);
        }
}

int vfiod_next_event(struct vfiod *c, struct vfiod_event *ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *msg = NULL;
        const char *reason = "";
        int r;

        if (!c || !ret)
                return -EINVAL;
        c->error[0] = '\0';

        if (c->queue_len > 0) {
                *ret = c->queue[c->queue_head];
                c->queue_head = (c->queue_head + 1) % VFIOD_EVENT_QUEUE_MAX;
                c->queue_len--;
                return 0;
        }
        if (c->dropped > 0) {
                *ret = (struct vfiod_event){.type = VFIOD_EVENT_DROPPED, .dropped = c->dropped};
                c->dropped = 0;
                return 0;
        }
        if (c->dead)
                return client_fail(c, -ENOTCONN, "connection to the daemon is closed");
        /* What arrives now may be a reply: vfiod_collect() reads it, and queues the events. */
        if (c->pending_len > 0)
                return -EAGAIN;

        for (;;) {
                r = vfiod_msg_recv(c->fd, MSG_DONTWAIT, &msg, &reason);
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN || r == -EWOULDBLOCK)
                        return -EAGAIN;
                if (r < 0)
                        return recv_failed(c, r, reason);
                break;
        }
        if (r == 0)
                return client_fail_dead(c, -ECONNRESET, "daemon closed the connection");
        if (msg->env->id != 0 || !body_is_event(msg->env->body_case))
                return client_fail_dead(c, -EPROTO,
                                        "daemon sent '%s' with id %" PRIu64 " while no call waits",
                                        vfiod_envelope_body_name(msg->env), msg->env->id);
        return event_from_envelope(c, msg->env, ret);
}

/* ------------------------------------------------------------------------- */
/* Calls */

/* Waits until fd is ready for `events`; EINTR is retried. */
static int wait_fd(int fd, short events)
{
        struct pollfd p = {.fd = fd, .events = events};

        for (;;) {
                if (poll(&p, 1, -1) >= 0)
                        return 0;
                if (errno != EINTR)
                        return -errno;
        }
}

static int send_request(struct vfiod *c, const Vfiod__Envelope *req, const int *fds, size_t n_fds)
{
        int r;

        for (;;) {
                r = vfiod_msg_send(c->fd, req, fds, n_fds);
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN || r == -EWOULDBLOCK) {
                        r = wait_fd(c->fd, POLLOUT);
                        if (r < 0)
                                return client_fail_dead(c, r, "waiting to send to the daemon");
                        continue;
                }
                break;
        }
        switch (r) {
        case 0:
                return 0;
        case -EPIPE:
        case -ECONNRESET:
        case -ENOTCONN:
                return client_fail_dead(c, -ECONNRESET, "daemon closed the connection");
        case -EMSGSIZE:
                return client_fail(c, r, "request too large for one message");
        case -EBADF:
                return client_fail(c, -EINVAL, "invalid fd in the request");
        case -EBADFD:
                /* Refused here, before anything went out: the connection is fine. */
                return client_fail(c, r,
                                   "'%s' not sent: an fd is not of the kind it needs (not a memfd "
                                   "for MapDma, not an eventfd for SetIrqs)",
                                   vfiod_envelope_body_name(req));
        default:
                /* Nothing went out: the connection is still in step. */
                return client_fail(c, r, "sending '%s' to the daemon failed",
                                   vfiod_envelope_body_name(req));
        }
}

/* Receives the reply to request `id`, queueing the events before it. */
static int recv_reply(struct vfiod *c, uint64_t id, struct vfiod_msg **ret)
{
        for (;;) {
                _cleanup_(vfiod_msg_freep) struct vfiod_msg *msg = NULL;
                const char *reason = "";
                int r;

                r = vfiod_msg_recv(c->fd, 0, &msg, &reason);
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN || r == -EWOULDBLOCK) {
                        /* Someone set O_NONBLOCK on the socket: wait instead. */
                        r = wait_fd(c->fd, POLLIN);
                        if (r < 0)
                                return client_fail_dead(c, r, "waiting for the daemon's reply");
                        continue;
                }
                if (r < 0)
                        return recv_failed(c, r, reason);
                if (r == 0)
                        return client_fail_dead(c, -ECONNRESET,
                                                "daemon closed the connection during the call");

                if (msg->env->id == 0) {
                        if (!body_is_event(msg->env->body_case))
                                return client_fail_dead(c, -EPROTO,
                                                        "daemon sent '%s' with id 0 (not an event)",
                                                        vfiod_envelope_body_name(msg->env));
                        r = queue_event(c, msg->env);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (msg->env->id != id)
                        return client_fail_dead(
                            c, -EPROTO, "daemon replied with id %" PRIu64 ", expected %" PRIu64,
                            msg->env->id, id);
                *ret = TAKE_PTR(msg);
                return 0;
        }
}

/* Checks req against the daemon's limits, gives it the next id and sends it. */
static int client_send(struct vfiod *c, Vfiod__Envelope *req, const int *fds, size_t n_fds)
{
        int r;

        c->error[0] = '\0';
        if (c->dead)
                return client_fail(c, -ENOTCONN, "connection to the daemon is closed");

        if (c->have_info) {
                if (c->info.max_fds > 0 && n_fds > c->info.max_fds)
                        return client_fail(c, -EMSGSIZE,
                                           "request carries %zu fds, the daemon accepts %" PRIu32,
                                           n_fds, c->info.max_fds);
                /* vfiod_msg_send() refuses more than VFIOD_PROTO_MAX_DATAGRAM itself. */
                if (c->info.max_datagram > 0 && c->info.max_datagram < VFIOD_PROTO_MAX_DATAGRAM &&
                    vfiod__envelope__get_packed_size(req) > c->info.max_datagram)
                        return client_fail(
                            c, -EMSGSIZE, "request of %zu bytes, the daemon accepts %" PRIu32,
                            vfiod__envelope__get_packed_size(req), c->info.max_datagram);
        }

        req->id = c->last_id + 1;
        r = send_request(c, req, fds, n_fds);
        if (r < 0)
                return r;
        c->last_id = req->id;
        return 0;
}

/*
 * The reply msg to a request of body `request`: an Error reply returns its
 * negated errno with c->error set to the reason; a body other than `expect`
 * kills the connection. On success *ret takes msg.
 */
static int reply_take(struct vfiod *c, Vfiod__Envelope__BodyCase request, struct vfiod_msg **msg,
                      Vfiod__Envelope__BodyCase expect, struct vfiod_msg **ret)
{
        const Vfiod__Envelope req = {.body_case = request};
        const Vfiod__Envelope *env = (*msg)->env;

        if (env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                const Vfiod__Error *e = env->error;
                int errnum = e->errnum;

                if (errnum <= 0 || errnum >= 4096)
                        errnum = EIO;
                if (e->reason && e->reason[0])
                        copy_text(c->error, sizeof(c->error), e->reason);
                else
                        (void)snprintf(c->error, sizeof(c->error), "%s failed: %s",
                                       vfiod_envelope_body_name(&req), strerror(errnum));
                return -errnum;
        }
        if (env->body_case != expect)
                return client_fail_dead(c, -EPROTO, "daemon answered '%s' with '%s'",
                                        vfiod_envelope_body_name(&req),
                                        vfiod_envelope_body_name(env));
        *ret = TAKE_PTR(*msg);
        return 0;
}

int client_call(struct vfiod *c, Vfiod__Envelope *req, const int *fds, size_t n_fds,
                Vfiod__Envelope__BodyCase expect, struct vfiod_msg **ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *msg = NULL;
        int r;

        /* The next reply to arrive is the oldest submitted request's. */
        if (c->pending_len > 0)
                return client_fail(c, -EBUSY,
                                   "%zu submitted request(s) not collected: vfiod_collect() first",
                                   c->pending_len);
        r = client_send(c, req, fds, n_fds);
        if (r < 0)
                return r;
        r = recv_reply(c, req->id, &msg);
        if (r < 0)
                return r;
        return reply_take(c, req->body_case, &msg, expect, ret);
}

/* ------------------------------------------------------------------------- */
/* Pipelining */

/* How many requests may be in flight: what the daemon announced, else 1. */
static size_t window(const struct vfiod *c)
{
        uint32_t n = c->have_info ? c->info.limits.max_requests_in_flight : 0;

        return n > 0 ? MIN(n, VFIOD_IN_FLIGHT_MAX) : 1;
}

int client_submit(struct vfiod *c, Vfiod__Envelope *req, const int *fds, size_t n_fds,
                  Vfiod__Envelope__BodyCase expect, uint64_t *ret_id)
{
        struct client_pending *p;
        int r;

        c->error[0] = '\0';
        if (c->pending_len >= window(c))
                return client_fail(c, -EAGAIN,
                                   "%zu requests in flight, the daemon's MaxRequestsInFlight: "
                                   "vfiod_collect() first",
                                   c->pending_len);
        if (!c->pending) {
                c->pending = calloc(VFIOD_IN_FLIGHT_MAX, sizeof(*c->pending));
                if (!c->pending)
                        return client_fail(c, -ENOMEM, "out of memory");
        }
        r = client_send(c, req, fds, n_fds);
        if (r < 0)
                return r;
        p = &c->pending[(c->pending_head + c->pending_len) % VFIOD_IN_FLIGHT_MAX];
        *p = (struct client_pending){.id = req->id, .request = req->body_case, .expect = expect};
        c->pending_len++;
        if (ret_id)
                *ret_id = req->id;
        return 0;
}

int client_collect(struct vfiod *c, uint64_t *ret_id, Vfiod__Envelope__BodyCase *ret_request,
                   int *ret_result, struct vfiod_msg **ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *msg = NULL;
        struct client_pending p;
        int r;

        c->error[0] = '\0';
        if (c->pending_len == 0)
                return client_fail(c, -ENOENT, "no request in flight");
        if (c->dead)
                return client_fail(c, -ENOTCONN, "connection to the daemon is closed");
        p = c->pending[c->pending_head];
        /* The daemon answers in order: the next reply is the oldest request's. */
        r = recv_reply(c, p.id, &msg);
        if (r < 0)
                return r;
        c->pending_head = (c->pending_head + 1) % VFIOD_IN_FLIGHT_MAX;
        c->pending_len--;
        r = reply_take(c, p.request, &msg, p.expect, ret);
        if (r < 0 && c->dead)
                return r;
        *ret_id = p.id;
        *ret_request = p.request;
        *ret_result = r;
        return 0;
}

size_t vfiod_in_flight(const struct vfiod *c)
{
        return c ? c->pending_len : 0;
}

/* ------------------------------------------------------------------------- */
/* Connection */

static int hello(struct vfiod *c)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        Vfiod__Envelope req = VFIOD__ENVELOPE__INIT;
        const Vfiod__HelloReply *hr;
        int r;

        h.major = VFIOD_PROTO_VERSION_MAJOR;
        h.minor = VFIOD_PROTO_VERSION_MINOR;
        h.capabilities = CLIENT_CAPABILITIES;
        h.max_datagram = VFIOD_PROTO_MAX_DATAGRAM;
        h.max_fds = VFIOD_PROTO_MAX_FDS;
        req.body_case = VFIOD__ENVELOPE__BODY_HELLO;
        req.hello = &h;

        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_HELLO_REPLY, &reply);
        if (r == -EPROTONOSUPPORT) {
                /* The daemon closes the connection after this error. */
                c->dead = true;
                return r;
        }
        if (r < 0)
                return r;

        hr = reply->env->hello_reply;
        if (hr->major != VFIOD_PROTO_VERSION_MAJOR)
                return client_fail_dead(
                    c, -EPROTONOSUPPORT,
                    "daemon speaks protocol %" PRIu32 ".%" PRIu32 ", libvfiod speaks %d.%d",
                    hr->major, hr->minor, VFIOD_PROTO_VERSION_MAJOR, VFIOD_PROTO_VERSION_MINOR);

        c->info = (struct vfiod_server_info){
            .major = hr->major,
            .minor = hr->minor,
            .capabilities = hr->capabilities,
            .max_datagram = hr->max_datagram > 0 && hr->max_datagram < VFIOD_PROTO_MAX_DATAGRAM
                                ? hr->max_datagram
                                : VFIOD_PROTO_MAX_DATAGRAM,
            .max_fds = hr->max_fds > 0 && hr->max_fds < VFIOD_PROTO_MAX_FDS ? hr->max_fds
                                                                            : VFIOD_PROTO_MAX_FDS,
        };
        if (hr->limits)
                c->info.limits = (struct vfiod_limits){
                    .max_domains = hr->limits->max_domains,
                    .max_leases = hr->limits->max_leases,
                    .max_mappings = hr->limits->max_mappings,
                    .max_pinned_bytes = hr->limits->max_pinned_bytes,
                    .max_ranges_per_request = hr->limits->max_ranges_per_request,
                    .max_requests_in_flight = hr->limits->max_requests_in_flight,
                };
        copy_text(c->info.server_version, sizeof(c->info.server_version), hr->server_version);
        c->have_info = true;
        return 0;
}

void vfiod_close(struct vfiod *c)
{
        if (!c)
                return;
        (void)safe_close(c->fd);
        free(c->queue);
        free(c->pending);
        free(c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vfiod *, vfiod_close);

int vfiod_connect_take_fd(int fd, unsigned flags, struct vfiod **ret)
{
        _cleanup_close_ int sock = fd; /* On every path below the fd is ours. */
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        int type = 0, domain = 0, r;
        socklen_t len;

        if (sock < 0)
                return -EBADF;
        if (!ret || (flags & ~VFIOD_CONNECT_HELLO))
                return -EINVAL;

        len = sizeof(type);
        if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno; /* ENOTSOCK for a non-socket */
        len = sizeof(domain);
        if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
                return -errno;
        if (type != SOCK_SEQPACKET || domain != AF_UNIX)
                return -ESOCKTNOSUPPORT;
        if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        /* On success the socket is owned by the connection. */
        c->fd = TAKE_FD(sock);
        if (flags & VFIOD_CONNECT_HELLO) {
                r = hello(c);
                if (r < 0)
                        return r;
        } else {
                /* Adopted: assume the protocol maxima; no Hello reply to show. */
                c->info.max_datagram = VFIOD_PROTO_MAX_DATAGRAM;
                c->info.max_fds = VFIOD_PROTO_MAX_FDS;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int vfiod_connect(const char *path, struct vfiod **ret)
{
        _cleanup_close_ int sock = -EBADF;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len;

        if (!ret)
                return -EINVAL;
        if (!path) {
                path = secure_getenv(VFIOD_SOCKET_ENV);
                if (!path || !path[0])
                        path = VFIOD_SOCKET_DEFAULT;
        }
        len = strlen(path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return -errno;
        if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno, err = 0;
                socklen_t err_len = sizeof(err);

                if (r != -EINTR)
                        return r;
                /* Interrupted: the connection completes (or fails) on its own; wait for it. */
                r = wait_fd(sock, POLLOUT);
                if (r < 0)
                        return r;
                if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
                        return -errno;
                if (err != 0)
                        return -err;
        }
        /* vfiod_connect_take_fd() owns the socket from here, also on failure. */
        return vfiod_connect_take_fd(TAKE_FD(sock), VFIOD_CONNECT_HELLO, ret);
}

int vfiod_connect_env(struct vfiod **ret)
{
        const char *e;
        char *end;
        long fd;

        if (!ret)
                return -EINVAL;
        e = getenv(VFIOD_CONNECTION_FD_ENV);
        if (!e)
                return -ENXIO;
        errno = 0;
        fd = strtol(e, &end, 10);
        if (errno != 0 || end == e || *end != '\0' || fd < 0 || fd > INT_MAX)
                return -EINVAL;
        /* The fd is ours now: nothing started later should believe it holds it. */
        (void)unsetenv(VFIOD_CONNECTION_FD_ENV);
        /* Hello again, in session: this process's capabilities, and the daemon's reply. */
        return vfiod_connect_take_fd((int)fd, VFIOD_CONNECT_HELLO, ret);
}

const char *vfiod_last_error(const struct vfiod *c)
{
        if (!c)
                return "";
        return c->error;
}

int vfiod_get_server_info(const struct vfiod *c, struct vfiod_server_info *ret)
{
        if (!c || !ret)
                return -EINVAL;
        if (!c->have_info)
                return -ENODATA;
        *ret = c->info;
        return 0;
}
