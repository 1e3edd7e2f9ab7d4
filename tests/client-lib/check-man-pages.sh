#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Every page of the project that the man pages cite, as NAME(N) or as a
# function NAME() of libvfiod, must be found by `man -w` once installed:
# installs the man pages (install-man install-man3-links) into a scratch
# DESTDIR and asks man(1) for each one. Pages of other projects
# (memfd_create(2), systemd(1), ...) are not checked. Run by `make check`
# from the build folder; $srcdir is set by automake.
set -eu

src="${srcdir:-.}"
if ! command -v man >/dev/null 2>&1; then
        echo "check-man-pages: man(1) not found: skipped"
        exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A make of its own, outside the one that runs the tests.
unset MAKEFLAGS MFLAGS MAKELEVEL
if ! ${MAKE:-make} -s install-man install-man3-links DESTDIR="$tmp" >"$tmp/install.log" 2>&1; then
        echo "check-man-pages: installing the man pages failed:" >&2
        cat "$tmp/install.log" >&2
        exit 1
fi
manpath=$(find "$tmp" -type d -name man3 | head -n 1)
manpath=${manpath%/man3}
if test -z "$manpath"; then
        echo "check-man-pages: no man3 folder installed under $tmp" >&2
        exit 1
fi

# NAME SECTION of every citation: ".BR name (N)", "\fBname\fR(N)", and, for
# libvfiod's functions, ".BR name ()" (section 3).
for f in "$src"/man/*.[13578]; do
        sed -n -e 's/^\.BR* \([A-Za-z0-9_.-]*\) (\([1-8]\)).*/\1 \2/p' "$f"
        grep -o '\\fB[A-Za-z0-9_.-]*\\f[RP](\([1-8]\))' "$f" |
                sed 's/\\fB\([A-Za-z0-9_.-]*\)\\f[RP](\([1-8]\))/\1 \2/'
        sed -n -e 's/^\.BR* \(vfiod_[a-z0-9_]*\) ().*/\1 3/p' "$f"
done | sort -u >"$tmp/cited"

status=0
n=0
while read -r name section; do
        case $name in
        vfio* | libvfiod*) ;;
        *) continue ;;
        esac
        n=$((n + 1))
        if ! man -M "$manpath" -w "$section" "$name" >/dev/null 2>&1; then
                echo "check-man-pages: $name($section) is cited but no page is installed for it" >&2
                status=1
        fi
done <"$tmp/cited"
test $status -ne 0 || echo "check-man-pages: $n cited pages of vfiod, all installed"
exit $status
