/* SPDX-License-Identifier: MIT */
/*
 * A fuzz target without libFuzzer: a check suite that runs every file of the
 * target's seed corpus (FUZZ_CORPUS, a folder) through
 * LLVMFuzzerTestOneInput() once, one test per file. Part of `make check`, so
 * the targets always build and every seed stays a regression test. Given
 * files as arguments it runs just those (to replay a fuzzer's finding).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "tests/testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static char **files;
static size_t n_files;

static int by_name(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static void list_corpus(const char *dir)
{
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, NULL, by_name);

        if (n < 0) {
                fprintf(stderr, "corpus '%s': %s\n", dir, strerror(errno));
                exit(EXIT_FAILURE);
        }
        files = calloc((size_t)n + 1, sizeof(*files));
        for (int i = 0; i < n; i++) {
                if (ents[i]->d_name[0] != '.' &&
                    asprintf(&files[n_files], "%s/%s", dir, ents[i]->d_name) > 0)
                        n_files++;
                free(ents[i]);
        }
        free(ents);
}

/* Runs one file through the target; -errno when it cannot be read. No check calls. */
static int run_file(const char *path)
{
        struct stat st;
        uint8_t *buf;
        int fd = open(path, O_RDONLY | O_CLOEXEC), r;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        buf = malloc(st.st_size ? (size_t)st.st_size : 1);
        if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
                free(buf);
                close(fd);
                return -EIO;
        }
        close(fd);
        /* A crash, a sanitizer report or an abort() in the target ends the process. */
        r = LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
        free(buf);
        return r;
}

START_TEST(test_seed)
{
        int r = run_file(files[_i]);

        ck_assert_msg(r == 0, "%s: %d", files[_i], r);
}
END_TEST

int main(int argc, char **argv)
{
        Suite *s = suite_create(FUZZ_TARGET);
        TCase *tc = tcase_create("corpus");

        /* With files as arguments (like a libFuzzer binary): run just those, no check. */
        if (argc > 1) {
                LLVMFuzzerInitialize(&argc, &argv);
                for (int i = 1; i < argc; i++) {
                        int r = run_file(argv[i]);

                        printf("%s: %s\n", argv[i], r == 0 ? "ok" : strerror(-r));
                        if (r != 0)
                                return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }
        list_corpus(FUZZ_CORPUS);
        if (n_files == 0) {
                fprintf(stderr, "corpus '%s' is empty\n", FUZZ_CORPUS);
                return EXIT_FAILURE;
        }
        /* Before the forks: what the target sets up once counts as the baseline. */
        LLVMFuzzerInitialize(NULL, NULL);
        testutil_tcase_fd_checked(tc);
        tcase_add_loop_test(tc, test_seed, 0, (int)n_files);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
