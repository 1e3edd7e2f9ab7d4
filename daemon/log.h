/* SPDX-License-Identifier: MIT */
/*
 * vfiod's logging: one line per event, saying who (peer uid/gid/pid/unit),
 * what (device, IOMMU group, lease) and why.
 *
 * Concepts: when stderr is connected to the journal (JOURNAL_STREAM names
 * stderr's device:inode) lines go out with sd_journal_sendv() and structured
 * fields DEVICE=, IOMMU_GROUP=, LEASE=, PEER_UID=, PEER_GID=, PEER_PID=,
 * PEER_UNIT=; otherwise as plain text on stderr, the same fields appended as
 * key=value. Text a client gave is quoted by the caller ('…').
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>

/* Who is on the other end of a connection: from the kernel, never from the client. */
struct vfiod_peer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t *groups; /* SO_PEERGROUPS (supplementary groups) */
        size_t n_groups;
        char *unit;  /* of the process that connected (vfiod_peer_read); NULL when none */
        char *slice; /* its slice; NULL when none */
};

/* What a log line is about; any field may be left empty (NULL, -1, 0). */
struct vfiod_log_about {
        const struct vfiod_peer *peer;
        const char *device;
        int group;
        uint64_t lease;
};

#define LOG_ABOUT_NONE ((struct vfiod_log_about){.group = -1})

/* Decides between journal and stderr (reads JOURNAL_STREAM); call once at start. */
void vfiod_log_init(void);
/* Lines above `level` (a LOG_* priority) are dropped. Default LOG_INFO. */
void vfiod_log_set_max_level(int level);
int vfiod_log_get_max_level(void);

void vfiod_log_about(int prio, const struct vfiod_log_about *about, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_full(prio, ...) vfiod_log_about((prio), &LOG_ABOUT_NONE, __VA_ARGS__)
#define log_debug(...)      log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)       log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)     log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...)    log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)      log_full(LOG_ERR, __VA_ARGS__)

/* Logs at LOG_ERR with ": <strerror(-r)>" appended; returns r (negative errno). */
int vfiod_log_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error_errno(r, ...) vfiod_log_errno((r), __VA_ARGS__)

/* An error for a client: a positive errno and a reason that quotes what it gave. */
struct vfiod_error {
        int errnum;
        char reason[256];
};

/* Fills err (may be NULL) and returns -errnum. */
int vfiod_error_set(struct vfiod_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
