#!/usr/bin/env bash
# Fetches Debian's current kernel for the test VM and prints the folder it is
# extracted in (holding boot/vmlinuz-* and lib/modules/*/).
#
# The package is whatever the linux-image-amd64 metapackage depends on today
# (the ABI number changes with security updates, so it is never hard-coded).
# The .deb is downloaded with apt-get into $VFIOD_CACHE_DIR (default
# /var/cache/vfiod-test), extracted next to it, and reused on later runs.
# When apt knows no such package, `apt-get update` runs once (as root). When
# the archive cannot be reached but an earlier kernel is in the cache, that one
# is used with a warning.
#
# Usage: fetch-kernel.sh        (prints the kernel folder on stdout)
set -euo pipefail

cache=${VFIOD_CACHE_DIR:-/var/cache/vfiod-test}
meta=linux-image-amd64

say() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

# The package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
resolve() {
        apt-cache depends "$meta" 2>/dev/null |
                sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# The newest kernel already extracted in the cache (for offline re-runs).
newest_cached() {
        local d best=
        for d in "$cache"/linux-image-*/; do
                [ -f "$d.extracted" ] || continue
                best=${d%/}
        done
        [ -n "$best" ] && printf '%s\n' "$best"
}

mkdir -p "$cache" 2>/dev/null || die "cannot create the cache folder '$cache' (set VFIOD_CACHE_DIR to a writable folder)"
[ -w "$cache" ] || die "the cache folder '$cache' is not writable (set VFIOD_CACHE_DIR, or run as root)"
command -v apt-cache >/dev/null || die "apt-cache not found: the guest kernel comes from Debian's archive"

pkg=$(resolve)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
        say "apt does not know '$meta': running apt-get update"
        apt-get update -qq >&2 || say "apt-get update failed"
        pkg=$(resolve)
fi
if [ -z "$pkg" ]; then
        if old=$(newest_cached); then
                say "warning: cannot resolve '$meta' (apt-cache depends); using the cached '$(basename "$old")'"
                printf '%s\n' "$old"
                exit 0
        fi
        die "cannot resolve '$meta' with 'apt-cache depends' and nothing is cached in '$cache' (run 'apt-get update' as root, check the network)"
fi

version=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
[ -n "$version" ] || die "apt-cache show '$pkg' gives no version"
# apt-get download names the file <pkg>_<version with ':' as %3a>_<arch>.deb.
deb="$cache/${pkg}_${version//:/%3a}_amd64.deb"
dir="$cache/$pkg"

if [ ! -f "$deb" ]; then
        say "downloading $pkg $version into $cache"
        if ! (cd "$cache" && apt-get download -q "$pkg=$version" >&2); then
                if old=$(newest_cached); then
                        say "warning: download of '$pkg' failed; using the cached '$(basename "$old")'"
                        printf '%s\n' "$old"
                        exit 0
                fi
                die "apt-get download '$pkg=$version' failed (no network? run 'apt-get update' as root)"
        fi
        [ -f "$deb" ] || die "apt-get download did not produce '$deb'"
fi

if [ ! -f "$dir/.extracted" ] || [ "$(cat "$dir/.extracted")" != "$(basename "$deb")" ]; then
        say "extracting $(basename "$deb")"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        dpkg-deb -x "$deb" "$dir.tmp" || die "dpkg-deb -x '$deb' failed"
        basename "$deb" >"$dir.tmp/.extracted"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
fi

compgen -G "$dir/boot/vmlinuz-*" >/dev/null || die "no boot/vmlinuz-* in '$dir'"
printf '%s\n' "$dir"
