#!/bin/sh
# run-fuzz.sh SECONDS SEEDS TARGET...: runs each libFuzzer target for SECONDS
# on a working corpus (tests/fuzz/work/<name>, in the build folder) that
# starts from the checked-in seeds (SEEDS/<name>, read only: new inputs go to
# the working copy). Prints one line per target and "N passed, N failed";
# a crash, leak, sanitizer report or time-out fails the target and leaves its
# input in tests/fuzz/artifacts/. libFuzzer's own output: tests/fuzz/<target>.out.
set -u
seconds=$1
seeds=$2
shift 2
pass=0
fail=0
mkdir -p tests/fuzz/work tests/fuzz/artifacts
for target in "$@"; do
        name=$(basename "$target")
        short=${name#fuzz-}
        work=tests/fuzz/work/$short
        out=tests/fuzz/$name.out
        mkdir -p "$work"
        start=$(date +%s)
        touch "$work.stamp"
        "$target" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
                -rss_limit_mb=2048 -artifact_prefix="tests/fuzz/artifacts/$name-" \
                "$work" "$seeds/$short" >"$out" 2>&1
        rc=$?
        took=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out" | tail -n 1)
        cov=$(printf '%s\n' "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
        ft=$(printf '%s\n' "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
        corp=$(printf '%s\n' "$done_line" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
        crashes=$(find tests/fuzz/artifacts -name "$name-*" -newer "$work.stamp" | wc -l)
        if [ "$rc" = 0 ] && [ -n "$execs" ] && [ "$crashes" = 0 ]; then
                pass=$((pass + 1))
                echo "PASS: $name: ${execs} executions in ${took} s, coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corp:-?}, 0 crashes"
        else
                fail=$((fail + 1))
                echo "FAIL: $name: exit $rc after ${took} s, ${execs:-?} executions, $crashes crash input(s) in tests/fuzz/artifacts; see $out"
                grep -E 'ERROR|SUMMARY|fuzz-dispatch:|fuzz-config:' "$out" | head -n 5
        fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
