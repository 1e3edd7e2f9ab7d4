#!/bin/sh
# SPDX-License-Identifier: MIT
#
# libvfiod-preload.so in Debian's own QEMU on the host: QEMU's vfio-pci
# finds the group of a device (here a folder whose iommu_group link names
# group 7, given with sysfsdev=) and opens /dev/vfio/7 through its own
# imports (open64, __open64_2 or openat64). Without the library that open
# fails; with it and VFIOD_GROUP_FDS=7:3 QEMU gets a duplicate of fd 3 (a
# plain file here) and goes on to VFIO_GROUP_GET_STATUS, which a plain file
# answers with ENOTTY. Skipped when qemu-system-x86_64 is not installed.
# Run by `make check` from the build folder.
set -eu

lib=client-lib/.libs/libvfiod-preload.so
qemu=$(command -v qemu-system-x86_64 || true)
if test -z "$qemu"; then
        echo "check-preload-qemu: qemu-system-x86_64 not found: skipped"
        exit 77
fi
if ! test -f "$lib"; then
        echo "check-preload-qemu: $lib not built" >&2
        exit 1
fi
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/dev0"
ln -s ../../kernel/iommu_groups/7 "$tmp/dev0/iommu_group"
: >"$tmp/group7"

run_qemu() {
        timeout 60 "$qemu" -display none -nodefaults -machine q35 -accel tcg \
                -device "vfio-pci,sysfsdev=$tmp/dev0" 3<"$tmp/group7" 2>&1 || true
}

unset LD_PRELOAD VFIOD_GROUP_FDS
without=$(run_qemu)
with=$(LD_PRELOAD=$lib VFIOD_GROUP_FDS=7:3 run_qemu)
status=0
case $without in
*"failed to open /dev/vfio/7"*) ;;
*)
        echo "check-preload-qemu: without the library QEMU said: $without" >&2
        status=1
        ;;
esac
case $with in
*"failed to get group 7 status: Inappropriate ioctl for device"*) ;;
*)
        echo "check-preload-qemu: with the library QEMU said: $with" >&2
        status=1
        ;;
esac
test $status -ne 0 || echo "check-preload-qemu: $qemu opened /dev/vfio/7 as the fd it was given"
exit $status
