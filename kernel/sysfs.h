/* SPDX-License-Identifier: MIT */
/*
 * PCI discovery, IOMMU groups and driver binding through sysfs.
 *
 * Concepts: every call takes a root prefix; "/" is the real system, a test
 * passes a folder holding a fake tree with the same layout:
 *
 *   ROOT/sys/bus/pci/devices/<BDF>/{vendor,device,class,subsystem_vendor,
 *                                   subsystem_device,driver_override}
 *   ROOT/sys/bus/pci/devices/<BDF>/modalias     (optional, read first)
 *   ROOT/sys/bus/pci/devices/<BDF>/driver       -> .../bus/pci/drivers/<name>
 *   ROOT/sys/bus/pci/devices/<BDF>/iommu_group  -> .../kernel/iommu_groups/<N>
 *   ROOT/sys/bus/pci/devices/<BDF>/vfio-dev/vfio<N>   (the device's cdev, optional)
 *   ROOT/sys/kernel/iommu_groups/<N>/devices/<BDF>
 *   ROOT/sys/bus/pci/drivers/<name>/{bind,unbind}
 *   ROOT/sys/bus/pci/drivers_probe
 *   ROOT/sys/bus/mdev/devices/<UUID>            -> .../<parent>/<UUID>
 *   ROOT/sys/bus/mdev/devices/<UUID>/{driver,iommu_group,mdev_type} (links)
 *   ROOT/sys/bus/mdev/devices/<UUID>/vfio-dev/vfio<N>
 *   ROOT/sys/class/misc/{vfio,iommu}  (/dev/vfio/vfio and /dev/iommu exist)
 *
 * A mediated device (mdev) is named by its UUID, always handled in lower
 * case ("6d646d61-0000-4000-8000-000000000001"). Its vendor, device and class
 * live in its emulated config space, not in sysfs: they read 0. An mdev bound
 * to its vendor driver is itself the VFIO device.
 *
 * A PCI address ("BDF") is always handled in its normalised form
 * "dddd:bb:ss.f" (lower-case hex, domain at least 4 digits), for example
 * "0000:00:04.0". Functions that take an address accept any form
 * kvfio_pci_addr_parse() accepts and normalise it first.
 *
 * This file does no ioctl and opens no /dev/vfio node; it only reads and
 * writes sysfs. It never prints. No fd outlives a call.
 *
 * All functions return 0 (or the documented non-negative value) on success
 * and a negative errno on failure; ret_* outputs are untouched on failure.
 * Beyond the errno values listed per function, any call may return -ENOMEM
 * and the errno of a failed open/read/write of a sysfs file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a normalised PCI address plus NUL ("fffffff:ff:1f.7" fits). */
#define KVFIO_BDF_MAX 16
/* Room for a device name: a normalised PCI address or an mdev UUID, plus NUL. */
#define KVFIO_NAME_MAX 40
/* Room for an mdev UUID plus NUL. */
#define KVFIO_UUID_MAX 37
/* Room for a driver name plus NUL; longer names are rejected (-ENAMETOOLONG). */
#define KVFIO_DRIVER_MAX 64

/* The driver name vfio-pci registers in sysfs. */
#define KVFIO_VFIO_PCI_DRIVER "vfio-pci"

/* A parsed PCI address. */
struct kvfio_pci_addr {
        uint32_t domain; /* segment; may exceed 0xffff (VMD domains) */
        uint8_t bus;
        uint8_t slot; /* 0..0x1f */
        uint8_t func; /* 0..7 */
};

/* Largest PCI domain accepted (Linux uses up to 0x1ffff in practice). */
#define KVFIO_PCI_DOMAIN_MAX 0xfffffffu

/*
 * Parses a PCI address: "dddd:bb:ss.f" (domain 1 to 8 hex digits) or
 * "bb:ss.f" (domain 0). Hex digits of either case; no surrounding white space.
 * On success fills *ret_addr and returns 0.
 * -EINVAL: text is NULL, malformed, domain > KVFIO_PCI_DOMAIN_MAX,
 * slot > 0x1f, or function > 7.
 */
int kvfio_pci_addr_parse(const char *text, struct kvfio_pci_addr *ret_addr);

/* Writes the normalised form of addr into buf (always fits). Returns buf. */
char *kvfio_pci_addr_format(const struct kvfio_pci_addr *addr, char buf[static KVFIO_BDF_MAX]);

/*
 * Parses text and writes its normalised form to ret_bdf. Returns 0, or
 * -EINVAL as kvfio_pci_addr_parse() (ret_bdf untouched).
 */
int kvfio_pci_addr_normalize(const char *text, char ret_bdf[static KVFIO_BDF_MAX]);

/* Compares two parsed addresses (domain, bus, slot, func); <0, 0, >0 like strcmp. */
int kvfio_pci_addr_compare(const struct kvfio_pci_addr *a, const struct kvfio_pci_addr *b);

/* One PCI device as sysfs shows it. */
struct kvfio_pci_dev {
        char bdf[KVFIO_NAME_MAX]; /* normalised address, or an mdev's UUID */
        struct kvfio_pci_addr addr;
        uint16_t vendor, device;
        uint16_t subvendor, subdevice; /* 0 when the files are missing or unreadable */
        uint32_t class;                /* 24-bit class code, e.g. 0x060400 */
        char driver[KVFIO_DRIVER_MAX]; /* "" if bound to no driver */
        int iommu_group;               /* -1 if the device has no IOMMU group */
        /*
         * N of the device's cdev /dev/vfio/devices/vfioN (its sysfs
         * vfio-dev/vfioN): the device offers the iommufd interface
         * (iommufd.h). -1 when it has none (not bound to a VFIO driver, or
         * a kernel without CONFIG_VFIO_DEVICE_CDEV).
         */
        int vfio_cdev;
        /* Mediated devices (bdf is the UUID, addr and the ids are 0): */
        bool mdev;
        char mdev_type[KVFIO_DRIVER_MAX]; /* the mdev_type link's last component, "mdma-1" */
        char parent[KVFIO_DRIVER_MAX];    /* the parent device's name, "" when unknown */
};

/* A set of devices, sorted by address, no duplicates. */
struct kvfio_pci_list {
        size_t n;
        struct kvfio_pci_dev *devs;
        /*
         * Entries seen but left out: a name that is not a PCI address, or a
         * device whose vendor, device or class file is missing or garbage.
         * Lets the caller log that something was odd.
         */
        size_t n_skipped;
};

/*
 * Lists every device under ROOT/sys/bus/pci/devices.
 *
 * Per device: when its "modalias" file reads "pci:v<8 hex>d<8 hex>sv<8 hex>
 * sd<8 hex>bc<2 hex>sc<2 hex>i<2 hex>" (as on every real system) the ids and
 * the class come from it in one read; otherwise from the separate files:
 * vendor, device and class are required (a device without them, or with
 * garbage in them, is skipped and counted in n_skipped);
 * subsystem_vendor/subsystem_device are optional (0 when missing or garbage);
 * no "driver" link means unbound (driver ""); no "iommu_group" link, or one
 * whose last component is not a number, means iommu_group -1. Links are not
 * followed: only the last component of their text counts, so a dangling
 * link still names its driver or group. A device entry that is itself a
 * dangling link is skipped.
 *
 * On success *ret_list is a new list (possibly empty) the caller frees with
 * kvfio_pci_list_free().
 * -EINVAL: root or ret_list NULL, or root is "".
 * -ENOENT: ROOT/sys/bus/pci/devices does not exist (no PCI bus, wrong root).
 * -ENOTDIR: it exists but is not a folder.
 */
int kvfio_pci_discover(const char *root, struct kvfio_pci_list **ret_list);

/*
 * Reads one device, same rules as kvfio_pci_discover().
 * -EINVAL: bad address; -ENODEV: no such device under ROOT/sys/bus/pci/devices;
 * -EBADMSG: its vendor, device or class file is missing or garbage.
 */
int kvfio_pci_dev_read(const char *root, const char *bdf, struct kvfio_pci_dev *ret_dev);

/*
 * Parses an mdev UUID (8-4-4-4-12 hex digits of either case, no surrounding
 * white space) and writes it in lower case to ret_uuid. -EINVAL otherwise.
 */
int kvfio_mdev_uuid_normalize(const char *text, char ret_uuid[static KVFIO_UUID_MAX]);

/*
 * Normalises a device name: a PCI address (kvfio_pci_addr_normalize()) or an
 * mdev UUID (kvfio_mdev_uuid_normalize()). -EINVAL when it is neither.
 */
int kvfio_dev_name_normalize(const char *text, char ret_name[static KVFIO_NAME_MAX]);

/*
 * Lists every mediated device under ROOT/sys/bus/mdev/devices, sorted by
 * UUID: mdev true, driver and iommu_group as for PCI devices, mdev_type from
 * the mdev_type link, parent from the entry's link target (the folder that
 * holds the device's folder). An entry whose name is not a UUID is skipped
 * and counted. No mdev bus folder (module mdev not loaded) is an empty list.
 * -EINVAL: bad arguments; -ENOTDIR: the folder is not one.
 */
int kvfio_mdev_discover(const char *root, struct kvfio_pci_list **ret_list);

/* Reads one mdev. -EINVAL: not a UUID; -ENODEV: no such mdev. */
int kvfio_mdev_dev_read(const char *root, const char *uuid, struct kvfio_pci_dev *ret_dev);

/*
 * Every device vfiod can offer: the PCI devices (kvfio_pci_discover(), whose
 * errors it returns) followed by the mdevs (kvfio_mdev_discover()).
 */
int kvfio_dev_discover(const char *root, struct kvfio_pci_list **ret_list);

/* Reads a PCI device or an mdev by name (kvfio_dev_name_normalize()). */
int kvfio_dev_read(const char *root, const char *name, struct kvfio_pci_dev *ret_dev);

/*
 * Reads the N of ROOT/sys/bus/pci/devices/<name>/vfio-dev/vfioN (or of the
 * mdev <name>) now, as kvfio_pci_dev's vfio_cdev: the cdev appears when the
 * device is bound to vfio-pci and goes when it is unbound. Returns N >= 0.
 * -EINVAL: bad name; -ENODEV: no such device; -ENOENT: the device has no
 * cdev.
 */
int kvfio_dev_vfio_cdev(const char *root, const char *name);

/* The VFIO interfaces the kernel offers (kvfio_vfio_interfaces()). */
enum {
        KVFIO_IF_CONTAINER = 1 << 0, /* /dev/vfio/vfio: container and group (container.h) */
        KVFIO_IF_IOMMUFD = 1 << 1,   /* /dev/iommu: iommufd and device cdevs (iommufd.h) */
};

/*
 * Which of the two interfaces the kernel offers, from
 * ROOT/sys/class/misc/vfio and ROOT/sys/class/misc/iommu: a mask of
 * KVFIO_IF_* (0: neither; VFIO or iommufd not loaded). A device offers the
 * container interface when it has an IOMMU group and KVFIO_IF_CONTAINER is
 * set, the iommufd one when it has a vfio_cdev and KVFIO_IF_IOMMUFD is set.
 * -EINVAL: root NULL or "".
 */
int kvfio_vfio_interfaces(const char *root);

/* Frees a list from kvfio_pci_discover() or kvfio_iommu_group_members(); NULL is fine. */
void kvfio_pci_list_free(struct kvfio_pci_list *list);

/*
 * Finds a device by address (any form kvfio_pci_addr_parse() accepts) by
 * binary search over the PCI devices, or an mdev by UUID (any case). Returns a pointer into list
 * (valid until the list is freed), or NULL if list or bdf is NULL, bdf is malformed, or there is no
 * such device.
 */
const struct kvfio_pci_dev *kvfio_pci_list_find(const struct kvfio_pci_list *list, const char *bdf);

/* True for PCI-to-PCI bridges: class 0x0604xx or 0x0609xx. */
bool kvfio_pci_dev_is_bridge(const struct kvfio_pci_dev *dev);

/*
 * True when the device is driven by VFIO, so that the fd of its group opens it
 * (VFIO_GROUP_GET_DEVICE_FD): a PCI device bound to vfio-pci or to a vendor
 * variant of it (a driver named "*_vfio_pci", such as mlx5_vfio_pci or
 * hisi_acc_vfio_pci), or an mdev bound to its vendor driver. Every such
 * member also keeps its group viable (kvfio_iommu_group_viable()).
 */
bool kvfio_dev_is_vfio(const struct kvfio_pci_dev *dev);

/*
 * Lists the members of IOMMU group `group` (the entries of
 * ROOT/sys/kernel/iommu_groups/N/devices), each read like kvfio_pci_discover() does, sorted by
 * address; mdev members (a UUID) are read through the group's own entry and follow the PCI
 * ones. A member that is neither a PCI address nor a UUID or cannot be read is left out and counted
 * in n_skipped. Free with kvfio_pci_list_free(). -EINVAL: bad arguments or group < 0; -ENOENT: no
 * such group.
 */
int kvfio_iommu_group_members(const char *root, int group, struct kvfio_pci_list **ret_list);

/*
 * True when dev, a member of an IOMMU group, does not stop the group from
 * being viable: the rule of kvfio_iommu_group_viable() for one member.
 */
bool kvfio_dev_keeps_group_viable(const struct kvfio_pci_dev *dev);

/* Why a group is (not) viable; see kvfio_iommu_group_viable(). */
struct kvfio_group_viability {
        bool viable;
        /* When !viable: the member that blocks it and the driver it is bound to. */
        char culprit[KVFIO_DRIVER_MAX];
        char culprit_driver[KVFIO_DRIVER_MAX];
        size_t n_members;
};

/*
 * Decides whether IOMMU group `group` is viable for VFIO, mirroring the
 * kernel's rule: every member is bound to vfio-pci (or a vendor variant of
 * it, a driver named "*_vfio_pci" such as mlx5_vfio_pci) or pci-stub, or to
 * no driver, or is a PCI bridge (class 0x0604xx/0x0609xx, any driver), or is
 * bound to pcieport, or is an mdev (the VFIO device itself). The first member (in address order)
 * that breaks the rule is named in culprit/culprit_driver. A member that is not a PCI device, or
 * whose files cannot be read, makes the group non-viable (culprit = its name,
 * culprit_driver = its driver link or ""): nothing proves it is safe.
 *
 * Returns 0 and fills *ret in both the viable and the non-viable case.
 * -EINVAL: bad arguments; -ENOENT: no such group; -ENODEV: the group has no
 * members.
 */
int kvfio_iommu_group_viable(const char *root, int group, struct kvfio_group_viability *ret);

/*
 * Reads the driver the device is bound to into ret_driver ("" if none).
 * -EINVAL: bad address; -ENODEV: no such device.
 */
int kvfio_pci_driver_get(const char *root, const char *bdf,
                         char ret_driver[static KVFIO_DRIVER_MAX]);

/*
 * Binds a device to vfio-pci, in this order:
 *   1. "vfio-pci" to ROOT/sys/bus/pci/devices/<BDF>/driver_override;
 *   2. if bound to driver X: BDF to ROOT/sys/bus/pci/drivers/X/unbind;
 *   3. BDF to ROOT/sys/bus/pci/drivers_probe;
 *   4. checks that the driver link now names vfio-pci.
 * When the device is already bound to vfio-pci nothing is written and
 * ret_prev_driver is "vfio-pci" (so a later kvfio_pci_restore() is a no-op).
 * Otherwise ret_prev_driver receives the previous driver ("" if unbound), to
 * be passed to kvfio_pci_restore().
 *
 * When a step after 1 fails, what was done is undone (best effort: the
 * previous driver bound again as kvfio_pci_restore() does, override cleared)
 * and the error of the failed step is returned.
 * -EINVAL: bad address; -ENODEV: no such device;
 * -ENXIO: vfio-pci did not claim the device after the probe (module not
 *         loaded, or the device is not supported);
 * other: the errno of the failed sysfs write.
 */
int kvfio_pci_bind_vfio(const char *root, const char *bdf,
                        char ret_prev_driver[static KVFIO_DRIVER_MAX]);

/*
 * Undoes kvfio_pci_bind_vfio(): restores the device to prev_driver
 * ("" = leave it unbound), in this order:
 *   1. prev_driver to driver_override ("\n", which clears it, when
 *      prev_driver is ""): the override makes drivers that match only
 *      through it (uio_pci_generic...) take the device back too;
 *   2. if bound to vfio-pci: BDF to ROOT/sys/bus/pci/drivers/vfio-pci/unbind;
 *   3. if prev_driver is not "": BDF to ROOT/sys/bus/pci/drivers/<prev>/bind,
 *      or, when that driver has no bind file, BDF to drivers_probe;
 *   4. if prev_driver is not "": "\n" to driver_override (clears it);
 *   5. checks that the driver link now names prev_driver.
 * When step 2 or 3 fails the override is cleared (best effort) and the
 * error returned; the device may then be left bound to no driver.
 * prev_driver "vfio-pci" means the device was already bound before: nothing
 * is written, returns 0.
 *
 * Blocks while any process still holds a device fd of it: the kernel's
 * vfio-pci unbind (step 2) waits until the device is released, and meanwhile
 * signals the device's REQ interrupt to the holder. Call it only once every
 * device fd is closed (the group left its container), or where blocking is
 * acceptable.
 * -EINVAL: bad address or prev_driver contains '/' or is too long;
 * -ENODEV: no such device;
 * -EBUSY: the device is bound to a third driver (neither vfio-pci nor
 *         prev_driver); nothing is unbound;
 * -ENXIO: prev_driver did not claim the device;
 * other: the errno of the failed sysfs write.
 */
int kvfio_pci_restore(const char *root, const char *bdf, const char *prev_driver);
