/* SPDX-License-Identifier: MIT */
/*
 * libvfiod-preload.so: lets a program that opens /dev/vfio/N by path (QEMU,
 * DPDK) use the IOMMU group fds vfiod leased to the one that started it
 * (vfioctl acquire --preload), without any change to the program.
 *
 * Concepts: VFIOD_GROUP_FDS=G:FD[,G:FD...] names, for each IOMMU group G,
 * an fd FD the process inherited (a group fd of a MODE_GROUP lease). This
 * library interposes the open family only (open, open64, openat, openat64
 * and the fortify forms __open_2, __open64_2, __openat_2, __openat64_2): an
 * open of exactly "/dev/vfio/G" for a group named there returns a new
 * duplicate of FD (O_CLOEXEC honoured); every other open goes to libc
 * untouched, with its arguments and errno. A malformed variable, or a named
 * fd that is not open, turns the library off (every open goes to libc) and
 * is said once on stderr. See libvfiod-preload(7).
 *
 * The interposers may run before any constructor (another library's
 * constructor may open a file first), in several threads at once: the table
 * is read from the environment once (pthread_once), the next definitions
 * are looked up lazily with dlsym(RTLD_NEXT), and nothing here allocates.
 */
/* This file defines open() and its fortify forms itself. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GROUP_FDS_ENV "VFIOD_GROUP_FDS"
#define GROUP_PATH    "/dev/vfio/"
/* Entries VFIOD_GROUP_FDS may name; more is malformed (no allocation here). */
#define MAX_GROUPS 64
#define EXPORT     __attribute__((visibility("default")))
/* The open flags that read a mode argument (glibc's __OPEN_NEEDS_MODE). */
#define NEEDS_MODE(fl) (((fl)&O_CREAT) || ((fl)&O_TMPFILE) == O_TMPFILE)

struct group_fd {
        unsigned group;
        int fd;
};

static struct {
        pthread_once_t once;
        size_t n;
        struct group_fd groups[MAX_GROUPS];
} table = {.once = PTHREAD_ONCE_INIT};

/* Writes "libvfiod-preload: " what a b c and the consequence on stderr, with write(2) only. */
static void say(const char *what, const char *a, const char *b, const char *c)
{
        const char *parts[] = {
            "libvfiod-preload: ", what, a, b, c, ": opening /dev/vfio/N is left to libc\n"};
        char line[512];
        size_t len = 0;

        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                size_t l = strlen(parts[i]);

                if (l > sizeof(line) - len)
                        l = sizeof(line) - len;
                memcpy(line + len, parts[i], l);
                len += l;
        }
        (void)!write(STDERR_FILENO, line, len);
}

/*
 * Parses a canonical decimal number (no sign, no leading zero, at most
 * INT_MAX) at *p, up to a character that is not a digit; advances *p past
 * it. Returns false when there is none or it is not canonical.
 */
static bool parse_number(const char **p, unsigned *ret)
{
        const char *s = *p;
        unsigned long v = 0;

        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                v = v * 10 + (unsigned long)(*s - '0');
                if (v > INT_MAX)
                        return false;
        }
        *p = s;
        *ret = (unsigned)v;
        return true;
}

/* Why value is no list of G:FD, or NULL; fills parsed[] and *ret_n when it is one. */
static const char *parse_group_fds(const char *value, struct group_fd *parsed, size_t *ret_n)
{
        const char *p = value;
        size_t n = 0;

        for (;;) {
                unsigned group, fd;

                if (n == MAX_GROUPS)
                        return "more than 64 groups in ";
                if (!parse_number(&p, &group) || *p++ != ':' || !parse_number(&p, &fd) ||
                    (*p != ',' && *p != '\0'))
                        return "malformed (G:FD[,G:FD...], decimal) ";
                for (size_t i = 0; i < n; i++)
                        if (parsed[i].group == group)
                                return "a group named twice in ";
                if (fcntl((int)fd, F_GETFD) < 0)
                        return "a named fd that is not open in ";
                parsed[n++] = (struct group_fd){.group = group, .fd = (int)fd};
                if (*p++ == '\0')
                        break;
        }
        *ret_n = n;
        return NULL;
}

/* Fills table from the environment; on a fault says why (once) and leaves it empty. */
static void table_load(void)
{
        const char *value = getenv(GROUP_FDS_ENV), *fault;
        struct group_fd parsed[MAX_GROUPS];
        size_t n = 0;

        if (!value)
                return;
        fault = parse_group_fds(value, parsed, &n);
        if (fault) {
                say(fault, GROUP_FDS_ENV "='", value, "'");
                return;
        }
        memcpy(table.groups, parsed, n * sizeof(parsed[0]));
        table.n = n;
}

/* The table, read from the environment on the first call; errno is left as it was. */
static void table_init(void)
{
        int saved = errno;

        (void)pthread_once(&table.once, table_load);
        errno = saved;
}

/* Reads the variable at load time too: a fault in it is said even if no group is opened. */
__attribute__((constructor)) static void preload_init(void)
{
        table_init();
}

/* The fd leased for path when it is exactly "/dev/vfio/G" of a named group, else -1. */
static int leased_fd_of(const char *path)
{
        const char *p;
        unsigned group;

        if (!path || strncmp(path, GROUP_PATH, sizeof(GROUP_PATH) - 1) != 0)
                return -1;
        table_init();
        p = path + sizeof(GROUP_PATH) - 1;
        if (!parse_number(&p, &group) || *p != '\0')
                return -1;
        for (size_t i = 0; i < table.n; i++)
                if (table.groups[i].group == group)
                        return table.groups[i].fd;
        return -1;
}

/*
 * What opening the group's node with flags does instead: a new duplicate of
 * fd, close-on-exec when flags say O_CLOEXEC. The refusals the kernel would
 * give the node itself stay (O_DIRECTORY and O_TMPFILE: ENOTDIR; O_CREAT |
 * O_EXCL: EEXIST); every other flag is ignored: the duplicate shares the
 * leased fd's open file description, its access mode and status flags.
 */
static int open_leased(int fd, int flags)
{
        if (flags & O_DIRECTORY) {
                errno = ENOTDIR;
                return -1;
        }
        if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
                errno = EEXIST;
                return -1;
        }
        return fcntl(fd, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
}

/*
 * The definition of name after this library's (libc's), looked up on the
 * first call; errno is left as it was. *slot caches it (racing threads find
 * the same one). NULL when there is none.
 */
static void *next_of(void **slot, const char *name)
{
        void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

        if (!fn) {
                int saved = errno;

                fn = dlsym(RTLD_NEXT, name);
                __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
                errno = saved;
        }
        return fn;
}

/* Returns -1 with ENOSYS when libc lacks the next definition (it never does on glibc). */
static int no_next(void)
{
        errno = ENOSYS;
        return -1;
}

typedef int open_fn(const char *path, int flags, ...);
typedef int openat_fn(int dirfd, const char *path, int flags, ...);
typedef int open2_fn(const char *path, int flags);
typedef int openat2_fn(int dirfd, const char *path, int flags);

/*
 * An interposer of the open(2) shape (open, open64: PARAMS (const char
 * *path, int flags, ...)) or of the openat(2) shape (openat, openat64): the
 * mode argument is read only when flags need one, as libc does, and ARGS
 * passes it on. openat's dirfd does not matter for the group's node: only
 * the absolute path "/dev/vfio/G" is recognized (a relative name is passed
 * to libc, whatever dirfd is).
 */
#define DEFINE_OPEN(name, type, PARAMS, ARGS)          \
        EXPORT int name PARAMS;                        \
        int name PARAMS                                \
        {                                              \
                static void *next;                     \
                type *fn;                              \
                mode_t mode = 0;                       \
                int fd = leased_fd_of(path);           \
                                                       \
                if (fd >= 0)                           \
                        return open_leased(fd, flags); \
                if (NEEDS_MODE(flags)) {               \
                        va_list ap;                    \
                                                       \
                        va_start(ap, flags);           \
                        mode = va_arg(ap, mode_t);     \
                        va_end(ap);                    \
                }                                      \
                fn = (type *)next_of(&next, #name);    \
                return fn ? fn ARGS : no_next();       \
        }

/*
 * The fortify forms (_FORTIFY_SOURCE turns open(path, flags) with flags
 * unknown at compile time into __open_2(path, flags)): libc's check (abort
 * when flags need a mode, which these forms lack) stays libc's, so a group's
 * node is recognized only for flags without one.
 */
#define DEFINE_OPEN_2(name, type, PARAMS, ARGS)                       \
        EXPORT int name PARAMS;                                       \
        int name PARAMS                                               \
        {                                                             \
                static void *next;                                    \
                type *fn;                                             \
                int fd = NEEDS_MODE(flags) ? -1 : leased_fd_of(path); \
                                                                      \
                if (fd >= 0)                                          \
                        return open_leased(fd, flags);                \
                fn = (type *)next_of(&next, #name);                   \
                return fn ? fn ARGS : no_next();                      \
        }

#define OPEN_PARAMS     (const char *path, int flags, ...)
#define OPENAT_PARAMS   (int dirfd, const char *path, int flags, ...)
#define OPEN_2_PARAMS   (const char *path, int flags)
#define OPENAT_2_PARAMS (int dirfd, const char *path, int flags)

DEFINE_OPEN(open, open_fn, OPEN_PARAMS, (path, flags, mode))
DEFINE_OPEN(open64, open_fn, OPEN_PARAMS, (path, flags, mode))
DEFINE_OPEN(openat, openat_fn, OPENAT_PARAMS, (dirfd, path, flags, mode))
DEFINE_OPEN(openat64, openat_fn, OPENAT_PARAMS, (dirfd, path, flags, mode))
DEFINE_OPEN_2(__open_2, open2_fn, OPEN_2_PARAMS, (path, flags))
DEFINE_OPEN_2(__open64_2, open2_fn, OPEN_2_PARAMS, (path, flags))
DEFINE_OPEN_2(__openat_2, openat2_fn, OPENAT_2_PARAMS, (dirfd, path, flags))
DEFINE_OPEN_2(__openat64_2, openat2_fn, OPENAT_2_PARAMS, (dirfd, path, flags))
