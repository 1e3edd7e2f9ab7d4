#!/usr/bin/env bash
# `make bench`: what going through vfiod costs compared to doing it yourself.
# Runs the host comparisons (bench-host), then boots ONE guest with
# tests/vm/run-vm.sh for every VM comparison (guest-bench), and prints one
# table of per-round ratios: min, median and max, each next to its target
# and "met" or "missed". Timing is reported, never asserted: the exit status
# is non-zero only when a comparison could not run at all.
#
# Usage: run-bench.sh BUILDDIR [--quick] [--no-vm|--no-host] [--rounds N]
#   --quick   few rounds and repetitions (a smoke test of the benchmark)
#   --no-vm   the host comparisons only
#   --no-host the VM comparisons only
#   --rounds  rounds per comparison (default: host 21, VM 11)
# Environment: as tests/vm/run-vm.sh (VFIOD_CACHE_DIR, VFIOD_KERNEL_DIR, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: run-bench.sh BUILDDIR [--quick] [--no-vm|--no-host] [--rounds N]}
shift
build=$(cd "$build" && pwd)
quick=
vm=1
host=1
host_rounds=21
vm_rounds=11
while [ $# -gt 0 ]; do
        case $1 in
        --quick) quick=--quick ;;
        --no-vm) vm=0 ;;
        --no-host) host=0 ;;
        --rounds) host_rounds=${2:?} && vm_rounds=$2 && shift ;;
        *) echo "run-bench: unknown argument '$1'" >&2 && exit 2 ;;
        esac
        shift
done

out=$build/tests/bench/out
mkdir -p "$out"
rows=$out/rows.txt
: >"$rows"
rc=0

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "vfiod benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPU(s), ${cpu:-unknown CPU}, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# --- host ------------------------------------------------------------------------
if [ "$host" = 1 ]; then
        echo "run-bench: host comparisons (fake sysfs tree, no VFIO node) ..." >&2
        "$build/tests/bench/bench-host" --vfiod "$build/daemon/vfiod" --rounds "$host_rounds" \
                $quick >"$out/host.txt" 2>"$out/host.err" || rc=1
        grep '^row ' "$out/host.txt" >>"$rows" || true
        if ! grep -q '^row ' "$out/host.txt"; then
                echo "run-bench: the host benchmark printed nothing:" >&2
                cat "$out/host.err" >&2
                rc=1
        fi
fi

# --- instructions (callgrind) --------------------------------------------------------
if [ "$host" = 1 ]; then
        echo "run-bench: instruction counts (callgrind, fake ioctl layer) ..." >&2
        if ! command -v valgrind >/dev/null; then
                printf 'row %-46s %-9s %6s %6s %6s  %-6s  %s\n' "instructions/no-op request, daemon" - - \
                        - - FAILED "valgrind is not installed" >>"$rows"
                rc=1
        else
                "$build/tests/bench/bench-fake" --vfiod-fake "$build/tests/daemon/vfiod-fake" \
                        $quick >"$out/insns.txt" 2>"$out/insns.err" || rc=1
                grep '^row ' "$out/insns.txt" >>"$rows" || true
        fi
fi

# --- VM ----------------------------------------------------------------------------
vm_names=("no-op round trip (VM)" "MapDma+UnmapDma 4 KiB (VM)" "MapDma+UnmapDma 2 MiB (VM)" "MapDma+UnmapDma 64 MiB (VM)"
        "256 ranges: 1 MapDma vs 256 ioctls, thr. (VM)" "MapDma: a range of 256 vs 1 range alone (VM)"
        "pipelined vs sync 4 KiB map+unmap, thr. (VM)"
        "Acquire+Release vs raw open..close (VM)")
if [ "$vm" = 1 ]; then
        echo "run-bench: VM comparisons (one boot; console in $out/vm/console.txt) ..." >&2
        # The command's rows go to the results port, which the VM's own result
        # lines share; they are told apart by their "row " prefix.
        cmd="ulimit -l unlimited && su -s /bin/sh bench -c \"/vfiod/bin/guest-bench \$(cat /tmp/bench-device) --rounds $vm_rounds $quick ${VFIOD_BENCH_GUEST_ARGS:-}\" >/dev/ttyS1"
        "$here/../vm/run-vm.sh" --out "$out/vm" --timeout "${VFIOD_VM_TIMEOUT:-1200}" \
                --program "$build/tests/bench/guest-bench" \
                --program "$build/daemon/vfiod" \
                --file "$here/guest-setup.sh" \
                --user bench:1000 \
                --setup "sh /vfiod/files/guest-setup.sh" \
                --test "bench=$cmd" >"$out/vm.txt" 2>&1 || rc=1
        tr -d '\r' <"$out/vm/results.txt" 2>/dev/null | grep '^row ' >>"$rows" || true
        for name in "${vm_names[@]}"; do
                grep -qF "row $name " "$rows" || {
                        printf 'row %-46s %-9s %6s %6s %6s  %-6s  %s\n' "$name" - - - - FAILED \
                                "no result from the guest (see $out/vm.txt)" >>"$rows"
                        rc=1
                }
        done
fi

# --- the table -----------------------------------------------------------------------
printf '%-46s %-9s %6s %6s %6s  %-6s  %s\n' "comparison (vfiod / raw)" target min median max result \
        "median per op: vfiod | raw"
sed 's/^row //' "$rows"
grep -q 'FAILED' "$rows" && rc=1
cat <<'NOTES'

What each side does (ratios are vfiod time / raw time per round, or raw / vfiod
for the throughput row; rounds alternate which side goes first):
- no-op round trip: vfiod_stats() over libvfiod (Stats: answered from the
  daemon's counters; the cheapest real request) vs a raw SOCK_SEQPACKET
  ping-pong with a forked child, each request carrying one fd (SCM_RIGHTS),
  the child closing it and answering 32 bytes. Host; vfiod has an empty fake
  sysfs tree and VFIO folder.
- MapDma+UnmapDma: a BROKERED lease, one range of a sealed memfd mapped and
  unmapped, vs VFIO_IOMMU_MAP_DMA + UNMAP_DMA on the caller's own Type1v2
  container over its MAP_SHARED mapping of the same, pre-touched memfd.
  Same edu device, same pages; the guest runs under TCG.
- 256 ranges: one MapDma of 256 x 4 KiB ranges + one UnmapDma of the 256,
  vs 256 MAP_DMA + 256 UNMAP_DMA ioctls; reported as throughput.
- a range of 256 vs 1 range alone: vfiod only, the 256-range MapDma+UnmapDma
  per range vs the MapDma+UnmapDma of one 4 KiB range (the row above and the
  4 KiB row's vfiod figures): what the daemon spends per range beyond the
  request; work per range that grows (a walk of the memfd each) shows here.
- Acquire+Release: vfiod_acquire(DIRECT) into a new domain + closing its
  3 fds + vfiod_release() (the domain goes with it) vs open container, open
  group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD, close all. Reset
  INCLUDED in both: vfio-pci resets the device at its first open and its
  last close, on both sides; neither calls VFIO_DEVICE_RESET (vfiod's
  release leaves the reset to the next open: see vfiod(8)).
- instructions: counted by callgrind on the host, the daemon being
  vfiod-fake (the fake ioctl layer, whose own DMA calls are not counted):
  what the daemon runs for a readable client socket (receive, decode,
  handle, encode, send), per Stats (the no-op) and per 4 KiB MapDma+UnmapDma
  cycle, as (I(2N) - I(N)) / N; the libvfiod rows are the client's side of
  the same calls (user space only). Lower is better; the same on any machine.
- pipelined vs sync: 4 KiB MapDma+UnmapDma cycles per second with
  vfiod_submit_map_dma()/vfiod_submit_unmap_dma()/vfiod_collect() (the
  daemon's MaxRequestsInFlight in flight) over cycles of vfiod_map_dma() +
  vfiod_unmap_dma(); vfiod-fake on the host, not pinned to one CPU.
- discovery: kvfio_pci_discover() on a fake tree of 4,096 devices, absolute
  ms. Memory: vfiod's VmRSS growth over 10,000 idle connections (after
  Hello), absolute KiB per connection.
NOTES
exit $rc
