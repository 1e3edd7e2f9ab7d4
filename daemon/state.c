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

#include "daemon/lease.h"
#include "daemon/server.h"
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

static void bvprintf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void bvprintf(struct buf *b, const char *fmt, va_list ap)
{
        va_list aq;
        int n;

        if (b->oom)
                return;
        for (;;) {
                va_copy(aq, ap);
                n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, aq);
                va_end(aq);
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

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        bvprintf(b, fmt, ap);
        va_end(ap);
}

struct fdlist {
        struct named_fd *v;
        size_t n, cap;
        bool oom;
};

static void fdlist_vadd(struct fdlist *l, int fd, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void fdlist_vadd(struct fdlist *l, int fd, const char *fmt, va_list ap)
{
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
        vsnprintf(l->v[l->n].name, NAME_MAX_LEN, fmt, ap);
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

struct vfiod_save {
        struct fdlist fds;
        struct buf text;
};

void vfiod_save_line(struct vfiod_save *sv, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        bvprintf(&sv->text, fmt, ap);
        va_end(ap);
        bprintf(&sv->text, "\n");
}

void vfiod_save_fd(struct vfiod_save *sv, int fd, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        fdlist_vadd(&sv->fds, fd, fmt, ap);
        va_end(ap);
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
/* The whole state as text ("end HASH" last) and the fds it names; -ENOMEM when out of memory. */
static int state_build(struct vfiod_state *st, struct vfiod_save *sv)
{
        uint64_t h;

        bprintf(&sv->text, STATE_MAGIC "\n");
        vfiod_server_save(st->s, sv);
        h = fnv1a(sv->text.p ? sv->text.p : "", sv->text.len);
        bprintf(&sv->text, "end %016" PRIx64 "\n", h);
        return sv->fds.oom || sv->text.oom ? -ENOMEM : 0;
}

/* Stores the fds the state names that are not in the fd store yet. */
static void store_new_fds(struct vfiod_state *st, const struct fdlist *fds)
{
        for (size_t i = 0; i < fds->n; i++) {
                int r;

                if (stored_has(st, fds->v[i].name))
                        continue;
                save_step(st);
                r = store_fd(fds->v[i].name, fds->v[i].fd);
                if (r <= 0)
                        log_warning("Cannot store '%s' in the fd store: %s", fds->v[i].name,
                                    r < 0 ? strerror(-r) : "no service manager");
        }
}

/* Stores text in a new memfd as state-G+1, then removes state-G. */
static int store_state(struct vfiod_state *st, const char *text, size_t len)
{
        _cleanup_close_ int memfd = state_memfd(st, text, len);
        char name[NAME_MAX_LEN];
        int r;

        if (memfd < 0) {
                log_warning("Cannot write the state for the fd store: %s; the one stored before "
                            "stays",
                            strerror(-memfd));
                return memfd;
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
                return r < 0 ? r : -ENOTCONN;
        }
        st->generation++;
        if (st->state_name[0]) {
                save_step(st);
                unstore_fd(st->state_name);
        }
        memcpy(st->state_name, name, sizeof(name));
        return 0;
}

/* Removes the fds the stored state no longer names; remembers those it names. */
static void unstore_gone(struct vfiod_state *st, const struct fdlist *fds)
{
        char(*names)[NAME_MAX_LEN];

        for (size_t i = 0; i < st->n_stored; i++)
                if (!list_has(fds, st->stored[i])) {
                        save_step(st);
                        unstore_fd(st->stored[i]);
                }
        names = calloc(fds->n ? fds->n : 1, NAME_MAX_LEN);
        if (!names)
                return;
        for (size_t i = 0; i < fds->n; i++)
                memcpy(names[i], fds->v[i].name, NAME_MAX_LEN);
        free(st->stored);
        st->stored = names;
        st->n_stored = fds->n;
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
        struct vfiod_save sv = {0};

        if (!st || !st->enabled)
                return;
        if (state_build(st, &sv) < 0) {
                log_warning("Out of memory writing the state for the fd store");
                goto out;
        }
        if (st->last && st->last_len == sv.text.len &&
            memcmp(st->last, sv.text.p, sv.text.len) == 0)
                goto out;
        store_new_fds(st, &sv.fds);
        if (store_state(st, sv.text.p, sv.text.len) < 0)
                goto out;
        unstore_gone(st, &sv.fds);
        free(st->last);
        st->last = TAKE_PTR(sv.text.p);
        st->last_len = sv.text.len;
out:
        free(sv.fds.v);
        free(sv.text.p);
}

void vfiod_state_stop(struct vfiod_state *st)
{
        if (!st || !st->enabled)
                return;
        vfiod_state_sync(st);
        vfiod_server_keep(st->s);
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
        vfiod_server_abandon(st->s);
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

struct vfiod_load {
        struct vfiod_server *s;
        struct vfiod_passed *p;
        bool checking; /* the first pass: only the fds are checked */
        int check_r;   /* -ENOENT once an fd is missing */
        char *why;
        size_t whylen;
};

struct vfiod_server *vfiod_load_server(struct vfiod_load *ld)
{
        return ld->s;
}

bool vfiod_load_checking(const struct vfiod_load *ld)
{
        return ld->checking;
}

struct vfiod_domain *vfiod_load_domain(struct vfiod_load *ld, uint64_t id)
{
        return vfiod_server_find_domain(ld->s, id);
}

int vfiod_load_fd(struct vfiod_load *ld, const char *fmt, ...)
{
        char name[NAME_MAX_LEN];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(name, sizeof(name), fmt, ap);
        va_end(ap);
        if (!ld->checking)
                return passed_take(ld->p, name);
        if (passed_has(ld->p, name))
                return -EBADF;
        if (ld->check_r == 0)
                snprintf(ld->why, ld->whylen, "'%s' is not in the fd store", name);
        ld->check_r = -ENOENT;
        return -ENOENT;
}

int vfiod_load_fail(struct vfiod_load *ld, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(ld->why, ld->whylen, fmt, ap);
        va_end(ap);
        return r;
}

/* The keywords of the state, each with the object that loads its lines. */
static const struct vfiod_load_keyword *const keyword_tables[] = {
    vfiod_server_keywords,
    vfiod_client_keywords,
    vfiod_domain_keywords,
    vfiod_lease_keywords,
};

static const struct vfiod_load_keyword *keyword_find(const char *word, size_t len)
{
        for (size_t t = 0; t < ELEMENTSOF(keyword_tables); t++)
                for (const struct vfiod_load_keyword *k = keyword_tables[t]; k->keyword; k++)
                        if (strlen(k->keyword) == len && strncmp(k->keyword, word, len) == 0)
                                return k;
        return NULL;
}

/* Hands one line to the loader of its keyword. */
static int load_line(struct vfiod_load *ld, const char *line)
{
        size_t len = strcspn(line, " \t");
        const struct vfiod_load_keyword *k = keyword_find(line, len);
        int r = k ? k->load(ld, line + len) : VFIOD_LOAD_UNKNOWN;

        if (ld->checking)
                return ld->check_r;
        if (r == VFIOD_LOAD_UNKNOWN)
                return vfiod_load_fail(ld, -EINVAL, "a line it does not know: '%.60s'", line);
        return r;
}

/*
 * Reads the lines of text (the "end" line cut off) in order: checking, only
 * whether every fd they name is there (restore never starts half-way);
 * else builds what they say.
 */
static int load_lines(struct vfiod_load *ld, const char *text)
{
        _cleanup_free_ char *copy = strdup(text);
        char *save = NULL;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        for (char *line = strtok_r(copy, "\n", &save); line && r == 0;
             line = strtok_r(NULL, "\n", &save))
                if (strcmp(line, STATE_MAGIC) != 0)
                        r = load_line(ld, line);
        if (r < 0 && !ld->why[0])
                snprintf(ld->why, ld->whylen, "%s", strerror(-r));
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

/* What was taken is in the fd store already: the next sync adds nothing twice. */
static void remember_taken(struct vfiod_state *st, const struct vfiod_passed *p)
{
        st->stored = calloc(p->n, NAME_MAX_LEN);
        for (size_t i = 0; st->stored && i < p->n; i++)
                if (p->fds[i].fd < 0 && state_generation(p->fds[i].name) < 0)
                        snprintf(st->stored[st->n_stored++], NAME_MAX_LEN, "%s", p->fds[i].name);
}

int vfiod_state_restore(struct vfiod_state *st, struct vfiod_passed *p)
{
        struct vfiod_server *s = st->s;
        char *text = NULL, *raw = NULL, why[256] = "";
        struct vfiod_load ld = {
            .s = s, .p = p, .checking = true, .why = why, .whylen = sizeof(why)};
        size_t raw_len = 0;
        int r;

        if (p->n == 0)
                return 0;
        r = pick_state(p, &text, &raw, &raw_len, st, why, sizeof(why));
        if (r < 0)
                goto teardown;
        r = load_lines(&ld, text);
        if (r < 0)
                goto teardown;
        ld.checking = false;
        r = load_lines(&ld, text);
        if (r < 0)
                goto teardown;
        free(text);
        /* As it was stored: the next sync writes nothing while nothing changes. */
        free(st->last);
        st->last = raw;
        st->last_len = raw_len;
        remember_taken(st, p);
        /* Stored fds the state does not name (a crash between two syncs) go. */
        teardown_passed(p);
        return (int)vfiod_server_restored(s);

teardown:
        free(text);
        free(raw);
        log_error("Cannot restore the state from the fd store: %s; releasing everything in it",
                  why[0] ? why : strerror(-r));
        /* What was rebuilt goes through the full release sequence. */
        vfiod_server_drop_clients(s);
        teardown_passed(p);
        if (st->state_name[0])
                unstore_fd(st->state_name);
        st->state_name[0] = '\0';
        free(st->stored);
        st->stored = NULL;
        st->n_stored = 0;
        return r < 0 ? r : -EINVAL;
}
