#!/bin/sh
# SPDX-License-Identifier: MIT
#
# libvfiod.so must export exactly the calls vfiod.h declares: the names
# listed in libvfiod.sym, no more (in particular none of the protobuf-c
# code's vfiod__* symbols or the transport's vfiod_msg_* ones, which also
# start with "vfiod_"), no less, and every one of them declared in vfiod.h.
# Run by `make check` from the build folder; $srcdir is set by automake.
set -eu

lib=client-lib/.libs/libvfiod.so
sym="${srcdir:-.}/client-lib/libvfiod.sym"
hdr="${srcdir:-.}/client-lib/vfiod.h"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! test -f "$lib"; then
        echo "check-exports: $lib not built" >&2
        exit 1
fi

# Defined dynamic symbols, without the version node (type A) and @VERSION.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u >"$tmp/exported"
sed -n 's/^[[:space:]]*\(vfiod_[a-z0-9_]*\);[[:space:]]*$/\1/p' "$sym" | sort -u >"$tmp/listed"
# Function declarations of the public header: a line starting with a type
# and naming vfiod_something( .
grep -E '^[a-z].*[ *]vfiod_[a-z0-9_]+\(' "$hdr" |
        sed -E 's/.*[ *](vfiod_[a-z0-9_]+)\(.*/\1/' | sort -u >"$tmp/declared"

status=0
if ! test -s "$tmp/exported"; then
        echo "check-exports: $lib exports nothing" >&2
        exit 1
fi
if ! cmp -s "$tmp/exported" "$tmp/listed"; then
        echo "check-exports: exported (<) and listed in libvfiod.sym (>) differ:" >&2
        diff "$tmp/exported" "$tmp/listed" >&2 || true
        status=1
fi
if ! cmp -s "$tmp/listed" "$tmp/declared"; then
        echo "check-exports: listed in libvfiod.sym (<) and declared in vfiod.h (>) differ:" >&2
        diff "$tmp/listed" "$tmp/declared" >&2 || true
        status=1
fi
if grep -v -E '^vfiod_[a-z][a-z0-9_]*$' "$tmp/exported" >"$tmp/bad" ||
        grep -E '^vfiod_(_|msg_|envelope_|proto_)' "$tmp/exported" >>"$tmp/bad"; then
        echo "check-exports: internal symbols exported:" >&2
        cat "$tmp/bad" >&2
        status=1
fi
test $status -ne 0 || echo "check-exports: $(wc -l <"$tmp/exported") symbols, all public"

# libvfiod-preload.so exports the open family it interposes, as preload.sym
# lists it, and nothing else.
preload=client-lib/.libs/libvfiod-preload.so
preload_sym="${srcdir:-.}/client-lib/preload.sym"
if ! test -f "$preload"; then
        echo "check-exports: $preload not built" >&2
        exit 1
fi
nm -D --defined-only "$preload" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u >"$tmp/preload-exported"
sed -n 's/^[[:space:]]*\([a-z0-9_]*\);[[:space:]]*$/\1/p' "$preload_sym" | sort -u >"$tmp/preload-listed"
printf '%s\n' open open64 openat openat64 __open_2 __open64_2 __openat_2 __openat64_2 |
        sort -u >"$tmp/preload-interposed"
if ! cmp -s "$tmp/preload-exported" "$tmp/preload-interposed" ||
        ! cmp -s "$tmp/preload-listed" "$tmp/preload-interposed"; then
        echo "check-exports: $preload exports (<) other than the open family (>):" >&2
        diff "$tmp/preload-exported" "$tmp/preload-interposed" >&2 || true
        diff "$tmp/preload-listed" "$tmp/preload-interposed" >&2 || true
        status=1
fi
test $status -ne 0 || echo "check-exports: $preload exports the open family only"
exit $status
