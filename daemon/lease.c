/* SPDX-License-Identifier: MIT */
#include "daemon/lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/domain.h"
#include "daemon/policy.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "kernel/container.h"
#include "kernel/group.h"
#include "kernel/iommufd.h"
#include "kernel/irq.h"
#include "proto/macro.h"
#include "proto/names.h"

#define LOG_LEASE(prio, l, dev, ...)                                                \
        do {                                                                        \
                struct vfiod_log_about _a =                                         \
                    vfiod_client_about((l)->client, (dev), (l)->group_id, (l)->id); \
                vfiod_log_about((prio), &_a, __VA_ARGS__);                          \
        } while (0)

static unsigned mode_bit(int mode)
{
        return mode == VFIOD__MODE__MODE_DIRECT     ? VFIOD_MODE_BIT_DIRECT
               : mode == VFIOD__MODE__MODE_BROKERED ? VFIOD_MODE_BIT_BROKERED
               : mode == VFIOD__MODE__MODE_GROUP    ? VFIOD_MODE_BIT_GROUP
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

/* Closes every eventfd the device holds, the client's and the daemon's (no ioctl). */
static void dev_close_irq_fds(struct vfiod_lease_dev *dev, struct ev_loop *loop)
{
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

/* Reads the device's interrupt indexes (count 0: none; at most KVFIO_IRQ_MAX_COUNT vectors). */
static void dev_read_irqs(struct vfiod_lease_dev *dev)
{
        for (uint32_t k = 0; k < VFIOD_N_IRQ_INDEXES && k < dev->info.num_irqs; k++) {
                if (kvfio_device_get_irq_info(dev->fd, k, &dev->irqs[k]) < 0)
                        dev->irqs[k] = (struct kvfio_irq_info){.index = k};
                if (dev->irqs[k].count > KVFIO_IRQ_MAX_COUNT)
                        dev->irqs[k].count = KVFIO_IRQ_MAX_COUNT;
        }
}

/* A device of lease l with no fd yet. */
static void dev_init(struct vfiod_lease_dev *dev, struct vfiod_lease *l)
{
        dev->lease = l;
        dev->fd = dev->req_fd = dev->err_fd = -EBADF;
        for (int k = 0; k < VFIOD_N_CLIENT_IRQ_INDEXES; k++)
                dev->unmask_fds[k] = -EBADF;
}

/* The trigger eventfds of index, every vector -1 at first; -ENOMEM. */
static int dev_trigger_fds(struct vfiod_lease_dev *dev, uint32_t index)
{
        if (dev->trigger_fds[index])
                return 0;
        dev->trigger_fds[index] = malloc(dev->irqs[index].count * sizeof(int));
        if (!dev->trigger_fds[index])
                return -ENOMEM;
        for (uint32_t i = 0; i < dev->irqs[index].count; i++)
                dev->trigger_fds[index][i] = -EBADF;
        return 0;
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
        dev_close_irq_fds(dev, loop);
}

/* ---- resets ------------------------------------------------------------------ */

int vfiod_lease_reset_dev(struct vfiod_lease_dev *dev)
{
        return vfiod_group_reset_device(dev->fd, dev->bdf, dev->lease->group_id,
                                        dev->lease->group_fd);
}

/* ---- quarantine ---------------------------------------------------------------- */

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

/*
 * Takes the group on from where it waits (g->wait): the unset, with what
 * leaving its domain means for the domain, then vfiod_group_settle().
 * Returns 0 when it is FREE (the entry is freed), 1 when it stays QUARANTINED.
 */
static int group_proceed(struct vfiod_server *s, struct vfiod_group *g)
{
        if (g->wait == VFIOD_WAIT_UNSET || g->wait == VFIOD_WAIT_CDEV) {
                struct vfiod_domain *d = vfiod_server_find_domain(s, g->domain);

                if (g->wait == VFIOD_WAIT_CDEV
                        ? vfiod_group_cdev_detach(g, s->devices->vfio_dir) > 0
                        : vfiod_group_detach(g) > 0)
                        return 1;
                domain_group_left(s, d);
                domain_drop_if_implicit(s, d);
        }
        return vfiod_group_settle(s->devices, g);
}

void vfiod_quarantine_check(struct vfiod_server *s)
{
        struct vfiod_group *g;

        list_for_each_safe (g, it, &s->devices->groups, struct vfiod_group, link) {
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
                dev_init(dev, l);
                snprintf(dev->bdf, sizeof(dev->bdf), "%s", m->bdf);
                /* GROUP: the client opens its devices itself; the lease knows their names. */
                if (l->mode == VFIOD__MODE__MODE_GROUP)
                        continue;
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
                if (vfiod_dev_reset_at_open(m, &dev->info))
                        LOG_LEASE(LOG_DEBUG, l, m->bdf, "'%s' was reset as it opened", m->bdf);
                else if (vfiod_dev_plain_vfio_pci(m)) {
                        r = vfiod_group_reset_device(dev->fd, m->bdf, l->group_id, l->group_fd);
                        if (r < 0)
                                LOG_LEASE(LOG_WARNING, l, m->bdf,
                                          "'%s' was not reset as it opened, and resetting it "
                                          "failed: %s",
                                          m->bdf, strerror(-r));
                        else
                                LOG_LEASE(LOG_DEBUG, l, m->bdf,
                                          "'%s' was not reset as it opened: reset it", m->bdf);
                }
                dev_read_irqs(dev);
                vfiod_lease_dev_arm_events(dev);
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
                (void)vfiod_registry_refresh(s->devices, m->bdf);
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

bool vfiod_lease_offer(struct vfiod_client *c, const struct kvfio_pci_list *list,
                       const struct kvfio_pci_dev *dev, unsigned *ret_modes, bool *ret_managed)
{
        const struct vfiod_policy *policy = c->server->policy;
        unsigned m = vfiod_policy_modes(policy, &c->peer, dev);
        const struct vfiod_rule *mr;
        bool managed = false;

        if (!m)
                return false;
        /* As Acquire's grant: every vfio-pci device of the group must allow the mode. */
        if (kvfio_dev_is_vfio(dev) && dev->iommu_group >= 0) {
                const size_t *idx;
                ssize_t n = vfiod_registry_group_index(c->server->devices, dev->iommu_group, &idx);

                for (ssize_t j = 0; j < n; j++)
                        if (&list->devs[idx[j]] != dev && kvfio_dev_is_vfio(&list->devs[idx[j]]))
                                m &= vfiod_policy_modes(policy, &c->peer, &list->devs[idx[j]]);
        }
        if (!kvfio_dev_is_vfio(dev) && dev->iommu_group >= 0) {
                mr = vfiod_policy_grant(policy, &c->peer, dev, m, NULL, 0);
                managed = mr && mr->grant.managed;
        }
        *ret_modes = m;
        *ret_managed = managed;
        return true;
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
        /* The interface too (Interfaces=). */
        if (!(grant.interfaces & (1u << l->iface)))
                goto denied;
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
        l->iface = VFIOD__INTERFACE__INTERFACE_LEGACY;
        l->cdev = -1;
        snprintf(l->device, sizeof(l->device), "%s", device);
        return l;
}

/* The lease joins its domain, its client's leases and the server's. */
static void lease_link(struct vfiod_lease *l)
{
        if (l->domain) {
                l->domain->mode = l->mode;
                l->domain->n_leases++;
        }
        l->client->usage.leases++;
        list_add_tail(&l->client->leases, &l->link_client);
        vfiod_server_add_lease(l->client->server, l);
}

/* An Acquire: what it checked, then what it holds before the lease does. */
struct acquire {
        struct vfiod_client *c;
        const char *device; /* as the client gave it, for messages */
        int mode;
        int iface; /* Vfiod__Interface asked for; LEGACY or IOMMUFD once decided */
        char bdf[KVFIO_NAME_MAX];
        struct kvfio_pci_dev dev;
        const struct vfiod_rule *rule; /* the rule that grants dev */
        struct kvfio_pci_list *members;
        struct vfiod_grant grant;  /* the stricter of the rules of every VFIO member */
        struct vfiod_bound *bound; /* Managed=yes: what vfiod bound to vfio-pci */
        size_t n_bound;
        struct vfiod_domain *domain;
        bool created; /* the domain is new (implicit) */
};

/* The device: its name, the mode, the policy, its IOMMU group, its driver. */
static int acquire_check_device(struct acquire *a, struct vfiod_error *err)
{
        struct vfiod_server *s = a->c->server;
        char why[200];
        int r;

        if (kvfio_dev_name_normalize(a->device, a->bdf) < 0)
                return vfiod_error_set(err, EINVAL, "'%s' is not a PCI address or an mdev UUID",
                                       a->device);
        if (!mode_bit(a->mode))
                return vfiod_error_set(err, EINVAL, "mode must be DIRECT, BROKERED or GROUP");
        if (a->iface == VFIOD__INTERFACE__INTERFACE_UNSPECIFIED)
                a->iface = VFIOD__INTERFACE__INTERFACE_LEGACY;
        if (!vfiod_proto_interface_to_string(a->iface))
                return vfiod_error_set(err, EINVAL, "unknown interface %d", a->iface);
        /* GROUP hands out the group: the legacy interface's. */
        if (a->mode == VFIOD__MODE__MODE_GROUP && a->iface == VFIOD__INTERFACE__INTERFACE_ANY)
                a->iface = VFIOD__INTERFACE__INTERFACE_LEGACY;
        if (a->mode == VFIOD__MODE__MODE_GROUP && a->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                return vfiod_error_set(err, EINVAL, "GROUP mode is of the legacy interface only");
        r = vfiod_registry_read(s->devices, a->bdf, &a->dev);
        if (r == -ENODEV)
                return vfiod_error_set(err, ENOENT, "no device '%s'", a->device);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot read device '%s': %s", a->device,
                                       strerror(-r));
        a->rule = vfiod_policy_grant(s->policy, &a->c->peer, &a->dev, mode_bit(a->mode), why,
                                     sizeof(why));
        if (!a->rule) {
                unsigned modes = vfiod_policy_modes(s->policy, &a->c->peer, &a->dev);

                return vfiod_error_set(err, EPERM,
                                       "the policy does not allow you device '%s' in %s mode "
                                       "(allowed: %s): %s",
                                       a->device, mode_name(a->mode), vfiod_modes_name(modes), why);
        }
        if (a->dev.iommu_group < 0)
                return vfiod_error_set(err, ENXIO, "device '%s' has no IOMMU group", a->device);
        if (!kvfio_dev_is_vfio(&a->dev) && !a->rule->grant.managed)
                return vfiod_error_set(err, ENXIO,
                                       "device '%s' is not bound to vfio-pci (%s%s%s) and rule "
                                       "'%s' does not say Managed=yes",
                                       a->device, a->dev.driver[0] ? "driver '" : "no driver",
                                       a->dev.driver, a->dev.driver[0] ? "'" : "", a->rule->name);
        return 0;
}

/* The group is neither leased nor quarantined (a quarantined one is looked at again first). */
static int acquire_check_group(struct acquire *a, struct vfiod_error *err)
{
        struct vfiod_server *s = a->c->server;
        struct vfiod_group *g = vfiod_registry_group(s->devices, a->dev.iommu_group);

        if (g && g->state == VFIOD_GROUP_LEASED)
                return vfiod_error_set(
                    err, EBUSY, "device '%s' (group %d) is leased%s", a->device, a->dev.iommu_group,
                    g->lease && g->lease->client == a->c ? " to you already" : "");
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
                                       a->device, a->dev.iommu_group);
        return 0;
}

/* The group is viable and the policy allows the peer each of its VFIO members: a->grant. */
static int acquire_group_grant(struct acquire *a, struct vfiod_error *err)
{
        struct vfiod_server *s = a->c->server;
        int group = a->dev.iommu_group;
        struct kvfio_group_viability via;
        char why[200];
        int r;

        r = vfiod_registry_viable(s->devices, group, &via);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot check group %d: %s", group, strerror(-r));
        if (!via.viable)
                return vfiod_error_set(err, ENXIO,
                                       "group %d of '%s' is not viable: '%s' is bound to '%s'",
                                       group, a->device, via.culprit, via.culprit_driver);
        r = vfiod_registry_members(s->devices, group, &a->members);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot list group %d: %s", group, strerror(-r));
        for (size_t i = 0; i < a->members->n; i++) {
                const struct kvfio_pci_dev *m = &a->members->devs[i];
                const struct vfiod_rule *mr;

                if (!kvfio_dev_is_vfio(m))
                        continue;
                mr = vfiod_policy_grant(s->policy, &a->c->peer, m, mode_bit(a->mode), why,
                                        sizeof(why));
                if (!mr)
                        return vfiod_error_set(err, EPERM,
                                               "device '%s' shares IOMMU group %d with '%s', "
                                               "which the policy does not allow you in %s mode: %s",
                                               a->device, group, m->bdf, mode_name(a->mode), why);
                if (vfiod_grant_narrow(&a->grant, &mr->grant) < 0)
                        return vfiod_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

/*
 * The interface: ANY becomes IOMMUFD when the device has a cdev and every
 * rule of the group allows it, else LEGACY; the one asked for (or decided)
 * must be allowed (EPERM) and offered by the device (ENXIO).
 */
static int acquire_interface(struct acquire *a, struct vfiod_error *err)
{
        bool has_cdev = a->dev.vfio_cdev >= 0 || !kvfio_dev_is_vfio(&a->dev);
        unsigned allowed = a->grant.interfaces;

        if (a->iface == VFIOD__INTERFACE__INTERFACE_ANY)
                a->iface = (allowed & VFIOD_IFACE_BIT_IOMMUFD) && a->dev.vfio_cdev >= 0
                               ? VFIOD__INTERFACE__INTERFACE_IOMMUFD
                               : VFIOD__INTERFACE__INTERFACE_LEGACY;
        if (!(allowed & (1u << a->iface)))
                return vfiod_error_set(err, EPERM,
                                       "the policy does not allow you device '%s' through the %s "
                                       "interface (rule '%s' says Interfaces=%s)",
                                       a->device, vfiod_proto_interface_to_string(a->iface),
                                       a->grant.iface_rule, vfiod_interfaces_name(allowed));
        /* A managed device gets its cdev when vfiod binds it to vfio-pci. */
        if (a->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD && !has_cdev)
                return vfiod_error_set(err, ENXIO,
                                       "device '%s' offers no iommufd interface (no "
                                       "vfio-dev/vfioN in sysfs: a kernel without "
                                       "CONFIG_VFIO_DEVICE_CDEV)",
                                       a->device);
        return 0;
}

/* MaxLeasesPerClient, then the domain: the client's domain_id, or a new implicit one (0). */
static int acquire_domain(struct acquire *a, uint64_t domain_id, struct vfiod_error *err)
{
        struct vfiod_client *c = a->c;
        struct vfiod_server *s = c->server;
        const struct vfiod_config_limits *lim = vfiod_server_limits(s);
        struct vfiod_domain *domain;
        int r;

        if (c->usage.leases >= lim->max_leases_per_client)
                return vfiod_error_set(err, ENOSPC, "MaxLeasesPerClient=%u reached",
                                       lim->max_leases_per_client);
        /* GROUP: the client brings its own container; the lease has no domain. */
        if (a->mode == VFIOD__MODE__MODE_GROUP) {
                if (domain_id)
                        return vfiod_error_set(err, EINVAL,
                                               "a GROUP lease has no domain: domain_id must be 0, "
                                               "not %" PRIu64,
                                               domain_id);
                return 0;
        }
        if (domain_id) {
                domain = vfiod_client_find_domain(c, domain_id);
                if (!domain)
                        return vfiod_client_no_domain(c, domain_id, err);
                if (domain->mode && domain->mode != a->mode)
                        return vfiod_error_set(
                            err, EINVAL, "domain %" PRIu64 " holds %s leases, not %s", domain_id,
                            mode_name(domain->mode), mode_name(a->mode));
                if (domain->iface != a->iface)
                        return vfiod_error_set(
                            err, EINVAL, "domain %" PRIu64 " is of the %s interface, not %s",
                            domain_id, vfiod_proto_interface_to_string(domain->iface),
                            vfiod_proto_interface_to_string(a->iface));
                r = vfiod_lease_domain_usable(s, domain, err);
                if (r < 0)
                        return r;
                a->domain = domain;
                return 0;
        }
        r = vfiod_client_domain_new(c, KVFIO_IOMMU_AUTO, a->iface, &domain, err);
        if (r < 0)
                return r;
        domain->implicit = true;
        a->domain = domain;
        a->created = true;
        return 0;
}

/* Undoes lease_open(): the device fds, the attach (when done), the group fd. */
static void lease_unopen(struct vfiod_lease *l, bool attached)
{
        lease_free_devs(l, l->client->server->loop);
        /* An IOMMUFD lease's device left its IOAS as its fd closed. */
        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                if (l->domain->n_leases == 0)
                        vfiod_domain_detached_last(l->domain);
                return;
        }
        if (attached && l->domain) {
                int u = kvfio_group_unset_container(l->group_fd);
                if (u == 0 && l->domain->n_leases == 0)
                        vfiod_domain_detached_last(l->domain);
        }
        l->group_fd = safe_close(l->group_fd);
}

/*
 * An IOMMUFD lease: opens the acquired device's cdev; BROKERED binds it to
 * the domain's iommufd, attaches it to its IOAS, reads it and arms its
 * REQ/ERR; DIRECT leaves it unbound for the client (QEMU binds it itself).
 */
static int lease_open_cdev(struct vfiod_lease *l, const char *device, struct vfiod_error *err)
{
        struct vfiod_registry *devs = l->client->server->devices;
        struct vfiod_lease_dev *dev;
        int r;

        /* Read now: a Managed=yes device got its cdev when vfiod bound it. */
        l->cdev = kvfio_dev_vfio_cdev(devs->sysfs_root, l->device);
        if (l->cdev < 0)
                return vfiod_error_set(err, ENXIO, "device '%s' has no cdev: %s", device,
                                       strerror(-l->cdev));
        l->devs = calloc(1, sizeof(*l->devs));
        if (!l->devs)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        dev = &l->devs[l->n_devs++];
        dev_init(dev, l);
        snprintf(dev->bdf, sizeof(dev->bdf), "%s", l->device);
        dev->fd = kvfio_cdev_open(l->cdev, devs->cdev_dir);
        if (dev->fd < 0)
                return vfiod_error_set(err, -dev->fd, "cannot open '%s/vfio%d' of device '%s': %s",
                                       devs->cdev_dir, l->cdev, device, strerror(-dev->fd));
        if (l->mode == VFIOD__MODE__MODE_DIRECT)
                return 0;
        /* The bind is the device's first open: vfio-pci resets it. */
        r = vfiod_domain_attach_cdev(l->domain, dev->fd, err);
        if (r < 0)
                return r;
        r = kvfio_device_get_info(dev->fd, &dev->info);
        if (r < 0)
                return vfiod_error_set(err, -r, "cannot query device '%s': %s", device,
                                       strerror(-r));
        if (dev->info.reset_supported)
                LOG_LEASE(LOG_DEBUG, l, dev->bdf, "'%s' was reset as it opened", dev->bdf);
        else if (vfiod_group_reset_device(dev->fd, dev->bdf, l->group_id, l->group_fd) == 0)
                LOG_LEASE(LOG_DEBUG, l, dev->bdf, "'%s' was not reset as it opened: reset it",
                          dev->bdf);
        dev_read_irqs(dev);
        vfiod_lease_dev_arm_events(dev);
        return 0;
}

/*
 * GROUP: the group the client gets must be viable and attached to nothing,
 * as VFIO_GROUP_SET_CONTAINER in the client's hands needs it.
 */
static int group_check_unattached(struct vfiod_lease *l, struct vfiod_error *err)
{
        struct kvfio_group_status st;
        int r = kvfio_group_get_status(l->group_fd, &st);

        if (r < 0)
                return vfiod_error_set(err, -r, "cannot read the status of group %d: %s",
                                       l->group_id, strerror(-r));
        if (!st.viable)
                return vfiod_error_set(err, ENXIO, "group %d is not viable", l->group_id);
        if (st.container_set)
                return vfiod_error_set(err, EBUSY, "group %d is attached to a container already",
                                       l->group_id);
        return 0;
}

/*
 * Opens the lease's group, attaches it to its domain, opens its VFIO members
 * and arms their REQ/ERR; the acquired device must be one of them. GROUP:
 * opens the group, checks it is viable and unattached, and only names the
 * members (no device fd). Undone on failure.
 */
static int lease_open(struct vfiod_lease *l, const struct kvfio_pci_list *members,
                      const char *device, struct vfiod_error *err)
{
        struct vfiod_registry *devs = l->client->server->devices;
        int r;

        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                r = lease_open_cdev(l, device, err);
                if (r < 0)
                        lease_unopen(l, false);
                return r;
        }

        l->group_fd = kvfio_group_open(l->group_id, devs->vfio_dir);
        if (l->group_fd < 0)
                return l->group_fd == -EBUSY
                           ? vfiod_error_set(err, EBUSY, "group %d is open elsewhere", l->group_id)
                           : vfiod_error_set(err, -l->group_fd, "cannot open group %d: %s",
                                             l->group_id, strerror(-l->group_fd));
        if (l->domain)
                r = vfiod_domain_attach(l->domain, l->group_fd, err);
        else
                r = group_check_unattached(l, err);
        if (r < 0) {
                lease_unopen(l, false);
                return r;
        }
        r = lease_open_devs(l, members, err);
        if (r == 0 && !vfiod_lease_find_dev(l, l->device))
                r = vfiod_error_set(err, ENODEV, "device '%s' is not in group %d any more", device,
                                    l->group_id);
        if (r < 0)
                lease_unopen(l, true);
        return r;
}

/* The lease takes the group (with what vfiod bound), the grant, its id and its lists. */
static void acquire_commit(struct acquire *a, struct vfiod_lease *l, struct vfiod_group *g)
{
        struct vfiod_client *c = a->c;
        struct vfiod_server *s = c->server;

        kvfio_pci_list_free(a->members);
        a->members = NULL;
        g->state = VFIOD_GROUP_LEASED;
        g->lease = l;
        /* What vfiod bound moves to the group: given back once it is FREE again. */
        g->bound = a->bound;
        g->n_bound = a->n_bound;
        l->group = g;
        /* The grant's windows move to the lease. */
        l->grant = a->grant;
        snprintf(l->rule, sizeof(l->rule), "%s", a->rule->name);
        l->id = vfiod_server_new_object_id(s);
        lease_link(l);
        LOG_LEASE(LOG_NOTICE, l, l->device,
                  "leased device '%s' (group %d, %zu device(s)) in %s mode through the %s "
                  "interface, domain %" PRIu64 ", granted by rule '%s'%s",
                  l->device, l->group_id, l->n_devs, mode_name(a->mode),
                  vfiod_proto_interface_to_string(l->iface), a->domain ? a->domain->id : 0, l->rule,
                  a->n_bound ? " (managed: bound to vfio-pci by vfiod)" : "");
}

/*
 * DIRECT and GROUP: the holder maps DMA itself, against its own
 * RLIMIT_MEMLOCK; when a rule of the group sets MaxPinnedBytes=, vfiod
 * raises the limit of the process that connected to it (the smallest of
 * them), never lowering it. Not fatal: the lease stands, and the log and
 * LeaseGrant say why.
 */
static void lease_raise_memlock(struct vfiod_lease *l)
{
        struct vfiod_client *c = l->client;
        uint64_t want = l->grant.max_pinned_bytes, now = 0;
        int r;

        if (l->mode == VFIOD__MODE__MODE_BROKERED || want == VFIOD_NO_QUOTA_BYTES)
                return;
        r = vfiod_peer_raise_memlock(c->fd, c->peer.pid, want, &now);
        if (r < 0) {
                snprintf(l->memlock_error, sizeof(l->memlock_error), "%s",
                         r == -EPERM   ? "vfiod lacks CAP_SYS_RESOURCE to raise the hard limit"
                         : r == -ESRCH ? "the process that connected is gone"
                                       : strerror(-r));
                LOG_LEASE(LOG_WARNING, l, l->device,
                          "cannot raise RLIMIT_MEMLOCK of pid %d to %" PRIu64
                          " bytes (MaxPinnedBytes= of rule '%s'): %s",
                          (int)c->peer.pid, want, l->grant.pinned_rule, l->memlock_error);
                return;
        }
        l->memlock_bytes = now;
        LOG_LEASE(LOG_NOTICE, l, l->device,
                  "RLIMIT_MEMLOCK of pid %d is %" PRIu64 " bytes%s (MaxPinnedBytes=%" PRIu64
                  " of rule '%s')",
                  (int)c->peer.pid, now, now == UINT64_MAX ? " (unlimited)" : "", want,
                  l->grant.pinned_rule);
}

/* A failed Acquire gives back what it held (the lease, if any, is undone already). */
static void acquire_undo(struct acquire *a)
{
        kvfio_pci_list_free(a->members);
        if (a->created)
                vfiod_domain_free(a->domain);
        vfiod_grant_done(&a->grant);
        /* Nothing of the group is open any more: the managed devices go back. */
        if (a->n_bound)
                vfiod_registry_restore(a->c->server->devices, a->dev.iommu_group, a->bound,
                                       a->n_bound);
}

int vfiod_lease_acquire(struct vfiod_client *c, const char *device, uint64_t domain_id, int mode,
                        int iface, struct vfiod_lease **ret, struct vfiod_error *err)
{
        struct acquire a = {.c = c, .device = device, .mode = mode, .iface = iface};
        struct vfiod_lease *l;
        struct vfiod_group *g;
        int r;

        /* Checks first: nothing is held yet. */
        vfiod_grant_init(&a.grant);
        r = acquire_check_device(&a, err);
        if (r < 0)
                return r;
        r = acquire_check_group(&a, err);
        if (r < 0)
                return r;
        if (a.rule->grant.managed) {
                /* Binds what is not on vfio-pci yet; undone below when the acquire fails. */
                r = managed_bind(c, &a.dev, mode, &a.bound, &a.n_bound, err);
                if (r < 0)
                        return r;
        }
        r = acquire_group_grant(&a, err);
        if (r < 0)
                goto fail;
        r = acquire_interface(&a, err);
        if (r < 0)
                goto fail;
        r = acquire_domain(&a, domain_id, err);
        if (r < 0)
                goto fail;

        /* Then the opens. */
        l = vfiod_lease_alloc(c, a.domain, a.dev.iommu_group, mode, a.bdf);
        if (!l) {
                r = vfiod_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        l->iface = a.iface;
        r = lease_open(l, a.members, device, err);
        if (r == 0 && vfiod_registry_group_get(c->server->devices, a.dev.iommu_group, &g) < 0) {
                lease_unopen(l, true);
                r = vfiod_error_set(err, ENOMEM, "out of memory");
        }
        if (r < 0) {
                free(l);
                goto fail;
        }
        acquire_commit(&a, l, g);
        lease_raise_memlock(l);
        *ret = l;
        return 0;

fail:
        acquire_undo(&a);
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
        list_for_each_safe (l, it, &c->leases, struct vfiod_lease, link_client) {
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
        const struct vfiod_config_limits *lim = vfiod_server_limits(l->client->server);
        const struct vfiod_lease_dev *dev = vfiod_lease_find_dev(l, NULL);
        struct vfiod_lease *first;

        *m = (struct vfiod_grant_msg){0};
        vfiod__lease_grant__init(&m->msg);
        /* GROUP: no domain, the lease's own grant. */
        if (!l->domain) {
                vfiod_grant_init(&m->grant);
                if (vfiod_grant_narrow(&m->grant, &l->grant) < 0) {
                        vfiod_grant_done(&m->grant);
                        return -ENOMEM;
                }
        } else if (vfiod_lease_domain_grant(l->client, l->domain, &m->grant, &first) < 0)
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
        m->msg.memlock_bytes = l->memlock_bytes;
        m->msg.memlock_error = l->memlock_error;
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

/*
 * Before release step 1, an IOMMUFD DIRECT lease: the client may never have
 * bound the cdev. An unbound copy would be a key to the device for later
 * (it could bind once the device is free), and the kernel does not count
 * it; bound, it keeps the group from opening until closed. The daemon's fd
 * is the same open file as the client's copy: binding it binds theirs.
 */
static void release_cdev_bind(struct vfiod_lease *l)
{
        struct vfiod_lease_dev *dev = &l->devs[0];
        int r;

        if (l->iface != VFIOD__INTERFACE__INTERFACE_IOMMUFD || l->n_devs == 0 ||
            l->mode != VFIOD__MODE__MODE_DIRECT)
                return;
        r = kvfio_device_bind_iommufd(dev->fd, l->domain->iommufd, NULL);
        if (r == 0)
                LOG_LEASE(LOG_INFO, l, dev->bdf,
                          "the client never bound device '%s': bound it, so that the kernel "
                          "counts every copy",
                          dev->bdf);
        else if (r != -EINVAL)
                LOG_LEASE(LOG_WARNING, l, dev->bdf, "binding device '%s' at release: %s", dev->bdf,
                          strerror(-r));
        /* Bound now (by the client or here): what it has to switch off. */
        if (kvfio_device_get_info(dev->fd, &dev->info) == 0)
                dev_read_irqs(dev);
}

/* Release step 1: interrupts off on every index; held eventfds closed. */
static void release_irqs_off(struct vfiod_lease *l, struct ev_loop *loop)
{
        release_cdev_bind(l);
        for (size_t i = 0; i < l->n_devs; i++)
                dev_irqs_off(&l->devs[i], loop);
        LOG_LEASE(LOG_DEBUG, l, l->device, "release 1/5: interrupts disabled");
}

/* Release step 2, DMA: only when no other group of the domain still uses the mappings. */
static void release_unmap(struct vfiod_lease *l)
{
        struct vfiod_domain *domain = l->domain;

        /* GROUP: the mappings are in the client's container, which the unset (3) leaves. */
        if (!domain) {
                LOG_LEASE(LOG_DEBUG, l, l->device, "release 2/5: no domain (GROUP lease)");
                return;
        }
        domain->n_leases--;
        if (domain->n_leases == 0)
                (void)vfiod_domain_unmap_everything(domain);
        LOG_LEASE(LOG_DEBUG, l, l->device, "release 2/5: DMA unmapped%s",
                  domain->n_leases ? " (skipped: other groups share the domain)" : "");
}

/*
 * Release step 3: close our device fds, then detach: EBUSY = a client holds
 * a device fd, and the group is quarantined with our group fd, still in the
 * domain, which takes no new lease or mapping until it leaves. No reset
 * here: until 4 succeeds a client may still touch the device after any
 * reset. The one that counts comes when nobody else can: at the device's
 * next open (vfio-pci) or in the sanitize (5).
 */
static void release_detach(struct vfiod_server *s, struct vfiod_lease *l)
{
        struct vfiod_domain *domain = l->domain;
        struct vfiod_group *g = l->group;
        int r;

        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD) {
                /* Out of whatever IOAS it is in (the domain's, or the client's own). */
                for (size_t i = 0; i < l->n_devs; i++) {
                        r = kvfio_device_detach_ioas(l->devs[i].fd);
                        if (r < 0 && r != -EINVAL)
                                LOG_LEASE(LOG_WARNING, l, l->devs[i].bdf, "detaching '%s': %s",
                                          l->devs[i].bdf, strerror(-r));
                        l->devs[i].fd = safe_close(l->devs[i].fd);
                }
                vfiod_group_quarantine_cdev(g, l->id, domain->id);
                LOG_LEASE(LOG_DEBUG, l, l->device, "release 3/5: device detached and closed");
                return;
        }

        for (size_t i = 0; i < l->n_devs; i++)
                l->devs[i].fd = safe_close(l->devs[i].fd);
        /* GROUP: through our duplicate, out of the client's container when it left it there. */
        r = kvfio_group_unset_container(l->group_fd);
        /* On -EBUSY the group fd moves to the group's quarantine record. */
        vfiod_group_quarantine(g, l->id, r, &l->group_fd, domain ? domain->id : 0);
        if (r == -EBUSY) {
                LOG_LEASE(LOG_WARNING, l, l->device,
                          "group %d quarantined: a device fd is still open (client %" PRIu64
                          " did not close it)",
                          l->group_id, l->client->id);
        } else {
                if (r == -EINVAL && !domain)
                        LOG_LEASE(LOG_DEBUG, l, l->device,
                                  "release 3/5: group %d was in no container", l->group_id);
                else if (r < 0)
                        LOG_LEASE(LOG_WARNING, l, l->device, "detaching group %d: %s", l->group_id,
                                  strerror(-r));
                else
                        LOG_LEASE(LOG_DEBUG, l, l->device, "release 3/5: group detached");
                domain_group_left(s, domain);
                /* 4. Close our group fd; group_proceed() re-opens it to check it is free. */
                l->group_fd = safe_close(l->group_fd);
        }
        if (domain && domain->n_leases == 0 && g->wait != VFIOD_WAIT_UNSET &&
            g->wait != VFIOD_WAIT_CDEV)
                domain->mode = 0;
}

/*
 * Release steps 4 and 5 (or the quarantine): frees the lease, then takes its
 * group on. Returns 0 when the group is FREE, 1 when it is QUARANTINED.
 */
static int release_free(struct vfiod_server *s, struct vfiod_lease *l)
{
        struct vfiod_domain *domain = l->domain;
        struct vfiod_group *g = l->group;
        struct vfiod_log_about a;
        char device[KVFIO_NAME_MAX];
        int id = l->group_id, r;
        uint64_t lid = l->id;

        l->client->usage.leases--;
        /* The lease is freed below: the log line keeps its own copy of the name. */
        snprintf(device, sizeof(device), "%s", l->device);
        a = vfiod_client_about(l->client, device, id, lid);
        lease_free_devs(l, s->loop);
        safe_close(l->group_fd);
        vfiod_lease_unlink(l);
        if (g->wait == VFIOD_WAIT_UNSET)
                r = 1;
        else if (g->wait == VFIOD_WAIT_CDEV) {
                /* The caller drops an implicit domain: only tell it the group left. */
                r = vfiod_group_cdev_detach(g, s->devices->vfio_dir);
                if (r == 0) {
                        domain_group_left(s, domain);
                        r = vfiod_group_settle(s->devices, g);
                }
        } else
                r = group_proceed(s, g);
        if (r == 0)
                vfiod_log_about(LOG_NOTICE, &a, "lease %" PRIu64 " released; group %d is free", lid,
                                id);
        else
                vfiod_log_about(LOG_NOTICE, &a,
                                "lease %" PRIu64 " released; group %d is quarantined", lid, id);
        return r;
}

int vfiod_lease_release(struct vfiod_lease *l, const char *why)
{
        struct vfiod_server *s = l->client->server;
        struct vfiod_domain *domain = l->domain;
        int r;

        l->status = VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASING;
        ev_timer_stop(s->loop, &l->grace);
        LOG_LEASE(LOG_NOTICE, l, l->device, "releasing lease %" PRIu64 " of '%s' (group %d): %s",
                  l->id, l->device, l->group_id, why);
        vfiod_group_release_begin(l->group);
        release_irqs_off(l, s->loop);
        release_unmap(l);
        release_detach(s, l);
        r = release_free(s, l);
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
                 : reason == VFIOD__RELEASE_REASON__RELEASE_REASON_DEVICE_GONE   ? "device gone"
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

void vfiod_lease_end(struct vfiod_lease *l, Vfiod__ReleaseReason reason, const char *detail)
{
        if (l->status == VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE ||
            l->status == VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED)
                revoke_now(l, reason, detail);
}

void vfiod_lease_revoke(struct vfiod_lease *l, Vfiod__ReleaseReason reason, const char *detail)
{
        struct vfiod_client *c = l->client;
        uint32_t grace = vfiod_server_limits(c->server)->release_grace_ms;
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

/* Refuses the daemon's indexes, those the policy does not grant, and those the device lacks. */
static int irq_index_check(struct vfiod_lease_dev *dev, uint32_t index, uint32_t count,
                           struct vfiod_error *err)
{
        struct vfiod_lease *l = dev->lease;
        char types[32];

        if (index == VFIO_PCI_ERR_IRQ_INDEX || index == VFIO_PCI_REQ_IRQ_INDEX)
                return vfiod_error_set(err, EPERM, "the %s interrupt belongs to the daemon",
                                       kvfio_irq_index_name(index));
        if (index >= VFIOD_N_CLIENT_IRQ_INDEXES)
                return vfiod_error_set(err, EINVAL, "unknown interrupt index %u", index);
        if (count > 0 && !(l->grant.irq_types & (1u << index))) {
                int r =
                    vfiod_error_set(err, EPERM,
                                    "the policy (rule '%s') allows you only these interrupts: %s; "
                                    "not %s",
                                    l->grant.irq_rule,
                                    vfiod_irq_types_name(l->grant.irq_types, types, sizeof(types)),
                                    kvfio_irq_index_name(index));

                LOG_LEASE(LOG_NOTICE, l, dev->bdf, "refused %s on '%s': %s",
                          kvfio_irq_index_name(index), dev->bdf, err ? err->reason : "");
                return r;
        }
        if (dev->irqs[index].count == 0)
                return vfiod_error_set(err, EINVAL, "device '%s' has no %s interrupt", dev->bdf,
                                       kvfio_irq_index_name(index));
        return 0;
}

/* The VFIO_IRQ_SET_ACTION_* of a protocol action, or -EINVAL (err set). */
static int irq_action(uint32_t action, struct vfiod_error *err)
{
        switch (action) {
        case VFIOD__IRQ_ACTION__IRQ_ACTION_MASK:
                return VFIO_IRQ_SET_ACTION_MASK;
        case VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK:
                return VFIO_IRQ_SET_ACTION_UNMASK;
        case VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER:
                return VFIO_IRQ_SET_ACTION_TRIGGER;
        default:
                return vfiod_error_set(err, EINVAL, "bad interrupt action %u", action);
        }
}

/* Count 0: interrupts off on the index, and the client's eventfds of it closed. */
static int irq_disable(struct vfiod_lease_dev *dev, const struct vfiod_irq_set *set,
                       struct vfiod_error *err)
{
        int r;

        if (set->action != VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER || set->bools || set->fds ||
            set->start != 0)
                return vfiod_error_set(err, EINVAL,
                                       "count 0 is only for disabling (TRIGGER, data NONE, "
                                       "start 0)");
        r = kvfio_irq_disable(dev->fd, set->index);
        if (r < 0)
                return vfiod_error_set(err, -r, "disabling %s failed: %s",
                                       kvfio_irq_index_name(set->index), strerror(-r));
        close_client_irq_fds(dev, set->index);
        return 0;
}

/* What the kernel refused, for the client. */
static int irq_kernel_error(const struct vfiod_lease_dev *dev, uint32_t index, int r,
                            struct vfiod_error *err)
{
        return vfiod_error_set(err, -r, "SET_IRQS on %s of '%s' failed: %s",
                               kvfio_irq_index_name(index), dev->bdf, strerror(-r));
}

/*
 * Data EVENTFD: an UNMASK eventfd (vector 0) or the trigger eventfds of the
 * vectors. On success the lease device owns set->fds (each is -EBADF after).
 */
static int irq_set_eventfds(struct vfiod_lease_dev *dev, const struct vfiod_irq_set *set,
                            struct vfiod_error *err)
{
        uint32_t index = set->index, start = set->start, count = set->count;
        int r;

        if (set->action == VFIOD__IRQ_ACTION__IRQ_ACTION_MASK)
                return vfiod_error_set(err, EINVAL, "MASK takes no eventfd");
        if (set->action == VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK) {
                if (count != 1 || start != 0)
                        return vfiod_error_set(err, EINVAL,
                                               "an UNMASK eventfd is for vector 0 only");
                r = kvfio_irq_unmask_eventfd(dev->fd, index, 0, set->fds[0]);
                if (r < 0)
                        return irq_kernel_error(dev, index, r, err);
                /* The eventfd is owned by the lease device while assigned. */
                close_and_replace(dev->unmask_fds[index], set->fds[0]);
                return 0;
        }
        if (dev_trigger_fds(dev, index) < 0)
                return vfiod_error_set(err, ENOMEM, "out of memory");
        r = kvfio_irq_set_eventfds(dev->fd, index, start, count, set->fds);
        if (r < 0)
                return irq_kernel_error(dev, index, r, err);
        /* The kernel took its references; we keep ours while assigned. */
        for (uint32_t i = 0; i < count; i++) {
                close_and_replace(dev->trigger_fds[index][start + i], set->fds[i]);
        }
        return 0;
}

/* Data NONE or BOOL: the action on the vectors, no fd kept. */
static int irq_set_plain(struct vfiod_lease_dev *dev, const struct vfiod_irq_set *set,
                         uint32_t vfio_action)
{
        uint32_t index = set->index, start = set->start, count = set->count;

        if (set->bools)
                return kvfio_irq_set_bools(dev->fd, index, vfio_action, start, count, set->bools);
        switch (set->action) {
        case VFIOD__IRQ_ACTION__IRQ_ACTION_MASK:
                return kvfio_irq_mask(dev->fd, index, start, count);
        case VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK:
                return kvfio_irq_unmask(dev->fd, index, start, count);
        default:
                return kvfio_irq_trigger(dev->fd, index, start, count);
        }
}

int vfiod_lease_set_irqs_take(struct vfiod_lease_dev *dev, struct vfiod_irq_set *set,
                              struct vfiod_error *err)
{
        const struct kvfio_irq_info *info;
        int vfio_action, r;

        r = irq_index_check(dev, set->index, set->count, err);
        if (r < 0)
                goto fail;
        info = &dev->irqs[set->index];
        vfio_action = irq_action(set->action, err);
        if (vfio_action < 0) {
                r = vfio_action;
                goto fail;
        }
        if (set->count == 0)
                return irq_disable(dev, set, err);
        if (set->start > info->count || set->count > info->count - set->start) {
                r = vfiod_error_set(err, EINVAL, "vectors %u..%u of %s: the device has %u",
                                    set->start, set->start + set->count - 1,
                                    kvfio_irq_index_name(set->index), info->count);
                goto fail;
        }
        if (set->fds)
                r = irq_set_eventfds(dev, set, err);
        else {
                r = irq_set_plain(dev, set, (uint32_t)vfio_action);
                if (r < 0)
                        r = irq_kernel_error(dev, set->index, r, err);
        }
        if (r < 0)
                goto fail;
        return 0;

fail:
        close_fds(set->fds, set->count);
        return r;
}

/* ---- saved in the fd store and loaded again after a restart (daemon/state.h) ---- */

static unsigned long long ino_of(int fd)
{
        struct stat st;

        return fstat(fd, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* "irq L K I N INO" and "unmask L K I INO": the client's eventfds of index i. */
static void save_dev_irqs(const struct vfiod_lease_dev *dev, size_t k, uint32_t i,
                          struct vfiod_save *sv)
{
        uint64_t id = dev->lease->id;

        for (uint32_t n = 0; dev->trigger_fds[i] && n < dev->irqs[i].count; n++) {
                int f = dev->trigger_fds[i][n];
                unsigned long long ino;

                if (f < 0)
                        continue;
                ino = ino_of(f);
                vfiod_save_fd(sv, f, "irq-%" PRIu64 "-%zu-%u-%u-%llu", id, k, i, n, ino);
                vfiod_save_line(sv, "irq %" PRIu64 " %zu %u %u %llu", id, k, i, n, ino);
        }
        if (dev->unmask_fds[i] >= 0) {
                unsigned long long ino = ino_of(dev->unmask_fds[i]);

                vfiod_save_fd(sv, dev->unmask_fds[i], "unmask-%" PRIu64 "-%zu-%u-%llu", id, k, i,
                              ino);
                vfiod_save_line(sv, "unmask %" PRIu64 " %zu %u %llu", id, k, i, ino);
        }
}

void vfiod_lease_save(const struct vfiod_lease *l, struct vfiod_save *sv)
{
        const struct vfiod_group *g = l->group;

        if (l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE &&
            l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED)
                return;
        vfiod_save_fd(sv, l->group_fd, "group-%" PRIu64, l->id);
        /* A legacy lease's line is as it always was; an IOMMUFD one adds its interface, cdev. */
        if (l->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                vfiod_save_line(
                    sv, "lease %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %d %d %d %s %zu %d %d",
                    l->client->id, l->id, l->domain->id, l->group_id, l->mode, (int)l->status,
                    (int)l->revoke_reason, l->device, l->n_devs, l->iface, l->cdev);
        else
                vfiod_save_line(sv, "lease %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %d %d %d %s %zu",
                                l->client->id, l->id, l->domain ? l->domain->id : 0, l->group_id,
                                l->mode, (int)l->status, (int)l->revoke_reason, l->device,
                                l->n_devs);
        for (size_t i = 0; g && i < g->n_bound; i++)
                vfiod_save_line(sv, "bound %d %s %s", l->group_id, g->bound[i].bdf,
                                g->bound[i].prev_driver[0] ? g->bound[i].prev_driver : "-");
        for (size_t k = 0; k < l->n_devs; k++) {
                const struct vfiod_lease_dev *dev = &l->devs[k];

                /* GROUP: a member the daemon holds no fd of. */
                if (dev->fd < 0) {
                        vfiod_save_line(sv, "member %" PRIu64 " %zu %s", l->id, k, dev->bdf);
                        continue;
                }
                vfiod_save_fd(sv, dev->fd, "device-%" PRIu64 "-%zu", l->id, k);
                vfiod_save_line(sv, "dev %" PRIu64 " %zu %s", l->id, k, dev->bdf);
                for (uint32_t i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++)
                        save_dev_irqs(dev, k, i, sv);
        }
}

/* Copies src when it fits (with its NUL); -EINVAL when not. */
static int copy_str(char *dst, size_t size, const char *src)
{
        size_t n = strlen(src);

        if (n >= size)
                return -EINVAL;
        memcpy(dst, src, n + 1);
        return 0;
}

/* The lease with its group fd and device fds; the devices are read by their "dev" lines. */
static int load_lease_fds(struct vfiod_load *ld, struct vfiod_lease *l, size_t n_devs)
{
        struct vfiod_group *g = NULL;

        /* An IOMMUFD lease holds no group fd. */
        if (l->iface != VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                l->group_fd = vfiod_load_fd(ld, "group-%" PRIu64, l->id);
        l->devs = calloc(n_devs, sizeof(*l->devs));
        if (!l->devs || vfiod_registry_group_get(l->client->server->devices, l->group_id, &g) < 0) {
                safe_close(l->group_fd);
                free(l->devs);
                free(l);
                return -ENOMEM;
        }
        l->n_devs = n_devs;
        for (size_t k = 0; k < n_devs; k++) {
                dev_init(&l->devs[k], l);
                /* GROUP: none (its "member" lines name the devices). */
                if (l->mode != VFIOD__MODE__MODE_GROUP)
                        l->devs[k].fd = vfiod_load_fd(ld, "device-%" PRIu64 "-%zu", l->id, k);
        }
        g->state = VFIOD_GROUP_LEASED;
        g->lease = l;
        l->group = g;
        return 0;
}

/* "lease C L D GROUP MODE STATUS REASON DEVICE N_DEVS" */
static int load_lease(struct vfiod_load *ld, const char *args)
{
        struct vfiod_server *s = vfiod_load_server(ld);
        uint64_t cid, lid, did;
        int group, mode, status, reason, r;
        int iface = VFIOD__INTERFACE__INTERFACE_LEGACY, cdev = -1; /* absent in an older state */
        unsigned n_devs;
        char device[32];
        struct vfiod_client *c;
        struct vfiod_domain *d;
        struct vfiod_lease *l;

        if (sscanf(args, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %d %d %d %d %31s %u %d %d", &cid,
                   &lid, &did, &group, &mode, &status, &reason, device, &n_devs, &iface, &cdev) < 9)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld)) {
                if (iface != VFIOD__INTERFACE__INTERFACE_IOMMUFD)
                        (void)vfiod_load_fd(ld, "group-%" PRIu64, lid);
                return 0;
        }
        c = vfiod_server_find_client(s, cid);
        d = c ? vfiod_client_find_domain(c, did) : NULL;
        /* GROUP: no domain (0). */
        if (!c || (mode == VFIOD__MODE__MODE_GROUP ? did != 0 : !d) || n_devs == 0 ||
            n_devs > 256 || vfiod_registry_group(s->devices, group) ||
            strlen(device) >= KVFIO_BDF_MAX)
                return vfiod_load_fail(ld, -EINVAL, "lease %" PRIu64 " does not fit the state",
                                       lid);
        l = vfiod_lease_alloc(c, d, group, mode, device);
        if (!l)
                return -ENOMEM;
        l->id = lid;
        l->iface = iface;
        l->cdev = cdev;
        r = load_lease_fds(ld, l, n_devs);
        if (r < 0)
                return r;
        /* Linked now: from here on a failure releases it with the full sequence. */
        lease_link(l);
        /* Asked back before the restart: asked again once restored (vfiod_lease_restored()). */
        if (status == VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED)
                l->revoke_reason = (Vfiod__ReleaseReason)(reason ? reason : 1);
        return 0;
}

/* "bound GROUP BDF PREV_DRIVER": what vfiod bound to vfio-pci, given back at release. */
static int load_bound(struct vfiod_load *ld, const char *args)
{
        struct vfiod_group *g;
        struct vfiod_bound *bd;
        char bdf[64], prev[64];
        int group;

        if (sscanf(args, "%d %63s %63s", &group, bdf, prev) != 3)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld))
                return 0;
        g = vfiod_registry_group(vfiod_load_server(ld)->devices, group);
        if (!g)
                return -EINVAL;
        bd = realloc(g->bound, (g->n_bound + 1) * sizeof(*bd));
        if (!bd)
                return -ENOMEM;
        g->bound = bd;
        if (copy_str(bd[g->n_bound].bdf, sizeof(bd->bdf), bdf) < 0 ||
            copy_str(bd[g->n_bound].prev_driver, sizeof(bd->prev_driver),
                     strcmp(prev, "-") == 0 ? "" : prev) < 0)
                return -EINVAL;
        g->n_bound++;
        return 0;
}

/* The device k of lease id, or NULL. */
static struct vfiod_lease_dev *load_find_dev(struct vfiod_load *ld, uint64_t id, unsigned k)
{
        struct vfiod_lease *l = vfiod_server_find_lease(vfiod_load_server(ld), id);

        return l && k < l->n_devs ? &l->devs[k] : NULL;
}

/* "dev L K BDF": the device fd came with its lease; read again, REQ/ERR armed again. */
static int load_dev(struct vfiod_load *ld, const char *args)
{
        struct vfiod_lease_dev *dev;
        uint64_t id;
        unsigned k;
        char bdf[64];
        int r = -EINVAL;

        if (sscanf(args, "%" SCNu64 " %u %63s", &id, &k, bdf) != 3)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld)) {
                /* Taken with its lease: only checked here. */
                (void)vfiod_load_fd(ld, "device-%" PRIu64 "-%u", id, k);
                return 0;
        }
        dev = load_find_dev(ld, id, k);
        if (dev && copy_str(dev->bdf, sizeof(dev->bdf), bdf) == 0) {
                r = kvfio_device_get_info(dev->fd, &dev->info);
                /* An IOMMUFD DIRECT cdev the client has not bound yet: nothing to read or arm. */
                if (r == -EINVAL && dev->lease->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD &&
                    dev->lease->mode == VFIOD__MODE__MODE_DIRECT)
                        return 0;
        }
        if (r < 0)
                return vfiod_load_fail(ld, r, "device '%s' of lease %" PRIu64 ": %s", bdf, id,
                                       strerror(-r));
        dev_read_irqs(dev);
        /* The holder of an IOMMUFD DIRECT device handles its REQ (as at acquire). */
        if (!(dev->lease->iface == VFIOD__INTERFACE__INTERFACE_IOMMUFD &&
              dev->lease->mode == VFIOD__MODE__MODE_DIRECT))
                vfiod_lease_dev_arm_events(dev);
        return 0;
}

/* "member L K BDF": a device of a GROUP lease, which the daemon holds no fd of. */
static int load_member(struct vfiod_load *ld, const char *args)
{
        struct vfiod_lease_dev *dev;
        uint64_t id;
        unsigned k;
        char bdf[64];

        if (sscanf(args, "%" SCNu64 " %u %63s", &id, &k, bdf) != 3)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld))
                return 0;
        dev = load_find_dev(ld, id, k);
        if (!dev || dev->lease->mode != VFIOD__MODE__MODE_GROUP ||
            copy_str(dev->bdf, sizeof(dev->bdf), bdf) < 0)
                return vfiod_load_fail(ld, -EINVAL, "member '%s' of lease %" PRIu64 ": no such",
                                       bdf, id);
        return 0;
}

/* "irq L K I N INO": the client's eventfd of vector N of index I (the kernel still signals it). */
static int load_irq(struct vfiod_load *ld, const char *args)
{
        struct vfiod_lease_dev *dev;
        uint64_t id;
        unsigned k, i, n;
        unsigned long long ino;
        int fd;

        if (sscanf(args, "%" SCNu64 " %u %u %u %llu", &id, &k, &i, &n, &ino) != 5)
                return VFIOD_LOAD_UNKNOWN;
        fd = vfiod_load_fd(ld, "irq-%" PRIu64 "-%u-%u-%u-%llu", id, k, i, n, ino);
        if (vfiod_load_checking(ld))
                return 0;
        dev = load_find_dev(ld, id, k);
        if (!dev || i >= VFIOD_N_CLIENT_IRQ_INDEXES || n >= dev->irqs[i].count) {
                safe_close(fd);
                return -EINVAL;
        }
        if (dev_trigger_fds(dev, i) < 0) {
                safe_close(fd);
                return -ENOMEM;
        }
        /* The eventfd is the lease's again. */
        safe_close(dev->trigger_fds[i][n]);
        dev->trigger_fds[i][n] = fd;
        return 0;
}

/* "unmask L K I INO": the client's UNMASK eventfd of index I. */
static int load_unmask(struct vfiod_load *ld, const char *args)
{
        struct vfiod_lease_dev *dev;
        uint64_t id;
        unsigned k, i;
        unsigned long long ino;
        int fd;

        if (sscanf(args, "%" SCNu64 " %u %u %llu", &id, &k, &i, &ino) != 4)
                return VFIOD_LOAD_UNKNOWN;
        fd = vfiod_load_fd(ld, "unmask-%" PRIu64 "-%u-%u-%llu", id, k, i, ino);
        if (vfiod_load_checking(ld))
                return 0;
        dev = load_find_dev(ld, id, k);
        if (!dev || i >= VFIOD_N_CLIENT_IRQ_INDEXES) {
                safe_close(fd);
                return -EINVAL;
        }
        /* The eventfd is the lease's again. */
        safe_close(dev->unmask_fds[i]);
        dev->unmask_fds[i] = fd;
        return 0;
}

const struct vfiod_load_keyword vfiod_lease_keywords[] = {
    {"lease", load_lease}, {"bound", load_bound},   {"dev", load_dev}, {"member", load_member},
    {"irq", load_irq},     {"unmask", load_unmask}, {NULL, NULL},
};

void vfiod_lease_restored(struct vfiod_lease *l)
{
        struct vfiod_log_about a = vfiod_client_about(l->client, l->device, l->group_id, l->id);

        vfiod_log_about(LOG_NOTICE, &a,
                        "restored lease %" PRIu64 " of device '%s' (group %d, domain %" PRIu64
                        ", %zu mapping(s)) from the fd store",
                        l->id, l->device, l->group_id, l->domain ? l->domain->id : 0,
                        l->domain ? l->domain->n_maps : 0);
        if (!vfiod_lease_policy_check(l, l->client->server->policy))
                vfiod_lease_revoke(l, VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE,
                                   "the policy no longer allows it");
        else if (l->revoke_reason)
                vfiod_lease_revoke(l, l->revoke_reason, "asked back before vfiod restarted");
}

void vfiod_lease_abandon(struct vfiod_lease *l)
{
        struct ev_loop *loop = l->client->server->loop;

        for (size_t k = 0; k < l->n_devs; k++) {
                dev_close_irq_fds(&l->devs[k], loop);
                safe_close(l->devs[k].fd);
        }
        ev_timer_stop(loop, &l->grace);
        /* No managed device goes back to its driver: the lease lives on. */
        vfiod_registry_group_free(l->group);
        safe_close(l->group_fd);
        vfiod_lease_unlink(l);
}
