/* SPDX-License-Identifier: MIT */
/*
 * daemon-helper USER_FD ADMIN_FD: the vfiod server of daemon/ on the fake
 * ioctl layer and a fake sysfs tree (tests/daemon/harness.h), serving two
 * inherited connections: USER_FD as uid 1000, ADMIN_FD as uid 0 (an admin).
 * For tests/client-lib/test-daemon.c. Exits when both clients are gone: 0 if
 * no fake VFIO fd is left open anywhere, 3 if one is, 2 on bad arguments, 4
 * when the harness failed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/daemon/fake-kernel.h"
#include "tests/daemon/harness.h"
#include "tests/testutil.h"

#define DEVICE "0000:00:04.0"

static const char conf[] = "[Daemon]\n"
                           "AdminUsers=0\n"
                           "ReleaseGraceMs=60000\n"
                           "\n"
                           "[Device test]\n"
                           "Match=" DEVICE " 0000:00:05.0\n"
                           "Users=1000\n"
                           "MaxPinnedBytes=64M\n"
                           "IovaWindows=0x100000-0x4fffff\n"
                           "IrqTypes=msi msix\n";

static void tick(EV_P_ ev_timer *w, int revents)
{
}

/* The child: a vfiod server with two clients, until both are gone. */
static _Noreturn void serve(int user, int admin)
{
        struct vfiod_peer user_peer = {.uid = 1000, .gid = 1000, .pid = getppid()};
        struct vfiod_peer admin_peer = {.uid = 0, .gid = 0, .pid = getppid()};
        ev_timer timer;
        size_t live;

        h_start(conf);
        h_add_device(DEVICE, 5, "vfio-pci");
        h_add_device("0000:00:05.0", 6, NULL);       /* not bound to vfio-pci */
        h_add_device("0000:00:06.0", 7, "vfio-pci"); /* not in the policy */
        if (vfiod_server_add_client_take(H.server, user, &user_peer) < 0 ||
            vfiod_server_add_client_take(H.server, admin, &admin_peer) < 0)
                _exit(2);
        /* Wakes the loop up regularly so that it notices when the clients are gone. */
        ev_timer_init(&timer, tick, 0.01, 0.01);
        ev_timer_start(H.loop, &timer);
        do
                ev_run(H.loop, EVRUN_ONCE);
        while (H.server->n_clients > 0);
        ev_timer_stop(H.loop, &timer);

        vfiod_server_free(H.server);
        H.server = NULL;
        live = fake_kernel_live();
        if (live > 0)
                fprintf(stderr, "daemon child: %zu fake VFIO fds still open\n", live);
        fake_kernel_reset();
        ev_loop_destroy(H.loop);
        testutil_rmtree(H.root);
        free(H.root);
        _exit(live == 0 ? 0 : 3);
}

static int user_fd = -1, admin_fd = -1;

/* The harness asserts with check: run it as a (non-forking) check test. */
START_TEST(test_serve)
{
        serve(user_fd, admin_fd);
}
END_TEST

int main(int argc, char **argv)
{
        Suite *s;
        TCase *tc;
        SRunner *sr;

        if (argc != 3)
                return 2;
        user_fd = atoi(argv[1]);
        admin_fd = atoi(argv[2]);
        if (user_fd < 3 || admin_fd < 3)
                return 2;
        s = suite_create("daemon-helper");
        tc = tcase_create("serve");
        tcase_set_timeout(tc, 0);
        tcase_add_test(tc, test_serve);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK);
        /* serve() exits; coming back here means the harness failed an assertion. */
        srunner_run_all(sr, CK_SILENT);
        {
                TestResult **failures = srunner_failures(sr);

                for (int i = 0; i < srunner_ntests_failed(sr); i++)
                        fprintf(stderr, "daemon-helper: %s:%d: %s\n", tr_lfile(failures[i]),
                                tr_lno(failures[i]), tr_msg(failures[i]));
                free(failures);
        }
        srunner_free(sr);
        return 4;
}
