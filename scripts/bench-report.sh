#!/usr/bin/env bash
# `make bench`: runs every benchmark into one results directory and
# assembles OUT_DIR/report.md: a header (when, what, on which machine),
# each benchmark's section (OUT_DIR/<name>.md), and a plot of the scale
# data (OUT_DIR/*-scale.tsv). A benchmark that fails or writes no section
# is named in the report, and the script exits non-zero.
# Usage: scripts/bench-report.sh BIN_DIR OUT_DIR
set -uo pipefail
bin=${1:?usage: scripts/bench-report.sh BIN_DIR OUT_DIR}
out=${2:?usage: scripts/bench-report.sh BIN_DIR OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
SANLOCK_CYCLES=${SANLOCK_CYCLES:-100}
LOAD_CYCLES=${LOAD_CYCLES:-200}
LIBVIRT_CYCLES=${LIBVIRT_CYCLES:-10}
PR_CYCLES=${PR_CYCLES:-300}

rm -rf "$out"
mkdir -p "$out/logs"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# name, then the command; its output goes to logs/<name>.log.
sections=(sanlock load pr libvirt downtime-pr downtime-sanlock)
# Sections written by another section's benchmark (issue 14's "added
# migration downtime": pr-bench and sanlock-bench write one each).
declare -A producer=([downtime-pr]=pr [downtime-sanlock]=sanlock)
declare -A failed=()
run() {
    local name=$1; shift
    echo "bench: $name: $*"
    local t0=$SECONDS
    "$@" >"$out/logs/$name.log" 2>&1
    local rc=$?
    echo "bench: $name: exit $rc after $((SECONDS - t0)) s"
    [ $rc -eq 0 ] || failed[$name]="\`$*\` exited $rc (log: logs/$name.log)"
}
run sanlock "$bin/sanlock-bench" --cycles "$SANLOCK_CYCLES" --out "$out"
run load "$bin/load-bench" --cycles "$LOAD_CYCLES" --out "$out"
run pr "$here/bench-pr.sh" "$bin" "$PR_CYCLES" "$out"
run libvirt "$bin/libvirt-bench" --cycles "$LIBVIRT_CYCLES" --out "$out"

version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }

{
    echo "# lockmgr benchmark report"
    echo
    echo "- Date: $started, $((SECONDS / 60)) min $((SECONDS % 60)) s"
    echo "- Commit: $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$here/.." diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- Load average (1, 5, 15 min): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end. The machine may be shared:"
    echo "  every benchmark interleaves the cases it compares, so load hits them alike; read medians for the typical"
    echo "  cost and p99 for the noise."
    echo "- Versions: sanlock $(version sanlock), libvirt $(version libvirt0), tgt $(version tgt), libiscsi $(version libiscsi-bin), $(swift --version 2>/dev/null | head -1 || echo 'swift unknown')"
    echo "- Command: \`make bench\` (release build)"
    echo
    for name in "${sections[@]}"; do
        run_name=${producer[$name]:-$name}
        if [ -n "${failed[$run_name]:-}" ] || [ ! -s "$out/$name.md" ]; then
            echo "## $name: MISSING"
            echo
            echo "**THIS SECTION IS MISSING: ${failed[$run_name]:-the benchmark wrote no $name.md}.** The report is incomplete."
            echo
            failed[$name]=${failed[$run_name]:-no section}
        else
            cat "$out/$name.md"
            echo
        fi
    done
} >"$out/report.md.body"

# The plot: median latency against resources per VM, one panel per operation.
plot_note="## Scale plot"$'\n\n'
if ls "$out"/*-scale.tsv >/dev/null 2>&1 && command -v gnuplot >/dev/null; then
    mkdir -p "$out/plot"
    gp="$out/plot/scale.gp"
    {
        echo "set terminal pngcairo size 1500,600 font ',10'"
        echo "set output '$out/scale.png'"
        echo "set multiplot layout 1,3 title 'median latency vs resources per VM (log-log); floors dashed'"
        echo "set logscale xy; set grid; set key below font ',8'"
        echo "set xlabel 'resources per VM'; set ylabel 'median µs'"
    } >"$gp"
    for op in acquire release handover; do
        plots=()
        i=0
        while IFS= read -r plugin; do
            i=$((i + 1))
            data="$out/plot/$op-$i.dat"
            awk -F'\t' -v op="$op" -v p="$plugin" 'FNR > 1 && $2 == op && $1 == p { print $3, $4 }' "$out"/*-scale.tsv | sort -n >"$data"
            dash=1; case "$plugin" in *floor*) dash=2 ;; esac
            plots+=("'$data' using 1:2 with linespoints dashtype $dash title '$plugin'")
        done < <(awk -F'\t' -v op="$op" 'FNR > 1 && $2 == op { print $1 }' "$out"/*-scale.tsv | awk '!seen[$0]++')
        echo "set title '$op'" >>"$gp"
        if [ ${#plots[@]} -gt 0 ]; then
            (IFS=,; echo "plot ${plots[*]}") >>"$gp"
        else
            echo "set label 1 'no data' at graph 0.5, 0.5 center; plot NaN notitle; unset label 1" >>"$gp"
        fi
    done
    echo "unset multiplot" >>"$gp"
    if gnuplot "$gp" 2>"$out/logs/gnuplot.log"; then
        plot_note+="![median latency against resources per VM, per plugin, ours and floors](scale.png)"$'\n\n'
        plot_note+="From $(cd "$out" && ls *-scale.tsv | tr '\n' ' '); the tables above give p99 too."$'\n'
    else
        plot_note+="**THE PLOT FAILED**: gnuplot: $(tr '\n' ' ' <"$out/logs/gnuplot.log")"$'\n'
        failed[plot]="gnuplot failed"
    fi
else
    plot_note+="**NO PLOT**: no *-scale.tsv in $out, or gnuplot is not installed (scripts/debian-packages.txt)."$'\n'
    failed[plot]="no plot"
fi
{ cat "$out/report.md.body"; echo "$plot_note"; } >"$out/report.md"
rm -f "$out/report.md.body"

echo "bench: report: $out/report.md"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: INCOMPLETE: ${!failed[*]}: see $out/report.md" >&2
    exit 1
fi
