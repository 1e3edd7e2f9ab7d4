/* SPDX-License-Identifier: MIT */
/*
 * The kernel's device uevents, which keep the inventory (daemon/devices.h)
 * current: PCI devices and mdevs added, removed, bound, unbound, changed.
 *
 * Concepts: a NETLINK_KOBJECT_UEVENT socket on the daemon's libev loop,
 * bound to the kernel's multicast group ("kernel" source), not to udevd's
 * re-broadcast ("udev" source, what sd_device_monitor_new() listens to in
 * libsystemd 252, which offers no public way to pick the kernel's): vfiod
 * reads sysfs itself and needs none of udev's properties, runs where udevd
 * does not (the test guests, minimal hosts) and, in its unit, in a private
 * network namespace, which the kernel's uevents reach and udevd's do not.
 * Each datagram names a device; the registry reads that one device again.
 * When the socket overflowed (ENOBUFS: uevents were lost) the registry scans
 * everything again. Only datagrams the kernel sent (sender port 0) count.
 */
#pragma once

#include <stddef.h>

#include <ev.h>

#include "daemon/devices.h"

struct vfiod_monitor;

/* One uevent as the kernel sends it; the pointers point into the datagram. */
struct vfiod_uevent {
        const char *action;    /* ACTION=: "add", "remove", "bind", "unbind", "change", ... */
        const char *subsystem; /* SUBSYSTEM=: "pci", "mdev", ... */
        const char *devpath;   /* DEVPATH=, "/devices/pci0000:00/0000:00:04.0" */
        const char *name;      /* the last component of devpath: the device's name */
};

/*
 * Parses a kernel uevent datagram: "ACTION@DEVPATH\0KEY=value\0...". udevd's
 * re-broadcasts (they start "libudev") and datagrams without ACTION,
 * SUBSYSTEM or DEVPATH are -EBADMSG. buf must stay alive while ret is used
 * (the last byte of buf is made '\0').
 */
int vfiod_uevent_parse(char *buf, size_t len, struct vfiod_uevent *ret);

/*
 * Opens the uevent socket, watches it on loop and passes each uevent to
 * devices (vfiod_registry_uevent()). Returns 0, or the errno of the socket
 * (EAFNOSUPPORT where AF_NETLINK is not allowed).
 */
int vfiod_monitor_new(struct ev_loop *loop, struct vfiod_registry *devices,
                      struct vfiod_monitor **ret);
/* Stops watching and closes the socket. NULL is fine. */
void vfiod_monitor_free(struct vfiod_monitor *m);

/*
 * One datagram as the socket received it (sender_port 0 = the kernel): what
 * the watcher does with every datagram, for the suites to drive. Returns what
 * vfiod_registry_uevent() returned, 0 for a datagram that is ignored.
 */
int vfiod_monitor_datagram(struct vfiod_monitor *m, char *buf, size_t len, unsigned sender_port);
