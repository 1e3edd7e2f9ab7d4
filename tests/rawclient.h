/* SPDX-License-Identifier: MIT */
/*
 * The suites' raw-protocol client: requests built by hand and sent through
 * proto/transport.h (never libvfiod), and their replies checked, in one
 * place for every suite that talks to vfiod at the wire level.
 *
 * Concepts: how a request travels is the suite's: the daemon harness runs
 * its in-process loop until the reply comes (h_call()), the hostile suite
 * waits on a socket to a daemon process (hostile_call()), test-systemd
 * blocks (rawclient_call_blocking()). The request functions take that
 * rawclient_call_fn and the connection; the call sets a request id of 0
 * and returns the reply to it. Failures are check assertions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/transport.h"

/* Sends env with fds and returns the reply to it (owned by the caller). */
typedef struct vfiod_msg *(*rawclient_call_fn)(int fd, Vfiod__Envelope *env, const int *fds,
                                               size_t n_fds);

/* ---- sending and receiving ------------------------------------------------------ */

/* Sends env (the transport's checks), asserting it went out; an id of 0 becomes ++*next_id. */
uint64_t rawclient_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds,
                        uint64_t *next_id);
/* Packs env and sends it as one datagram with fds, bypassing the transport's checks. */
void rawclient_send_raw(int fd, const Vfiod__Envelope *env, const int *fds, size_t n_fds);
/* Sends bytes with fds as one datagram, no checks; returns sendmsg()'s result or -errno. */
ssize_t rawclient_send_bytes(int fd, const void *buf, size_t len, const int *fds, size_t n_fds);
/* Blocking send and receive (an id of 0 set from a counter); asserts the reply's id. */
struct vfiod_msg *rawclient_call_blocking(int fd, Vfiod__Envelope *env, const int *fds,
                                          size_t n_fds);

/* ---- replies (each frees msg) ------------------------------------------------------ */

/* Asserts msg is an Error and returns its errnum. */
int rawclient_error(struct vfiod_msg *msg);
/* Asserts msg is an Ok. */
void rawclient_ok(struct vfiod_msg *msg);
/* The Error's errnum, or 0 when msg is not an Error. */
int rawclient_errnum(struct vfiod_msg *msg);
/*
 * 0 when msg is ok_body; else msg must be an Error with a positive errnum and
 * a reason: returns the errnum, the reason copied to ret_reason (256 bytes,
 * may be NULL).
 */
int rawclient_outcome(struct vfiod_msg *msg, Vfiod__Envelope__BodyCase ok_body, char *ret_reason);

/* ---- requests -------------------------------------------------------------------- */

/* Hello of this protocol version with caps; asserts a HelloReply. */
void rawclient_hello(rawclient_call_fn call, int fd, uint64_t caps);
/* The same announcing the client's limits (0: the protocol's). */
void rawclient_hello_limits(rawclient_call_fn call, int fd, uint64_t caps, uint32_t max_datagram,
                            uint32_t max_fds);

/* What Acquire handed over. */
struct rawclient_acquired {
        int fds[3]; /* the reply's fds, now the caller's (n_fds of them) */
        size_t n_fds;
        uint64_t domain;
        int errnum; /* on failure: the Error's errnum and reason */
        char reason[256];
        int iface;     /* AcquireReply.interface */
        int device_fd; /* the device's fd of fds[], -1 when none */
        int iommufd;   /* the iommufd of fds[] (IOMMUFD DIRECT), -1 when none */
        char cdev[32]; /* AcquireReply.cdev */
};
/*
 * Acquire of device (mode, domain 0: a new one): returns the lease id and
 * fills *ret, or 0 with ret->errnum and ret->reason set.
 */
uint64_t rawclient_acquire(rawclient_call_fn call, int fd, const char *device, uint64_t domain,
                           int mode, struct rawclient_acquired *ret);
/* The same through interface iface (a Vfiod__Interface). */
uint64_t rawclient_acquire_iface(rawclient_call_fn call, int fd, const char *device,
                                 uint64_t domain, int mode, int iface,
                                 struct rawclient_acquired *ret);
/* Release: 0 (Ok) or the errnum. */
int rawclient_release(rawclient_call_fn call, int fd, uint64_t lease);
/* Revoke from an admin connection, why as its reason: 0 (Ok) or the errnum. */
int rawclient_revoke(rawclient_call_fn call, int admin, uint64_t lease, const char *why);
/* ReloadPolicy from an admin connection: asserts no errors and want_revoked leases revoked. */
void rawclient_reload(rawclient_call_fn call, int admin, uint32_t want_revoked);
/* Most vectors of one SetIrqs here. */
#define RAWCLIENT_MAX_VECTORS 32

/*
 * A SetIrqs TRIGGER of vectors start .. start+count-1 of index, ready to send
 * as m->env: vector i names fd i (fd 0 past n_efds; count 0: disable the
 * index, data NONE).
 */
struct rawclient_set_irqs {
        Vfiod__Envelope env;
        Vfiod__SetIrqs set_irqs;
        int32_t eventfds[RAWCLIENT_MAX_VECTORS];
};
void rawclient_set_irqs_init(struct rawclient_set_irqs *m, uint64_t lease, uint32_t index,
                             uint32_t start, uint32_t count, size_t n_efds);
/*
 * That SetIrqs with efds: 0 (Ok) or the errnum, its reason copied to
 * ret_reason (256 bytes, may be NULL).
 */
int rawclient_set_irqs(rawclient_call_fn call, int fd, uint64_t lease, uint32_t index,
                       uint32_t start, uint32_t count, const int *efds, size_t n_efds,
                       char *ret_reason);

/* A MapDma of one readable, writable range of fd 0, ready to send as m->env. */
struct rawclient_map_dma {
        Vfiod__Envelope env;
        Vfiod__MapDma map_dma;
        Vfiod__DmaRange range;
        Vfiod__DmaRange *ranges[1];
};
void rawclient_map_dma_init(struct rawclient_map_dma *m, uint64_t domain, uint64_t offset,
                            uint64_t iova, uint64_t size);
/* That MapDma with the fd mfd: 0 (MapDmaReply) or the errnum. */
int rawclient_map_dma(rawclient_call_fn call, int fd, uint64_t domain, uint64_t offset,
                      uint64_t iova, uint64_t size, int mfd);
/* UnmapDma of one range: 0 (UnmapDmaReply) or the errnum. */
int rawclient_unmap_dma(rawclient_call_fn call, int fd, uint64_t domain, uint64_t iova,
                        uint64_t size);
