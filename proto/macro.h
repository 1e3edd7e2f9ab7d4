/* SPDX-License-Identifier: MIT */
/*
 * Small resource helpers in the style of systemd (header-only, libc only).
 *
 * Concepts: a variable declared with _cleanup_(f) has f(&variable) called
 * when it goes out of scope, on every return path. Ownership leaves such a
 * variable visibly, with TAKE_FD() / TAKE_PTR(), which return the value and
 * reset the variable so the cleanup does nothing:
 *
 *         _cleanup_close_ int fd = -EBADF;
 *         fd = open(path, O_RDONLY | O_CLOEXEC);
 *         if (fd < 0)
 *                 return -errno;
 *         ...
 *         return TAKE_FD(fd);      (ownership moves to the caller here)
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

/* Number of elements of an array; does not compile for a pointer. */
#define ELEMENTSOF(x)                                                                           \
        (__builtin_choose_expr(!__builtin_types_compatible_p(__typeof__(x), __typeof__(&*(x))), \
                               sizeof(x) / sizeof((x)[0]), (void)0))

/*
 * calloc(n, size) through malloc(): glibc's calloc() never takes a block from
 * its per-thread cache of freed blocks, malloc() does, so a short-lived array
 * on a request's path costs a fraction. NULL on overflow or out of memory.
 */
static inline void *malloc0_array(size_t n, size_t size)
{
        size_t bytes;
        void *p;

        if (__builtin_mul_overflow(n, size, &bytes))
                return NULL;
        p = malloc(bytes ? bytes : 1);
        if (p)
                memset(p, 0, bytes);
        return p;
}

/*
 * Closes fd if it is one (>= 0), keeping errno as it was, and returns
 * -EBADF so that `fd = safe_close(fd);` leaves the variable empty.
 */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved_errno = errno;

                /* Linux closes the fd even when close() fails: never retry. */
                (void)close(fd);
                errno = saved_errno;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        (void)safe_close(*fd);
}

static inline void freep(void *p)
{
        free(*(void **)p);
}

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_  _cleanup_(freep)

/* Defines `static inline void funcp(type *p)` calling func(*p) when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

/* Returns fd and leaves -EBADF in the variable: ownership moves out. */
#define TAKE_FD(fd)                          \
        ({                                   \
                int *_take_fdp_ = &(fd);     \
                int _take_fd_ = *_take_fdp_; \
                *_take_fdp_ = -EBADF;        \
                _take_fd_;                   \
        })

/*
 * Closes the fd in a, then moves the fd in b into it, leaving -EBADF in b:
 * replaces an owned fd in one step (ownership moves from b to a).
 */
#define close_and_replace(a, b)              \
        ({                                   \
                int *_cr_fdp_ = &(a);        \
                (void)safe_close(*_cr_fdp_); \
                *_cr_fdp_ = TAKE_FD(b);      \
                0;                           \
        })

/* Returns ptr and leaves NULL in the variable: ownership moves out. */
#define TAKE_PTR(ptr)                                      \
        ({                                                 \
                __typeof__(ptr) *_take_ptrp_ = &(ptr);     \
                __typeof__(ptr) _take_ptr_ = *_take_ptrp_; \
                *_take_ptrp_ = NULL;                       \
                _take_ptr_;                                \
        })

/*
 * One table for an enum and its names (systemd's DEFINE_STRING_TABLE_LOOKUP).
 * Given `static const char *const name##_table[]` indexed by the enum's
 * values (a value without a name is a NULL entry), defines
 *
 *         const char *name##_to_string(type i);     NULL outside the table
 *         type name##_from_string(const char *s);   -EINVAL for no name
 *
 * with the given scope (`static` for a table private to one file; nothing for
 * one that a header declares). For _from_string() to say -EINVAL, type must
 * hold negative values (int, or an enum with a negative member).
 */
#define DEFINE_STRING_TABLE_LOOKUP_WITH_SCOPE(name, type, scope)                  \
        scope const char *name##_to_string(type i)                                \
        {                                                                         \
                if ((size_t)i >= ELEMENTSOF(name##_table))                        \
                        return NULL;                                              \
                return name##_table[i];                                           \
        }                                                                         \
        scope type name##_from_string(const char *s)                              \
        {                                                                         \
                if (!s)                                                           \
                        return (type)-EINVAL;                                     \
                for (size_t _i = 0; _i < ELEMENTSOF(name##_table); _i++)          \
                        if (name##_table[_i] && strcmp(name##_table[_i], s) == 0) \
                                return (type)_i;                                  \
                return (type)-EINVAL;                                             \
        }

#define DEFINE_STRING_TABLE_LOOKUP(name, type) DEFINE_STRING_TABLE_LOOKUP_WITH_SCOPE(name, type, )
#define DEFINE_PRIVATE_STRING_TABLE_LOOKUP(name, type) \
        DEFINE_STRING_TABLE_LOOKUP_WITH_SCOPE(name, type, static __attribute__((unused)))
