/* SPDX-License-Identifier: MIT */
#include "daemon/lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/domain.h"
#include "daemon/policy.h"
#include "daemon/server.h"
#include "kernel/container.h"
#include "kernel/group.h"
#include "kernel/irq.h"
#include "proto/macro.h"
#include "proto/names.h"

#define LOG_LEASE(prio, l, dev, ...)                                                \
        do {                                                                        \
                struct vfiod_log_about _a =                                         \
                    vfiod_client_about((l)->client, (dev), (l)->group_id, (l)->id); \
                vfiod_log_about((prio), &_a, __VA_ARGS__);                          \
        } while (0)

#define LOG_GROUP(prio, id, lease_id, ...)                                        \
        do {                                                                      \
                struct vfiod_log_about _a = {.group = (id), .lease = (lease_id)}; \
                vfiod_log_about((prio), &_a, __VA_ARGS__);                        \
        } while (0)

static unsigned mode_bit(int mode)
{
        return mode == VFIOD__MODE__MODE_DIRECT     ? VFIOD_MODE_BIT_DIRECT
               : mode == VFIOD__MODE__MODE_BROKERED ? VFIOD_MODE_BIT_BROKERED
                                                    : 0;
}

static const char *mode_name(int mode)
{
        const char *name = vfiod_proto_mode_to_string(mode);

        return name ? name : "unspecified";
}

/* ---- daemon-owned REQ / ERR eventfds -------------------------------------- */

static void drain_eventfd(int fd)
{
        uint64_t v;

        while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                ;
}

static void req_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct vfiod_lease_dev *dev = w->data;
        struct vfiod_lease *l = dev->lease;

        drain_eventfd(dev->req_fd);
        LOG_LEASE(LOG_NOTICE, l, dev->bdf, "the kernel asks for device '%s' back (REQ)", dev->bdf);
        vfiod_lease_revoke(l, VFIOD__RELEASE_REASON__RELEASE_REASON_KERNEL_REQUEST,
                           "the kernel asks for the device");
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct vfiod_lease_dev *dev = w->data;
        struct vfiod_lease *l = dev->lease;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__DeviceError ev = VFIOD__DEVICE_ERROR__INIT;

        drain_eventfd(dev->err_fd);
        LOG_LEASE(LOG_WARNING, l, dev->bdf, "device '%s' reported an error (ERR)", dev->bdf);
        if (!vfiod_client_wants_events(l->client))
                return;
        ev.lease_id = l->id;
        ev.device = dev->bdf;
        env.body_case = VFIOD__ENVELOPE__BODY_DEVICE_ERROR;
        env.device_error = &ev;
        (void)vfiod_client_send(l->client, &env, NULL, 0);
}

/* Assigns a daemon eventfd to REQ or ERR; not fatal when it fails (logged). */
static void arm_event(struct vfiod_lease_dev *dev, uint32_t index, int *fd, ev_io *io,
                      void (*cb)(struct ev_loop *, ev_io *, int))
{
        struct vfiod_lease *l = dev->lease;
        int efd, r;

        if (dev->irqs[index].count == 0)
                return;
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) {
                LOG_LEASE(LOG_WARNING, l, dev->bdf, "cannot make an eventfd for %s: %m",
                          kvfio_irq_index_name(index));
                return;
        }
        r = kvfio_irq_set_eventfds(dev->fd, index, 0, 1, &efd);
        if (r < 0) {
                LOG_LEASE(LOG_WARNING, l, dev->bdf, "cannot assign the %s interrupt: %s",
                          kvfio_irq_index_name(index), strerror(-r));
                safe_close(efd);
                return;
        }
        /* The eventfd is owned by the lease device from here on. */
        *fd = efd;
        ev_io_init(io, cb, efd, EV_READ);
        io->data = dev;
        ev_io_start(l->client->server->loop, io);
}

void vfiod_lease_dev_arm_events(struct vfiod_lease_dev *dev)
{
        arm_event(dev, VFIO_PCI_REQ_IRQ_INDEX, &dev->req_fd, &dev->req_io, req_cb);
        arm_event(dev, VFIO_PCI_ERR_IRQ_INDEX, &dev->err_fd, &dev->err_io, err_cb);
}

static void close_client_irq_fds(struct vfiod_lease_dev *dev, uint32_t index)
{
        if (dev->trigger_fds[index])
                for (uint32_t i = 0; i < dev->irqs[index].count; i++)
                        dev->trigger_fds[index][i] = safe_close(dev->trigger_fds[index][i]);
        dev->unmask_fds[index] = safe_close(dev->unmask_fds[index]);
}

/* Release step 1 for one device: every index off, every eventfd closed. */
static void dev_irqs_off(struct vfiod_lease_dev *dev, struct ev_loop *loop)
{
        struct vfiod_lease *l = dev->lease;

        for (uint32_t i = 0; i < VFIOD_N_IRQ_INDEXES && dev->fd >= 0; i++) {
                int r;

                if (dev->irqs[i].count == 0)
                        continue;
                r = kvfio_irq_disable(dev->fd, i);
                /* vfio-pci answers EINVAL for an MSI/MSI-X index that is not enabled. */
                if (r < 0)
                        LOG_LEASE(r == -EINVAL ? LOG_DEBUG : LOG_WARNING, l, dev->bdf,
                                  "disabling %s: %s", kvfio_irq_index_name(i),
                                  r == -EINVAL ? "it was not enabled" : strerror(-r));
        }
        for (uint32_t i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++) {
                close_client_irq_fds(dev, i);
                free(dev->trigger_fds[i]);
                dev->trigger_fds[i] = NULL;
        }
        if (dev->req_fd >= 0)
                ev_io_stop(loop, &dev->req_io);
        if (dev->err_fd >= 0)
                ev_io_stop(loop, &dev->err_io);
        dev->req_fd = safe_close(dev->req_fd);
        dev->err_fd = safe_close(dev->err_fd);
}

/* ---- resets ------------------------------------------------------------------ */

/*
 * Resets one device: VFIO_DEVICE_RESET, or, when the device has no reset of
 * its own, a bus hot reset if every device it affects is in group `group`
 * (whose fd we hold). Returns 0 or the first error.
 */
static int reset_device(int device_fd, const char *bdf, int group, int group_fd)
{
        struct kvfio_hot_reset_info *info = NULL;
        int r, h;

        r = kvfio_device_reset(device_fd);
        if (r != -ENOTTY && r != -EINVAL)
                return r;
        h = kvfio_device_get_hot_reset_info(device_fd, &info);
        if (h < 0)
                return r; /* no hot reset either: the device's own answer */
        for (size_t i = 0; i < info->n; i++)
                if ((int)info->devs[i].group_id != group) {
                        char other[16];
                        struct vfiod_log_about a = {.device = bdf, .group = group};

                        vfiod_log_about(LOG_WARNING, &a,
                                        "'%s' has no reset of its own and a hot reset would "
                                        "also reset '%s' (group %u)",
                                        bdf, kvfio_hot_reset_dep_bdf(&info->devs[i], other),
                                        info->devs[i].group_id);
                        kvfio_hot_reset_info_free(info);
                        return r;
                }
        kvfio_hot_reset_info_free(info);
        return kvfio_device_hot_reset(device_fd, &group_fd, 1);
}

/* ---- quarantine and sanitize ---------------------------------------------- */

int vfiod_lease_reset_dev(struct vfiod_lease_dev *dev)
{
        return reset_device(dev->fd, dev->bdf, dev->lease->group_id, dev->lease->group_fd);
}

/*
 * Whether the open that gave a device fd reset the device: vfio-pci resets a
 * device at its first open (vfio_pci_core_enable) and fails the open when
 * the device lock is taken; VFIO_DEVICE_FLAGS_RESET (info, read after that
 * open) then says the reset worked. Only vfio-pci itself is trusted with
 * this: an mdev's open is its vendor driver's.
 */
static bool plain_vfio_pci(const struct kvfio_pci_dev *m)
{
        return !m->mdev && strcmp(m->driver, KVFIO_VFIO_PCI_DRIVER) == 0;
}

static bool reset_at_open(const struct kvfio_pci_dev *m, const struct kvfio_device_info *info)
{
        return plain_vfio_pci(m) && info->reset_supported;
}

int vfiod_group_sanitize(struct vfiod_registry *devices, int id, int group_fd,
                         const struct kvfio_pci_list *members)
{
        int cfd, r;

        cfd = kvfio_container_open(devices->container_path);
        if (cfd < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot open a scratch container: %s",
                          strerror(-cfd));
                return cfd;
        }
        r = kvfio_group_set_container(group_fd, cfd);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot attach the group: %s",
                          strerror(-r));
                goto out_close;
        }
        r = kvfio_container_set_iommu(cfd, KVFIO_IOMMU_AUTO);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: cannot set the IOMMU model: %s",
                          strerror(-r));
                goto out_unset;
        }
        for (size_t i = 0; i < members->n; i++) {
                const struct kvfio_pci_dev *m = &members->devs[i];
                struct vfiod_log_about a = {.device = m->bdf, .group = id};
                struct kvfio_device_info info;
                int dfd, rr;

                if (!kvfio_dev_is_vfio(m))
                        continue;
                dfd = kvfio_group_get_device_fd(group_fd, m->bdf);
                if (dfd < 0) {
                        vfiod_log_about(LOG_WARNING, &a, "sanitize: cannot open device '%s': %s",
                                        m->bdf, strerror(-dfd));
                        r = dfd;
                        continue;
                }
                if (kvfio_device_get_info(dfd, &info) == 0 && reset_at_open(m, &info)) {
                        vfiod_log_about(LOG_DEBUG, &a, "sanitize: '%s' was reset as it opened",
                                        m->bdf);
                        safe_close(dfd);
                        continue;
                }
                rr = reset_device(dfd, m->bdf, id, group_fd);
                if (rr < 0)
                        vfiod_log_about(LOG_WARNING, &a, "sanitize: resetting '%s' failed: %s",
                                        m->bdf, strerror(-rr));
                else
                        vfiod_log_about(LOG_DEBUG, &a, "sanitize: reset '%s'", m->bdf);
                safe_close(dfd);
        }
out_unset : {
        int u = kvfio_group_unset_container(group_fd);
        if (u < 0) {
                LOG_GROUP(LOG_WARNING, id, 0, "sanitize: detaching the group failed: %s",
                          strerror(-u));
                if (r >= 0)
                        r = u;
        }
}
out_close:
        safe_close(cfd);
        return r < 0 ? r : 0;
}

/* The group is FREE: forgets it and gives managed devices back to their drivers. */
static void group_free_restore(struct vfiod_server *s, struct vfiod_group *g)
{
        struct vfiod_bound *bound = g->bound;
        size_t n = g->n_bound;
        int id = g->id;

        /* The list moves out of the entry before it is freed. */
        g->bound = NULL;
        g->n_bound = 0;
        vfiod_registry_group_free(g);
        if (n)
                vfiod_registry_restore(s->devices, id, bound, n);
        else
                free(bound);
}

/*
 * Whether a group nobody holds any more needs the sanitize before it is
 * FREE. Not when every VFIO member is plain vfio-pci and the group stays on
 * it: whoever opens a device next opens the group first, which nobody else
 * then holds, so that device open is its first, and vfio-pci resets it
 * there (the acquire resets it itself when the open could not: see
 * lease_open_devs()). Yes for an mdev member or one on a *_vfio_pci variant
 * (its open is its vendor driver's), and for a group that goes back to other
 * drivers (Managed=).
 */
static bool needs_sanitize(const struct vfiod_group *g, const struct kvfio_pci_list *members)
{
        if (g->n_bound > 0)
                return true;
        for (size_t i = 0; i < members->n; i++)
                if (kvfio_dev_is_vfio(&members->devs[i]) && !plain_vfio_pci(&members->devs[i]))
                        return true;
        return false;
}

int vfiod_lease_domain_usable(struct vfiod_server *s, const struct vfiod_domain *d,
                              struct vfiod_error *err)
{
        const struct vfiod_group *g = vfiod_registry_attached_to(s->devices, d->id);

        if (!g)
                return 0;
        return vfiod_error_set(err, EBUSY,
                               "domain %" PRIu64 " takes no new lease or mapping: group %d of "
                               "released lease %" PRIu64 " is still attached to it, as a device "
                               "fd of that lease is still open",
                               d->id, g->id, g->last_lease);
}

/*
 * A group left domain d (NULL: the domain is gone already): when it was the
 * last one, the kernel dropped the domain's IOMMU model and mappings.
 */
static void domain_group_left(struct vfiod_server *s, struct vfiod_domain *d)
{
        if (d && d->n_leases == 0 && !vfiod_registry_attached_to(s->devices, d->id))
                vfiod_domain_detached_last(d);
}

/*
 * A domain that Acquire made (domain 0) goes with its last lease, once no
 * quarantined group is attached to it any more; one made by CreateDomain
 * stays until DestroyDomain or the client's end.
 */
static void domain_drop_if_implicit(struct vfiod_server *s, struct vfiod_domain *d)
{
        if (!d || !d->implicit || d->n_leases > 0 || vfiod_registry_attached_to(s->devices, d->id))
                return;
        log_info("domain %" PRIu64 ", made by Acquire, goes with its last lease", d->id);
        vfiod_domain_free(d);
}

static struct vfiod_domain *domain_by_id(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_client *c;

        list_for_each_safe(c, it, &s->clients, struct vfiod_client, link)
        {
                struct vfiod_domain *d = vfiod_client_find_domain(c, id);

                if (d)
                        return d;
        }
        return NULL;
}

/*
 * Takes the group on from where it waits (g->wait): unset, re-open, sanitize.
 * Returns 0 when it is FREE (the entry is freed), 1 when it stays QUARANTINED.
 */
static int group_proceed(struct vfiod_server *s, struct vfiod_group *g)
{
        struct kvfio_pci_list *members = NULL;
        int id = g->id, fd, r;
        uint64_t lease = g->last_lease;

        if (g->wait == VFIOD_WAIT_UNSET) {
                struct vfiod_domain *d = domain_by_id(s, g->domain);

                r = kvfio_group_unset_container(g->fd);
                if (r == -EBUSY)
                        return 1;
                if (r < 0 && r != -EINVAL)
                        LOG_GROUP(LOG_WARNING, id, lease, "detaching group %d: %s", id,
                                  strerror(-r));
                else
                        LOG_GROUP(LOG_INFO, id, lease,
                                  "group %d: every device fd is closed, group detached", id);
                g->fd = safe_close(g->fd);
                g->wait = VFIOD_WAIT_REOPEN;
                g->domain = 0;
                domain_group_left(s, d);
                domain_drop_if_implicit(s, d);
        }
        fd = kvfio_group_open(id, s->devices->vfio_dir);
        if (fd == -EBUSY) {
                if (g->wait != VFIOD_WAIT_REOPEN || g->checks == 0)
                        LOG_GROUP(LOG_NOTICE, id, lease,
                                  "group %d is still open elsewhere (a client holds its fd)", id);
                g->wait = VFIOD_WAIT_REOPEN;
                return 1;
        }
        if (fd == -ENOENT || fd == -ENODEV) {
                /* No longer a VFIO group (unbound from vfio-pci): nothing left to clean. */
                LOG_GROUP(LOG_NOTICE, id, lease, "group %d is gone from %s; forgetting it", id,
                          s->devices->vfio_dir);
                group_free_restore(s, g);
                return 0;
        }
        if (fd < 0) {
                LOG_GROUP(LOG_WARNING, id, lease, "cannot open group %d again: %s", id,
                          strerror(-fd));
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        r = vfiod_registry_members(s->devices, id, &members);
        if (r < 0) {
                safe_close(fd);
                LOG_GROUP(LOG_WARNING, id, lease,
                          "group %d stays quarantined: cannot list its devices: %s", id,
                          strerror(-r));
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        if (!needs_sanitize(g, members)) {
                kvfio_pci_list_free(members);
                safe_close(fd);
                LOG_GROUP(LOG_INFO, id, lease,
                          "group %d is free: nobody else holds it, and vfio-pci resets its "
                          "devices when they are next opened",
                          id);
                group_free_restore(s, g);
                return 0;
        }
        r = vfiod_group_sanitize(s->devices, id, fd, members);
        kvfio_pci_list_free(members);
        safe_close(fd);
        if (r < 0) {
                LOG_GROUP(LOG_WARNING, id, lease,
                          "group %d stays quarantined: sanitizing failed: %s", id, strerror(-r));
                g->wait = VFIOD_WAIT_SANITIZE;
                return 1;
        }
        LOG_GROUP(LOG_INFO, id, lease, "group %d sanitized; it is free", id);
        group_free_restore(s, g);
        return 0;
}

void vfiod_quarantine_check(struct vfiod_server *s)
{
        struct vfiod_group *g;

        list_for_each_safe(g, it, &s->devices->groups, struct vfiod_group, link)
        {
                if (g->state != VFIOD_GROUP_QUARANTINED)
                        continue;
                g->checks++;
                (void)group_proceed(s, g);
        }
        vfiod_server_quarantine_kick(s);
}

/* ---- acquire ---------------------------------------------------------------- */

static void lease_free_devs(struct vfiod_lease *l, struct ev_loop *loop)
{
        for (size_t i = 0; i < l->n_devs; i++) {
                dev_irqs_off(&l->devs[i], loop);
                l->devs[i].fd = safe_close(l->devs[i].fd);
        }
        free(l->devs);
        l->devs = NULL;
        l->n_devs = 0;
}

static int lease_open_devs(struct vfiod_lease *l, const struct kvfio_pci_list *members,
                           struct vfiod_error *err)
{
        size_t n = 0;

        for (size_t i = 0; i < members->n; i++)
                n += kvfio_dev_is_vfio(&members->devs[i]);
        l->devs = calloc(n ? n : 1, sizeof(*l->devs));
        if (!l->devs)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < members->n; i++) {
                const struct kvfio_pci_dev *m = &members->devs[i];
                struct vfiod_lease_dev *dev;
                int r;

                if (!kvfio_dev_is_vfio(m))
                        continue;
                dev = &l->devs[l->n_devs++];
                dev->lease = l;
                dev->req_fd = dev->err_fd = -EBADF;
                for (int k = 0; k < VFIOD_N_CLIENT_IRQ_INDEXES; k++)
                        dev->unmask_fds[k] = -EBADF;
                snprintf(dev->bdf, sizeof(dev->bdf), "%s", m->bdf);
                dev->fd = kvfio_group_get_device_fd(l->group_fd, m->bdf);
                if (dev->fd < 0)
                        return vfiod_error_set(err, -dev->fd, "cannot open device '%s': %s", m->bdf,
                                               strerror(-dev->fd));
                r = kvfio_device_get_info(dev->fd, &dev->info);
                if (r < 0)
                        return vfiod_error_set(err, -r, "cannot query device '%s': %s", m->bdf,
                                               strerror(-r));
                /*
                 * The group was ours alone from its open: this is the device's first
                 * open, which resets a vfio-pci device that can be reset. One that
                 * could not be is reset here as the sanitize would.
                 */
                if (reset_at_open(m, &dev->info))
                        LOG_LEASE(LOG_DEBUG, l, m->bdf, "'%s' was reset as it opened", m->bdf);
                else if (plain_vfio_pci(m)) {
                        r = reset_device(dev->fd, m->bdf, l->group_id, l->group_fd);
                        if (r < 0)
                                LOG_LEASE(LOG_WARNING, l, m->bdf,
                                          "'%s' was not reset as it opened, and resetting it "
                                          "failed: %s",
                                          m->bdf, strerror(-r));
                        else
                                LOG_LEASE(LOG_DEBUG, l, m->bdf,
                                          "'%s' was not reset as it opened: reset it", m->bdf);
                }
                for (uint32_t k = 0; k < VFIOD_N_IRQ_INDEXES && k < dev->info.num_irqs; k++) {
                        r = kvfio_device_get_irq_info(dev->fd, k, &dev->irqs[k]);
                        if (r < 0)
                                dev->irqs[k] = (struct kvfio_irq_info){.index = k};
                        if (dev->irqs[k].count > KVFIO_IRQ_MAX_COUNT)
                                dev->irqs[k].count = KVFIO_IRQ_MAX_COUNT;
                }
                arm_event(dev, VFIO_PCI_REQ_IRQ_INDEX, &dev->req_fd, &dev->req_io, req_cb);
                arm_event(dev, VFIO_PCI_ERR_IRQ_INDEX, &dev->err_fd, &dev->err_io, err_cb);
        }
        return 0;
}

void vfiod_lease_unlink(struct vfiod_lease *l)
{
        list_remove(&l->link_client);
        list_remove(&l->link_server);
        free(l->devs);
        free(l->revoke_detail);
        vfiod_grant_done(&l->grant);
        free(l);
}

/*
 * Managed=yes: binds every member of dev's group that is on another driver
 * (bridges aside) to vfio-pci, each of which a Managed=yes rule must give
 * the peer in mode. On success *ret_bound lists what was bound (to be given
 * back); on failure what was bound is given back already.
 */
static int managed_bind(struct vfiod_client *c, const struct kvfio_pci_dev *dev, int mode,
                        struct vfiod_bound **ret_bound, size_t *ret_n, struct vfiod_error *err)
{
        struct vfiod_server *s = c->server;
        struct kvfio_pci_list *members = NULL;
        struct vfiod_bound *bound = NULL;
        size_t n = 0;
        char why[200];
        int r;

        r = vfiod_registry_members(s->devices, dev->iommu_group, &members);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot list group %d: %s", dev->iommu_group,
                                       strerror(-r));
        for (size_t i = 0; i < members->n; i++) {
                const struct kvfio_pci_dev *m = &members->devs[i];
                const struct vfiod_rule *mr;

                if (kvfio_dev_is_vfio(m) || kvfio_pci_dev_is_bridge(m))
                        continue;
                mr = vfiod_policy_grant(s->policy, &c->peer, m, mode_bit(mode), why, sizeof(why));
                if (!mr || !mr->grant.managed) {
                        r = vfiod_error_set(err, EPERM,
                                            "device '%s' shares IOMMU group %d with '%s' (%s%s%s), "
                                            "which no Managed=yes rule gives you in %s mode%s%s",
                                            dev->bdf, dev->iommu_group, m->bdf,
                                            m->driver[0] ? "driver '" : "no driver", m->driver,
                                            m->driver[0] ? "'" : "", mode_name(mode),
                                            mr ? "" : ": ", mr ? "" : why);
                        goto fail;
                }
        }
        bound = calloc(members->n ? members->n : 1, sizeof(*bound));
        if (!bound) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        for (size_t i = 0; i < members->n; i++) {
                const struct kvfio_pci_dev *m = &members->devs[i];
                struct vfiod_log_about a = vfiod_client_about(c, m->bdf, dev->iommu_group, 0);
                struct vfiod_bound *b = &bound[n];

                if (kvfio_dev_is_vfio(m) || kvfio_pci_dev_is_bridge(m))
                        continue;
                snprintf(b->bdf, sizeof(b->bdf), "%s", m->bdf);
                r = kvfio_pci_bind_vfio(s->devices->sysfs_root, m->bdf, b->prev_driver);
                if (r < 0) {
                        vfiod_log_about(LOG_WARNING, &a, "managed: binding '%s' to vfio-pci: %s",
                                        m->bdf, strerror(-r));
                        r = vfiod_error_set(err, -r == ENXIO ? ENXIO : -r,
                                            "binding '%s' to vfio-pci failed: %s", m->bdf,
                                            strerror(-r));
                        goto fail;
                }
                n++;
                vfiod_log_about(LOG_NOTICE, &a, "managed: bound '%s' to vfio-pci (it had %s%s%s)",
                                m->bdf, b->prev_driver[0] ? "driver '" : "no driver",
                                b->prev_driver, b->prev_driver[0] ? "'" : "");
        }
        kvfio_pci_list_free(members);
        *ret_bound = bound;
        *ret_n = n;
        return 0;

fail:
        kvfio_pci_list_free(members);
        if (n)
                vfiod_registry_restore(s->devices, dev->iommu_group, bound, n);
        else
                free(bound);
        return r;
}

bool vfiod_lease_policy_check(struct vfiod_lease *l, const struct vfiod_policy *policy)
{
        struct vfiod_registry *devs = l->client->server->devices;
        unsigned bit = mode_bit(l->mode);
        struct vfiod_grant grant;
        const struct vfiod_rule *first = NULL;

        vfiod_grant_init(&grant);
        for (size_t i = 0; i < l->n_devs; i++) {
                const struct vfiod_rule *r;
                struct kvfio_pci_dev dev;

                /* A device that cannot be read cannot be shown to be allowed. */
                if (vfiod_registry_read(devs, l->devs[i].bdf, &dev) < 0)
                        goto denied;
                r = vfiod_policy_grant(policy, &l->client->peer, &dev, bit, NULL, 0);
                if (!r)
                        goto denied;
                if (strcmp(l->devs[i].bdf, l->device) == 0)
                        first = r;
                if (vfiod_grant_narrow(&grant, &r->grant) < 0)
                        goto denied;
        }
        vfiod_grant_done(&l->grant);
        l->grant = grant;
        if (first)
                snprintf(l->rule, sizeof(l->rule), "%s", first->name);
        return true;
denied:
        vfiod_grant_done(&grant);
        return false;
}

struct vfiod_lease *vfiod_lease_alloc(struct vfiod_client *c, struct vfiod_domain *d, int group_id,
                                      int mode, const char *device)
{
        struct vfiod_lease *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        list_init(&l->link_client);
        list_init(&l->link_server);
        vfiod_grant_init(&l->grant);
        l->client = c;
        l->domain = d;
        l->group_id = group_id;
        l->mode = mode;
        l->status = VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE;
        l->group_fd = -EBADF;
        snprintf(l->device, sizeof(l->device), "%s", device);
        return l;
}

int vfiod_lease_acquire(struct vfiod_client *c, const char *device, uint64_t domain_id, int mode,
                        struct vfiod_lease **ret, struct vfiod_error *err)
{
        struct vfiod_server *s = c->server;
        struct vfiod_registry *devs = s->devices;
        const struct vfiod_config_limits *lim = &s->policy->limits;
        struct kvfio_pci_list *members = NULL;
        struct kvfio_group_viability via;
        struct vfiod_domain *domain = NULL;
        struct vfiod_lease *l = NULL;
        struct vfiod_group *g = NULL;
        struct kvfio_pci_dev dev;
        bool created = false, attached = false;
        char bdf[KVFIO_NAME_MAX], why[200];
        const struct vfiod_rule *rule;
        struct vfiod_grant grant;
        struct vfiod_bound *bound = NULL;
        size_t n_bound = 0;
        unsigned modes;
        int r;

        if (kvfio_dev_name_normalize(device, bdf) < 0)
                return vfiod_error_set(err, EINVAL, "'%s' is not a PCI address or an mdev UUID",
                                       device);
        if (!mode_bit(mode))
                return vfiod_error_set(err, EINVAL, "mode must be DIRECT or BROKERED");
        r = vfiod_registry_read(devs, bdf, &dev);
        if (r == -ENODEV)
                return vfiod_error_set(err, ENOENT, "no device '%s'", device);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot read device '%s': %s", device,
                                       strerror(-r));
        vfiod_grant_init(&grant);
        rule = vfiod_policy_grant(s->policy, &c->peer, &dev, mode_bit(mode), why, sizeof(why));
        if (!rule) {
                modes = vfiod_policy_modes(s->policy, &c->peer, &dev);
                return vfiod_error_set(err, EPERM,
                                       "the policy does not allow you device '%s' in %s mode "
                                       "(allowed: %s): %s",
                                       device, mode_name(mode), vfiod_modes_name(modes), why);
        }
        if (dev.iommu_group < 0)
                return vfiod_error_set(err, ENXIO, "device '%s' has no IOMMU group", device);
        if (!kvfio_dev_is_vfio(&dev) && !rule->grant.managed)
                return vfiod_error_set(err, ENXIO,
                                       "device '%s' is not bound to vfio-pci (%s%s%s) and rule "
                                       "'%s' does not say Managed=yes",
                                       device, dev.driver[0] ? "driver '" : "no driver", dev.driver,
                                       dev.driver[0] ? "'" : "", rule->name);
        g = vfiod_registry_group(devs, dev.iommu_group);
        if (g && g->state == VFIOD_GROUP_LEASED)
                return vfiod_error_set(err, EBUSY, "device '%s' (group %d) is leased%s", device,
                                       dev.iommu_group,
                                       g->lease && g->lease->client == c ? " to you already" : "");
        /*
         * Quarantined: look again now rather than at the next periodic check,
         * so that a group whose last fd was just closed is free at once.
         */
        if (g && g->state == VFIOD_GROUP_QUARANTINED && group_proceed(s, g) == 0)
                g = NULL; /* free now: the entry is gone */
        if (g && g->state == VFIOD_GROUP_QUARANTINED)
                return vfiod_error_set(err, EBUSY,
                                       "device '%s' (group %d) is quarantined until every fd of "
                                       "its last lease is closed",
                                       device, dev.iommu_group);
        if (rule->grant.managed) {
                /* Binds what is not on vfio-pci yet; undone below when the acquire fails. */
                r = managed_bind(c, &dev, mode, &bound, &n_bound, err);
                if (r < 0)
                        return r;
        }
        r = kvfio_iommu_group_viable(devs->sysfs_root, dev.iommu_group, &via);
        if (r < 0) {
                r = vfiod_error_set(err, -r, "cannot check group %d: %s", dev.iommu_group,
                                    strerror(-r));
                goto fail;
        }
        if (!via.viable) {
                r = vfiod_error_set(err, ENXIO,
                                    "group %d of '%s' is not viable: '%s' is bound to '%s'",
                                    dev.iommu_group, device, via.culprit, via.culprit_driver);
                goto fail;
        }
        r = vfiod_registry_members(devs, dev.iommu_group, &members);
        if (r < 0) {
                r = vfiod_error_set(err, -r, "cannot list group %d: %s", dev.iommu_group,
                                    strerror(-r));
                goto fail;
        }
        for (size_t i = 0; i < members->n; i++) {
                const struct kvfio_pci_dev *m = &members->devs[i];
                const struct vfiod_rule *mr;

                if (!kvfio_dev_is_vfio(m))
                        continue;
                mr = vfiod_policy_grant(s->policy, &c->peer, m, mode_bit(mode), why, sizeof(why));
                if (!mr) {
                        r = vfiod_error_set(err, EPERM,
                                            "device '%s' shares IOMMU group %d with '%s', which "
                                            "the policy does not allow you in %s mode: %s",
                                            device, dev.iommu_group, m->bdf, mode_name(mode), why);
                        goto fail;
                }
                if (vfiod_grant_narrow(&grant, &mr->grant) < 0) {
                        r = vfiod_error_set(err, ENOMEM, "out of memory");
                        goto fail;
                }
        }
        if (c->usage.leases >= lim->max_leases_per_client) {
                r = vfiod_error_set(err, ENOSPC, "MaxLeasesPerClient=%u reached",
                                    lim->max_leases_per_client);
                goto fail;
        }
        if (domain_id) {
                domain = vfiod_client_find_domain(c, domain_id);
                if (!domain) {
                        r = vfiod_client_no_domain(c, domain_id, err);
                        goto fail;
                }
                if (domain->mode && domain->mode != mode) {
                        r = vfiod_error_set(err, EINVAL,
                                            "domain %" PRIu64 " holds %s leases, not %s", domain_id,
                                            mode_name(domain->mode), mode_name(mode));
                        goto fail;
                }
                r = vfiod_lease_domain_usable(s, domain, err);
                if (r < 0)
                        goto fail;
        } else {
                if (c->usage.domains >= lim->max_domains_per_client) {
                        r = vfiod_error_set(err, ENOSPC, "MaxDomainsPerClient=%u reached",
                                            lim->max_domains_per_client);
                        goto fail;
                }
                r = vfiod_domain_new(devs->container_path, KVFIO_IOMMU_AUTO, ++s->next_object_id,
                                     &c->usage, &domain, err);
                if (r < 0)
                        goto fail;
                list_add_tail(&c->domains, &domain->link);
                domain->implicit = true;
                created = true;
        }

        l = vfiod_lease_alloc(c, domain, dev.iommu_group, mode, bdf);
        if (!l) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        l->group_fd = kvfio_group_open(dev.iommu_group, devs->vfio_dir);
        if (l->group_fd < 0) {
                r = l->group_fd == -EBUSY
                        ? vfiod_error_set(err, EBUSY, "group %d is open elsewhere", dev.iommu_group)
                        : vfiod_error_set(err, -l->group_fd, "cannot open group %d: %s",
                                          dev.iommu_group, strerror(-l->group_fd));
                goto fail;
        }
        r = vfiod_domain_attach(domain, l->group_fd, err);
        if (r < 0)
                goto fail;
        attached = true;
        r = lease_open_devs(l, members, err);
        if (r < 0)
                goto fail;
        if (!vfiod_lease_find_dev(l, bdf)) {
                r = vfiod_error_set(err, ENODEV, "device '%s' is not in group %d any more", device,
                                    dev.iommu_group);
                goto fail;
        }
        r = vfiod_registry_group_get(devs, dev.iommu_group, &g);
        if (r < 0) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        kvfio_pci_list_free(members);
        g->state = VFIOD_GROUP_LEASED;
        g->lease = l;
        /* What vfiod bound moves to the group: given back once it is FREE again. */
        g->bound = bound;
        g->n_bound = n_bound;
        l->group = g;
        /* The grant's windows move to the lease. */
        l->grant = grant;
        snprintf(l->rule, sizeof(l->rule), "%s", rule->name);
        l->id = ++s->next_object_id;
        domain->mode = mode;
        domain->n_leases++;
        c->usage.leases++;
        list_add_tail(&c->leases, &l->link_client);
        list_add_tail(&s->leases, &l->link_server);
        LOG_LEASE(LOG_NOTICE, l, l->device,
                  "leased device '%s' (group %d, %zu device(s)) in %s mode, domain %" PRIu64
                  ", granted by rule '%s'%s",
                  l->device, l->group_id, l->n_devs, mode_name(mode), domain->id, l->rule,
                  n_bound ? " (managed: bound to vfio-pci by vfiod)" : "");
        *ret = l;
        return 0;

fail:
        kvfio_pci_list_free(members);
        if (l) {
                lease_free_devs(l, s->loop);
                if (attached) {
                        int u = kvfio_group_unset_container(l->group_fd);
                        if (u == 0 && domain->n_leases == 0)
                                vfiod_domain_detached_last(domain);
                }
                safe_close(l->group_fd);
                free(l);
        }
        if (created)
                vfiod_domain_free(domain);
        vfiod_grant_done(&grant);
        /* Nothing of the group is open any more: the managed devices go back. */
        if (n_bound)
                vfiod_registry_restore(devs, dev.iommu_group, bound, n_bound);
        return r;
}

struct vfiod_lease_dev *vfiod_lease_find_dev(struct vfiod_lease *l, const char *bdf)
{
        char norm[KVFIO_NAME_MAX];

        if (!bdf || !*bdf)
                bdf = l->device;
        if (kvfio_dev_name_normalize(bdf, norm) < 0)
                return NULL;
        for (size_t i = 0; i < l->n_devs; i++)
                if (strcmp(l->devs[i].bdf, norm) == 0)
                        return &l->devs[i];
        return NULL;
}

/* ---- what a lease is granted ------------------------------------------------ */

int vfiod_lease_domain_grant(struct vfiod_client *c, const struct vfiod_domain *d,
                             struct vfiod_grant *ret, struct vfiod_lease **ret_first)
{
        struct vfiod_lease *l, *first = NULL;
        struct vfiod_grant g;

        vfiod_grant_init(&g);
        list_for_each_safe(l, it, &c->leases, struct vfiod_lease, link_client)
        {
                if (l->domain != d)
                        continue;
                if (!first)
                        first = l;
                if (vfiod_grant_narrow(&g, &l->grant) < 0) {
                        vfiod_grant_done(&g);
                        return -ENOMEM;
                }
        }
        *ret = g;
        *ret_first = first;
        return 0;
}

const char *vfiod_grant_windows_name(const struct vfiod_grant *g, char *buf, size_t size)
{
        size_t len = 0;

        snprintf(buf, size, "%s", !g->has_windows ? "any IOVA" : "none");
        if (!g->has_windows)
                return buf;
        for (size_t i = 0; i < g->n_windows; i++) {
                int n = snprintf(buf + len, size - len, "%s0x%" PRIx64 "-0x%" PRIx64, i ? " " : "",
                                 g->windows[i].first, g->windows[i].last);

                if (n < 0 || (size_t)n >= size - len) {
                        /* Cut: end with "..." where it fits. */
                        if (size >= 4)
                                snprintf(buf + (len + 4 <= size ? len : size - 4), 4, "...");
                        break;
                }
                len += (size_t)n;
        }
        return buf;
}

int vfiod_lease_grant_msg(struct vfiod_lease *l, struct vfiod_grant_msg *m)
{
        const struct vfiod_config_limits *lim = &l->client->server->policy->limits;
        const struct vfiod_lease_dev *dev = vfiod_lease_find_dev(l, NULL);
        struct vfiod_lease *first;

        *m = (struct vfiod_grant_msg){0};
        vfiod__lease_grant__init(&m->msg);
        if (vfiod_lease_domain_grant(l->client, l->domain, &m->grant, &first) < 0)
                return -ENOMEM;
        m->windows = calloc(m->grant.n_windows ? m->grant.n_windows : 1, sizeof(*m->windows));
        m->ptrs = calloc(m->grant.n_windows ? m->grant.n_windows : 1, sizeof(*m->ptrs));
        if (!m->windows || !m->ptrs) {
                vfiod_grant_msg_done(m);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->grant.n_windows; i++) {
                vfiod__iova_window__init(&m->windows[i]);
                m->windows[i].first = m->grant.windows[i].first;
                m->windows[i].last = m->grant.windows[i].last;
                m->ptrs[i] = &m->windows[i];
        }
        m->msg.rule = l->rule;
        /* The smaller of the rules' quota and the daemon's per-client limit. */
        m->msg.max_pinned_bytes = m->grant.max_pinned_bytes < lim->max_pinned_bytes_per_client
                                      ? m->grant.max_pinned_bytes
                                      : lim->max_pinned_bytes_per_client;
        m->msg.max_mappings = m->grant.max_mappings < lim->max_mappings_per_client
                                  ? m->grant.max_mappings
                                  : lim->max_mappings_per_client;
        m->msg.iova_restricted = m->grant.has_windows;
        m->msg.n_iova_windows = m->grant.n_windows;
        m->msg.iova_windows = m->ptrs;
        /* SetIrqs checks the lease's own (not its domain's). */
        m->msg.irq_types = l->grant.irq_types;
        for (uint32_t k = 0; dev && k < VFIOD_N_IRQ_INDEXES; k++)
                m->irq_counts[k] = dev->irqs[k].count;
        m->msg.n_irq_counts = VFIOD_N_IRQ_INDEXES;
        m->msg.irq_counts = m->irq_counts;
        return 0;
}

void vfiod_grant_msg_done(struct vfiod_grant_msg *m)
{
        if (!m)
                return;
        free(m->windows);
        free(m->ptrs);
        vfiod_grant_done(&m->grant);
        *m = (struct vfiod_grant_msg){0};
}

/* ---- release ---------------------------------------------------------------- */

int vfiod_lease_release(struct vfiod_lease *l, const char *why)
{
        struct vfiod_server *s = l->client->server;
        struct vfiod_domain *domain = l->domain;
        struct vfiod_group *g = l->group;
        int r;

        l->status = VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASING;
        ev_timer_stop(s->loop, &l->grace);
        LOG_LEASE(LOG_NOTICE, l, l->device, "releasing lease %" PRIu64 " of '%s' (group %d): %s",
                  l->id, l->device, l->group_id, why);

        /* 1. Interrupts off on every index; held eventfds closed. */
        for (size_t i = 0; i < l->n_devs; i++)
                dev_irqs_off(&l->devs[i], s->loop);
        LOG_LEASE(LOG_DEBUG, l, l->device, "release 1/5: interrupts disabled");

        /* 2. DMA: only when no other group of the domain still uses the mappings. */
        domain->n_leases--;
        if (domain->n_leases == 0)
                (void)vfiod_domain_unmap_everything(domain);
        LOG_LEASE(LOG_DEBUG, l, l->device, "release 2/5: DMA unmapped%s",
                  domain->n_leases ? " (skipped: other groups share the domain)" : "");

        /*
         * 3. Close our device fds, then detach: EBUSY = a client holds a device
         * fd. No reset here: until 4 succeeds a client may still touch the
         * device after any reset. The one that counts comes when nobody else
         * can: at the device's next open (vfio-pci) or in the sanitize (5).
         */
        for (size_t i = 0; i < l->n_devs; i++)
                l->devs[i].fd = safe_close(l->devs[i].fd);
        r = kvfio_group_unset_container(l->group_fd);
        g->state = VFIOD_GROUP_QUARANTINED;
        g->lease = NULL;
        g->last_lease = l->id;
        g->checks = 0;
        if (r == -EBUSY) {
                LOG_LEASE(LOG_WARNING, l, l->device,
                          "group %d quarantined: a device fd is still open (client %" PRIu64
                          " did not close it)",
                          l->group_id, l->client->id);
                /*
                 * The group fd moves to the quarantine record. The group stays in the
                 * domain, which takes no new lease or mapping until it leaves.
                 */
                g->wait = VFIOD_WAIT_UNSET;
                g->fd = TAKE_FD(l->group_fd);
                g->domain = domain->id;
        } else {
                if (r < 0)
                        LOG_LEASE(LOG_WARNING, l, l->device, "detaching group %d: %s", l->group_id,
                                  strerror(-r));
                else
                        LOG_LEASE(LOG_DEBUG, l, l->device, "release 3/5: group detached");
                domain_group_left(s, domain);
                /* 4. Close our group fd; group_proceed() re-opens it to check it is free. */
                l->group_fd = safe_close(l->group_fd);
                g->wait = VFIOD_WAIT_REOPEN;
        }
        if (domain->n_leases == 0 && g->wait != VFIOD_WAIT_UNSET)
                domain->mode = 0;

        l->client->usage.leases--;
        {
                /* 4 and 5 (or quarantine). */
                struct vfiod_log_about a;
                char device[KVFIO_NAME_MAX];
                int id = l->group_id;
                uint64_t lid = l->id;

                /* The lease is freed below: the log line keeps its own copy of the name. */
                snprintf(device, sizeof(device), "%s", l->device);
                a = vfiod_client_about(l->client, device, id, lid);
                lease_free_devs(l, s->loop);
                safe_close(l->group_fd);
                vfiod_lease_unlink(l);
                if (g->wait == VFIOD_WAIT_UNSET)
                        r = 1;
                else
                        r = group_proceed(s, g);
                if (r == 0)
                        vfiod_log_about(LOG_NOTICE, &a,
                                        "lease %" PRIu64 " released; group %d is free", lid, id);
                else
                        vfiod_log_about(LOG_NOTICE, &a,
                                        "lease %" PRIu64 " released; group %d is quarantined", lid,
                                        id);
        }
        domain_drop_if_implicit(s, domain);
        vfiod_server_quarantine_kick(s);
        return r;
}

static void revoke_now(struct vfiod_lease *l, Vfiod__ReleaseReason reason, const char *detail)
{
        struct vfiod_client *c = l->client;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__LeaseRevoked ev = VFIOD__LEASE_REVOKED__INIT;
        char device[KVFIO_NAME_MAX], why[300];
        _cleanup_free_ char *d = detail ? strdup(detail) : NULL;
        uint64_t id = l->id;

        snprintf(device, sizeof(device), "%s", l->device);
        snprintf(why, sizeof(why), "revoked (%s%s%s%s)",
                 reason == VFIOD__RELEASE_REASON__RELEASE_REASON_KERNEL_REQUEST  ? "kernel request"
                 : reason == VFIOD__RELEASE_REASON__RELEASE_REASON_ADMIN_REVOKE  ? "admin"
                 : reason == VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE ? "policy change"
                                                                                 : "unspecified",
                 d ? ": '" : "", d ? d : "", d ? "'" : "");
        (void)vfiod_lease_release(l, why);
        if (!vfiod_client_wants_events(c) || c->dead)
                return;
        ev.lease_id = id;
        ev.device = device;
        ev.reason = reason;
        ev.detail = d ? d : "";
        env.body_case = VFIOD__ENVELOPE__BODY_LEASE_REVOKED;
        env.lease_revoked = &ev;
        (void)vfiod_client_send(c, &env, NULL, 0);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        struct vfiod_lease *l = w->data;

        LOG_LEASE(LOG_NOTICE, l, l->device, "lease %" PRIu64 ": grace period over", l->id);
        revoke_now(l, l->revoke_reason, l->revoke_detail);
}

void vfiod_lease_revoke(struct vfiod_lease *l, Vfiod__ReleaseReason reason, const char *detail)
{
        struct vfiod_client *c = l->client;
        uint32_t grace = c->server->policy->limits.release_grace_ms;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__ReleaseRequested ev = VFIOD__RELEASE_REQUESTED__INIT;

        if (l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE)
                return; /* already on its way */
        if (!vfiod_client_wants_events(c) || grace == 0 || c->dead) {
                revoke_now(l, reason, detail);
                return;
        }
        free(l->revoke_detail);
        l->revoke_detail = detail ? strdup(detail) : NULL;
        l->revoke_reason = reason;
        l->status = VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED;
        ev.lease_id = l->id;
        ev.device = l->device;
        ev.reason = reason;
        ev.grace_ms = grace;
        ev.detail = (char *)(detail ? detail : "");
        env.body_case = VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED;
        env.release_requested = &ev;
        LOG_LEASE(LOG_NOTICE, l, l->device, "asking for lease %" PRIu64 " back within %u ms%s%s%s",
                  l->id, grace, detail ? ": '" : "", detail ? detail : "", detail ? "'" : "");
        ev_timer_init(&l->grace, grace_cb, grace / 1000.0, 0.);
        l->grace.data = l;
        ev_timer_start(c->server->loop, &l->grace);
        (void)vfiod_client_send(c, &env, NULL, 0);
}

/* ---- interrupts on the client's behalf ------------------------------------- */

static void close_fds(int *fds, uint32_t n)
{
        for (uint32_t i = 0; fds && i < n; i++)
                fds[i] = safe_close(fds[i]);
}

int vfiod_lease_set_irqs_take(struct vfiod_lease_dev *dev, uint32_t index, uint32_t start,
                              uint32_t count, uint32_t action, uint32_t data, const uint8_t *bools,
                              int *fds, struct vfiod_error *err)
{
        uint32_t vfio_action;
        const struct kvfio_irq_info *info;
        int r;

        if (index == VFIO_PCI_ERR_IRQ_INDEX || index == VFIO_PCI_REQ_IRQ_INDEX) {
                r = vfiod_error_set(err, EPERM, "the %s interrupt belongs to the daemon",
                                    kvfio_irq_index_name(index));
                goto fail;
        }
        if (index >= VFIOD_N_CLIENT_IRQ_INDEXES) {
                r = vfiod_error_set(err, EINVAL, "unknown interrupt index %u", index);
                goto fail;
        }
        if (count > 0 && !(dev->lease->grant.irq_types & (1u << index))) {
                char types[32];

                r = vfiod_error_set(
                    err, EPERM,
                    "the policy (rule '%s') allows you only these interrupts: %s; "
                    "not %s",
                    dev->lease->grant.irq_rule,
                    vfiod_irq_types_name(dev->lease->grant.irq_types, types, sizeof(types)),
                    kvfio_irq_index_name(index));
                {
                        struct vfiod_log_about a = vfiod_client_about(
                            dev->lease->client, dev->bdf, dev->lease->group_id, dev->lease->id);
                        vfiod_log_about(LOG_NOTICE, &a, "refused %s on '%s': %s",
                                        kvfio_irq_index_name(index), dev->bdf,
                                        err ? err->reason : "");
                }
                goto fail;
        }
        info = &dev->irqs[index];
        if (info->count == 0) {
                r = vfiod_error_set(err, EINVAL, "device '%s' has no %s interrupt", dev->bdf,
                                    kvfio_irq_index_name(index));
                goto fail;
        }
        switch (action) {
        case VFIOD__IRQ_ACTION__IRQ_ACTION_MASK:
                vfio_action = VFIO_IRQ_SET_ACTION_MASK;
                break;
        case VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK:
                vfio_action = VFIO_IRQ_SET_ACTION_UNMASK;
                break;
        case VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER:
                vfio_action = VFIO_IRQ_SET_ACTION_TRIGGER;
                break;
        default:
                r = vfiod_error_set(err, EINVAL, "bad interrupt action %u", action);
                goto fail;
        }
        if (count == 0) {
                if (action != VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER ||
                    data != VFIOD__IRQ_DATA__IRQ_DATA_NONE || start != 0) {
                        r = vfiod_error_set(err, EINVAL,
                                            "count 0 is only for disabling (TRIGGER, data NONE, "
                                            "start 0)");
                        goto fail;
                }
                r = kvfio_irq_disable(dev->fd, index);
                if (r < 0)
                        return vfiod_error_set(err, -r, "disabling %s failed: %s",
                                               kvfio_irq_index_name(index), strerror(-r));
                close_client_irq_fds(dev, index);
                return 0;
        }
        if (start > info->count || count > info->count - start) {
                r = vfiod_error_set(err, EINVAL, "vectors %u..%u of %s: the device has %u", start,
                                    start + count - 1, kvfio_irq_index_name(index), info->count);
                goto fail;
        }
        switch (data) {
        case VFIOD__IRQ_DATA__IRQ_DATA_NONE:
                r = action == VFIOD__IRQ_ACTION__IRQ_ACTION_MASK
                        ? kvfio_irq_mask(dev->fd, index, start, count)
                    : action == VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK
                        ? kvfio_irq_unmask(dev->fd, index, start, count)
                        : kvfio_irq_trigger(dev->fd, index, start, count);
                break;
        case VFIOD__IRQ_DATA__IRQ_DATA_BOOL:
                r = kvfio_irq_set_bools(dev->fd, index, vfio_action, start, count, bools);
                break;
        case VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD:
                if (action == VFIOD__IRQ_ACTION__IRQ_ACTION_MASK) {
                        r = vfiod_error_set(err, EINVAL, "MASK takes no eventfd");
                        goto fail;
                }
                if (action == VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK) {
                        if (count != 1 || start != 0) {
                                r = vfiod_error_set(err, EINVAL,
                                                    "an UNMASK eventfd is for vector 0 only");
                                goto fail;
                        }
                        r = kvfio_irq_unmask_eventfd(dev->fd, index, 0, fds[0]);
                        if (r < 0)
                                break;
                        /* The eventfd is owned by the lease device while assigned. */
                        close_and_replace(dev->unmask_fds[index], fds[0]);
                        return 0;
                }
                if (!dev->trigger_fds[index]) {
                        dev->trigger_fds[index] = malloc(info->count * sizeof(int));
                        if (!dev->trigger_fds[index]) {
                                r = vfiod_error_set(err, ENOMEM, "out of memory");
                                goto fail;
                        }
                        for (uint32_t i = 0; i < info->count; i++)
                                dev->trigger_fds[index][i] = -EBADF;
                }
                r = kvfio_irq_set_eventfds(dev->fd, index, start, count, fds);
                if (r < 0)
                        break;
                /* The kernel took its references; we keep ours while assigned. */
                for (uint32_t i = 0; i < count; i++) {
                        close_and_replace(dev->trigger_fds[index][start + i], fds[i]);
                }
                return 0;
        default:
                r = vfiod_error_set(err, EINVAL, "bad interrupt data type %u", data);
                goto fail;
        }
        if (r < 0) {
                r = vfiod_error_set(err, -r, "SET_IRQS on %s of '%s' failed: %s",
                                    kvfio_irq_index_name(index), dev->bdf, strerror(-r));
                goto fail;
        }
        return 0;

fail:
        if (data == VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD)
                close_fds(fds, count);
        return r;
}
