/* SPDX-License-Identifier: MIT */
/*
 * libvfiod: one function per request of the protocol. Each builds its
 * Envelope on the stack, calls client_call() and converts the reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-lib/internal.h"
#include "proto/macro.h"
#include "proto/names.h"

#define ENVELOPE(field, CASE, msg)                                         \
        ((Vfiod__Envelope){                                                \
            .base = PROTOBUF_C_MESSAGE_INIT(&vfiod__envelope__descriptor), \
            .body_case = VFIOD__ENVELOPE__BODY_##CASE,                     \
            .field = (msg),                                                \
        })

/* A request answered by Ok. */
static int call_ok(struct vfiod *c, Vfiod__Envelope *req)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;

        return client_call(c, req, NULL, 0, VFIOD__ENVELOPE__BODY_OK, &reply);
}

/* ------------------------------------------------------------------------- */
/* Devices */

void vfiod_devices_free(struct vfiod_device_info *devices, size_t n)
{
        free(devices);
}

/* Devices asked for per ListDevices page; the daemon sends fewer when they do not fit a datagram.
 */
#define LIST_PAGE_LIMIT 4096

static int device_from_msg(struct vfiod *c, const Vfiod__DeviceInfo *d,
                           struct vfiod_device_info *out)
{
        int r = copy_device_name(c, out->device, d->device);

        if (r < 0)
                return r;
        out->vendor_id = d->vendor_id;
        out->device_id = d->device_id;
        out->class_code = d->class_code;
        out->iommu_group = d->iommu_group;
        copy_text(out->driver, sizeof(out->driver), d->driver);
        out->state = (enum vfiod_lease_state)d->state;
        for (size_t k = 0; k < d->n_allowed_modes; k++)
                if (d->allowed_modes[k] > 0 && d->allowed_modes[k] < 32)
                        out->allowed_modes |= VFIOD_MODE_BIT(d->allowed_modes[k]);
        for (size_t k = 0; k < d->n_interfaces; k++)
                if (d->interfaces[k] > 0 && d->interfaces[k] < 32)
                        out->interfaces |= 1u << d->interfaces[k];
        (void)snprintf(out->cdev, sizeof(out->cdev), "%s", d->cdev ? d->cdev : "");
        out->lease_id = d->lease_id;
        copy_text(out->mdev_type, sizeof(out->mdev_type), d->mdev_type);
        return 0;
}

/*
 * Every page of ListDevices (1.3): asks with a limit and goes on from `next`
 * until it is empty; an older daemon ignores the limit and answers in one.
 */
int vfiod_list_devices(struct vfiod *c, const char *device, struct vfiod_device_info **ret_devices,
                       size_t *ret_n)
{
        _cleanup_free_ struct vfiod_device_info *devices = NULL;
        _cleanup_free_ char *after = NULL;
        size_t n = 0;
        int r;

        if (!c || !ret_devices || !ret_n)
                return -EINVAL;
        do {
                _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
                Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
                Vfiod__Envelope req = ENVELOPE(list_devices, LIST_DEVICES, &ld);
                const Vfiod__ListDevicesReply *lr;

                ld.device = proto_string(device);
                ld.limit = LIST_PAGE_LIMIT;
                ld.after = proto_string(after);
                r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY, &reply);
                if (r < 0)
                        return r;
                lr = reply->env->list_devices_reply;
                if (lr->next && lr->next[0] && lr->n_devices == 0)
                        return client_fail_dead(c, -EPROTO,
                                                "daemon sent an empty page with a next");
                if (lr->n_devices > 0) {
                        struct vfiod_device_info *more;

                        if (lr->n_devices > SIZE_MAX / sizeof(*devices) - n)
                                return client_fail(c, -ENOMEM, "out of memory");
                        more = realloc(devices, (n + lr->n_devices) * sizeof(*devices));
                        if (!more)
                                return client_fail(c, -ENOMEM, "out of memory");
                        devices = more;
                        memset(&devices[n], 0, lr->n_devices * sizeof(*devices));
                }
                for (size_t i = 0; i < lr->n_devices; i++) {
                        r = device_from_msg(c, lr->devices[i], &devices[n++]);
                        if (r < 0)
                                return r;
                }
                free(after);
                after = lr->next && lr->next[0] ? strdup(lr->next) : NULL;
                if (lr->next && lr->next[0] && !after)
                        return client_fail(c, -ENOMEM, "out of memory");
        } while (after);
        *ret_n = n;
        *ret_devices = TAKE_PTR(devices);
        return 0;
}

/* ------------------------------------------------------------------------- */
/* Domains */

int vfiod_create_domain(struct vfiod *c, enum vfiod_iommu_type type, uint64_t *ret_domain_id,
                        enum vfiod_iommu_type *ret_type)
{
        return vfiod_create_domain_iface(c, type, VFIOD_INTERFACE_LEGACY, ret_domain_id, ret_type);
}

int vfiod_create_domain_iface(struct vfiod *c, enum vfiod_iommu_type type,
                              enum vfiod_interface iface, uint64_t *ret_domain_id,
                              enum vfiod_iommu_type *ret_type)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        Vfiod__CreateDomain cd = VFIOD__CREATE_DOMAIN__INIT;
        Vfiod__Envelope req = ENVELOPE(create_domain, CREATE_DOMAIN, &cd);
        int r;

        if (!c || !ret_domain_id)
                return -EINVAL;
        if (iface != VFIOD_INTERFACE_LEGACY && iface != VFIOD_INTERFACE_IOMMUFD)
                return client_fail(c, -EINVAL, "a domain is legacy or iommufd, not %d", (int)iface);
        if (iface == VFIOD_INTERFACE_IOMMUFD && c->info.minor < 2)
                return client_fail(c, -EOPNOTSUPP,
                                   "the daemon speaks protocol 1.%u: no iommufd before 1.2",
                                   c->info.minor);
        cd.iommu_type = (Vfiod__IommuType)type;
        cd.interface = (Vfiod__Interface)iface;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_CREATE_DOMAIN_REPLY, &reply);
        if (r < 0)
                return r;
        if (reply->env->create_domain_reply->domain_id == 0)
                return client_fail_dead(c, -EPROTO, "daemon created domain 0");
        *ret_domain_id = reply->env->create_domain_reply->domain_id;
        if (ret_type)
                *ret_type = (enum vfiod_iommu_type)reply->env->create_domain_reply->iommu_type;
        return 0;
}

int vfiod_destroy_domain(struct vfiod *c, uint64_t domain_id)
{
        Vfiod__DestroyDomain dd = VFIOD__DESTROY_DOMAIN__INIT;
        Vfiod__Envelope req = ENVELOPE(destroy_domain, DESTROY_DOMAIN, &dd);

        if (!c)
                return -EINVAL;
        dd.domain_id = domain_id;
        return call_ok(c, &req);
}

/* ------------------------------------------------------------------------- */
/* Leases */

void vfiod_lease_close_fds(struct vfiod_lease *lease)
{
        if (!lease)
                return;
        (void)safe_close(lease->container_fd);
        (void)safe_close(lease->group_fd);
        (void)safe_close(lease->device_fd);
        (void)safe_close(lease->iommufd_fd);
        lease->container_fd = lease->group_fd = lease->device_fd = lease->iommufd_fd = -1;
}

/* What the daemon says a lease is granted (LeaseGrant, protocol 1.1); NULL: it did not say. */
void grant_from_msg(struct vfiod_lease_grant *out, uint32_t irq_counts[VFIOD_IRQ_INDEX_COUNT],
                    const Vfiod__LeaseGrant *g)
{
        *out = (struct vfiod_lease_grant){0};
        memset(irq_counts, 0, VFIOD_IRQ_INDEX_COUNT * sizeof(*irq_counts));
        if (!g)
                return;
        for (size_t i = 0; i < g->n_irq_counts && i < VFIOD_IRQ_INDEX_COUNT; i++)
                irq_counts[i] = g->irq_counts[i];
        out->known = true;
        copy_text(out->rule, sizeof(out->rule), g->rule);
        out->max_pinned_bytes = g->max_pinned_bytes;
        out->max_mappings = g->max_mappings;
        out->iova_restricted = g->iova_restricted;
        out->n_iova_windows =
            g->n_iova_windows > UINT32_MAX ? UINT32_MAX : (uint32_t)g->n_iova_windows;
        for (size_t i = 0; i < g->n_iova_windows && i < VFIOD_IOVA_WINDOWS_MAX; i++)
                out->iova_windows[i] = (struct vfiod_iova_window){
                    .first = g->iova_windows[i]->first, .last = g->iova_windows[i]->last};
        out->irq_types = g->irq_types;
        out->memlock_bytes = g->memlock_bytes;
        copy_text(out->memlock_error, sizeof(out->memlock_error), g->memlock_error);
}

int vfiod_lease_irq_count(const struct vfiod_lease *lease, enum vfiod_irq_index index)
{
        if (!lease || (unsigned)index >= VFIOD_IRQ_INDEX_COUNT)
                return -EINVAL;
        if (!lease->grant.known)
                return -ENODATA;
        return lease->irq_counts[index] > INT32_MAX ? INT32_MAX : (int)lease->irq_counts[index];
}

/* Takes the fd at `index` out of the reply; -EPROTO if it is not there (twice named). */
static int take_reply_fd(struct vfiod *c, struct vfiod_msg *reply, uint32_t index, const char *what)
{
        int fd = vfiod_msg_take_fd(reply, index);

        if (fd < 0)
                return client_fail_dead(
                    c, -EPROTO, "daemon sent no usable %s fd (index %" PRIu32 ")", what, index);
        return fd;
}

int vfiod_acquire(struct vfiod *c, const char *device, uint64_t domain_id, enum vfiod_mode mode,
                  struct vfiod_lease *ret)
{
        return vfiod_acquire_iface(c, device, domain_id, mode, VFIOD_INTERFACE_LEGACY, ret);
}

/* The arguments of vfiod_acquire_iface(), and what the daemon's protocol version can do. */
static int acquire_args_check(struct vfiod *c, enum vfiod_mode mode, enum vfiod_interface iface)
{
        if (mode != VFIOD_MODE_DIRECT && mode != VFIOD_MODE_BROKERED && mode != VFIOD_MODE_GROUP)
                return client_fail(c, -EINVAL, "invalid mode %d", (int)mode);
        if (iface < VFIOD_INTERFACE_UNSPECIFIED || iface > VFIOD_INTERFACE_ANY)
                return client_fail(c, -EINVAL, "invalid interface %d", (int)iface);
        if (iface != VFIOD_INTERFACE_LEGACY && iface != VFIOD_INTERFACE_UNSPECIFIED &&
            c->info.minor < 2)
                return client_fail(c, -EOPNOTSUPP,
                                   "the daemon speaks protocol 1.%u: no iommufd interface before "
                                   "1.2",
                                   c->info.minor);
        /* GROUP came with protocol 1.2: an older daemon would answer EINVAL. */
        if (mode == VFIOD_MODE_GROUP && c->info.major == 1 && c->info.minor < 2)
                return client_fail(c, -EOPNOTSUPP,
                                   "the daemon speaks protocol %" PRIu32 ".%" PRIu32
                                   ", which has no GROUP leases (1.2)",
                                   c->info.major, c->info.minor);
        return 0;
}

/* Which fds an AcquireReply carries, and whether it leased through iommufd. */
struct reply_fds {
        bool container, group, device, iommufd, is_iommufd;
};

/*
 * Checks that the AcquireReply ar carries what a lease of mode, asked
 * through iface, must: its fds, its interface, its ids. Fills *ret; a reply
 * that does not is a protocol error that ends the connection.
 */
static int acquire_reply_check(struct vfiod *c, const Vfiod__AcquireReply *ar, enum vfiod_mode mode,
                               enum vfiod_interface iface, struct reply_fds *ret)
{
        struct reply_fds f = {
            .container =
                ar->has_container_fd_case == VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD,
            .group = ar->has_group_fd_case == VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD,
            .device = ar->has_device_fd_case == VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD,
            .iommufd = ar->has_iommufd_fd_case == VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD,
            .is_iommufd = ar->interface == VFIOD__INTERFACE__INTERFACE_IOMMUFD,
        };

        if (ar->interface != VFIOD__INTERFACE__INTERFACE_UNSPECIFIED &&
            ar->interface != VFIOD__INTERFACE__INTERFACE_LEGACY && !f.is_iommufd)
                return client_fail_dead(c, -EPROTO, "daemon leased through interface %d",
                                        (int)ar->interface);
        if (f.is_iommufd &&
            (iface == VFIOD_INTERFACE_LEGACY || iface == VFIOD_INTERFACE_UNSPECIFIED))
                return client_fail_dead(c, -EPROTO, "daemon leased through iommufd, asked legacy");
        if (f.is_iommufd && (f.container || f.group || f.iommufd != (mode == VFIOD_MODE_DIRECT)))
                return client_fail_dead(c, -EPROTO,
                                        "daemon's iommufd lease does not carry the fds of its "
                                        "mode");
        if (!f.is_iommufd && f.iommufd)
                return client_fail_dead(c, -EPROTO, "daemon's legacy lease carries an iommufd");
        if (!f.device && mode != VFIOD_MODE_GROUP)
                return client_fail_dead(c, -EPROTO, "daemon's acquire reply carries no device fd");
        if ((int)ar->mode != (int)mode)
                return client_fail_dead(c, -EPROTO, "daemon leased in mode %d, asked for %d",
                                        (int)ar->mode, (int)mode);
        if (!f.is_iommufd && mode == VFIOD_MODE_DIRECT && (!f.container || !f.group))
                return client_fail_dead(c, -EPROTO,
                                        "daemon's direct lease lacks the container or group fd");
        if (mode == VFIOD_MODE_BROKERED && (f.container || f.group))
                return client_fail_dead(c, -EPROTO,
                                        "daemon's brokered lease carries a container or group fd");
        if (mode == VFIOD_MODE_GROUP && (!f.group || f.container || f.device))
                return client_fail_dead(c, -EPROTO,
                                        "daemon's group lease is not the group fd alone");
        /* A GROUP lease has no domain. */
        if (ar->lease_id == 0 || (ar->domain_id == 0) != (mode == VFIOD_MODE_GROUP))
                return client_fail_dead(c, -EPROTO, "daemon's acquire reply has a wrong id");
        *ret = f;
        return 0;
}

/* take_reply_fd() of index when the reply carries it (has); else *ret_fd = -1. */
static int take_reply_fd_if(struct vfiod *c, struct vfiod_msg *reply, bool has, uint32_t index,
                            const char *what, int *ret_fd)
{
        int fd = -1;

        if (has) {
                fd = take_reply_fd(c, reply, index, what);
                if (fd < 0)
                        return fd;
        }
        *ret_fd = fd; /* the caller owns it now */
        return 0;
}

int vfiod_acquire_iface(struct vfiod *c, const char *device, uint64_t domain_id,
                        enum vfiod_mode mode, enum vfiod_interface iface, struct vfiod_lease *ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        _cleanup_close_ int container_fd = -EBADF, group_fd = -EBADF, device_fd = -EBADF,
                            iommufd_fd = -EBADF;
        Vfiod__Acquire a = VFIOD__ACQUIRE__INIT;
        Vfiod__Envelope req = ENVELOPE(acquire, ACQUIRE, &a);
        const Vfiod__AcquireReply *ar;
        struct vfiod_lease lease = {
            .container_fd = -1, .group_fd = -1, .device_fd = -1, .iommufd_fd = -1};
        struct reply_fds f = {0};
        int r;

        if (!c || !device || !ret)
                return -EINVAL;
        r = acquire_args_check(c, mode, iface);
        if (r < 0)
                return r;
        a.device = proto_string(device);
        a.domain_id = domain_id;
        a.mode = (Vfiod__Mode)mode;
        a.interface = (Vfiod__Interface)iface;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY, &reply);
        if (r < 0)
                return r;

        ar = reply->env->acquire_reply;
        r = acquire_reply_check(c, ar, mode, iface, &f);
        if (r < 0)
                return r;
        r = copy_device_name(c, lease.device, ar->device);
        if (r >= 0)
                r = take_reply_fd_if(c, reply, f.container, ar->container_fd, "container",
                                     &container_fd);
        if (r >= 0)
                r = take_reply_fd_if(c, reply, f.group, ar->group_fd, "group", &group_fd);
        if (r >= 0)
                r = take_reply_fd_if(c, reply, f.device, ar->device_fd, "device", &device_fd);
        if (r >= 0)
                r = take_reply_fd_if(c, reply, f.iommufd, ar->iommufd_fd, "iommufd", &iommufd_fd);
        if (r < 0)
                return r;
        if (f.is_iommufd)
                (void)snprintf(lease.cdev, sizeof(lease.cdev), "%s", ar->cdev ? ar->cdev : "");
        lease.interface = f.is_iommufd ? VFIOD_INTERFACE_IOMMUFD : VFIOD_INTERFACE_LEGACY;

        lease.lease_id = ar->lease_id;
        lease.domain_id = ar->domain_id;
        lease.iommu_group = ar->iommu_group;
        lease.mode = mode;
        lease.num_regions = ar->num_regions;
        lease.num_irqs = ar->num_irqs;
        lease.device_flags = ar->device_flags;
        grant_from_msg(&lease.grant, lease.irq_counts, ar->grant);
        /* On success the fds are owned by the caller, through *ret (-1 where absent). */
        lease.container_fd = TAKE_FD(container_fd);
        lease.group_fd = TAKE_FD(group_fd);
        lease.device_fd = TAKE_FD(device_fd);
        lease.iommufd_fd = TAKE_FD(iommufd_fd);
        *ret = lease;
        return 0;
}

/* Parses $name as a decimal number <= max: 0, -ENXIO when unset, -EINVAL when malformed. */
static int env_number(const char *name, uint64_t max, uint64_t *ret)
{
        const char *e = getenv(name);
        unsigned long long v;
        char *end;

        if (!e)
                return -ENXIO;
        errno = 0;
        v = strtoull(e, &end, 10);
        if (errno != 0 || end == e || *end != '\0' || e[0] == '-' || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* An inherited fd named by $name: -1 when unset and !required; -EBADF when not open. */
static int env_fd(const char *name, bool required, int *ret)
{
        uint64_t v;
        int r = env_number(name, INT_MAX, &v);

        if (r == -ENXIO && !required) {
                *ret = -1;
                return 0;
        }
        if (r < 0)
                return -EINVAL;
        if (fcntl((int)v, F_GETFD) < 0)
                return -EBADF;
        *ret = (int)v;
        return 0;
}

/* Asks the daemon for what lease l (its device) is granted: ListDevices, its DeviceInfo.grant. */
static int fetch_grant(struct vfiod *c, struct vfiod_lease *l)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope req = ENVELOPE(list_devices, LIST_DEVICES, &ld);
        const Vfiod__ListDevicesReply *lr;
        int r;

        ld.device = l->device;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY, &reply);
        if (r < 0)
                return r;
        lr = reply->env->list_devices_reply;
        for (size_t i = 0; i < lr->n_devices; i++) {
                const Vfiod__DeviceInfo *d = lr->devices[i];

                if (d->state != VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU ||
                    d->lease_id != l->lease_id)
                        continue;
                grant_from_msg(&l->grant, l->irq_counts, d->grant);
                return 0;
        }
        return client_fail(c, -ENOENT, "lease %" PRIu64 " of '%s' is not this connection's",
                           l->lease_id, l->device);
}

int vfiod_lease_from_env(struct vfiod *c, struct vfiod_lease *ret)
{
        struct vfiod_lease l = {
            .container_fd = -1, .group_fd = -1, .device_fd = -1, .iommufd_fd = -1};
        const char *device, *mode, *cdev;
        uint64_t group;
        bool direct, group_mode, iommufd;
        int r;

        if (!ret)
                return -EINVAL;
        r = env_number(VFIOD_LEASE_ID_ENV, UINT64_MAX, &l.lease_id);
        if (r < 0)
                return r;
        r = env_number(VFIOD_DOMAIN_ID_ENV, UINT64_MAX, &l.domain_id);
        if (r == 0)
                r = env_number(VFIOD_IOMMU_GROUP_ENV, UINT32_MAX, &group);
        if (r < 0 || l.lease_id == 0)
                return -EINVAL;
        l.iommu_group = (uint32_t)group;
        device = getenv(VFIOD_DEVICE_ENV);
        mode = getenv(VFIOD_MODE_ENV);
        if (!device || !device[0] || strlen(device) >= sizeof(l.device) || !mode)
                return -EINVAL;
        copy_text(l.device, sizeof(l.device), device);
        r = vfiod_proto_mode_from_string(mode);
        if (r < 0)
                return -EINVAL;
        l.mode = (enum vfiod_mode)r;
        direct = l.mode == VFIOD_MODE_DIRECT;
        group_mode = l.mode == VFIOD_MODE_GROUP;
        /* A GROUP lease has no domain (0); the others have one. */
        if ((l.domain_id == 0) != group_mode)
                return -EINVAL;
        /* An IOMMUFD lease names its cdev: DIRECT has an iommufd and no group or container. */
        cdev = getenv(VFIOD_CDEV_ENV);
        iommufd = cdev && cdev[0];
        if (iommufd && (group_mode || strlen(cdev) >= sizeof(l.cdev)))
                return -EINVAL;
        l.interface = iommufd ? VFIOD_INTERFACE_IOMMUFD : VFIOD_INTERFACE_LEGACY;
        if (iommufd)
                copy_text(l.cdev, sizeof(l.cdev), cdev);
        r = env_fd(VFIOD_DEVICE_FD_ENV, !group_mode, &l.device_fd);
        if (r == 0)
                r = env_fd(VFIOD_GROUP_FD_ENV, (direct && !iommufd) || group_mode, &l.group_fd);
        if (r == 0)
                r = env_fd(VFIOD_CONTAINER_FD_ENV, direct && !iommufd, &l.container_fd);
        if (r == 0)
                r = env_fd(VFIOD_IOMMUFD_FD_ENV, direct && iommufd, &l.iommufd_fd);
        if (r < 0)
                return r;
        if (l.mode == VFIOD_MODE_BROKERED &&
            (l.group_fd >= 0 || l.container_fd >= 0 || l.iommufd_fd >= 0))
                return -EINVAL; /* a brokered lease has the device fd only */
        if (group_mode && (l.device_fd >= 0 || l.container_fd >= 0 || l.iommufd_fd >= 0))
                return -EINVAL; /* a group lease has the group fd only */
        if (iommufd && (l.group_fd >= 0 || l.container_fd >= 0))
                return -EINVAL;
        if (!iommufd && l.iommufd_fd >= 0)
                return -EINVAL;
        if (c) {
                r = fetch_grant(c, &l);
                if (r < 0)
                        return r;
        }
        /* On success the fds are the caller's: close-on-exec, and no longer announced. */
        {
                const int fds[] = {l.container_fd, l.group_fd, l.device_fd, l.iommufd_fd};

                for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                        if (fds[i] >= 0)
                                (void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        }
        (void)unsetenv(VFIOD_DEVICE_FD_ENV);
        (void)unsetenv(VFIOD_GROUP_FD_ENV);
        (void)unsetenv(VFIOD_CONTAINER_FD_ENV);
        (void)unsetenv(VFIOD_IOMMUFD_FD_ENV);
        *ret = l;
        return 0;
}

int vfiod_release(struct vfiod *c, uint64_t lease_id)
{
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__Envelope req = ENVELOPE(release, RELEASE, &rel);

        if (!c)
                return -EINVAL;
        rel.lease_id = lease_id;
        return call_ok(c, &req);
}

int vfiod_reset(struct vfiod *c, uint64_t lease_id, const char *device)
{
        Vfiod__Reset rs = VFIOD__RESET__INIT;
        Vfiod__Envelope req = ENVELOPE(reset, RESET, &rs);

        if (!c)
                return -EINVAL;
        rs.lease_id = lease_id;
        rs.device = proto_string(device);
        return call_ok(c, &req);
}

/* ------------------------------------------------------------------------- */
/* DMA */

/*
 * Index of fd in fds[0..*n), appending it when new. Returns the index, or
 * -EMSGSIZE when a new fd would exceed `max`.
 */
static int fd_slot(int *fds, size_t *n, size_t max, int fd)
{
        for (size_t i = 0; i < *n; i++)
                if (fds[i] == fd)
                        return (int)i;
        if (*n >= max)
                return -EMSGSIZE;
        fds[*n] = fd;
        return (int)(*n)++;
}

/*
 * The arrays of a MapDma or UnmapDma of n ranges (verb: "map", "unmap"), at
 * most max: *ret_items gets n zeroed items of item_size, *ret_ptrs room for
 * n pointers, which the caller points at the items it fills. Both are the
 * caller's to free. Returns 0, or client_fail()'s -errno.
 */
static int range_arrays_new(struct vfiod *c, size_t n, size_t max, const char *verb,
                            size_t item_size, void **ret_items, void **ret_ptrs)
{
        _cleanup_free_ void *items = NULL;
        _cleanup_free_ void *ptrs = NULL;

        if (n == 0)
                return client_fail(c, -EINVAL, "no range to %s", verb);
        if (n > max)
                return client_fail(c, -EMSGSIZE, "%zu ranges do not fit one message", n);
        items = calloc(n, item_size);
        ptrs = calloc(n, sizeof(void *));
        if (!items || !ptrs)
                return client_fail(c, -ENOMEM, "out of memory");
        *ret_items = TAKE_PTR(items);
        *ret_ptrs = TAKE_PTR(ptrs);
        return 0;
}

/*
 * Builds the MapDma of ranges and calls it (its reply in *ret_reply) or,
 * with ret_reply NULL, submits it (its id in *ret_id).
 */
static int map_dma_go(struct vfiod *c, uint64_t domain_id, const struct vfiod_dma_range *ranges,
                      size_t n, struct vfiod_msg **ret_reply, uint64_t *ret_id)
{
        _cleanup_free_ Vfiod__DmaRange *items = NULL;
        _cleanup_free_ Vfiod__DmaRange **ptrs = NULL;
        void *items_mem, *ptrs_mem;
        int fds[VFIOD_PROTO_MAX_FDS]; /* borrowed from ranges[]: never closed here */
        size_t n_fds = 0;
        Vfiod__MapDma m = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope req = ENVELOPE(map_dma, MAP_DMA, &m);
        int r;

        if (!c || !ranges)
                return -EINVAL;
        r = range_arrays_new(c, n, VFIOD_PROTO_MAX_DATAGRAM / 8, "map", sizeof(*items), &items_mem,
                             &ptrs_mem);
        if (r < 0)
                return r;
        items = items_mem;
        ptrs = ptrs_mem;
        for (size_t i = 0; i < n; i++) {
                const struct vfiod_dma_range *rg = &ranges[i];
                int slot;

                if (rg->fd < 0)
                        return client_fail(c, -EINVAL, "range %zu has no fd", i);
                if (rg->flags & ~(VFIOD_DMA_READ | VFIOD_DMA_WRITE))
                        return client_fail(c, -EINVAL, "range %zu has unknown flags 0x%x", i,
                                           rg->flags);
                /* Ranges naming the same memfd share one fd of the datagram. */
                slot = fd_slot(fds, &n_fds, c->info.max_fds, rg->fd);
                if (slot < 0)
                        return client_fail(c, slot, "more than %" PRIu32 " distinct fds",
                                           c->info.max_fds);
                vfiod__dma_range__init(&items[i]);
                items[i].fd_index = (uint32_t)slot;
                items[i].offset = rg->offset;
                items[i].iova = rg->iova;
                items[i].size = rg->size;
                items[i].readable = (rg->flags & VFIOD_DMA_READ) != 0;
                items[i].writable = (rg->flags & VFIOD_DMA_WRITE) != 0;
                ptrs[i] = &items[i];
        }
        m.domain_id = domain_id;
        m.n_ranges = n;
        m.ranges = ptrs;

        if (ret_reply)
                return client_call(c, &req, fds, n_fds, VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY,
                                   ret_reply);
        return client_submit(c, &req, fds, n_fds, VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY, ret_id);
}

/* What vfiod_map_dma() returns for reply mr. */
static int map_dma_result(const Vfiod__MapDmaReply *mr, uint64_t *ret_bytes)
{
        if (ret_bytes)
                *ret_bytes = mr->bytes;
        return mr->mapped > (uint32_t)INT32_MAX ? INT32_MAX : (int)mr->mapped;
}

int vfiod_map_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_dma_range *ranges,
                  size_t n, uint64_t *ret_bytes)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        int r;

        r = map_dma_go(c, domain_id, ranges, n, &reply, NULL);
        if (r < 0)
                return r;
        return map_dma_result(reply->env->map_dma_reply, ret_bytes);
}

int vfiod_submit_map_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_dma_range *ranges,
                         size_t n, uint64_t *ret_id)
{
        return map_dma_go(c, domain_id, ranges, n, NULL, ret_id);
}

int vfiod_map_memfd(struct vfiod *c, uint64_t domain_id, int memfd, uint64_t offset, uint64_t iova,
                    uint64_t size, unsigned flags)
{
        const struct vfiod_dma_range range = {
            .fd = memfd,
            .offset = offset,
            .iova = iova,
            .size = size,
            .flags = flags,
        };
        int r;

        r = vfiod_map_dma(c, domain_id, &range, 1, NULL);
        return r < 0 ? r : 0;
}

/* The UnmapDma of ranges, called or submitted as map_dma_go() does. */
static int unmap_dma_go(struct vfiod *c, uint64_t domain_id, const struct vfiod_iova_range *ranges,
                        size_t n, struct vfiod_msg **ret_reply, uint64_t *ret_id)
{
        _cleanup_free_ Vfiod__IovaRange *items = NULL;
        _cleanup_free_ Vfiod__IovaRange **ptrs = NULL;
        void *items_mem, *ptrs_mem;
        Vfiod__UnmapDma u = VFIOD__UNMAP_DMA__INIT;
        Vfiod__Envelope req = ENVELOPE(unmap_dma, UNMAP_DMA, &u);
        int r;

        if (!c || !ranges)
                return -EINVAL;
        r = range_arrays_new(c, n, VFIOD_PROTO_MAX_DATAGRAM / 4, "unmap", sizeof(*items),
                             &items_mem, &ptrs_mem);
        if (r < 0)
                return r;
        items = items_mem;
        ptrs = ptrs_mem;
        for (size_t i = 0; i < n; i++) {
                vfiod__iova_range__init(&items[i]);
                items[i].iova = ranges[i].iova;
                items[i].size = ranges[i].size;
                ptrs[i] = &items[i];
        }
        u.domain_id = domain_id;
        u.n_ranges = n;
        u.ranges = ptrs;

        if (ret_reply)
                return client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY,
                                   ret_reply);
        return client_submit(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY, ret_id);
}

/* What vfiod_unmap_dma() returns for reply ur. */
static int unmap_dma_result(const Vfiod__UnmapDmaReply *ur, uint64_t *ret_bytes)
{
        if (ret_bytes)
                *ret_bytes = ur->unmapped_bytes;
        return ur->unmapped > (uint32_t)INT32_MAX ? INT32_MAX : (int)ur->unmapped;
}

int vfiod_unmap_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_iova_range *ranges,
                    size_t n, uint64_t *ret_bytes)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        int r;

        r = unmap_dma_go(c, domain_id, ranges, n, &reply, NULL);
        if (r < 0)
                return r;
        return unmap_dma_result(reply->env->unmap_dma_reply, ret_bytes);
}

int vfiod_submit_unmap_dma(struct vfiod *c, uint64_t domain_id,
                           const struct vfiod_iova_range *ranges, size_t n, uint64_t *ret_id)
{
        return unmap_dma_go(c, domain_id, ranges, n, NULL, ret_id);
}

int vfiod_collect(struct vfiod *c, struct vfiod_reply *ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        struct vfiod_reply out = {0};
        Vfiod__Envelope__BodyCase request;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_collect(c, &out.id, &request, &out.result, &reply);
        if (r < 0)
                return r;
        if (request == VFIOD__ENVELOPE__BODY_MAP_DMA) {
                out.request = VFIOD_REQUEST_MAP_DMA;
                if (out.result == 0)
                        out.result = map_dma_result(reply->env->map_dma_reply, &out.bytes);
        } else {
                out.request = VFIOD_REQUEST_UNMAP_DMA;
                if (out.result == 0)
                        out.result = unmap_dma_result(reply->env->unmap_dma_reply, &out.bytes);
        }
        *ret = out;
        return 0;
}

/* ------------------------------------------------------------------------- */
/* Interrupts */

int vfiod_set_irqs(struct vfiod *c, uint64_t lease_id, const struct vfiod_irq_set *set)
{
        _cleanup_free_ int32_t *indices = NULL;
        _cleanup_free_ protobuf_c_boolean *bools = NULL;
        int fds[VFIOD_PROTO_MAX_FDS]; /* borrowed from set->eventfds: never closed here */
        size_t n_fds = 0;
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        Vfiod__Envelope req = ENVELOPE(set_irqs, SET_IRQS, &s);

        if (!c || !set)
                return -EINVAL;
        if (set->eventfds && set->bools)
                return client_fail(c, -EINVAL, "both eventfds and bools given");
        if (set->action < VFIOD_IRQ_ACTION_MASK || set->action > VFIOD_IRQ_ACTION_TRIGGER)
                return client_fail(c, -EINVAL, "invalid irq action %d", (int)set->action);
        if ((set->eventfds || set->bools) && set->count == 0)
                return client_fail(c, -EINVAL, "a payload for 0 vectors");
        if ((set->eventfds || set->bools) && set->count > VFIOD_PROTO_MAX_DATAGRAM)
                return client_fail(c, -EMSGSIZE, "%" PRIu32 " vectors do not fit one message",
                                   set->count);

        s.lease_id = lease_id;
        s.device = proto_string(set->device);
        s.index = (Vfiod__IrqIndex)set->index;
        s.start = set->start;
        s.count = set->count;
        s.action = (Vfiod__IrqAction)set->action;
        s.data = VFIOD__IRQ_DATA__IRQ_DATA_NONE;

        if (set->eventfds) {
                indices = calloc(set->count, sizeof(*indices));
                if (!indices)
                        return client_fail(c, -ENOMEM, "out of memory");
                for (uint32_t i = 0; i < set->count; i++) {
                        int slot;

                        if (set->eventfds[i] == -1) {
                                indices[i] = -1; /* de-assign this vector */
                                continue;
                        }
                        if (set->eventfds[i] < 0)
                                return client_fail(c, -EINVAL, "vector %" PRIu32 ": invalid fd %d",
                                                   i, set->eventfds[i]);
                        /* The same eventfd for several vectors travels once. */
                        slot = fd_slot(fds, &n_fds, c->info.max_fds, set->eventfds[i]);
                        if (slot < 0)
                                return client_fail(c, slot, "more than %" PRIu32 " distinct fds",
                                                   c->info.max_fds);
                        indices[i] = slot;
                }
                s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                s.n_eventfds = set->count;
                s.eventfds = indices;
        } else if (set->bools) {
                bools = calloc(set->count, sizeof(*bools));
                if (!bools)
                        return client_fail(c, -ENOMEM, "out of memory");
                for (uint32_t i = 0; i < set->count; i++)
                        bools[i] = set->bools[i];
                s.data = VFIOD__IRQ_DATA__IRQ_DATA_BOOL;
                s.n_bools = set->count;
                s.bools = bools;
        }

        {
                _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;

                return client_call(c, &req, fds, n_fds, VFIOD__ENVELOPE__BODY_OK, &reply);
        }
}

int vfiod_disable_irqs(struct vfiod *c, uint64_t lease_id, enum vfiod_irq_index index)
{
        const struct vfiod_irq_set set = {
            .index = index,
            .action = VFIOD_IRQ_ACTION_TRIGGER,
        };

        return vfiod_set_irqs(c, lease_id, &set);
}

/* ------------------------------------------------------------------------- */
/* Admin */

void vfiod_leases_free(struct vfiod_lease_info *leases, size_t n)
{
        if (!leases)
                return;
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < leases[i].n_devices; k++)
                        free(leases[i].devices[k]);
                free(leases[i].devices);
        }
        free(leases);
}

struct lease_list {
        struct vfiod_lease_info *leases;
        size_t n;
};

static void lease_list_done(struct lease_list *l)
{
        vfiod_leases_free(l->leases, l->n);
}

int vfiod_list_leases(struct vfiod *c, struct vfiod_lease_info **ret_leases, size_t *ret_n)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        _cleanup_(lease_list_done) struct lease_list list = {0};
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Envelope req = ENVELOPE(list_leases, LIST_LEASES, &ll);
        const Vfiod__ListLeasesReply *lr;
        int r;

        if (!c || !ret_leases || !ret_n)
                return -EINVAL;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY, &reply);
        if (r < 0)
                return r;
        lr = reply->env->list_leases_reply;
        if (lr->n_leases > 0) {
                list.leases = calloc(lr->n_leases, sizeof(*list.leases));
                if (!list.leases)
                        return client_fail(c, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < lr->n_leases; i++) {
                const Vfiod__LeaseInfo *l = lr->leases[i];
                struct vfiod_lease_info *out = &list.leases[i];

                list.n = i + 1; /* so that the cleanup frees what this entry holds */
                out->lease_id = l->lease_id;
                out->iommu_group = l->iommu_group;
                out->uid = l->uid;
                out->gid = l->gid;
                out->pid = l->pid;
                copy_text(out->unit, sizeof(out->unit), l->unit);
                out->mode = (enum vfiod_mode)l->mode;
                out->domain_id = l->domain_id;
                out->pinned_bytes = l->pinned_bytes;
                out->mappings = l->mappings;
                out->status = (enum vfiod_lease_status)l->status;
                if (l->n_devices == 0)
                        continue;
                out->devices = calloc(l->n_devices, sizeof(*out->devices));
                if (!out->devices)
                        return client_fail(c, -ENOMEM, "out of memory");
                for (size_t k = 0; k < l->n_devices; k++) {
                        if (strlen(l->devices[k]) >= VFIOD_DEVICE_NAME_MAX)
                                return client_fail_dead(c, -EPROTO,
                                                        "daemon sent a device name of %zu bytes",
                                                        strlen(l->devices[k]));
                        out->devices[k] = strdup(l->devices[k]);
                        if (!out->devices[k])
                                return client_fail(c, -ENOMEM, "out of memory");
                        out->n_devices = k + 1;
                }
        }
        *ret_n = list.n;
        *ret_leases = TAKE_PTR(list.leases);
        list.n = 0;
        return 0;
}

int vfiod_revoke(struct vfiod *c, uint64_t lease_id, const char *reason)
{
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__Envelope req = ENVELOPE(revoke, REVOKE, &rv);

        if (!c)
                return -EINVAL;
        rv.lease_id = lease_id;
        rv.reason = proto_string(reason);
        return call_ok(c, &req);
}

void vfiod_reload_result_clear(struct vfiod_reload_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_errors; i++)
                free(r->errors[i]);
        free(r->errors);
        *r = (struct vfiod_reload_result){0};
}

int vfiod_reload_policy(struct vfiod *c, struct vfiod_reload_result *ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        _cleanup_(vfiod_reload_result_clear) struct vfiod_reload_result res = {0};
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Envelope req = ENVELOPE(reload_policy, RELOAD_POLICY, &rp);
        const Vfiod__ReloadPolicyReply *rr;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_RELOAD_POLICY_REPLY, &reply);
        if (r < 0)
                return r;
        rr = reply->env->reload_policy_reply;
        if (rr->n_errors > 0) {
                res.errors = calloc(rr->n_errors, sizeof(*res.errors));
                if (!res.errors)
                        return client_fail(c, -ENOMEM, "out of memory");
                for (size_t i = 0; i < rr->n_errors; i++) {
                        res.errors[i] = strdup(rr->errors[i]);
                        if (!res.errors[i])
                                return client_fail(c, -ENOMEM, "out of memory");
                        res.n_errors = i + 1;
                }
        }
        res.applied = rr->n_errors == 0;
        res.leases_revoked = rr->leases_revoked;
        *ret = res;
        res = (struct vfiod_reload_result){0}; /* ownership moved to *ret */
        return 0;
}

int vfiod_stats(struct vfiod *c, struct vfiod_stats *ret)
{
        _cleanup_(vfiod_msg_freep) struct vfiod_msg *reply = NULL;
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__Envelope req = ENVELOPE(stats, STATS, &st);
        const Vfiod__StatsReply *sr;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = client_call(c, &req, NULL, 0, VFIOD__ENVELOPE__BODY_STATS_REPLY, &reply);
        if (r < 0)
                return r;
        sr = reply->env->stats_reply;
        *ret = (struct vfiod_stats){
            .clients = sr->clients,
            .leases = sr->leases,
            .domains = sr->domains,
            .mappings = sr->mappings,
            .pinned_bytes = sr->pinned_bytes,
            .requests = sr->requests,
            .errors = sr->errors,
            .quarantined_groups = sr->quarantined_groups,
            .uptime_ms = sr->uptime_ms,
        };
        return 0;
}
