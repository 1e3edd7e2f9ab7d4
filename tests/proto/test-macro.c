/* SPDX-License-Identifier: MIT */
/* proto/macro.h: cleanup helpers and string tables; proto/names.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/macro.h"
#include "proto/names.h"
#include "proto/vfiod.pb-c.h"
#include "tests/testutil.h"

static bool fd_is_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

static int open_null(void)
{
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

START_TEST(test_safe_close)
{
        int fd = open_null();

        errno = ENOSPC;
        fd = safe_close(fd);
        ck_assert_int_eq(fd, -EBADF);
        ck_assert_int_eq(errno, ENOSPC); /* preserved */
        /* Closing "nothing" is a no-op and still answers -EBADF. */
        ck_assert_int_eq(safe_close(-1), -EBADF);
        ck_assert_int_eq(safe_close(-EBADF), -EBADF);
        ck_assert_int_eq(errno, ENOSPC);
}
END_TEST

static int cleanup_scope(int *seen)
{
        _cleanup_close_ int fd = open_null();

        *seen = fd;
        return 7;
}

START_TEST(test_cleanup_close)
{
        int seen = -1;

        ck_assert_int_eq(cleanup_scope(&seen), 7);
        ck_assert_int_ge(seen, 0);
        ck_assert(!fd_is_open(seen));
}
END_TEST

static int take_scope(void)
{
        _cleanup_close_ int fd = open_null();

        return TAKE_FD(fd); /* ownership moves to the caller */
}

START_TEST(test_take_fd)
{
        int fd = take_scope();
        int other = open_null();
        int taken;

        ck_assert(fd_is_open(fd));
        taken = TAKE_FD(other);
        ck_assert_int_eq(other, -EBADF);
        ck_assert(fd_is_open(taken));
        safe_close(taken);
        safe_close(fd);
}
END_TEST

static char *take_ptr_scope(void)
{
        _cleanup_free_ char *s = strdup("lease");

        ck_assert_ptr_nonnull(s);
        return TAKE_PTR(s);
}

START_TEST(test_take_ptr_and_free)
{
        _cleanup_free_ char *s = take_ptr_scope();
        char *p = strdup("x");
        char *q;

        ck_assert_str_eq(s, "lease");
        q = TAKE_PTR(p);
        ck_assert_ptr_null(p);
        ck_assert_str_eq(q, "x");
        free(q);
}
END_TEST

START_TEST(test_elementsof)
{
        int a[7];
        struct {
                char c[3];
        } b[5];

        ck_assert_uint_eq(ELEMENTSOF(a), 7);
        ck_assert_uint_eq(ELEMENTSOF(b), 5);
        ck_assert_uint_eq(ELEMENTSOF(b[0].c), 3);
}
END_TEST

static int freed;
static void thing_free(int *p)
{
        freed += *p;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(int *, thing_free)

START_TEST(test_trivial_cleanup)
{
        int v = 5;

        freed = 0;
        {
                _cleanup_(thing_freep) int *p = &v;
                _cleanup_(thing_freep) int *none = NULL;

                (void)p;
                (void)none;
        }
        ck_assert_int_eq(freed, 5);
}
END_TEST

START_TEST(test_close_and_replace)
{
        int kept = open_null(), next = open_null();
        int old = kept, moved = next;

        ck_assert_int_eq(close_and_replace(kept, next), 0);
        ck_assert_int_eq(kept, moved);
        ck_assert_int_eq(next, -EBADF);
        ck_assert(!fd_is_open(old));
        ck_assert(fd_is_open(kept));
        /* Replacing "nothing" closes nothing. */
        next = kept;
        kept = -EBADF;
        ck_assert_int_eq(close_and_replace(kept, next), 0);
        ck_assert(fd_is_open(kept));
        safe_close(kept);
}
END_TEST

enum color { COLOR_RED, COLOR_GREEN, COLOR_BLUE = 3, _COLOR_INVALID = -EINVAL };
static const char *const color_table[] = {
    [COLOR_RED] = "red",
    [COLOR_GREEN] = "green",
    [COLOR_BLUE] = "blue",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(color, enum color)

START_TEST(test_string_table)
{
        ck_assert_str_eq(color_to_string(COLOR_RED), "red");
        ck_assert_str_eq(color_to_string(COLOR_BLUE), "blue");
        ck_assert_ptr_null(color_to_string((enum color)2)); /* a hole */
        ck_assert_ptr_null(color_to_string((enum color)4));
        ck_assert_ptr_null(color_to_string(_COLOR_INVALID));
        ck_assert_int_eq(color_from_string("green"), COLOR_GREEN);
        ck_assert_int_eq(color_from_string("blue"), COLOR_BLUE);
        ck_assert_int_eq(color_from_string("Blue"), -EINVAL);
        ck_assert_int_eq(color_from_string(""), -EINVAL);
        ck_assert_int_eq(color_from_string(NULL), -EINVAL);
}
END_TEST

START_TEST(test_mode_names)
{
        ck_assert_str_eq(vfiod_proto_mode_to_string(VFIOD__MODE__MODE_DIRECT), "direct");
        ck_assert_str_eq(vfiod_proto_mode_to_string(VFIOD__MODE__MODE_BROKERED), "brokered");
        ck_assert_ptr_null(vfiod_proto_mode_to_string(VFIOD__MODE__MODE_UNSPECIFIED));
        ck_assert_str_eq(vfiod_proto_mode_to_string(VFIOD__MODE__MODE_GROUP), "group");
        ck_assert_int_eq(vfiod_proto_mode_from_string("group"), VFIOD__MODE__MODE_GROUP);
        ck_assert_ptr_null(vfiod_proto_mode_to_string(4));
        ck_assert_ptr_null(vfiod_proto_mode_to_string(-1));
        ck_assert_int_eq(vfiod_proto_mode_from_string("direct"), VFIOD__MODE__MODE_DIRECT);
        ck_assert_int_eq(vfiod_proto_mode_from_string("brokered"), VFIOD__MODE__MODE_BROKERED);
        ck_assert_int_eq(vfiod_proto_mode_from_string("unspecified"), -EINVAL);
        ck_assert_int_eq(vfiod_proto_mode_from_string("DIRECT"), -EINVAL);
}
END_TEST

static Suite *macro_suite(void)
{
        Suite *s = suite_create("macro");
        TCase *tc = tcase_create("helpers");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_safe_close);
        tcase_add_test(tc, test_cleanup_close);
        tcase_add_test(tc, test_take_fd);
        tcase_add_test(tc, test_take_ptr_and_free);
        tcase_add_test(tc, test_elementsof);
        tcase_add_test(tc, test_trivial_cleanup);
        tcase_add_test(tc, test_close_and_replace);
        tcase_add_test(tc, test_string_table);
        tcase_add_test(tc, test_mode_names);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(macro_suite());
}
