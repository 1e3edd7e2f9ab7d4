#!/usr/bin/env bash
# Prints the folder of a guest kernel built from Debian's kernel source with
# the options of a fragment file (tests/vm/iommufd-kernel.config): Debian's
# own kernels have no iommufd (6.1 lacks the code, 6.12 is built with
# CONFIG_IOMMUFD unset), so `make check-vm-iommufd` boots one built here.
#
# The source is the package linux-source-6.12 (VFIOD_KERNEL_SOURCE) of
# Debian trixie (VFIOD_KERNEL_SOURCE_RELEASE), through the release's apt as
# kernel-lib.sh sets it up, downloaded into $VFIOD_CACHE_DIR/<release>. The
# build: `make ARCH=x86_64 tinyconfig`, every line of the fragment applied
# with scripts/config, `make olddefconfig`, a check that each line of the
# fragment is still in .config as written (else it names the ones that are
# not and stops), `make bzImage` with the host's compiler (needs flex, bison,
# bc and libelf-dev). About 6 minutes on 2 cores; its log is kept next to the
# output.
#
# The output is laid out like an extracted Debian kernel package, so that
# run-vm.sh boots it through VFIOD_KERNEL_DIR (kl_locate, kl_modules):
#   boot/vmlinuz-REL, boot/config-REL,
#   lib/modules/REL/kernel/ (empty: everything is built in),
#   lib/modules/REL/modules.builtin
# in $VFIOD_CACHE_DIR/kernel-build/<version>-<inputs>-<key>: inputs is a
# hash of the fragment's options and of this script's recipe number, key one
# of those with the package and its version. A second run with the same
# inputs builds nothing; runs at the same time build it once (a lock next to
# it). Offline, the newest output of the same inputs is used with a warning.
#
# Usage: build-kernel.sh FRAGMENT
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export VFIOD_GUEST_KERNEL=${VFIOD_KERNEL_SOURCE_RELEASE:-trixie}
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

say() { printf 'build-kernel: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

[ $# = 1 ] || die "usage: build-kernel.sh FRAGMENT"
fragment=$1
[ -f "$fragment" ] || die "no fragment file '$fragment'"
pkg=${VFIOD_KERNEL_SOURCE:-linux-source-6.12}
[[ $pkg =~ ^linux-source-[0-9.]+$ ]] || die "VFIOD_KERNEL_SOURCE '$pkg' is not a linux-source-X.Y package"
kl_init || die "see above"
jobs=${VFIOD_KERNEL_JOBS:-2}
builds=$kl_cache/kernel-build
mkdir -p "$builds" || die "cannot make '$builds'"

# The options of the fragment: "NAME=VALUE" or "NAME=n" (from "# CONFIG_NAME
# is not set"), one a line, in the file's order.
options() {
        sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*=.*\)$/\1/p' \
                -e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1=n/p' "$fragment"
}
[ -n "$(options)" ] || die "no CONFIG_ line in '$fragment'"
# The steps below that make the kernel: bump when they change what is built
# (not for messages or comments), so that the cached kernels are built again.
recipe=1
inputs=$( (options && printf 'recipe %s\n' "$recipe") | sha256sum | cut -c1-12)

# The package's version, as the release's apt knows it today.
version() {
        kl_apt_cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1
}
if [ "$kl_private" = 1 ] && kl_private_stale; then
        kl_private_update || say "warning: apt-get update for Debian $kl_series failed"
fi
ver=$(version)
if [ -z "$ver" ] && [ "$kl_private" = 1 ]; then
        kl_private_update || true
        ver=$(version)
fi
if [ -z "$ver" ]; then
        # Offline: the newest build of the same inputs, whatever its version.
        old=$(find "$builds" -maxdepth 1 -name "*-$inputs-*.complete" -printf '%T@ %p\n' 2>/dev/null |
                sort -rn | head -n 1 | cut -d' ' -f2-)
        [ -n "$old" ] || die "apt does not know '$pkg' (Debian $kl_series) and no kernel of '$fragment' is cached in '$builds'"
        say "warning: apt does not know '$pkg' (offline?): using the cached ${old%.complete}"
        printf '%s\n' "${old%.complete}"
        exit 0
fi
key=$(printf '%s %s %s\n' "$pkg" "$ver" "$inputs" | sha256sum | cut -c1-12)
out=$builds/${ver//[^A-Za-z0-9.+~-]/_}-$inputs-$key
cached() {
        [ -f "$out.complete" ] && [ -d "$out" ] || return 1
        say "cached: $out ($(cat "$out/build-time" 2>/dev/null || echo '?') s to build)"
        printf '%s\n' "$out"
}
cached && exit 0
# Another run (the cache is shared) may be building the same kernel: wait for
# it, then take its result.
exec 9>"$out.lock"
if ! flock -n 9; then
        say "another run is building $out; waiting for it"
        flock 9
fi
cached && exit 0

for tool in flex bison bc make gcc; do
        command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install flex bison bc libelf-dev build-essential; ./bootstrap deps installs them)"
done
[ -f /usr/include/libelf.h ] || [ -f /usr/include/elfutils/libelf.h ] ||
        die "libelf's headers not found (Debian: apt-get install libelf-dev; ./bootstrap deps installs it)"

deb=$(compgen -G "$kl_series_dir/${pkg}_${ver//:/%3a}_*.deb" | head -n 1 || true)
if [ -z "$deb" ]; then
        say "downloading $pkg $ver (Debian $kl_series)"
        mkdir -p "$kl_series_dir"
        (cd "$kl_series_dir" && kl_apt_get download -q "$pkg=$ver" >&2) || die "apt-get download '$pkg=$ver' failed"
        deb=$(compgen -G "$kl_series_dir/${pkg}_${ver//:/%3a}_*.deb" | head -n 1) ||
                die "apt-get download did not produce ${pkg}_${ver}_*.deb"
fi

t0=$(date +%s)
rm -rf "$out" "$out.complete" "$out.tmp"
work=$(mktemp -d "$builds/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$out.log
say "building Linux from $pkg $ver (Debian $kl_series) with '$fragment'; once, about 6 minutes on 2 cores; log: $log"
{
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*/linux-source-*.tar.xz' &&
                tar -xJf "$work"/usr/src/linux-source-*.tar.xz -C "$work"
} >"$log" 2>&1 || die "cannot extract the source from '$deb' (see $log)"
src=$(compgen -G "$work/linux-source-*" | head -n 1) || die "no linux-source-* folder in '$deb'"

kmake() { make -C "$src" ARCH=x86_64 "$@" >>"$log" 2>&1; }
kmake tinyconfig || die "make tinyconfig failed (see $log)"
while IFS= read -r line; do
        name=${line%%=*}
        name=${name#CONFIG_}
        value=${line#*=}
        case $value in
        y) args=(--enable "$name") ;;
        m) args=(--module "$name") ;;
        n) args=(--disable "$name") ;;
        \"*\") args=(--set-str "$name" "${value:1:${#value}-2}") ;;
        *) args=(--set-val "$name" "$value") ;;
        esac
        "$src/scripts/config" --file "$src/.config" "${args[@]}" || die "scripts/config ${args[*]} failed"
done < <(options)
kmake olddefconfig || die "make olddefconfig failed (see $log)"
lost=()
while IFS= read -r line; do
        case $line in
        *=n) ! grep -q "^${line%=n}=" "$src/.config" ||
                lost+=("$line") ;;
        *) grep -qxF "$line" "$src/.config" || lost+=("$line") ;;
        esac
done < <(options)
[ ${#lost[@]} = 0 ] || die "olddefconfig dropped: ${lost[*]} (a dependency is missing from '$fragment')"
kmake -j"$jobs" bzImage || die "make bzImage failed; the end of $log: $(tail -n 5 "$log")"
rel=$(make -s -C "$src" ARCH=x86_64 kernelrelease 2>>"$log") || die "make kernelrelease failed"
[[ $rel =~ ^[0-9][A-Za-z0-9.+_~-]*$ ]] || die "odd kernel release '$rel'"

mkdir -p "$out.tmp/boot" "$out.tmp/lib/modules/$rel/kernel"
cp "$src/arch/x86/boot/bzImage" "$out.tmp/boot/vmlinuz-$rel"
cp "$src/.config" "$out.tmp/boot/config-$rel"
if [ -f "$src/modules.builtin" ]; then
        cp "$src/modules.builtin" "$out.tmp/lib/modules/$rel/modules.builtin"
else
        : >"$out.tmp/lib/modules/$rel/modules.builtin"
fi
printf '%s %s\n' "$pkg" "$ver" >"$out.tmp/source"
echo $(($(date +%s) - t0)) >"$out.tmp/build-time"
mv "$out.tmp" "$out"
touch "$out.complete"
say "built $rel in $(cat "$out/build-time") s: $out"
printf '%s\n' "$out"
