#!/usr/bin/env bash
# Development check of mdma.ko: boots Debian's kernel in QEMU (TCG, q35, no
# IOMMU device, intel_iommu=off) with a busybox initramfs that loads the VFIO
# modules and mdma.ko and runs mdma-test (see guest-init.sh).
#
# Usage: run-vm.sh -k KERNEL_DIR [-o OUT_DIR] [--timeout SECONDS]
#   KERNEL_DIR: an extracted linux-image-*.deb (boot/vmlinuz-*, and
#               lib/modules/* or usr/lib/modules/*)
#   OUT_DIR:    scratch folder for the initramfs and console.log
#               (default /tmp/mdma-vm/out)
# mdma.ko is built by tests/vm/build-mdma.sh against the headers of the
# kernel's version (Debian 13's in a root of that release: set
# VFIOD_GUEST_KERNEL=trixie), or against KDIR=... when given; tests/mdma-test
# statically. Exit status 0 when the guest
# printed "RESULT PASS".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod=$(cd "$here/.." && pwd)
kdir_img=
out=/tmp/mdma-vm/out
timeout_s=300
while [ $# -gt 0 ]; do
        case $1 in
        -k) kdir_img=${2:?} && shift ;;
        -o) out=${2:?} && shift ;;
        --timeout) timeout_s=${2:?} && shift ;;
        *) echo "usage: $0 -k KERNEL_DIR [-o OUT_DIR] [--timeout SECONDS]" >&2 && exit 2 ;;
        esac
        shift
done
[ -n "$kdir_img" ] || { echo "run-vm: -k KERNEL_DIR is required" >&2; exit 2; }
# The VM harness's helpers: the package's layout, the modules' dependencies,
# and the build against the kernel's own headers.
harness=$mod/../../tests/vm
# shellcheck source=tests/vm/kernel-lib.sh
. "$harness/kernel-lib.sh"
kl_locate "$kdir_img" || exit 2
vmlinuz=$kl_vmlinuz
kver=$kl_release
if [ -n "${KDIR:-}" ]; then
        make -s -C "$mod" KDIR="$KDIR" KCFLAGS=-Werror modules test
        ko=$mod/mdma.ko
        mdma_test=$mod/tests/mdma-test
else
        ko=$(VFIOD_KERNEL_DIR=$kdir_img "$harness/build-mdma.sh" "$mod" "$out/mdma") || exit 2
        mdma_test=$(dirname "$ko")/tests/mdma-test
fi

mkdir -p "$out"
root=$out/initramfs.d
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,modules}
busybox=$(command -v busybox)
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
install -m 0755 "$here/guest-init.sh" "$root/init"
install -m 0755 "$mdma_test" "$root/bin/mdma-test"
# What mdma.ko depends on (vfio, mdev; vfio_virqfd before 6.2) and
# vfio_iommu_type1, in load order, for guest-init.sh.
deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n 1)
# shellcheck disable=SC2086 # one word per module
kl_modules "$kl_moddir" "$root/modules" vfio_iommu_type1 ${deps//,/ } >"$root/modules/order" || exit 2
cp "$ko" "$root/modules/mdma.ko"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/initramfs.cpio"
rm -rf "$root"

echo "run-vm: booting $kver without an IOMMU; console: $out/console.log" >&2
rc=0
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
        -machine q35,accel=tcg -cpu max -smp "${MDMA_VM_CPUS:-2}" -m 512 \
        -kernel "$vmlinuz" -initrd "$out/initramfs.cpio" \
        -append "console=ttyS0 intel_iommu=off panic=-1 panic_on_warn=0" \
        -nographic -no-reboot -monitor none -serial stdio \
        </dev/null >"$out/console.log" 2>&1 || rc=$?
tr -d '\r' <"$out/console.log" | grep -E '^(ok|not ok|1\.\.|#|mdma-vm:|holding)' || true
[ "$rc" = 0 ] || echo "run-vm: QEMU exit status $rc" >&2
grep -q 'mdma-vm: RESULT PASS' "$out/console.log"
