# shellcheck shell=bash disable=SC2154,SC2034 # edus, conf, sock, completed: guest-systemd.sh's
# The Debian packages' life in the systemd VM suite, sourced by
# guest-systemd.sh (it defines check, report, ask, state and the edus; see
# README.md): deb_install installs the packages from /vfiod/debs as an
# administrator does, before the suite; deb_upgrade_purge_reinstall upgrades
# vfiod while alice holds a lease, purges the packages and checks that only
# what Debian keeps is left, and installs them again.

debs=(/vfiod/debs/*.deb)
deb_packages=(vfiod libvfiod0 libvfiod-dev)
apt_quiet() { # apt-get ARGS... -> what dpkg did in $apt_out ("Setting up ...; ..."), its status returned
        local rc=0 log
        log=$(DEBIAN_FRONTEND=noninteractive apt-get -y --no-install-recommends "$@" </dev/null 2>&1) || rc=$?
        apt_out=$(grep -E '^(Setting up|Removing|Purging configuration files for) ' <<<"$log" | sed 's/ \.\.\..*$//' | paste -sd';' || true)
        [ "$rc" = 0 ] || apt_out="apt-get exited with $rc: $(tail -n 3 <<<"$log" | paste -sd' ')"
        return "$rc"
}
installed() { # PACKAGE...: all of them installed
        local p
        for p; do
                [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1
        done
}
purged() { # PACKAGE...: dpkg knows none of them (not even their configuration files)
        local p s
        for p; do
                s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
                [ -z "$s" ] || [ "$s" = not-installed ] || return 1
        done
}
units_state() { # -> "socket: ENABLED ACTIVE, service: ACTIVE"
        printf 'socket: %s %s, service: %s' "$(systemctl is-enabled vfiod.socket 2>&1 || true)" \
                "$(systemctl show -P ActiveState vfiod.socket)" "$(systemctl show -P ActiveState vfiod.service)"
}
# What a fresh install gives: the socket enabled and listening, vfiod not
# started, the user and group of the sysusers snippet.
installed_as_new() { # STEP
        check "$1/units" "$(units_state) (enabled active, inactive)" \
                test "$(units_state)" = "socket: enabled active, service: inactive"
        check "$1/sysusers" "the user vfiod ($(id -u vfiod 2>&1)) and the group vfiod-users ($(getent group vfiod-users | cut -d: -f3))" \
                bash -c "getent passwd vfiod >/dev/null && getent group vfiod-users >/dev/null"
}

deb_install() {
        apt_quiet install "${debs[@]}" || true
        check packages/install "apt-get install ${debs[*]##*/}: $apt_out" installed "${deb_packages[@]}"
        installed_as_new packages
        check packages/conffile "dpkg's conffiles of vfiod: $(dpkg-query -W -f='${Conffiles}' vfiod | xargs)" \
                bash -c "dpkg-query -W -f='\${Conffiles}' vfiod | grep -q '^ /etc/vfiod/vfiod.conf '"
        # Who may connect is the administrator's choice.
        usermod -aG vfiod-users alice
}

# The suite's last step: the driver counts as completed again only at its end.
deb_upgrade_purge_reinstall() {
        local pid files left uid
        completed=0
        # --- an upgrade while alice holds a lease: vfiod is restarted (try-restart), the lease stays
        coproc CLIENT { exec setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[0]}" 2>&1; }
        ask "" || reply="no answer"
        check upgrade/lease "alice's lease before the upgrade: '$reply'" bash -c "[[ '$reply' == ready* ]]"
        pid=$(systemctl show -P MainPID vfiod.service)
        apt_quiet install --reinstall "${debs[@]}" || true
        wait_active vfiod.service || true
        check upgrade/apt "apt-get install --reinstall: $apt_out" installed "${deb_packages[@]}"
        check upgrade/restarted "the package restarted the running vfiod ($(systemctl show -P MainPID vfiod.service), was $pid)" \
                test "$(systemctl show -P MainPID vfiod.service)" != "$pid" -a "$(state vfiod.service)" = active
        ask dma || reply="no answer"
        check upgrade/dma "her mapping still serves DMA: '$reply'" bash -c "[[ '$reply' == 'ok dma'* ]]"
        check upgrade/conffile "the administrator's $conf is kept" grep -q "^\[Device edu-0\]" "$conf"
        ask release || reply="no answer"
        local to_client=${CLIENT[1]}
        exec {to_client}>&-
        wait "$CLIENT_PID" 2>/dev/null || true

        # --- purge: nothing of vfiod is left but the user and the group (Debian keeps them)
        files=$(dpkg -L "${deb_packages[@]}" | while read -r f; do [ -d "$f" ] || echo "$f"; done)
        uid=$(id -u vfiod)
        apt_quiet purge "${deb_packages[@]}" || true
        check purge/apt "apt-get purge: $apt_out" purged "${deb_packages[@]}"
        check purge/stopped "no vfiod process, units: $(systemctl show -P LoadState vfiod.socket vfiod.service | xargs) (not-found)" \
                bash -c "! grep -qx vfiod /proc/[0-9]*/comm 2>/dev/null && [ \"\$(systemctl show -P LoadState vfiod.socket vfiod.service | xargs)\" = 'not-found not-found' ] && [ ! -e $sock ]"
        left=$(for f in $files; do [ ! -e "$f" ] && [ ! -L "$f" ] || echo "$f"; done)
        check purge/files "the $(wc -w <<<"$files") files the packages installed are gone${left:+; left: $left}" test -z "$left"
        # Anything named after vfiod on the root's file system (/run, /proc and the
        # like are others) but the suite's own programs and unit.
        left=$(find / -xdev \( -path /vfiod -o -name 'vfiod-test.service' \) -prune -o -iname '*vfiod*' -print 2>/dev/null | tr '\n' ' ')
        check purge/leftovers "nothing named vfiod on the root file system${left:+; left: $left}" test -z "${left// /}"
        check purge/user_kept "the user vfiod ($(id -u vfiod 2>&1)) and the group vfiod-users stay (Debian does not remove them)" \
                bash -c "getent passwd vfiod >/dev/null && getent group vfiod-users >/dev/null"

        # --- installed again: as new, the packaged configuration (nobody may have anything)
        apt_quiet install "${debs[@]}" || true
        check reinstall/apt "apt-get install again: $apt_out" installed "${deb_packages[@]}"
        installed_as_new reinstall
        check reinstall/uid "the user vfiod keeps its uid ($(id -u vfiod), was $uid)" test "$(id -u vfiod)" = "$uid"
        check reinstall/conffile "$conf is the packaged default again" \
                bash -c "dpkg-query -W -f='\${Conffiles}' vfiod | grep -q \"^ $conf \$(md5sum <$conf | cut -d' ' -f1)\$\""
        reply=$(setpriv --reuid=alice --regid=alice --init-groups /vfiod/bin/sd-client "${edus[0]}" </dev/null 2>&1 | head -n 1 || true)
        check reinstall/deny_default "her connect starts vfiod, whose packaged policy grants nothing: '$reply'" \
                bash -c "[[ '$reply' == 'fail acquire:'*'no rule grants you'* ]] && [ \"\$(systemctl show -P ActiveState vfiod.service)\" = active ]"
        completed=1
}
