#!/usr/bin/env bash
# Fetches Debian packages of programs the guest runs unmodified (QEMU, DPDK)
# and prints the folder they are all extracted in, as fetch-kernel.sh does for
# the kernel: apt of the guest kernel's release (kernel-lib.sh: the machine's
# own apt for its own release, a private configuration for another), the .deb
# files downloaded into $VFIOD_CACHE_DIR/<release>/debs/, extracted with
# dpkg-deb -x into $VFIOD_CACHE_DIR/<release>/programs-<key>/, nothing in the
# source tree. <key> is a hash of the packages and versions extracted there,
# so a re-run with the same versions reuses the folder and a security update
# makes a new one.
#
# Each PACKAGE named is extracted; so is each library package it depends on
# (Depends, recursively; lib* packages, not -dev ones) that this machine has
# not installed: run-vm.sh takes the others from the machine, as it does for
# the project's own programs (ldd).
#
# Usage: fetch-debs.sh PACKAGE...      (prints the folder on stdout)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

say() { printf 'fetch-debs: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

[ $# -gt 0 ] || die "usage: fetch-debs.sh PACKAGE..."
kl_init || die "see above"
debs=$kl_series_dir/debs
mkdir -p "$debs" 2>/dev/null ||
        die "cannot create the cache folder '$debs' (set VFIOD_CACHE_DIR to a writable folder)"
[ -w "$debs" ] || die "the cache folder '$debs' is not writable (set VFIOD_CACHE_DIR, or run as root)"

# "NAME VERSION" of each package named.
versions_of() {
        kl_apt_cache show --no-all-versions "$@" 2>/dev/null |
                awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }'
}

# Of the packages named, those installed on this machine (none for another
# release: its libraries all come from its archive).
installed_of() {
        [ "$kl_private" = 0 ] || return 0
        dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
                awk '$2 == "install" && $4 == "installed" { print $1 }'
}

# The first alternative of each Depends of the packages named (a virtual
# package, <name>, is left out).
depends_of() {
        kl_apt_cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                --no-replaces --no-enhances "$@" 2>/dev/null |
                awk '/^[^ ]/ { alt = 0; next }
                        /^ *\|?Depends: / { if (alt) { alt = ($1 == "|Depends:"); next }
                        alt = ($1 == "|Depends:"); n = $2; sub(/:any$/, "", n)
                        if (n !~ /^</) print n }' | LC_ALL=C sort -u
}

if [ -z "$(versions_of "$1")" ] && [ "$kl_private" = 1 ] && kl_private_stale; then
        kl_private_update || say "apt-get update for $kl_series failed"
fi

# The library packages they depend on, one level at a time (one apt-cache
# call each: a call per package takes minutes).
declare -A want=()
frontier=("$@")
for p in "$@"; do want[$p]=1; done
while [ ${#frontier[@]} -gt 0 ]; do
        next=()
        for d in $(depends_of "${frontier[@]}"); do
                [ -n "${want[$d]:-}" ] && continue
                case $d in lib*-dev | lib*-dev-* | lib*-dbg) continue ;; lib*) ;; *) continue ;; esac
                next+=("$d")
        done
        frontier=()
        [ ${#next[@]} -gt 0 ] || break
        declare -A have=()
        for d in $(installed_of "${next[@]}"); do have[$d]=1; done
        for d in "${next[@]}"; do
                [ -n "${have[$d]:-}" ] && continue
                want[$d]=1
                frontier+=("$d")
        done
        unset have
done

mapfile -t names < <(printf '%s\n' "${!want[@]}" | LC_ALL=C sort)
list=$(versions_of "${names[@]}" | LC_ALL=C sort -u | tr ' ' '=')
list=${list:+$list$'\n'}
for p in "${names[@]}"; do
        grep -q "^$p=" <<<"$list" ||
                die "apt knows no package '$p' of Debian $kl_series (apt-cache show; run 'apt-get update' as root)"
done
key=$(printf '%s' "$list" | sha256sum | cut -c1-12)
dir=$kl_series_dir/programs-$key
if [ -f "$dir/.extracted" ]; then
        say "Debian $kl_series: $(printf '%s' "$list" | grep -c .) package(s) cached in $dir"
        printf '%s\n' "$dir"
        exit 0
fi

# apt-get download names a file <pkg>_<version with ':' as %3a>_<arch>.deb.
deb_of() { compgen -G "$debs/${1}_${2//:/%3a}_*.deb" | head -n 1; }
missing=()
while IFS='=' read -r p v; do
        [ -n "$p" ] && [ -z "$(deb_of "$p" "$v")" ] && missing+=("$p=$v")
done <<<"$list"
if [ ${#missing[@]} -gt 0 ]; then
        # One apt-get call for all of them (one each takes a minute for 85).
        say "downloading ${#missing[@]} package(s) of Debian $kl_series into $debs"
        (cd "$debs" && kl_apt_get download -q "${missing[@]}" >&2) ||
                die "apt-get download failed (no network? run 'apt-get update' as root)"
fi
files=()
while IFS='=' read -r p v; do
        [ -n "$p" ] || continue
        f=$(deb_of "$p" "$v")
        [ -n "$f" ] || die "apt-get download did not produce ${p}_${v}_*.deb in '$debs'"
        files+=("$f")
done <<<"$list"

say "extracting ${#files[@]} package(s) into $dir"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
for f in "${files[@]}"; do
        dpkg-deb -x "$f" "$dir.tmp" || die "dpkg-deb -x '$f' failed"
done
printf '%s' "$list" >"$dir.tmp/.extracted"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
say "Debian $kl_series: $(printf '%s' "$list" | tr '\n' ' ')"
printf '%s\n' "$dir"
