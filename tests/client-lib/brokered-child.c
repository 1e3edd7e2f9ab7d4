/* SPDX-License-Identifier: MIT */
/*
 * brokered-child: what a program run by `vfioctl acquire --brokered` does
 * with the connection it inherits. Adopts it (vfiod_connect_env()), prints
 * the daemon's version from its Hello reply, takes its lease from the
 * environment (vfiod_lease_from_env()) and prints it with its grant, asks
 * for the daemon's stats and prints "clients N". For test-vfioctl.c.
 * Exits 0, or 10 + the step that failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-lib/vfiod.h"

int main(void)
{
        struct vfiod *c = NULL;
        struct vfiod_server_info info;
        struct vfiod_lease lease;
        struct vfiod_stats st;
        int r;

        r = vfiod_connect_env(&c);
        if (r < 0) {
                fprintf(stderr, "brokered-child: adopt the connection: %s\n", strerror(-r));
                return 10;
        }
        if (getenv(VFIOD_CONNECTION_FD_ENV)) {
                fprintf(stderr, "brokered-child: %s still set\n", VFIOD_CONNECTION_FD_ENV);
                return 11;
        }
        r = vfiod_get_server_info(c, &info);
        if (r < 0) {
                fprintf(stderr, "brokered-child: server info: %s\n", strerror(-r));
                vfiod_close(c);
                return 13;
        }
        printf("server %s\n", info.server_version);
        r = vfiod_lease_from_env(c, &lease);
        if (r < 0) {
                fprintf(stderr, "brokered-child: lease: %s: %s\n", strerror(-r),
                        vfiod_last_error(c));
                vfiod_close(c);
                return 14;
        }
        printf("lease %" PRIu64 " domain %" PRIu64 " %s, rule '%s', window 0x%" PRIx64
               ", %d MSI-X vectors\n",
               lease.lease_id, lease.domain_id, vfiod_mode_name(lease.mode), lease.grant.rule,
               lease.grant.iova_windows[0].first,
               vfiod_lease_irq_count(&lease, VFIOD_IRQ_INDEX_MSIX));
        vfiod_lease_close_fds(&lease);
        r = vfiod_stats(c, &st);
        if (r < 0) {
                fprintf(stderr, "brokered-child: stats: %s: %s\n", strerror(-r),
                        vfiod_last_error(c));
                vfiod_close(c);
                return 12;
        }
        printf("clients %" PRIu32 "\n", st.clients);
        vfiod_close(c);
        return 0;
}
