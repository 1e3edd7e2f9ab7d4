/* SPDX-License-Identifier: MIT */
/*
 * The vfiod transport: one Envelope per SOCK_SEQPACKET datagram, with the fds
 * it names attached as SCM_RIGHTS.
 *
 * Concepts:
 * - A datagram carries one serialized Vfiod__Envelope (at most
 *   VFIOD_PROTO_MAX_DATAGRAM bytes) and at most VFIOD_PROTO_MAX_FDS fds. The
 *   message names its fds by index into that datagram's fd array (see
 *   proto/vfiod.proto). Every index named must have arrived, and every fd
 *   that arrived must be named; vfiod_envelope_fd_indices() is the one place
 *   that knows which fields are fd indices.
 * - Sending borrows the fds: the kernel duplicates them into the datagram and
 *   the caller keeps (and later closes) its own, whether the send worked or
 *   not.
 * - Receiving makes a struct vfiod_msg that owns the fds that arrived. A
 *   handler takes the ones it keeps with vfiod_msg_take_fd();
 *   vfiod_msg_free() closes the rest. A datagram that breaks a rule is
 *   rejected: every fd in it is closed, and the caller gets a distinct
 *   negative errno and a static reason (then drops the connection).
 * - Nothing is kept per connection: the receive buffer lives on the stack.
 * - Library code: nothing here prints or logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/vfiod.pb-c.h"

/* Protocol version, announced in Hello / HelloReply. */
#define VFIOD_PROTO_VERSION_MAJOR 1
#define VFIOD_PROTO_VERSION_MINOR 3

/* Largest datagram (serialized Envelope) either side sends or accepts. */
#define VFIOD_PROTO_MAX_DATAGRAM (64 * 1024)
/* Most fds in one datagram: the kernel's SCM_MAX_FD. */
#define VFIOD_PROTO_MAX_FDS 253

/*
 * A received message. It owns every fd in fds[] that is not -1, and the
 * memory env lives in (an arena freed with the message: nothing in env may
 * be kept after vfiod_msg_free()).
 */
struct vfiod_msg {
        Vfiod__Envelope *env; /* decoded; never NULL, always has a body */
        int *fds;             /* the datagram's fds, in order; NULL if none */
        size_t n_fds;
        struct vfiod_msg_arena *arena; /* private to the transport */
};

/*
 * Takes ownership of fds[index] out of msg: returns the fd (now the caller's
 * to close) and leaves -1 in its slot. Returns -ERANGE when index >= n_fds
 * and -EBADF when that fd was already taken.
 */
int vfiod_msg_take_fd(struct vfiod_msg *msg, size_t index);

/*
 * Closes every fd still owned by msg (leaving -1 in the slots) and returns
 * how many it closed, so that a caller can log fds a handler did not use.
 * NULL-safe (returns 0).
 */
size_t vfiod_msg_close_fds(struct vfiod_msg *msg);

/*
 * Closes every fd still owned by msg and frees it. Returns how many fds it
 * closed. NULL-safe.
 */
size_t vfiod_msg_free(struct vfiod_msg *msg);

static inline void vfiod_msg_freep(struct vfiod_msg **msg)
{
        (void)vfiod_msg_free(*msg);
}

/*
 * Receives one datagram from sock (one recvmsg() with MSG_CMSG_CLOEXEC plus
 * `flags`, e.g. MSG_DONTWAIT).
 *
 * Returns:
 *   1           a message: *ret is set (free with vfiod_msg_free());
 *   0           orderly EOF (the peer closed): *ret is set to NULL. A peer
 *               that sends a zero-byte datagram and closes at once also
 *               reads as EOF;
 *   -EAGAIN, -EINTR and other recvmsg() errors, passed through;
 *   a rejected datagram, every fd in it closed:
 *     -EMSGSIZE      larger than VFIOD_PROTO_MAX_DATAGRAM (MSG_TRUNC);
 *     -ETOOMANYREFS  fds were cut off (MSG_CTRUNC): more than
 *                    VFIOD_PROTO_MAX_FDS, or this process ran out of fds;
 *     -EPROTOTYPE    a control message other than SCM_RIGHTS (the socket
 *                    must not have SO_PASSCRED / SO_PASSSEC set);
 *     -EBADMSG       does not decode as an Envelope;
 *     -ENOMSG        no body (empty envelope, empty datagram, or a body this
 *                    version does not know);
 *     -EBADR         names an fd index that did not arrive;
 *     -EPROTO        carries an fd the message does not name;
 *     -EBADFD        carries an fd of the wrong kind: one its field does not
 *                    take (MapDma takes memfds, SetIrqs eventfds; the VFIO
 *                    fds of AcquireReply are not checked), or, with a filter,
 *                    one that is neither a memfd nor an eventfd;
 *   -ENOMEM.
 * On a negative return *ret is untouched and, if ret_reason is not NULL,
 * *ret_reason is set to a static human-readable reason. ret_reason may be
 * NULL.
 */
int vfiod_msg_recv(int sock, int flags, struct vfiod_msg **ret, const char **ret_reason);

/*
 * What a receiver that takes only requests (the daemon) does with the fds
 * no request takes. Closing an fd can block for as long as whoever is on its
 * other side likes (the last close of a TCP socket with SO_LINGER and unsent
 * data, a FUSE file whose flush never returns); closing a memfd or an
 * eventfd cannot. So right after recvmsg(), before anything else is looked
 * at, every fd that is neither goes to unwanted_take(fd, userdata), which
 * owns it from then on and must close it where blocking does no harm; the
 * datagram is then rejected (-EBADFD) and the rest closed as usual.
 */
struct vfiod_recv_filter {
        void (*unwanted_take)(int fd, void *userdata);
        void *userdata;
};

/* vfiod_msg_recv() that sorts the fds out with filter first (NULL: as vfiod_msg_recv()). */
int vfiod_msg_recv_filtered(int sock, int flags, const struct vfiod_recv_filter *filter,
                            struct vfiod_msg **ret, const char **ret_reason);

/*
 * Sends env as one datagram with fds[0..n_fds) attached (SCM_RIGHTS), with
 * MSG_NOSIGNAL. The fds are BORROWED: the kernel duplicates them and the
 * caller keeps its own whatever happens, so a failed send leaks nothing.
 *
 * Returns 0 on success, or:
 *   -EINVAL    env has no body, or its fd indices do not match n_fds (an
 *              index >= n_fds, or an fd no index names);
 *   -EBADF     one of fds[] is negative;
 *   -EBADFD    an fd is not of the kind its field needs (memfd, eventfd);
 *   -EMSGSIZE  the packed envelope exceeds VFIOD_PROTO_MAX_DATAGRAM or
 *              n_fds exceeds VFIOD_PROTO_MAX_FDS;
 *   -EPIPE     the peer is gone (no SIGPIPE is raised);
 *   -EAGAIN (non-blocking socket, queue full), -EINTR and other sendmsg()
 *   errors, passed through.
 */
int vfiod_msg_send(int sock, const Vfiod__Envelope *env, const int *fds, size_t n_fds);

/*
 * Sends buf[0..len), bytes already packed and checked (what vfiod_msg_send()
 * does once it has packed env; the daemon's queue for a client that does not
 * read), as one datagram with fds[0..n_fds) attached, with MSG_NOSIGNAL |
 * flags (e.g. MSG_DONTWAIT). The fds are BORROWED, as for vfiod_msg_send().
 * Returns 0, -EMSGSIZE (n_fds > VFIOD_PROTO_MAX_FDS), -EIO (sent short), or
 * the errno of sendmsg() (-EAGAIN, -EPIPE, ...).
 */
int vfiod_datagram_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds,
                        int flags);

/* True when fd is an eventfd (an anonymous inode, told apart only by its name in /proc). */
bool vfiod_fd_is_eventfd(int fd);

/* What an fd index field must point at. */
enum vfiod_fd_kind {
        VFIOD_FD_KIND_VFIO_CONTAINER, /* AcquireReply.container_fd */
        VFIOD_FD_KIND_VFIO_GROUP,     /* AcquireReply.group_fd */
        VFIOD_FD_KIND_VFIO_DEVICE,    /* AcquireReply.device_fd */
        VFIOD_FD_KIND_IOMMUFD,        /* AcquireReply.iommufd_fd */
        VFIOD_FD_KIND_MEMFD,          /* DmaRange.fd_index */
        VFIOD_FD_KIND_EVENTFD,        /* SetIrqs.eventfds[] */
};

/*
 * Calls visit(index, kind, userdata) for every fd index env names, in field
 * order: AcquireReply's container/group/device/iommufd fd when set, every
 * MapDma range's fd_index (the same index may come more than once), every
 * SetIrqs eventfd that is not -1 (values below -1 are passed on, for the
 * caller to reject). Other bodies name no fds.
 *
 * Stops at and returns the first negative value visit() returns; returns
 * -EINVAL if env's body is set but its message pointer (or a MapDma range) is
 * NULL; otherwise returns the number of indices visited.
 */
int vfiod_envelope_fd_indices(const Vfiod__Envelope *env,
                              int (*visit)(int64_t index, enum vfiod_fd_kind kind, void *userdata),
                              void *userdata);

/*
 * Checks env against a datagram carrying n_fds fds: env has a body, every
 * index it names is < n_fds, every one of the n_fds is named and, when fds
 * is not NULL, each fd is of the kind its field needs (MapDma: a memfd, i.e.
 * a file F_GET_SEALS works on; SetIrqs: an eventfd; the VFIO fds of
 * AcquireReply are not checked here). Returns 0, or -ENOMSG (no body),
 * -EBADR (an index that is not there), -EPROTO (an fd not named), -EBADFD
 * (an fd of the wrong kind), -ETOOMANYREFS (n_fds > VFIOD_PROTO_MAX_FDS),
 * -EINVAL (NULL submessage), with a static reason in *ret_reason (may be
 * NULL).
 */
int vfiod_envelope_check_fds(const Vfiod__Envelope *env, const int *fds, size_t n_fds,
                             const char **ret_reason);

/* The body's field name in the schema ("map_dma"), or "none"; for logs. */
const char *vfiod_envelope_body_name(const Vfiod__Envelope *env);
