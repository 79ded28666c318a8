#!/usr/bin/env bash
# Builds lockmgr-fuzz with libFuzzer and AddressSanitizer, runs each fuzz
# target for SECONDS, and prints per target the executions run and the
# crashes found, then a summary table. Exit status 1 if any target crashed.
#
#   scripts/fuzz.sh SECONDS [TARGET]
#
# FUZZ_RUNS=N stops a target once it has run N executions (within SECONDS):
# how the depth figures in the README were produced.
#
# Seeds: Fuzz/Corpus/<target> (read only). New inputs the fuzzer finds go to
# .build-fuzz/corpus/<target>, crashing inputs to .build-fuzz/crashes/<target>;
# copy a crash to Fuzz/Regressions/<target>/ once fixed, so `swift test`
# replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET]}
only=${2:-}
max_runs=${FUZZ_RUNS:-0}
swift=${SWIFT:-swift}
scratch=.build-fuzz
# A crash restarts the target for the rest of its time; stop after this many.
max_crashes=5

# SwiftPM passes -sanitize=fuzzer and -sanitize=address as two flags, and
# swiftc then keeps only the last for compiling (Swift 6.3): coverage is
# asked for explicitly, in the layout current libFuzzer reads.
build=("$swift" build -c release --sanitize=fuzzer --sanitize=address --scratch-path "$scratch"
       -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table
       -Xswiftc -DLOCKMGR_FUZZING --product lockmgr-fuzz)
# SwiftPM does not rebuild when only -Xswiftc flags change: start afresh then.
if [ "$(cat "$scratch/flags" 2>/dev/null)" != "${build[*]}" ]; then
    rm -rf "$scratch/release" "$scratch"/*/release
fi
"${build[@]}"
mkdir -p "$scratch" && echo "${build[*]}" >"$scratch/flags"
bin=$("${build[@]}" --show-bin-path)/lockmgr-fuzz

targets=()
for dir in Fuzz/Corpus/*/; do
    t=$(basename "$dir")
    if [ -z "$only" ] || [ "$t" = "$only" ]; then targets+=("$t"); fi
done
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz target named '$only' (see Fuzz/Corpus/)" >&2; exit 64; }

summary=()
total_crashes=0
for t in "${targets[@]}"; do
    corpus=$scratch/corpus/$t crashes=$scratch/crashes/$t logs=$scratch/logs/$t
    mkdir -p "$corpus" "$crashes" "$logs"
    runs=0 round=0 found=0
    deadline=$((SECONDS + seconds))
    while [ $SECONDS -lt $deadline ] && { [ "$max_runs" -eq 0 ] || [ $runs -lt "$max_runs" ]; }; do
        round=$((round + 1))
        log=$logs/run-$round.log
        # SWIFT_BACKTRACE off: the Swift backtracer would hold the crash for
        # seconds per input; libFuzzer and ASan print their own report.
        # -timeout is wall-clock time: 60 s, because a fuzzer run under nice
        # beside kernel-lab guests was once starved for 13 s on an input
        # that takes a millisecond (a hang still stops the run).
        LOCKMGR_FUZZ_TARGET=$t SWIFT_BACKTRACE=enable=no \
            "$bin" -max_total_time=$((deadline - SECONDS)) -runs=$((max_runs > 0 ? max_runs - runs : -1)) \
                   -timeout=60 -rss_limit_mb=2048 \
                   -print_final_stats=1 -artifact_prefix="$crashes/" \
                   "$corpus" "Fuzz/Corpus/$t" >"$log" 2>&1 && status=0 || status=$?
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        runs=$((runs + ${n:-0}))
        if [ $status -ne 0 ]; then
            found=$((found + 1))
            echo "== $t: crash (exit $status), log $log:"
            grep -E "ERROR|lockmgr-fuzz:|Fatal error|SUMMARY|Test unit written" "$log" | head -8 || true
            [ $found -lt $max_crashes ] || break
        fi
    done
    total_crashes=$((total_crashes + found))
    echo "== $t: $runs executions in $((SECONDS - deadline + seconds))s, $found crashes, corpus $(find "$corpus" -type f | wc -l) inputs"
    summary+=("$(printf '%-24s %14s %8s' "$t" "$runs" "$found")")
done

echo
printf '%-24s %14s %8s\n' target executions crashes
printf '%s\n' "${summary[@]}"
if [ $total_crashes -gt 0 ]; then
    echo "$total_crashes crash(es): inputs under $scratch/crashes/; replay one with" \
         "'swift run lockmgr-fuzz TARGET FILE'" >&2
    exit 1
fi
