#!/bin/sh
# /init of the mdma check VM (busybox sh), installed by run-vm.sh. Loads the
# VFIO modules and mdma.ko, runs mdma-test, checks unloading with instances
# present and with one open, then scans the kernel log for warnings.
# The last console line is "mdma-vm: RESULT PASS" or "mdma-vm: RESULT FAIL ...".
# shellcheck shell=sh
PATH=/bin:/sbin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
dmesg -n 1

fails=
fail() {
        echo "mdma-vm: FAIL: $*"
        fails="$fails; $*"
}
type_dir=/sys/class/mdev_bus/mdma/mdev_supported_types/mdma-1

echo "mdma-vm: $(uname -r), cmdline: $(cat /proc/cmdline)"
iommus=$(find /sys/class/iommu -mindepth 1 | wc -l)
echo "mdma-vm: IOMMUs in /sys/class/iommu: $iommus"
[ "$iommus" = 0 ] || fail "the guest has an IOMMU; this check is for machines without one"

# /modules/order: what mdma.ko needs, dependencies first (run-vm.sh).
while read -r m; do
        insmod "/modules/$m" || fail "insmod $m"
done </modules/order
insmod /modules/mdma.ko || fail "insmod mdma"

echo "mdma-vm: ---- mdma-test"
/bin/mdma-test -v || fail "mdma-test"

echo "mdma-vm: ---- unload with an instance present"
u=6d646d61-0000-4000-8000-0000000000a1
echo $u >$type_dir/create || fail "create $u"
if rmmod mdma; then
        [ -e /sys/bus/mdev/devices/$u ] && fail "instance $u still there after rmmod"
        echo "mdma-vm: rmmod removed the instance"
else
        fail "rmmod mdma with a closed instance"
fi

echo "mdma-vm: ---- unload while an instance is open"
insmod /modules/mdma.ko || fail "insmod mdma again"
u=6d646d61-0000-4000-8000-0000000000a2
echo $u >$type_dir/create || fail "create $u"
/bin/mdma-test --hold $u 3 &
sleep 1
if rmmod mdma 2>/tmp/rmmod.err; then
        fail "rmmod mdma succeeded while the device was open"
else
        echo "mdma-vm: rmmod refused while open: $(cat /tmp/rmmod.err)"
fi
wait
rmmod mdma || fail "rmmod mdma after close"
[ -e /sys/bus/mdev/devices/$u ] && fail "instance $u still there"

echo "mdma-vm: ---- load/create/remove/unload cycles"
i=0
while [ $i -lt 3 ]; do
        insmod /modules/mdma.ko max_instances=2 || fail "insmod cycle $i"
        echo 6d646d61-0000-4000-8000-0000000000b1 >$type_dir/create || fail "create b1"
        echo 6d646d61-0000-4000-8000-0000000000b2 >$type_dir/create || fail "create b2"
        if echo 6d646d61-0000-4000-8000-0000000000b3 >$type_dir/create 2>/dev/null; then
                fail "third instance created with max_instances=2"
        fi
        echo 1 >/sys/bus/mdev/devices/6d646d61-0000-4000-8000-0000000000b1/remove || fail "remove b1"
        rmmod mdma || fail "rmmod cycle $i"
        i=$((i + 1))
done
# the same in reverse
sed '1!G;h;$!d' /modules/order >/tmp/unload
while read -r m; do
        rmmod "${m%.ko}" || fail "rmmod $m"
done </tmp/unload

echo "mdma-vm: ---- kernel log (mdma, vfio, mdev lines)"
dmesg | grep -iE 'mdma|vfio|mdev' | sed 's/^/mdma-vm: dmesg: /'
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|refcount_t|general protection|list_del corruption|kernel BUG|INFO: task .* blocked')
if [ -n "$bad" ]; then
        echo "$bad" | sed 's/^/mdma-vm: BAD: /'
        fail "kernel warnings in the log"
else
        echo "mdma-vm: kernel log: no warnings, no oops"
fi

if [ -z "$fails" ]; then
        echo "mdma-vm: RESULT PASS"
else
        echo "mdma-vm: RESULT FAIL$fails"
fi
sync
poweroff -f
