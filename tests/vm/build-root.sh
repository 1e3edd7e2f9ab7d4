#!/usr/bin/env bash
# Prints the path of a root file system of the Debian release
# $VFIOD_GUEST_KERNEL (see kernel-lib.sh) with that release's compiler and
# the headers of its kernel KVER in /usr/src: where build-mdma.sh builds
# kernel/module for a guest kernel of another release than the machine's.
#
# A kernel's headers cannot simply be installed here: Debian 13's
# linux-headers-<version> build with gcc-14 and flags Debian 12's gcc-12 does
# not know, its linux-kbuild programs (modpost, objtool) need Debian 13's C
# library, and the headers' Makefile includes absolute /usr/src paths. In a
# root of their own release, built with debootstrap, they work as they do on
# that release.
#
# The root is built once per release and package list, in
# $VFIOD_CACHE_DIR/<release>/buildroot-<hash> (a half-built one, without its
# .complete mark, is built again); its packages are the ones
# linux-headers-KVER and linux-kbuild depend on (the compiler, the libraries
# of the kbuild programs, pahole) and make. The linux-headers and
# linux-kbuild packages themselves are downloaded with the release's apt into
# $VFIOD_CACHE_DIR/<release> and extracted into the root (dpkg-deb -x); a root
# holds the headers of every kernel it was asked for. Needs root
# (debootstrap, and build-mdma.sh's chroot).
#
# Usage: build-root.sh KVER     (e.g. 6.12.118+deb13-amd64)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

say() { printf 'build-root: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

[ $# = 1 ] || die "usage: build-root.sh KVER"
kver=$1
[[ $kver =~ ^[0-9][A-Za-z0-9.+_~-]*$ ]] || die "'$kver' is not a kernel release"
kl_init || die "see above"
[ "$kl_private" = 1 ] ||
        die "Debian $kl_series is this machine's release: install linux-headers-$kver instead"
[ "$(id -u)" = 0 ] || die "building modules for Debian $kl_series's kernel needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null ||
        die "debootstrap not found (Debian: apt-get install debootstrap; ./bootstrap deps installs it)"
[ -f "$kl_series_dir/apt/sources.list" ] || kl_private_update || die "apt-get update for $kl_series failed"

# depends PKG: the packages PKG depends on (the first of alternatives).
depends() {
        kl_apt_cache depends "$1" 2>/dev/null | sed -n 's/^  Depends: \([^ <>]*\)$/\1/p'
}

hdr=linux-headers-$kver
kl_apt_cache show "$hdr" >/dev/null 2>&1 || kl_private_update || true
kl_apt_cache show "$hdr" >/dev/null 2>&1 || die "Debian $kl_series has no package '$hdr'"
linux=("$hdr")
others=(make)
for p in $(depends "$hdr"); do
        case $p in
        linux-headers-* | linux-kbuild-*)
                linux+=("$p")
                for q in $(depends "$p"); do
                        case $q in linux-*) ;; *) others+=("$q") ;; esac
                done
                ;;
        linux-*) ;; # linux-base, linux-image-*: not for building
        *) others+=("$p") ;;
        esac
done
include=$(printf '%s\n' "${others[@]}" | LC_ALL=C sort -u | paste -sd, -)
mirror=$(kl_mirror)
[ -n "$mirror" ] || die "no mirror for Debian $kl_series in '$kl_series_dir/apt/sources.list'"
key=$(printf '%s %s\n' "$kl_series" "$include" | sha256sum | cut -c1-12)
root=$kl_series_dir/buildroot-$key

if [ ! -f "$root.complete" ] || [ ! -d "$root" ]; then
        rm -rf "$root" "$root.complete"
        say "building $root with debootstrap (Debian $kl_series, $mirror: $include); once, about a minute"
        debootstrap --variant=minbase --include="$include" "$kl_series" "$root" "$mirror" >"$root.log" 2>&1 ||
                die "debootstrap failed; its log: $root.log"
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        touch "$root.complete"
fi

mark=$root/.headers-$kver
if [ ! -f "$mark" ]; then
        for p in "${linux[@]}"; do
                v=$(kl_apt_cache show --no-all-versions "$p" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
                deb=$(compgen -G "$kl_series_dir/${p}_${v//:/%3a}_*.deb" | head -n 1 || true)
                if [ -z "$deb" ]; then
                        say "downloading $p $v (Debian $kl_series)"
                        (cd "$kl_series_dir" && kl_apt_get download -q "$p=$v" >&2) ||
                                die "apt-get download '$p=$v' failed"
                        deb=$(compgen -G "$kl_series_dir/${p}_${v//:/%3a}_*.deb" | head -n 1) ||
                                die "apt-get download did not produce ${p}_${v}_*.deb"
                fi
                dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x '$deb' failed"
        done
        [ -f "$root/usr/src/$hdr/Makefile" ] || die "no /usr/src/$hdr/Makefile in '$root' after extracting ${linux[*]}"
        touch "$mark"
fi
printf '%s\n' "$root"
