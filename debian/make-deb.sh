#!/usr/bin/env bash
# Builds vfiod's Debian packages (vfiod, libvfiod0, libvfiod-dev) from a
# clean copy of the tracked sources, as `dpkg-buildpackage -us -uc -b` does
# on Debian 12, and checks them with lintian. `make deb` and
# `./bootstrap deb` run it; see debian/README.source.
#
#   debian/make-deb.sh --out DIR
#
# DIR/src/vfiod-VERSION is the copy (the files git tracks, as they are in the
# work tree); the .deb, .changes and .buildinfo files end up in DIR, lintian's
# report in DIR/lintian.txt. VERSION is configure.ac's AC_INIT version, the
# one place that says it: debian/changelog is written into the copy from it.
# As root, the build dependencies that are missing are installed with
# `apt-get build-dep`. The test suites are not run (DEB_BUILD_OPTIONS=nocheck
# unless DEB_BUILD_OPTIONS is set): `make check` and the VM suites run them.
# Exits non-zero when the build fails or lintian reports an error or a
# warning that debian/*.lintian-overrides does not name.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=''
say() { printf '%s\n' "make-deb: $*" >&2; }
die() {
        say "$*"
        exit 1
}
while [ $# -gt 0 ]; do
        case $1 in
        --out) out=${2:?} && shift ;;
        *) die "unknown argument '$1' (usage: make-deb.sh --out DIR)" ;;
        esac
        shift
done
[ -n "$out" ] || die "usage: make-deb.sh --out DIR"

version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
[ -n "$version" ] || die "no version in $top/configure.ac's AC_INIT([vfiod], [VERSION], ...)"
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 ||
        die "$top is not a git work tree: the packages are built from the files git tracks"
for tool in dpkg-buildpackage dpkg-checkbuilddeps lintian; do
        command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install dpkg-dev debhelper lintian; ./bootstrap deps installs them)"
done

# --- the copy: the tracked files as they are now, and the changelog ------------
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src/vfiod-$version
rm -rf "$out/src"
mkdir -p "$src"
(cd "$top" && git ls-files -z | tar --null --no-recursion -T - -cf -) | tar -C "$src" -xf - ||
        die "could not copy the tracked files (one deleted but not committed?)"

commit=$(git -C "$top" rev-parse --short=12 HEAD)
dirty=''
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] || dirty=' with changes not committed yet'
maintainer=$(sed -n 's/^Maintainer: *//p' "$src/debian/control")
# The commit's date, so that the same commit builds the same packages.
date=$(LC_ALL=C date -R -d "@$(git -C "$top" log -1 --format=%ct)")
cat >"$src/debian/changelog" <<CHANGELOG
vfiod ($version) unstable; urgency=medium

  * vfiod $version, built from commit $commit$dirty.

 -- $maintainer  $date
CHANGELOG

# --- build dependencies, the build --------------------------------------------
if ! (cd "$src" && dpkg-checkbuilddeps) 2>"$out/builddeps.txt"; then
        [ "$(id -u)" = 0 ] || die "$(cat "$out/builddeps.txt") (run as root to install them)"
        say "installing the build dependencies: $(sed 's/.*Unmet build dependencies: //' "$out/builddeps.txt")"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$src" >"$out/apt.log" 2>&1 ||
                die "apt-get build-dep failed; its log: $out/apt.log"
fi
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck parallel=$(nproc 2>/dev/null || echo 2)}
say "building vfiod $version ($commit$dirty) in $src (DEB_BUILD_OPTIONS='$DEB_BUILD_OPTIONS'); log: $out/build.log"
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 || {
        tail -n 30 "$out/build.log" >&2
        die "dpkg-buildpackage failed; its log: $out/build.log"
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out/"
say "built in $(($(date +%s) - start)) s: $(cd "$out" && echo *.deb)"

# --- lintian -----------------------------------------------------------------------
changes=$(echo "$out"/vfiod_"$version"_*.changes)
rc=0
# (As root, lintian first says it would rather not be: that is no finding.)
lintian --fail-on error,warning "$changes" 2>&1 |
        grep -v '^running with root privileges is not recommended!$' >"$out/lintian.txt" || true
rc=${PIPESTATUS[0]}
if [ -s "$out/lintian.txt" ]; then
        sed 's/^/lintian: /' "$out/lintian.txt" >&2
fi
[ "$rc" = 0 ] || die "lintian reports errors or warnings (above; debian/README.source names the accepted ones)"
say "lintian: no errors, no warnings ($out/lintian.txt)"
