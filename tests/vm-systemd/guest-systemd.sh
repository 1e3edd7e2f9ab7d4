#!/usr/bin/env bash
# The systemd VM suite's driver, run inside the guest by vfiod-test.service
# (root, after multi-user.target) with systemd as PID 1 and the project
# installed by its packages. One result line per check on the results port
# (/dev/ttyS1): "@vfiod result PASS|FAIL NAME: DETAIL", then "@vfiod done";
# then it powers the guest off.
set -euo pipefail

out=/dev/ttyS1
[ -w "$out" ] || out=/dev/stderr
sock=/run/vfiod/vfiod.sock
conf=/etc/vfiod/vfiod.conf

report() { # PASS|FAIL NAME DETAIL
        printf '@vfiod result %s %s: %s\n' "$1" "$2" "$3" >"$out"
        printf '%s %s: %s\n' "$1" "$2" "$3" >&2
}
check() { # NAME DETAIL COMMAND...
        local name=$1 detail=$2
        shift 2
        if "$@"; then report PASS "$name" "$detail"; else report FAIL "$name" "$detail"; fi
}
completed=0
finish() {
        [ "$completed" = 1 ] || report FAIL driver "guest-systemd.sh stopped before its last check (see the console)"
        journalctl -u vfiod.service --no-pager -o cat 2>&1 | tail -n 80 | sed 's/^/@vfiod say journal: /' >"$out" || true
        printf '@vfiod done\n' >"$out"
        sync
        systemctl --no-block poweroff
}
trap finish EXIT

# --- the VFIO modules and the edu devices (as tests/vm/guest-init.sh) -----------
while read -r ko; do
        insmod "/vfiod/modules.d/$ko"
done </vfiod/modules
edus=()
for dev in /sys/bus/pci/devices/*; do
        if [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ]; then
                echo vfio-pci >"$dev/driver_override"
                echo "${dev##*/}" >/sys/bus/pci/drivers_probe
                edus+=("${dev##*/}")
        fi
done
if [ "${#edus[@]}" -lt 3 ] || [ ! -e /dev/vfio/vfio ]; then
        report FAIL setup "${#edus[@]} edu device(s), /dev/vfio: $(echo /dev/vfio/*)"
        exit 1
fi
printf '@vfiod say boot: the suite started %ss after the kernel (%s)\n' "$(cut -d' ' -f1 /proc/uptime)" \
        "$(systemd-analyze 2>/dev/null | head -n 1 || true)" >"$out"
report PASS setup "${#edus[@]} edu devices bound to vfio-pci; systemd $(systemctl --version | head -n 1 | cut -d' ' -f2) as PID 1"

# --- the packages, installed as an administrator does (guest-deb.sh) ---------------
# shellcheck source=guest-deb.sh
. /vfiod/bin/guest-deb.sh
deb_install

# --- what the kernel does with a dead mapper's Type1 mapping (edu 2, before vfiod) --
while read -r line; do
        case $line in
        PASS\ *) report PASS "${line#PASS }" "" ;;
        FAIL\ *) report FAIL "${line#FAIL }" "" ;;
        INFO\ *) printf '@vfiod say %s\n' "${line#INFO }" >"$out" ;;
        esac
done < <(/vfiod/bin/sd-probe "${edus[2]}" 2>&1 || true)

# --- the configuration: alice may have edu 0 (brokered) and edu 2 (direct); edu 1
# only after the reload
mkdir -p /etc/vfiod
cat >"$conf" <<CONF
[Device edu-0]
Match=${edus[0]}
Users=alice
Modes=brokered

[Device edu-2]
Match=${edus[2]}
Users=alice
Modes=direct
CONF

state() { systemctl show -P ActiveState "$1"; }
fdstore() { systemctl show -P NFileDescriptorStore vfiod.service; }
status_has() { systemctl status vfiod.service --no-pager 2>&1 | grep -q "$1"; }
wait_active() { # UNIT
        for _ in $(seq 100); do
                [ "$(state "$1")" = active ] && return 0
                sleep 0.2
        done
        return 1
}

# --- socket activation ------------------------------------------------------------
systemctl start vfiod.socket
check socket/listening "vfiod.socket active, $sock is a socket, vfiod.service not started" \
        test "$(state vfiod.socket)" = active -a -S "$sock" -a "$(state vfiod.service)" = inactive
check socket/mode "$(stat -c '%a %U:%G' "$sock") (0660 root:vfiod-users)" \
        test "$(stat -c '%a %U:%G' "$sock")" = "660 root:vfiod-users"
check socket/refused "eve (not in vfiod-users) cannot connect" \
        bash -c "! setpriv --reuid=eve --regid=eve --init-groups /vfiod/bin/sd-client ${edus[0]} </dev/null >/dev/null 2>&1"
check socket/still_inactive "a refused connect starts nothing" test "$(state vfiod.service)" = inactive

# alice's client holds its lease through all that follows (a coprocess).
coproc CLIENT { exec setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[0]}" 2>&1; }
ask() { # COMMAND -> the client's answer in $reply
        reply=
        if [ -n "$1" ]; then printf '%s\n' "$1" >&"${CLIENT[1]}" || return 1; fi
        IFS= read -r -t 30 reply <&"${CLIENT[0]}" || return 1
}
ask "" || true
check activation/first_connect "alice's first connect started vfiod; her client: '$reply'" \
        bash -c "[[ '$reply' == ready* ]] && [ \"\$(systemctl show -P ActiveState vfiod.service)\" = active ]"
user_of() { stat -c %U "/proc/$1"; }
check activation/unprivileged "vfiod runs as $(user_of "$(systemctl show -P MainPID vfiod.service)")" \
        test "$(user_of "$(systemctl show -P MainPID vfiod.service)")" = vfiod
# A second program of hers holds edu 2 in DIRECT mode (its own mapping), through fifos.
mkfifo /run/direct.in /run/direct.out
setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client --direct "${edus[2]}" \
        </run/direct.in >/run/direct.out 2>&1 &
direct_pid=$!
exec {din}>/run/direct.in
exec {dout}</run/direct.out
dask() { # COMMAND -> the direct client's answer in $reply
        reply=
        if [ -n "$1" ]; then printf '%s\n' "$1" >&"$din" || return 1; fi
        IFS= read -r -t 30 reply <&"$dout" || return 1
}
dask "" || true
direct_lease=${reply#ready }
direct_lease=${direct_lease%% *}
check activation/direct "her DIRECT client on edu 2 (container, group, device fds; maps its own memory): '$reply'" \
        bash -c "[[ '$reply' == ready*direct ]]"
check status/lease "systemctl status: '$(systemctl show -P StatusText vfiod.service)'" \
        status_has "2 lease(s), 2 client(s)"
# brokered: state, client-1, container-1, memfd-1-1, group-2, device-2-0, irq-2-0-1-0-INO;
# direct: client-2, container-3, group-4, device-4-0 (leases and domains share one counter)
check fdstore/lease "fd store: $(fdstore) fds (11: the state; brokered: connection, container, memfd, group, device, MSI eventfd; direct: connection, container, group, device)" \
        test "$(fdstore)" = 11
# The journal entry of the lease (-o verbose: a header line, then its fields indented).
lease_entry=$(journalctl -u vfiod.service -o verbose --no-pager |
        awk '/^[A-Z][a-z][a-z] / { e = "" } { e = e $0 "\n" } /MESSAGE=leased device/ { print e; exit }' || true)
lease_fields() {
        local f
        for f in "DEVICE=${edus[0]}" 'IOMMU_GROUP=[0-9]+' 'LEASE=2' 'PEER_UID=1001' 'PEER_PID=[0-9]+' \
                'PEER_UNIT=vfiod-test.service'; do
                grep -qE "^ *$f\$" <<<"$lease_entry" || return 1
        done
}
check journal/fields "the lease's journal entry: $(grep -oE '(DEVICE|IOMMU_GROUP|LEASE|PEER_UID|PEER_PID|PEER_UNIT)=.*' <<<"$lease_entry" | tr '\n' ' ')" \
        lease_fields

# --- restarts while alice holds her lease --------------------------------------------
after_restart() { # HOW
        local how=$1 pid
        pid=$(systemctl show -P MainPID vfiod.service)
        ask dma || reply="no answer"
        check "$how/dma" "the same mapping still serves DMA: '$reply'" bash -c "[[ '$reply' == 'ok dma'* ]]"
        ask ping || reply="no answer"
        check "$how/connection" "her connection still answers: '$reply'" bash -c "[[ '$reply' == 'ok ping'* ]]"
        dask dma || reply="no answer"
        check "$how/direct_dma" "the DIRECT client's own mapping still serves DMA: '$reply'" bash -c "[[ '$reply' == 'ok dma'* ]]"
        dask ping || reply="no answer"
        check "$how/direct_connection" "the DIRECT client's connection still answers: '$reply'" bash -c "[[ '$reply' == 'ok ping'* ]]"
        check "$how/status" "systemctl status: '$(systemctl show -P StatusText vfiod.service)' (pid $pid)" \
                status_has "2 lease(s), 2 client(s)"
        check "$how/fdstore" "fd store: $(fdstore) fds, as before" test "$(fdstore)" = 11
}
old=$(systemctl show -P MainPID vfiod.service)
systemctl restart vfiod.service
wait_active vfiod.service || true
check restart/new_process "a new vfiod ($(systemctl show -P MainPID vfiod.service), was $old)" \
        test "$(systemctl show -P MainPID vfiod.service)" != "$old"
after_restart restart

old=$(systemctl show -P MainPID vfiod.service)
kill -9 "$old" || true
for _ in $(seq 100); do
        pid=$(systemctl show -P MainPID vfiod.service)
        [ "$pid" != 0 ] && [ "$pid" != "$old" ] && [ "$(state vfiod.service)" = active ] && break
        sleep 0.2
done
check kill9/restarted "systemd started vfiod again after SIGKILL ($(systemctl show -P MainPID vfiod.service), was $old)" \
        test "$(systemctl show -P MainPID vfiod.service)" != "$old" -a "$(state vfiod.service)" = active
after_restart kill9

# --- a crash at any step of a save keeps every lease ------------------------------------
# VFIOD_CRASH_AT_SAVE_STEP=N (the manager's environment, for the next vfiod only) makes
# vfiod SIGKILL itself at the Nth step of saving its state; root's vfioctl comes and goes
# (a connect, a Hello, a disconnect: a save each). For N = 1, 2, ... until a vfiod runs
# the workload through: after each crash the next vfiod has both leases, the same mappings
# and connections, and the fd store the same 11 fds.
mkdir -p /run/systemd/system/vfiod.service.d
printf '[Unit]\nStartLimitIntervalSec=0\n' >/run/systemd/system/vfiod.service.d/no-start-limit.conf
systemctl daemon-reload
crash_ok=0 crash_bad=''
for n in $(seq 1 40); do
        systemctl set-environment "VFIOD_CRASH_AT_SAVE_STEP=$n"
        systemctl restart vfiod.service || true
        systemctl unset-environment VFIOD_CRASH_AT_SAVE_STEP
        wait_active vfiod.service || true
        old=$(systemctl show -P MainPID vfiod.service)
        vfioctl leases >/dev/null 2>&1 || true
        crashed=0
        for _ in $(seq 30); do
                [ "$(systemctl show -P MainPID vfiod.service)" != "$old" ] && crashed=1 && break
                sleep 0.1
        done
        [ "$crashed" = 1 ] || break
        for _ in $(seq 100); do
                pid=$(systemctl show -P MainPID vfiod.service)
                [ "$pid" != 0 ] && [ "$pid" != "$old" ] && [ "$(state vfiod.service)" = active ] && break
                sleep 0.2
        done
        bad=''
        ask dma || reply="no answer"
        [[ $reply == 'ok dma'* ]] || bad+=" dma '$reply'"
        ask ping || reply="no answer"
        [[ $reply == 'ok ping'* ]] || bad+=" ping '$reply'"
        dask dma || reply="no answer"
        [[ $reply == 'ok dma'* ]] || bad+=" direct_dma '$reply'"
        status_has "2 lease(s), 2 client(s)" || bad+=" status '$(systemctl show -P StatusText vfiod.service)'"
        [ "$(fdstore)" = 11 ] || bad+=" fdstore $(fdstore)"
        if [ -n "$bad" ]; then crash_bad+=" step $n:$bad;"; else crash_ok=$((crash_ok + 1)); fi
done
rm -f /run/systemd/system/vfiod.service.d/no-start-limit.conf
systemctl daemon-reload
# The vfiod that ran the workload through still has the knob: one without it.
systemctl restart vfiod.service || true
wait_active vfiod.service || true
check crash/every_step "vfiod killed at each step of a save in turn ($crash_ok crash(es) survived, a run through at step ${n}): both leases, their mappings and connections, 11 fds in the store after each${crash_bad:+; lost:$crash_bad}" \
        test -z "$crash_bad" -a "$crash_ok" -ge 5 -a "$crash_ok" = $((n - 1))
check crash/logged "the journal says where it was killed: '$(journalctl -u vfiod.service -o cat --no-pager | grep -m 1 'killing vfiod at this step' || true)'" \
        bash -c "journalctl -u vfiod.service -o cat --no-pager | grep -q 'VFIOD_CRASH_AT_SAVE_STEP=1: killing vfiod at this step of a save'"

# --- reload applies a policy change (a client of its own, on edu 1) ------------------
# edu 1 leaves vfio-pci: the new rule says Managed=yes, so vfiod binds it itself
# (driver_override, drivers_probe: the sysfs files its sandbox leaves writable).
echo "${edus[1]}" >/sys/bus/pci/drivers/vfio-pci/unbind
echo >"/sys/bus/pci/devices/${edus[1]}/driver_override"
edu1() { setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[1]}" </dev/null 2>&1 | head -n 1 || true; }
reply=$(edu1)
check reload/before "edu 1 refused before the reload: '$reply'" bash -c "[[ '$reply' == 'fail acquire: Operation not permitted'* ]]"
cat >>"$conf" <<CONF

[Device edu-1]
Match=${edus[1]}
Users=alice
Modes=brokered
Managed=yes
CONF
check reload/systemctl "systemctl reload vfiod.service" systemctl reload vfiod.service
# ExecReload= only sends SIGHUP: wait until vfiod says it read the file again.
for _ in $(seq 50); do
        journalctl -u vfiod.service -o cat --no-pager | grep -q "Configuration '$conf' reloaded" && break
        sleep 0.2
done
reply=$(edu1)
check reload/after "after the reload edu 1 is granted and serves DMA: '$reply'" bash -c "[[ '$reply' == ready* ]]"
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null || true; }
for _ in $(seq 25); do [ -z "$(driver_of "${edus[1]}")" ] && break; sleep 0.2; done
check sandbox/managed "Managed=yes from inside the sandbox: vfiod bound edu 1 to vfio-pci for the lease and gave it back (driver now: '$(driver_of "${edus[1]}")')" \
        bash -c "journalctl -u vfiod.service -o cat --no-pager | grep -q \"managed: bound '${edus[1]}' to vfio-pci\" && [ -z \"\$(readlink /sys/bus/pci/devices/${edus[1]}/driver)\" ]"

# --- a lease asked back is still asked back after a restart ----------------------------
lease_status() { vfioctl leases 2>/dev/null | awk -v id="$1" '$1 == id { print $NF }'; }
vfioctl revoke "$direct_lease" --reason maintenance >/dev/null 2>&1 || true
before=$(lease_status "$direct_lease")
systemctl restart vfiod.service
wait_active vfiod.service || true
after=$(lease_status "$direct_lease")
check revoke/restart "root's revoke of lease $direct_lease (5 s grace) is pending again after a restart: '$before' -> '$after'" \
        test "$before" = release-requested -a "$after" = release-requested
for _ in $(seq 60); do
        [ -z "$(lease_status "$direct_lease")" ] && break
        sleep 0.25
done
check revoke/ends "her DIRECT client ignores it: revoked once the new grace period is over" \
        test -z "$(lease_status "$direct_lease")"

# --- the end ---------------------------------------------------------------------------
ask release || reply="no answer"
check release "alice releases: '$reply'" bash -c "[[ '$reply' == 'ok release' ]]"
dask release || reply="no answer"
check release/direct "her DIRECT client's release of the revoked lease is refused: '$reply'" bash -c "[[ '$reply' == 'fail release'* ]]"
to_client=${CLIENT[1]}
exec {to_client}>&- {din}>&-
wait "$CLIENT_PID" "$direct_pid" 2>/dev/null || true
for _ in $(seq 50); do status_has "0 lease(s), 0 client(s)" && break; sleep 0.2; done
check status/idle "systemctl status after she left: '$(systemctl show -P StatusText vfiod.service)'" \
        status_has "0 lease(s), 0 client(s)"
check fdstore/idle "fd store after she left: $(fdstore) fd (the state only: the lease's fds were removed)" \
        test "$(fdstore)" = 1

# --- a state that cannot be restored is torn down, never half-used ----------------------
# An fd store too small for a lease (FileDescriptorStoreMax=3: the state, the connection
# and the container fit; the memfd, group, device and eventfd do not; nor, once the store
# is full, the next state, which a save stores before it removes the one before: the
# next vfiod finds a state that names fds the store lacks, or no state at all).
mkdir -p /run/systemd/system/vfiod.service.d
printf '[Service]\nFileDescriptorStoreMax=3\n' >/run/systemd/system/vfiod.service.d/small.conf
systemctl daemon-reload
systemctl restart vfiod.service
wait_active vfiod.service || true
coproc CLIENT { exec setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[0]}" 2>&1; }
ask "" || reply="no answer"
check teardown/lease "a brokered lease with only part of its fds in the store: '$reply'" bash -c "[[ '$reply' == ready* ]]"
systemctl restart vfiod.service
wait_active vfiod.service || true
check teardown/logged "the next vfiod refuses the state: '$(journalctl -u vfiod.service -o cat --no-pager | grep -m 1 'Cannot restore' | cut -c1-120)'" \
        bash -c "journalctl -u vfiod.service -o cat --no-pager | grep -Eq \"Cannot restore the state from the fd store: (.* is not in the fd store|no 'state' in the fd store); releasing everything in it\""
ask ping || reply="no answer"
check teardown/connection "her connection was closed: '$reply'" bash -c "[[ '$reply' == 'fail ping'* ]]"
ask dma || reply="no answer"
check teardown/dma "her mapping no longer serves DMA (container unmapped, device reset): '$reply'" bash -c "[[ '$reply' == 'fail dma'* ]]"
check teardown/status "nothing half-restored: '$(systemctl show -P StatusText vfiod.service)', fd store $(fdstore)" \
        bash -c "systemctl status vfiod.service --no-pager | grep -q '0 lease(s), 0 client(s)' && [ \"\$(systemctl show -P NFileDescriptorStore vfiod.service)\" = 1 ]"
to_client=${CLIENT[1]}
exec {to_client}>&-
wait "$CLIENT_PID" 2>/dev/null || true
reply=$(setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[0]}" </dev/null 2>&1 | head -n 1 || true)
check teardown/reusable "once she has gone, edu 0 is leased again and works: '$reply'" bash -c "[[ '$reply' == ready* ]]"
rm -f /run/systemd/system/vfiod.service.d/small.conf
systemctl daemon-reload
completed=1
# The packages: an upgrade, the purge, a new install (guest-deb.sh).
deb_upgrade_purge_reinstall
