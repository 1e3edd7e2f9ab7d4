/* SPDX-License-Identifier: MIT */
#include "daemon/closer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/limits.h"
#include "daemon/log.h"
#include "proto/macro.h"
#include "proto/transport.h"

_Static_assert(VFIOD_CLOSER_MAX_FDS_PER_USER >= VFIOD_PROTO_MAX_FDS,
               "a uid must have room for one datagram of fds");

/* How long vfiod_closer_free() waits for a close that blocks. */
#define CLOSER_EXIT_WAIT_MS 2000

/* One fd waiting for the thread. */
struct closer_fd {
        struct closer_fd *next;
        int fd; /* owned */
        uid_t uid;
};

/* A uid with fds queued or being closed. */
struct closer_user {
        struct closer_user *next;
        uid_t uid;
        uint32_t n;
};

struct vfiod_closer {
        struct ev_loop *loop;
        ev_async room; /* the thread closed something */
        void (*room_cb)(void *userdata);
        void *userdata;

        pthread_mutex_t lock; /* everything below */
        pthread_cond_t wake;
        pthread_t thread;
        bool started, stopping, orphaned;
        struct closer_fd *head, **tail; /* FIFO, owned */
        size_t pending;                 /* queued, or being closed by the thread */
        struct closer_user *users;      /* owned; at most VFIOD_CLOSER_MAX_FDS_PER_USER each */
        bool said_thread_failed;
};

static struct closer_user *user_find(struct vfiod_closer *c, uid_t uid)
{
        for (struct closer_user *u = c->users; u; u = u->next)
                if (u->uid == uid)
                        return u;
        return NULL;
}

static void user_put(struct vfiod_closer *c, uid_t uid)
{
        for (struct closer_user **p = &c->users; *p; p = &(*p)->next)
                if ((*p)->uid == uid) {
                        struct closer_user *u = *p;

                        if (--u->n == 0) {
                                *p = u->next;
                                free(u);
                        }
                        return;
                }
}

static void *closer_main(void *userdata)
{
        struct vfiod_closer *c = userdata;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                int fd;
                uid_t uid;

                struct closer_fd *q;

                while (!c->head && !c->stopping)
                        pthread_cond_wait(&c->wake, &c->lock);
                if (!c->head)
                        break; /* stopping, and nothing left */
                q = c->head;
                c->head = q->next;
                if (!c->head)
                        c->tail = &c->head;
                fd = q->fd;
                uid = q->uid;
                free(q);
                pthread_mutex_unlock(&c->lock);
                /* The one place that may block, for as long as the client likes. */
                (void)safe_close(fd);
                pthread_mutex_lock(&c->lock);
                user_put(c, uid);
                c->pending--;
                /* Under the lock: once orphaned, the loop and the watcher may be gone. */
                if (!c->orphaned)
                        ev_async_send(c->loop, &c->room);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static void room_cb(struct ev_loop *loop, ev_async *w, int revents)
{
        struct vfiod_closer *c = w->data;

        if (c->room_cb)
                c->room_cb(c->userdata);
}

int vfiod_closer_new(struct ev_loop *loop, void (*cb)(void *userdata), void *userdata,
                     struct vfiod_closer **ret)
{
        struct vfiod_closer *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->loop = loop;
        c->room_cb = cb;
        c->userdata = userdata;
        c->tail = &c->head;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->wake, NULL);
        ev_async_init(&c->room, room_cb);
        c->room.data = c;
        ev_async_start(loop, &c->room);
        /* It alone does not keep the loop running. */
        ev_unref(loop);
        *ret = c;
        return 0;
}

void vfiod_closer_take(struct vfiod_closer *c, int fd, uid_t uid)
{
        struct closer_fd *q = malloc(sizeof(*q));
        struct closer_user *u;
        int r;

        pthread_mutex_lock(&c->lock);
        u = user_find(c, uid);
        if (!u && q) {
                u = calloc(1, sizeof(*u));
                if (u) {
                        u->uid = uid;
                        u->next = c->users;
                        c->users = u;
                }
        }
        if (!q || !u || u->n >= VFIOD_CLOSER_MAX_FDS_PER_USER) {
                /* Out of memory, or (impossible: vfiod_closer_has_room() comes first) full. */
                pthread_mutex_unlock(&c->lock);
                free(q);
                log_error("closer: cannot queue an fd of uid %u: closing it on the loop",
                          (unsigned)uid);
                (void)safe_close(fd);
                return;
        }
        *q = (struct closer_fd){.fd = fd, .uid = uid};
        *c->tail = q;
        c->tail = &q->next;
        c->pending++;
        u->n++;
        if (!c->started) {
                r = -pthread_create(&c->thread, NULL, closer_main, c);
                if (r == 0)
                        c->started = true;
                else if (!c->said_thread_failed) {
                        /* The fds wait (and their senders are not read) until a retry works. */
                        log_error("closer: cannot start its thread: %s", strerror(-r));
                        c->said_thread_failed = true;
                }
        }
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
}

bool vfiod_closer_has_room(struct vfiod_closer *c, uid_t uid)
{
        const struct closer_user *u;
        bool room;

        if (!c)
                return true;
        pthread_mutex_lock(&c->lock);
        u = user_find(c, uid);
        /* Per uid only: what other users queued never holds this one back. */
        room = (u ? u->n : 0) + VFIOD_PROTO_MAX_FDS <= VFIOD_CLOSER_MAX_FDS_PER_USER;
        pthread_mutex_unlock(&c->lock);
        return room;
}

size_t vfiod_closer_pending(struct vfiod_closer *c, bool by_uid, uid_t uid)
{
        const struct closer_user *u;
        size_t n;

        if (!c)
                return 0;
        pthread_mutex_lock(&c->lock);
        u = user_find(c, uid);
        n = by_uid ? (u ? u->n : 0) : c->pending;
        pthread_mutex_unlock(&c->lock);
        return n;
}

void vfiod_closer_free(struct vfiod_closer *c)
{
        struct timespec until;
        size_t left;
        int r = 0;

        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->stopping = true;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        if (c->started) {
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += CLOSER_EXIT_WAIT_MS / 1000;
                until.tv_nsec += (long)(CLOSER_EXIT_WAIT_MS % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                r = pthread_timedjoin_np(c->thread, NULL, &until);
        }
        ev_ref(c->loop);
        ev_async_stop(c->loop, &c->room);
        pthread_mutex_lock(&c->lock);
        left = c->pending;
        c->orphaned = r != 0;
        pthread_mutex_unlock(&c->lock);
        if (r != 0) {
                /* Blocked in a close: the thread (and c) are left to the process's exit. */
                log_warning("closer: %zu fd(s) clients sent are still being closed after %d ms; "
                            "leaving them to the exit",
                            left, CLOSER_EXIT_WAIT_MS);
                pthread_detach(c->thread);
                return;
        }
        /* Never started (it could not be): these wait for the exit too, never closed here. */
        if (left > 0) {
                log_warning("closer: %zu fd(s) clients sent were never closed", left);
                return;
        }
        while (c->users) {
                struct closer_user *u = c->users;

                c->users = u->next;
                free(u);
        }
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
}
