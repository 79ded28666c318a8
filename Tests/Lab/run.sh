#!/usr/bin/env bash
# The kernel lab (make test-lab): two hosts, each a real Debian kernel booted
# under QEMU (TCG) with this machine's root (read-only, under a tmpfs
# overlay) and the Swift toolchain hidden, both logged in with the kernel's
# iSCSI initiator to one private tgtd here, each running its own libvirtd
# with lock_manager = "pr" (the project's build, from PREFIX), joined by a
# private link that only the two QEMU processes carry. Scenarios run one
# after the other in the same two guests; every claim about reservations is
# checked from here by an independent reader (pr-tool, its own initiator).
#
#   Tests/Lab/run.sh PREFIX [SCENARIO...]    (as root; default: every scenario)
#
# Prints one line per scenario and "N passed, N failed"; the guests'
# consoles, boot logs and every command's output stay in .build-lab/run.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
prefix=$(realpath "$1"); shift
lab="$repo/.build-lab"
cache="$lab/cache"
run="$lab/run"
. "$repo/scripts/demo/tgt.sh"
. "$repo/Tests/Lab/host/guests.sh"
. "$repo/Tests/Lab/host/checks.sh"
. "$repo/Tests/Lab/scenarios.sh"

t0=$(date +%s)
log() { echo "[$(( $(date +%s) - t0 ))s] $*" >> "$run/runner.log"; }
say() { echo "$*"; log "$*"; }

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (tgtd, QEMU)" >&2; exit 2; }
for f in "$prefix/lib/lock_manager/pr.so" "$prefix/libexec/lockmgr/pr-keeper" "$prefix/bin/pr-tool"; do
    [ -e "$f" ] || { echo "run.sh: $f missing (make install PREFIX=$prefix)" >&2; exit 2; }
done
rm -rf "$run"; mkdir -p "$run"
kver=$("$repo/Tests/Lab/build-guest.sh" "$cache") || { echo "run.sh: cannot build the guest" >&2; exit 2; }
say "guest kernel $kver ($(( $(date +%s) - t0 )) s to get kernel and initramfs)"

tgt_start || exit 2
# After tgt_start, which sets its own EXIT trap: lab_stop stops the guests, then tgtd.
trap lab_stop EXIT
TARGET=iqn.2026-01.lockmgr.lab:disks
# LUN 6 is the multipath LU: each guest maps its two paths with dm-multipath.
NLUNS=6
MPLUN=6
tgt_add_target $TARGET $NLUNS > "$run/luns" || exit 2
tgt_add_portal || exit 2
mapfile -t LUN < <(echo; cat "$run/luns")   # LUN[1..NLUNS]: iscsi:// URLs for the reader
# LUN 7 for the reader: host a's LIO LU (scenario multipath_block_pr), via QEMU's hostfwd.
LIO_PORT=$(tgt_free_port)
LUN[7]=iscsi://127.0.0.1:$LIO_PORT/iqn.2026-01.lockmgr.lab:lio/0
say "tgtd on 127.0.0.1:$TGT_PORT and 127.0.0.1:$TGT_PORT2, target $TARGET, LUNs 1-$NLUNS"

guests_boot || { say "FAIL boot: guests did not come up (see $run/*.console, $run/*/boot.log)"; exit 1; }

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${ALL_SCENARIOS[@]}")
passed=0; failed=0
for s in "${scenarios[@]}"; do
    run_scenario "$s" && passed=$((passed + 1)) || failed=$((failed + 1))
done
say "$passed passed, $failed failed (whole run $(( $(date +%s) - t0 )) s)"
[ "$failed" = 0 ]
