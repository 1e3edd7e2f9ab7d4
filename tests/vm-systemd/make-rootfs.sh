#!/usr/bin/env bash
# Prints the path of a Debian 12 root file system with systemd as init, for
# the systemd VM suite, building it with debootstrap when it is not cached.
#
# The root lives outside the source tree, in
# ${VFIOD_CACHE_DIR:-/var/cache/vfiod-test}/rootfs-<suite>-<hash of the
# package list>, and is built only when missing (a half-built one, without
# its .complete mark, is removed and built again). It is never modified by a
# test run: run-vm-systemd.sh copies it.
set -euo pipefail

say() { printf '%s\n' "make-rootfs: $*" >&2; }
die() {
        say "$*"
        exit 1
}

suite=${VFIOD_DEBIAN_SUITE:-bookworm}
mirror=${VFIOD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${VFIOD_CACHE_DIR:-/var/cache/vfiod-test}
# What the packages vfiod, libvfiod0 and libvfiod-dev and the test programs
# depend on: the guest installs the packages with apt-get, offline.
packages=systemd,systemd-sysv,dbus,libev4,libsystemd0,libprotobuf-c1,libprotobuf-c-dev,libinih1,kmod
key=$(printf '%s %s %s\n' "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)
root=$cache/rootfs-$suite-$key

if [ -f "$root.complete" ] && [ -d "$root" ]; then
        printf '%s\n' "$root"
        exit 0
fi
command -v debootstrap >/dev/null ||
        die "debootstrap not found (Debian: apt-get install debootstrap; ./bootstrap deps installs it)"
[ "$(id -u)" = 0 ] || die "building the root file system needs root (debootstrap); run as root once"
mkdir -p "$cache"
rm -rf "$root" "$root.complete"
say "building $root with debootstrap ($suite, $mirror); this takes a few minutes, once"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
        die "debootstrap failed; its log: $root.log (is $mirror reachable?)"
# Smaller: the guest boots it from memory.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
        "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
touch "$root.complete"
say "built $root ($(du -sh "$root" | cut -f1))"
printf '%s\n' "$root"
