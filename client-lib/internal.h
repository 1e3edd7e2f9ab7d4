/* SPDX-License-Identifier: MIT */
/*
 * libvfiod internals shared by its .c files; nothing here is exported (the
 * version script, libvfiod.sym, exports the public vfiod_* names only).
 *
 * Concepts:
 * - struct vfiod is one socket plus what the Hello reply said, the next
 *   request id, the reason of the last failure and a bounded ring of events
 *   read while a call waited for its reply.
 * - client_call() is the one place that sends a request and waits for its
 *   reply; every public request is "build an Envelope, client_call(), convert
 *   the reply". client_submit() and client_collect() split it in two for
 *   requests kept in flight (vfiod_submit_*(), vfiod_collect()); while any
 *   is, client_call() refuses (-EBUSY): the next reply is theirs.
 * - A connection is dead after EOF or a protocol error: it never reads
 *   again, every call fails with -ENOTCONN.
 */
#pragma once

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client-lib/vfiod.h"
#include "proto/transport.h"

struct vfiod {
        int fd;           /* the socket, owned */
        uint64_t last_id; /* id of the last request sent; ids increase from 1 */
        bool dead;
        bool have_info; /* false for connections adopted without Hello */
        struct vfiod_server_info info;
        char error[VFIOD_TEXT_MAX];

        /* Events read during calls: a ring of VFIOD_EVENT_QUEUE_MAX, allocated on first use. */
        struct vfiod_event *queue;
        size_t queue_head, queue_len;
        uint64_t dropped; /* events lost because the ring was full */

        /* Requests submitted, not yet collected, oldest first: a ring of VFIOD_IN_FLIGHT_MAX. */
        struct client_pending *pending;
        size_t pending_head, pending_len;
};

/* A submitted request: its id, its body, the body of its success reply. */
struct client_pending {
        uint64_t id;
        Vfiod__Envelope__BodyCase request, expect;
};

/* The most requests in flight the library keeps, whatever the daemon announces. */
#define VFIOD_IN_FLIGHT_MAX 1024

/* Sets c->error (printf-style) and returns r (a negative errno). */
int client_fail(struct vfiod *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* client_fail() that also marks the connection dead. */
int client_fail_dead(struct vfiod *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Sends req (its id is set here) with fds[0..n_fds) borrowed, then waits for
 * the reply, queueing events that arrive first.
 *
 * Returns 0 and sets *ret to the reply (body `expect`; the caller frees it
 * with vfiod_msg_free(), and owns the fds in it). An Error reply returns its
 * negated errno with c->error set to the reason; a reply with another id or
 * body returns -EPROTO and kills the connection; EOF returns -ECONNRESET.
 */
int client_call(struct vfiod *c, Vfiod__Envelope *req, const int *fds, size_t n_fds,
                Vfiod__Envelope__BodyCase expect, struct vfiod_msg **ret);

/*
 * Sends req as client_call() does but returns at once, with its id in
 * *ret_id; the reply is client_collect()'s. -EAGAIN when the daemon's
 * MaxRequestsInFlight are in flight already (1 when it did not say).
 */
int client_submit(struct vfiod *c, Vfiod__Envelope *req, const int *fds, size_t n_fds,
                  Vfiod__Envelope__BodyCase expect, uint64_t *ret_id);

/*
 * Waits for the reply to the oldest submitted request (queueing events that
 * arrive first). Returns 0 with its id and body in *ret_id and *ret_request,
 * and in *ret_result 0 (*ret then holds the reply, body `expect`) or the
 * Error reply's negated errno (c->error set). Fails with -ENOENT (nothing
 * in flight) or as client_call() when no reply could be read.
 */
int client_collect(struct vfiod *c, uint64_t *ret_id, Vfiod__Envelope__BodyCase *ret_request,
                   int *ret_result, struct vfiod_msg **ret);

/*
 * Fills *out and irq_counts[] from a LeaseGrant (NULL: a daemon that did not
 * say; out->known false, the counts 0).
 */
void grant_from_msg(struct vfiod_lease_grant *out, uint32_t irq_counts[VFIOD_IRQ_INDEX_COUNT],
                    const Vfiod__LeaseGrant *g);

/* Copies src (NULL = "") into dst[size], truncating. */
void copy_text(char *dst, size_t size, const char *src);

/*
 * Copies a PCI address from the daemon into dst[VFIOD_DEVICE_NAME_MAX].
 * Returns 0, or -EPROTO (with c->error set, connection dead) if it is too
 * long to be one.
 */
int copy_device_name(struct vfiod *c, char *dst, const char *src);

/* A string to put in a protobuf-c string field (NULL becomes ""). */
static inline char *proto_string(const char *s)
{
        return (char *)(s ? s : "");
}
