/* SPDX-License-Identifier: MIT */
#include "daemon/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/client.h"
#include "daemon/domain.h"
#include "daemon/lease.h"
#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/dma.h"
#include "kernel/irq.h"
#include "proto/macro.h"

/* The state's fd-store name is "state-G", G its generation ("state" before generations). */
#define STATE_MAGIC   "vfiod-state 1"
#define STATE_FDNAME  "state"
#define NAME_MAX_LEN  96
#define STATE_MAX_LEN (64u << 20)

/* ---- what systemd passed ---------------------------------------------------------------- */

static bool listen_name(const char *name)
{
        return !name || !name[0] || strcmp(name, "vfiod") == 0 || strcmp(name, "unknown") == 0;
}

int vfiod_passed_from_systemd(int *ret_listen, struct vfiod_passed *ret)
{
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names), fd = 0, n_listen = 0, r = 0;
        struct vfiod_passed p = {0};

        if (n < 0)
                return log_error_errno(n, "Failed to get listening fds from systemd");
        if (n > 0 && !(p.fds = calloc((size_t)n, sizeof(*p.fds))))
                r = -ENOMEM;
        for (int i = 0; i < n; i++) {
                int f = SD_LISTEN_FDS_START + i;
                const char *name = names ? names[i] : NULL;

                (void)fcntl(f, F_SETFD, FD_CLOEXEC);
                if (listen_name(name)) {
                        if (n_listen++ == 0) {
                                fd = f;
                                continue;
                        }
                } else if (r == 0) {
                        /* The fd moves to the list. */
                        p.fds[p.n].fd = f;
                        p.fds[p.n].name = names[i];
                        names[i] = NULL;
                        p.n++;
                        continue;
                }
                safe_close(f);
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        if (r == 0 && n_listen > 1) {
                log_error("systemd passed %d sockets; vfiod takes exactly one", n_listen);
                r = -EINVAL;
        }
        if (r == 0 && fd > 0 && sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 1) <= 0) {
                log_error("The socket from systemd is not a listening AF_UNIX SOCK_SEQPACKET "
                          "socket (ListenSequentialPacket=)");
                r = -EINVAL;
        }
        if (r < 0) {
                if (fd > 0)
                        safe_close(fd);
                vfiod_passed_done(&p);
                return r;
        }
        *ret_listen = fd;
        *ret = p;
        return 0;
}

void vfiod_passed_done(struct vfiod_passed *p)
{
        for (size_t i = 0; i < p->n; i++) {
                safe_close(p->fds[i].fd);
                free(p->fds[i].name);
        }
        free(p->fds);
        *p = (struct vfiod_passed){0};
}

/* Takes the fd called name out of passed (-ENOENT when it is not there). */
static int passed_take(struct vfiod_passed *p, const char *name)
{
        for (size_t i = 0; i < p->n; i++)
                if (p->fds[i].fd >= 0 && strcmp(p->fds[i].name, name) == 0) {
                        int fd = p->fds[i].fd;
                        p->fds[i].fd = -EBADF;
                        return fd;
                }
        return -ENOENT;
}

static bool passed_has(const struct vfiod_passed *p, const char *name)
{
        for (size_t i = 0; i < p->n; i++)
                if (p->fds[i].fd >= 0 && strcmp(p->fds[i].name, name) == 0)
                        return true;
        return false;
}

/* ---- the fd store ------------------------------------------------------------------------- */

struct named_fd {
        char name[NAME_MAX_LEN];
        int fd; /* borrowed */
};

struct vfiod_state {
        struct vfiod_server *s;
        bool enabled;
        uint64_t generation;           /* of the state in the fd store */
        char state_name[NAME_MAX_LEN]; /* its name there; "" when none */
        char (*stored)[NAME_MAX_LEN];
        size_t n_stored;
        char *last; /* the state last written */
        size_t last_len;
        unsigned crash_at, steps; /* VFIOD_CRASH_AT_SAVE_STEP (tests), steps of saves so far */
};

static int store_fd(const char *name, int fd)
{
        char msg[NAME_MAX_LEN + 48];

        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
        return sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
}

static void unstore_fd(const char *name)
{
        (void)sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", name);
}

int vfiod_state_new(struct vfiod_server *s, struct vfiod_state **ret)
{
        struct vfiod_state *st = calloc(1, sizeof(*st));

        if (!st)
                return -ENOMEM;
        st->s = s;
        st->enabled = false;
        *ret = st;
        return 0;
}

void vfiod_state_free(struct vfiod_state *st)
{
        if (!st)
                return;
        free(st->stored);
        free(st->last);
        free(st);
}

/* A growing text buffer. */
struct buf {
        char *p;
        size_t len, cap;
        bool oom;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (b->oom)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->oom = true;
                        return;
                }
                if (b->p && b->len + (size_t)n < b->cap) {
                        b->len += (size_t)n;
                        return;
                }
                size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
                char *p = realloc(b->p, cap);
                if (!p) {
                        b->oom = true;
                        return;
                }
                b->p = p;
                b->cap = cap;
        }
}

struct fdlist {
        struct named_fd *v;
        size_t n, cap;
        bool oom;
};

static void fdlist_add(struct fdlist *l, int fd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fdlist_add(struct fdlist *l, int fd, const char *fmt, ...)
{
        va_list ap;

        if (fd < 0 || l->oom)
                return;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 32;
                struct named_fd *v = realloc(l->v, cap * sizeof(*v));
                if (!v) {
                        l->oom = true;
                        return;
                }
                l->v = v;
                l->cap = cap;
        }
        va_start(ap, fmt);
        vsnprintf(l->v[l->n].name, NAME_MAX_LEN, fmt, ap);
        va_end(ap);
        l->v[l->n++].fd = fd;
}

static uint64_t fnv1a(const char *p, size_t n)
{
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static unsigned long long ino_of(int fd)
{
        struct stat st;

        return fstat(fd, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* What the server holds, as fd names and state text. */
static void collect(struct vfiod_server *s, struct fdlist *fds, struct buf *b)
{
        struct vfiod_client *c;

        /* Domains and leases share one counter: the same number twice (the format has both). */
        bprintf(b, STATE_MAGIC "\nnext %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->next_client_id,
                s->next_object_id, s->next_object_id);
        list_for_each_safe(c, cit, &s->clients, struct vfiod_client, link)
        {
                struct vfiod_domain *d;
                struct vfiod_lease *l;

                if (c->dead)
                        continue;
                fdlist_add(fds, c->fd, "client-%" PRIu64, c->id);
                /* The unit and slice read at connect: never read again from a pid. */
                bprintf(b, "client %" PRIu64 " %d %" PRIu64 " %d %u %u %s %s\n", c->id,
                        (int)c->state, c->caps, c->admin ? 1 : 0, c->max_datagram, c->max_fds,
                        c->peer.unit ? c->peer.unit : "-", c->peer.slice ? c->peer.slice : "-");
                list_for_each_safe(d, dit, &c->domains, struct vfiod_domain, link)
                {
                        struct vfiod_memfd_view *v;

                        fdlist_add(fds, d->container_fd, "container-%" PRIu64, d->id);
                        bprintf(b, "domain %" PRIu64 " %" PRIu64 " %d %d %d %d\n", c->id, d->id,
                                d->model, d->model_set ? 1 : 0, d->mode, d->implicit ? 1 : 0);
                        list_for_each_safe(v, vit, &d->views, struct vfiod_memfd_view, link)
                        {
                                /* An idle view is a cache: the next vfiod maps again. */
                                if (v->refs == 0)
                                        continue;
                                fdlist_add(fds, v->fd, "memfd-%" PRIu64 "-%" PRIu64, d->id, v->id);
                                bprintf(b,
                                        "view %" PRIu64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64
                                        " %llu\n",
                                        d->id, v->id, v->writable ? 1 : 0, v->offset, v->size,
                                        (unsigned long long)v->ino);
                        }
                        for (size_t i = 0; i < d->n_maps; i++) {
                                const struct vfiod_mapping *m = &d->maps[i];

                                bprintf(b,
                                        "map %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                                        " %" PRIu64 "\n",
                                        d->id, m->iova, m->size, m->view->id,
                                        (uint64_t)((uint8_t *)m->addr - m->view->addr));
                        }
                }
                list_for_each_safe(l, lit, &c->leases, struct vfiod_lease, link_client)
                {
                        if (l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE &&
                            l->status != VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED)
                                continue;
                        fdlist_add(fds, l->group_fd, "group-%" PRIu64, l->id);
                        bprintf(b, "lease %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %d %d %d %s %zu\n",
                                c->id, l->id, l->domain->id, l->group_id, l->mode, (int)l->status,
                                (int)l->revoke_reason, l->device, l->n_devs);
                        for (size_t i = 0; l->group && i < l->group->n_bound; i++)
                                bprintf(b, "bound %d %s %s\n", l->group_id, l->group->bound[i].bdf,
                                        l->group->bound[i].prev_driver[0]
                                            ? l->group->bound[i].prev_driver
                                            : "-");
                        for (size_t k = 0; k < l->n_devs; k++) {
                                struct vfiod_lease_dev *dev = &l->devs[k];

                                fdlist_add(fds, dev->fd, "device-%" PRIu64 "-%zu", l->id, k);
                                bprintf(b, "dev %" PRIu64 " %zu %s\n", l->id, k, dev->bdf);
                                for (uint32_t i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++) {
                                        for (uint32_t n = 0;
                                             dev->trigger_fds[i] && n < dev->irqs[i].count; n++) {
                                                int f = dev->trigger_fds[i][n];
                                                unsigned long long ino;

                                                if (f < 0)
                                                        continue;
                                                ino = ino_of(f);
                                                fdlist_add(fds, f, "irq-%" PRIu64 "-%zu-%u-%u-%llu",
                                                           l->id, k, i, n, ino);
                                                bprintf(b, "irq %" PRIu64 " %zu %u %u %llu\n",
                                                        l->id, k, i, n, ino);
                                        }
                                        if (dev->unmask_fds[i] >= 0) {
                                                unsigned long long ino = ino_of(dev->unmask_fds[i]);

                                                fdlist_add(fds, dev->unmask_fds[i],
                                                           "unmask-%" PRIu64 "-%zu-%u-%llu", l->id,
                                                           k, i, ino);
                                                bprintf(b, "unmask %" PRIu64 " %zu %u %llu\n",
                                                        l->id, k, i, ino);
                                        }
                                }
                        }
                }
        }
}

static bool stored_has(const struct vfiod_state *st, const char *name)
{
        for (size_t i = 0; i < st->n_stored; i++)
                if (strcmp(st->stored[i], name) == 0)
                        return true;
        return false;
}

static bool list_has(const struct fdlist *l, const char *name)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i].name, name) == 0)
                        return true;
        return false;
}

/*
 * One step of a save that writes to the fd store or the state. With
 * VFIOD_CRASH_AT_SAVE_STEP=N (a test's knob: tests/vm-systemd) vfiod kills
 * itself with SIGKILL at the Nth step since it started, to show that a crash
 * at any step leaves a complete state.
 */
static void save_step(struct vfiod_state *st)
{
        if (st->crash_at == 0 || ++st->steps != st->crash_at)
                return;
        log_warning("VFIOD_CRASH_AT_SAVE_STEP=%u: killing vfiod at this step of a save, as asked",
                    st->crash_at);
        (void)raise(SIGKILL);
}

static int write_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/*
 * A new memfd holding text, sealed: nothing changes it once it is in the fd
 * store. Written in two halves, each a step of the save (a crash between
 * them leaves a torn memfd that was never stored).
 */
static int state_memfd(struct vfiod_state *st, const char *text, size_t len)
{
        _cleanup_close_ int fd = memfd_create("vfiod-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int r;

        if (fd < 0)
                return -errno;
        r = write_all(fd, text, len / 2);
        if (r < 0)
                return r;
        save_step(st);
        r = write_all(fd, text + len / 2, len - len / 2);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/*
 * Saves the state so that a crash at any instant leaves one complete state
 * in the fd store, whose fds are all there: the new fds are stored first,
 * then the new state, in a new memfd under a new name (state-G+1), then the
 * old state is removed, and only then the fds that only it named. Until the
 * new state is stored the old one holds; between the two, the next vfiod
 * takes the newer (vfiod_state_restore).
 */
void vfiod_state_sync(struct vfiod_state *st)
{
        struct fdlist fds = {0};
        struct buf b = {0};
        char name[NAME_MAX_LEN];
        _cleanup_close_ int memfd = -EBADF;
        uint64_t h;
        int r;

        if (!st || !st->enabled)
                return;
        collect(st->s, &fds, &b);
        h = fnv1a(b.p ? b.p : "", b.len);
        bprintf(&b, "end %016" PRIx64 "\n", h);
        if (fds.oom || b.oom) {
                log_warning("Out of memory writing the state for the fd store");
                goto out;
        }
        if (st->last && st->last_len == b.len && memcmp(st->last, b.p, b.len) == 0)
                goto out;
        for (size_t i = 0; i < fds.n; i++) {
                if (stored_has(st, fds.v[i].name))
                        continue;
                save_step(st);
                r = store_fd(fds.v[i].name, fds.v[i].fd);
                if (r <= 0)
                        log_warning("Cannot store '%s' in the fd store: %s", fds.v[i].name,
                                    r < 0 ? strerror(-r) : "no service manager");
        }
        memfd = state_memfd(st, b.p, b.len);
        if (memfd < 0) {
                log_warning("Cannot write the state for the fd store: %s; the one stored before "
                            "stays",
                            strerror(-memfd));
                goto out;
        }
        snprintf(name, sizeof(name), STATE_FDNAME "-%" PRIu64, st->generation + 1);
        save_step(st);
        r = store_fd(name, memfd);
        if (r <= 0) {
                log_warning("Cannot store the state in the fd store: %s%s",
                            r < 0 ? strerror(-r) : "no service manager",
                            r < 0 ? "; the one stored before stays"
                                  : "; leases will not survive a restart");
                st->enabled = r < 0;
                goto out;
        }
        st->generation++;
        if (st->state_name[0]) {
                save_step(st);
                unstore_fd(st->state_name);
        }
        memcpy(st->state_name, name, sizeof(name));
        for (size_t i = 0; i < st->n_stored; i++)
                if (!list_has(&fds, st->stored[i])) {
                        save_step(st);
                        unstore_fd(st->stored[i]);
                }
        {
                char(*names)[NAME_MAX_LEN] = calloc(fds.n ? fds.n : 1, NAME_MAX_LEN);

                if (names) {
                        for (size_t i = 0; i < fds.n; i++)
                                memcpy(names[i], fds.v[i].name, NAME_MAX_LEN);
                        free(st->stored);
                        st->stored = names;
                        st->n_stored = fds.n;
                }
        }
        free(st->last);
        st->last = b.p;
        st->last_len = b.len;
        b.p = NULL;
out:
        free(fds.v);
        free(b.p);
}

void vfiod_state_stop(struct vfiod_state *st)
{
        struct vfiod_client *c;

        if (!st || !st->enabled)
                return;
        vfiod_state_sync(st);
        list_for_each_safe(c, it, &st->s->clients, struct vfiod_client, link)
        {
                struct vfiod_domain *d;

                list_for_each_safe(d, dit, &c->domains, struct vfiod_domain, link)
                    vfiod_domain_invalidate_vaddrs(d);
        }
        log_notice("Stopping with %zu lease(s) and %u client(s) kept in the fd store",
                   list_length(&st->s->leases), st->s->n_clients);
}

void vfiod_state_enable(struct vfiod_state *st)
{
        const char *crash = getenv("VFIOD_CRASH_AT_SAVE_STEP");

        st->enabled = getenv("NOTIFY_SOCKET") != NULL;
        if (crash && st->enabled) {
                st->crash_at = (unsigned)strtoul(crash, NULL, 10);
                log_warning("VFIOD_CRASH_AT_SAVE_STEP=%u: vfiod will kill itself at that step of "
                            "saving its state (a test's knob)",
                            st->crash_at);
        }
        if (!st->enabled)
                log_notice("--fd-store: not started by a service manager (no NOTIFY_SOCKET); "
                           "leases will not survive a restart");
}

void vfiod_state_abandon(struct vfiod_state *st)
{
        struct vfiod_server *s = st->s;
        struct vfiod_client *c;

        list_for_each_safe(c, cit, &s->clients, struct vfiod_client, link)
        {
                struct vfiod_lease *l;
                struct vfiod_domain *d;

                list_for_each_safe(l, lit, &c->leases, struct vfiod_lease, link_client)
                {
                        for (size_t k = 0; k < l->n_devs; k++) {
                                struct vfiod_lease_dev *dev = &l->devs[k];

                                if (dev->req_fd >= 0)
                                        ev_io_stop(s->loop, &dev->req_io);
                                if (dev->err_fd >= 0)
                                        ev_io_stop(s->loop, &dev->err_io);
                                safe_close(dev->req_fd);
                                safe_close(dev->err_fd);
                                for (uint32_t i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++) {
                                        for (uint32_t n = 0;
                                             dev->trigger_fds[i] && n < dev->irqs[i].count; n++)
                                                safe_close(dev->trigger_fds[i][n]);
                                        free(dev->trigger_fds[i]);
                                        safe_close(dev->unmask_fds[i]);
                                }
                                safe_close(dev->fd);
                        }
                        ev_timer_stop(s->loop, &l->grace);
                        /* No managed device goes back to its driver: the lease lives on. */
                        vfiod_registry_group_free(l->group);
                        safe_close(l->group_fd);
                        vfiod_lease_unlink(l);
                }
                list_for_each_safe(d, dit, &c->domains, struct vfiod_domain, link)
                {
                        /* munmap and close only: the container keeps the IOMMU mappings. */
                        d->model_set = false;
                        vfiod_domain_free(d);
                }
        }
}

/* ---- restore ------------------------------------------------------------------------------ */

/* Tears down a stored fd the state does not (or cannot) account for, by its kind. */
static void teardown_fd(const char *name, int fd)
{
        if (strncmp(name, "device-", 7) == 0) {
                for (uint32_t i = 0; i < VFIOD_N_IRQ_INDEXES; i++)
                        (void)kvfio_irq_disable(fd, i);
                if (kvfio_device_reset(fd) < 0)
                        log_warning("Cannot reset the device of '%s' from the fd store", name);
                else
                        log_notice("'%s' from the fd store: interrupts off, device reset", name);
        } else if (strncmp(name, "container-", 10) == 0) {
                uint64_t bytes = 0;

                if (kvfio_dma_unmap_all(fd, &bytes) == 0)
                        log_notice("'%s' from the fd store: %" PRIu64 " bytes of DMA unmapped",
                                   name, bytes);
        }
        safe_close(fd);
}

static void teardown_passed(struct vfiod_passed *p)
{
        /* Devices first (interrupts off, reset: their DMA stops), then the rest. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < p->n; i++) {
                        bool dev = strncmp(p->fds[i].name, "device-", 7) == 0;

                        if (p->fds[i].fd < 0 || dev != (pass == 0))
                                continue;
                        teardown_fd(p->fds[i].name, p->fds[i].fd);
                        p->fds[i].fd = -EBADF;
                        unstore_fd(p->fds[i].name);
                }
}

static int read_all(int fd, char **ret, size_t *ret_len)
{
        struct stat st;
        char *p;
        size_t o = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > STATE_MAX_LEN)
                return -EINVAL;
        p = malloc((size_t)st.st_size + 1);
        if (!p)
                return -ENOMEM;
        while (o < (size_t)st.st_size) {
                ssize_t n = pread(fd, p + o, (size_t)st.st_size - o, (off_t)o);

                if (n <= 0) {
                        free(p);
                        return n < 0 ? -errno : -EINVAL;
                }
                o += (size_t)n;
        }
        p[o] = '\0';
        *ret = p;
        *ret_len = o;
        return 0;
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

static struct vfiod_client *find_client(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_client *c;

        list_for_each_safe(c, it, &s->clients, struct vfiod_client, link) if (c->id == id) return c;
        return NULL;
}

static struct vfiod_lease *find_lease(struct vfiod_server *s, uint64_t id)
{
        struct vfiod_lease *l;

        list_for_each_safe(l, it, &s->leases, struct vfiod_lease,
                           link_server) if (l->id == id) return l;
        return NULL;
}

static struct vfiod_memfd_view *find_view(struct vfiod_domain *d, uint64_t id)
{
        struct vfiod_memfd_view *v;

        list_for_each_safe(v, it, &d->views, struct vfiod_memfd_view,
                           link) if (v->id == id) return v;
        return NULL;
}

/* The lines of the state, checked: magic first, "end HASH" last and matching. */
static int state_check(char *text, size_t len)
{
        char *end;
        uint64_t h;

        if (len < sizeof(STATE_MAGIC) || strncmp(text, STATE_MAGIC "\n", sizeof(STATE_MAGIC)) != 0)
                return -EINVAL;
        if (text[len - 1] != '\n')
                return -EINVAL;
        text[len - 1] = '\0';
        end = strrchr(text, '\n');
        if (!end || sscanf(end + 1, "end %" SCNx64, &h) != 1)
                return -EINVAL;
        if (fnv1a(text, (size_t)(end + 1 - text)) != h)
                return -EBADMSG;
        *(end + 1) = '\0';
        return 0;
}

/* First pass: every fd a line names is there (restore never starts half-way). */
static int state_check_fds(char *text, const struct vfiod_passed *p, char *why, size_t whylen)
{
        char name[NAME_MAX_LEN];
        char *save = NULL, *copy = strdup(text);
        int r = 0;

        if (!copy)
                return -ENOMEM;
        for (char *line = strtok_r(copy, "\n", &save); line && r == 0;
             line = strtok_r(NULL, "\n", &save)) {
                uint64_t a, b2;
                unsigned k, i, n;
                unsigned long long ino;

                name[0] = '\0';
                if (sscanf(line, "client %" SCNu64, &a) == 1)
                        snprintf(name, sizeof(name), "client-%" PRIu64, a);
                else if (sscanf(line, "domain %*u %" SCNu64, &a) == 1)
                        snprintf(name, sizeof(name), "container-%" PRIu64, a);
                else if (sscanf(line, "view %" SCNu64 " %" SCNu64, &a, &b2) == 2)
                        snprintf(name, sizeof(name), "memfd-%" PRIu64 "-%" PRIu64, a, b2);
                else if (sscanf(line, "lease %*u %" SCNu64, &a) == 1)
                        snprintf(name, sizeof(name), "group-%" PRIu64, a);
                else if (sscanf(line, "dev %" SCNu64 " %u", &a, &k) == 2)
                        snprintf(name, sizeof(name), "device-%" PRIu64 "-%u", a, k);
                else if (sscanf(line, "irq %" SCNu64 " %u %u %u %llu", &a, &k, &i, &n, &ino) == 5)
                        snprintf(name, sizeof(name), "irq-%" PRIu64 "-%u-%u-%u-%llu", a, k, i, n,
                                 ino);
                else if (sscanf(line, "unmask %" SCNu64 " %u %u %llu", &a, &k, &i, &ino) == 4)
                        snprintf(name, sizeof(name), "unmask-%" PRIu64 "-%u-%u-%llu", a, k, i, ino);
                if (name[0] && !passed_has(p, name)) {
                        snprintf(why, whylen, "'%s' is not in the fd store", name);
                        r = -ENOENT;
                }
        }
        free(copy);
        return r;
}

/* Builds one restored lease (the state's "lease" line); on failure the fds it took are closed. */
static int restore_lease(struct vfiod_server *s, struct vfiod_passed *p, uint64_t cid, uint64_t lid,
                         uint64_t did, int group, int mode, const char *device, size_t n_devs,
                         char *why, size_t whylen)
{
        struct vfiod_client *c = find_client(s, cid);
        struct vfiod_domain *d = c ? vfiod_client_find_domain(c, did) : NULL;
        struct vfiod_group *g = NULL;
        struct vfiod_lease *l;
        char name[NAME_MAX_LEN];

        if (!d || n_devs == 0 || n_devs > 256 || vfiod_registry_group(s->devices, group) ||
            strlen(device) >= KVFIO_BDF_MAX) {
                snprintf(why, whylen, "lease %" PRIu64 " does not fit the state", lid);
                return -EINVAL;
        }
        l = vfiod_lease_alloc(c, d, group, mode, device);
        if (!l)
                return -ENOMEM;
        l->id = lid;
        snprintf(name, sizeof(name), "group-%" PRIu64, lid);
        l->group_fd = passed_take(p, name);
        l->devs = calloc(n_devs, sizeof(*l->devs));
        if (!l->devs || vfiod_registry_group_get(s->devices, group, &g) < 0) {
                safe_close(l->group_fd);
                free(l->devs);
                free(l);
                return -ENOMEM;
        }
        l->n_devs = n_devs;
        for (size_t k = 0; k < n_devs; k++) {
                struct vfiod_lease_dev *dev = &l->devs[k];

                dev->lease = l;
                dev->req_fd = dev->err_fd = -EBADF;
                for (int i = 0; i < VFIOD_N_CLIENT_IRQ_INDEXES; i++)
                        dev->unmask_fds[i] = -EBADF;
                snprintf(name, sizeof(name), "device-%" PRIu64 "-%zu", lid, k);
                dev->fd = passed_take(p, name);
        }
        g->state = VFIOD_GROUP_LEASED;
        g->lease = l;
        l->group = g;
        d->mode = mode;
        d->n_leases++;
        c->usage.leases++;
        /* Linked now: from here on a failure releases it with the full sequence. */
        list_add_tail(&c->leases, &l->link_client);
        list_add_tail(&s->leases, &l->link_server);
        return 0;
}

static int restore_dev_info(struct vfiod_lease *l, size_t k, const char *bdf)
{
        struct vfiod_lease_dev *dev = &l->devs[k];
        int r;

        if (copy_str(dev->bdf, sizeof(dev->bdf), bdf) < 0)
                return -EINVAL;
        r = kvfio_device_get_info(dev->fd, &dev->info);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < VFIOD_N_IRQ_INDEXES && i < dev->info.num_irqs; i++) {
                if (kvfio_device_get_irq_info(dev->fd, i, &dev->irqs[i]) < 0)
                        dev->irqs[i] = (struct kvfio_irq_info){.index = i};
                if (dev->irqs[i].count > KVFIO_IRQ_MAX_COUNT)
                        dev->irqs[i].count = KVFIO_IRQ_MAX_COUNT;
        }
        vfiod_lease_dev_arm_events(dev);
        return 0;
}

static int restore_irq_take(struct vfiod_lease *l, size_t k, unsigned index, unsigned vector,
                            int fd)
{
        struct vfiod_lease_dev *dev = &l->devs[k];

        if (index >= VFIOD_N_CLIENT_IRQ_INDEXES || vector >= dev->irqs[index].count) {
                safe_close(fd);
                return -EINVAL;
        }
        if (!dev->trigger_fds[index]) {
                dev->trigger_fds[index] = malloc(dev->irqs[index].count * sizeof(int));
                if (!dev->trigger_fds[index]) {
                        safe_close(fd);
                        return -ENOMEM;
                }
                for (uint32_t i = 0; i < dev->irqs[index].count; i++)
                        dev->trigger_fds[index][i] = -EBADF;
        }
        /* The eventfd is the lease's again (the kernel still signals it). */
        safe_close(dev->trigger_fds[index][vector]);
        dev->trigger_fds[index][vector] = fd;
        return 0;
}

/*
 * Adds the connection of client id with its old id. Uid, gid, pid and groups
 * are the kernel's (recorded at connect()); the unit and slice are those the
 * state saved, read when the client connected: its pid may name another
 * process by now.
 */
static int restore_client_take(struct vfiod_server *s, int fd, uint64_t id, const char *unit,
                               const char *slice)
{
        struct vfiod_peer peer = {0};
        int r;

        if (fd < 0 || id == 0 || find_client(s, id)) {
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
        s->next_client_id = id - 1;
        /* The fd moves to the client; the peer is copied. */
        r = vfiod_server_add_client_take(s, fd, &peer);
        vfiod_peer_done(&peer);
        return r;
}

static int restore_lines(struct vfiod_state *st, struct vfiod_passed *p, char *text, char *why,
                         size_t whylen, size_t *ret_leases)
{
        struct vfiod_server *s = st->s;
        char *save = NULL, name[NAME_MAX_LEN];
        size_t leases = 0;
        int r = 0;

        for (char *line = strtok_r(text, "\n", &save); line && r == 0;
             line = strtok_r(NULL, "\n", &save)) {
                uint64_t a, b2, c3, d4, e5;
                unsigned k, i, n, u1, u2;
                int x, y, z, w;
                unsigned long long ino;
                char s1[64], s2[64], unit[256], slice[256];
                struct vfiod_client *c;
                struct vfiod_domain *d;
                struct vfiod_lease *l;

                if (strcmp(line, STATE_MAGIC) == 0)
                        continue;
                if (sscanf(line, "next %" SCNu64 " %" SCNu64 " %" SCNu64, &a, &b2, &c3) == 3) {
                        s->next_client_id = a > s->next_client_id ? a : s->next_client_id;
                        s->next_object_id = b2 > c3 ? b2 : c3;
                } else if ((z = sscanf(line,
                                       "client %" SCNu64 " %d %" SCNu64 " %d %u %u %255s %255s", &a,
                                       &x, &b2, &y, &u1, &u2, unit, slice)) == 6 ||
                           z == 8) {
                        uint64_t next = s->next_client_id;

                        snprintf(name, sizeof(name), "client-%" PRIu64, a);
                        /* The fd moves to the client (closed on failure). */
                        r = restore_client_take(s, passed_take(p, name), a,
                                                z == 8 && strcmp(unit, "-") != 0 ? unit : NULL,
                                                z == 8 && strcmp(slice, "-") != 0 ? slice : NULL);
                        s->next_client_id = next > a ? next : a;
                        if (r < 0)
                                break;
                        c = container_of(s->clients.prev, struct vfiod_client, link);
                        c->state = x == VFIOD_CLIENT_READY ? VFIOD_CLIENT_READY : VFIOD_CLIENT_NEW;
                        c->caps = b2;
                        c->admin = y != 0;
                        c->max_datagram = u1;
                        c->max_fds = u2;
                } else if ((w = 0, sscanf(line, "domain %" SCNu64 " %" SCNu64 " %d %d %d %d", &a,
                                          &b2, &x, &y, &z, &w)) >= 5) {
                        int fd;

                        c = find_client(s, a);
                        snprintf(name, sizeof(name), "container-%" PRIu64, b2);
                        fd = passed_take(p, name);
                        if (!c) {
                                safe_close(fd);
                                r = -EINVAL;
                                break;
                        }
                        /* The container fd moves to the domain. */
                        r = vfiod_domain_adopt_take(fd, b2, x, y != 0, &c->usage, &d);
                        if (r < 0)
                                break;
                        d->mode = z;
                        d->implicit = w != 0; /* absent in an older state: explicit */
                        list_add_tail(&c->domains, &d->link);
                } else if (sscanf(line,
                                  "view %" SCNu64 " %" SCNu64 " %d %" SCNu64 " %" SCNu64 " %llu",
                                  &a, &b2, &x, &c3, &d4, &ino) == 6) {
                        struct vfiod_memfd_view *v;
                        struct vfiod_client *cc;
                        int fd;

                        d = NULL;
                        list_for_each_safe(cc, it, &s->clients, struct vfiod_client, link) if (!d)
                            d = vfiod_client_find_domain(cc, a);
                        snprintf(name, sizeof(name), "memfd-%" PRIu64 "-%" PRIu64, a, b2);
                        fd = passed_take(p, name);
                        if (!d) {
                                safe_close(fd);
                                r = -EINVAL;
                                break;
                        }
                        /* The memfd moves to the view. */
                        r = vfiod_domain_adopt_view_take(d, fd, b2, x != 0, c3, d4, &v);
                        if (r == 0 && (unsigned long long)v->ino != ino) {
                                snprintf(why, whylen, "'%s' is not the memfd the state names",
                                         name);
                                r = -EINVAL;
                        }
                } else if (sscanf(line,
                                  "map %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
                                  &a, &b2, &c3, &d4, &e5) == 5) {
                        struct vfiod_memfd_view *v = NULL;
                        struct vfiod_client *cc;

                        d = NULL;
                        list_for_each_safe(cc, it, &s->clients, struct vfiod_client, link) if (!d)
                            d = vfiod_client_find_domain(cc, a);
                        if (d)
                                v = find_view(d, d4);
                        r = v ? vfiod_domain_adopt_mapping(d, v, b2, c3, e5) : -EINVAL;
                        if (r < 0)
                                snprintf(why, whylen,
                                         "mapping iova 0x%" PRIx64 "+0x%" PRIx64
                                         " of domain %" PRIu64 ": %s",
                                         b2, c3, a, strerror(-r));
                } else if (sscanf(line,
                                  "lease %" SCNu64 " %" SCNu64 " %" SCNu64 " %d %d %d %d %31s %u",
                                  &a, &b2, &c3, &x, &y, &z, &w, s1, &n) == 9) {
                        r = restore_lease(s, p, a, b2, c3, x, y, s1, n, why, whylen);
                        leases += r == 0;
                        /* Asked back before the restart: asked again once restored. */
                        if (r == 0 && z == VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED &&
                            (l = find_lease(s, b2)))
                                l->revoke_reason = (Vfiod__ReleaseReason)(w ? w : 1);
                } else if (sscanf(line, "bound %d %63s %63s", &x, s1, s2) == 3) {
                        struct vfiod_group *g = vfiod_registry_group(s->devices, x);
                        struct vfiod_bound *bd;

                        if (!g) {
                                r = -EINVAL;
                                break;
                        }
                        bd = realloc(g->bound, (g->n_bound + 1) * sizeof(*bd));
                        if (!bd) {
                                r = -ENOMEM;
                                break;
                        }
                        g->bound = bd;
                        if (copy_str(bd[g->n_bound].bdf, sizeof(bd->bdf), s1) < 0 ||
                            copy_str(bd[g->n_bound].prev_driver, sizeof(bd->prev_driver),
                                     strcmp(s2, "-") == 0 ? "" : s2) < 0) {
                                r = -EINVAL;
                                break;
                        }
                        g->n_bound++;
                } else if (sscanf(line, "dev %" SCNu64 " %u %63s", &a, &k, s1) == 3) {
                        l = find_lease(s, a);
                        r = l && k < l->n_devs ? restore_dev_info(l, k, s1) : -EINVAL;
                        if (r < 0)
                                snprintf(why, whylen, "device '%s' of lease %" PRIu64 ": %s", s1, a,
                                         strerror(-r));
                } else if (sscanf(line, "irq %" SCNu64 " %u %u %u %llu", &a, &k, &i, &n, &ino) ==
                           5) {
                        int fd;

                        l = find_lease(s, a);
                        snprintf(name, sizeof(name), "irq-%" PRIu64 "-%u-%u-%u-%llu", a, k, i, n,
                                 ino);
                        fd = passed_take(p, name);
                        r = l && k < l->n_devs ? restore_irq_take(l, k, i, n, fd)
                                               : (safe_close(fd), -EINVAL);
                } else if (sscanf(line, "unmask %" SCNu64 " %u %u %llu", &a, &k, &i, &ino) == 4) {
                        int fd;

                        l = find_lease(s, a);
                        snprintf(name, sizeof(name), "unmask-%" PRIu64 "-%u-%u-%llu", a, k, i, ino);
                        fd = passed_take(p, name);
                        if (!l || k >= l->n_devs || i >= VFIOD_N_CLIENT_IRQ_INDEXES) {
                                safe_close(fd);
                                r = -EINVAL;
                                break;
                        }
                        safe_close(l->devs[k].unmask_fds[i]);
                        l->devs[k].unmask_fds[i] = fd;
                } else {
                        snprintf(why, whylen, "a line it does not know: '%.60s'", line);
                        r = -EINVAL;
                }
        }
        if (r < 0 && !why[0])
                snprintf(why, whylen, "%s", strerror(-r));
        *ret_leases = leases;
        return r;
}

/* The generation of an fd-store name of a state ("state-G": G; "state": 0), or -1. */
static int64_t state_generation(const char *name)
{
        const char *g;
        char *end;
        unsigned long long v;

        if (strcmp(name, STATE_FDNAME) == 0)
                return 0;
        if (strncmp(name, STATE_FDNAME "-", sizeof(STATE_FDNAME)) != 0)
                return -1;
        g = name + sizeof(STATE_FDNAME);
        if (*g < '0' || *g > '9')
                return -1;
        errno = 0;
        v = strtoull(g, &end, 10);
        return errno || *end || v > INT64_MAX ? -1 : (int64_t)v;
}

/*
 * The newest complete state in the fd store: its text (checked, the "end"
 * line cut off), a copy as it was stored (*ret_raw, *ret_raw_len), its name
 * and generation. Its fd is closed (the store keeps it, under its name) and
 * marked taken; older or broken states stay in passed, to be removed.
 */
static int pick_state(struct vfiod_passed *p, char **ret_text, char **ret_raw, size_t *ret_raw_len,
                      struct vfiod_state *st, char *why, size_t whylen)
{
        _cleanup_free_ bool *tried = calloc(p->n, sizeof(bool));
        int r = -ENOENT;

        if (!tried)
                return -ENOMEM;
        snprintf(why, whylen, "no '" STATE_FDNAME "' in the fd store");
        for (;;) {
                char *text = NULL, *raw;
                size_t best = SIZE_MAX, len = 0;
                int64_t g = -1;

                for (size_t i = 0; i < p->n; i++) {
                        int64_t gi = state_generation(p->fds[i].name);

                        if (p->fds[i].fd >= 0 && !tried[i] && gi > g) {
                                best = i;
                                g = gi;
                        }
                }
                if (best == SIZE_MAX)
                        return r;
                tried[best] = true;
                r = read_all(p->fds[best].fd, &text, &len);
                raw = r == 0 ? malloc(len) : NULL;
                if (r == 0 && !raw)
                        r = -ENOMEM;
                if (r == 0) {
                        memcpy(raw, text, len);
                        r = state_check(text, len);
                }
                if (r == 0) {
                        p->fds[best].fd = safe_close(p->fds[best].fd);
                        snprintf(st->state_name, sizeof(st->state_name), "%s", p->fds[best].name);
                        /* The next one is named after the newest there was, broken or not. */
                        for (size_t i = 0; i < p->n; i++)
                                if (state_generation(p->fds[i].name) > g)
                                        g = state_generation(p->fds[i].name);
                        st->generation = (uint64_t)g;
                        *ret_text = text;
                        *ret_raw = raw;
                        *ret_raw_len = len;
                        return 0;
                }
                /* Left in passed: removed from the store with the other leftovers. */
                snprintf(why, whylen, "the stored state '%s' is %s", p->fds[best].name,
                         r == -EBADMSG ? "torn (its hash does not match)" : "not readable");
                log_warning("%s; looking for an older one", why);
                free(text);
                free(raw);
        }
}

int vfiod_state_restore(struct vfiod_state *st, struct vfiod_passed *p)
{
        struct vfiod_server *s = st->s;
        struct vfiod_client *c;
        struct vfiod_lease *l;
        char *text = NULL, *raw = NULL, why[256] = "";
        size_t raw_len = 0, leases = 0;
        int r;

        if (p->n == 0)
                return 0;
        r = pick_state(p, &text, &raw, &raw_len, st, why, sizeof(why));
        if (r < 0)
                goto teardown;
        r = state_check_fds(text, p, why, sizeof(why));
        if (r < 0)
                goto teardown;
        r = restore_lines(st, p, text, why, sizeof(why), &leases);
        if (r < 0)
                goto teardown;
        free(text);
        /* As it was stored: the next sync writes nothing while nothing changes. */
        free(st->last);
        st->last = raw;
        st->last_len = raw_len;
        /* What was taken is in the fd store already: the next sync adds nothing twice. */
        st->stored = calloc(p->n, NAME_MAX_LEN);
        for (size_t i = 0; st->stored && i < p->n; i++)
                if (p->fds[i].fd < 0 && state_generation(p->fds[i].name) < 0)
                        snprintf(st->stored[st->n_stored++], NAME_MAX_LEN, "%s", p->fds[i].name);
        /* Stored fds the state does not name (a crash between two syncs) go. */
        teardown_passed(p);
        list_for_each_safe(l, it, &s->leases, struct vfiod_lease, link_server)
        {
                struct vfiod_log_about a =
                    vfiod_client_about(l->client, l->device, l->group_id, l->id);

                vfiod_log_about(LOG_NOTICE, &a,
                                "restored lease %" PRIu64
                                " of device '%s' (group %d, domain %" PRIu64
                                ", %zu mapping(s)) from the fd store",
                                l->id, l->device, l->group_id, l->domain->id, l->domain->n_maps);
                if (!vfiod_lease_policy_check(l, s->policy))
                        vfiod_lease_revoke(l, VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE,
                                           "the policy no longer allows it");
                else if (l->revoke_reason)
                        vfiod_lease_revoke(l, l->revoke_reason,
                                           "asked back before vfiod restarted");
        }
        log_notice("Restored %zu lease(s) and %u client(s) from the fd store", leases,
                   s->n_clients);
        return (int)leases;

teardown:
        free(text);
        free(raw);
        log_error("Cannot restore the state from the fd store: %s; releasing everything in it",
                  why[0] ? why : strerror(-r));
        /* What was rebuilt goes through the full release sequence. */
        list_for_each_safe(c, it, &s->clients, struct vfiod_client, link)
        {
                list_remove(&c->link);
                s->n_clients--;
                vfiod_client_free(c);
        }
        teardown_passed(p);
        if (st->state_name[0])
                unstore_fd(st->state_name);
        st->state_name[0] = '\0';
        free(st->stored);
        st->stored = NULL;
        st->n_stored = 0;
        return r < 0 ? r : -EINVAL;
}
