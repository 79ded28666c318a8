#!/usr/bin/env bash
# The kernel lab (make test-lab): two hosts, each a real Debian kernel booted
# under QEMU (TCG) with this machine's root (read-only, under a tmpfs
# overlay) and the Swift toolchain hidden, both logged in with the kernel's
# iSCSI initiator to one private tgtd here, each running its own libvirtd
# with lock_manager = "pr" (the project's build, from PREFIX), joined by a
# private link that only the two QEMU processes carry. Scenarios run one
# after the other in the same two guests; every claim about reservations is
# checked from here by an independent reader (pr-tool, its own initiator).
# The NVMe scenarios (nvme_*) also boot a storage box (Linux 7.x, nvmet
# over NVMe/TCP); their independent reader is nvme-cli on the box's own
# connection.
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
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${ALL_SCENARIOS[@]}")
# The storage box (guest c, Linux 7.x) boots only for the NVMe scenarios.
STORAGE=0
for s in "${scenarios[@]}"; do [[ "$s" == nvme* ]] && STORAGE=1; done
if [ "$STORAGE" = 1 ]; then
    skver=$("$repo/Tests/Lab/build-guest.sh" "$cache" storage) || { echo "run.sh: cannot build the storage box" >&2; exit 2; }
    say "storage box kernel $skver ($(( $(date +%s) - t0 )) s so far)"
fi

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
# The storage box's NVMe/TCP port, forwarded from here (guest c).
NVME_PORT=$(tgt_free_port)
say "tgtd on 127.0.0.1:$TGT_PORT and 127.0.0.1:$TGT_PORT2, target $TARGET, LUNs 1-$NLUNS"

guests_boot || { say "FAIL boot: guests did not come up (see $run/*.console, $run/*/boot.log)"; exit 1; }

passed=0; failed=0
for s in "${scenarios[@]}"; do
    run_scenario "$s" && passed=$((passed + 1)) || failed=$((failed + 1))
done
say "$passed passed, $failed failed (whole run $(( $(date +%s) - t0 )) s)"
[ "$failed" = 0 ]
