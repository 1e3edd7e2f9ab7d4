#!/usr/bin/env bash
# Builds kernel/module (mdma.ko and its static test program mdma-test) for
# the test VM's kernel: the same kernel run-vm.sh boots (fetch-kernel.sh, or
# $VFIOD_KERNEL_DIR), against Debian's headers of exactly that version,
# /usr/src/linux-headers-<version>. When they are missing it installs
# linux-headers-<version> with apt-get (as root; running `apt-get update`
# once when apt does not know the package), else it stops saying what to
# install. $VFIOD_KDIR names another kernel build tree instead.
#
# The sources are copied into OUTDIR/src and built there (Kbuild writes
# next to the sources; the source tree may be read-only, as in distcheck).
#
# Usage: build-mdma.sh MODULE_SRCDIR OUTDIR
#   prints the path of mdma.ko; mdma-test is OUTDIR/src/tests/mdma-test
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'build-mdma: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

[ $# = 2 ] || die "usage: build-mdma.sh MODULE_SRCDIR OUTDIR"
src=$1
out=$2
[ -f "$src/mdma.c" ] || die "no mdma.c in '$src'"

if [ -n "${VFIOD_KERNEL_DIR:-}" ]; then
        kimg=$VFIOD_KERNEL_DIR
else
        kimg=$("$here/fetch-kernel.sh") || die "no guest kernel (see the messages above)"
fi
vmlinuz=$(compgen -G "$kimg/boot/vmlinuz-*" | head -n 1) || die "no boot/vmlinuz-* in '$kimg'"
kver=${vmlinuz##*/vmlinuz-}

kdir=${VFIOD_KDIR:-/usr/src/linux-headers-$kver}
if [ ! -f "$kdir/Makefile" ] && [ -z "${VFIOD_KDIR:-}" ]; then
        pkg=linux-headers-$kver
        [ "$(id -u)" = 0 ] ||
                die "no headers for the guest kernel $kver in '$kdir': install $pkg (apt-get install $pkg, as root)"
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
                say "apt does not know '$pkg': running apt-get update"
                apt-get update -qq >&2 || say "apt-get update failed"
        fi
        say "installing $pkg (headers of the guest kernel)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 ||
                die "apt-get install $pkg failed"
fi
[ -f "$kdir/Makefile" ] || die "no kernel build tree at '$kdir'"

mkdir -p "$out/src/tests"
out=$(cd "$out" && pwd)
for f in Kbuild Makefile mdma.c mdma-regs.h tests/mdma-test.c; do
        # Copy only what changed, so make rebuilds only then.
        if ! cmp -s "$src/$f" "$out/src/$f"; then
                cp "$src/$f" "$out/src/$f"
        fi
done
say "building mdma.ko against $kdir"
make -s -C "$out/src" KDIR="$kdir" KCFLAGS=-Werror modules test >&2 ||
        die "building mdma.ko or mdma-test failed"
printf '%s\n' "$out/src/mdma.ko"
