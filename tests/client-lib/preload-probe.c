/* SPDX-License-Identifier: MIT */
/*
 * preload-probe: the program test-preload runs with and without
 * libvfiod-preload.so. Each argument is one open, FN:FLAGS:PATH[:DIR]:
 *   FN    open, open64, openat, openat64, __open_2, __open64_2, __openat_2,
 *         __openat64_2 (each called by its own name, not through a macro);
 *   FLAGS words joined by '+': rdonly, rdwr, cloexec, creat (mode 0600),
 *         excl, directory, nonblock;
 *   DIR   openat*: the folder opened for dirfd (default: AT_FDCWD).
 * For each it prints one line, "FN PATH: fd DEV:INO cloexec=C errno=E" (E is
 * errno after the call, set to EDOM before it, so it shows a success left
 * errno alone) or "FN PATH: error E", and closes what it opened. Built
 * without _FORTIFY_SOURCE and without the sanitizers (it is run with
 * LD_PRELOAD).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* glibc declares these only with _FORTIFY_SOURCE. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static int flags_of(char *words)
{
        static const struct {
                const char *name;
                int flag;
        } table[] = {
            {"rdonly", O_RDONLY},     {"rdwr", O_RDWR}, {"cloexec", O_CLOEXEC},
            {"creat", O_CREAT},       {"excl", O_EXCL}, {"directory", O_DIRECTORY},
            {"nonblock", O_NONBLOCK},
        };
        int flags = 0;

        for (char *w = strtok(words, "+"); w; w = strtok(NULL, "+")) {
                size_t i = 0;

                while (i < sizeof(table) / sizeof(table[0]) && strcmp(w, table[i].name) != 0)
                        i++;
                if (i == sizeof(table) / sizeof(table[0])) {
                        fprintf(stderr, "preload-probe: unknown flag '%s'\n", w);
                        exit(2);
                }
                flags |= table[i].flag;
        }
        return flags;
}

static int call(const char *fn, int dirfd, const char *path, int flags)
{
        if (strcmp(fn, "open") == 0)
                return open(path, flags, 0600);
        if (strcmp(fn, "open64") == 0)
                return open64(path, flags, 0600);
        if (strcmp(fn, "openat") == 0)
                return openat(dirfd, path, flags, 0600);
        if (strcmp(fn, "openat64") == 0)
                return openat64(dirfd, path, flags, 0600);
        if (strcmp(fn, "__open_2") == 0)
                return __open_2(path, flags);
        if (strcmp(fn, "__open64_2") == 0)
                return __open64_2(path, flags);
        if (strcmp(fn, "__openat_2") == 0)
                return __openat_2(dirfd, path, flags);
        if (strcmp(fn, "__openat64_2") == 0)
                return __openat64_2(dirfd, path, flags);
        fprintf(stderr, "preload-probe: unknown function '%s'\n", fn);
        exit(2);
}

int main(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                char *fn = strtok(argv[i], ":"), *words = strtok(NULL, ":"),
                     *path = strtok(NULL, ":"), *dir = strtok(NULL, ":");
                int dirfd = AT_FDCWD, flags, fd, e;
                struct stat st;

                if (!fn || !words || !path) {
                        fprintf(stderr, "preload-probe: '%s' is not FN:FLAGS:PATH[:DIR]\n",
                                argv[i]);
                        return 2;
                }
                flags = flags_of(words);
                if (dir) {
                        dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (dirfd < 0) {
                                fprintf(stderr, "preload-probe: open '%s': %m\n", dir);
                                return 2;
                        }
                }
                errno = EDOM;
                fd = call(fn, dirfd, path, flags);
                e = errno;
                if (fd < 0) {
                        printf("%s %s: error %s\n", fn, path, strerrorname_np(e));
                } else {
                        if (fstat(fd, &st) < 0)
                                return 3;
                        printf("%s %s: fd %lu:%lu cloexec=%d errno=%s\n", fn, path,
                               (unsigned long)st.st_dev, (unsigned long)st.st_ino,
                               (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, strerrorname_np(e));
                        close(fd);
                }
                if (dirfd >= 0)
                        close(dirfd);
        }
        return fflush(stdout) == 0 ? 0 : 3;
}
