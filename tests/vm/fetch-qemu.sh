#!/usr/bin/env bash
# Fetches Debian bookworm-backports' QEMU 10 (qemu-system-x86) for the
# iommufd boot and prints the folder it is extracted in (holding
# usr/bin/qemu-system-x86_64). Nothing goes into the source tree: the .deb
# is downloaded with apt-get through a private apt configuration (its own
# sources.list naming the machine's Debian mirror with bookworm-backports,
# its own lists, refreshed when a day old) into
# $VFIOD_CACHE_DIR/bookworm-backports (default /var/cache/vfiod-test/...),
# extracted next to it and reused on later runs. Only the binary package is
# taken: its libraries are bookworm's, which the machine has (run-vm.sh
# copies them with it), and the guest's firmware is the machine's SeaBIOS.
#
# Usage: fetch-qemu.sh        (prints the QEMU folder on stdout)
set -euo pipefail

pkg=qemu-system-x86
want=${VFIOD_QEMU_VERSION:-10.0}
cache=${VFIOD_CACHE_DIR:-/var/cache/vfiod-test}
dir=$cache/bookworm-backports
a=$dir/apt

say() { printf 'fetch-qemu: %s\n' "$*" >&2; }
die() {
        say "error: $*"
        exit 1
}

mkdir -p "$a/sources.list.d" "$a/preferences.d" "$a/state/lists/partial" "$a/cache/archives/partial" ||
        die "cannot create '$a' (set VFIOD_CACHE_DIR to a writable folder)"
opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/sources.list.d"
        -o "Dir::Etc::Preferences=$a/preferences" -o "Dir::Etc::PreferencesParts=$a/preferences.d"
        -o "Dir::State=$a/state" -o "Dir::State::Lists=$a/state/lists" -o "Dir::Cache=$a/cache"
        -o "Dir::State::status=/var/lib/dpkg/status")

# The newest extracted QEMU of the wanted version, for offline re-runs.
cached() {
        local d
        for d in "$dir"/qemu-"$want"*/; do
                [ -f "$d.extracted" ] && printf '%s\n' "${d%/}"
        done | tail -n 1
}

if [ ! -s "$a/sources.list" ] || [ -n "$(find "$a/state/lists" -maxdepth 0 -mmin +1440 2>/dev/null)" ] ||
        ! compgen -G "$a/state/lists/*Packages*" >/dev/null; then
        mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
                sed -n 's/^\(http[^ ]*\) bookworm$/\1/p' | head -n 1)
        mirror=${mirror:-http://deb.debian.org/debian/}
        printf 'deb %s bookworm-backports main\n' "$mirror" >"$a/sources.list"
        say "updating the package lists of bookworm-backports ($mirror; private apt configuration in $a)"
        apt-get "${opts[@]}" update -qq >&2 || say "apt-get update for bookworm-backports failed"
        touch "$a/state/lists"
fi

version=$(apt-cache "${opts[@]}" show "$pkg" 2>/dev/null | sed -n 's/^Version: //p' |
        grep -F ":$want" | grep bpo | head -n 1 || true)
if [ -z "$version" ]; then
        old=$(cached)
        [ -n "$old" ] || die "no $pkg $want in bookworm-backports (apt-cache show) and none cached in '$dir'"
        say "warning: cannot resolve $pkg $want; using the cached '$(basename "$old")'"
        printf '%s\n' "$old"
        exit 0
fi
name="${pkg}_${version//:/%3a}_amd64.deb"
out=$dir/qemu-${version#*:}
if [ ! -f "$dir/$name" ]; then
        say "downloading $pkg $version (bookworm-backports) into $dir"
        (cd "$dir" && apt-get "${opts[@]}" download -q "$pkg=$version" >&2) ||
                die "apt-get download '$pkg=$version' failed"
fi
if [ ! -f "$out/.extracted" ]; then
        rm -rf "$out.tmp"
        mkdir -p "$out.tmp"
        dpkg-deb -x "$dir/$name" "$out.tmp" || die "dpkg-deb -x '$name' failed"
        printf '%s\n' "$name" >"$out.tmp/.extracted"
        rm -rf "$out"
        mv "$out.tmp" "$out"
fi
[ -x "$out/usr/bin/qemu-system-x86_64" ] || die "no usr/bin/qemu-system-x86_64 in '$out'"
say "bookworm-backports: $pkg $version"
printf '%s\n' "$out"
