/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the configuration parser (vfiod_policy_load: inih, the
 * [Daemon] limits, the [Device] rules, user and group names), and on what it
 * accepted: the admin lookup, the grants on a few devices, and the checker's
 * warnings. The input is the file's text.
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

/* Two functions of one IOMMU group, a lone device, a bridge. */
static struct kvfio_pci_dev devs[] = {
    {.bdf = "0000:00:01.0",
     .vendor = 0x8086,
     .device = 0x1521,
     .class = 0x020000,
     .driver = "vfio-pci",
     .iommu_group = 1},
    {.bdf = "0000:00:01.1",
     .vendor = 0x8086,
     .device = 0x1521,
     .class = 0x020000,
     .driver = "igb",
     .iommu_group = 1},
    {.bdf = "0000:00:03.0",
     .vendor = 0x10de,
     .device = 0x1eb8,
     .class = 0x030200,
     .driver = "vfio-pci",
     .iommu_group = 3},
    {.bdf = "0000:00:1c.0",
     .vendor = 0x8086,
     .device = 0x1234,
     .class = 0x060400,
     .driver = "pcieport",
     .iommu_group = 1},
};

/* What a valid policy grants: a governing rule allows the mode; windows are page-aligned. */
static void check_grants(const struct vfiod_policy *p, const struct vfiod_peer *peer)
{
        for (size_t d = 0; d < sizeof(devs) / sizeof(devs[0]); d++) {
                unsigned modes = vfiod_policy_modes(p, peer, &devs[d]);
                char why[200];

                for (unsigned bit = VFIOD_MODE_BIT_DIRECT; bit <= VFIOD_MODE_BIT_BROKERED;
                     bit <<= 1) {
                        const struct vfiod_rule *r =
                            vfiod_policy_grant(p, peer, &devs[d], bit, why, sizeof(why));

                        if (!!r != !!(modes & bit) || (r && !(r->modes & bit)))
                                abort();
                        for (size_t w = 0; r && w < r->grant.n_windows; w++)
                                if (r->grant.windows[w].first % 4096 ||
                                    (r->grant.windows[w].last + 1) % 4096)
                                        abort();
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct kvfio_pci_list list = {.n = sizeof(devs) / sizeof(devs[0]), .devs = devs};
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
                for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
                        (void)vfiod_policy_is_admin(p, &peers[i]);
                        check_grants(p, &peers[i]);
                }
                vfiod_policy_warnings(p, &list, &errors);
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
