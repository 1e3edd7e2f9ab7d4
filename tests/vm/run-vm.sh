#!/usr/bin/env bash
# Runs programs in a QEMU guest on Debian's real kernel with an emulated
# Intel IOMMU and edu devices bound to vfio-pci, and reports one line per test
# and a final "N passed, N failed". See tests/vm/README.md.
#
# With --no-iommu the guest has no IOMMU (for mdma's emulated-IOMMU devices).
#
# Usage: run-vm.sh -o OUTDIR [options]
#   -o, --out DIR            build folder for the initramfs and the logs
#   -p, --program HOST[:GUEST]
#                            an executable for the guest (default GUEST:
#                            /vfiod/bin/NAME, which is on PATH) with the
#                            shared libraries ldd finds for it
#   -f, --file HOST[:GUEST]  a plain file for the guest (default GUEST:
#                            /vfiod/files/NAME)
#   -t, --test NAME=COMMAND  a test: COMMAND runs under the guest's sh, as
#                            root, in /tmp, in the order given. A check suite
#                            reports each of its tests (TAP through
#                            CK_TAP_LOG_FILE_NAME); any other command is one
#                            test, passed when it exits 0. Lines the command
#                            writes to the file $VFIOD_SAY are printed here,
#                            before its result.
#   -u, --user NAME:UID      an unprivileged user (and group NAME, gid UID)
#   -s, --setup COMMAND      run in the guest after binding, before the tests
#   -m, --module NAME        one more module of the guest kernel to load,
#                            after the VFIO ones (e.g. uio_pci_generic)
#       --no-bind            leave the edu devices on no driver
#       --no-iommu           no intel-iommu device, intel_iommu=off (for
#                            emulated-IOMMU devices such as mdma's mdevs)
#       --edus N             number of edu devices (default $VFIOD_VM_EDUS
#                            or 3; 0 for none)
#   -k, --host-module FILE.ko[:ARGS]
#                            a module built on the host for the guest's
#                            kernel (its vermagic is checked), loaded last
#                            with the module parameters ARGS
#       --mdevs TYPE:N       create N mdev instances of the mdev type TYPE
#                            (PARENT/TYPE-ID, e.g. mdma/mdma-1) after loading
#                            the modules; their UUIDs, one per line, are in
#                            /run/vfiod-mdevs
#       --timeout SECONDS    kill QEMU after this long (default
#                            $VFIOD_VM_TIMEOUT or 300)
#       --extracted DIR      a folder of extracted Debian packages
#                            (fetch-debs.sh): a --program or --file under it
#                            goes to the guest at its path in DIR (default
#                            GUEST), ldd also looks in DIR's library folders,
#                            and a library found there goes to its path in
#                            DIR. These files, with the libraries they need,
#                            make a second initramfs archive, kept next to
#                            the first and rebuilt only when they change
#       --mem MB             the guest's memory (default 512)
#       --qemu-arg ARG       one more argument for QEMU (e.g. a -device)
#
# Environment: VFIOD_GUEST_KERNEL (the Debian release whose kernel boots:
# bookworm, the default, or trixie; see kernel-lib.sh), VFIOD_CACHE_DIR
# (kernel download cache, see fetch-kernel.sh), VFIOD_KERNEL_DIR (an
# extracted kernel package to use instead of fetching), VFIOD_QEMU (the QEMU binary), VFIOD_VM_TIMEOUT, VFIOD_VM_APPEND (more kernel
# command line), VFIOD_VM_EDUS (number of edu devices, default 3),
# VFIOD_VM_ACCEL (QEMU's accelerator, default tcg; kvm where it boots).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/kernel-lib.sh
. "$here/kernel-lib.sh"

say() { printf 'run-vm: %s\n' "$*" >&2; }
# An error before any test ran still ends with the summary line.
die() {
        say "error: $*"
        echo "0 passed, 1 failed"
        exit 2
}
usage() {
        sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
        exit 2
}

out=
programs=()
files=()
tests=()
users=()
extra_modules=()
setup=
bind=1
iommu=1
host_modules=()
mdevs=
timeout_s=${VFIOD_VM_TIMEOUT:-300}
edus=${VFIOD_VM_EDUS:-3}
qemu=${VFIOD_QEMU:-qemu-system-x86_64}
extracted=
mem=512
qemu_args=()

while [ $# -gt 0 ]; do
        case $1 in
        -o | --out) out=${2:?} && shift ;;
        -p | --program) programs+=("${2:?}") && shift ;;
        -f | --file) files+=("${2:?}") && shift ;;
        -t | --test) tests+=("${2:?}") && shift ;;
        -u | --user) users+=("${2:?}") && shift ;;
        -s | --setup) setup=${2:?} && shift ;;
        -m | --module) extra_modules+=("${2:?}") && shift ;;
        --no-bind) bind=0 ;;
        --no-iommu) iommu=0 ;;
        --edus) edus=${2:?} && shift ;;
        -k | --host-module) host_modules+=("${2:?}") && shift ;;
        --mdevs) mdevs=${2:?} && shift ;;
        --timeout) timeout_s=${2:?} && shift ;;
        --extracted) extracted=${2:?} && shift ;;
        --mem) mem=${2:?} && shift ;;
        --qemu-arg) qemu_args+=("${2:?}") && shift ;;
        -h | --help) usage ;;
        *) say "unknown argument '$1'" && usage ;;
        esac
        shift
done
[ -n "$out" ] || usage
[ ${#tests[@]} -gt 0 ] || die "no --test given"
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout '$timeout_s' is not a number of seconds"
[[ $edus =~ ^[0-9]+$ ]] || die "the number of edu devices '$edus' is not a number"
[[ $mem =~ ^[0-9]+$ ]] || die "--mem '$mem' is not a number of MiB"
if [ -n "$extracted" ]; then
        [ -d "$extracted" ] || die "--extracted '$extracted' is not a folder"
        extracted=$(cd "$extracted" && pwd)
fi
if [ -n "$mdevs" ] && ! [[ $mdevs =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:[0-9]+$ ]]; then
        die "--mdevs '$mdevs' is not PARENT/TYPE:N"
fi

# --- what the host needs -----------------------------------------------------
command -v "$qemu" >/dev/null ||
        die "'$qemu' not found (Debian: apt-get install qemu-system-x86; or set VFIOD_QEMU)"
for tool in busybox cpio ldd timeout; do
        command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install busybox-static cpio)"
done
busybox=$(command -v busybox)
if ldd "$busybox" >/dev/null 2>&1; then
        die "'$busybox' is linked dynamically; the guest needs a static one (Debian: apt-get install busybox-static)"
fi

if [ -n "${VFIOD_KERNEL_DIR:-}" ]; then
        kdir=$VFIOD_KERNEL_DIR
else
        kdir=$("$here/fetch-kernel.sh") || die "no guest kernel (see the messages above)"
fi
kl_locate "$kdir" || die "no usable kernel in '$kdir' (see above)"
vmlinuz=$kl_vmlinuz
kver=$kl_release
moddir=$kl_moddir

# --- the initramfs -----------------------------------------------------------
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$out/initramfs.d
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,vfiod/bin,vfiod/files,vfiod/modules.d}
# The guest mounts no tmpfs on /tmp (libraries of a build under /tmp live there).
chmod 1777 "$root/tmp"

install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
install -m 0755 "$here/guest-init.sh" "$root/init"

# The files of --extracted, with the libraries they need from it or from the
# machine, go to a second archive (below): "HOST GUEST" lines.
ext_list=()
under_extracted() { [ -n "$extracted" ] && [[ $1 == "$extracted"/* ]]; }

# A host file into the guest, at the same path (libraries) or the given one;
# a file of --extracted at its path there.
put() { # HOST GUEST [ext: into the second archive]
        if [ "${3:-}" = ext ]; then
                ext_list+=("$1 $2")
                return 0
        fi
        mkdir -p "$root$(dirname "$2")"
        cp -L "$1" "$root$2"
}

# HOST or HOST:GUEST -> "HOST GUEST" with GUEST defaulting to $2/NAME (or,
# under --extracted, its path there).
split_spec() { # SPEC DEFAULT_DIR
        local host=${1%%:*} guest=
        [[ $1 == *:* ]] && guest=${1#*:}
        if [ -z "$guest" ] && under_extracted "$host"; then
                guest=${host#"$extracted"}
        fi
        [ -n "$guest" ] || guest=$2/${host##*/}
        printf '%s\n%s\n' "$host" "$guest"
}

# ldd, seeing the libraries of --extracted too.
ext_ldd() {
        local path='' d
        if [ -n "$extracted" ]; then
                for d in "$extracted"/usr/lib/*-linux-gnu "$extracted"/lib/*-linux-gnu; do
                        [ -d "$d" ] && path=$path${path:+:}$d
                done
        fi
        LD_LIBRARY_PATH=$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$1"
}

declare -A libs_done=()
for spec in "${programs[@]}"; do
        mapfile -t hg < <(split_spec "$spec" /vfiod/bin)
        host=${hg[0]} guest=${hg[1]}
        [ -f "$host" ] || die "program '$host' not found (was it built?)"
        # (a library of --extracted, such as a plugin, is a program too: ldd finds its libraries)
        [ -x "$host" ] || under_extracted "$host" || die "program '$host' is not executable"
        if [ "$(head -c 2 "$host")" = '#!' ] && grep -q 'libtool' "$host"; then
                die "'$host' is a libtool wrapper script: link it with -no-install"
        fi
        where=
        under_extracted "$host" && where=ext
        put "$host" "$guest" $where
        [ -n "$where" ] || chmod 0755 "$root$guest"
        # ldd lines: "libx.so => /path (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
        ldd_out=$(ext_ldd "$host" 2>&1) || {
                [[ $ldd_out == *"not a dynamic executable"* ]] || die "ldd '$host': $ldd_out"
        }
        if [[ $ldd_out == *"not found"* ]]; then
                die "ldd '$host': a library is missing: $(grep 'not found' <<<"$ldd_out" | tr -s ' \t' ' ')"
        fi
        while read -r lib; do
                if [ -z "$lib" ] || [ -n "${libs_done[$lib]:-}" ]; then continue; fi
                libs_done[$lib]=1
                if under_extracted "$lib"; then
                        put "$lib" "${lib#"$extracted"}" ext
                elif [ -n "$where" ]; then
                        put "$lib" "$lib" ext
                else
                        put "$lib" "$lib"
                fi
        done < <(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<<"$ldd_out")
done
for spec in "${files[@]}"; do
        mapfile -t hg < <(split_spec "$spec" /vfiod/files)
        [ -f "${hg[0]}" ] || die "file '${hg[0]}' not found"
        if under_extracted "${hg[0]}"; then
                put "${hg[0]}" "${hg[1]}" ext
        else
                put "${hg[0]}" "${hg[1]}"
        fi
done

# The VFIO modules (vfio-pci, vfio_iommu_type1, which vfio loads on demand),
# the extra ones and those the host's modules depend on, each with what it
# depends on, in load order.
host_deps=()
for spec in "${host_modules[@]}"; do
        ko=${spec%%:*}
        [ -f "$ko" ] || die "module '$ko' not found (was it built?)"
        deps=()
        IFS=, read -ra deps < <(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n 1) || true
        host_deps+=("${deps[@]}")
done
mods=$(kl_modules "$moddir" "$root/vfiod/modules.d" vfio_iommu_type1 vfio-pci \
        "${extra_modules[@]}" "${host_deps[@]}") || die "cannot gather the guest's modules (see above)"
printf '%s\n' "$mods" >"$root/vfiod/modules"
for spec in "${host_modules[@]}"; do
        ko=${spec%%:*}
        args=
        [[ $spec == *:* ]] && args=${spec#*:}
        [ -f "$ko" ] || die "module '$ko' not found (was it built?)"
        name=$(basename "$ko")
        # The .modinfo section's "vermagic=<release> SMP ..." (no modinfo needed).
        vermagic=$(tr '\0' '\n' <"$ko" | sed -n 's/^vermagic=//p' | head -n 1)
        [ "${vermagic%% *}" = "$kver" ] ||
                die "'$ko' was built for '${vermagic%% *}', the guest runs '$kver'"
        cp "$ko" "$root/vfiod/modules.d/$name"
        printf '%s %s\n' "$name" "$args" >>"$root/vfiod/modules"
done

user_homes=()
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
for u in "${users[@]}"; do
        [[ $u =~ ^([a-z_][a-z0-9_-]*):([0-9]+)$ ]] || die "--user '$u' is not NAME:UID"
        printf '%s:x:%s:%s::/home/%s:/bin/sh\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" \
                "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}" >>"$root/etc/passwd"
        printf '%s:x:%s:\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" >>"$root/etc/group"
        user_homes+=("${BASH_REMATCH[1]}:${BASH_REMATCH[2]}")
done

{
        printf 'VFIOD_BIND=%s\n' "$bind"
        printf 'VFIOD_EDUS=%s\n' "$edus"
        printf 'VFIOD_MDEVS=%q\n' "$mdevs"
        printf 'VFIOD_SETUP=%q\n' "$setup"
        printf 'VFIOD_USERS=%q\n' "${user_homes[*]}"
} >"$root/vfiod/config"

names=()
declare -A seen_names=()
: >"$root/vfiod/tests"
for t in "${tests[@]}"; do
        name=${t%%=*}
        cmd=${t#*=}
        [[ $t == *=* && $name =~ ^[A-Za-z0-9._-]+$ && -n $cmd ]] ||
                die "--test '$t' is not NAME=COMMAND (NAME of letters, digits, '.', '_', '-')"
        [[ $cmd != *$'\t'* && $cmd != *$'\n'* ]] || die "--test '$name': the command has a tab or newline"
        [ -z "${seen_names[$name]:-}" ] || die "--test '$name' is given twice"
        seen_names[$name]=1
        names+=("$name")
        printf '%s\t%s\n' "$name" "$cmd" >>"$root/vfiod/tests"
done

# A library both archives hold: the second one's copy wins (the kernel unpacks
# them in order), the same file.
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/initramfs.cpio"
rm -rf "$root"

# The second archive: the files of --extracted and their libraries, built once
# for the same files (their paths, sizes and times: the key).
if [ ${#ext_list[@]} -gt 0 ]; then
        key=$(for e in "${ext_list[@]}"; do
                read -r h g <<<"$e"
                printf '%s %s %s\n' "$g" "$h" "$(stat -L -c '%s %Y' "$h")"
        done | LC_ALL=C sort -u | sha256sum | cut -c1-12)
        ext_cpio=$out/extracted-$key.cpio
        if [ ! -f "$ext_cpio" ]; then
                say "building the archive of $(printf '%s\n' "${ext_list[@]}" | sort -u | wc -l) extracted file(s): $ext_cpio"
                rm -f "$out"/extracted-*.cpio
                eroot=$out/extracted.d
                rm -rf "$eroot"
                for e in "${ext_list[@]}"; do
                        read -r h g <<<"$e"
                        mkdir -p "$eroot$(dirname "$g")"
                        cp -L "$h" "$eroot$g"
                done
                (cd "$eroot" && find . -mindepth 1 | LC_ALL=C sort |
                        cpio -o -H newc -R 0:0 --quiet) >"$ext_cpio.tmp"
                rm -rf "$eroot"
                mv "$ext_cpio.tmp" "$ext_cpio"
        fi
        # Concatenated newc archives make one initramfs.
        cat "$ext_cpio" >>"$out/initramfs.cpio"
fi

# --- the VM ------------------------------------------------------------------
# Each edu sits alone behind its own PCIe root port: its own IOMMU group, and a
# secondary bus reset makes VFIO_DEVICE_RESET work (on the root bus the kernel
# finds no reset method for edu).
devices=()
for ((i = 1; i <= edus; i++)); do
        devices+=(-device "pcie-root-port,id=rp$i,chassis=$i,slot=$i" -device "edu,bus=rp$i")
done

console=$out/console.txt
results=$out/results.txt
rm -f "$console" "$results"
iommu_args=(-device "intel-iommu,intremap=on")
append="console=ttyS0 intel_iommu=on panic=-1"
if [ "$iommu" = 0 ]; then
        iommu_args=()
        append="console=ttyS0 intel_iommu=off panic=-1"
fi
say "booting $kver with $edus edu device(s)$([ "$iommu" = 1 ] || echo ", no IOMMU")${mdevs:+, mdevs $mdevs}; console log: $console"
start=$(date +%s)
qemu_rc=0
timeout -k 10 "$timeout_s" "$qemu" \
        -machine "q35,accel=${VFIOD_VM_ACCEL:-tcg},kernel-irqchip=split" -cpu max -m "$mem" \
        "${iommu_args[@]}" \
        "${devices[@]}" "${qemu_args[@]}" \
        -kernel "$vmlinuz" -initrd "$out/initramfs.cpio" \
        -append "$append ${VFIOD_VM_APPEND:-}" \
        -nographic -no-reboot -monitor none \
        -serial stdio -serial "file:$results" \
        </dev/null >"$console" 2>&1 || qemu_rc=$?
elapsed=$(($(date +%s) - start))

# --- the results -------------------------------------------------------------
passed=0
failed=0
pass() {
        passed=$((passed + 1))
        printf 'PASS: %s\n' "$1"
}
fail() {
        failed=$((failed + 1))
        printf 'FAIL: %s\n' "$1"
}

declare -A begun=() ended=()
done_seen=0
setup_seen=0
declare -A ntap=() nplan=() tapfail=()
[ -f "$results" ] || : >"$results"
while IFS= read -r line; do
        line=${line%$'\r'}
        [[ $line == "@vfiod "* ]] || continue
        read -r _ kind rest <<<"$line"
        case $kind in
        setup)
                setup_seen=1
                read -r status what <<<"$rest"
                if [ "$status" = ok ]; then pass "vm: setup ($what)"; else fail "vm: setup: $what"; fi
                ;;
        begin) begun[$rest]=1 ;;
        say)
                # Keep the line's own spacing: only "@vfiod say NAME " goes.
                payload=${line#@vfiod say }
                name=${payload%% *}
                [ "$name" = "$payload" ] && text= || text=${payload#"$name" }
                printf '%s\n' "$text"
                ;;
        tap)
                read -r name tap <<<"$rest"
                if [[ $tap =~ ^1\.\.([0-9]+) ]]; then
                        nplan[$name]=${BASH_REMATCH[1]}
                elif [[ $tap =~ ^(not\ )?ok\ [0-9]+\ -\ (.*)$ ]]; then
                        ntap[$name]=$((${ntap[$name]:-0} + 1))
                        # check: FILE:TCASE:TEST: MESSAGE
                        IFS=: read -r _ tcase tname msg <<<"${BASH_REMATCH[2]}"
                        if [ -z "${BASH_REMATCH[1]}" ]; then
                                pass "$name: $tcase/$tname"
                        else
                                tapfail[$name]=1
                                fail "$name: $tcase/$tname:$msg"
                        fi
                fi
                ;;
        end)
                read -r name rc <<<"$rest"
                ended[$name]=1
                if [ -z "${ntap[$name]:-}" ]; then
                        if [ "$rc" = 0 ]; then pass "$name"; else fail "$name (exit status $rc)"; fi
                else
                        if [ "${nplan[$name]:-}" != "${ntap[$name]}" ]; then
                                fail "$name: ${ntap[$name]} results for a plan of ${nplan[$name]:-none}"
                        fi
                        if [ "$rc" != 0 ] && [ -z "${tapfail[$name]:-}" ]; then
                                fail "$name (exit status $rc)"
                        fi
                fi
                ;;
        done) done_seen=1 ;;
        esac
done <"$results"

[ "$setup_seen" = 1 ] || fail "vm: setup (no result)"
for name in "${names[@]}"; do
        [ -n "${ended[$name]:-}" ] && continue
        if [ -n "${begun[$name]:-}" ]; then
                fail "$name (started, no result)"
        else
                fail "$name (not run)"
        fi
done
panicked=0
if grep -q 'Kernel panic' "$console"; then
        panicked=1
        fail "vm: guest kernel panic: $(grep -m 1 'Kernel panic' "$console" | tr -d '\r')"
fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        fail "vm: time-out after ${timeout_s}s, QEMU killed"
elif [ "$qemu_rc" != 0 ]; then
        fail "vm: QEMU exited with status $qemu_rc: $(grep -m 1 -E '^qemu(-system-[^:]*)?: ' "$console" | tr -d '\r' || true)"
elif [ "$done_seen" = 0 ] && [ "$panicked" = 0 ]; then
        fail "vm: the guest stopped before reporting all results"
fi

say "QEMU ran ${elapsed}s; console log: $console"
[ "$failed" = 0 ] || say "failures: see $console"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
