#!/bin/sh
# /init of the test VM (busybox sh: the guest has no bash). Installed by
# run-vm.sh, which also writes:
#   /vfiod/config     shell variables: VFIOD_BIND (1: bind the edu devices to
#                     vfio-pci), VFIOD_EDUS (edu devices expected; 0: none),
#                     VFIOD_MDEVS ("PARENT/TYPE:N": mdev instances to create,
#                     their UUIDs then listed in /run/vfiod-mdevs),
#                     VFIOD_SETUP (a command run before the tests),
#                     VFIOD_USERS ("name:uid ...", users in /etc/passwd whose
#                     home folder is made here)
#   /vfiod/modules    the modules to insmod, in order (files in /vfiod/modules.d),
#                     one per line, each followed by its parameters
#   /vfiod/tests      one test per line: NAME<TAB>COMMAND
#
# Results go to the second serial port (/dev/ttyS1), one line each, so kernel
# messages on the console can never cut into them:
#   @vfiod setup ok|fail <what>
#   @vfiod begin <name>
#   @vfiod tap <name> <a TAP line>      (check suites, see below)
#   @vfiod say <name> <a line>          (a transcript for the host's terminal)
#   @vfiod end <name> <exit status>
#   @vfiod done
# A test's command gets CK_TAP_LOG_FILE_NAME pointing to a fresh file: a check
# suite writes one TAP line per test there, which is forwarded; the host then
# counts each test. A command that writes no TAP counts as one test (its exit
# status). It also gets VFIOD_SAY, another fresh file: each line written there
# is shown on the host's terminal (the demo's transcript). Everything the
# commands print goes to the console (ttyS0).
# shellcheck shell=sh

PATH=/vfiod/bin:/bin:/sbin:/usr/bin:/usr/sbin
export PATH HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# Not /tmp: the initramfs is in memory already, and a build folder under /tmp
# has its libraries there (copied by run-vm.sh to the paths ldd found).
mount -t tmpfs tmpfs /run
ln -s /proc/self/fd /dev/fd 2>/dev/null

stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1
report() { echo "@vfiod $*" >&3; }

finish() {
        report "done"
        exec 3>&-
        sync
        poweroff -f
        # Not reached; if it were, the kernel's panic ends QEMU (-no-reboot).
        exit 1
}

VFIOD_BIND=1
VFIOD_EDUS=1
VFIOD_MDEVS=
VFIOD_SETUP=
VFIOD_USERS=
# shellcheck disable=SC1091
[ -f /vfiod/config ] && . /vfiod/config

for u in $VFIOD_USERS; do
        mkdir -p "/home/${u%%:*}"
        chown "${u#*:}:${u#*:}" "/home/${u%%:*}"
done

echo "vfiod-vm: $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu(s)"

# Modules, in the order given.
failed=
while read -r mod args; do
        [ -n "$mod" ] || continue
        # shellcheck disable=SC2086 # one word per module parameter
        if ! insmod "/vfiod/modules.d/$mod" $args; then
                failed="$failed $mod"
        fi
done </vfiod/modules
if [ -n "$failed" ]; then
        report setup fail "insmod:$failed"
        finish
fi

# Each edu device (1234:11e8) to vfio-pci.
edus=0
bound=0
for dev in /sys/bus/pci/devices/*; do
        if [ "$(cat "$dev/vendor")" != 0x1234 ] || [ "$(cat "$dev/device")" != 0x11e8 ]; then
                continue
        fi
        edus=$((edus + 1))
        [ "$VFIOD_BIND" = 1 ] || continue
        bdf=${dev##*/}
        echo vfio-pci >"$dev/driver_override"
        echo "$bdf" >/sys/bus/pci/drivers_probe
        drv=$(readlink "$dev/driver")
        if [ "${drv##*/}" = vfio-pci ]; then
                bound=$((bound + 1))
                echo "vfiod-vm: $bdf bound to vfio-pci, iommu group $(basename "$(readlink "$dev/iommu_group")")"
        else
                echo "vfiod-vm: $bdf: binding to vfio-pci failed"
        fi
done
if [ "$edus" = 0 ] && [ "$VFIOD_EDUS" != 0 ]; then
        report setup fail "no edu device found"
        finish
fi
if [ "$VFIOD_BIND" = 1 ] && [ "$bound" != "$edus" ]; then
        report setup fail "bound $bound of $edus edu devices to vfio-pci"
        finish
fi

# Mediated devices: N instances of PARENT/TYPE with fixed UUIDs
# (76666d64-0000-4000-8000-00000000000N, in order), listed in /run/vfiod-mdevs.
made=0
: >/run/vfiod-mdevs
if [ -n "$VFIOD_MDEVS" ]; then
        type_dir=/sys/class/mdev_bus/${VFIOD_MDEVS%%/*}/mdev_supported_types/${VFIOD_MDEVS#*/}
        type_dir=${type_dir%:*}
        want=${VFIOD_MDEVS##*:}
        while [ "$made" -lt "$want" ]; do
                uuid=$(printf '76666d64-0000-4000-8000-%012x' $((made + 1)))
                if ! echo "$uuid" >"$type_dir/create"; then
                        report setup fail "cannot create mdev $uuid in $type_dir"
                        finish
                fi
                echo "$uuid" >>/run/vfiod-mdevs
                made=$((made + 1))
                echo "vfiod-vm: mdev $uuid, iommu group $(basename "$(readlink "/sys/bus/mdev/devices/$uuid/iommu_group")")"
        done
fi

if [ -n "$VFIOD_SETUP" ] && ! sh -c "$VFIOD_SETUP" </dev/null; then
        report setup fail "setup command failed"
        finish
fi
if [ -n "$VFIOD_MDEVS" ]; then
        report setup ok "modules loaded, $edus edu device(s), $bound bound to vfio-pci, $made mdev(s) of ${VFIOD_MDEVS%:*}"
else
        report setup ok "modules loaded, $edus edu device(s), $bound bound to vfio-pci"
fi

tab=$(printf '\t')
n=0
while IFS="$tab" read -r name cmd; do
        [ -n "$name" ] || continue
        n=$((n + 1))
        tap=/tmp/vfiod-tap.$n
        say=/tmp/vfiod-say.$n
        : >"$tap"
        : >"$say"
        chmod 0666 "$tap" "$say" # a test may run its program as an unprivileged user
        report begin "$name"
        echo "vfiod-vm: ---- $name: $cmd"
        (cd /tmp && CK_TAP_LOG_FILE_NAME=$tap CK_VERBOSITY=verbose \
                CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} VFIOD_SAY=$say \
                exec sh -c "$cmd") </dev/null
        rc=$?
        echo "vfiod-vm: ---- $name: exit status $rc"
        while IFS= read -r line; do
                report tap "$name" "$line"
        done <"$tap"
        while IFS= read -r line; do
                report say "$name" "$line"
        done <"$say"
        report end "$name" "$rc"
done </vfiod/tests

finish
