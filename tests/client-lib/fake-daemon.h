/* SPDX-License-Identifier: MIT */
/*
 * A scripted fake vfiod for the client-lib suites.
 *
 * Concepts: a script is a function that plays the daemon's side of one
 * connection, in a forked child, with the proto/ transport: it receives the
 * requests it expects (fake_recv() fails the script on anything else) and
 * sends canned replies, errors, events and fds. A script that sees something
 * unexpected prints why on stderr and exits 1; fake_finish() (in the test)
 * asserts that the child exited 0, so a wrong request fails the test.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/envelope.h"
#include "proto/transport.h"

typedef void (*fake_script_fn)(int sock, void *userdata);

struct fake {
        pid_t pid;
};

/*
 * Runs script(sock, userdata) in a child on one end of a new
 * SOCK_SEQPACKET socketpair and returns the other end (the caller's, CLOEXEC).
 */
int fake_start(struct fake *f, fake_script_fn script, void *userdata);

/*
 * Binds and listens on `path`, then runs script in a child on the first
 * connection accepted there. Returns when the socket is listening.
 */
void fake_start_listen(struct fake *f, const char *path, fake_script_fn script, void *userdata);

/* Waits for the script's child and asserts that it exited 0. */
void fake_finish(struct fake *f);

/* In a script: report a failure and exit the child with status 1. */
#define fake_check(cond, ...)                                              \
        do {                                                               \
                if (!(cond))                                               \
                        fake_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
        } while (0)
_Noreturn void fake_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Receives one message and checks that its body is `expect`. Free with vfiod_msg_free(). */
struct vfiod_msg *fake_recv(int sock, Vfiod__Envelope__BodyCase expect);

/* Waits until the client closes its end (EOF); fails on any message. */
void fake_expect_eof(int sock);

/* Sends env (id and body set by the caller) with fds; fails the script on error. */
void fake_send(int sock, Vfiod__Envelope *env, const int *fds, size_t n_fds);

/* Answers request with env (given the request's id) and fds, then frees request. */
void fake_answer(int sock, struct vfiod_msg *request, Vfiod__Envelope *env, const int *fds,
                 size_t n_fds);
/* fake_answer() with ENVELOPE(field, body) and no fds. */
#define FAKE_ANSWER(sock, request, field, body) \
        fake_answer(sock, request, &ENVELOPE(field, body), NULL, 0)

void fake_reply_ok(int sock, uint64_t id);
void fake_reply_error(int sock, uint64_t id, int errnum, const char *reason);

/*
 * Plays the Hello exchange: expects Hello with major 1 and the EVENTS
 * capability, answers HelloReply with `major` and `capabilities`, the limits
 * max_domains 4, max_pinned_bytes 1 GiB, max_datagram 4096, max_fds 8, and
 * server_version "fake 1.0".
 */
void fake_hello(int sock, uint32_t major, uint64_t capabilities);
/* The same, answering protocol major.minor (fake_hello() says minor 3). */
void fake_hello_version(int sock, uint32_t major, uint32_t minor, uint64_t capabilities);

/* Sends the events (id 0). */
void fake_send_release_requested(int sock, uint64_t lease_id, const char *device, uint32_t grace_ms,
                                 const char *detail);
void fake_send_device_error(int sock, uint64_t lease_id, const char *device);
void fake_send_lease_revoked(int sock, uint64_t lease_id, const char *device, const char *detail);

/* st_ino of fd (for fd identity checks across the socket). */
uint64_t fake_inode(int fd);
