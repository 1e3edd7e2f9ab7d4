/* SPDX-License-Identifier: MIT */
/*
 * libvfiod: the C API of vfiod, the daemon that brokers Linux VFIO device
 * access to unprivileged programs.
 *
 * Concepts:
 * - A connection (struct vfiod) is one AF_UNIX SOCK_SEQPACKET socket to the
 *   daemon. vfiod_connect() opens it and does the Hello exchange; the
 *   daemon's limits and capabilities are kept (vfiod_get_server_info()).
 * - Calls are synchronous: each sends one request and blocks until its reply
 *   arrives. A connection is not thread-safe: use it from one thread at a
 *   time (or one connection per thread).
 * - Errors: every call returns 0 (or a count, or an fd where documented) on
 *   success and a negative errno on failure. When the daemon refused the
 *   request (an Error reply), the return value is its negated errno and
 *   vfiod_last_error() gives its human-readable reason; the connection stays
 *   usable. -EPROTO (a reply that breaks the protocol) and -ECONNRESET (the
 *   daemon closed the connection) leave the connection dead: later calls
 *   fail with -ENOTCONN. Output parameters (ret_*) are written only on
 *   success.
 * - "The call errors", which every request can return besides its own:
 *   -EINVAL (a NULL argument), -ENOTCONN (the connection is dead),
 *   -ECONNRESET (the daemon closed it during the call), -EPROTO (a reply
 *   with the wrong id or body: the connection is then dead), -EMSGSIZE (the
 *   request does not fit the daemon's max_datagram / max_fds), -ENOMEM, and
 *   send/receive errors passed through (-EPIPE means the same as
 *   -ECONNRESET). A signal does not interrupt a call (EINTR is retried).
 * - Events (ReleaseRequested, DeviceError, LeaseRevoked) arrive on the same
 *   socket. vfiod_get_fd() gives the fd to poll for POLLIN in the caller's
 *   event loop; vfiod_next_event() returns one event at a time, -EAGAIN when
 *   none is left. Events that arrive while a synchronous call waits for its
 *   reply are queued inside the library (bounded, VFIOD_EVENT_QUEUE_MAX) and
 *   do NOT make the fd readable: drain vfiod_next_event() after each wake-up
 *   AND after each synchronous call.
 * - Fd ownership: fds the library receives (struct vfiod_lease) belong to
 *   the caller, who closes them. Fds the caller passes in (memfds, eventfds)
 *   are borrowed: the kernel duplicates them into the message and the library
 *   never closes them. The one fd the library owns is the connection's own
 *   socket (vfiod_get_fd()); vfiod_close() closes it. Every fd the library
 *   creates is close-on-exec.
 * - Lease ids and domain ids are both uint64_t but never equal: the daemon
 *   draws them from one counter. One passed where the other is expected
 *   fails with -EINVAL ("N is a lease id, not a domain id") when it names one
 *   of the caller's leases (domains), and never reaches the other object.
 * - The library never prints.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Socket path used when vfiod_connect() gets NULL and $VFIOD_SOCKET is unset. */
#define VFIOD_SOCKET_DEFAULT "/run/vfiod/vfiod.sock"
/* Environment variable naming the socket path. */
#define VFIOD_SOCKET_ENV "VFIOD_SOCKET"
/* Environment variable carrying an inherited connection's fd number (vfioctl acquire). */
#define VFIOD_CONNECTION_FD_ENV "VFIOD_CONNECTION_FD"
/* What `vfioctl acquire` tells its COMMAND of the lease (vfiod_lease_from_env()). */
#define VFIOD_LEASE_ID_ENV     "VFIOD_LEASE_ID"
#define VFIOD_DOMAIN_ID_ENV    "VFIOD_DOMAIN_ID"
#define VFIOD_DEVICE_ENV       "VFIOD_DEVICE"
#define VFIOD_IOMMU_GROUP_ENV  "VFIOD_IOMMU_GROUP"
#define VFIOD_MODE_ENV         "VFIOD_MODE"
#define VFIOD_DEVICE_FD_ENV    "VFIOD_DEVICE_FD"
#define VFIOD_GROUP_FD_ENV     "VFIOD_GROUP_FD"
#define VFIOD_CONTAINER_FD_ENV "VFIOD_CONTAINER_FD"
/* IOMMUFD leases (1.2): the domain's iommufd (DIRECT) and the cdev's name ("vfio3"). */
#define VFIOD_IOMMUFD_FD_ENV "VFIOD_IOMMUFD_FD"
#define VFIOD_CDEV_ENV       "VFIOD_CDEV"

/* Size of the fixed string buffers below, including the terminating NUL. */
#define VFIOD_DEVICE_NAME_MAX 40 /* PCI address "DDDD:BB:DD.F", or an mdev UUID */
#define VFIOD_DRIVER_NAME_MAX 64
#define VFIOD_UNIT_NAME_MAX   256
#define VFIOD_TEXT_MAX        512 /* reasons, details, server version */

/* Most events kept while no one calls vfiod_next_event(). */
#define VFIOD_EVENT_QUEUE_MAX 256

/* The connection. Opaque. */
struct vfiod;

/* How a device is leased (values are the wire protocol's). */
enum vfiod_mode {
        VFIOD_MODE_UNSPECIFIED = 0,
        /* Container, group and device fds to the caller, who maps DMA itself. */
        VFIOD_MODE_DIRECT = 1,
        /* Device fd only; DMA through vfiod_map_dma(), under the daemon's quotas. */
        VFIOD_MODE_BROKERED = 2,
        /*
         * The group fd only, attached to no container: the caller attaches its
         * own container, sets the IOMMU, maps DMA and opens device fds itself
         * (what QEMU and DPDK do with /dev/vfio/N). No domain. Protocol 1.2.
         */
        VFIOD_MODE_GROUP = 3,
};

/*
 * The kernel interface of a lease (protocol 1.2; the values are the
 * protocol's Interface).
 */
enum vfiod_interface {
        VFIOD_INTERFACE_UNSPECIFIED = 0,
        /* A VFIO container and the IOMMU group (/dev/vfio/vfio, /dev/vfio/N). */
        VFIOD_INTERFACE_LEGACY = 1,
        /* An iommufd (/dev/iommu) and the device cdev (/dev/vfio/devices/vfioN). */
        VFIOD_INTERFACE_IOMMUFD = 2,
        /* Acquire only: IOMMUFD when the device offers it and the policy allows it. */
        VFIOD_INTERFACE_ANY = 3,
};

/* Bit of enum vfiod_mode m in a mode mask (struct vfiod_device_info.allowed_modes). */
#define VFIOD_MODE_BIT(m) (1u << (m))

/* Capability bits (struct vfiod_server_info.capabilities). */
#define VFIOD_CAP_DIRECT   UINT64_C(1)
#define VFIOD_CAP_BROKERED UINT64_C(2)
#define VFIOD_CAP_IRQS     UINT64_C(4)
#define VFIOD_CAP_EVENTS   UINT64_C(8)
#define VFIOD_CAP_ADMIN    UINT64_C(16) /* the daemon lets this peer use the admin calls */

/* A device's state as seen by the caller (vfiod_list_devices()). */
enum vfiod_lease_state {
        VFIOD_LEASE_STATE_UNSPECIFIED = 0,
        VFIOD_LEASE_STATE_FREE = 1,          /* can be acquired, if the policy allows */
        VFIOD_LEASE_STATE_LEASED_BY_YOU = 2, /* lease_id says which lease */
        VFIOD_LEASE_STATE_LEASED = 3,        /* leased by another client */
        VFIOD_LEASE_STATE_QUARANTINED = 4,   /* released, a device fd still open somewhere */
        VFIOD_LEASE_STATE_UNAVAILABLE = 5,   /* not viable / not bound / unusable */
};

/* IOMMU model of a domain (VFIO_SET_IOMMU). */
enum vfiod_iommu_type {
        VFIOD_IOMMU_TYPE_UNSPECIFIED = 0, /* vfiod_create_domain(): let the daemon choose */
        VFIOD_IOMMU_TYPE_TYPE1V2 = 1,
        VFIOD_IOMMU_TYPE_TYPE1 = 2,
        VFIOD_IOMMU_TYPE_SPAPR_TCE_V2 = 3,
        VFIOD_IOMMU_TYPE_SPAPR_TCE = 4,
};

/* Why the daemon wants a lease back, or took it. */
enum vfiod_release_reason {
        VFIOD_RELEASE_REASON_UNSPECIFIED = 0,
        VFIOD_RELEASE_REASON_KERNEL_REQUEST = 1, /* the device's REQ interrupt */
        VFIOD_RELEASE_REASON_ADMIN_REVOKE = 2,
        VFIOD_RELEASE_REASON_POLICY_CHANGE = 3,
        VFIOD_RELEASE_REASON_DEVICE_GONE = 4, /* removed, or left vfio-pci (protocol 1.3) */
};

/* State of a lease in the admin listing. */
enum vfiod_lease_status {
        VFIOD_LEASE_STATUS_UNSPECIFIED = 0,
        VFIOD_LEASE_STATUS_ACTIVE = 1,
        VFIOD_LEASE_STATUS_RELEASE_REQUESTED = 2,
        VFIOD_LEASE_STATUS_RELEASING = 3,
};

/* VFIO PCI interrupt index (the kernel's VFIO_PCI_*_IRQ_INDEX). */
enum vfiod_irq_index {
        VFIOD_IRQ_INDEX_INTX = 0,
        VFIOD_IRQ_INDEX_MSI = 1,
        VFIOD_IRQ_INDEX_MSIX = 2,
        VFIOD_IRQ_INDEX_ERR = 3, /* owned by the daemon: -EPERM */
        VFIOD_IRQ_INDEX_REQ = 4, /* owned by the daemon: -EPERM */
};

/* VFIO_IRQ_SET_ACTION_*. */
enum vfiod_irq_action {
        VFIOD_IRQ_ACTION_MASK = 1,
        VFIOD_IRQ_ACTION_UNMASK = 2,
        VFIOD_IRQ_ACTION_TRIGGER = 3,
};

/* DMA permission flags (struct vfiod_dma_range.flags). */
#define VFIOD_DMA_READ  1u /* the device may read the range */
#define VFIOD_DMA_WRITE 2u /* the device may write the range */

/* ------------------------------------------------------------------------- */
/* Connection */

/*
 * Per-client quotas the daemon enforces; 0 = no limit beyond the protocol's.
 * These are the daemon-wide defaults of every connection: the policy's rules
 * may grant a lease less (MaxPinnedBytes=, MaxMappings=, IovaWindows=), which
 * struct vfiod_lease.grant says.
 */
struct vfiod_limits {
        uint32_t max_domains;
        uint32_t max_leases;
        uint32_t max_mappings;
        uint64_t max_pinned_bytes;
        uint32_t max_ranges_per_request;
        uint32_t max_requests_in_flight;
};

/* What the daemon said in its Hello reply. */
struct vfiod_server_info {
        uint32_t major, minor;               /* the daemon's protocol version */
        uint64_t capabilities;               /* VFIOD_CAP_* granted to this peer */
        uint32_t max_datagram;               /* largest datagram the daemon accepts */
        uint32_t max_fds;                    /* most fds per datagram the daemon accepts */
        struct vfiod_limits limits;          /* daemon-wide quotas; a lease's own: its grant */
        char server_version[VFIOD_TEXT_MAX]; /* e.g. "vfiod 0.1.0" (truncated if longer) */
};

/*
 * Connects to the daemon at `path` (NULL: $VFIOD_SOCKET, or
 * VFIOD_SOCKET_DEFAULT when that is unset or empty), says Hello announcing
 * protocol 1.x and the capabilities DIRECT, BROKERED, IRQS and EVENTS, and
 * keeps the daemon's answer (vfiod_get_server_info()).
 *
 * Returns 0 and sets *ret to a new connection (free with vfiod_close()), or
 * a negative errno: connect() errors (-ENOENT no socket, -ECONNREFUSED no
 * daemon, -EACCES), -ENAMETOOLONG path too long for sockaddr_un,
 * -EPROTONOSUPPORT the daemon speaks another major version,
 * -EPROTO/-ECONNRESET a broken Hello exchange, -ENOMEM, or the negated errno
 * of an Error reply. Without a connection there is no vfiod_last_error().
 */
int vfiod_connect(const char *path, struct vfiod **ret);

/* Flags of vfiod_connect_take_fd(). */
#define VFIOD_CONNECT_HELLO 1u /* the socket is fresh: do the Hello exchange */

/*
 * Makes a connection out of an already-connected SOCK_SEQPACKET socket.
 * TAKES OWNERSHIP of fd: on success it belongs to the connection, on failure
 * it has been closed. The fd is made close-on-exec.
 *
 * Without VFIOD_CONNECT_HELLO the socket must be a connection on which Hello
 * was already done, e.g. one inherited from `vfioctl acquire --brokered`,
 * and no exchange is made: such a connection knows nothing of the Hello
 * reply, vfiod_get_server_info() returns -ENODATA and the protocol maxima
 * are assumed. Requests and replies must not interleave with another
 * process using the same socket at the same time.
 *
 * With VFIOD_CONNECT_HELLO the Hello exchange is done as in vfiod_connect():
 * on a fresh socket (one passed by a supervisor, one end of a socketpair),
 * or again on one in session (an inherited one: a daemon of protocol 1.1
 * answers a Hello in session, and takes this process's capabilities).
 *
 * Returns 0 and sets *ret, or -EBADF (fd < 0), -ENOTSOCK (not a socket),
 * -ESOCKTNOSUPPORT (not an AF_UNIX SOCK_SEQPACKET socket), -EINVAL (unknown
 * flag), -ENOMEM, or the errors of vfiod_connect()'s Hello.
 */
int vfiod_connect_take_fd(int fd, unsigned flags, struct vfiod **ret);

/*
 * Adopts the connection whose fd number is in $VFIOD_CONNECTION_FD (set by
 * `vfioctl acquire --brokered`), as vfiod_connect_take_fd(fd,
 * VFIOD_CONNECT_HELLO, ret): the fd is taken (closed on failure) and made
 * close-on-exec, the variable is removed from the environment so that
 * programs started later do not believe they hold it, and Hello is said
 * again on it (a daemon of protocol 1.1), so that vfiod_get_server_info()
 * works and the daemon knows this process's capabilities.
 *
 * Returns 0 and sets *ret, -ENXIO when the variable is unset, -EINVAL when it
 * is not a non-negative integer, or the errors of vfiod_connect_take_fd().
 */
int vfiod_connect_env(struct vfiod **ret);

/*
 * Closes the connection's socket and frees it, with any queued events. NULL
 * is fine. The daemon then releases every lease and destroys every domain
 * the connection held; fds the caller received stay open (and keep their
 * groups quarantined until the caller closes them).
 */
void vfiod_close(struct vfiod *c);

/*
 * The reason of the last failed call on c: the daemon's text for an Error
 * reply, else a short description of what went wrong locally. "" when the
 * last call succeeded. Owned by c; valid until the next call on c.
 */
const char *vfiod_last_error(const struct vfiod *c);

/*
 * Copies the daemon's Hello reply into *ret. Returns 0, or -ENODATA for a
 * connection adopted without Hello (vfiod_connect_take_fd() without
 * VFIOD_CONNECT_HELLO).
 */
int vfiod_get_server_info(const struct vfiod *c, struct vfiod_server_info *ret);

/* ------------------------------------------------------------------------- */
/* Events */

enum vfiod_event_type {
        /* The daemon wants lease_id back within grace_ms; vfiod_release() it. */
        VFIOD_EVENT_RELEASE_REQUESTED = 1,
        /* The device reported an error (ERR interrupt); the lease stays. */
        VFIOD_EVENT_DEVICE_ERROR = 2,
        /* The daemon took lease_id away: close its fds. */
        VFIOD_EVENT_LEASE_REVOKED = 3,
        /* The queue was full and `dropped` events were lost (device empty). */
        VFIOD_EVENT_DROPPED = 4,
};

struct vfiod_event {
        enum vfiod_event_type type;
        uint64_t lease_id;
        char device[VFIOD_DEVICE_NAME_MAX];
        enum vfiod_release_reason reason; /* RELEASE_REQUESTED, LEASE_REVOKED */
        uint32_t grace_ms;                /* RELEASE_REQUESTED */
        char detail[VFIOD_TEXT_MAX];      /* e.g. the admin's reason; may be "" */
        uint64_t dropped;                 /* DROPPED */
};

/*
 * The connection's socket, for the caller's event loop: poll it for POLLIN;
 * it becomes readable when an event (or the daemon's EOF) may be waiting.
 * Owned by c: do not close it, do not read from it, do not change its flags.
 */
int vfiod_get_fd(const struct vfiod *c);

/*
 * Returns the next event: first those queued during synchronous calls, then
 * any that can be read from the socket without blocking.
 *
 * Returns 0 and fills *ret, -EAGAIN when no event is waiting, -ECONNRESET
 * when the daemon closed the connection, -EPROTO when the daemon sent
 * something that is not an event (a reply no call waits for), -ENOTCONN when
 * the connection was already dead. Never blocks.
 */
int vfiod_next_event(struct vfiod *c, struct vfiod_event *ret);

/* Number of events queued inside the library (readable without the socket). */
size_t vfiod_pending_events(const struct vfiod *c);

/* ------------------------------------------------------------------------- */
/* Devices */

struct vfiod_device_info {
        char device[VFIOD_DEVICE_NAME_MAX]; /* PCI address, or a mediated device's UUID */
        uint32_t vendor_id, device_id;      /* 0 for an mdev (its ids are in its config space) */
        uint32_t class_code;                /* class << 16 | subclass << 8 | prog-if */
        uint32_t iommu_group;
        char driver[VFIOD_DRIVER_NAME_MAX]; /* bound driver, "" if none */
        enum vfiod_lease_state state;
        unsigned allowed_modes; /* VFIOD_MODE_BIT() of the modes the policy allows the caller */
        uint64_t lease_id;      /* the caller's lease when LEASED_BY_YOU, else 0 */
        char mdev_type[VFIOD_DRIVER_NAME_MAX]; /* an mdev's type ("mdma-1"), "" for PCI */
        /* 1 << enum vfiod_interface of what the device offers and the policy allows (1.2). */
        unsigned interfaces;
        char cdev[16]; /* "vfio3" (/dev/vfio/devices/vfio3), "" when none (1.2) */
};

/*
 * Lists the devices the policy lets the caller see; `device` (a PCI address)
 * restricts the list to that one device (NULL or "" = all). Any number of
 * devices: the list is asked for in pages (protocol 1.3) and returned whole;
 * against an older daemon, in one reply.
 *
 * Returns 0 and sets *ret_devices to an array of *ret_n entries (NULL when
 * there are none), owned by the caller: free with vfiod_devices_free().
 * Errors: -ENOENT (device unknown or not visible), the call errors.
 */
int vfiod_list_devices(struct vfiod *c, const char *device, struct vfiod_device_info **ret_devices,
                       size_t *ret_n);

/* Frees what vfiod_list_devices() returned. NULL is fine. */
void vfiod_devices_free(struct vfiod_device_info *devices, size_t n);

/* ------------------------------------------------------------------------- */
/* Domains (IOMMU address spaces) */

/*
 * Creates a domain with IOMMU model `type` (VFIOD_IOMMU_TYPE_UNSPECIFIED: the
 * best the host offers). It stays, with or without leases, until
 * vfiod_destroy_domain() or vfiod_close() (unlike the domain vfiod_acquire()
 * makes for domain 0, which goes with its last lease). Returns 0, sets *ret_domain_id and, when
 * ret_type is not NULL, *ret_type to the model chosen. Errors: -ENOSPC
 * (max_domains), -ENODEV (model unsupported), the call errors.
 */
int vfiod_create_domain(struct vfiod *c, enum vfiod_iommu_type type, uint64_t *ret_domain_id,
                        enum vfiod_iommu_type *ret_type);

/*
 * The same with the kernel interface iface: VFIOD_INTERFACE_LEGACY (a VFIO
 * container, as vfiod_create_domain()) or VFIOD_INTERFACE_IOMMUFD (an
 * iommufd context; type is then ignored). Errors: as vfiod_create_domain(),
 * -EINVAL (another iface), -EOPNOTSUPP (IOMMUFD from a daemon older than
 * protocol 1.2).
 */
int vfiod_create_domain_iface(struct vfiod *c, enum vfiod_iommu_type type,
                              enum vfiod_interface iface, uint64_t *ret_domain_id,
                              enum vfiod_iommu_type *ret_type);

/*
 * Destroys a domain that holds no lease. Returns 0, -EBUSY, -ENOENT (also for
 * a domain vfiod_acquire() made, once its last lease is gone), the call errors.
 */
int vfiod_destroy_domain(struct vfiod *c, uint64_t domain_id);

/* ------------------------------------------------------------------------- */
/* Leases */

/* Interrupt indexes of a PCI device (enum vfiod_irq_index), INTx .. REQ. */
#define VFIOD_IRQ_INDEX_COUNT 5
/* Bit of enum vfiod_irq_index i in a mask (struct vfiod_lease_grant.irq_types). */
#define VFIOD_IRQ_BIT(i) (1u << (i))
/* IOVA windows a struct vfiod_lease_grant holds; the daemon may name more. */
#define VFIOD_IOVA_WINDOWS_MAX 16
/* Size of a policy rule's name, including the terminating NUL. */
#define VFIOD_RULE_NAME_MAX 64

/* An IOVA window: first .. last, both inclusive. */
struct vfiod_iova_window {
        uint64_t first, last;
};

/*
 * What the policy grants a lease, as the daemon enforces it on
 * vfiod_map_dma() and vfiod_set_irqs(): the rules of every device of the
 * group and of every lease in the domain (the stricter wins) with the
 * daemon's per-client limits. These, not struct vfiod_server_info.limits
 * (the daemon-wide per-client defaults), are this lease's limits.
 */
struct vfiod_lease_grant {
        bool known;                     /* false: the daemon did not say (protocol 1.0) */
        char rule[VFIOD_RULE_NAME_MAX]; /* the rule that granted the device */
        /* Bytes vfiod_map_dma() may keep mapped in the lease's domain at once (what the
         * connection maps elsewhere, and the user's other connections, count too). */
        uint64_t max_pinned_bytes;
        uint32_t max_mappings; /* mappings the domain may keep at once */
        /* false: any IOVA the IOMMU takes; true: a range must lie inside one window. */
        bool iova_restricted;
        /* Windows the daemon named (0 with iova_restricted: none is allowed); the first
         * VFIOD_IOVA_WINDOWS_MAX of them are in iova_windows[]. */
        uint32_t n_iova_windows;
        struct vfiod_iova_window iova_windows[VFIOD_IOVA_WINDOWS_MAX];
        unsigned irq_types; /* VFIOD_IRQ_BIT() of the indexes vfiod_set_irqs() may set */
        /*
         * DIRECT and GROUP (protocol 1.2): the RLIMIT_MEMLOCK the daemon gave the
         * connection's process (its MaxPinnedBytes=, or higher as found);
         * UINT64_MAX = unlimited; 0 = not set: no rule asks for it, or the
         * daemon could not, memlock_error says why ("" otherwise).
         */
        uint64_t memlock_bytes;
        char memlock_error[VFIOD_TEXT_MAX];
};

/*
 * A lease: the caller's hold on one IOMMU group. The fds are the CALLER's:
 * close them (vfiod_lease_close_fds()) before vfiod_release(), or the daemon
 * quarantines the group until they are closed. -1 = absent.
 *
 * (irq_counts and grant came before the first release, 0.1.0, with protocol
 * 1.1, and grant.memlock_bytes and memlock_error with 1.2: a program built
 * against an earlier snapshot of vfiod.h must be built again.)
 */
struct vfiod_lease {
        uint64_t lease_id;
        uint64_t domain_id;
        uint32_t iommu_group;
        char device[VFIOD_DEVICE_NAME_MAX]; /* PCI address, as acquired */
        enum vfiod_mode mode;
        int container_fd; /* DIRECT only, else -1 */
        int group_fd;     /* DIRECT and GROUP, else -1 */
        int device_fd;    /* DIRECT and BROKERED (IOMMUFD: the cdev), else -1 */
        /* VFIO_DEVICE_GET_INFO; num_irqs counts interrupt INDEXES, not vectors. */
        uint32_t num_regions, num_irqs, device_flags;
        /* Vectors per interrupt index of the device: use vfiod_lease_irq_count(). */
        uint32_t irq_counts[VFIOD_IRQ_INDEX_COUNT];
        struct vfiod_lease_grant grant;
        /*
         * Protocol 1.2, from vfiod_acquire_iface(): the interface of the lease
         * (LEGACY from vfiod_acquire() and from a 1.1 daemon); IOMMUFD DIRECT:
         * the domain's iommufd (-1 otherwise) and an UNBOUND device cdev in
         * device_fd, which the caller binds to iommufd_fd
         * (VFIO_DEVICE_BIND_IOMMUFD) before any other use: exactly what QEMU's
         * `-object iommufd,fd=` and `-device vfio-pci,iommufd=,fd=` take; num_*,
         * device_flags and irq_counts are then 0. cdev: "vfio3", "" for LEGACY.
         */
        enum vfiod_interface interface;
        int iommufd_fd;
        char cdev[16];
};

/*
 * Leases the IOMMU group of `device` (a PCI address) into domain `domain_id`
 * (0: a new domain, whose id is in ret->domain_id) in `mode`. A domain made
 * this way (implicit) goes with its last lease: when vfiod_release() (or a
 * revoke, or the end of the connection) ends the last lease in it, the daemon
 * destroys it; more leases may join it by its id meanwhile. A domain made by
 * vfiod_create_domain() (explicit) stays until vfiod_destroy_domain().
 *
 * Returns 0 and fills *ret; on success the fds in *ret are owned by the
 * caller (DIRECT: container, group and device fd; BROKERED: device fd only,
 * the others -1; GROUP: group fd only, attached to no container, domain_id
 * 0, which domain_id must be too). All are close-on-exec. Errors: -EPERM
 * (policy), -EBUSY (leased or quarantined; GROUP: also another device of a
 * group the caller holds already, whose group fd reaches it), -ENOENT
 * (unknown device or domain), -ENOSPC (limit), -EINVAL (mode, or a domain
 * of the other mode), -EOPNOTSUPP (GROUP from a daemon older than protocol
 * 1.2), -EPROTO (the reply lacks a device fd, or carries fds the mode does
 * not have), the call errors.
 */
int vfiod_acquire(struct vfiod *c, const char *device, uint64_t domain_id, enum vfiod_mode mode,
                  struct vfiod_lease *ret);

/*
 * vfiod_acquire() through interface iface (LEGACY, IOMMUFD or ANY; see
 * struct vfiod_lease for what IOMMUFD hands over). Errors: as
 * vfiod_acquire(), and -ENXIO (the device offers no iommufd interface),
 * -EPERM (the policy's Interfaces=), -EOPNOTSUPP (IOMMUFD or ANY from a
 * daemon older than protocol 1.2).
 */
int vfiod_acquire_iface(struct vfiod *c, const char *device, uint64_t domain_id,
                        enum vfiod_mode mode, enum vfiod_interface iface, struct vfiod_lease *ret);

/* Closes the fds of *lease that are open and sets them to -1. NULL is fine. */
void vfiod_lease_close_fds(struct vfiod_lease *lease);

/*
 * The lease `vfioctl acquire` made for the calling program (its COMMAND),
 * from the environment: $VFIOD_LEASE_ID, $VFIOD_DOMAIN_ID, $VFIOD_DEVICE,
 * $VFIOD_IOMMU_GROUP, $VFIOD_MODE and the inherited fds $VFIOD_DEVICE_FD
 * (and, DIRECT, $VFIOD_GROUP_FD and $VFIOD_CONTAINER_FD; GROUP:
 * $VFIOD_GROUP_FD alone and $VFIOD_DOMAIN_ID 0). When c is not NULL
 * (BROKERED: the connection vfiod_connect_env() adopted) the daemon is
 * asked for the lease's grant and interrupt vectors (ret->grant,
 * ret->irq_counts), which also checks that the lease is c's; with c NULL
 * ret->grant.known is false. num_regions, num_irqs and device_flags are 0:
 * VFIO_DEVICE_GET_INFO on device_fd gives them.
 *
 * Returns 0 and fills *ret: the fds are then the caller's, made
 * close-on-exec, and their variables removed from the environment (so that
 * programs started later do not believe they hold them). On failure no fd
 * is closed and the environment is unchanged. Errors: -ENXIO
 * ($VFIOD_LEASE_ID unset: not started by `vfioctl acquire`), -EINVAL (a
 * variable missing or malformed, a mode without its fds), -EBADF (a named
 * fd is not open), -ENOENT (c does not hold that lease), the call errors.
 */
int vfiod_lease_from_env(struct vfiod *c, struct vfiod_lease *ret);

/*
 * The number of vectors of interrupt index `index` of the lease's device
 * (VFIO_DEVICE_GET_IRQ_INFO's count, as the daemon read it), e.g. how many
 * MSI-X vectors vfiod_setup_msi() may set up. Returns the count (0: the
 * device has none of that kind), -EINVAL (NULL, or an index out of range),
 * -ENODATA (the daemon did not say: protocol 1.0).
 */
int vfiod_lease_irq_count(const struct vfiod_lease *lease, enum vfiod_irq_index index);

/*
 * Gives lease `lease_id` back: the daemon disables interrupts, unmaps DMA,
 * detaches the group and resets the device. Does NOT close any fd: close the
 * lease's fds first. Returns 0, -ENOENT, the call errors.
 */
int vfiod_release(struct vfiod *c, uint64_t lease_id);

/*
 * Resets `device` (NULL or "": the acquired device) of a lease. Returns 0,
 * -ENOENT, -ENOTTY (no reset method), the call errors.
 */
int vfiod_reset(struct vfiod *c, uint64_t lease_id, const char *device);

/* ------------------------------------------------------------------------- */
/* DMA (BROKERED leases) */

/*
 * One range of a mapping: `size` bytes of memfd `fd` from `offset`, at
 * `iova`. offset, iova and size must be page-aligned; the memfd must be
 * sealed with F_SEAL_SHRINK (vfiod_memfd_create() does that) and cover
 * offset + size, and every page of the range must be written or faulted in
 * by the caller already (no hole: the daemon faults in no page for a
 * client, the pages are charged to the caller's memory cgroup). The fd is
 * BORROWED: the library never closes it.
 */
struct vfiod_dma_range {
        int fd;
        uint64_t offset;
        uint64_t iova;
        uint64_t size;
        unsigned flags; /* VFIOD_DMA_READ | VFIOD_DMA_WRITE */
};

/*
 * Maps n ranges (n >= 1) into a domain, all or nothing. The library sends
 * each distinct fd once (ranges naming the same fd share it). The fds are
 * borrowed; the daemon maps the ranges itself and keeps a duplicate of each
 * memfd while it maps part of it (counted against its fd budget), and the
 * caller keeps full access to the pages.
 *
 * Returns the number of ranges mapped (n) and, when ret_bytes is not NULL,
 * sets *ret_bytes to the bytes mapped. Errors: -EINVAL (n == 0, a negative
 * fd, an unknown flag; from the daemon: alignment, overlap, seals), -EBADFD
 * (an fd is not a memfd: refused by the library, nothing sent), -EBUSY (the
 * domain still holds a quarantined group of a released lease), -EFAULT
 * (a range has a hole: a page never written), -EDQUOT (pinned bytes),
 * -ENOSPC (mappings, or the fds the daemon keeps for you: MaxFdsPerClient,
 * MaxFdsPerUser), -EMFILE (the daemon is near its own fd limit: try later),
 * -EPERM (IOVA outside the allowed windows), -EMSGSIZE (too many ranges or
 * fds for one message), the call errors.
 */
int vfiod_map_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_dma_range *ranges,
                  size_t n, uint64_t *ret_bytes);

/* An IOVA range to unmap; it must cover whole mappings. */
struct vfiod_iova_range {
        uint64_t iova;
        uint64_t size;
};

/*
 * Unmaps n ranges (n >= 1) of a domain, all or nothing. Returns the number of
 * mappings removed and, when ret_bytes is not NULL, sets *ret_bytes to the
 * bytes unmapped. Errors: -ENOENT (nothing mapped there), -EINVAL (a range
 * splits a mapping, n == 0), -EMSGSIZE, the call errors.
 */
int vfiod_unmap_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_iova_range *ranges,
                    size_t n, uint64_t *ret_bytes);

/*
 * Pipelining: MapDma and UnmapDma kept in flight, so that a driver that
 * recycles buffers pays one round trip for many requests rather than one
 * each. vfiod_submit_map_dma() and vfiod_submit_unmap_dma() take the
 * arguments of vfiod_map_dma() and vfiod_unmap_dma(), send the request and
 * return at once: 0 with its id in *ret_id (may be NULL). The fds are
 * borrowed only for the call (the kernel copied them: they may be closed
 * at once). At most the daemon's MaxRequestsInFlight
 * (vfiod_server_info.limits.max_requests_in_flight; 1 when it did not say)
 * are in flight; one more fails with -EAGAIN: collect first. Besides that,
 * the errors of the synchronous call that arise before anything is sent.
 *
 * vfiod_collect() waits for the reply to the oldest request in flight (the
 * daemon answers in order) and fills *ret: its id, which request it was,
 * and in ret->result what the synchronous call would have returned (the
 * ranges mapped, the mappings unmapped, or the daemon's negated errno, with
 * vfiod_last_error() giving the reason; requests after a refused one still
 * run) and in ret->bytes its bytes. Events that arrive before the reply are
 * queued for vfiod_next_event(), as during any call. Returns 0, -ENOENT
 * (nothing in flight), or the call errors of the connection (-ECONNRESET,
 * -EPROTO, ...: the connection is then dead).
 *
 * While requests are in flight, every other request fails with -EBUSY, and
 * vfiod_next_event() returns only events already queued (-EAGAIN when none:
 * what the socket holds may be a reply; collect it). vfiod_in_flight() is
 * the number of requests submitted and not collected.
 */
enum vfiod_request {
        VFIOD_REQUEST_MAP_DMA = 1,
        VFIOD_REQUEST_UNMAP_DMA = 2,
};

struct vfiod_reply {
        uint64_t id;                /* as vfiod_submit_*() returned it */
        enum vfiod_request request; /* which call it answers */
        int result;                 /* the synchronous call's return value */
        uint64_t bytes;             /* bytes mapped or unmapped (result >= 0) */
};

int vfiod_submit_map_dma(struct vfiod *c, uint64_t domain_id, const struct vfiod_dma_range *ranges,
                         size_t n, uint64_t *ret_id);
int vfiod_submit_unmap_dma(struct vfiod *c, uint64_t domain_id,
                           const struct vfiod_iova_range *ranges, size_t n, uint64_t *ret_id);
int vfiod_collect(struct vfiod *c, struct vfiod_reply *ret);
size_t vfiod_in_flight(const struct vfiod *c);

/*
 * Helper: maps `size` bytes of memfd `memfd` from `offset` at `iova` (one
 * range, vfiod_map_dma()). The memfd is borrowed. Returns 0 or the errors of
 * vfiod_map_dma().
 */
int vfiod_map_memfd(struct vfiod *c, uint64_t domain_id, int memfd, uint64_t offset, uint64_t iova,
                    uint64_t size, unsigned flags);

/*
 * Helper: creates a memfd of `size` bytes (size > 0) for vfiod_map_dma():
 * MFD_CLOEXEC | MFD_ALLOW_SEALING (and MFD_NOEXEC_SEAL where the kernel has
 * it), ftruncate(size), every page faulted in by the caller
 * (MADV_POPULATE_WRITE, else a write to each page: vfiod_map_dma() wants no
 * hole, and the pages are charged to the caller), then the seals F_SEAL_SHRINK (the daemon requires
 * it: its mapping of the pages must never lose them), F_SEAL_GROW (the size
 * is fixed) and F_SEAL_SEAL (no one holding the fd can add F_SEAL_WRITE or
 * F_SEAL_FUTURE_WRITE later, which would break the daemon's shared mapping).
 * The memfd stays writable and mmap-able by the caller. `name` is for
 * /proc/PID/fd only (NULL: "vfiod").
 *
 * Returns 0 and sets *ret_fd to the new memfd, owned by the caller, or
 * -EINVAL (size 0), -EFBIG (size does not fit off_t), memfd_create(),
 * ftruncate(), mmap(), madvise() or fcntl() errors (-ENOMEM, -EMFILE, ...); on failure nothing
 * is left open.
 */
int vfiod_memfd_create(const char *name, uint64_t size, int *ret_fd);

/* ------------------------------------------------------------------------- */
/* Interrupts */

/*
 * A VFIO_DEVICE_SET_IRQS request: vectors start .. start + count - 1 of
 * `index` on `device` (NULL or "": the acquired device). The payload is
 * eventfds when `eventfds` is not NULL (count entries; -1 = de-assign that
 * vector), else bools when `bools` is not NULL (count entries), else none.
 * count 0 with TRIGGER and no payload disables the whole index. The
 * eventfds are BORROWED: the daemon keeps duplicates while they are assigned.
 */
struct vfiod_irq_set {
        const char *device;
        enum vfiod_irq_index index;
        uint32_t start;
        uint32_t count;
        enum vfiod_irq_action action;
        const int *eventfds;
        const bool *bools;
};

/*
 * Sends *set for lease `lease_id` (each distinct eventfd travels once).
 * Returns 0, or -EINVAL (both payloads set, an eventfd below -1), -EBADFD (an
 * fd is not an eventfd: refused by the library, nothing sent), -EPERM (ERR
 * or REQ index, or not allowed), -ENOENT, -EMSGSIZE, -ENOSPC (the daemon
 * keeps each eventfd while assigned, within MaxFdsPerClient and
 * MaxFdsPerUser), -EMFILE (the daemon is near its own fd limit), the call
 * errors.
 */
int vfiod_set_irqs(struct vfiod *c, uint64_t lease_id, const struct vfiod_irq_set *set);

/*
 * Helper: creates `count` eventfds (EFD_CLOEXEC | EFD_NONBLOCK) and assigns
 * them as the triggers of vectors 0 .. count - 1 of `index` (MSI or MSI-X)
 * of the acquired device of lease `lease_id`.
 *
 * Returns 0 and stores the eventfds in ret_eventfds[0 .. count - 1]; they are
 * then owned by the caller (the daemon holds its own duplicates until the
 * index is disabled or the lease ends). On failure every eventfd the call
 * created is closed and ret_eventfds is untouched. Errors: -EINVAL (count 0,
 * or index not MSI/MSI-X), eventfd() errors, the errors of vfiod_set_irqs().
 */
int vfiod_setup_msi(struct vfiod *c, uint64_t lease_id, enum vfiod_irq_index index, uint32_t count,
                    int *ret_eventfds);

/*
 * Helper: disables every vector of `index` on the acquired device of lease
 * `lease_id` (count 0, TRIGGER, no payload); the daemon drops its eventfd
 * duplicates. Returns 0 or the errors of vfiod_set_irqs().
 */
int vfiod_disable_irqs(struct vfiod *c, uint64_t lease_id, enum vfiod_irq_index index);

/* ------------------------------------------------------------------------- */
/* Admin (peers with VFIOD_CAP_ADMIN; others get -EPERM) */

struct vfiod_lease_info {
        uint64_t lease_id;
        char **devices; /* the group's PCI addresses, n_devices of them */
        size_t n_devices;
        uint32_t iommu_group;
        uint32_t uid, gid, pid;         /* holder, from SO_PEERCRED */
        char unit[VFIOD_UNIT_NAME_MAX]; /* holder's systemd unit, "" if none */
        enum vfiod_mode mode;
        uint64_t domain_id;
        uint64_t pinned_bytes; /* bytes mapped in the domain by vfiod_map_dma() */
        uint32_t mappings;
        enum vfiod_lease_status status;
};

/*
 * Lists every lease. Returns 0 and sets *ret_leases to an array of *ret_n
 * entries (NULL when none), owned by the caller: free with
 * vfiod_leases_free(). Errors: -EPERM, the call errors.
 */
int vfiod_list_leases(struct vfiod *c, struct vfiod_lease_info **ret_leases, size_t *ret_n);

/* Frees what vfiod_list_leases() returned, devices included. NULL is fine. */
void vfiod_leases_free(struct vfiod_lease_info *leases, size_t n);

/*
 * Revokes lease `lease_id`, passing `reason` (NULL = "") to its holder and the
 * log. Returns 0 once the revoke has started, -ENOENT, -EPERM, the call
 * errors.
 */
int vfiod_revoke(struct vfiod *c, uint64_t lease_id, const char *reason);

struct vfiod_reload_result {
        bool applied;  /* false: errors found, the old policy stays */
        char **errors; /* "file:line: message", n_errors of them */
        size_t n_errors;
        uint32_t leases_revoked; /* revoked because no longer allowed */
};

/*
 * Asks the daemon to re-read its policy. Returns 0 when the daemon answered
 * (check ret->applied) and fills *ret, which the caller frees with
 * vfiod_reload_result_clear(). Errors: -EPERM, the call errors.
 */
int vfiod_reload_policy(struct vfiod *c, struct vfiod_reload_result *ret);

/* Frees the errors of *r and zeroes it. NULL is fine. */
void vfiod_reload_result_clear(struct vfiod_reload_result *r);

struct vfiod_stats {
        uint32_t clients, leases, domains, mappings; /* now */
        uint64_t pinned_bytes;                       /* now */
        uint64_t requests, errors;                   /* since start */
        uint32_t quarantined_groups;
        uint64_t uptime_ms;
};

/* Fills *ret with the daemon's counters. Returns 0, -EPERM, the call errors. */
int vfiod_stats(struct vfiod *c, struct vfiod_stats *ret);

/* ------------------------------------------------------------------------- */
/* Names, for messages and tables: lower-case words ("direct",
 * "leased-by-you", ...); "unknown" for a value outside the enum. Static
 * strings. */

const char *vfiod_mode_name(enum vfiod_mode mode);
const char *vfiod_lease_state_name(enum vfiod_lease_state state);
const char *vfiod_lease_status_name(enum vfiod_lease_status status);
const char *vfiod_iommu_type_name(enum vfiod_iommu_type type);
const char *vfiod_release_reason_name(enum vfiod_release_reason reason);
const char *vfiod_event_type_name(enum vfiod_event_type type);

#ifdef __cplusplus
}
#endif
