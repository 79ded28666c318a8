#!/usr/bin/env bash
# Benchmark of the pr plugin against a private tgtd: latency of acquire,
# handover and release next to the same PR commands sent raw.
# Usage: scripts/bench-pr.sh BIN_DIR [iterations]
set -euo pipefail
bin=${1:?usage: scripts/bench-pr.sh BIN_DIR [iterations]}
. "$(dirname "$0")/demo/tgt.sh"
tgt_start
lun=$(tgt_add_target iqn.2026-01.lockmgr.bench:disk 1)
"$bin/pr-bench" "$lun" "${2:-300}"
