#!/bin/sh
# Starts vfiod in the test VM, as root, for the broker's end-to-end suite
# (guest-broker) and the demo: run-vm.sh's --setup runs it after the edu
# devices are bound to vfio-pci (busybox sh: the guest has no bash).
#
# It writes /etc/vfiod/vfiod.conf for the three edu devices, in address
# order (with the argument "mdev": the first three mdma instances, by UUID), and the users alice and bob (made by run-vm.sh --user):
#   edu 0 and edu 1: alice and bob, both modes;
#   edu 2:           alice only, brokered mode only;
#   [Daemon]:        MaxPinnedBytesPerClient=1M (the suite's EDQUOT case).
# Anyone else (eve) may have nothing. Then it checks the file, starts
# `vfiod --debug` (log in /tmp/vfiod.log, readable by the demo's user, pid in
# /run/vfiod.pid) and waits for its socket.
#
# With the argument "start" it only checks and starts vfiod on the policy
# already written (launchers-setup.sh writes its own).
# shellcheck shell=sh
set -eu

conf=/etc/vfiod/vfiod.conf
log=/tmp/vfiod.log
sock=/run/vfiod/vfiod.sock

start_vfiod() {
        vfiod --check-config "$conf"
        : >"$log"
        chmod 0644 "$log"
        vfiod --config "$conf" --debug 2>>"$log" </dev/null &
        echo $! >/run/vfiod.pid
        i=0
        while [ ! -S "$sock" ]; do
                i=$((i + 1))
                if [ $i -gt 100 ] || ! kill -0 "$(cat /run/vfiod.pid)" 2>/dev/null; then
                        echo "broker-setup: vfiod did not come up; its log:" >&2
                        cat "$log" >&2
                        exit 1
                fi
                sleep 0.1
        done
}

if [ "${1:-}" = start ]; then
        start_vfiod
        echo "broker-setup: vfiod running (pid $(cat /run/vfiod.pid)) on $conf"
        exit 0
fi

# "mdev" as the argument: the same policy for the first three mdma instances
# (by UUID, in UUID order) instead of the edu devices (check-vm-mdev).
kind=${1:-edu}
edus=
if [ "$kind" = mdev ]; then
        for dev in /sys/bus/mdev/devices/*; do
                [ -e "$dev" ] || continue
                t=$(readlink "$dev/mdev_type")
                [ "${t##*/}" = mdma-1 ] && edus="$edus ${dev##*/}"
        done
else
        for dev in /sys/bus/pci/devices/*; do
                if [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ]; then
                        edus="$edus ${dev##*/}"
                fi
        done
fi
# shellcheck disable=SC2086 # one word per address
set -- $edus
if [ $# -lt 3 ]; then
        echo "broker-setup: $# $kind device(s), need 3" >&2
        exit 1
fi

mkdir -p /etc/vfiod
cat >"$conf" <<EOF
[Daemon]
MaxPinnedBytesPerClient=1M
ReleaseGraceMs=5000

[Device edu-0]
Match=$1
Users=alice bob

[Device edu-1]
Match=$2
Users=alice bob

[Device edu-2]
Match=$3
Users=alice
Modes=brokered
EOF
start_vfiod
echo "broker-setup: vfiod running (pid $(cat /run/vfiod.pid)), $kind devices:$edus"
