#!/bin/sh
# Unmodified QEMU 10 (bookworm-backports, fetch-qemu.sh), run by an
# unprivileged user, given its fds by vfiod through the iommufd interface
# (vfioctl acquire --interface iommufd, the {iommufd-fd} and {device-fd}
# placeholders): it realizes vfio-pci on an edu device (the monitor's
# `info pci` shows 1234:11e8), it is refused without a lease, and the lease
# is released when it exits. vfiod runs as broker-setup.sh started it (alice
# may have the first edu). QEMU stays stopped (-S): nothing of the nested
# guest runs, realizing the device is the point.
set -u

fail() {
        echo "qemu10: FAIL: $*" >&2
        exit 1
}
say() { echo "qemu10: $*" >>"${VFIOD_SAY:-/dev/stderr}"; }

edu=
for dev in /sys/bus/pci/devices/*; do
        if [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ]; then
                edu=${dev##*/}
                break
        fi
done
[ -n "$edu" ] || fail "no edu device"
qemu-system-x86_64 --version | head -n 1 >&2
q="qemu-system-x86_64 -L /vfiod/files -M q35 -accel tcg -m 32M -nodefaults -display none -S -monitor stdio"

# Without a lease: QEMU opens /dev/iommu and the cdev itself, which alice may not.
out=$(printf 'info pci\nquit\n' |
        su -s /bin/sh alice -c "timeout 120 $q -object iommufd,id=io0 -device vfio-pci,iommufd=io0,host=$edu,id=edu0" 2>&1) &&
        fail "QEMU realized vfio-pci without a lease: $out"
case $out in *1234:11e8*) fail "QEMU shows the edu without a lease: $out" ;; esac
echo "$out" >&2
# Refused for the right reason: the device's nodes, not a missing file of QEMU's own.
why=$(echo "$out" | grep -m 1 "vfio-pci.*/dev/vfio") || fail "QEMU failed, but not at the device: $out"
say "without a lease: refused (${why##*: vfio })"

# With vfiod's fds. Guest RAM is pinned against QEMU's own RLIMIT_MEMLOCK
# (vfiod sets per-process accounting on the iommufd): room for 32M and ROMs.
ulimit -l 262144
out=$(printf 'info pci\nquit\n' |
        su -s /bin/sh alice -c "timeout 300 vfioctl acquire $edu --interface iommufd -- $q -object iommufd,id=io0,fd={iommufd-fd} -device vfio-pci,iommufd=io0,fd={device-fd},id=edu0" 2>&1) ||
        fail "vfioctl acquire -- QEMU 10 failed: $out"
echo "$out" >&2
case $out in *"PCI device 1234:11e8"*) ;; *) fail "info pci does not show the edu (1234:11e8)" ;; esac
case $out in *"vfioctl: for QEMU: -object iommufd,id=vfiod"*) ;; *) fail "vfioctl printed no QEMU arguments" ;; esac
say "with vfiod's fds: info pci shows $(echo "$out" | grep -m 1 '1234:11e8' | sed 's/^ *//')"

# QEMU exited, vfioctl gave the lease back: the device is free again.
state=$(su -s /bin/sh alice -c "vfioctl list $edu" 2>&1)
case $state in *" free "*) ;; *) fail "the device is not free after QEMU exited: $state" ;; esac
say "after QEMU exited: lease released, device free"
exit 0
