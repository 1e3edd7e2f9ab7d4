/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the configuration parser (vfiod_policy_load: inih, the
 * [Daemon] limits, the [Device] rules, user and group names) and the admin
 * lookup on what it accepted. The input is the file's text.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/policy.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        vfiod_log_set_max_level(getenv("VFIOD_FUZZ_LOG") ? LOG_DEBUG : -1);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        gid_t groups[] = {0, 27, 1000};
        struct vfiod_peer peers[] = {
            {.uid = 0, .gid = 0},
            {.uid = 1000, .gid = 1000, .groups = groups, .n_groups = 3},
            {.uid = 65534, .gid = 65534},
        };
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        char path[64];
        int fd, r;

        /* The parser reads a path: a memfd's /proc link keeps the disk out of it. */
        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        if (fd < 0)
                abort();
        if (size > 0 && write(fd, data, size) != (ssize_t)size)
                abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        r = vfiod_policy_load(path, false, &p, &errors);
        close(fd);
        if (r == 0) {
                if (!p)
                        abort();
                for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
                        (void)vfiod_policy_is_admin(p, &peers[i]);
                /* Every limit stays within the range its key allows. */
                if (p->limits.max_connections < 1 || p->limits.max_fds_per_message < 1 ||
                    p->limits.max_fds_per_message > 253 ||
                    p->limits.max_queued_bytes_per_client < 65536)
                        abort();
                vfiod_policy_free(p);
        } else if (errors.n == 0) {
                /* A refused file always says why. */
                fprintf(stderr, "fuzz-config: refused (%d) without a reason\n", r);
                abort();
        }
        vfiod_errors_clear(&errors);
        return 0;
}
