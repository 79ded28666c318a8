#!/usr/bin/env bash
# The pr keepers under load: VMS VMs on this host, each a `sleep` process
# holding one LU of one private tgtd through the release build's pr plugin
# (`lockmgr acquire --pid`), each watched by its own pr-keeper. Measures,
# over SECONDS: CPU and memory per keeper, tgtd's CPU, the PR IN commands
# the keepers send (counted on their TCP connections), then SIGKILLs every
# VM at once and times how long each keeper takes to notice and release.
# Usage: scripts/bench-keepers.sh BIN_DIR [VMS] [SECONDS] [INTERVAL_MS] [OUT_DIR]
set -euo pipefail
bin=${1:?usage: scripts/bench-keepers.sh BIN_DIR [VMS] [SECONDS] [INTERVAL_MS] [OUT_DIR]}
vms=${2:-200}
seconds=${3:-180}
interval=${4:-1000}
out=${5:-}
bin=$(cd "$bin" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

. "$here/demo/tgt.sh"
tgt_start
work=$TGT_DIR/bench
mkdir -p "$work/plugins" "$work/etc" "$work/keepers"
vm_pids=()
cleanup() {
    for p in "${vm_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for f in "$work"/keepers/*.pid; do
        [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true
    done
    tgt_stop
}
trap cleanup EXIT

iqn=iqn.2026-01.lockmgr.bench:keepers
mapfile -t urls < <(tgt_add_target "$iqn" "$vms")
ln -s "$bin/liblockmgr_pr.so" "$work/plugins/pr.so"
cat >"$work/etc/qemu-pr.conf" <<EOF
iscsi_initiator = "iqn.2026-01.lockmgr.bench:host"
keeper_dir = "$work/keepers"
keeper_path = "$bin/pr-keeper"
keeper_interval_ms = $interval
EOF

echo "starting $vms VMs (sleep processes), one LU each, keeper_interval_ms = $interval"
started=$SECONDS
: >"$work/vms.tsv"
for i in $(seq 1 "$vms"); do
    sleep 100000 &
    pid=$!
    disown "$pid"   # killed on purpose later: no job notices
    vm_pids+=("$pid")
    uuid=$(printf '5a1e0c4e-8888-4a4a-8b8b-%012d' "$i")
    "$bin/lockmgr" acquire --plugin pr --plugin-dir "$work/plugins" --config-dir "$work/etc" \
        --uuid "$uuid" --name "vm$i" --pid "$pid" --disk "${urls[$((i - 1))]}" >/dev/null
    printf '%s\t%s\t%s\n' "$pid" "$work/keepers/$uuid.pid" "${urls[$((i - 1))]}" >>"$work/vms.tsv"
done
echo "acquired $vms LUs in $((SECONDS - started)) s"

python3 "$here/keeper-load.py" --vms "$work/vms.tsv" --tgtd "$TGT_PID" --port "$TGT_PORT" \
    --seconds "$seconds" --interval-ms "$interval" --pr-tool "$bin/pr-tool" ${out:+--out "$out"}
vm_pids=()
