#!/usr/bin/env bash
# The added migration downtime of the pr plugin (pr-bench --only downtime)
# with network latency between initiators and a private tgtd: every byte
# goes through scripts/latency-proxy.py, held DELAY_US each way. On bare
# loopback a round trip costs little more than the CPU work around it;
# this shows what the round trips cost where they are real. Prints the
# figures; the sequential floor's time per command is the round trip.
# Usage: scripts/bench-pr-latency.sh BIN_DIR [delay_us] [cycles] [luns...]
set -euo pipefail
bin=${1:?usage: scripts/bench-pr-latency.sh BIN_DIR [delay_us] [cycles] [luns...]}
delay=${2:-100}
cycles=${3:-100}
shift $(( $# < 3 ? $# : 3 ))
sizes=${*:-1 8}
. "$(dirname "$0")/demo/tgt.sh"
tgt_start
iqn=iqn.2026-01.lockmgr.bench:disks
largest=$(printf '%s\n' $sizes | sort -n | tail -1)
tgt_add_target "$iqn" "$largest" >/dev/null
port=$(tgt_free_port)
python3 "$(dirname "$0")/latency-proxy.py" "$port" "$TGT_PORT" "$delay" &
proxy=$!
trap 'kill $proxy 2>/dev/null; tgt_stop' EXIT
for i in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
    sleep 0.05
done
echo "pr-bench --only downtime through a proxy holding every chunk ${delay} µs each way, ${cycles} rounds at 1 LUN"
for n in $sizes; do
    "$bin/pr-bench" --target "iscsi://127.0.0.1:$port/$iqn" --luns "$n" --cycles "$cycles" --target-pid "$TGT_PID" \
        --only downtime ${PR_WORK_DIR:+--work-dir "$PR_WORK_DIR"} | grep -E "^$n LUNs, "
done
