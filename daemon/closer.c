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
_Static_assert(VFIOD_CLOSER_MAX_FDS >= VFIOD_CLOSER_MAX_FDS_PER_USER + VFIOD_PROTO_MAX_FDS,
               "one uid must not be able to stop every connection being read");

/* How long vfiod_closer_free() waits for a close that blocks. */
#define CLOSER_EXIT_WAIT_MS 2000

struct closer_user {
        uid_t uid;
        uint32_t n; /* queued or being closed */
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
        struct {
                int fd; /* owned */
                uid_t uid;
        } queue[VFIOD_CLOSER_MAX_FDS]; /* a ring: head, n_queued */
        size_t head, n_queued;
        size_t pending; /* queued, or being closed by the thread */
        struct closer_user users[VFIOD_CLOSER_MAX_FDS];
        size_t n_users;
        bool said_thread_failed;
};

static struct closer_user *user_find(struct vfiod_closer *c, uid_t uid)
{
        for (size_t i = 0; i < c->n_users; i++)
                if (c->users[i].uid == uid)
                        return &c->users[i];
        return NULL;
}

static void user_put(struct vfiod_closer *c, uid_t uid)
{
        struct closer_user *u = user_find(c, uid);

        if (u && --u->n == 0)
                *u = c->users[--c->n_users];
}

static void *closer_main(void *userdata)
{
        struct vfiod_closer *c = userdata;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                int fd;
                uid_t uid;

                while (c->n_queued == 0 && !c->stopping)
                        pthread_cond_wait(&c->wake, &c->lock);
                if (c->n_queued == 0)
                        break; /* stopping, and nothing left */
                fd = c->queue[c->head].fd;
                uid = c->queue[c->head].uid;
                c->head = (c->head + 1) % VFIOD_CLOSER_MAX_FDS;
                c->n_queued--;
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
        struct closer_user *u;
        size_t tail;
        int r;

        pthread_mutex_lock(&c->lock);
        if (c->n_queued == VFIOD_CLOSER_MAX_FDS) {
                /* vfiod_closer_has_room() before every read makes this impossible. */
                pthread_mutex_unlock(&c->lock);
                log_error("closer: queue full (%d fds): closing an fd of uid %u on the loop",
                          VFIOD_CLOSER_MAX_FDS, (unsigned)uid);
                (void)safe_close(fd);
                return;
        }
        tail = (c->head + c->n_queued) % VFIOD_CLOSER_MAX_FDS;
        c->queue[tail].fd = fd;
        c->queue[tail].uid = uid;
        c->n_queued++;
        c->pending++;
        u = user_find(c, uid);
        if (!u) {
                u = &c->users[c->n_users++];
                *u = (struct closer_user){.uid = uid};
        }
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
        room = c->pending + VFIOD_PROTO_MAX_FDS <= VFIOD_CLOSER_MAX_FDS &&
               (u ? u->n : 0) + VFIOD_PROTO_MAX_FDS <= VFIOD_CLOSER_MAX_FDS_PER_USER;
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
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
}
