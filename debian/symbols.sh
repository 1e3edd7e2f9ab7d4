#!/bin/sh
# debian/libvfiod0.symbols follows client-lib/libvfiod.sym, the list of the
# names libvfiod exports:
#
#   debian/symbols.sh [check]  fails, saying what differs, unless the symbols
#                              file lists exactly the names of libvfiod.sym
#   debian/symbols.sh update   writes the symbols file from libvfiod.sym: a
#                              name keeps the version it has there; a new one
#                              gets the version of configure.ac's AC_INIT
#
# debian/rules and `make check` run the check.
set -eu
cd "$(dirname "$0")/.."

sym=client-lib/libvfiod.sym
out=debian/libvfiod0.symbols
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "name node" for each exported name of the version script, in its order.
awk '/^[A-Za-z0-9_.]+ *\{/ { node = $1 }
     /^[ \t]*vfiod_[a-z0-9_]*;[ \t]*$/ { sub(/^[ \t]*/, ""); sub(/;.*/, ""); print $0, node }' \
        "$sym" >"$tmp/listed"
[ -s "$tmp/listed" ] || { echo "symbols.sh: no names in $sym" >&2; exit 1; }

case ${1:-check} in
check)
        sed -n 's/^ \([^@ ]*@[^ ]*\) .*/\1/p' "$out" | sort >"$tmp/have"
        awk '{ print $1 "@" $2; print $2 "@" $2 }' "$tmp/listed" | sort -u >"$tmp/want"
        if ! cmp -s "$tmp/have" "$tmp/want"; then
                echo "symbols.sh: $out (<) and $sym (>) differ; run debian/symbols.sh update:" >&2
                diff "$tmp/have" "$tmp/want" >&2 || true
                exit 1
        fi
        echo "symbols.sh: $out lists the $(wc -l <"$tmp/listed") names of $sym"
        ;;
update)
        version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' configure.ac)
        [ -n "$version" ] || { echo "symbols.sh: no version in configure.ac's AC_INIT" >&2; exit 1; }
        {
                echo "libvfiod.so.0 libvfiod0 #MINVER#"
                echo "* Build-Depends-Package: libvfiod-dev"
                while read -r name node; do
                        since=$(sed -n "s/^ $name@$node \\(.*\\)/\\1/p" "$out" 2>/dev/null || true)
                        echo " $name@$node ${since:-$version}"
                done <"$tmp/listed"
                # The version node itself, as dpkg-gensymbols sees it.
                awk '{ print $2 }' "$tmp/listed" | sort -u | while read -r node; do
                        since=$(sed -n "s/^ $node@$node \\(.*\\)/\\1/p" "$out" 2>/dev/null || true)
                        echo " $node@$node ${since:-$version}"
                done
        } >"$tmp/new"
        mv "$tmp/new" "$out"
        echo "symbols.sh: wrote $out"
        ;;
*)
        echo "usage: debian/symbols.sh [check|update]" >&2
        exit 2
        ;;
esac
