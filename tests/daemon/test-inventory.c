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
#define GROUP  VFIOD__MODE__MODE_GROUP
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

/*
 * _i: the mode. DIRECT: vfiod holds the device fd, so the real kernel asks for
 * it (REQ) before the device can go; GROUP: the client alone opens the
 * device, and vfiod hears of its removal only from the uevent.
 */
START_TEST(removed_while_leased)
{
        static const int modes[] = {DIRECT, GROUP};
        int fd = start_two(), fds[3];
        uint64_t lease;
        size_t n;

        lease = h_acquire_ok(fd, DEV1, 0, modes[_i], fds, &n, NULL);
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

/* ---- ListDevices of any size ------------------------------------------------------------ */

#define MANY 16384

/* The name of device i of the big tree: 64 buses of 32 slots of 8 functions. */
static void many_name(size_t i, char buf[static 16])
{
        snprintf(buf, 16, "0000:%02zx:%02zx.%zx", i / 256, i / 8 % 32, i % 8);
}

/* MANY devices on vfio-pci, each its own group, all for uid 1000, read by a rescan. */
static int start_many(void)
{
        char name[16];
        int fd;

        h_start("[Device all]\nMatchVendor=1234:*\nUsers=1000\n");
        for (size_t i = 0; i < MANY; i++) {
                many_name(i, name);
                ck_assert_int_eq(fakesys_add_pci(H.root, name, (int)i + 1, "vfio-pci"), 0);
        }
        ck_assert_int_eq(vfiod_registry_scan(H.server->devices), 0);
        ev_now_update(H.loop); /* the tree took a while: HelloTimeoutMs counts from now */
        fd = h_connect(1000, 1000);
        h_hello(fd, 0);
        return fd;
}

/* One page: ListDevices { limit, after }; the reply (asserted to be one). */
static struct vfiod_msg *page(int fd, uint32_t limit, const char *after)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        struct vfiod_msg *m;

        ld.limit = limit;
        ld.after = (char *)after;
        m = h_call(fd, &env, NULL, 0);
        ck_assert_msg(m->env->body_case == VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY,
                      "ListDevices { limit %u, after '%s' }: %s", limit, after,
                      m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR ? m->env->error->reason
                                                                       : "not a reply");
        return m;
}

/*
 * Pages through the list from `after` (limit per page) until `next` is empty
 * or stop_after pages; appends the names to seen (*n of them). Returns the
 * last `next` in next_buf ("" at the end).
 */
static void pages(int fd, uint32_t limit, const char *after, size_t stop_after, char (*seen)[16],
                  size_t *n, char next_buf[static 64])
{
        if (after != next_buf)
                snprintf(next_buf, 64, "%s", after);
        for (size_t p = 0; p < stop_after; p++) {
                struct vfiod_msg *m = page(fd, limit, next_buf);
                const Vfiod__ListDevicesReply *r = m->env->list_devices_reply;

                ck_assert_uint_gt(r->n_devices, 0);
                ck_assert_uint_le(r->n_devices, limit);
                for (size_t i = 0; i < r->n_devices; i++) {
                        ck_assert_uint_lt(*n, MANY + 8);
                        snprintf(seen[(*n)++], 16, "%s", r->devices[i]->device);
                }
                snprintf(next_buf, 64, "%s", r->next);
                if (r->next[0])
                        ck_assert_str_eq(r->next, r->devices[r->n_devices - 1]->device);
                vfiod_msg_free(m);
                if (!next_buf[0])
                        return;
        }
}

/*
 * Devices added and removed between pages: the pages follow the inventory's
 * order and `after` is a position, so a device there all along is listed
 * exactly once, one removed before its page is not listed, one added after
 * the cursor is, one added before the cursor is not (it was not there when
 * its page was read), and nothing is listed twice.
 */
static void changes_between_pages(int fd)
{
        char(*seen)[16] = calloc(MANY + 8, 16), next[64], name[16];
        const char *gone_seen = "0000:00:00.3", *gone_ahead = "0000:3f:1f.7";
        const char *new_behind = "0000:00:00.0", *new_ahead = "0000:40:00.0";
        size_t n = 0;

        ck_assert_ptr_nonnull(seen);
        /* new_behind is a new name below the first page: make room by removing it first. */
        ck_assert_int_eq(fakesys_remove_pci(H.root, new_behind, 1), 0);
        h_uevent("remove", new_behind);
        pages(fd, 50, "", 1, seen, &n, next);
        ck_assert_uint_eq(n, 50);
        ck_assert_str_eq(next, "0000:00:06.2");
        ck_assert_int_eq(fakesys_remove_pci(H.root, gone_seen, 4), 0);
        h_uevent("remove", gone_seen);
        ck_assert_int_eq(fakesys_remove_pci(H.root, gone_ahead, MANY), 0);
        h_uevent("remove", gone_ahead);
        h_add_device(new_behind, 1, "vfio-pci");
        h_add_device(new_ahead, MANY + 1, "vfio-pci");
        /* The device `next` names may go too: the next page starts after where it was. */
        ck_assert_int_eq(fakesys_remove_pci(H.root, "0000:00:06.2", 51), 0);
        h_uevent("remove", "0000:00:06.2");
        pages(fd, 100000, next, SIZE_MAX, seen, &n, next);
        /* 16384 - new_behind's first absence - gone_ahead + new_ahead = 16383. */
        ck_assert_uint_eq(n, MANY - 1);
        for (size_t i = 0; i < n; i++) {
                ck_assert_str_ne(seen[i], new_behind);
                ck_assert_str_ne(seen[i], gone_ahead);
                if (i)
                        ck_assert_int_lt(strcmp(seen[i - 1], seen[i]), 0);
        }
        ck_assert_str_eq(seen[2], gone_seen); /* listed on its page, before it went */
        ck_assert_str_eq(seen[n - 1], new_ahead);
        many_name(MANY - 2, name);
        ck_assert_str_eq(seen[n - 2], name);
        free(seen);
}

START_TEST(list_16384_in_pages)
{
        char(*seen)[16] = calloc(MANY + 8, 16), next[64], name[16];
        int fd = start_many();
        size_t n = 0, n_pages = 0;
        struct vfiod_msg *m;

        ck_assert_ptr_nonnull(seen);
        /* A 1.2 client asks for everything: that cannot fit one datagram. */
        {
                Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
                Vfiod__Envelope env = ENVELOPE(list_devices, &ld);

                ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EMSGSIZE);
        }
        /* A page of 10 is 10; pages as big as a datagram allows come back cut to fit. */
        m = page(fd, 10, "");
        ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 10);
        ck_assert_str_eq(m->env->list_devices_reply->next, "0000:00:01.1");
        vfiod_msg_free(m);
        snprintf(next, sizeof(next), "%s", "");
        do {
                size_t before = n;

                pages(fd, 100000, next, 1, seen, &n, next);
                /* Full pages are cut by size, hundreds of devices each; the last has the rest. */
                if (next[0])
                        ck_assert_uint_gt(n - before, 100);
                n_pages++;
        } while (next[0]);
        ck_assert_uint_eq(n, MANY);
        for (size_t i = 0; i < MANY; i++) {
                many_name(i, name);
                ck_assert_str_eq(seen[i], name);
        }
        ck_assert_uint_gt(n_pages, 1);
        /* One device of many, found where it sorts; one that is not there is ENOENT. */
        {
                Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
                Vfiod__Envelope env = ENVELOPE(list_devices, &ld);

                ld.device = "0000:20:10.3";
                m = h_call(fd, &env, NULL, 0);
                ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
                ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
                ck_assert_str_eq(m->env->list_devices_reply->devices[0]->device, "0000:20:10.3");
                vfiod_msg_free(m);
                env.id = 0;
                ld.device = "0000:40:00.1";
                ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), ENOENT);
                env.id = 0;
                ld.device = "0000:00:00.0";
                ld.limit = 3;
                m = h_call(fd, &env, NULL, 0);
                ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY);
                ck_assert_uint_eq(m->env->list_devices_reply->n_devices, 1);
                ck_assert_str_eq(m->env->list_devices_reply->next, "");
                vfiod_msg_free(m);
        }
        /* `after` must name a device (present or not). */
        {
                Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
                Vfiod__Envelope env = ENVELOPE(list_devices, &ld);

                ld.limit = 5;
                ld.after = "nonsense";
                ck_assert_int_eq(h_error(h_call(fd, &env, NULL, 0)), EINVAL);
        }
        free(seen);
        /* The same tree (building it is the slow part), changed between pages. */
        changes_between_pages(fd);
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
        tcase_add_loop_test(tc, removed_while_leased, 0, 2);
        tcase_add_test(tc, unbound_while_leased);
        tcase_add_test(tc, added_is_leasable);
        tcase_add_test(tc, uevent_parse);
        tcase_add_test(tc, monitor_datagrams);
        tcase_add_test(tc, rescan_after_loss);
        suite_add_tcase(s, tc);
        tc = tcase_create("paging");
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 180);
        tcase_add_test(tc, list_16384_in_pages);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
