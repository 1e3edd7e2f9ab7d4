/* SPDX-License-Identifier: MIT */
/*
 * The closer: closes, off the event loop, the fds a client sent that no
 * request takes.
 *
 * Concepts: closing a file can block for as long as whoever is on its other
 * side likes (the last close of a TCP socket with SO_LINGER and unsent data
 * its peer never reads, of a FUSE file whose flush never returns), and a
 * client decides what it sends. Requests take only memfds and eventfds,
 * whose close never waits on anyone; the transport sorts every fd out right
 * after recvmsg() (proto/transport.h, struct vfiod_recv_filter) and hands
 * any other one here, where a thread of its own closes them one at a time.
 * While that thread waits on one close, the fds behind it wait too: at most
 * VFIOD_CLOSER_MAX_FDS_PER_USER of one uid (daemon/limits.h). A connection
 * is read only while its uid has room for a whole datagram of fds
 * (vfiod_closer_has_room()), so the closer never has to refuse one; when
 * room comes back the server is told (room_cb) and reads again. What one
 * uid queued never holds back another: clients that send only what
 * requests take never wait, whatever other users send.
 *
 * Owned by the server; the thread starts with the first fd.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

struct vfiod_closer;

/* room_cb(userdata) runs on loop whenever fds were closed (there may be room again). */
int vfiod_closer_new(struct ev_loop *loop, void (*room_cb)(void *userdata), void *userdata,
                     struct vfiod_closer **ret);

/*
 * Waits (a bounded time) for the thread to close what is queued, then frees
 * it. A close still blocked by then is left to the process's exit. NULL is
 * fine.
 */
void vfiod_closer_free(struct vfiod_closer *closer);

/* Takes ownership of fd, sent by a client of uid, and closes it off the loop. */
void vfiod_closer_take(struct vfiod_closer *closer, int fd, uid_t uid);

/* True when a datagram of uid, with as many fds as one can carry, fits (NULL: true). */
bool vfiod_closer_has_room(struct vfiod_closer *closer, uid_t uid);

/* Fds queued or being closed now (for uid when by_uid, else all). */
size_t vfiod_closer_pending(struct vfiod_closer *closer, bool by_uid, uid_t uid);
