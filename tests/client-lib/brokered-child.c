/* SPDX-License-Identifier: MIT */
/*
 * brokered-child: what a program run by `vfioctl acquire --brokered` does
 * with the connection it inherits. Adopts it (vfiod_connect_env()), asks for
 * the daemon's stats on it and prints "clients N". For test-vfioctl.c.
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
