#!/bin/sh
# run.sh DIR SECONDS ARGS NAME... -- runs each fuzz target DIR/fuzz_NAME for SECONDS on a
# scratch copy of tests/fuzz/corpus/NAME (the committed corpus does not grow), prints
# libFuzzer's figures per target, and exits non-zero if any crashed, leaked or timed out
# (an input running longer than FUZZ_TIMEOUT seconds). Called by `make fuzz` (mk/fuzz.mk).
# ARGS: more libFuzzer options for every target ("" for none); tests/fuzz/fuzz_NAME.options,
# if present, holds options for that one (e.g. a -max_len that reaches its limits).
set -u
dir=$1
seconds=$2
args=$3
shift 3
timeout=${FUZZ_TIMEOUT:-10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=""
start=$(date +%s)
printf '%-12s %10s %8s %7s %7s %7s  %s\n' target execs exec/s cov ft corpus result
for name in "$@"; do
    work=$dir/run/$name
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp tests/fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null || true
    own=$(cat tests/fuzz/fuzz_"$name".options 2>/dev/null || true)
    # shellcheck disable=SC2086
    "$dir/fuzz_$name" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/" $own $args "$work/corpus" \
        >"$work/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
    last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed="$failed $name"
    fi
    printf '%-12s %10s %8s %7s %7s %7s  %s\n' "$name" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$result"
    if [ "$rc" -ne 0 ]; then
        echo "---- $work/log (last 60 lines)"
        tail -n 60 "$work/log"
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
            [ -e "$a" ] && echo "reproducer: $a (run: $dir/fuzz_$name $a)"
        done
        echo "----"
    fi
done
echo "fuzz: $# targets, ${seconds} s each, $(($(date +%s) - start)) s in all"
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed"
    exit 1
fi
