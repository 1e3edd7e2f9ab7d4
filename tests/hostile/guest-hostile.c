/* SPDX-License-Identifier: MIT */
/*
 * The hostile-input cases (hostile.c) again in the VM, against the real vfiod
 * that broker-setup.sh started (socket /run/vfiod/vfiod.sock, pid in
 * /run/vfiod.pid) on the real kernel's VFIO: alice (uid 1001) is the
 * unprivileged client, bob (1002) the other one, and the device is the first
 * edu alice may lease in BROKERED mode. Every test starts from the idle
 * daemon's fd count and RSS and must end there, with nothing held and the
 * device free; the SIGKILL cases lease, map and release it again afterwards.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "tests/hostile/hostile.h"
#include "tests/testutil.h"

static void find_env(void)
{
        Vfiod__ListDevices l = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &l);
        struct vfiod_msg *m;
        FILE *f;
        int pid = 0, fd;

        memset(&HE, 0, sizeof(HE));
        snprintf(HE.sock, sizeof(HE.sock), "/run/vfiod/vfiod.sock");
        f = fopen("/run/vfiod.pid", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
        fclose(f);
        HE.pid = pid;
        HE.uid = HE.gid = 1001;             /* alice */
        HE.other_uid = HE.other_gid = 1002; /* bob */
        fd = hostile_connect(HE.uid, HE.gid);
        hostile_hello(fd);
        m = hostile_call(fd, &env, NULL, 0);
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        for (size_t i = 0; i < m->env->list_devices_reply->n_devices && !HE.device[0]; i++) {
                const Vfiod__DeviceInfo *d = m->env->list_devices_reply->devices[i];

                for (size_t k = 0; k < d->n_allowed_modes; k++)
                        if (d->allowed_modes[k] == VFIOD__MODE__MODE_BROKERED &&
                            d->state == VFIOD__LEASE_STATE__LEASE_STATE_FREE)
                                snprintf(HE.device, sizeof(HE.device), "%s", d->device);
        }
        vfiod_msg_free(m);
        close(fd);
        ck_assert_msg(HE.device[0], "alice may lease no free device BROKERED");
}

static void setup(void)
{
        find_env();
        hostile_baseline();
}

static void teardown(void)
{
        hostile_check_recovered();
}

int main(void)
{
        Suite *s = suite_create("guest-hostile");
        TCase *tc = tcase_create("protocol");
        TCase *kill = tcase_create("sigkill");

        tcase_add_checked_fixture(tc, setup, teardown);
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 120);
        hostile_add_cases(tc);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(kill, setup, teardown);
        testutil_tcase_fd_checked(kill);
        tcase_set_timeout(kill, 120);
        hostile_add_kill_cases(kill);
        suite_add_tcase(s, kill);
        return testutil_run_suite(s);
}
