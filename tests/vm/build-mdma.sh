#!/usr/bin/env bash
# Builds kernel/module (mdma.ko and its static test program mdma-test) for
# the test VM's kernel: the same kernel run-vm.sh boots (fetch-kernel.sh, for
# the Debian release $VFIOD_GUEST_KERNEL, or $VFIOD_KERNEL_DIR), against
# Debian's headers of exactly that version:
# - /usr/src/linux-headers-<version> when they are there; for a kernel of the
#   machine's own Debian release, when they are missing it installs
#   linux-headers-<version> with apt-get (as root; running `apt-get update`
#   once when apt does not know the package), else it stops saying what to
#   install;
# - for a kernel of another release (Debian 13's on Debian 12), in a root of
#   that release with its compiler and the headers (build-root.sh; root is
#   needed), entered with chroot.
# $VFIOD_KDIR names another kernel build tree on this machine instead.
#
# The sources are copied into OUTDIR/<kernel version>/src and built there
# (Kbuild writes next to the sources; the source tree may be read-only, as in
# distcheck), with KCFLAGS=-Werror.
#
# Usage: build-mdma.sh MODULE_SRCDIR OUTDIR
#   prints the path of mdma.ko; mdma-test is tests/mdma-test next to it
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

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
kl_locate "$kimg" || die "see above"
kver=$kl_release

# Where the build runs: this machine (broot empty), or a root of the guest
# kernel's release (chroot).
broot=
kdir=${VFIOD_KDIR:-/usr/src/linux-headers-$kver}
if [ ! -f "$kdir/Makefile" ] && [ -z "${VFIOD_KDIR:-}" ]; then
        kl_init || die "see above"
        if [ "$kl_private" = 1 ]; then
                broot=$("$here/build-root.sh" "$kver") || die "no build root for Debian $kl_series (see above)"
        else
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
fi
[ -f "$broot$kdir/Makefile" ] || die "no kernel build tree at '$broot$kdir'"

out=$out/$kver
mkdir -p "$out/src/tests"
out=$(cd "$out" && pwd)
files=(Kbuild Makefile mdma.c mdma-regs.h tests/mdma-test.c)
for f in "${files[@]}"; do
        # Copy only what changed, so make rebuilds only then.
        if ! cmp -s "$src/$f" "$out/src/$f"; then
                cp "$src/$f" "$out/src/$f"
        fi
done
if [ -z "$broot" ]; then
        say "building mdma.ko against $kdir"
        make -s -C "$out/src" KDIR="$kdir" KCFLAGS=-Werror modules >&2 || die "building mdma.ko failed"
elif [ ! -f "$out/src/mdma.ko" ] || [ -n "$(find "${files[@]/#/$out/src/}" -newer "$out/src/mdma.ko")" ]; then
        # In a scratch folder inside the root, then mdma.ko out of it.
        say "building mdma.ko against $kdir in $broot (chroot)"
        tmp=$(mktemp -d "$broot/tmp/mdma.XXXXXX")
        cp -r "$out/src/." "$tmp/"
        rc=0
        chroot "$broot" make -s -C "/tmp/${tmp##*/}" KDIR="$kdir" KCFLAGS=-Werror modules >&2 || rc=$?
        [ "$rc" != 0 ] || cp "$tmp/mdma.ko" "$out/src/mdma.ko" || rc=$?
        rm -rf "$tmp"
        [ "$rc" = 0 ] || die "building mdma.ko in '$broot' failed"
fi
make -s -C "$out/src" test >&2 || die "building mdma-test failed"
printf '%s\n' "$out/src/mdma.ko"
