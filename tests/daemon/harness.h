/* SPDX-License-Identifier: MIT */
/*
 * Daemon-level test harness: a vfiod server on a libev loop inside the test
 * process, a fake sysfs tree, the fake ioctl layer, and clients that speak
 * the raw protocol (tests/rawclient.h, whose requests the h_* ones below
 * wrap with h_call()) over socketpairs.
 *
 * Concepts: h_start() before and h_stop() after every test (inside the
 * forked test, so the fd-leak fixture sees it all). h_stop() frees the
 * server (which releases every lease) and then asserts that no fake
 * container, group or device fd is still open anywhere.
 *
 * Every log line is formatted (at debug level) and thrown away; set
 * VFIOD_TEST_VERBOSE=1 to see them. test-server runs vfiod-fake as a process;
 * VFIOD_TEST_VALGRIND="valgrind --error-exitcode=3 ..." runs it under that.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "daemon/server.h"
#include "proto/transport.h"
#include "tests/daemon/fake-kernel.h"

struct harness {
        char *root;
        char vfio_dir[4096];
        char conf[4096];
        struct ev_loop *loop;
        struct vfiod_server *server;
        uint64_t next_id;
};

extern struct harness H;

/* Default policy of the tests: uid 1000 may have 0000:00:0[1-4].0 in both modes. */
extern const char *h_default_conf;

/* conf: the text of the configuration file (NULL: none, the empty policy). */
void h_start(const char *conf);
void h_stop(void);

/* A device in the fake sysfs tree and, when bound to vfio-pci, in the fake kernel. */
void h_add_device(const char *bdf, int group, const char *driver);
/* The device (added already) offers its cdev /dev/vfio/devices/vfio<cdev> (sysfs and kernel). */
void h_add_cdev(const char *bdf, int cdev);
/* An mdev (its own IOMMU group) in the fake sysfs tree and, with a driver, in the fake kernel. */
void h_add_mdev(const char *uuid, int group, const char *driver);

/* A client connection as (uid, gid); returns the test's end. */
int h_connect(uid_t uid, gid_t gid);

/* Runs the loop without blocking a few times. */
void h_spin(void);
/* Waits (2 s at most, asserted) until the closer's thread closed every fd handed to it. */
void h_closer_drain(void);

/* Sends env (id set if 0) with fds; asserts it went out. Returns the id. */
uint64_t h_send(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds);
/* Sends env as it is, bypassing the transport's checks (for malformed input). */
void h_send_raw(int fd, const Vfiod__Envelope *env, const int *fds, size_t n_fds);
/* Runs the loop until a datagram arrives (asserts within 2 s). */
struct vfiod_msg *h_recv(int fd);
/* True when the daemon closed the connection (after spinning the loop). */
bool h_closed(int fd);
/* Nothing waiting on fd (after spinning the loop). */
bool h_quiet(int fd);
/* Send and receive the reply (asserts the id matches). */
struct vfiod_msg *h_call(int fd, Vfiod__Envelope *env, const int *fds, size_t n_fds);

/* Asserts msg is an Error and returns its errnum; frees msg. */
int h_error(struct vfiod_msg *msg);
/* Asserts msg is an Ok; frees msg. */
void h_ok(struct vfiod_msg *msg);

void h_hello(int fd, uint64_t caps);
/*
 * Acquire; on success the reply's fds move to ret_fds (n in *ret_n), the domain to *ret_domain
 * (may be NULL) and the lease id is returned; on failure 0, with the errnum in *ret_err.
 */
uint64_t h_acquire(int fd, const char *bdf, uint64_t domain, int mode, int ret_fds[3],
                   size_t *ret_n, uint64_t *ret_domain, int *ret_err);
uint64_t h_acquire_ok(int fd, const char *bdf, uint64_t domain, int mode, int ret_fds[3],
                      size_t *ret_n, uint64_t *ret_domain);
int h_release(int fd, uint64_t lease); /* 0 or errnum */
/* Revoke from an admin connection: asserts Ok (want 0) or an Error with errnum want. */
void h_revoke(int admin, uint64_t lease, const char *why, int want);
/* ReloadPolicy from an admin connection: asserts no errors and want_revoked leases revoked. */
void h_reload(int admin, uint32_t want_revoked);
Vfiod__LeaseState h_state(int fd, const char *bdf);
void h_close_all(int *fds, size_t n);
/* A memfd of size bytes (a multiple of 4096), every page written, sealed with seals (0 = none). */
int h_memfd(size_t size, int seals);
/* The same with nothing written: the whole file is a hole. */
int h_memfd_sparse(size_t size, int seals);
/*
 * SetIrqs TRIGGER of vectors 0 .. count-1 of index to eventfd efd (count 0:
 * disable the index). 0 or the errnum; the reason copied to ret_reason
 * (256 bytes, may be NULL).
 */
int h_set_irqs(int fd, uint64_t lease, uint32_t index, uint32_t count, int efd, char *ret_reason);

/*
 * The kernel's uevent for device `name` (a PCI address or an mdev UUID),
 * action "add", "remove", "bind", "unbind" or "change", as the daemon's
 * monitor passes it on; change the fake tree first, as the kernel does.
 */
void h_uevent(const char *action, const char *name);
