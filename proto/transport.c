/* SPDX-License-Identifier: MIT */
#include "proto/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "proto/macro.h"

/* Room for VFIOD_PROTO_MAX_FDS fds in one SCM_RIGHTS control message. */
#define FD_CONTROL_SIZE CMSG_SPACE(sizeof(int) * VFIOD_PROTO_MAX_FDS)

_Static_assert(VFIOD_PROTO_MAX_FDS <= 253, "the kernel passes at most SCM_MAX_FD (253) fds");

int vfiod_msg_take_fd(struct vfiod_msg *msg, size_t index)
{
        int fd;

        if (!msg || index >= msg->n_fds)
                return -ERANGE;
        fd = msg->fds[index];
        if (fd < 0)
                return -EBADF;
        msg->fds[index] = -1;
        /* From here the fd is owned by the caller. */
        return fd;
}

size_t vfiod_msg_close_fds(struct vfiod_msg *msg)
{
        size_t closed = 0;

        if (!msg)
                return 0;
        for (size_t i = 0; i < msg->n_fds; i++) {
                if (msg->fds[i] < 0)
                        continue;
                (void)safe_close(msg->fds[i]);
                msg->fds[i] = -1;
                closed++;
        }
        return closed;
}

/*
 * The decoded envelope of a message lives in an arena: protobuf-c allocates
 * every part of it there and the message frees it in one go, instead of one
 * malloc() per part and a free_unpacked() walk over every member of the
 * envelope's oneof. The first chunk is part of the message's own allocation
 * and holds any request but a long MapDma or SetIrqs; larger ones add chunks.
 * Its size keeps that allocation (with a few fds) within glibc's per-thread
 * cache of freed blocks (1,032 bytes at most): a message is then reused, not
 * returned to the heap, whose merging of a freed block with its top costs
 * more than decoding a small request.
 */
#define ARENA_INLINE 896
#define ARENA_CHUNK  16384

struct arena_chunk {
        struct arena_chunk *next;
        size_t used, size;
        max_align_t data[];
};

struct vfiod_msg_arena {
        ProtobufCAllocator allocator;
        struct arena_chunk *extra; /* malloc()ed chunks, newest first */
        struct arena_chunk first;  /* followed by ARENA_INLINE bytes */
};

static void *arena_alloc(void *data, size_t size)
{
        struct vfiod_msg_arena *a = data;
        struct arena_chunk *c = a->extra ? a->extra : &a->first;
        size_t align = _Alignof(max_align_t);
        void *p;

        if (size > SIZE_MAX - ARENA_CHUNK)
                return NULL;
        size = (size + align - 1) & ~(align - 1);
        if (c->size - c->used < size) {
                size_t n = size > ARENA_CHUNK ? size : ARENA_CHUNK;

                c = malloc(sizeof(*c) + n);
                if (!c)
                        return NULL;
                *c = (struct arena_chunk){.next = a->extra, .size = n};
                a->extra = c;
        }
        p = (char *)c->data + c->used;
        c->used += size;
        return p;
}

static void arena_free(void *data, void *p)
{
        /* Everything goes with the arena. */
}

static void arena_free_chunks(struct vfiod_msg_arena *a)
{
        while (a && a->extra) {
                struct arena_chunk *c = a->extra;

                a->extra = c->next;
                free(c);
        }
}

size_t vfiod_msg_free(struct vfiod_msg *msg)
{
        size_t closed;

        if (!msg)
                return 0;
        closed = vfiod_msg_close_fds(msg);
        /* The envelope lives in the arena. */
        arena_free_chunks(msg->arena);
        free(msg);
        return closed;
}

typedef int (*fd_visit_fn)(int64_t index, enum vfiod_fd_kind kind, void *userdata);

/* AcquireReply: the container, group, device and iommufd fds it has. */
static int acquire_reply_fd_indices(const Vfiod__AcquireReply *a, fd_visit_fn visit, void *userdata)
{
        int n = 0, r;

        if (!a)
                return -EINVAL;
        if (a->has_container_fd_case == VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD) {
                r = visit(a->container_fd, VFIOD_FD_KIND_VFIO_CONTAINER, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        if (a->has_group_fd_case == VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD) {
                r = visit(a->group_fd, VFIOD_FD_KIND_VFIO_GROUP, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        if (a->has_device_fd_case == VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD) {
                r = visit(a->device_fd, VFIOD_FD_KIND_VFIO_DEVICE, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        if (a->has_iommufd_fd_case == VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD) {
                r = visit(a->iommufd_fd, VFIOD_FD_KIND_IOMMUFD, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

/* MapDma: one memfd per range. */
static int map_dma_fd_indices(const Vfiod__MapDma *m, fd_visit_fn visit, void *userdata)
{
        int n = 0, r;

        if (!m || (m->n_ranges > 0 && !m->ranges))
                return -EINVAL;
        for (size_t i = 0; i < m->n_ranges; i++) {
                if (!m->ranges[i])
                        return -EINVAL;
                r = visit(m->ranges[i]->fd_index, VFIOD_FD_KIND_MEMFD, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

/* SetIrqs: one eventfd per vector that has one. */
static int set_irqs_fd_indices(const Vfiod__SetIrqs *s, fd_visit_fn visit, void *userdata)
{
        int n = 0, r;

        if (!s || (s->n_eventfds > 0 && !s->eventfds))
                return -EINVAL;
        for (size_t i = 0; i < s->n_eventfds; i++) {
                if (s->eventfds[i] == -1) /* no eventfd for this vector */
                        continue;
                r = visit(s->eventfds[i], VFIOD_FD_KIND_EVENTFD, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

/* The one place that knows which fields of which body are fd indices. */
int vfiod_envelope_fd_indices(const Vfiod__Envelope *env,
                              int (*visit)(int64_t index, enum vfiod_fd_kind kind, void *userdata),
                              void *userdata)
{
        switch (env->body_case) {
        case VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY:
                return acquire_reply_fd_indices(env->acquire_reply, visit, userdata);
        case VFIOD__ENVELOPE__BODY_MAP_DMA:
                return map_dma_fd_indices(env->map_dma, visit, userdata);
        case VFIOD__ENVELOPE__BODY_SET_IRQS:
                return set_irqs_fd_indices(env->set_irqs, visit, userdata);
        /*
         * Every other body names no fd. They are listed one by one, without a
         * default, so that a body added to the schema fails to compile here
         * (-Wswitch) until someone decides whether it carries fds.
         */
        case VFIOD__ENVELOPE__BODY__NOT_SET:
        case VFIOD__ENVELOPE__BODY_HELLO:
        case VFIOD__ENVELOPE__BODY_HELLO_REPLY:
        case VFIOD__ENVELOPE__BODY_ERROR:
        case VFIOD__ENVELOPE__BODY_OK:
        case VFIOD__ENVELOPE__BODY_LIST_DEVICES:
        case VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY:
        case VFIOD__ENVELOPE__BODY_CREATE_DOMAIN:
        case VFIOD__ENVELOPE__BODY_CREATE_DOMAIN_REPLY:
        case VFIOD__ENVELOPE__BODY_DESTROY_DOMAIN:
        case VFIOD__ENVELOPE__BODY_ACQUIRE:
        case VFIOD__ENVELOPE__BODY_RELEASE:
        case VFIOD__ENVELOPE__BODY_RESET:
        case VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY:
        case VFIOD__ENVELOPE__BODY_UNMAP_DMA:
        case VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY:
        case VFIOD__ENVELOPE__BODY_LIST_LEASES:
        case VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY:
        case VFIOD__ENVELOPE__BODY_REVOKE:
        case VFIOD__ENVELOPE__BODY_RELOAD_POLICY:
        case VFIOD__ENVELOPE__BODY_RELOAD_POLICY_REPLY:
        case VFIOD__ENVELOPE__BODY_STATS:
        case VFIOD__ENVELOPE__BODY_STATS_REPLY:
        case VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED:
        case VFIOD__ENVELOPE__BODY_DEVICE_ERROR:
        case VFIOD__ENVELOPE__BODY_LEASE_REVOKED:
        case _VFIOD__ENVELOPE__BODY__CASE_IS_INT_SIZE:
                return 0;
        }
        return 0;
}

/*
 * A body is present when the case is set and its message pointer too (every
 * member of the oneof is a message pointer, so any member of the union reads it).
 */
static bool envelope_has_body(const Vfiod__Envelope *env)
{
        return env->body_case != VFIOD__ENVELOPE__BODY__NOT_SET && env->hello != NULL;
}

/* A shmem file (memfd, or tmpfs/hugetlbfs): the only files F_GET_SEALS works on. */
static bool fd_is_memfd(int fd)
{
        return fcntl(fd, F_GET_SEALS) >= 0;
}

bool vfiod_fd_is_eventfd(int fd)
{
        static const char want[] = "anon_inode:[eventfd]";
        char path[64], target[sizeof(want) + 1];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target));
        return n == (ssize_t)(sizeof(want) - 1) && memcmp(target, want, (size_t)n) == 0;
}

static bool fd_has_kind(int fd, enum vfiod_fd_kind kind)
{
        switch (kind) {
        case VFIOD_FD_KIND_MEMFD:
                return fd_is_memfd(fd);
        case VFIOD_FD_KIND_EVENTFD:
                return vfiod_fd_is_eventfd(fd);
        case VFIOD_FD_KIND_VFIO_CONTAINER:
        case VFIOD_FD_KIND_VFIO_GROUP:
        case VFIOD_FD_KIND_VFIO_DEVICE:
        case VFIOD_FD_KIND_IOMMUFD:
                /* Sent by the daemon only; proto/ knows nothing of VFIO. */
                return true;
        }
        return false;
}

struct fd_check {
        const int *fds; /* NULL: indices only */
        size_t n_fds;
        bool wrong_kind;
        bool named[VFIOD_PROTO_MAX_FDS]; /* only the first n_fds are used */
};

static int fd_check_visit(int64_t index, enum vfiod_fd_kind kind, void *userdata)
{
        struct fd_check *c = userdata;

        if (index < 0 || (uint64_t)index >= c->n_fds)
                return -EBADR;
        /* Once per fd: a MapDma batch may name one memfd in many ranges. */
        if (c->fds && !c->named[index] && !fd_has_kind(c->fds[index], kind))
                c->wrong_kind = true; /* reported after the indices: they come first */
        c->named[index] = true;
        return 0;
}

int vfiod_envelope_check_fds(const Vfiod__Envelope *env, const int *fds, size_t n_fds,
                             const char **ret_reason)
{
        struct fd_check c;
        const char *reason = NULL;
        int r;

        /* Most messages carry no fd: clear only the flags that can be used. */
        c.fds = fds;
        c.n_fds = n_fds;
        c.wrong_kind = false;
        memset(c.named, 0, n_fds <= VFIOD_PROTO_MAX_FDS ? n_fds : VFIOD_PROTO_MAX_FDS);
        if (!env || !envelope_has_body(env)) {
                r = -ENOMSG;
                reason = "message has no body";
                goto fail;
        }
        if (n_fds > VFIOD_PROTO_MAX_FDS) {
                r = -ETOOMANYREFS;
                reason = "more fds than VFIOD_PROTO_MAX_FDS";
                goto fail;
        }
        r = vfiod_envelope_fd_indices(env, fd_check_visit, &c);
        if (r == -EBADR) {
                reason = "message names an fd index that is not in the datagram";
                goto fail;
        }
        if (r < 0) {
                reason = "message has a NULL submessage";
                goto fail;
        }
        for (size_t i = 0; i < n_fds; i++)
                if (!c.named[i]) {
                        r = -EPROTO;
                        reason = "datagram carries an fd the message does not name";
                        goto fail;
                }
        if (c.wrong_kind) {
                r = -EBADFD;
                reason = "an fd is not of the kind its field needs (memfd, eventfd)";
                goto fail;
        }
        return 0;

fail:
        if (ret_reason)
                *ret_reason = reason;
        return r;
}

const char *vfiod_envelope_body_name(const Vfiod__Envelope *env)
{
        const ProtobufCFieldDescriptor *f;

        if (!env || env->body_case == VFIOD__ENVELOPE__BODY__NOT_SET)
                return "none";
        f = protobuf_c_message_descriptor_get_field(&vfiod__envelope__descriptor,
                                                    (unsigned)env->body_case);
        return f ? f->name : "unknown";
}

static void close_all(int *fds, size_t n_fds)
{
        for (size_t i = 0; i < n_fds; i++)
                fds[i] = safe_close(fds[i]);
}

/*
 * After recvmsg() returned 0 bytes and no fds: EOF, or a zero-byte datagram?
 * On a SEQPACKET socket both read as 0. A closed peer shuts our receive side
 * down, which poll() reports as POLLRDHUP/POLLHUP.
 */
static bool peer_closed(int sock)
{
        struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};

        if (poll(&p, 1, 0) < 0)
                return true; /* cannot tell: treat as EOF, the caller drops us */
        return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

int vfiod_msg_recv(int sock, int flags, struct vfiod_msg **ret, const char **ret_reason)
{
        return vfiod_msg_recv_filtered(sock, flags, NULL, ret, ret_reason);
}

/*
 * Moves every fd that arrived with mh into fds (at most VFIOD_PROTO_MAX_FDS;
 * closes any beyond, and an SCM_PIDFD's). Returns how many; *ret_foreign
 * says whether a control message other than SCM_RIGHTS came.
 */
static size_t collect_fds(struct msghdr *mh, int *fds, bool *ret_foreign)
{
        size_t n_fds = 0;
        bool foreign = false;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                size_t k;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
#ifdef SCM_PIDFD
                        /* Only with SO_PASSPIDFD, but it holds an fd: close it too. */
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_PIDFD &&
                            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                                int pidfd;

                                memcpy(&pidfd, CMSG_DATA(c), sizeof(pidfd));
                                safe_close(pidfd);
                        }
#endif
                        foreign = true;
                        continue;
                }
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
                        if (n_fds < VFIOD_PROTO_MAX_FDS)
                                fds[n_fds++] = fd;
                        else /* cannot happen with our buffer size; never leak */
                                safe_close(fd);
                }
        }
        *ret_foreign = foreign;
        return n_fds;
}

/*
 * An fd no request takes goes to the filter, whose close cannot hold up this
 * thread (closing it may block, see struct vfiod_recv_filter); its slot is
 * left -EBADF. Returns how many went.
 */
static size_t give_unwanted_fds(const struct vfiod_recv_filter *filter, int *fds, size_t n_fds)
{
        size_t n_unwanted = 0;

        for (size_t i = 0; filter && i < n_fds; i++)
                if (!fd_is_memfd(fds[i]) && !vfiod_fd_is_eventfd(fds[i])) {
                        /* From here the fd is the filter's. */
                        filter->unwanted_take(fds[i], filter->userdata);
                        fds[i] = -EBADF;
                        n_unwanted++;
                }
        return n_unwanted;
}

/* What makes a datagram malformed before it is decoded: -errno and *ret_reason, or 0. */
static int datagram_check(int msg_flags, bool foreign_cmsg, size_t n_unwanted,
                          const char **ret_reason)
{
        if (msg_flags & MSG_TRUNC) {
                *ret_reason = "datagram larger than VFIOD_PROTO_MAX_DATAGRAM";
                return -EMSGSIZE;
        }
        if (msg_flags & MSG_CTRUNC) {
                *ret_reason = "fds cut off: more than VFIOD_PROTO_MAX_FDS, or out of fds";
                return -ETOOMANYREFS;
        }
        if (foreign_cmsg) {
                *ret_reason = "control message other than SCM_RIGHTS";
                return -EPROTOTYPE;
        }
        if (n_unwanted > 0) {
                *ret_reason = "an fd is neither a memfd nor an eventfd (no request takes it)";
                return -EBADFD;
        }
        return 0;
}

/*
 * Decodes buf[0..len) into a new message holding a copy of fds[0..n_fds).
 * On failure returns -errno with *ret_reason, and the fds are still the
 * caller's; on success they are owned by *ret.
 */
static int msg_decode(const uint8_t *buf, size_t len, const int *fds, size_t n_fds,
                      struct vfiod_msg **ret, const char **ret_reason)
{
        struct vfiod_msg_arena *arena;
        struct vfiod_msg *msg;
        Vfiod__Envelope *env;
        size_t fds_size;
        int r;

        /* One allocation: the message, its fds, its arena's first chunk. */
        fds_size = (n_fds * sizeof(int) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
        msg = malloc(sizeof(*msg) + fds_size + sizeof(*arena) + ARENA_INLINE);
        if (!msg) {
                *ret_reason = "out of memory";
                return -ENOMEM;
        }
        arena = (struct vfiod_msg_arena *)((char *)(msg + 1) + fds_size);
        *arena = (struct vfiod_msg_arena){
            .allocator = {.alloc = arena_alloc, .free = arena_free, .allocator_data = arena},
            .first = {.size = ARENA_INLINE},
        };
        env = vfiod_envelope_decode(&arena->allocator, buf, len);
        if (!env) {
                r = -EBADMSG;
                *ret_reason = "datagram does not decode as an Envelope";
                goto fail;
        }
        /*
         * Indices in range, every fd named, and each of the kind its field
         * needs (a transport rule, as on send: a memfd where an eventfd
         * belongs is as malformed as an index that is not there).
         */
        r = vfiod_envelope_check_fds(env, fds, n_fds, ret_reason);
        if (r < 0)
                goto fail;

        *msg = (struct vfiod_msg){
            .env = env,
            .fds = n_fds > 0 ? (int *)(msg + 1) : NULL,
            .n_fds = n_fds,
            .arena = arena,
        };
        if (n_fds > 0)
                memcpy(msg->fds, fds, n_fds * sizeof(int));
        *ret = msg;
        return 0;

fail:
        /* env, if any, lives in the arena. */
        arena_free_chunks(arena);
        free(msg);
        return r;
}

int vfiod_msg_recv_filtered(int sock, int flags, const struct vfiod_recv_filter *filter,
                            struct vfiod_msg **ret, const char **ret_reason)
{
        /* On the stack, not per connection: the daemon holds many idle ones. */
        uint8_t buf[VFIOD_PROTO_MAX_DATAGRAM];
        union {
                struct cmsghdr align;
                char buf[FD_CONTROL_SIZE];
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        int fds[VFIOD_PROTO_MAX_FDS];
        size_t n_fds, n_unwanted;
        bool foreign_cmsg;
        const char *reason;
        ssize_t n;
        int r;

        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
        if (n < 0) {
                r = -errno;
                if (ret_reason)
                        *ret_reason = "recvmsg() failed";
                return r;
        }

        /* First collect every fd that arrived: from here on each path closes them. */
        n_fds = collect_fds(&mh, fds, &foreign_cmsg);
        /* Before anything else: the fds no request takes go to the filter. */
        n_unwanted = give_unwanted_fds(filter, fds, n_fds);
        r = datagram_check(mh.msg_flags, foreign_cmsg, n_unwanted, &reason);
        if (r < 0)
                goto reject;
        if (n == 0 && n_fds == 0 && peer_closed(sock)) {
                *ret = NULL;
                return 0;
        }
        /* On success the fds are owned by the message. */
        r = msg_decode(buf, (size_t)n, fds, n_fds, ret, &reason);
        if (r < 0)
                goto reject;
        return 1;

reject:
        close_all(fds, n_fds);
        if (ret_reason)
                *ret_reason = reason;
        return r;
}

int vfiod_datagram_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds,
                        int flags)
{
        union {
                struct cmsghdr align;
                char buf[FD_CONTROL_SIZE];
        } control;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (n_fds > VFIOD_PROTO_MAX_FDS)
                return -EMSGSIZE;
        if (n_fds > 0) {
                struct cmsghdr *c;

                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                /* Borrowed: the kernel duplicates them, the caller keeps its own. */
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }

        n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
        if (n < 0)
                return -errno;
        /* SEQPACKET sends a datagram whole or not at all. */
        if ((size_t)n != len)
                return -EIO;
        return 0;
}

int vfiod_msg_send(int sock, const Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        uint8_t buf[VFIOD_PROTO_MAX_DATAGRAM];
        long len;
        int r;

        if (!env || (n_fds > 0 && !fds))
                return -EINVAL;
        if (n_fds > VFIOD_PROTO_MAX_FDS)
                return -EMSGSIZE;
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] < 0)
                        return -EBADF;
        r = vfiod_envelope_check_fds(env, fds, n_fds, NULL);
        if (r == -EBADFD)
                return r;
        if (r < 0)
                return -EINVAL;

        len = vfiod_envelope_encode(env, buf, sizeof(buf));
        if (len < 0)
                return (int)len;
        return vfiod_datagram_send(sock, buf, (size_t)len, fds, n_fds, 0);
}
