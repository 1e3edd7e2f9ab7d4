/* SPDX-License-Identifier: MIT */
#include "daemon/client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h> /* MIN */
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/closer.h"
#include "daemon/lease.h"
#include "daemon/policy.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "kernel/container.h"
#include "kernel/irq.h"
#include "proto/macro.h"

/* A datagram waiting for the socket: the bytes and duplicates of its fds (owned). */
struct vfiod_queued {
        struct list link;
        uint8_t *buf;
        size_t len;
        int *fds;
        size_t n_fds;
};

static void queued_free(struct vfiod_queued *q)
{
        if (!q)
                return;
        list_remove(&q->link);
        for (size_t i = 0; i < q->n_fds; i++)
                safe_close(q->fds[i]);
        free(q->fds);
        free(q->buf);
        free(q);
}

struct vfiod_log_about vfiod_client_about(const struct vfiod_client *c, const char *device,
                                          int group, uint64_t lease)
{
        return (struct vfiod_log_about){
            .peer = c ? &c->peer : NULL, .device = device, .group = group, .lease = lease};
}

#define LOG_CLIENT(prio, c, ...)                                                  \
        do {                                                                      \
                struct vfiod_log_about _a = vfiod_client_about((c), NULL, -1, 0); \
                vfiod_log_about((prio), &_a, __VA_ARGS__);                        \
        } while (0)

bool vfiod_client_wants_events(const struct vfiod_client *c)
{
        return c->caps & VFIOD__CAPABILITY__CAPABILITY_EVENTS;
}

struct vfiod_domain *vfiod_client_find_domain(struct vfiod_client *c, uint64_t id)
{
        struct vfiod_domain *d;

        list_for_each_safe (d, it, &c->domains, struct vfiod_domain, link)
                if (d->id == id)
                        return d;
        return NULL;
}

static struct vfiod_lease *find_lease(struct vfiod_client *c, uint64_t id)
{
        struct vfiod_lease *l;

        list_for_each_safe (l, it, &c->leases, struct vfiod_lease, link_client)
                if (l->id == id)
                        return l;
        return NULL;
}

int vfiod_client_no_lease(struct vfiod_client *c, uint64_t id, bool any, struct vfiod_error *err)
{
        struct vfiod_client *o;

        list_for_each_safe (o, it, &c->server->clients, struct vfiod_client, link) {
                if ((o == c || any) && vfiod_client_find_domain(o, id))
                        return vfiod_error_set(err, EINVAL,
                                               "%" PRIu64 " is a domain id, not a lease id", id);
        }
        return vfiod_error_set(err, ENOENT, "no lease %" PRIu64, id);
}

int vfiod_client_no_domain(struct vfiod_client *c, uint64_t id, struct vfiod_error *err)
{
        if (find_lease(c, id))
                return vfiod_error_set(err, EINVAL, "%" PRIu64 " is a lease id, not a domain id",
                                       id);
        return vfiod_error_set(err, ENOENT, "no domain %" PRIu64, id);
}

/* ---- sending ------------------------------------------------------------------ */

/* Also waits while the closer has no room for another datagram of fds of this uid. */
static bool can_read(const struct vfiod_client *c)
{
        return !c->dead && !c->close_after_flush && list_empty(&c->queue) &&
               vfiod_closer_has_room(c->server->closer, c->peer.uid);
}

static void update_io(struct vfiod_client *c)
{
        int want = 0;

        if (c->dead)
                return;
        if (!list_empty(&c->queue))
                want |= EV_WRITE;
        if (can_read(c))
                want |= EV_READ;
        if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == want)
                return;
        ev_io_stop(c->server->loop, &c->io);
        if (!want)
                return;
        ev_io_set(&c->io, c->fd, want);
        ev_io_start(c->server->loop, &c->io);
}

/*
 * A failed request is answered every time, but logged at most FAIL_LOG_BURST
 * times per FAIL_LOG_INTERVAL seconds per client: a client looping on a bad
 * request must not flood the journal (whose rate limit would then drop the
 * lines that matter). What was left out is counted and said once.
 */
#define FAIL_LOG_BURST    10
#define FAIL_LOG_INTERVAL 5.0

static void fail_log_flush(struct vfiod_client *c)
{
        if (c->fail_unlogged > 0)
                LOG_CLIENT(LOG_NOTICE, c,
                           "client %" PRIu64 ": %" PRIu32 " more failed request(s) not logged "
                           "(at most %d lines in %g s)",
                           c->id, c->fail_unlogged, FAIL_LOG_BURST, FAIL_LOG_INTERVAL);
        c->fail_unlogged = 0;
}

static bool fail_log_allowed(struct vfiod_client *c)
{
        double now = ev_now(c->server->loop);

        if (now - c->fail_log_start >= FAIL_LOG_INTERVAL) {
                fail_log_flush(c);
                c->fail_log_start = now;
                c->fail_logged = 0;
        }
        if (c->fail_logged < FAIL_LOG_BURST) {
                c->fail_logged++;
                return true;
        }
        c->fail_unlogged++;
        return false;
}

void vfiod_client_kick(struct vfiod_client *c)
{
        update_io(c);
}

void vfiod_client_drop(struct vfiod_client *c, const char *fmt, ...)
{
        char why[300];
        va_list ap;

        if (c->dead)
                return;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        fail_log_flush(c);
        LOG_CLIENT(LOG_NOTICE, c, "client %" PRIu64 ": closing the connection: %s", c->id, why);
        c->dead = true;
        c->server->n_dead++;
        ev_io_stop(c->server->loop, &c->io);
}

static void flush_queue(struct vfiod_client *c)
{
        while (!list_empty(&c->queue) && !c->dead) {
                struct vfiod_queued *q = container_of(c->queue.next, struct vfiod_queued, link);
                int r = vfiod_datagram_send(c->fd, q->buf, q->len, q->fds, q->n_fds, MSG_DONTWAIT);

                if (r == -EAGAIN || r == -EINTR)
                        break;
                if (r < 0) {
                        vfiod_client_drop(c, "sending failed: %s", strerror(-r));
                        return;
                }
                c->queued_bytes -= q->len;
                c->queued_msgs--;
                queued_free(q);
        }
        if (list_empty(&c->queue) && c->close_after_flush) {
                vfiod_client_drop(c, "protocol version mismatch");
                return;
        }
        update_io(c);
}

static int enqueue(struct vfiod_client *c, const Vfiod__Envelope *env, size_t len, const int *fds,
                   size_t n_fds)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);
        struct vfiod_queued *q;

        if (c->queued_msgs + 1 > lim->max_queued_messages_per_client) {
                vfiod_client_drop(c, "it does not read: MaxQueuedMessagesPerClient=%u reached",
                                  lim->max_queued_messages_per_client);
                return -ENOBUFS;
        }
        if (c->queued_bytes + len > lim->max_queued_bytes_per_client) {
                vfiod_client_drop(c, "it does not read: MaxQueuedBytesPerClient=%u reached",
                                  lim->max_queued_bytes_per_client);
                return -ENOBUFS;
        }
        q = calloc(1, sizeof(*q));
        if (!q)
                goto oom;
        list_init(&q->link);
        q->buf = malloc(len);
        q->fds = n_fds ? calloc(n_fds, sizeof(int)) : NULL;
        if (!q->buf || (n_fds && !q->fds))
                goto oom;
        q->len = vfiod__envelope__pack(env, q->buf);
        for (size_t i = 0; i < n_fds; i++) {
                /* Duplicates owned by the queue entry: the caller keeps its own fds. */
                int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

                if (fd < 0) {
                        int r = -errno;
                        queued_free(q);
                        vfiod_client_drop(c, "cannot queue an fd: %s", strerror(-r));
                        return r;
                }
                q->fds[q->n_fds++] = fd;
        }
        list_add_tail(&c->queue, &q->link);
        c->queued_bytes += q->len;
        c->queued_msgs++;
        update_io(c);
        return 0;
oom:
        queued_free(q);
        vfiod_client_drop(c, "out of memory");
        return -ENOMEM;
}

int vfiod_client_send(struct vfiod_client *c, const Vfiod__Envelope *env, const int *fds,
                      size_t n_fds)
{
        size_t len;
        int r;

        if (c->dead)
                return -EPIPE;
        if (n_fds > c->max_fds)
                return -EMSGSIZE;
        /*
         * vfiod_msg_send() refuses more than VFIOD_PROTO_MAX_DATAGRAM itself, in
         * the pass that packs: the size (a walk over every member of the
         * envelope) is computed here only for a client that takes less, and for
         * the queue.
         */
        if (c->max_datagram < VFIOD_PROTO_MAX_DATAGRAM &&
            vfiod__envelope__get_packed_size(env) > c->max_datagram)
                return -EMSGSIZE;
        if (list_empty(&c->queue)) {
                r = vfiod_msg_send(c->fd, env, fds, n_fds);
                if (r == 0)
                        return 0;
                if (r != -EAGAIN && r != -EINTR) {
                        if (r == -EINVAL || r == -EBADF || r == -EMSGSIZE)
                                return r; /* our bug, not the client's: keep it */
                        vfiod_client_drop(c, "sending failed: %s", strerror(-r));
                        return r;
                }
        }
        len = vfiod__envelope__get_packed_size(env);
        return enqueue(c, env, len, fds, n_fds);
}

int vfiod_client_send_error(struct vfiod_client *c, uint64_t id, const struct vfiod_error *err)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Error e = VFIOD__ERROR__INIT;

        char reason[sizeof(err->reason)];
        size_t len;
        int r;

        snprintf(reason, sizeof(reason), "%s", err->reason);
        e.errnum = err->errnum;
        e.reason = reason;
        env.id = id;
        env.body_case = VFIOD__ENVELOPE__BODY_ERROR;
        env.error = &e;
        c->server->n_errors++;
        /* The reason is cut short for a client that takes only small datagrams. */
        len = vfiod__envelope__get_packed_size(&env);
        if (len > c->max_datagram) {
                size_t over = len - c->max_datagram, rlen = strlen(reason);

                /* +2: a shorter string may also shorten its length prefix. */
                reason[over + 2 < rlen ? rlen - over - 2 : 0] = '\0';
        }
        r = vfiod_client_send(c, &env, NULL, 0);
        if (r == -EMSGSIZE)
                vfiod_client_drop(c, "it cannot receive even an error (max_datagram %u)",
                                  c->max_datagram);
        return r;
}

/* Sends a reply; one the client cannot receive becomes Error EMSGSIZE. */
static int reply(struct vfiod_client *c, Vfiod__Envelope *env, const int *fds, size_t n_fds,
                 struct vfiod_error *err)
{
        int r = vfiod_client_send(c, env, fds, n_fds);

        if (r == -EMSGSIZE)
                return vfiod_error_set(err, EMSGSIZE,
                                       "the reply (%zu bytes, %zu fds) exceeds what you can "
                                       "receive (%u bytes, %u fds)",
                                       vfiod__envelope__get_packed_size(env), n_fds,
                                       c->max_datagram, c->max_fds);
        return 0; /* sent, queued, or the client is gone */
}

static int reply_ok(struct vfiod_client *c, uint64_t id, struct vfiod_error *err)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Ok ok = VFIOD__OK__INIT;

        env.id = id;
        env.body_case = VFIOD__ENVELOPE__BODY_OK;
        env.ok = &ok;
        return reply(c, &env, NULL, 0, err);
}

/* ---- handlers ------------------------------------------------------------------ */

typedef int (*handler_fn)(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err);

/* A major version the daemon does not speak: Error, then the connection closes. */
static int hello_refuse_version(struct vfiod_client *c, const struct vfiod_msg *msg)
{
        const Vfiod__Hello *h = msg->env->hello;
        struct vfiod_error e;

        vfiod_error_set(&e, EPROTONOSUPPORT,
                        "protocol version %u.%u is not supported: vfiod speaks %u.%u", h->major,
                        h->minor, VFIOD_PROTO_VERSION_MAJOR, VFIOD_PROTO_VERSION_MINOR);
        LOG_CLIENT(LOG_NOTICE, c, "client %" PRIu64 ": %s", c->id, e.reason);
        (void)vfiod_client_send_error(c, msg->env->id, &e);
        c->close_after_flush = true;
        flush_queue(c);
        return 0;
}

/* The HelloReply: versions, capabilities (admin's too), sizes and the per-client limits. */
static void hello_reply_fill(const struct vfiod_client *c, bool admin, Vfiod__HelloReply *hr,
                             Vfiod__Limits *limits)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);

        limits->max_domains = lim->max_domains_per_client;
        limits->max_leases = lim->max_leases_per_client;
        limits->max_mappings = lim->max_mappings_per_client;
        limits->max_pinned_bytes = lim->max_pinned_bytes_per_client;
        limits->max_ranges_per_request = lim->max_ranges_per_request;
        limits->max_requests_in_flight = lim->max_requests_in_flight;
        hr->major = VFIOD_PROTO_VERSION_MAJOR;
        hr->minor = VFIOD_PROTO_VERSION_MINOR;
        hr->capabilities =
            VFIOD__CAPABILITY__CAPABILITY_DIRECT | VFIOD__CAPABILITY__CAPABILITY_BROKERED |
            VFIOD__CAPABILITY__CAPABILITY_IRQS | VFIOD__CAPABILITY__CAPABILITY_EVENTS |
            (admin ? VFIOD__CAPABILITY__CAPABILITY_ADMIN : 0);
        hr->max_datagram = VFIOD_PROTO_MAX_DATAGRAM;
        hr->max_fds = lim->max_fds_per_message;
        hr->limits = limits;
        hr->server_version = (char *)PACKAGE_NAME " " PACKAGE_VERSION;
}

/*
 * A HelloReply larger than the client's max_datagram. An Error means nothing
 * changed: the connection stays before Hello (the client may say Hello
 * again), and only the Error, cut to what the client takes, is sent with its
 * max_datagram.
 */
static int hello_refuse_size(struct vfiod_client *c, const struct vfiod_msg *msg, size_t reply_size,
                             uint32_t max_datagram, bool again)
{
        uint32_t before = c->max_datagram; /* the protocol's, or an earlier Hello's */
        struct vfiod_error e;

        vfiod_error_set(&e, EMSGSIZE, "the HelloReply (%zu bytes) exceeds your max_datagram %u; %s",
                        reply_size, max_datagram, again ? "nothing changed" : "still before Hello");
        LOG_CLIENT(LOG_INFO, c, "client %" PRIu64 ": 'hello' failed: %s", c->id, e.reason);
        c->max_datagram = max_datagram;
        (void)vfiod_client_send_error(c, msg->env->id, &e);
        c->max_datagram = before;
        return 0;
}

static int handle_hello(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__Hello *h = msg->env->hello;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__HelloReply hr = VFIOD__HELLO_REPLY__INIT;
        Vfiod__Limits limits = VFIOD__LIMITS__INIT;
        uint32_t max_datagram;
        size_t reply_size;
        bool admin;
        bool again = c->state == VFIOD_CLIENT_READY; /* in session: an adopted connection */

        if (h->major != VFIOD_PROTO_VERSION_MAJOR)
                return hello_refuse_version(c, msg);
        max_datagram = h->max_datagram && h->max_datagram < VFIOD_PROTO_MAX_DATAGRAM
                           ? h->max_datagram
                           : VFIOD_PROTO_MAX_DATAGRAM;
        admin = vfiod_policy_is_admin(c->server->policy, &c->peer);
        hello_reply_fill(c, admin, &hr, &limits);
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_HELLO_REPLY;
        env.hello_reply = &hr;
        reply_size = vfiod__envelope__get_packed_size(&env);
        if (reply_size > max_datagram)
                return hello_refuse_size(c, msg, reply_size, max_datagram, again);
        /* The reply fits: from here the Hello is taken. */
        c->caps = h->capabilities;
        c->max_datagram = max_datagram;
        c->max_fds =
            h->max_fds && h->max_fds < VFIOD_PROTO_MAX_FDS ? h->max_fds : VFIOD_PROTO_MAX_FDS;
        c->admin = admin;
        c->state = VFIOD_CLIENT_READY;
        ev_timer_stop(c->server->loop, &c->hello_timer);
        LOG_CLIENT(LOG_INFO, c,
                   "client %" PRIu64 ": hello%s, protocol %u.%u, capabilities 0x%" PRIx64 "%s",
                   c->id, again ? " again (an adopted connection)" : "", h->major, h->minor,
                   c->caps, c->admin ? ", admin" : "");
        return reply(c, &env, NULL, 0, err);
}

static Vfiod__LeaseState device_state(struct vfiod_client *c, const struct kvfio_pci_dev *dev,
                                      uint64_t *ret_lease)
{
        struct vfiod_registry *devs = c->server->devices;
        struct vfiod_group *g;
        struct kvfio_group_viability via;

        *ret_lease = 0;
        if (!kvfio_dev_is_vfio(dev) || dev->iommu_group < 0)
                return VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE;
        g = vfiod_registry_group(devs, dev->iommu_group);
        if (g && g->state == VFIOD_GROUP_LEASED) {
                if (g->lease && g->lease->client == c) {
                        *ret_lease = g->lease->id;
                        return VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU;
                }
                return VFIOD__LEASE_STATE__LEASE_STATE_LEASED;
        }
        if (g && g->state == VFIOD_GROUP_QUARANTINED)
                return VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED;
        if (vfiod_registry_viable(devs, dev->iommu_group, &via) < 0 || !via.viable)
                return VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE;
        return VFIOD__LEASE_STATE__LEASE_STATE_FREE;
}

/*
 * What ListDevices builds: one entry per device, with its storage. The
 * arrays grow as entries come (up to max, the devices there are): a reply
 * of one device out of thousands allocates for a few.
 */
struct device_infos {
        Vfiod__DeviceInfo *infos, **ptrs;
        Vfiod__Mode (*modes)[3];
        Vfiod__Interface (*ifaces)[2];
        char (*cdevs)[16];
        struct vfiod_grant_msg *grants; /* of the caller's leases */
        size_t n, cap, max;
};

#define DEVICE_INFOS_FIRST 16

/*
 * Room for k entries; the entries' pointers into infos, modes, ifaces, cdevs
 * and grants follow a move.
 */
static int device_infos_grow(struct device_infos *di, size_t k)
{
        Vfiod__DeviceInfo *infos = NULL;
        Vfiod__DeviceInfo **ptrs = NULL;
        __typeof__(di->modes) modes = NULL;   /* one row of allowed_modes per entry */
        __typeof__(di->ifaces) ifaces = NULL; /* one row of interfaces per entry */
        __typeof__(di->cdevs) cdevs = NULL;   /* one cdev name per entry */
        struct vfiod_grant_msg *grants = NULL;

        infos = malloc0_array(k, sizeof(*infos));
        ptrs = malloc0_array(k, sizeof(*ptrs));
        modes = malloc0_array(k, sizeof(*modes));
        ifaces = malloc0_array(k, sizeof(*ifaces));
        cdevs = malloc0_array(k, sizeof(*cdevs));
        grants = malloc0_array(k, sizeof(*grants));
        if (!infos || !ptrs || !modes || !ifaces || !cdevs || !grants) {
                free(infos);
                free(ptrs);
                free(modes);
                free(ifaces);
                free(cdevs);
                free(grants);
                return -ENOMEM;
        }
        for (size_t i = 0; i < di->n; i++) {
                infos[i] = di->infos[i];
                memcpy(modes[i], di->modes[i], sizeof(modes[i]));
                memcpy(ifaces[i], di->ifaces[i], sizeof(ifaces[i]));
                memcpy(cdevs[i], di->cdevs[i], sizeof(cdevs[i]));
                grants[i] = di->grants[i];
                /* A grant message's irq_counts point into itself (daemon/lease.h). */
                grants[i].msg.irq_counts = grants[i].irq_counts;
                infos[i].allowed_modes = modes[i];
                infos[i].interfaces = ifaces[i];
                if (di->infos[i].cdev == di->cdevs[i])
                        infos[i].cdev = cdevs[i];
                if (di->infos[i].grant)
                        infos[i].grant = &grants[i].msg;
                ptrs[i] = &infos[i];
        }
        free(di->infos);
        free(di->ptrs);
        free(di->modes);
        free(di->ifaces);
        free(di->cdevs);
        free(di->grants);
        di->infos = infos;
        di->ptrs = ptrs;
        di->modes = modes;
        di->ifaces = ifaces;
        di->cdevs = cdevs;
        di->grants = grants;
        di->cap = k;
        return 0;
}

static int device_infos_alloc(struct device_infos *di, size_t max)
{
        di->max = max;
        return device_infos_grow(di,
                                 max < DEVICE_INFOS_FIRST ? (max ? max : 1) : DEVICE_INFOS_FIRST);
}

static void device_infos_done(struct device_infos *di)
{
        for (size_t i = 0; di->grants && i < di->cap; i++)
                vfiod_grant_msg_done(&di->grants[i]);
        free(di->grants);
        free(di->infos);
        free(di->ptrs);
        free(di->modes);
        free(di->ifaces);
        free(di->cdevs);
}

/*
 * The interfaces d offers (LEGACY: an IOMMU group; IOMMUFD: a cdev) that the
 * rule granting it in modes m allows the peer, into info.
 */
static void device_infos_interfaces(struct vfiod_client *c, struct device_infos *di,
                                    Vfiod__DeviceInfo *info, const struct kvfio_pci_dev *d,
                                    unsigned m)
{
        const struct vfiod_rule *rule = NULL;
        char why[200];

        for (unsigned bit = VFIOD_MODE_BIT_DIRECT; !rule && bit <= VFIOD_MODE_BIT_GROUP; bit <<= 1)
                if (m & bit)
                        rule = vfiod_policy_grant(c->server->policy, &c->peer, d, bit, why,
                                                  sizeof(why));
        if (d->vfio_cdev >= 0) {
                snprintf(di->cdevs[di->n], sizeof(di->cdevs[di->n]), "vfio%d", d->vfio_cdev);
                info->cdev = di->cdevs[di->n];
        }
        info->interfaces = di->ifaces[di->n];
        if (!rule)
                return;
        if (d->iommu_group >= 0 && (rule->grant.interfaces & VFIOD_IFACE_BIT_LEGACY))
                di->ifaces[di->n][info->n_interfaces++] = VFIOD__INTERFACE__INTERFACE_LEGACY;
        if (d->vfio_cdev >= 0 && (rule->grant.interfaces & VFIOD_IFACE_BIT_IOMMUFD))
                di->ifaces[di->n][info->n_interfaces++] = VFIOD__INTERFACE__INTERFACE_IOMMUFD;
}

/* Adds d (one of list) as the caller sees it: its state, its allowed modes (m), its grant. */
static int device_infos_add(struct vfiod_client *c, struct device_infos *di,
                            const struct kvfio_pci_dev *d, unsigned m, bool managed,
                            struct vfiod_error *err)
{
        Vfiod__DeviceInfo *info;
        struct vfiod_lease *own;
        uint64_t lease;

        if (di->n == di->cap &&
            device_infos_grow(di, di->cap * 2 < di->max ? di->cap * 2 : di->max) < 0)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        info = &di->infos[di->n];

        vfiod__device_info__init(info);
        info->device = (char *)d->bdf;
        info->vendor_id = d->vendor;
        info->device_id = d->device;
        info->class_code = d->class;
        info->iommu_group = d->iommu_group < 0 ? 0 : (uint32_t)d->iommu_group;
        info->driver = (char *)d->driver;
        info->mdev_type = (char *)d->mdev_type;
        info->state = device_state(c, d, &lease);
        /* Managed=yes: Acquire binds it to vfio-pci; free when vfiod holds nothing of it. */
        if (info->state == VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE && managed &&
            !vfiod_registry_group(c->server->devices, d->iommu_group))
                info->state = VFIOD__LEASE_STATE__LEASE_STATE_FREE;
        info->lease_id = lease;
        /* One's own lease: what it is granted, as in its AcquireReply. */
        own = lease ? find_lease(c, lease) : NULL;
        if (own) {
                if (vfiod_lease_grant_msg(own, &di->grants[di->n]) < 0)
                        return vfiod_error_set(err, ENOMEM, "out of memory");
                info->grant = &di->grants[di->n].msg;
        }
        info->allowed_modes = di->modes[di->n];
        if (m & VFIOD_MODE_BIT_DIRECT)
                di->modes[di->n][info->n_allowed_modes++] = VFIOD__MODE__MODE_DIRECT;
        if (m & VFIOD_MODE_BIT_BROKERED)
                di->modes[di->n][info->n_allowed_modes++] = VFIOD__MODE__MODE_BROKERED;
        if (m & VFIOD_MODE_BIT_GROUP)
                di->modes[di->n][info->n_allowed_modes++] = VFIOD__MODE__MODE_GROUP;
        device_infos_interfaces(c, di, info, d, m);
        di->ptrs[di->n++] = info;
        return 0;
}

/* Room a ListDevicesReply keeps for its envelope (id, body tag and length) and `next`. */
#define LIST_REPLY_SLACK 128

/*
 * ListDevices: every device the peer may see, or one (device), or a page
 * (limit, after): at most limit devices after `after`, cut short to fit the
 * peer's max_datagram, with `next` set when more follow.
 */
static int handle_list_devices(struct vfiod_client *c, struct vfiod_msg *msg,
                               struct vfiod_error *err)
{
        const Vfiod__ListDevices *req = msg->env->list_devices;
        const char *want = req->device;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__ListDevicesReply rep = VFIOD__LIST_DEVICES_REPLY__INIT;
        const struct kvfio_pci_list *list = vfiod_registry_devices(c->server->devices);
        struct device_infos di = {0};
        char want_bdf[KVFIO_NAME_MAX] = "", next[KVFIO_NAME_MAX] = "";
        size_t budget = 0, used = 0, end = list->n;
        ssize_t start = 0;
        bool more = false;
        int r;

        if (want && *want && kvfio_dev_name_normalize(want, want_bdf) < 0)
                return vfiod_error_set(err, EINVAL, "'%s' is not a PCI address or an mdev UUID",
                                       want);
        if (req->limit) {
                start = vfiod_registry_after(c->server->devices, req->after);
                if (start < 0)
                        return vfiod_error_set(err, EINVAL,
                                               "after '%s' is not a PCI address or an mdev UUID",
                                               req->after);
                budget = (c->max_datagram && c->max_datagram < VFIOD_PROTO_MAX_DATAGRAM
                              ? c->max_datagram
                              : VFIOD_PROTO_MAX_DATAGRAM) -
                         LIST_REPLY_SLACK;
        }
        if (want_bdf[0]) {
                /* One device: where it sorts (just before what sorts after it), if anywhere. */
                ssize_t k = vfiod_registry_after(c->server->devices, want_bdf);

                start = k > 0 ? k - 1 : 0;
                end = (size_t)start < list->n ? (size_t)start + 1 : list->n;
        }
        if (device_infos_alloc(&di, req->limit && req->limit < end - (size_t)start
                                        ? req->limit
                                        : end - (size_t)start) < 0) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto out;
        }
        for (size_t i = (size_t)start; i < end; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];
                bool managed;
                unsigned m;
                size_t size;

                if (want_bdf[0] && strcmp(want_bdf, d->bdf) != 0)
                        continue;
                /* allowed_modes: what Acquire would grant (the device stays visible when none
                 * is left). */
                if (!vfiod_lease_offer(c, list, d, &m, &managed))
                        continue;
                if (req->limit && di.n == req->limit) {
                        more = true; /* another one follows */
                        break;
                }
                r = device_infos_add(c, &di, d, m, managed, err);
                if (r < 0)
                        goto out;
                if (!req->limit)
                        continue;
                /* The entry, its field tag and its length. */
                size = vfiod__device_info__get_packed_size(di.ptrs[di.n - 1]) + 4;
                if (used + size > budget && di.n > 1) {
                        di.n--; /* it opens the next page (its grant is freed with di) */
                        more = true;
                        break;
                }
                used += size;
        }
        /* The loop stopped early (a page cut by limit or by size): the next page starts here. */
        if (more && di.n)
                snprintf(next, sizeof(next), "%s", di.ptrs[di.n - 1]->device);
        if (want_bdf[0] && di.n == 0) {
                r = vfiod_error_set(err, ENOENT, "no device '%s' that you may see", want);
                goto out;
        }
        rep.n_devices = di.n;
        rep.devices = di.ptrs;
        rep.next = next;
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY;
        env.list_devices_reply = &rep;
        r = reply(c, &env, NULL, 0, err);
out:
        device_infos_done(&di);
        return r;
}

static int iommu_from_proto(int t)
{
        switch (t) {
        case VFIOD__IOMMU_TYPE__IOMMU_TYPE_UNSPECIFIED:
                return KVFIO_IOMMU_AUTO;
        case VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1V2:
                return KVFIO_IOMMU_TYPE1v2;
        case VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1:
                return KVFIO_IOMMU_TYPE1;
        case VFIOD__IOMMU_TYPE__IOMMU_TYPE_SPAPR_TCE_V2:
                return KVFIO_IOMMU_SPAPR_TCE_v2;
        case VFIOD__IOMMU_TYPE__IOMMU_TYPE_SPAPR_TCE:
                return KVFIO_IOMMU_SPAPR_TCE;
        default:
                return -1;
        }
}

static Vfiod__IommuType iommu_to_proto(int m)
{
        switch (m) {
        case KVFIO_IOMMU_TYPE1v2:
                return VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1V2;
        case KVFIO_IOMMU_TYPE1:
                return VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1;
        case KVFIO_IOMMU_SPAPR_TCE_v2:
                return VFIOD__IOMMU_TYPE__IOMMU_TYPE_SPAPR_TCE_V2;
        case KVFIO_IOMMU_SPAPR_TCE:
                return VFIOD__IOMMU_TYPE__IOMMU_TYPE_SPAPR_TCE;
        default:
                return VFIOD__IOMMU_TYPE__IOMMU_TYPE_UNSPECIFIED;
        }
}

int vfiod_client_domain_new(struct vfiod_client *c, int wanted, int iface,
                            struct vfiod_domain **ret, struct vfiod_error *err)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);
        struct vfiod_domain *d;
        int r;

        if (c->usage.domains >= lim->max_domains_per_client)
                return vfiod_error_set(err, ENOSPC, "MaxDomainsPerClient=%u reached",
                                       lim->max_domains_per_client);
        if (iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                r = vfiod_domain_new_iommufd(c->server->devices->iommufd_path,
                                             vfiod_server_new_object_id(c->server), &c->usage, &d,
                                             err);
        else
                r = vfiod_domain_new(c->server->devices->container_path, wanted,
                                     vfiod_server_new_object_id(c->server), &c->usage, &d, err);
        if (r < 0)
                return r;
        list_add_tail(&c->domains, &d->link);
        *ret = d;
        return 0;
}

static int handle_create_domain(struct vfiod_client *c, struct vfiod_msg *msg,
                                struct vfiod_error *err)
{
        int wanted = iommu_from_proto(msg->env->create_domain->iommu_type);
        int iface = msg->env->create_domain->interface;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__CreateDomainReply rep = VFIOD__CREATE_DOMAIN_REPLY__INIT;
        struct vfiod_domain *d;
        int r;

        if (wanted < 0)
                return vfiod_error_set(err, EINVAL, "unknown IOMMU type %d",
                                       (int)msg->env->create_domain->iommu_type);
        if (iface == VFIOD__INTERFACE__INTERFACE_UNSPECIFIED)
                iface = VFIOD__INTERFACE__INTERFACE_LEGACY;
        if (iface != VFIOD__INTERFACE__INTERFACE_LEGACY &&
            iface != VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                return vfiod_error_set(err, EINVAL, "a domain is LEGACY or IOMMUFD, not %d", iface);
        r = vfiod_client_domain_new(c, wanted, iface, &d, err);
        if (r < 0)
                return r;
        LOG_CLIENT(LOG_INFO, c, "client %" PRIu64 ": created domain %" PRIu64 " (%s)", c->id, d->id,
                   iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD ? "iommufd"
                                                                : kvfio_iommu_model_name(d->model));
        rep.domain_id = d->id;
        rep.iommu_type = iommu_to_proto(d->model);
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_CREATE_DOMAIN_REPLY;
        env.create_domain_reply = &rep;
        return reply(c, &env, NULL, 0, err);
}

static int handle_destroy_domain(struct vfiod_client *c, struct vfiod_msg *msg,
                                 struct vfiod_error *err)
{
        uint64_t id = msg->env->destroy_domain->domain_id;
        struct vfiod_domain *d = vfiod_client_find_domain(c, id);

        if (!d)
                return vfiod_client_no_domain(c, id, err);
        if (d->n_leases > 0)
                return vfiod_error_set(err, EBUSY, "domain %" PRIu64 " holds %zu lease(s)", id,
                                       d->n_leases);
        vfiod_domain_free(d);
        LOG_CLIENT(LOG_INFO, c, "client %" PRIu64 ": destroyed domain %" PRIu64, c->id, id);
        return reply_ok(c, msg->env->id, err);
}

static int handle_acquire(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__Acquire *a = msg->env->acquire;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__AcquireReply rep = VFIOD__ACQUIRE_REPLY__INIT;
        struct vfiod_grant_msg grant;
        struct vfiod_lease_dev *dev;
        struct vfiod_lease *l;
        char cdev[32] = "";
        int fds[3];
        size_t n_fds = 0;
        int r;

        if (a->mode == VFIOD__MODE__MODE_DIRECT && c->max_fds < 3)
                return vfiod_error_set(err, EINVAL,
                                       "a DIRECT lease sends up to 3 fds; you accept %u per "
                                       "datagram",
                                       c->max_fds);
        r = vfiod_lease_acquire(c, a->device, a->domain_id, a->mode, a->interface, &l, err);
        if (r < 0) {
                struct vfiod_log_about about = vfiod_client_about(c, a->device, -1, 0);
                vfiod_log_about(LOG_NOTICE, &about, "refused device '%s' to client %" PRIu64 ": %s",
                                a->device, c->id, err->reason);
                return r;
        }
        dev = vfiod_lease_find_dev(l, NULL);
        rep.lease_id = l->id;
        rep.domain_id = l->domain ? l->domain->id : 0;
        rep.iommu_group = (uint32_t)l->group_id;
        rep.device = l->device;
        rep.mode = l->mode;
        rep.num_regions = dev->info.num_regions;
        rep.num_irqs = dev->info.num_irqs;
        rep.device_flags = dev->info.flags;
        r = vfiod_lease_grant_msg(l, &grant);
        if (r < 0)
                return vfiod_error_set(err, -r, "out of memory");
        rep.grant = &grant.msg;
        rep.interface = l->iface;
        /* The fds are the daemon's; the kernel duplicates them into the datagram. */
        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                snprintf(cdev, sizeof(cdev), "vfio%d", l->cdev);
                rep.cdev = cdev;
        }
        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD &&
            l->mode == VFIOD__MODE__MODE_DIRECT) {
                /* The cdev unbound, and the domain's iommufd: what QEMU's fd= takes. */
                rep.has_iommufd_fd_case = VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD;
                rep.iommufd_fd = (uint32_t)n_fds;
                fds[n_fds++] = l->domain->iommufd;
        } else if (l->mode == VFIOD__MODE__MODE_DIRECT) {
                rep.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD;
                rep.container_fd = (uint32_t)n_fds;
                fds[n_fds++] = l->domain->container_fd;
        }
        /* DIRECT and GROUP, through the legacy interface (an IOMMUFD lease has no group fd). */
        if (l->mode != VFIOD__MODE__MODE_BROKERED &&
            l->iface != VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                rep.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
                rep.group_fd = (uint32_t)n_fds;
                fds[n_fds++] = l->group_fd;
        }
        /* GROUP: the daemon holds no device fd; the client opens its own. */
        if (dev->fd >= 0) {
                rep.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
                rep.device_fd = (uint32_t)n_fds;
                fds[n_fds++] = dev->fd;
        }
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY;
        env.acquire_reply = &rep;
        r = reply(c, &env, fds, n_fds, err);
        vfiod_grant_msg_done(&grant);
        return r;
}

static int handle_release(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        uint64_t id = msg->env->release->lease_id;
        struct vfiod_lease *l = find_lease(c, id);

        if (!l)
                return vfiod_client_no_lease(c, id, false, err);
        (void)vfiod_lease_release(l, "released by its holder");
        return reply_ok(c, msg->env->id, err);
}

/* The device `device` of the caller's lease `lease_id`, or an error naming what is not there. */
static int lease_dev_of(struct vfiod_client *c, uint64_t lease_id, const char *device,
                        struct vfiod_lease_dev **ret, struct vfiod_error *err)
{
        struct vfiod_lease *l = find_lease(c, lease_id);
        struct vfiod_lease_dev *dev;

        if (!l)
                return vfiod_client_no_lease(c, lease_id, false, err);
        if (l->mode == VFIOD__MODE__MODE_GROUP)
                return vfiod_error_set(err, EINVAL,
                                       "lease %" PRIu64 " is a GROUP lease: vfiod holds no device "
                                       "fd of it; use the device fd you opened yourself",
                                       l->id);
        dev = vfiod_lease_find_dev(l, device);
        if (!dev)
                return vfiod_error_set(err, ENOENT, "device '%s' is not part of lease %" PRIu64,
                                       device, l->id);
        *ret = dev;
        return 0;
}

static int handle_reset(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__Reset *rq = msg->env->reset;
        struct vfiod_lease_dev *dev;
        int r;

        r = lease_dev_of(c, rq->lease_id, rq->device, &dev, err);
        if (r < 0)
                return r;
        r = vfiod_lease_reset_dev(dev);
        if (r < 0)
                return vfiod_error_set(err, -r, "resetting '%s' failed: %s", dev->bdf,
                                       strerror(-r));
        {
                struct vfiod_log_about a =
                    vfiod_client_about(c, dev->bdf, dev->lease->group_id, dev->lease->id);
                vfiod_log_about(LOG_INFO, &a, "reset device '%s' for its holder", dev->bdf);
        }
        return reply_ok(c, msg->env->id, err);
}

static uint64_t rule_user_pinned_bytes(const struct vfiod_client *c, const char *rule);

/*
 * The policy's quotas for a domain: those of the rules of every lease in it
 * (the stricter wins). EDQUOT (MaxPinnedBytes=, MaxPinnedBytesPerUser=),
 * ENOSPC (MaxMappings=) or EPERM (IovaWindows=); ENOMEM is no refusal.
 * *ret_first: the first lease of the domain (NULL: none), what a refusal is
 * logged about (map_within_quotas()).
 */
static int map_quota_check(struct vfiod_client *c, struct vfiod_domain *d,
                           const struct vfiod_map_range *ranges, size_t n,
                           struct vfiod_lease **ret_first, struct vfiod_error *err)
{
        struct vfiod_grant g;
        struct vfiod_lease *first = NULL;
        uint64_t total = 0;
        int r = 0;

        if (vfiod_lease_domain_grant(c, d, &g, &first) < 0)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        *ret_first = first;
        if (!first)
                goto out; /* no lease: vfiod_domain_map() refuses it */
        for (size_t i = 0; i < n; i++) {
                if (ranges[i].size > UINT64_MAX - total)
                        goto out; /* vfiod_domain_map() says why */
                total += ranges[i].size;
                if (!vfiod_grant_iova_ok(&g, ranges[i].iova, ranges[i].size)) {
                        char windows[160];

                        r = vfiod_error_set(err, EPERM,
                                            "range %zu (IOVA 0x%" PRIx64 ", 0x%" PRIx64
                                            " bytes) is outside the IovaWindows= of rule '%s': %s",
                                            i, ranges[i].iova, ranges[i].size, g.windows_rule,
                                            vfiod_grant_windows_name(&g, windows, sizeof(windows)));
                        goto out;
                }
        }
        if (g.max_mappings != VFIOD_NO_QUOTA_MAPPINGS && d->n_maps + n > g.max_mappings) {
                r = vfiod_error_set(err, ENOSPC,
                                    "MaxMappings=%" PRIu32 " of rule '%s' reached: the domain "
                                    "has %zu mapping(s), %zu more asked",
                                    g.max_mappings, g.mappings_rule, d->n_maps, n);
                goto out;
        }
        if (g.max_pinned_bytes != VFIOD_NO_QUOTA_BYTES &&
            (total > g.max_pinned_bytes || d->pinned_bytes > g.max_pinned_bytes - total)) {
                r = vfiod_error_set(err, EDQUOT,
                                    "MaxPinnedBytes=%" PRIu64 " of rule '%s' reached: the domain "
                                    "has %" PRIu64 " bytes mapped, %" PRIu64 " more asked",
                                    g.max_pinned_bytes, g.pinned_rule, d->pinned_bytes, total);
                goto out;
        }
        if (g.max_pinned_bytes_per_user != VFIOD_NO_QUOTA_BYTES) {
                uint64_t used = rule_user_pinned_bytes(c, g.user_pinned_rule);

                if (total > g.max_pinned_bytes_per_user ||
                    used > g.max_pinned_bytes_per_user - total) {
                        r = vfiod_error_set(err, EDQUOT,
                                            "MaxPinnedBytesPerUser=%" PRIu64 " of rule '%s' "
                                            "reached: uid %u has %" PRIu64 " bytes mapped under "
                                            "it, %" PRIu64 " more asked",
                                            g.max_pinned_bytes_per_user, g.user_pinned_rule,
                                            (unsigned)c->peer.uid, used, total);
                        goto out;
                }
        }
out:
        vfiod_grant_done(&g);
        return r;
}

/* ---- the fds a client makes the daemon keep -------------------------------------------- */

/* Client eventfds the daemon keeps for c's leases (SetIrqs triggers and UNMASK eventfds). */
static uint32_t irq_fds(const struct vfiod_client *c)
{
        struct vfiod_lease *l;
        uint32_t n = 0;

        list_for_each_safe (l, it, &c->leases, struct vfiod_lease, link_client) {
                for (size_t k = 0; k < l->n_devs; k++) {
                        const struct vfiod_lease_dev *dev = &l->devs[k];

                        for (uint32_t i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++) {
                                n += dev->unmask_fds[i] >= 0;
                                for (uint32_t v = 0; dev->trigger_fds[i] && v < dev->irqs[i].count;
                                     v++)
                                        n += dev->trigger_fds[i][v] >= 0;
                        }
                }
        }
        return n;
}

/* What MaxFdsPerClient counts: a memfd per view, an eventfd per interrupt vector. */
static uint32_t kept_fds(const struct vfiod_client *c)
{
        return c->usage.fds + irq_fds(c);
}

/* The fds this process has open; UINT32_MAX when it cannot tell (no fd left for the count). */
static uint32_t count_open_fds(void)
{
        DIR *dir = opendir("/proc/self/fd");
        struct dirent *de;
        uint32_t n = 0;

        if (!dir)
                return UINT32_MAX;
        while ((de = readdir(dir)))
                n += de->d_name[0] != '.';
        closedir(dir);
        return n > 0 ? n - 1 : 0; /* not the directory's own fd */
}

/*
 * How many more fds the daemon may keep for clients: its RLIMIT_NOFILE less
 * the fds open and VFIOD_FD_HEADROOM. Counting /proc/self/fd costs time with
 * many fds: the count is taken again at most every second, or every 100 ms
 * when it is near the line; in between, what requests made the daemon keep
 * is added (vfiod_server.fds_open), and what others opened is in the headroom.
 */
static uint32_t daemon_fd_room(struct vfiod_server *s)
{
        ev_tstamp now = ev_now(s->loop), age = now - s->fds_counted_at;
        struct rlimit rl;
        uint64_t limit;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                rl.rlim_cur = UINT32_MAX;
        limit = rl.rlim_cur;
        if (age >= 1.0 || (age >= 0.1 && s->fds_open + 2ull * VFIOD_FD_HEADROOM >= limit) ||
            s->fds_counted_at == 0) {
                s->fds_open = count_open_fds();
                s->fds_counted_at = now;
        }
        return limit > (uint64_t)s->fds_open + VFIOD_FD_HEADROOM
                   ? (uint32_t)MIN(limit - s->fds_open - VFIOD_FD_HEADROOM, UINT32_MAX)
                   : 0;
}

/* Narrows b to what is left of limit (named key) when used of it are taken already. */
static void budget_narrow(struct vfiod_fd_budget *b, uint32_t used, uint32_t limit,
                          const char *whom, const char *key)
{
        uint32_t left = limit - MIN(used, limit);

        if (left >= b->left)
                return;
        *b = (struct vfiod_fd_budget){
            .left = left, .errnum = ENOSPC, .used = used, .limit = limit, .whom = whom, .key = key};
}

/*
 * The fd budget of one request of c: what is left of MaxFdsPerClient, of
 * MaxFdsPerUser over every connection of c's uid (users, see user_usage()),
 * and of the daemon's room, whichever is least, with the reason that names
 * it.
 */
static void fd_budget(struct vfiod_client *c, const struct vfiod_usage *users,
                      struct vfiod_fd_budget *b)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);
        uint32_t mine = kept_fds(c), user = users->fds, room = daemon_fd_room(c->server);

        *b = (struct vfiod_fd_budget){.left = room,
                                      .errnum = EMFILE,
                                      .used = c->server->fds_open,
                                      .limit = VFIOD_FD_HEADROOM};
        budget_narrow(b, user, lim->max_fds_per_user, "this user's connections", "MaxFdsPerUser");
        budget_narrow(b, mine, lim->max_fds_per_client, "you (memfd views, interrupt eventfds)",
                      "MaxFdsPerClient");
}

/* c may hold something from now on: the per-user sums count it (server->active_clients). */
static void client_activate(struct vfiod_client *c)
{
        if (list_empty(&c->link_active))
                list_add_tail(&c->server->active_clients, &c->link_active);
}

/*
 * The next active client from *it on that may hold something; one that
 * holds nothing (no domain, no lease: no mapping, view or eventfd either)
 * leaves the list until it asks for something again.
 */
static struct vfiod_client *next_active(struct vfiod_server *s, struct list **it)
{
        while (*it != &s->active_clients) {
                struct vfiod_client *o = container_of(*it, struct vfiod_client, link_active);

                *it = (*it)->next;
                if (o->usage.domains > 0 || !list_empty(&o->leases))
                        return o;
                list_remove(&o->link_active);
        }
        return NULL;
}

/* What every connection of c's uid holds now, c's included; fds: kept_fds(). */
static struct vfiod_usage user_usage(const struct vfiod_client *c)
{
        struct vfiod_client *o;
        struct vfiod_usage sum = {0};
        struct list *it = c->server->active_clients.next;

        while ((o = next_active(c->server, &it))) {
                if (o->peer.uid != c->peer.uid)
                        continue;
                sum.pinned_bytes += o->usage.pinned_bytes;
                sum.view_bytes += o->usage.view_bytes;
                sum.fds += kept_fds(o);
        }
        return sum;
}

/* Bytes mapped now by every connection of c's uid in the domains of leases whose
 * MaxPinnedBytesPerUser= comes from rule. */
static uint64_t rule_user_pinned_bytes(const struct vfiod_client *c, const char *rule)
{
        struct vfiod_client *o;
        uint64_t sum = 0;
        struct list *it = c->server->active_clients.next;

        while ((o = next_active(c->server, &it))) {
                struct vfiod_domain *d;

                if (o->peer.uid != c->peer.uid)
                        continue;
                list_for_each_safe (d, dit, &o->domains, struct vfiod_domain, link) {
                        struct vfiod_lease *l;
                        bool under = false;

                        list_for_each_safe (l, lit, &o->leases, struct vfiod_lease, link_client) {
                                under = under || (l->domain == d &&
                                                  strcmp(l->grant.user_pinned_rule, rule) == 0);
                        }
                        if (under)
                                sum += d->pinned_bytes;
                }
        }
        return sum;
}

/* What MapDma and UnmapDma check first: the client's domain, MaxRangesPerRequest. */
static int batch_begin(struct vfiod_client *c, uint64_t domain_id, size_t n,
                       struct vfiod_domain **ret_domain, struct vfiod_error *err)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);
        struct vfiod_domain *d = vfiod_client_find_domain(c, domain_id);

        if (!d)
                return vfiod_client_no_domain(c, domain_id, err);
        if (n > lim->max_ranges_per_request)
                return vfiod_error_set(err, ENOSPC, "%zu ranges: MaxRangesPerRequest=%u reached", n,
                                       lim->max_ranges_per_request);
        *ret_domain = d;
        return 0;
}

/* The ranges of a MapDma as the domain takes them; the fds stay the message's. */
static int map_ranges_decode(const struct vfiod_msg *msg, struct vfiod_map_range **ret,
                             struct vfiod_error *err)
{
        const Vfiod__MapDma *rq = msg->env->map_dma;
        _cleanup_free_ struct vfiod_map_range *ranges = NULL;

        ranges = malloc0_array(rq->n_ranges, sizeof(*ranges));
        if (!ranges)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < rq->n_ranges; i++) {
                const Vfiod__DmaRange *dr = rq->ranges[i];

                /* The transport checked fd_index < n_fds; the fds stay the message's. */
                if (dr->fd_index >= msg->n_fds || msg->fds[dr->fd_index] < 0)
                        return vfiod_error_set(err, EBADF, "range %zu: no fd %u", i, dr->fd_index);
                ranges[i] = (struct vfiod_map_range){.fd = msg->fds[dr->fd_index],
                                                     .fd_index = dr->fd_index,
                                                     .offset = dr->offset,
                                                     .iova = dr->iova,
                                                     .size = dr->size,
                                                     .readable = dr->readable,
                                                     .writable = dr->writable};
        }
        *ret = TAKE_PTR(ranges);
        return 0;
}

/*
 * Every quota of a MapDma, in one place: the rules' (map_quota_check()),
 * then the daemon's limits and fd budget (vfiod_domain_map(), which maps).
 * A refusal by a quota is logged here, once, about the domain's first lease.
 */
static int map_within_quotas(struct vfiod_client *c, struct vfiod_domain *d,
                             const struct vfiod_map_range *ranges, size_t n, uint64_t *ret_bytes,
                             struct vfiod_error *err)
{
        struct vfiod_lease *first = NULL;
        struct vfiod_usage user;
        struct vfiod_fd_budget budget;
        uint32_t kept;
        bool refused;
        int r;

        r = map_quota_check(c, d, ranges, n, &first, err);
        refused = r < 0 && r != -ENOMEM;
        if (r == 0) {
                user = user_usage(c);
                fd_budget(c, &user, &budget);
                kept = c->usage.fds;
                r = vfiod_domain_map(d, ranges, n, vfiod_server_limits(c->server), &user, &budget,
                                     ret_bytes, err);
                if (c->usage.fds > kept)
                        c->server->fds_open += c->usage.fds - kept;
                refused = r == -EDQUOT;
        }
        if (refused) {
                struct vfiod_log_about a =
                    first ? vfiod_client_about(c, first->device, first->group_id, first->id)
                          : vfiod_client_about(c, NULL, -1, 0);
                vfiod_log_about(LOG_NOTICE, &a, "quota: refused MapDma in domain %" PRIu64 ": %s",
                                d->id, err->reason);
        }
        return r;
}

static int handle_map_dma(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__MapDma *rq = msg->env->map_dma;
        struct vfiod_domain *d;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__MapDmaReply rep = VFIOD__MAP_DMA_REPLY__INIT;
        _cleanup_free_ struct vfiod_map_range *ranges = NULL;
        uint64_t bytes = 0;
        int r;

        r = batch_begin(c, rq->domain_id, rq->n_ranges, &d, err);
        if (r < 0)
                return r;
        r = vfiod_lease_domain_usable(c->server, d, err);
        if (r < 0) {
                LOG_CLIENT(LOG_NOTICE, c, "refused MapDma in domain %" PRIu64 ": %s", d->id,
                           err->reason);
                return r;
        }
        r = map_ranges_decode(msg, &ranges, err);
        if (r < 0)
                return r;
        r = map_within_quotas(c, d, ranges, rq->n_ranges, &bytes, err);
        if (r < 0)
                return r;
        /*
         * Debug, as UnmapDma's: a driver may map and unmap thousands of times a
         * second, and a line each at info would flood the journal (and its rate
         * limit would drop the lines that matter). Refusals are logged above;
         * what a lease has mapped shows in ListLeases and Stats.
         */
        LOG_CLIENT(LOG_DEBUG, c,
                   "client %" PRIu64 ": mapped %zu range(s), %" PRIu64 " bytes, domain %" PRIu64
                   " (now %" PRIu64 " bytes pinned)",
                   c->id, rq->n_ranges, bytes, d->id, c->usage.pinned_bytes);
        rep.mapped = (uint32_t)rq->n_ranges;
        rep.bytes = bytes;
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY;
        env.map_dma_reply = &rep;
        return reply(c, &env, NULL, 0, err);
}

static int handle_unmap_dma(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__UnmapDma *rq = msg->env->unmap_dma;
        struct vfiod_domain *d;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__UnmapDmaReply rep = VFIOD__UNMAP_DMA_REPLY__INIT;
        _cleanup_free_ struct vfiod_iova *ranges = NULL;
        uint32_t count = 0;
        uint64_t bytes = 0;
        int r;

        r = batch_begin(c, rq->domain_id, rq->n_ranges, &d, err);
        if (r < 0)
                return r;
        ranges = malloc0_array(rq->n_ranges, sizeof(*ranges));
        if (!ranges)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < rq->n_ranges; i++)
                ranges[i] =
                    (struct vfiod_iova){.iova = rq->ranges[i]->iova, .size = rq->ranges[i]->size};
        r = vfiod_domain_unmap(d, ranges, rq->n_ranges, &count, &bytes, err);
        if (r < 0)
                return r;
        LOG_CLIENT(LOG_DEBUG, c,
                   "client %" PRIu64 ": unmapped %" PRIu32 " mapping(s), %" PRIu64
                   " bytes, domain %" PRIu64 " (now %" PRIu64 " bytes pinned)",
                   c->id, count, bytes, d->id, c->usage.pinned_bytes);
        rep.unmapped = count;
        rep.unmapped_bytes = bytes;
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY;
        env.unmap_dma_reply = &rep;
        return reply(c, &env, NULL, 0, err);
}

/*
 * The eventfds of a SetIrqs within the fd budget: each is kept while
 * assigned, and those it replaces go. Counts them in the daemon's table.
 */
static int irq_fds_fit(struct vfiod_client *c, const struct vfiod_lease_dev *dev,
                       const struct vfiod_irq_set *set, struct vfiod_error *err)
{
        struct vfiod_usage user = user_usage(c);
        struct vfiod_fd_budget budget;
        uint32_t more = 0;

        for (size_t i = 0; i < set->count; i++)
                more += set->fds[i] >= 0;
        if (set->index < VFIOD_N_CLIENT_IRQ_INDEXES &&
            set->action == VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK)
                more -= MIN(more, (uint32_t)(dev->unmask_fds[set->index] >= 0));
        else if (set->index < VFIOD_N_CLIENT_IRQ_INDEXES && dev->trigger_fds[set->index])
                for (uint32_t v = set->start;
                     v < dev->irqs[set->index].count && v - set->start < set->count; v++)
                        more -= MIN(more, (uint32_t)(dev->trigger_fds[set->index][v] >= 0));
        fd_budget(c, &user, &budget);
        if (more > budget.left) {
                char why[200];

                return vfiod_error_set(err, budget.errnum, "%" PRIu32 " more eventfd(s): %s", more,
                                       vfiod_fd_budget_why(&budget, why, sizeof(why)));
        }
        c->server->fds_open += more;
        return 0;
}

static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; fds && i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/*
 * Takes the eventfds a SetIrqs names out of the message into *ret (-1:
 * de-assign; an fd named twice is duplicated), each checked to be an
 * eventfd. On failure none is left open.
 */
static int irq_eventfds_take(struct vfiod_msg *msg, const Vfiod__SetIrqs *rq, int **ret,
                             struct vfiod_error *err)
{
        _cleanup_free_ int *fds = malloc((rq->count ? rq->count : 1) * sizeof(int));
        int r;

        if (!fds)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < rq->count; i++)
                fds[i] = -EBADF;
        for (size_t i = 0; i < rq->count; i++) {
                int32_t idx = rq->eventfds[i];
                int fd;

                if (idx == -1) {
                        fds[i] = -1;
                        continue;
                }
                if (idx < -1) {
                        r = vfiod_error_set(err, EINVAL, "eventfd index %d", idx);
                        goto fail;
                }
                fd = vfiod_msg_take_fd(msg, (size_t)idx);
                if (fd == -EBADF) {
                        /* Named twice: the first vector took it; use a duplicate. */
                        for (size_t j = 0; j < i && fd < 0; j++)
                                if (rq->eventfds[j] == idx)
                                        fd = fcntl(fds[j], F_DUPFD_CLOEXEC, 3);
                }
                if (fd < 0) {
                        r = vfiod_error_set(err, EBADF, "eventfd index %d: no such fd", idx);
                        goto fail;
                }
                /* Owned by fds[] now; handed to the caller below. */
                fds[i] = fd;
                if (!vfiod_fd_is_eventfd(fd)) {
                        r = vfiod_error_set(err, EINVAL, "fd %d is not an eventfd", idx);
                        goto fail;
                }
        }
        *ret = TAKE_PTR(fds);
        return 0;
fail:
        close_fds(fds, rq->count);
        return r;
}

/*
 * The data of a SetIrqs, the only place that looks at its type: into set,
 * with *ret_bools or *ret_fds (owned by the caller) behind it.
 */
static int irq_set_decode(struct vfiod_msg *msg, struct vfiod_irq_set *set, uint8_t **ret_bools,
                          int **ret_fds, struct vfiod_error *err)
{
        const Vfiod__SetIrqs *rq = msg->env->set_irqs;
        uint8_t *bools;
        int r;

        *set = (struct vfiod_irq_set){
            .index = rq->index, .start = rq->start, .count = rq->count, .action = rq->action};
        switch (rq->data) {
        case VFIOD__IRQ_DATA__IRQ_DATA_NONE:
                if (rq->n_bools || rq->n_eventfds)
                        return vfiod_error_set(err, EINVAL, "data NONE takes no bools or eventfds");
                return 0;
        case VFIOD__IRQ_DATA__IRQ_DATA_BOOL:
                if (rq->n_bools != rq->count || rq->n_eventfds)
                        return vfiod_error_set(err, EINVAL, "data BOOL needs exactly %u bools",
                                               rq->count);
                bools = malloc(rq->count ? rq->count : 1);
                if (!bools)
                        return vfiod_error_set(err, ENOMEM, "out of memory");
                for (size_t i = 0; i < rq->n_bools; i++)
                        bools[i] = !!rq->bools[i];
                set->bools = *ret_bools = bools;
                return 0;
        case VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD:
                if (rq->n_eventfds != rq->count || rq->n_bools)
                        return vfiod_error_set(err, EINVAL,
                                               "data EVENTFD needs exactly %u eventfds", rq->count);
                r = irq_eventfds_take(msg, rq, ret_fds, err);
                if (r == 0)
                        set->fds = *ret_fds;
                return r;
        default:
                return vfiod_error_set(err, EINVAL, "bad interrupt data type %d", (int)rq->data);
        }
}

static int handle_set_irqs(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__SetIrqs *rq = msg->env->set_irqs;
        struct vfiod_lease_dev *dev;
        struct vfiod_irq_set set;
        _cleanup_free_ uint8_t *bools = NULL;
        _cleanup_free_ int *fds = NULL;
        int r;

        r = lease_dev_of(c, rq->lease_id, rq->device, &dev, err);
        if (r < 0)
                return r;
        if (rq->count > KVFIO_IRQ_MAX_COUNT)
                return vfiod_error_set(err, EINVAL, "count %u is above %u", rq->count,
                                       KVFIO_IRQ_MAX_COUNT);
        r = irq_set_decode(msg, &set, &bools, &fds, err);
        if (r < 0)
                return r;
        if (fds) {
                r = irq_fds_fit(c, dev, &set, err);
                if (r < 0) {
                        close_fds(fds, set.count);
                        return r;
                }
        }
        /* The eventfds go to the lease device (closed when it fails). */
        r = vfiod_lease_set_irqs_take(dev, &set, err);
        if (r < 0)
                return r;
        return reply_ok(c, msg->env->id, err);
}

static Vfiod__Mode *mode_ptr(int mode)
{
        static Vfiod__Mode modes[4] = {VFIOD__MODE__MODE_UNSPECIFIED, VFIOD__MODE__MODE_DIRECT,
                                       VFIOD__MODE__MODE_BROKERED, VFIOD__MODE__MODE_GROUP};
        return &modes[mode >= 0 && mode < 4 ? mode : 0];
}

static int handle_list_leases(struct vfiod_client *c, struct vfiod_msg *msg,
                              struct vfiod_error *err)
{
        struct vfiod_server *s = c->server;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__ListLeasesReply rep = VFIOD__LIST_LEASES_REPLY__INIT;
        size_t n = list_length(&s->leases), i = 0;
        Vfiod__LeaseInfo *infos = calloc(n ? n : 1, sizeof(*infos));
        Vfiod__LeaseInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
        char ***devs = calloc(n ? n : 1, sizeof(*devs));
        struct vfiod_lease *l;
        int r;

        if (!infos || !ptrs || !devs) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto out;
        }
        list_for_each_safe (l, it, &s->leases, struct vfiod_lease, link_server) {
                Vfiod__LeaseInfo *li = &infos[i];

                vfiod__lease_info__init(li);
                devs[i] = calloc(l->n_devs ? l->n_devs : 1, sizeof(char *));
                if (!devs[i]) {
                        r = vfiod_error_set(err, ENOMEM, "out of memory");
                        goto out;
                }
                for (size_t j = 0; j < l->n_devs; j++)
                        devs[i][j] = l->devs[j].bdf;
                li->lease_id = l->id;
                li->n_devices = l->n_devs;
                li->devices = devs[i];
                li->iommu_group = (uint32_t)l->group_id;
                li->uid = l->client->peer.uid;
                li->gid = l->client->peer.gid;
                li->pid = (uint32_t)l->client->peer.pid;
                li->unit = l->client->peer.unit ? l->client->peer.unit : (char *)"";
                li->mode = *mode_ptr(l->mode);
                li->domain_id = l->domain ? l->domain->id : 0;
                li->pinned_bytes = l->domain ? l->domain->pinned_bytes : 0;
                li->mappings = l->domain ? (uint32_t)l->domain->n_maps : 0;
                li->status = l->status;
                ptrs[i++] = li;
        }
        rep.n_leases = i;
        rep.leases = ptrs;
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY;
        env.list_leases_reply = &rep;
        r = reply(c, &env, NULL, 0, err);
out:
        for (size_t k = 0; devs && k < n; k++)
                free(devs[k]);
        free(devs);
        free(ptrs);
        free(infos);
        return r;
}

static int handle_revoke(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        const Vfiod__Revoke *rq = msg->env->revoke;
        struct vfiod_lease *l, *found = NULL;

        list_for_each_safe (l, it, &c->server->leases, struct vfiod_lease, link_server)
                if (l->id == rq->lease_id)
                        found = l;
        if (!found)
                return vfiod_client_no_lease(c, rq->lease_id, true, err);
        {
                struct vfiod_log_about a =
                    vfiod_client_about(c, found->device, found->group_id, found->id);
                vfiod_log_about(
                    LOG_NOTICE, &a,
                    "admin (client %" PRIu64 ") revokes lease %" PRIu64 " of uid %u: '%s'", c->id,
                    found->id, (unsigned)found->client->peer.uid, rq->reason ? rq->reason : "");
        }
        vfiod_lease_revoke(found, VFIOD__RELEASE_REASON__RELEASE_REASON_ADMIN_REVOKE,
                           rq->reason && *rq->reason ? rq->reason : NULL);
        return reply_ok(c, msg->env->id, err);
}

static int handle_reload_policy(struct vfiod_client *c, struct vfiod_msg *msg,
                                struct vfiod_error *err)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__ReloadPolicyReply rep = VFIOD__RELOAD_POLICY_REPLY__INIT;
        struct vfiod_errors errors = {0};
        uint32_t revoked = 0;
        int r;

        LOG_CLIENT(LOG_NOTICE, c, "client %" PRIu64 " asks for a configuration reload", c->id);
        (void)vfiod_server_reload(c->server, &errors, &revoked);
        rep.n_errors = errors.n;
        rep.errors = errors.lines;
        rep.leases_revoked = revoked;
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_RELOAD_POLICY_REPLY;
        env.reload_policy_reply = &rep;
        r = c->dead ? 0 : reply(c, &env, NULL, 0, err);
        vfiod_errors_clear(&errors);
        return r;
}

static int handle_stats(struct vfiod_client *c, struct vfiod_msg *msg, struct vfiod_error *err)
{
        struct vfiod_server *s = c->server;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__StatsReply rep = VFIOD__STATS_REPLY__INIT;

        rep.clients = s->n_clients;
        rep.leases = (uint32_t)list_length(&s->leases);
        rep.domains = s->usage_total.domains;
        rep.mappings = s->usage_total.mappings;
        rep.pinned_bytes = s->usage_total.pinned_bytes;
        rep.requests = s->n_requests;
        rep.errors = s->n_errors;
        rep.quarantined_groups =
            (uint32_t)vfiod_registry_count(s->devices, VFIOD_GROUP_QUARANTINED);
        rep.uptime_ms = vfiod_server_uptime_ms(s);
        env.id = msg->env->id;
        env.body_case = VFIOD__ENVELOPE__BODY_STATS_REPLY;
        env.stats_reply = &rep;
        return reply(c, &env, NULL, 0, err);
}

/* ---- the permission table ------------------------------------------------------ */

#define IN_NEW   (1u << VFIOD_CLIENT_NEW)
#define IN_READY (1u << VFIOD_CLIENT_READY)

struct request_rule {
        Vfiod__Envelope__BodyCase body;
        unsigned states; /* IN_* bits: where the request is allowed */
        bool admin;      /* only for admin peers (others get EPERM) */
        handler_fn handler;
};

/* Every request a client may send. Anything else (replies, events) drops the connection. */
static const struct request_rule request_table[] = {
    /* Again in session: a process that adopted the connection says who it is (1.1). */
    {VFIOD__ENVELOPE__BODY_HELLO, IN_NEW | IN_READY, false, handle_hello},
    {VFIOD__ENVELOPE__BODY_LIST_DEVICES, IN_READY, false, handle_list_devices},
    {VFIOD__ENVELOPE__BODY_CREATE_DOMAIN, IN_READY, false, handle_create_domain},
    {VFIOD__ENVELOPE__BODY_DESTROY_DOMAIN, IN_READY, false, handle_destroy_domain},
    {VFIOD__ENVELOPE__BODY_ACQUIRE, IN_READY, false, handle_acquire},
    {VFIOD__ENVELOPE__BODY_RELEASE, IN_READY, false, handle_release},
    {VFIOD__ENVELOPE__BODY_RESET, IN_READY, false, handle_reset},
    {VFIOD__ENVELOPE__BODY_MAP_DMA, IN_READY, false, handle_map_dma},
    {VFIOD__ENVELOPE__BODY_UNMAP_DMA, IN_READY, false, handle_unmap_dma},
    {VFIOD__ENVELOPE__BODY_SET_IRQS, IN_READY, false, handle_set_irqs},
    {VFIOD__ENVELOPE__BODY_LIST_LEASES, IN_READY, true, handle_list_leases},
    {VFIOD__ENVELOPE__BODY_REVOKE, IN_READY, true, handle_revoke},
    {VFIOD__ENVELOPE__BODY_RELOAD_POLICY, IN_READY, true, handle_reload_policy},
    {VFIOD__ENVELOPE__BODY_STATS, IN_READY, true, handle_stats},
};

void vfiod_client_dispatch(struct vfiod_client *c, struct vfiod_msg *msg)
{
        const struct vfiod_config_limits *lim = vfiod_server_limits(c->server);
        const struct request_rule *rule = NULL;
        struct vfiod_error err = {0};
        int r;

        /* The body's name is looked up only for a log line (a descriptor search). */
        for (size_t i = 0; i < ELEMENTSOF(request_table); i++)
                if (request_table[i].body == msg->env->body_case)
                        rule = &request_table[i];
        if (!rule) {
                vfiod_client_drop(c, "it sent '%s', which only the daemon sends",
                                  vfiod_envelope_body_name(msg->env));
                return;
        }
        if (!(rule->states & (1u << c->state))) {
                vfiod_client_drop(c, "it sent '%s' %s", vfiod_envelope_body_name(msg->env),
                                  c->state == VFIOD_CLIENT_NEW ? "before Hello" : "after Hello");
                return;
        }
        if (msg->env->id == 0) {
                vfiod_client_drop(c, "it sent '%s' with request id 0",
                                  vfiod_envelope_body_name(msg->env));
                return;
        }
        c->server->n_requests++;
        /* What may make c hold something: from now on the per-user sums count it. */
        if (rule->body == VFIOD__ENVELOPE__BODY_ACQUIRE ||
            rule->body == VFIOD__ENVELOPE__BODY_CREATE_DOMAIN)
                client_activate(c);
        if (msg->n_fds > lim->max_fds_per_message)
                r = vfiod_error_set(&err, ENOSPC, "%zu fds: MaxFdsPerMessage=%u reached",
                                    msg->n_fds, lim->max_fds_per_message);
        else if (rule->admin && !vfiod_policy_is_admin(c->server->policy, &c->peer)) {
                r = vfiod_error_set(&err, EPERM, "'%s' is for administrators",
                                    vfiod_envelope_body_name(msg->env));
                if (fail_log_allowed(c))
                        LOG_CLIENT(LOG_NOTICE, c, "client %" PRIu64 ": refused '%s': not an admin",
                                   c->id, vfiod_envelope_body_name(msg->env));
                (void)vfiod_client_send_error(c, msg->env->id, &err);
                return;
        } else
                r = rule->handler(c, msg, &err);
        if (r < 0) {
                if (fail_log_allowed(c))
                        LOG_CLIENT(LOG_INFO, c, "client %" PRIu64 ": '%s' failed: %s (%s)", c->id,
                                   vfiod_envelope_body_name(msg->env), err.reason,
                                   strerror(err.errnum));
                (void)vfiod_client_send_error(c, msg->env->id, &err);
        }
}

/* ---- the connection --------------------------------------------------------------- */

/* An fd no request takes: closed off the loop (closing it may block, see daemon/closer.h). */
static void unwanted_take(int fd, void *userdata)
{
        struct vfiod_client *c = userdata;

        LOG_CLIENT(LOG_DEBUG, c, "client %" PRIu64 ": sent an fd no request takes", c->id);
        vfiod_closer_take(c->server->closer, fd, c->peer.uid);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct vfiod_client *c = w->data;
        uint32_t budget = vfiod_server_limits(c->server)->max_requests_in_flight;
        const struct vfiod_recv_filter filter = {.unwanted_take = unwanted_take, .userdata = c};

        if (revents & EV_WRITE)
                flush_queue(c);
        if (!(revents & EV_READ))
                return;
        while (budget-- > 0 && can_read(c)) {
                struct vfiod_msg *msg = NULL;
                const char *reason = NULL;
                int r = vfiod_msg_recv_filtered(c->fd, MSG_DONTWAIT, &filter, &msg, &reason);

                if (r == -EAGAIN || r == -EINTR)
                        break;
                if (r == 0) {
                        vfiod_client_drop(c, "disconnected");
                        break;
                }
                if (r < 0) {
                        vfiod_client_drop(c, "bad datagram: %s", reason ? reason : strerror(-r));
                        break;
                }
                vfiod_client_dispatch(c, msg);
                /* Only memfds and eventfds are left: closing them never blocks. */
                size_t left = vfiod_msg_free(msg);
                if (left > 0)
                        LOG_CLIENT(LOG_DEBUG, c, "client %" PRIu64 ": closed %zu unused fd(s)",
                                   c->id, left);
        }
}

static void hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        struct vfiod_client *c = w->data;

        /* A client restored in session after a restart never had to say Hello. */
        if (c->state == VFIOD_CLIENT_NEW)
                vfiod_client_drop(c, "no Hello within HelloTimeoutMs=%u",
                                  vfiod_server_limits(c->server)->hello_timeout_ms);
}

int vfiod_client_new_take(struct vfiod_server *s, int fd, const struct vfiod_peer *peer,
                          struct vfiod_client **ret)
{
        struct vfiod_client *c = calloc(1, sizeof(*c));

        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        /* From here on the fd is the client's. */
        c->fd = fd;
        c->server = s;
        c->id = ++s->next_client_id;
        c->peer = *peer;
        c->peer.groups = NULL;
        c->peer.unit = NULL;
        c->peer.slice = NULL;
        c->max_datagram = VFIOD_PROTO_MAX_DATAGRAM;
        c->max_fds = VFIOD_PROTO_MAX_FDS;
        c->usage.total = &s->usage_total;
        list_init(&c->link);
        list_init(&c->link_active);
        list_init(&c->domains);
        list_init(&c->leases);
        list_init(&c->queue);
        if (peer->n_groups) {
                c->peer.groups = malloc(peer->n_groups * sizeof(gid_t));
                if (!c->peer.groups)
                        goto oom;
                memcpy(c->peer.groups, peer->groups, peer->n_groups * sizeof(gid_t));
        }
        if (peer->unit) {
                c->peer.unit = strdup(peer->unit);
                if (!c->peer.unit)
                        goto oom;
        }
        if (peer->slice) {
                c->peer.slice = strdup(peer->slice);
                if (!c->peer.slice)
                        goto oom;
        }
        ev_io_init(&c->io, io_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(s->loop, &c->io);
        ev_timer_init(&c->hello_timer, hello_timeout_cb,
                      vfiod_server_limits(s)->hello_timeout_ms / 1000.0, 0.);
        c->hello_timer.data = c;
        ev_timer_start(s->loop, &c->hello_timer);
        *ret = c;
        return 0;
oom:
        vfiod_client_free(c);
        return -ENOMEM;
}

void vfiod_client_free(struct vfiod_client *c)
{
        struct vfiod_lease *l;
        struct vfiod_domain *d;
        struct vfiod_queued *q;

        if (!c)
                return;
        if (c->server) {
                ev_io_stop(c->server->loop, &c->io);
                ev_timer_stop(c->server->loop, &c->hello_timer);
        }
        /* Nobody can receive events for these any more. */
        c->dead = true;
        /*
         * The queue first: a reply nobody will read (an AcquireReply) holds
         * duplicates of a lease's fds, which would quarantine its group.
         */
        list_for_each_safe (q, it, &c->queue, struct vfiod_queued, link)
                queued_free(q);
        list_for_each_safe (l, it, &c->leases, struct vfiod_lease, link_client)
                (void)vfiod_lease_release(l, "its holder disconnected");
        list_for_each_safe (d, it, &c->domains, struct vfiod_domain, link)
                vfiod_domain_free(d);
        list_remove(&c->link);
        list_remove(&c->link_active);
        safe_close(c->fd);
        vfiod_peer_done(&c->peer);
        free(c);
}

/* ---- saved in the fd store and loaded again after a restart (daemon/state.h) ---- */

void vfiod_client_save(const struct vfiod_client *c, struct vfiod_save *sv)
{
        struct vfiod_domain *d;
        struct vfiod_lease *l;

        if (c->dead)
                return;
        vfiod_save_fd(sv, c->fd, "client-%" PRIu64, c->id);
        /* The unit and slice read at connect: never read again from a pid. */
        vfiod_save_line(sv, "client %" PRIu64 " %d %" PRIu64 " %d %u %u %s %s", c->id,
                        (int)c->state, c->caps, c->admin ? 1 : 0, c->max_datagram, c->max_fds,
                        c->peer.unit ? c->peer.unit : "-", c->peer.slice ? c->peer.slice : "-");
        list_for_each_safe (d, dit, &c->domains, struct vfiod_domain, link)
                vfiod_domain_save(d, c->id, sv);
        list_for_each_safe (l, lit, &c->leases, struct vfiod_lease, link_client)
                vfiod_lease_save(l, sv);
}

/*
 * The connection of client id, with its old id. Uid, gid, pid and groups
 * are the kernel's (recorded at connect()); the unit and slice are those the
 * state saved, read when the client connected: its pid may name another
 * process by now. fd is taken (closed on failure too).
 */
static int load_connection_take(struct vfiod_server *s, int fd, uint64_t id, const char *unit,
                                const char *slice, struct vfiod_client **ret)
{
        struct vfiod_peer peer = {0};
        int r;

        if (fd < 0 || id == 0 || vfiod_server_find_client(s, id)) {
                safe_close(fd);
                return -EINVAL;
        }
        r = vfiod_peer_read(fd, false, &peer);
        if (r == 0 &&
            ((unit && !(peer.unit = strdup(unit))) || (slice && !(peer.slice = strdup(slice)))))
                r = -ENOMEM;
        if (r < 0) {
                vfiod_peer_done(&peer);
                safe_close(fd);
                return r;
        }
        /* The fd moves to the client; the peer is copied. */
        r = vfiod_server_restore_client_take(s, fd, id, &peer, ret);
        vfiod_peer_done(&peer);
        return r;
}

/* "client C STATE CAPS ADMIN MAX_DATAGRAM MAX_FDS UNIT SLICE" (UNIT, SLICE: absent in an old state)
 */
static int load_client(struct vfiod_load *ld, const char *args)
{
        char unit[256], slice[256];
        uint64_t id, caps;
        int state, admin, fd, r;
        unsigned max_datagram, max_fds;
        struct vfiod_client *c;
        int n = sscanf(args, "%" SCNu64 " %d %" SCNu64 " %d %u %u %255s %255s", &id, &state, &caps,
                       &admin, &max_datagram, &max_fds, unit, slice);

        if (n != 6 && n != 8)
                return VFIOD_LOAD_UNKNOWN;
        fd = vfiod_load_fd(ld, "client-%" PRIu64, id);
        if (vfiod_load_checking(ld))
                return 0;
        r = load_connection_take(vfiod_load_server(ld), fd, id,
                                 n == 8 && strcmp(unit, "-") != 0 ? unit : NULL,
                                 n == 8 && strcmp(slice, "-") != 0 ? slice : NULL, &c);
        if (r < 0)
                return r;
        c->state = state == VFIOD_CLIENT_READY ? VFIOD_CLIENT_READY : VFIOD_CLIENT_NEW;
        /* Its domains and leases follow: the per-user sums count it. */
        client_activate(c);
        c->caps = caps;
        c->admin = admin != 0;
        c->max_datagram = max_datagram;
        c->max_fds = max_fds;
        return 0;
}

/* "domain C ..." (the rest is the domain's: vfiod_domain_load()) */
static int load_domain(struct vfiod_load *ld, const char *args)
{
        struct vfiod_client *c;
        struct vfiod_domain *d;
        uint64_t id;
        int n = 0, r;

        if (sscanf(args, "%" SCNu64 "%n", &id, &n) != 1)
                return VFIOD_LOAD_UNKNOWN;
        c = vfiod_load_checking(ld) ? NULL : vfiod_server_find_client(vfiod_load_server(ld), id);
        r = vfiod_domain_load(ld, args + n, c ? &c->usage : NULL, &d);
        if (r == 0 && !vfiod_load_checking(ld))
                list_add_tail(&c->domains, &d->link);
        return r;
}

const struct vfiod_load_keyword vfiod_client_keywords[] = {
    {"client", load_client},
    {"domain", load_domain},
    {NULL, NULL},
};

void vfiod_client_invalidate_vaddrs(struct vfiod_client *c)
{
        struct vfiod_domain *d;

        list_for_each_safe (d, dit, &c->domains, struct vfiod_domain, link)
                vfiod_domain_invalidate_vaddrs(d);
}

void vfiod_client_abandon(struct vfiod_client *c)
{
        struct vfiod_lease *l;
        struct vfiod_domain *d;

        list_for_each_safe (l, lit, &c->leases, struct vfiod_lease, link_client)
                vfiod_lease_abandon(l);
        list_for_each_safe (d, dit, &c->domains, struct vfiod_domain, link)
                vfiod_domain_abandon(d);
}
