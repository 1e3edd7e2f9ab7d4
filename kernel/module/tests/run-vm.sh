#!/usr/bin/env bash
# Development check of mdma.ko: boots Debian's kernel in QEMU (TCG, q35, no
# IOMMU device, intel_iommu=off) with a busybox initramfs that loads the VFIO
# modules and mdma.ko and runs mdma-test (see guest-init.sh).
#
# Usage: run-vm.sh -k KERNEL_DIR [-o OUT_DIR] [--timeout SECONDS]
#   KERNEL_DIR: an extracted linux-image-*.deb (boot/vmlinuz-*, lib/modules/*)
#   OUT_DIR:    scratch folder for the initramfs and console.log
#               (default /tmp/mdma-vm/out)
# mdma.ko is built against /usr/src/linux-headers-<the kernel's version>
# (or KDIR=...), tests/mdma-test statically. Exit status 0 when the guest
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
vmlinuz=$(compgen -G "$kdir_img/boot/vmlinuz-*" | head -n 1) ||
        { echo "run-vm: no boot/vmlinuz-* in '$kdir_img'" >&2; exit 2; }
kver=${vmlinuz##*/vmlinuz-}
moddir=$kdir_img/lib/modules/$kver/kernel
KDIR=${KDIR:-/usr/src/linux-headers-$kver}
[ -d "$KDIR" ] || { echo "run-vm: no headers at '$KDIR' (apt-get install linux-headers-$kver)" >&2; exit 2; }

make -s -C "$mod" KDIR="$KDIR" KCFLAGS=-Werror modules test

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
install -m 0755 "$mod/tests/mdma-test" "$root/bin/mdma-test"
for m in drivers/vfio/vfio drivers/vfio/vfio_virqfd drivers/vfio/vfio_iommu_type1 drivers/vfio/mdev/mdev; do
        f=$(compgen -G "$moddir/$m.ko*" | head -n 1)
        case $f in
        *.xz) xz -dc "$f" >"$root/modules/${m##*/}.ko" ;;
        *.zst) zstd -qdc "$f" >"$root/modules/${m##*/}.ko" ;;
        *) cp "$f" "$root/modules/${m##*/}.ko" ;;
        esac
done
cp "$mod/mdma.ko" "$root/modules/"
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
