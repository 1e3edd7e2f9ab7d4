#!/usr/bin/env bash
# Boots a Debian root file system with systemd as PID 1 under QEMU, with the
# same kernel, IOMMU and edu devices as tests/vm/run-vm.sh, and runs
# guest-systemd.sh there, which installs the project's Debian packages with
# apt-get first (see tests/vm-systemd/README.md). Prints one PASS:/FAIL:
# line per check and one summary line "N passed, N failed"; exits non-zero
# on any failure.
#
#   run-vm-systemd.sh --out DIR --debs DEBDIR --program PATH...
#
# DEBDIR holds the packages `make deb` built (vfiod, libvfiod0,
# libvfiod-dev); each --program is copied to /vfiod/bin in the guest, with
# the libraries ldd finds for it that the root lacks (libvfiod is the
# package's).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/../vm/kernel-lib.sh"
qemu=${VFIOD_QEMU:-qemu-system-x86_64}
timeout_s=${VFIOD_VM_TIMEOUT:-600}
out=''
debs=''
programs=()

say() { printf '%s\n' "run-vm-systemd: $*" >&2; }
die() {
        say "$*"
        echo "0 passed, 1 failed"
        exit 1
}

while [ $# -gt 0 ]; do
        case $1 in
        --out) out=${2:?} && shift ;;
        --debs) debs=${2:?} && shift ;;
        --program) programs+=("${2:?}") && shift ;;
        *) die "unknown argument '$1'" ;;
        esac
        shift
done
if [ -z "$out" ] || [ -z "$debs" ]; then
        die "usage: run-vm-systemd.sh --out DIR --debs DEBDIR --program PATH..."
fi
packages=()
for p in vfiod libvfiod0 libvfiod-dev; do
        deb=$(compgen -G "$debs/${p}_*.deb" | head -n 1) || die "no ${p}_*.deb in '$debs' (make deb)"
        packages+=("$deb")
done
[ "$(id -u)" = 0 ] || die "needs root (the guest's root file system keeps its owners)"
command -v "$qemu" >/dev/null || die "'$qemu' not found (Debian: apt-get install qemu-system-x86)"
for tool in cpio ldd timeout useradd ldconfig; do
        command -v "$tool" >/dev/null || die "'$tool' not found"
done

rootfs=$("$here/make-rootfs.sh") || die "no Debian root file system (see the messages above)"
kdir=$("$here/../vm/fetch-kernel.sh") || die "no guest kernel (see the messages above)"
kl_locate "$kdir" || die "no usable kernel in '$kdir' (see above)"
vmlinuz=$kl_vmlinuz
kver=$kl_release

# --- the guest's root: a copy of the cached one, the packages to install ---------
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$out/root
rm -rf "$root"
cp -a "$rootfs" "$root"
# The guest installs them (apt-get install ./...deb): the user vfiod and the
# group vfiod-users come from the package; guest-deb.sh adds alice to it.
mkdir -p "$root/vfiod/debs"
cp "${packages[@]}" "$root/vfiod/debs/"
useradd -R "$root" -u 1001 -U -m -s /bin/bash alice
useradd -R "$root" -u 1003 -U -m -s /bin/bash eve
echo vfiod-vm >"$root/etc/hostname"

mkdir -p "$root/vfiod/bin" "$root/vfiod/modules.d"
for p in "${programs[@]}"; do
        [ -x "$p" ] || die "program '$p' not found (was it built?)"
        if [ "$(head -c 2 "$p")" = '#!' ] && grep -q libtool "$p"; then
                die "'$p' is a libtool wrapper script: link it with -no-install"
        fi
        install -m 0755 "$p" "$root/vfiod/bin/"
        while read -r lib; do
                if [ -z "$lib" ] || [ -e "$root$lib" ]; then continue; fi
                case ${lib##*/} in libvfiod.so*) continue ;; esac
                mkdir -p "$root$(dirname "$lib")"
                cp -L "$lib" "$root$lib"
        done < <(ldd "$p" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
done
install -m 0755 "$here/guest-systemd.sh" "$root/vfiod/bin/guest-systemd.sh"
install -m 0644 "$here/guest-deb.sh" "$root/vfiod/bin/guest-deb.sh"

mods=$(kl_modules "$kl_moddir" "$root/vfiod/modules.d" vfio_iommu_type1 vfio-pci) ||
        die "cannot gather the guest's modules (see above)"
printf '%s\n' "$mods" >"$root/vfiod/modules"

# The suite's driver runs once the system is up, then powers off.
cat >"$root/etc/systemd/system/vfiod-test.service" <<'UNIT'
[Unit]
Description=vfiod systemd VM suite
After=multi-user.target systemd-journald.service
[Service]
Type=oneshot
ExecStart=/vfiod/bin/guest-systemd.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=500
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../vfiod-test.service "$root/etc/systemd/system/multi-user.target.wants/vfiod-test.service"
# Nothing asks for a login here.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
ln -sf /usr/lib/systemd/systemd "$root/init"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/initramfs.cpio"
rm -rf "$root"

# --- the VM (as run-vm.sh: each edu behind its own root port) --------------------
devices=()
for i in 1 2 3; do
        devices+=(-device "pcie-root-port,id=rp$i,chassis=$i,slot=$i" -device "edu,bus=rp$i")
done
console=$out/console.txt
results=$out/results.txt
rm -f "$console" "$results"
say "booting $kver with systemd as PID 1 ($(du -m "$out/initramfs.cpio" | cut -f1) MiB root in memory); console log: $console"
start=$(date +%s)
qemu_rc=0
timeout -k 10 "$timeout_s" "$qemu" \
        -machine q35,accel=tcg,kernel-irqchip=split -cpu max -m 1536 \
        -device intel-iommu,intremap=on \
        "${devices[@]}" \
        -kernel "$vmlinuz" -initrd "$out/initramfs.cpio" \
        -append "console=ttyS0 intel_iommu=on panic=-1 systemd.show_status=1 ${VFIOD_VM_APPEND:-}" \
        -nographic -no-reboot -monitor none \
        -serial stdio -serial "file:$results" \
        </dev/null >"$console" 2>&1 || qemu_rc=$?
elapsed=$(($(date +%s) - start))
rm -f "$out/initramfs.cpio"

passed=0 failed=0 done_seen=0
[ -f "$results" ] || : >"$results"
while IFS= read -r line; do
        line=${line%$'\r'}
        case $line in
        "@vfiod result PASS "*) passed=$((passed + 1)) && printf 'PASS: vm-systemd: %s\n' "${line#@vfiod result PASS }" ;;
        "@vfiod result FAIL "*) failed=$((failed + 1)) && printf 'FAIL: vm-systemd: %s\n' "${line#@vfiod result FAIL }" ;;
        "@vfiod say "*) printf '%s\n' "${line#@vfiod say }" ;;
        "@vfiod done") done_seen=1 ;;
        esac
done <"$results"
if grep -q 'Kernel panic' "$console"; then
        failed=$((failed + 1)) && echo "FAIL: vm-systemd: guest kernel panic"
fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        failed=$((failed + 1)) && echo "FAIL: vm-systemd: time-out after ${timeout_s}s, QEMU killed"
elif [ "$qemu_rc" != 0 ]; then
        failed=$((failed + 1)) && echo "FAIL: vm-systemd: QEMU exited with status $qemu_rc"
elif [ "$done_seen" = 0 ]; then
        failed=$((failed + 1)) && echo "FAIL: vm-systemd: the guest stopped before reporting all results"
fi
say "QEMU ran ${elapsed}s; console log: $console"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
