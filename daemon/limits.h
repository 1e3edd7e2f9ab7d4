/* SPDX-License-Identifier: MIT */
/*
 * Every resource a client can make vfiod hold has a named limit here.
 *
 * Concepts: the defaults below are compiled in; the [Daemon] section of
 * vfiod.conf overrides each one by its key (the name in the comment). A
 * request that would go over a limit fails with ENOSPC (a count) or EDQUOT
 * (bytes) and a reason that names the key and its value; a client whose
 * outgoing queue would go over its limit is dropped.
 */
#pragma once

#include <stdint.h>

/* MaxConnections: clients connected at once (all peers together). */
#define VFIOD_DEFAULT_MAX_CONNECTIONS 64
/*
 * MaxConnectionsPerUser: connections of one uid at once, so that one user
 * cannot take every connection from the others.
 */
#define VFIOD_DEFAULT_MAX_CONNECTIONS_PER_USER 32
/* MaxDomainsPerClient: domains (VFIO containers) one client holds at once. */
#define VFIOD_DEFAULT_MAX_DOMAINS_PER_CLIENT 8
/* MaxLeasesPerClient: leases (IOMMU groups) one client holds at once. */
#define VFIOD_DEFAULT_MAX_LEASES_PER_CLIENT 16
/* MaxMappingsPerClient: MapDma ranges alive at once, all domains of a client. */
#define VFIOD_DEFAULT_MAX_MAPPINGS_PER_CLIENT 1024
/* MaxPinnedBytesPerClient: bytes mapped through MapDma at once (16 GiB). */
#define VFIOD_DEFAULT_MAX_PINNED_BYTES_PER_CLIENT (16ull << 30)
/*
 * MaxPinnedBytesPerUser: bytes mapped through MapDma at once by all the
 * connections of one uid together (16 GiB): more connections must not mean
 * more memory pinned by the daemon.
 */
#define VFIOD_DEFAULT_MAX_PINNED_BYTES_PER_USER (16ull << 30)
/* MaxRangesPerRequest: ranges in one MapDma or UnmapDma. */
#define VFIOD_DEFAULT_MAX_RANGES_PER_REQUEST 256
/* MaxFdsPerMessage: fds in one received datagram (at most VFIOD_PROTO_MAX_FDS). */
#define VFIOD_DEFAULT_MAX_FDS_PER_MESSAGE 64
/*
 * MaxFdsPerClient: descriptors the daemon keeps for one client at once: a
 * duplicate of each memfd it has mapped (one per view, idle views included)
 * and each interrupt eventfd of SetIrqs. Connections, containers, groups and
 * devices are bounded by the limits above.
 */
#define VFIOD_DEFAULT_MAX_FDS_PER_CLIENT 512
/* MaxFdsPerUser: the same for all the connections of one uid together. */
#define VFIOD_DEFAULT_MAX_FDS_PER_USER 1024
/* MaxQueuedBytesPerClient: serialized bytes waiting for a client that does not read. */
#define VFIOD_DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT (1u << 20)
/* MaxQueuedMessagesPerClient: datagrams waiting for a client that does not read. */
#define VFIOD_DEFAULT_MAX_QUEUED_MESSAGES_PER_CLIENT 128
/* MaxRequestsInFlight: requests read whose reply has not reached the socket yet. */
#define VFIOD_DEFAULT_MAX_REQUESTS_IN_FLIGHT 16
/* ReleaseGraceMs: time a holder has to answer ReleaseRequested before the revoke. */
#define VFIOD_DEFAULT_RELEASE_GRACE_MS 5000
/*
 * HelloTimeoutMs: time a new connection has to say Hello before it is
 * closed, so that idle connections cannot hold every connection slot.
 */
#define VFIOD_DEFAULT_HELLO_TIMEOUT_MS 5000

/*
 * Not configurable: fds a client sent that no request takes (anything but a
 * memfd or an eventfd) wait for the closer's thread (daemon/closer.h): at
 * most VFIOD_CLOSER_MAX_FDS_PER_USER of one uid. A connection is read only
 * while its uid has room for a whole datagram of fds (253). The limit is
 * per uid only, so that users who block the closer together cannot stop
 * another user being read.
 */
#define VFIOD_CLOSER_MAX_FDS_PER_USER (2 * 253)

/* Not configurable: how often quarantined groups are checked again. */
#define VFIOD_QUARANTINE_RECHECK_MS 500

/*
 * Not configurable: descriptors the daemon keeps free under its own
 * RLIMIT_NOFILE. A request that would make it keep fds beyond that line is
 * refused (EMFILE), so that a received datagram always has room for its fds
 * (VFIOD_PROTO_MAX_FDS) and a release, an accept or a state save for room of
 * its own: the daemon never drops a client because it ran out of fds itself.
 */
#define VFIOD_FD_HEADROOM 320

struct vfiod_config_limits {
        uint32_t max_connections;
        uint32_t max_connections_per_user;
        uint32_t max_domains_per_client;
        uint32_t max_leases_per_client;
        uint32_t max_mappings_per_client;
        uint64_t max_pinned_bytes_per_client;
        uint64_t max_pinned_bytes_per_user;
        uint32_t max_ranges_per_request;
        uint32_t max_fds_per_message;
        uint32_t max_fds_per_client;
        uint32_t max_fds_per_user;
        uint32_t max_queued_bytes_per_client;
        uint32_t max_queued_messages_per_client;
        uint32_t max_requests_in_flight;
        uint32_t release_grace_ms;
        uint32_t hello_timeout_ms;
};

#define VFIOD_LIMITS_DEFAULT                                                                \
        ((struct vfiod_config_limits){                                                      \
            .max_connections = VFIOD_DEFAULT_MAX_CONNECTIONS,                               \
            .max_connections_per_user = VFIOD_DEFAULT_MAX_CONNECTIONS_PER_USER,             \
            .max_domains_per_client = VFIOD_DEFAULT_MAX_DOMAINS_PER_CLIENT,                 \
            .max_leases_per_client = VFIOD_DEFAULT_MAX_LEASES_PER_CLIENT,                   \
            .max_mappings_per_client = VFIOD_DEFAULT_MAX_MAPPINGS_PER_CLIENT,               \
            .max_pinned_bytes_per_client = VFIOD_DEFAULT_MAX_PINNED_BYTES_PER_CLIENT,       \
            .max_pinned_bytes_per_user = VFIOD_DEFAULT_MAX_PINNED_BYTES_PER_USER,           \
            .max_ranges_per_request = VFIOD_DEFAULT_MAX_RANGES_PER_REQUEST,                 \
            .max_fds_per_message = VFIOD_DEFAULT_MAX_FDS_PER_MESSAGE,                       \
            .max_fds_per_client = VFIOD_DEFAULT_MAX_FDS_PER_CLIENT,                         \
            .max_fds_per_user = VFIOD_DEFAULT_MAX_FDS_PER_USER,                             \
            .max_queued_bytes_per_client = VFIOD_DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT,       \
            .max_queued_messages_per_client = VFIOD_DEFAULT_MAX_QUEUED_MESSAGES_PER_CLIENT, \
            .max_requests_in_flight = VFIOD_DEFAULT_MAX_REQUESTS_IN_FLIGHT,                 \
            .release_grace_ms = VFIOD_DEFAULT_RELEASE_GRACE_MS,                             \
            .hello_timeout_ms = VFIOD_DEFAULT_HELLO_TIMEOUT_MS,                             \
        })
