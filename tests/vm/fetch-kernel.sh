#!/usr/bin/env bash
# Fetches Debian's current kernel for the test VM and prints the folder it is
# extracted in (holding boot/vmlinuz-* and lib/modules/*/, or usr/lib/modules/*/
# in a merged-/usr package such as Debian 13's).
#
# Which Debian release: $VFIOD_GUEST_KERNEL, bookworm (Debian 12, 6.1; the
# default) or trixie (Debian 13, 6.12); see kernel-lib.sh for how apt reaches
# a release that is not the machine's own. The package is whatever that
# release's linux-image-amd64 metapackage depends on today (the ABI number
# changes with security updates, so it is never hard-coded). The .deb is
# downloaded with apt-get into $VFIOD_CACHE_DIR/<release> (default
# /var/cache/vfiod-test/<release>), extracted next to it, and reused on later
# runs. For the machine's own release, `apt-get update` runs once (as root)
# when apt knows no such package; a private configuration's lists are
# refreshed when a day old. When the archive cannot be reached but an earlier
# kernel of the release is in the cache, that one is used with a warning.
# The last line on stderr names the release, the package and its version.
#
# Usage: fetch-kernel.sh        (prints the kernel folder on stdout)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

meta=linux-image-amd64

say() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

kl_init || die "see above"
cache=$kl_cache
dir_of_series=$kl_series_dir

# The package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
resolve() {
        kl_apt_cache depends "$meta" 2>/dev/null |
                sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# The newest kernel of the release already extracted in the cache (for
# offline re-runs); for the machine's own release also one extracted in the
# cache's top folder, where kernels were kept before there was a choice.
newest_cached() {
        local d best=
        local -a dirs=("$dir_of_series"/linux-image-*/)
        [ "$kl_private" = 1 ] || dirs=("$cache"/linux-image-*/ "${dirs[@]}")
        for d in "${dirs[@]}"; do
                [ -f "$d.extracted" ] || continue
                best=${d%/}
        done
        [ -n "$best" ] && printf '%s\n' "$best"
}

use_cached() { # WHY
        local old
        old=$(newest_cached) || return 1
        say "warning: $1; using the cached '$(basename "$old")'"
        say "Debian $kl_series: $(basename "$old") (cached)"
        printf '%s\n' "$old"
        exit 0
}

update() {
        if [ "$kl_private" = 1 ]; then
                say "updating the package lists of Debian $kl_series (private apt configuration in $dir_of_series/apt)"
                kl_private_update || say "apt-get update for $kl_series failed"
        elif [ "$(id -u)" = 0 ]; then
                say "apt does not know '$meta': running apt-get update"
                apt-get update -qq >&2 || say "apt-get update failed"
        fi
}

mkdir -p "$dir_of_series" 2>/dev/null ||
        die "cannot create the cache folder '$dir_of_series' (set VFIOD_CACHE_DIR to a writable folder)"
[ -w "$dir_of_series" ] || die "the cache folder '$dir_of_series' is not writable (set VFIOD_CACHE_DIR, or run as root)"
command -v apt-cache >/dev/null || die "apt-cache not found: the guest kernel comes from Debian's archive"

updated=0
if [ "$kl_private" = 1 ] && kl_private_stale; then
        update
        updated=1
fi
pkg=$(resolve)
if [ -z "$pkg" ] && [ "$updated" = 0 ]; then
        update
        updated=1
        pkg=$(resolve)
fi
if [ -z "$pkg" ]; then
        use_cached "cannot resolve '$meta' of Debian $kl_series (apt-cache depends)" ||
                die "cannot resolve '$meta' of Debian $kl_series with 'apt-cache depends' and nothing is cached in '$dir_of_series' (run 'apt-get update' as root, check the network)"
fi

version=$(kl_apt_cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
[ -n "$version" ] || die "apt-cache show '$pkg' gives no version"
# apt-get download names the file <pkg>_<version with ':' as %3a>_<arch>.deb.
name="${pkg}_${version//:/%3a}_amd64.deb"
deb=$dir_of_series/$name
dir=$dir_of_series/$pkg

# Kernels were kept in the cache's top folder before there was a choice of
# release: a link to that .deb saves the download (the old files stay, a run
# of the old harness may be using them).
if [ ! -f "$deb" ] && [ "$kl_private" = 0 ] && [ -f "$cache/$name" ]; then
        ln "$cache/$name" "$deb" 2>/dev/null || cp "$cache/$name" "$deb"
fi

if [ ! -f "$deb" ]; then
        say "downloading $pkg $version (Debian $kl_series) into $dir_of_series"
        if ! (cd "$dir_of_series" && kl_apt_get download -q "$pkg=$version" >&2); then
                use_cached "download of '$pkg' failed" ||
                        die "apt-get download '$pkg=$version' failed (no network? run 'apt-get update' as root)"
        fi
        [ -f "$deb" ] || die "apt-get download did not produce '$deb'"
fi

if [ ! -f "$dir/.extracted" ] || [ "$(cat "$dir/.extracted")" != "$name" ]; then
        say "extracting $name"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        dpkg-deb -x "$deb" "$dir.tmp" || die "dpkg-deb -x '$deb' failed"
        printf '%s\n' "$name" >"$dir.tmp/.extracted"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
fi

compgen -G "$dir/boot/vmlinuz-*" >/dev/null || die "no boot/vmlinuz-* in '$dir'"
say "Debian $kl_series: $pkg $version"
printf '%s\n' "$dir"
