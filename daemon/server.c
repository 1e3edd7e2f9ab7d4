/* SPDX-License-Identifier: MIT */
#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "daemon/client.h"
#include "daemon/lease.h"
#include "daemon/state.h"
#include "proto/macro.h"

void vfiod_peer_done(struct vfiod_peer *peer)
{
        if (!peer)
                return;
        free(peer->groups);
        free(peer->unit);
        free(peer->slice);
        peer->groups = NULL;
        peer->unit = NULL;
        peer->slice = NULL;
        peer->n_groups = 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

/*
 * A pidfd of the process that connected fd. SO_PEERPIDFD (Linux 6.5) gives the
 * process the kernel recorded at connect(); older kernels do not know it
 * (ENOPROTOOPT) and get pidfd_open() of its pid, which names whatever process
 * has that pid when the connection is accepted. Any other failure (the
 * process is gone) is returned as it is: never a pidfd of the bare number.
 */
static int peer_pidfd(int fd, pid_t pid)
{
        int pidfd = -EBADF;
        socklen_t len = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
                return pidfd;
        if (errno != ENOPROTOOPT)
                return -errno;
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        return pidfd < 0 ? -errno : pidfd;
}

/* The pid of pidfd's process now ("Pid:" of its fdinfo: -1 once it has been reaped), or <= 0. */
static pid_t pidfd_pid(int pidfd)
{
        char path[64], line[128];
        FILE *f;
        int pid = 0;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pid: %d", &pid) == 1)
                        break;
        fclose(f);
        return pid;
}

/* pidfd's process has not exited (a pidfd polls readable once it has). */
static bool pidfd_running(int pidfd)
{
        struct pollfd p = {.fd = pidfd, .events = POLLIN};

        return poll(&p, 1, 0) == 0;
}

/*
 * The unit and slice of the process that connected: read from /proc/PID/cgroup
 * (sd_pid_get_unit/sd_pid_get_slice), which names the process that has that
 * pid at the time of the read. They are kept only when that was the process
 * that connected: its pidfd, taken before the read, names the same pid and
 * the process is still running after it (a pid is not reused while its
 * process runs). Otherwise the peer has none.
 */
static void peer_read_unit(int fd, struct vfiod_peer *p)
{
        _cleanup_close_ int pidfd = -EBADF;
        char *unit = NULL, *slice = NULL;
        const char *why = NULL;

        if (p->pid <= 0)
                why = "its pid is not visible here";
        else if ((pidfd = peer_pidfd(fd, p->pid)) < 0 || pidfd_pid(pidfd) != p->pid)
                why = "it has exited";
        else {
                (void)sd_pid_get_unit(p->pid, &unit);
                (void)sd_pid_get_slice(p->pid, &slice);
                if (!pidfd_running(pidfd) || pidfd_pid(pidfd) != p->pid) {
                        why = "it exited while its unit was read";
                        free(unit);
                        free(slice);
                } else {
                        p->unit = unit;
                        p->slice = slice;
                }
        }
        if (why) {
                struct vfiod_log_about a = {.peer = p, .group = -1};

                vfiod_log_about(LOG_NOTICE, &a,
                                "the process that connected (pid %d) has no unit or slice here: %s",
                                (int)p->pid, why);
        }
}

/* RLIMIT_MEMLOCK as bytes: UINT64_MAX for RLIM_INFINITY. */
static uint64_t rlim_bytes(rlim_t v)
{
        return v == RLIM_INFINITY || v >= UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

int vfiod_peer_raise_memlock(int fd, pid_t pid, uint64_t bytes, uint64_t *ret_now)
{
        _cleanup_close_ int pidfd = -EBADF;
        struct rlimit old, new;
        rlim_t want = bytes == UINT64_MAX ? RLIM_INFINITY : (rlim_t)bytes;

        if (pid <= 0)
                return -ESRCH;
        /* The process that connected, while it still has its pid. */
        pidfd = peer_pidfd(fd, pid);
        if (pidfd < 0 || pidfd_pid(pidfd) != pid)
                return -ESRCH;
        if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &old) < 0)
                return -errno;
        /* Never lower: each of soft and hard only goes up. */
        new = old;
        if (old.rlim_cur != RLIM_INFINITY && (want == RLIM_INFINITY || old.rlim_cur < want))
                new.rlim_cur = want;
        if (old.rlim_max != RLIM_INFINITY && (want == RLIM_INFINITY || old.rlim_max < want))
                new.rlim_max = want;
        if ((new.rlim_cur != old.rlim_cur || new.rlim_max != old.rlim_max) &&
            prlimit(pid, RLIMIT_MEMLOCK, &new, NULL) < 0)
                return -errno;
        /* Still running after the call: the pid was not another process's meanwhile. */
        if (!pidfd_running(pidfd) || pidfd_pid(pidfd) != pid)
                return -ESRCH;
        *ret_now = rlim_bytes(new.rlim_cur);
        return 0;
}

int vfiod_peer_read(int fd, bool unit, struct vfiod_peer *ret)
{
        struct vfiod_peer p = {0};
        struct ucred cred;
        socklen_t len = sizeof(cred);
        size_t n = 16;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        p.uid = cred.uid;
        p.gid = cred.gid;
        p.pid = cred.pid;
        for (;;) {
                gid_t *g = realloc(p.groups, n * sizeof(gid_t));

                if (!g) {
                        vfiod_peer_done(&p);
                        return -ENOMEM;
                }
                p.groups = g;
                len = (socklen_t)(n * sizeof(gid_t));
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p.groups, &len) == 0) {
                        p.n_groups = len / sizeof(gid_t);
                        break;
                }
                if (errno != ERANGE || n >= 65536) {
                        int r = -errno;
                        vfiod_peer_done(&p);
                        return r;
                }
                n = len / sizeof(gid_t) > n ? len / sizeof(gid_t) : n * 2;
        }
        /* The unit and slice too, once, at accept: the policy's Units= and Slices= match them. */
        if (unit)
                peer_read_unit(fd, &p);
        *ret = p;
        return 0;
}

static int add_client_take(struct vfiod_server *s, int fd, const struct vfiod_peer *peer,
                           struct vfiod_client **ret)
{
        struct vfiod_peer p = {0};
        struct vfiod_client *c;
        int flags, r;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        if (!peer) {
                r = vfiod_peer_read(fd, true, &p);
                if (r < 0) {
                        safe_close(fd);
                        return log_error_errno(r, "Cannot read the peer's credentials");
                }
                peer = &p;
        }
        /* The fd moves to the client (closed by it on failure). */
        r = vfiod_client_new_take(s, fd, peer, &c);
        vfiod_peer_done(&p);
        if (r < 0)
                return log_error_errno(r, "Cannot set up a client");
        list_add_tail(&s->clients, &c->link);
        s->n_clients++;
        {
                struct vfiod_log_about a = vfiod_client_about(c, NULL, -1, 0);
                vfiod_log_about(LOG_INFO, &a, "client %" PRIu64 " connected (uid %u, pid %d%s%s)",
                                c->id, (unsigned)c->peer.uid, (int)c->peer.pid,
                                c->peer.unit ? ", unit " : "", c->peer.unit ? c->peer.unit : "");
        }
        *ret = c;
        return 0;
}

int vfiod_server_add_client_take(struct vfiod_server *s, int fd, const struct vfiod_peer *peer)
{
        struct vfiod_client *c;

        return add_client_take(s, fd, peer, &c);
}

/* Tells a connection why it is refused (ENOSPC) before it is closed. */
static void refuse_connection(int fd, const char *reason)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Error e = VFIOD__ERROR__INIT;

        e.errnum = ENOSPC;
        e.reason = (char *)reason;
        env.body_case = VFIOD__ENVELOPE__BODY_ERROR;
        env.error = &e;
        (void)vfiod_msg_send(fd, &env, NULL, 0);
}

/* Connections of uid open now. */
static uint32_t connections_of(struct vfiod_server *s, uid_t uid)
{
        struct vfiod_client *c;
        uint32_t n = 0;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link) {
                n += !c->dead && c->peer.uid == uid;
        }
        return n;
}

/*
 * Takes an accepted connection on, or refuses it when it is over
 * MaxConnections or MaxConnectionsPerUser (logged, and told why).
 */
static void accept_one(struct vfiod_server *s, int fd)
{
        const struct vfiod_config_limits *lim = &s->policy->limits;
        struct vfiod_peer p = {0};
        char reason[128] = "";
        int r = vfiod_peer_read(fd, true, &p);

        if (r < 0) {
                log_error_errno(r, "Cannot read the peer's credentials");
                safe_close(fd);
                return;
        }
        if (s->n_clients >= lim->max_connections)
                snprintf(reason, sizeof(reason), "MaxConnections=%u reached", lim->max_connections);
        else if (connections_of(s, p.uid) >= lim->max_connections_per_user)
                snprintf(reason, sizeof(reason), "MaxConnectionsPerUser=%u reached for uid %u",
                         lim->max_connections_per_user, (unsigned)p.uid);
        if (reason[0]) {
                struct vfiod_log_about a = {.peer = &p, .group = -1};

                vfiod_log_about(LOG_WARNING, &a, "refused a connection: %s", reason);
                refuse_connection(fd, reason);
                safe_close(fd);
        } else
                /* The accepted fd moves to the client; the peer is copied. */
                (void)vfiod_server_add_client_take(s, fd, &p);
        vfiod_peer_done(&p);
}

/* How long accepting pauses when the process is out of fds (or memory). */
#define ACCEPT_PAUSE_MS 250

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        struct vfiod_server *s = w->data;

        if (s->listen_fd >= 0)
                ev_io_start(loop, &s->accept_io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct vfiod_server *s = w->data;

        for (;;) {
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0 &&
                    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
                        /*
                         * The connection stays in the backlog and the socket readable:
                         * retrying at once would spin. Pause; say so once.
                         */
                        if (!s->accept_starved)
                                log_warning("accept: %m; pausing new connections (%d ms at a "
                                            "time) until this passes",
                                            ACCEPT_PAUSE_MS);
                        s->accept_starved = true;
                        ev_io_stop(loop, &s->accept_io);
                        ev_timer_set(&s->accept_pause, ACCEPT_PAUSE_MS / 1000.0, 0.);
                        ev_timer_start(loop, &s->accept_pause);
                        return;
                }
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_error("accept: %m");
                        return;
                }
                if (s->accept_starved) {
                        log_notice("accept works again; taking new connections");
                        s->accept_starved = false;
                }
                accept_one(s, fd);
        }
}

void vfiod_server_reap(struct vfiod_server *s)
{
        struct vfiod_client *c;

        /* Once per loop iteration: no walk over every connection when none was dropped. */
        if (s->n_dead == 0)
                return;
        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link) {
                if (!c->dead)
                        continue;
                s->n_clients--;
                s->n_dead--;
                vfiod_client_free(c);
        }
}

static void reaper_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
        vfiod_server_reap(w->data);
}

static void quarantine_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        vfiod_quarantine_check(w->data);
}

void vfiod_server_quarantine_kick(struct vfiod_server *s)
{
        bool any = vfiod_registry_count(s->devices, VFIOD_GROUP_QUARANTINED) > 0;

        if (any && !ev_is_active(&s->quarantine_timer)) {
                ev_timer_set(&s->quarantine_timer, VFIOD_QUARANTINE_RECHECK_MS / 1000.0,
                             VFIOD_QUARANTINE_RECHECK_MS / 1000.0);
                ev_timer_start(s->loop, &s->quarantine_timer);
        } else if (!any && ev_is_active(&s->quarantine_timer))
                ev_timer_stop(s->loop, &s->quarantine_timer);
}

const struct vfiod_config_limits *vfiod_server_limits(const struct vfiod_server *s)
{
        return &s->policy->limits;
}

uint64_t vfiod_server_new_object_id(struct vfiod_server *s)
{
        return ++s->next_object_id;
}

void vfiod_server_add_lease(struct vfiod_server *s, struct vfiod_lease *l)
{
        list_add_tail(&s->leases, &l->link_server);
}

struct vfiod_domain *vfiod_server_find_domain(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link) {
                struct vfiod_domain *d = vfiod_client_find_domain(c, id);

                if (d)
                        return d;
        }
        return NULL;
}

uint64_t vfiod_server_uptime_ms(struct vfiod_server *s)
{
        ev_tstamp now = ev_time();

        return now > s->started ? (uint64_t)((now - s->started) * 1000) : 0;
}

/* The closer closed fds: connections it held back may be read again. */
static void closer_room_cb(void *userdata)
{
        struct vfiod_server *s = userdata;
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link)
                vfiod_client_kick(c);
}

static void device_changed(void *userdata, const char *action, const struct kvfio_pci_dev *old,
                           const struct kvfio_pci_dev *now);

int vfiod_server_new(struct ev_loop *loop, const struct vfiod_server_options *o,
                     struct vfiod_policy *policy, struct vfiod_server **ret)
{
        struct vfiod_server *s = calloc(1, sizeof(*s));
        int r;

        if (!s) {
                vfiod_policy_free(policy);
                return -ENOMEM;
        }
        s->loop = loop;
        s->listen_fd = -EBADF;
        s->policy = policy;
        s->config_missing_ok = o->config_missing_ok;
        s->started = ev_time();
        list_init(&s->clients);
        list_init(&s->active_clients);
        list_init(&s->leases);
        ev_prepare_init(&s->reaper, reaper_cb);
        s->reaper.data = s;
        ev_prepare_start(loop, &s->reaper);
        ev_timer_init(&s->quarantine_timer, quarantine_cb, 0., 0.);
        s->quarantine_timer.data = s;
        ev_timer_init(&s->accept_pause, accept_resume_cb, 0., 0.);
        s->accept_pause.data = s;
        if (o->config_path && !(s->config_path = strdup(o->config_path))) {
                vfiod_server_free(s);
                return -ENOMEM;
        }
        r = vfiod_registry_new(o->sysfs_root, o->vfio_dir, &s->devices);
        if (r < 0) {
                vfiod_server_free(s);
                return r;
        }
        /* A tree that cannot be read leaves the inventory empty: log_devices() says why. */
        if (vfiod_registry_scan(s->devices) == -ENOMEM) {
                vfiod_server_free(s);
                return -ENOMEM;
        }
        s->devices->on_change = device_changed;
        s->devices->on_change_data = s;
        r = vfiod_closer_new(loop, closer_room_cb, s, &s->closer);
        if (r < 0) {
                vfiod_server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void vfiod_server_drop_clients(struct vfiod_server *s)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link) {
                s->n_clients--;
                vfiod_client_free(c);
        }
}

void vfiod_server_free(struct vfiod_server *s)
{
        if (!s)
                return;
        vfiod_server_drop_clients(s);
        if (s->devices && vfiod_registry_count(s->devices, VFIOD_GROUP_QUARANTINED) > 0)
                log_warning("%zu group(s) still quarantined at exit; they are not sanitized",
                            vfiod_registry_count(s->devices, VFIOD_GROUP_QUARANTINED));
        ev_timer_stop(s->loop, &s->quarantine_timer);
        ev_prepare_stop(s->loop, &s->reaper);
        ev_timer_stop(s->loop, &s->accept_pause);
        if (s->listen_fd >= 0)
                ev_io_stop(s->loop, &s->accept_io);
        safe_close(s->listen_fd);
        /* After the clients: nothing can hand it an fd any more. */
        vfiod_closer_free(s->closer);
        vfiod_registry_free(s->devices);
        vfiod_policy_free(s->policy);
        free(s->config_path);
        free(s);
}

int vfiod_server_listen_take(struct vfiod_server *s, int fd)
{
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        /* The listening fd is the server's from here on. */
        safe_close(s->listen_fd);
        s->listen_fd = fd;
        ev_io_init(&s->accept_io, accept_cb, fd, EV_READ);
        s->accept_io.data = s;
        ev_io_start(s->loop, &s->accept_io);
        return 0;
}

int vfiod_server_reload(struct vfiod_server *s, struct vfiod_errors *errors, uint32_t *ret_revoked)
{
        struct vfiod_policy *p = NULL;
        struct vfiod_lease *l;
        uint32_t revoked = 0;
        int r;

        if (!s->config_path)
                r = vfiod_policy_new(&p);
        else
                r = vfiod_policy_load(s->config_path, s->config_missing_ok, &p, errors);
        if (r < 0) {
                log_error("Reloading '%s' failed; the old configuration stays in force",
                          s->config_path ? s->config_path : "(none)");
                for (size_t i = 0; errors && i < errors->n; i++)
                        log_error("%s", errors->lines[i]);
                return r;
        }
        vfiod_policy_free(s->policy);
        s->policy = p;
        log_notice("Configuration '%s' reloaded: %zu device rule(s)",
                   s->config_path ? s->config_path : "(none)", p->n_rules);
        list_for_each_safe (l, it, &s->leases, struct vfiod_lease, link_server) {
                /* An allowed lease takes the new rules' quotas and interrupt types. */
                if (l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE ||
                    vfiod_lease_policy_check(l, p))
                        continue;
                revoked++;
                vfiod_lease_revoke(l, VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE,
                                   "the policy no longer allows it");
        }
        if (ret_revoked)
                *ret_revoked = revoked;
        return 0;
}

void vfiod_server_log_devices(struct vfiod_server *s)
{
        const struct kvfio_pci_list *list = vfiod_registry_devices(s->devices);
        size_t n_vfio = 0, n_mdev = 0;

        if (s->devices->scan_error < 0)
                log_warning("Cannot list the PCI devices under '%s': %s", s->devices->sysfs_root,
                            strerror(-s->devices->scan_error));
        for (size_t i = 0; i < list->n; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];
                struct vfiod_log_about a = {.device = d->bdf, .group = d->iommu_group};

                n_mdev += d->mdev;
                if (!kvfio_dev_is_vfio(d))
                        continue;
                if (d->mdev) {
                        vfiod_log_about(LOG_INFO, &a,
                                        "mediated device '%s' (type %s, group %d) is bound to %s",
                                        d->bdf, d->mdev_type[0] ? d->mdev_type : "unknown",
                                        d->iommu_group, d->driver);
                        continue;
                }
                n_vfio++;
                vfiod_log_about(LOG_INFO, &a, "device '%s' (%04x:%04x, group %d) is bound to %s",
                                d->bdf, d->vendor, d->device, d->iommu_group, d->driver);
        }
        if (n_mdev)
                log_notice("Found %zu PCI device(s) under '%s', %zu bound to vfio-pci, and %zu "
                           "mediated device(s)%s",
                           list->n - n_mdev, s->devices->sysfs_root, n_vfio, n_mdev,
                           list->n_skipped ? "; some entries could not be read" : "");
        else
                log_notice("Found %zu PCI device(s) under '%s', %zu bound to vfio-pci%s", list->n,
                           s->devices->sysfs_root, n_vfio,
                           list->n_skipped ? "; some entries could not be read" : "");
}

/* "driver 'x'" or "no driver", for log lines. */
static const char *driver_text(const struct kvfio_pci_dev *d, char *buf, size_t size)
{
        if (!d->driver[0])
                return "no driver";
        snprintf(buf, size, "driver '%s'", d->driver);
        return buf;
}

/* Why a lease on old can no longer stand now, or NULL when it can. */
static char *lease_loss(const struct kvfio_pci_dev *old, const struct kvfio_pci_dev *now)
{
        char drv[KVFIO_DRIVER_MAX + 16], *why = NULL;

        if (!now)
                return asprintf(&why, "device '%s' was removed", old->bdf) < 0 ? NULL : why;
        if (!kvfio_dev_is_vfio(now))
                return asprintf(&why, "device '%s' left vfio-pci (now %s)", now->bdf,
                                driver_text(now, drv, sizeof(drv))) < 0
                           ? NULL
                           : why;
        if (now->iommu_group != old->iommu_group)
                return asprintf(&why, "device '%s' moved to IOMMU group %d", now->bdf,
                                now->iommu_group) < 0
                           ? NULL
                           : why;
        return NULL;
}

/* The inventory changed (daemon/devices.h): log it, end the leases it takes a device from. */
static void device_changed(void *userdata, const char *action, const struct kvfio_pci_dev *old,
                           const struct kvfio_pci_dev *now)
{
        struct vfiod_server *s = userdata;
        const struct kvfio_pci_dev *d = now ? now : old;
        struct vfiod_log_about a = {.device = d->bdf, .group = d->iommu_group};
        char drv[KVFIO_DRIVER_MAX + 16], was[KVFIO_DRIVER_MAX + 16];
        struct vfiod_lease *l;
        _cleanup_free_ char *why = NULL;

        if (!old)
                vfiod_log_about(LOG_NOTICE, &a, "device '%s' appeared (%s): group %d, %s", d->bdf,
                                action, d->iommu_group, driver_text(d, drv, sizeof(drv)));
        else if (!now)
                vfiod_log_about(LOG_NOTICE, &a, "device '%s' is gone (%s)", d->bdf, action);
        else
                vfiod_log_about(LOG_NOTICE, &a,
                                "device '%s' changed (%s): group %d, %s (was %d, %s)", d->bdf,
                                action, now->iommu_group, driver_text(now, drv, sizeof(drv)),
                                old->iommu_group, driver_text(old, was, sizeof(was)));
        if (!old)
                return;
        why = lease_loss(old, now);
        if (!why)
                return;
        list_for_each_safe (l, it, &s->leases, struct vfiod_lease, link_server) {
                bool holds = strcmp(l->device, old->bdf) == 0;

                for (size_t i = 0; !holds && i < l->n_devs; i++)
                        holds = strcmp(l->devs[i].bdf, old->bdf) == 0;
                if (holds)
                        vfiod_lease_end(l, VFIOD__RELEASE_REASON__RELEASE_REASON_DEVICE_GONE, why);
        }
}

/* ---- the listening socket ------------------------------------------------------- */

static int mkdir_parent(const char *path)
{
        char dir[PATH_MAX];
        char *slash;

        if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
                return -ENAMETOOLONG;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int vfiod_socket_bind(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        r = mkdir_parent(path);
        if (r < 0)
                return log_error_errno(r, "Cannot create the folder of '%s'", path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "socket");
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                _cleanup_close_ int probe = -EBADF;

                if (errno != EADDRINUSE)
                        return log_error_errno(-errno, "Cannot bind '%s'", path);
                probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return log_error_errno(-errno, "socket");
                if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        log_error("'%s' is in use by a running daemon; not starting a second one",
                                  path);
                        return -EADDRINUSE;
                }
                if (errno != ECONNREFUSED) {
                        return log_error_errno(-errno, "'%s' exists and is not a stale socket",
                                               path);
                }
                {
                        struct stat st;

                        if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                                log_error("'%s' exists and is not a socket; not removing it", path);
                                return -EEXIST;
                        }
                }
                log_notice("Removing the stale socket '%s'", path);
                if (unlink(path) < 0)
                        return log_error_errno(-errno, "Cannot remove '%s'", path);
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        return log_error_errno(-errno, "Cannot bind '%s'", path);
        }
        /* Anyone may connect: what they get is decided by the policy. */
        if (chmod(path, 0666) < 0)
                return log_error_errno(-errno, "Cannot chmod '%s'", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(-errno, "Cannot listen on '%s'", path);
        return TAKE_FD(fd);
}

/* ---- its clients by id, and a restart (daemon/state.h) ------------------------------ */

struct vfiod_client *vfiod_server_find_client(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link)
                if (c->id == id)
                        return c;
        return NULL;
}

struct vfiod_lease *vfiod_server_find_lease(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_lease *l;

        list_for_each_safe (l, it, &s->leases, struct vfiod_lease, link_server)
                if (l->id == id)
                        return l;
        return NULL;
}

int vfiod_server_restore_client_take(struct vfiod_server *s, int fd, uint64_t id,
                                     const struct vfiod_peer *peer, struct vfiod_client **ret)
{
        uint64_t next = s->next_client_id;
        int r;

        /* vfiod_client_new_take() gives the next id: this one. */
        s->next_client_id = id - 1;
        r = add_client_take(s, fd, peer, ret);
        s->next_client_id = next > id ? next : id;
        return r;
}

void vfiod_server_save(struct vfiod_server *s, struct vfiod_save *sv)
{
        struct vfiod_client *c;

        /* Domains and leases share one counter: the same number twice (the format has both). */
        vfiod_save_line(sv, "next %" PRIu64 " %" PRIu64 " %" PRIu64, s->next_client_id,
                        s->next_object_id, s->next_object_id);
        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link)
                vfiod_client_save(c, sv);
}

/* "next C D L": the ids handed out so far (clients; domains and leases, one counter). */
static int load_next(struct vfiod_load *ld, const char *args)
{
        struct vfiod_server *s = vfiod_load_server(ld);
        uint64_t client, domain, lease;

        if (sscanf(args, "%" SCNu64 " %" SCNu64 " %" SCNu64, &client, &domain, &lease) != 3)
                return VFIOD_LOAD_UNKNOWN;
        if (vfiod_load_checking(ld))
                return 0;
        s->next_client_id = client > s->next_client_id ? client : s->next_client_id;
        s->next_object_id = domain > lease ? domain : lease;
        return 0;
}

const struct vfiod_load_keyword vfiod_server_keywords[] = {
    {"next", load_next},
    {NULL, NULL},
};

size_t vfiod_server_restored(struct vfiod_server *s)
{
        size_t n = list_length(&s->leases);
        struct vfiod_lease *l;

        list_for_each_safe (l, it, &s->leases, struct vfiod_lease, link_server)
                vfiod_lease_restored(l);
        log_notice("Restored %zu lease(s) and %u client(s) from the fd store", n, s->n_clients);
        return n;
}

void vfiod_server_keep(struct vfiod_server *s)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link)
                vfiod_client_invalidate_vaddrs(c);
        log_notice("Stopping with %zu lease(s) and %u client(s) kept in the fd store",
                   list_length(&s->leases), s->n_clients);
}

void vfiod_server_abandon(struct vfiod_server *s)
{
        struct vfiod_client *c;

        list_for_each_safe (c, it, &s->clients, struct vfiod_client, link)
                vfiod_client_abandon(c);
}
