/* SPDX-License-Identifier: MIT */
/*
 * One connection: its peer, its state, what it holds, its send queue.
 *
 * Concepts: a client starts NEW; Hello makes it READY. Every received
 * datagram is checked against the permission table in client.c (body ->
 * states it is allowed in, admin-only, handler) before a handler runs
 * (OpenSSH privsep style): a body not in the table (a reply or an event), or
 * one not allowed in the current state, drops the connection; an admin
 * request from a non-admin peer gets Error EPERM.
 *
 * A handler decodes its request, hands it to the one function that decides
 * it (vfiod_lease_acquire(), vfiod_lease_offer(), vfiod_lease_set_irqs_take(),
 * vfiod_domain_map() behind the client's quotas and fd budget, ...) and
 * replies; it does not check again what that function checks.
 *
 * Sending never blocks: when the socket is full the serialized datagram and
 * duplicates of its fds go to a queue the client owns; while anything is
 * queued no request of that client is read; a queue over its limit drops the
 * client.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "daemon/domain.h"
#include "daemon/list.h"
#include "daemon/log.h"
#include "proto/transport.h"

struct vfiod_server;

enum vfiod_client_state {
        VFIOD_CLIENT_NEW,   /* before Hello */
        VFIOD_CLIENT_READY, /* after Hello */
};

struct vfiod_client {
        struct list link;        /* in server->clients */
        struct list link_active; /* in server->active_clients (client_activate()) */
        struct vfiod_server *server;
        uint64_t id;
        int fd; /* owned */
        ev_io io;
        struct vfiod_peer peer;
        enum vfiod_client_state state;
        ev_timer hello_timer; /* HelloTimeoutMs: runs while the state is NEW */
        uint64_t caps;        /* the client's Hello.capabilities */
        bool admin;           /* what HelloReply announced; requests check the policy in force */
        uint32_t max_datagram, max_fds; /* what the client can receive */
        struct vfiod_usage usage;
        struct list domains; /* struct vfiod_domain */
        struct list leases;  /* struct vfiod_lease, link_client */
        struct list queue;   /* struct vfiod_queued */
        size_t queued_bytes, queued_msgs;
        bool close_after_flush; /* version mismatch: close once the Error is out */
        /* Lines about its failed requests in the current window (see fail_log_allowed()). */
        double fail_log_start;
        uint32_t fail_logged, fail_unlogged;
        bool dead; /* to be freed by vfiod_server_reap() */
};

/* Takes ownership of fd (closed on failure too) and of nothing in peer (copied). */
int vfiod_client_new_take(struct vfiod_server *server, int fd, const struct vfiod_peer *peer,
                          struct vfiod_client **ret);
/* Releases its leases (full sequence), destroys its domains, closes. NULL is fine. */
void vfiod_client_free(struct vfiod_client *client);

/* Starts or stops watching the socket as the client's state says (after the closer made room). */
void vfiod_client_kick(struct vfiod_client *client);

/* Marks the client dead (freed later by the server) and logs why. */
void vfiod_client_drop(struct vfiod_client *client, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Sends env with fds (borrowed: the caller keeps its own). Queues on EAGAIN;
 * drops the client on a dead socket or a full queue. Returns 0 (sent or
 * queued) or a negative errno.
 */
int vfiod_client_send(struct vfiod_client *client, const Vfiod__Envelope *env, const int *fds,
                      size_t n_fds);

/* Sends Error{errnum, reason} for request id. */
int vfiod_client_send_error(struct vfiod_client *client, uint64_t id,
                            const struct vfiod_error *err);

/* True when the client announced CAPABILITY_EVENTS. */
bool vfiod_client_wants_events(const struct vfiod_client *client);

/* Handles one received message (the permission table, then a handler). Exposed for tests. */
void vfiod_client_dispatch(struct vfiod_client *client, struct vfiod_msg *msg);

/* The log context of this client. */
struct vfiod_log_about vfiod_client_about(const struct vfiod_client *client, const char *device,
                                          int group, uint64_t lease);

struct vfiod_domain *vfiod_client_find_domain(struct vfiod_client *client, uint64_t id);

/*
 * A new domain of the client (CreateDomain, or an Acquire with domain 0) for
 * IOMMU model `wanted` (LEGACY) of interface iface (a Vfiod__Interface,
 * LEGACY or IOMMUFD), within MaxDomainsPerClient. Errors: ENOSPC, or as
 * vfiod_domain_new() / vfiod_domain_new_iommufd(), with err set.
 */
int vfiod_client_domain_new(struct vfiod_client *client, int wanted, int iface,
                            struct vfiod_domain **ret, struct vfiod_error *err);

/*
 * The refusal of an id that names no lease (no domain) of the client: EINVAL
 * and "N is a domain id, not a lease id" when it names one of its domains
 * (leases), else ENOENT. `any`: the objects of every client (admin requests).
 */
int vfiod_client_no_lease(struct vfiod_client *client, uint64_t id, bool any,
                          struct vfiod_error *err);
int vfiod_client_no_domain(struct vfiod_client *client, uint64_t id, struct vfiod_error *err);

/* ---- restart (daemon/state.h): a client saves and loads itself --------------------- */

struct vfiod_save;

/* Writes a live client's "client" line and connection fd, then its domains and leases. */
void vfiod_client_save(const struct vfiod_client *client, struct vfiod_save *sv);
/* Before a planned stop that keeps the fd store: every mapping's process address invalidated. */
void vfiod_client_invalidate_vaddrs(struct vfiod_client *client);
/* A planned stop that keeps the fd store: frees its leases and domains without releasing them. */
void vfiod_client_abandon(struct vfiod_client *client);
