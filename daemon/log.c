/* SPDX-License-Identifier: MIT */
#include "daemon/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static bool use_journal;
static int max_level = LOG_INFO;

void vfiod_log_init(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        use_journal = false;
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return;
        if (fstat(STDERR_FILENO, &st) < 0)
                return;
        use_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void vfiod_log_set_max_level(int level)
{
        max_level = level;
}

int vfiod_log_get_max_level(void)
{
        return max_level;
}

static const char *prio_name(int prio)
{
        static const char *const names[] = {"emerg",   "alert",  "crit", "error",
                                            "warning", "notice", "info", "debug"};

        return prio >= 0 && prio <= LOG_DEBUG ? names[prio] : "info";
}

static void log_journal(int prio, const struct vfiod_log_about *a, const char *msg)
{
        char f[10][128];
        struct iovec iov[10];
        size_t n = 0;

#define ADD(...)                                                                    \
        do {                                                                        \
                snprintf(f[n], sizeof(f[n]), __VA_ARGS__);                          \
                iov[n] = (struct iovec){.iov_base = f[n], .iov_len = strlen(f[n])}; \
                n++;                                                                \
        } while (0)

        ADD("PRIORITY=%d", prio);
        ADD("SYSLOG_IDENTIFIER=vfiod");
        if (a->device)
                ADD("DEVICE=%s", a->device);
        if (a->group >= 0)
                ADD("IOMMU_GROUP=%d", a->group);
        if (a->lease)
                ADD("LEASE=%" PRIu64, a->lease);
        if (a->peer) {
                ADD("PEER_UID=%u", (unsigned)a->peer->uid);
                ADD("PEER_GID=%u", (unsigned)a->peer->gid);
                ADD("PEER_PID=%d", (int)a->peer->pid);
                if (a->peer->unit)
                        ADD("PEER_UNIT=%s", a->peer->unit);
        }
#undef ADD
        /* MESSAGE may be long: send it from its own buffer. */
        char *m = NULL;
        if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                return;
        iov[n++] = (struct iovec){.iov_base = m, .iov_len = strlen(m)};
        (void)sd_journal_sendv(iov, (int)n);
        free(m);
}

static void log_stderr(int prio, const struct vfiod_log_about *a, const char *msg)
{
        char extra[512] = "";
        size_t o = 0;

#define ADD(...)                                                                          \
        do {                                                                              \
                if (o < sizeof(extra))                                                    \
                        o += (size_t)snprintf(extra + o, sizeof(extra) - o, __VA_ARGS__); \
        } while (0)
        if (a->peer) {
                ADD(" peer_uid=%u peer_gid=%u peer_pid=%d", (unsigned)a->peer->uid,
                    (unsigned)a->peer->gid, (int)a->peer->pid);
                if (a->peer->unit)
                        ADD(" peer_unit=%s", a->peer->unit);
        }
        if (a->device)
                ADD(" device=%s", a->device);
        if (a->group >= 0)
                ADD(" iommu_group=%d", a->group);
        if (a->lease)
                ADD(" lease=%" PRIu64, a->lease);
#undef ADD
        fprintf(stderr, "vfiod[%s]: %s%s%s\n", prio_name(prio), msg, extra[0] ? " --" : "", extra);
}

static void log_va(int prio, const struct vfiod_log_about *about, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_va(int prio, const struct vfiod_log_about *about, const char *fmt, va_list ap)
{
        char msg[1024];
        int saved_errno = errno;

        if (prio > max_level)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        static const struct vfiod_log_about none = {.group = -1};

        if (!about)
                about = &none;
        if (use_journal)
                log_journal(prio, about, msg);
        else
                log_stderr(prio, about, msg);
        errno = saved_errno;
}

void vfiod_log_about(int prio, const struct vfiod_log_about *about, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_va(prio, about, fmt, ap);
        va_end(ap);
}

int vfiod_log_errno(int r, const char *fmt, ...)
{
        char msg[900];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        vfiod_log_about(LOG_ERR, &LOG_ABOUT_NONE, "%s: %s", msg, strerror(r < 0 ? -r : r));
        return r < 0 ? r : -r;
}

int vfiod_error_set(struct vfiod_error *err, int errnum, const char *fmt, ...)
{
        va_list ap;

        if (errnum < 0)
                errnum = -errnum;
        if (err) {
                err->errnum = errnum;
                va_start(ap, fmt);
                vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
                va_end(ap);
        }
        return -errnum;
}
