/* SPDX-License-Identifier: MIT */
/*
 * Fake sysfs trees for the suites: devices laid out below <root>/sys as the
 * kernel has them, for the real sysfs code (kernel/sysfs.c) to read.
 *
 * Concepts: a PCI device is the folder sys/devices/pci0000:00/<BDF> (vendor
 * 0x1234, device 0x11e8, class 0x00ff00) with its link in
 * sys/bus/pci/devices, its driver link (and the driver's bind file) when it
 * has one, its iommu_group link and the group's devices/<BDF> link. An mdev
 * sits below 0000:00:1f.0 with its link in sys/bus/mdev/devices. Folders are
 * made as needed and a link already there is replaced (a device re-added
 * with another driver). Nothing here asserts or prints: every function
 * returns 0 or -errno, for check suites and plain programs alike.
 */
#pragma once

/* Writes text to root/rel, making its folders. */
int fakesys_write(const char *root, const char *rel, const char *text);
/* Makes root/rel a symlink to target (replacing one there), making its folders. */
int fakesys_link(const char *root, const char *target, const char *rel);

/* A PCI device bdf in IOMMU group group, bound to driver (NULL: none). */
int fakesys_add_pci(const char *root, const char *bdf, int group, const char *driver);
/* The device's cdev: vfio-dev/vfio<cdev>/dev in its folder (bdf: a PCI address). */
int fakesys_add_cdev(const char *root, const char *bdf, int cdev);
/* An mdev uuid in IOMMU group group, bound to driver (NULL: none). */
int fakesys_add_mdev(const char *root, const char *uuid, int group, const char *driver);
/* Binds PCI device bdf to driver, or unbinds it (driver NULL), as the kernel shows it. */
int fakesys_set_driver(const char *root, const char *bdf, const char *driver);
/* Takes PCI device bdf of IOMMU group group out of the tree, as a hot removal does. */
int fakesys_remove_pci(const char *root, const char *bdf, int group);
