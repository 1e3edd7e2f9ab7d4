/* SPDX-License-Identifier: MIT */
/*
 * The server: the listening socket, the clients, the ids, the limits on
 * connections, the configuration in force and the quarantine timer.
 *
 * Concepts: one struct vfiod_server per process, driven by a libev loop it
 * does not own. The listening socket comes from systemd (sd_listen_fds, one
 * SOCK_SEQPACKET AF_UNIX socket) or is bound by vfiod_socket_bind(). Clients
 * that fail are marked dead and freed before the loop blocks again (never
 * from inside their own callback). vfiod_server_free() releases every lease
 * with the full sequence.
 *
 * A lease (daemon/lease.c) asks the server only through the entry points
 * under "what a lease asks of the server": the limits in force, a new id, its
 * place in the list of every lease, a domain by id.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "daemon/closer.h"
#include "daemon/domain.h"
#include "daemon/group.h"
#include "daemon/list.h"
#include "daemon/log.h"
#include "daemon/policy.h"

struct vfiod_client;
struct vfiod_domain;
struct vfiod_lease;

#define VFIOD_DEFAULT_SOCKET "/run/vfiod/vfiod.sock"

struct vfiod_server_options {
        const char *sysfs_root;  /* NULL = "/" */
        const char *vfio_dir;    /* NULL = "/dev/vfio" */
        const char *config_path; /* for reloads; NULL = no file (the empty policy) */
        bool config_missing_ok;  /* a missing file reads as the empty policy */
};

struct vfiod_server {
        struct ev_loop *loop;
        int listen_fd; /* owned; -1 when not listening */
        ev_io accept_io;
        ev_timer accept_pause; /* out of fds: accept_io stopped until it fires */
        bool accept_starved;   /* said so in the log; cleared by the next accept */
        ev_prepare reaper;     /* frees dead clients before the loop blocks */
        ev_timer quarantine_timer;
        struct vfiod_closer *closer; /* owned: closes the fds no request takes */
        struct vfiod_policy *policy; /* owned */
        char *config_path;
        bool config_missing_ok;
        struct vfiod_registry *devices;
        struct list clients;
        /*
         * The clients that may hold something (a domain, a lease): those that
         * sent Acquire or CreateDomain, or were restored. The per-user sums
         * walk these, not every connection; one found holding nothing leaves.
         */
        struct list active_clients;
        uint32_t n_dead; /* clients dropped, not yet reaped (vfiod_server_reap()) */
        uint32_t n_clients;
        struct list leases; /* every lease, in creation order */
        uint64_t next_client_id;
        /*
         * Lease ids and domain ids, both: one counter, so that no number is
         * ever both and one passed for the other names nothing.
         */
        uint64_t next_object_id;
        uint64_t n_requests, n_errors;
        /* Every client's domains, mappings and pinned bytes (vfiod_usage_count()). */
        struct vfiod_usage usage_total;
        ev_tstamp started;
        /* The daemon's own fd table (daemon_fd_room() in client.c): fds open as last
         * counted, plus what requests made it keep since. */
        uint32_t fds_open;
        ev_tstamp fds_counted_at;
};

/* Takes ownership of policy (freed even on failure). */
int vfiod_server_new(struct ev_loop *loop, const struct vfiod_server_options *options,
                     struct vfiod_policy *policy, struct vfiod_server **ret);
/* Releases every lease, drops every client, closes the socket. NULL is fine. */
void vfiod_server_free(struct vfiod_server *server);

/* Starts accepting on listen_fd; takes ownership of it (closed on failure too). */
int vfiod_server_listen_take(struct vfiod_server *server, int listen_fd);

/*
 * Adds a connected SOCK_SEQPACKET socket as a client; takes ownership of fd.
 * The peer is read with vfiod_peer_read() unless `peer` is given (copied): a
 * client restored from the fd store, with the unit and slice it had when it
 * connected; in tests, a socketpair's peer is the test itself.
 */
int vfiod_server_add_client_take(struct vfiod_server *server, int fd,
                                 const struct vfiod_peer *peer);

/*
 * Reads the configuration again. On errors (appended to errors) the old
 * policy stays. Otherwise the new one is applied and leases it no longer
 * allows are revoked (count in *ret_revoked, may be NULL).
 */
int vfiod_server_reload(struct vfiod_server *server, struct vfiod_errors *errors,
                        uint32_t *ret_revoked);

/* Frees the clients marked dead (also runs from the loop's prepare watcher). */
void vfiod_server_reap(struct vfiod_server *server);

/* ---- what a lease asks of the server ---- */

/* The limits of the configuration in force (they change on a reload). */
const struct vfiod_config_limits *vfiod_server_limits(const struct vfiod_server *server);
/* A new lease or domain id: one counter for both, so no number is ever both. */
uint64_t vfiod_server_new_object_id(struct vfiod_server *server);
/* Puts a lease at the end of server->leases (vfiod_lease_unlink() takes it out). */
void vfiod_server_add_lease(struct vfiod_server *server, struct vfiod_lease *lease);
/* The domain `id` of whichever client has it, or NULL. */
struct vfiod_domain *vfiod_server_find_domain(struct vfiod_server *server, uint64_t id);

/* Starts the quarantine timer if a group is quarantined. */
void vfiod_server_quarantine_kick(struct vfiod_server *server);

/* Discovers the PCI devices (under the sysfs root) and logs what vfio-pci holds. */
void vfiod_server_log_devices(struct vfiod_server *server);

/* Milliseconds since the server started. */
uint64_t vfiod_server_uptime_ms(struct vfiod_server *server);

/*
 * The socket vfiod binds itself: creates the parent folder (0755), removes a
 * stale socket (connect() refused), refuses when a live daemon answers
 * (-EADDRINUSE), binds, chmod 0666 (access is decided by the policy), listens.
 * Returns the listening fd (SOCK_SEQPACKET, CLOEXEC, non-blocking).
 */
int vfiod_socket_bind(const char *path);

/*
 * The peer of a connected socket, from the kernel: uid, gid and pid
 * (SO_PEERCRED, recorded at connect()), the supplementary groups
 * (SO_PEERGROUPS) and, with `unit`, the systemd unit and slice of the process
 * that connected, only while that process is known to be the one that has
 * its pid (a pidfd, SO_PEERPIDFD or pidfd_open(), checked around the read of
 * /proc/PID/cgroup; logged when not: the peer then has none). Free with
 * vfiod_peer_done().
 */
int vfiod_peer_read(int fd, bool unit, struct vfiod_peer *ret);
void vfiod_peer_done(struct vfiod_peer *peer);

/*
 * Raises the RLIMIT_MEMLOCK of the process that connected socket fd (pid,
 * from SO_PEERCRED) to at least `bytes` (UINT64_MAX: unlimited), soft and
 * hard, never lowering either: prlimit() on that pid, only while its pidfd
 * (SO_PEERPIDFD, or pidfd_open()) names it, and checked running after the
 * call so that a pid another process got meanwhile is never raised. On
 * success *ret_now is the soft limit now (UINT64_MAX: unlimited).
 * -ESRCH: the peer is gone (or exited during the call); -EPERM: raising the
 * hard limit needs CAP_SYS_RESOURCE; other prlimit() errors.
 */
int vfiod_peer_raise_memlock(int fd, pid_t pid, uint64_t bytes, uint64_t *ret_now);

/* Frees every client (vfiod_client_free(): their leases released with the full sequence). */
void vfiod_server_drop_clients(struct vfiod_server *server);

/* The client, domain (of any client) or lease of that id, or NULL. */
struct vfiod_client *vfiod_server_find_client(struct vfiod_server *server, uint64_t id);
struct vfiod_lease *vfiod_server_find_lease(struct vfiod_server *server, uint64_t id);

/* ---- restart (daemon/state.h): the server saves and loads itself ------------------- */

struct vfiod_save;

/*
 * A client restored from the fd store, with the id it had (the next client
 * id is kept past it); otherwise as vfiod_server_add_client_take(). *ret is it.
 */
int vfiod_server_restore_client_take(struct vfiod_server *server, int fd, uint64_t id,
                                     const struct vfiod_peer *peer, struct vfiod_client **ret);
/* Writes the "next" line (the ids handed out so far), then every live client. */
void vfiod_server_save(struct vfiod_server *server, struct vfiod_save *sv);
/*
 * After a restore: each lease logged and checked against the policy in force
 * (vfiod_lease_restored()). Returns how many leases were restored.
 */
size_t vfiod_server_restored(struct vfiod_server *server);
/* A planned stop that keeps the fd store: every mapping's process address invalidated. */
void vfiod_server_keep(struct vfiod_server *server);
/* Then: every lease and domain freed without the release sequence (vfiod_state_abandon()). */
void vfiod_server_abandon(struct vfiod_server *server);
