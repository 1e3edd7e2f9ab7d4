#!/bin/sh
# The --setup of make check-vm-launchers (guest-launchers, busybox sh): the
# e1000 NIC to vfio-pci, /dev/kvm to the group kvm (alice and bob in it, as
# Debian's udev rule and an administrator would have it), and vfiod with:
#   edu 0: alice and bob;  edu 1: bob only;  the e1000: alice and bob;
# every rule MaxPinnedBytes=256M, which vfiod gives the holder of a direct or
# group lease as its RLIMIT_MEMLOCK (QEMU and DPDK pin their RAM themselves);
# broker-setup.sh starts vfiod on that policy.
# shellcheck shell=sh
set -eu

conf=/etc/vfiod/vfiod.conf

# DPDK refuses a plugin folder under a world-writable one; the initramfs's
# root is one.
chmod 0755 /

edus=
nic=
for dev in /sys/bus/pci/devices/*; do
        case "$(cat "$dev/vendor"):$(cat "$dev/device")" in
        0x1234:0x11e8) edus="$edus ${dev##*/}" ;;
        0x8086:0x100e) nic=${dev##*/} ;;
        esac
done
# shellcheck disable=SC2086 # one word per address
set -- $edus
if [ $# -lt 2 ] || [ -z "$nic" ]; then
        echo "launchers-setup: $# edu device(s) and e1000 '$nic': need 2 and 1" >&2
        exit 1
fi
echo vfio-pci >"/sys/bus/pci/devices/$nic/driver_override"
echo "$nic" >/sys/bus/pci/drivers_probe
[ "$(basename "$(readlink "/sys/bus/pci/devices/$nic/driver")")" = vfio-pci ] || {
        echo "launchers-setup: binding $nic to vfio-pci failed" >&2
        exit 1
}

echo 'kvm:x:108:alice,bob' >>/etc/group
chgrp 108 /dev/kvm
chmod 0660 /dev/kvm

mkdir -p /etc/vfiod
cat >"$conf" <<CONF
[Daemon]
ReleaseGraceMs=2000

[Device edu-0]
Match=$1
Users=alice bob
MaxPinnedBytes=256M

[Device edu-1]
Match=$2
Users=bob
MaxPinnedBytes=256M

[Device nic]
Match=$nic
Users=alice bob
MaxPinnedBytes=256M
CONF
sh /vfiod/files/broker-setup.sh start
echo "launchers-setup: edu:$edus, e1000: $nic"
