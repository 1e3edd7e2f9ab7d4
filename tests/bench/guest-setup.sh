#!/bin/sh
# Guest set-up of `make bench` (run by tests/vm/guest-init.sh as root before
# the tests): a policy giving the user "bench" every edu device in both
# modes (and the admin requests, for Stats as the no-op request), the first edu's group node chowned to "bench" (so the raw side of
# the benchmark can open it, as a launcher handed the node would), vfiod
# started as root on the default socket. The device is written to
# /tmp/bench-device for the benchmark command.
set -e
conf=/tmp/vfiod-bench.conf
first=
match=
for dev in /sys/bus/pci/devices/*; do
        [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ] || continue
        bdf=${dev##*/}
        [ -n "$first" ] || first=$bdf
        match="$match $bdf"
done
[ -n "$first" ] || { echo "bench setup: no edu device" >&2; exit 1; }
group=$(basename "$(readlink "/sys/bus/pci/devices/$first/iommu_group")")
chown bench:bench "/dev/vfio/$group"
printf '[Daemon]\nAdminUsers=bench\nMaxMappingsPerClient=4096\nMaxPinnedBytesPerClient=1G\n\n[Device edu]\nMatch=%s\nUsers=bench\nModes=direct brokered\n' \
        "$match" >"$conf"
echo "$first" >/tmp/bench-device
vfiod --config "$conf" 2>/tmp/vfiod.log &
i=0
until [ -S /run/vfiod/vfiod.sock ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "bench setup: vfiod did not start" >&2; cat /tmp/vfiod.log >&2; exit 1; }
        sleep 0.1
done
echo "bench setup: vfiod running, device $first (group $group)"
