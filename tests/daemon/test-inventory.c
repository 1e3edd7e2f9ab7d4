/* SPDX-License-Identifier: MIT */
/*
 * The device inventory: vfiod's list of PCI devices and mdevs, read once at
 * start and kept current by the kernel's uevents, which the suite injects
 * (h_uevent()) after changing the fake tree as the kernel would. ListDevices
 * and Acquire read the inventory, not sysfs; a leased device that goes away
 * (or leaves vfio-pci) ends its lease.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/monitor.h"
#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/fakesys.h"
#include "tests/testutil.h"

#define DEV1   "0000:00:01.0"
#define DEV2   "0000:00:02.0"
#define DEV3   "0000:00:03.0"
#define EVENTS VFIOD__CAPABILITY__CAPABILITY_EVENTS
#define DIRECT VFIOD__MODE__MODE_DIRECT
#define GONE   VFIOD__RELEASE_REASON__RELEASE_REASON_DEVICE_GONE

/* ListDevices (one call, no paging); the reply. */
static struct vfiod_msg *list(int fd)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        struct vfiod_msg *m = h_call(fd, &env, NULL, 0);

        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
        return m;
}

/* The devices ListDevices shows, "name=driver" joined by spaces. */
static void list_text(int fd, char *buf, size_t size)
{
        struct vfiod_msg *m = list(fd);
        const Vfiod__ListDevicesReply *r = m->env->list_devices_reply;
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < r->n_devices; i++)
                len += snprintf(buf + len, size - len, "%s%s=%s", i ? " " : "",
                                r->devices[i]->device, r->devices[i]->driver);
        vfiod_msg_free(m);
}

static int start_two(void)
{
        int fd;

        h_start(h_default_conf);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        fd = h_connect(1000, 1000);
        h_hello(fd, EVENTS);
        return fd;
}

START_TEST(list_follows_uevents)
{
        char text[256];
        int fd = start_two();

        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV2 "=vfio-pci");
        /* Removed. */
        ck_assert_int_eq(fakesys_remove_pci(H.root, DEV2, 2), 0);
        h_uevent("remove", DEV2);
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci");
        /* Unbound, then bound to another driver. */
        ck_assert_int_eq(fakesys_set_driver(H.root, DEV1, NULL), 0);
        h_uevent("unbind", DEV1);
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=");
        ck_assert_int_eq(fakesys_set_driver(H.root, DEV1, "vfio-pci"), 0);
        h_uevent("bind", DEV1);
        /* Added (h_add_device() sends "add" once the daemon runs). */
        h_add_device(DEV3, 3, "vfio-pci");
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV3 "=vfio-pci");
        /* An event for something else, or for a device that is not there, changes nothing. */
        h_uevent("change", DEV2);
        h_uevent("add", "0000:00:1e.0");
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV3 "=vfio-pci");
        close(fd);
        h_stop();
}
END_TEST

/* ListDevices and Acquire answer from the inventory: sysfs is not read per request. */
START_TEST(requests_read_no_sysfs)
{
        char text[256], sys[4200], away[4200];
        int fd = start_two(), fds[3];
        size_t n;

        snprintf(sys, sizeof(sys), "%s/sys", H.root);
        snprintf(away, sizeof(away), "%s/sys.away", H.root);
        ck_assert_int_eq(rename(sys, away), 0);
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV2 "=vfio-pci");
        h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(rename(away, sys), 0);
        close(fd);
        h_stop();
}
END_TEST

/* The lease's holder is told (LeaseRevoked, reason DEVICE_GONE) and the lease is gone. */
static void expect_gone(int fd, uint64_t lease, const char *device, const char *detail)
{
        struct vfiod_msg *m = h_recv(fd);

        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LEASE_REVOKED);
        ck_assert_uint_eq(m->env->id, 0);
        ck_assert_uint_eq(m->env->lease_revoked->lease_id, lease);
        ck_assert_str_eq(m->env->lease_revoked->device, device);
        ck_assert_int_eq(m->env->lease_revoked->reason, GONE);
        ck_assert_msg(strstr(m->env->lease_revoked->detail, detail), "detail '%s'",
                      m->env->lease_revoked->detail);
        vfiod_msg_free(m);
        ck_assert_int_eq(h_release(fd, lease), ENOENT);
}

START_TEST(removed_while_leased)
{
        int fd = start_two(), fds[3];
        uint64_t lease;
        size_t n;

        lease = h_acquire_ok(fd, DEV1, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(fakesys_remove_pci(H.root, DEV1, 1), 0);
        h_uevent("remove", DEV1);
        expect_gone(fd, lease, DEV1, "removed");
        ck_assert(h_quiet(fd));
        close(fd);
        h_stop();
}
END_TEST

START_TEST(unbound_while_leased)
{
        int fd = start_two(), fds[3];
        uint64_t lease;
        size_t n;

        lease = h_acquire_ok(fd, DEV2, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        /* A change that keeps it on vfio-pci ends nothing. */
        h_uevent("change", DEV2);
        ck_assert(h_quiet(fd));
        ck_assert_int_eq(fakesys_set_driver(H.root, DEV2, NULL), 0);
        h_uevent("unbind", DEV2);
        expect_gone(fd, lease, DEV2, "vfio-pci");
        ck_assert_int_eq(h_state(fd, DEV2), VFIOD__LEASE_STATE__LEASE_STATE_UNAVAILABLE);
        close(fd);
        h_stop();
}
END_TEST

START_TEST(added_is_leasable)
{
        int fd = start_two(), fds[3], err = 0;
        size_t n;

        /* Not there yet: the daemon does not look in sysfs for it. */
        ck_assert_int_eq(fakesys_add_pci(H.root, DEV3, 3, "vfio-pci"), 0);
        ck_assert_uint_eq(h_acquire(fd, DEV3, 0, DIRECT, fds, &n, NULL, &err), 0);
        ck_assert_int_eq(err, ENOENT);
        h_add_device(DEV3, 3, "vfio-pci");
        ck_assert_uint_ne(h_acquire_ok(fd, DEV3, 0, DIRECT, fds, &n, NULL), 0);
        h_close_all(fds, n);
        close(fd);
        h_stop();
}
END_TEST

/* A kernel uevent datagram, as the kernel formats it; returns its length. */
static size_t kernel_uevent(char *buf, size_t size, const char *action, const char *subsystem,
                            const char *devpath)
{
        int n = snprintf(buf, size, "%s@%s%cACTION=%s%cDEVPATH=%s%cSUBSYSTEM=%s%cSEQNUM=7%c",
                         action, devpath, 0, action, 0, devpath, 0, subsystem, 0, 0);

        ck_assert_int_gt(n, 0);
        ck_assert_int_lt(n, (int)size);
        return (size_t)n;
}

START_TEST(uevent_parse)
{
        char buf[512];
        struct vfiod_uevent ev;
        size_t n;

        n = kernel_uevent(buf, sizeof(buf), "unbind", "pci", "/devices/pci0000:00/0000:00:04.0");
        ck_assert_int_eq(vfiod_uevent_parse(buf, n, &ev), 0);
        ck_assert_str_eq(ev.action, "unbind");
        ck_assert_str_eq(ev.subsystem, "pci");
        ck_assert_str_eq(ev.name, "0000:00:04.0");
        /* udevd's re-broadcast, a header alone, a missing key: not uevents vfiod reads. */
        memcpy(buf, "libudev\0\xfe\xed\xca\xfe", 12);
        ck_assert_int_eq(vfiod_uevent_parse(buf, 12, &ev), -EBADMSG);
        memcpy(buf, "add@/devices/x", 15);
        ck_assert_int_eq(vfiod_uevent_parse(buf, 15, &ev), -EBADMSG);
        n = snprintf(buf, sizeof(buf), "add@/x%cACTION=add%cDEVPATH=/x%c", 0, 0, 0);
        ck_assert_int_eq(vfiod_uevent_parse(buf, n + 1, &ev), -EBADMSG);
}
END_TEST

/* The monitor's datagrams drive the inventory; only the kernel's count. */
START_TEST(monitor_datagrams)
{
        struct vfiod_monitor *mon = NULL;
        char buf[512], text[256];
        int fd = start_two(), r;
        size_t n;

        r = vfiod_monitor_new(H.loop, H.server->devices, &mon);
        if (r < 0) /* no AF_NETLINK here: the datagram path needs no socket */
                ck_assert_int_eq(r, -EAFNOSUPPORT);
        ck_assert_int_eq(fakesys_set_driver(H.root, DEV1, NULL), 0);
        n = kernel_uevent(buf, sizeof(buf), "unbind", "pci", "/devices/pci0000:00/" DEV1);
        if (mon) {
                /* Another process's datagram on the kernel's group is not the kernel. */
                ck_assert_int_eq(vfiod_monitor_datagram(mon, buf, n, 4242), 0);
                list_text(fd, text, sizeof(text));
                ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV2 "=vfio-pci");
                n = kernel_uevent(buf, sizeof(buf), "unbind", "pci", "/devices/pci0000:00/" DEV1);
                ck_assert_int_eq(vfiod_monitor_datagram(mon, buf, n, 0), 1);
                list_text(fd, text, sizeof(text));
                ck_assert_str_eq(text, DEV1 "= " DEV2 "=vfio-pci");
                /* Other subsystems are not looked at. */
                n = kernel_uevent(buf, sizeof(buf), "add", "usb", "/devices/usb1/" DEV2);
                ck_assert_int_eq(vfiod_monitor_datagram(mon, buf, n, 0), 0);
        }
        vfiod_monitor_free(mon);
        close(fd);
        h_stop();
}
END_TEST

/* A rescan (uevents lost) finds what changed and acts on it like the uevents would. */
START_TEST(rescan_after_loss)
{
        char text[256];
        int fd = start_two(), fds[3];
        uint64_t lease;
        size_t n;

        lease = h_acquire_ok(fd, DEV2, 0, DIRECT, fds, &n, NULL);
        h_close_all(fds, n);
        ck_assert_int_eq(fakesys_remove_pci(H.root, DEV2, 2), 0);
        ck_assert_int_eq(fakesys_add_pci(H.root, DEV3, 3, "vfio-pci"), 0);
        ck_assert_int_eq(vfiod_registry_scan(H.server->devices), 0);
        h_spin();
        expect_gone(fd, lease, DEV2, "removed");
        list_text(fd, text, sizeof(text));
        ck_assert_str_eq(text, DEV1 "=vfio-pci " DEV3 "=vfio-pci");
        close(fd);
        h_stop();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("inventory");
        TCase *tc = tcase_create("uevents");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, list_follows_uevents);
        tcase_add_test(tc, requests_read_no_sysfs);
        tcase_add_test(tc, removed_while_leased);
        tcase_add_test(tc, unbound_while_leased);
        tcase_add_test(tc, added_is_leasable);
        tcase_add_test(tc, uevent_parse);
        tcase_add_test(tc, monitor_datagrams);
        tcase_add_test(tc, rescan_after_loss);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
