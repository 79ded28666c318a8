#!/usr/bin/env bash
# Benchmark of the pr plugin against a private tgtd: the release build's
# liblockmgr_pr.so through our host library next to the raw PR command
# floor, at 1, 8, 64 and 256 LUNs per VM (one target, sparse 1 MiB LUNs).
# Usage: scripts/bench-pr.sh BIN_DIR [cycles] [out dir]
#   cycles: rounds at 1 LUN (fewer at the larger sizes; the report states them)
#   out dir: where pr.md and pr-scale.tsv go (default: print only)
# PR_WORK_DIR=DIR: where pr-bench makes its work directory, keepers'
# records included (default /dev/shm, tmpfs as /run is when deployed).
set -euo pipefail
bin=${1:?usage: scripts/bench-pr.sh BIN_DIR [cycles] [out dir]}
cycles=${2:-200}
out=${3:-}
luns=256
. "$(dirname "$0")/demo/tgt.sh"
tgt_start
iqn=iqn.2026-01.lockmgr.bench:disks
tgt_add_target "$iqn" "$luns" >/dev/null
"$bin/pr-bench" --target "iscsi://127.0.0.1:$TGT_PORT/$iqn" --luns "$luns" --cycles "$cycles" ${out:+--out "$out"} \
    --target-pid "$TGT_PID" ${PR_WORK_DIR:+--work-dir "$PR_WORK_DIR"}
