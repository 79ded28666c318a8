#!/usr/bin/env bash
# The pr plugin: SCSI-3 persistent reservations on a real (userspace)
# iSCSI target. Two simulated hosts (two initiator names, two config dirs),
# a VM-like command holding its disk under `lockmgr run`, the other host
# refused, the reservation handed over with the state string, teardown.
set -euo pipefail
prefix=$1
here=$(dirname "$0")
. "$here/lib.sh"
. "$here/tgt.sh"
lockmgr="$prefix/bin/lockmgr"
prtool="$prefix/bin/pr-tool"
uuid=6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f

section "pr: a private tgtd on a free loopback port, one file-backed LUN"
tgt_start
lun=$(tgt_add_target iqn.2026-01.lockmgr.demo:vmdisk 1)
echo "LUN: $lun"
work=$(mktemp -d /tmp/lockmgr-pr-demo-XXXXXX)
for h in a b; do
    mkdir -p "$work/$h"
    printf 'iscsi_initiator = "iqn.2026-01.lockmgr.demo:host-%s"\ntimeout_ms = 2000\n' $h > "$work/$h/qemu-pr.conf"
done
cat "$work/a/qemu-pr.conf"
# pr OP HOST [UUID [ARGS...]]: sets cmd to the lockmgr command line for host a or b.
pr() { cmd=("$lockmgr" "$1" --plugin pr --plugin-dir "$prefix/lib/lock_manager" --config-dir "$work/$2"
            --uuid "${3:-$uuid}" --name demo-vm --disk "$lun" "${@:4}"); }
watch() { show "$prtool" --initiator iqn.2026-01.lockmgr.demo:observer "$lun" reservation keys; }
keyA=$("$prtool" --initiator iqn.2026-01.lockmgr.demo:host-a key $uuid)
keyB=$("$prtool" --initiator iqn.2026-01.lockmgr.demo:host-b key $uuid)
echo "keys of this VM: host a $keyA, host b $keyB (VM part | host part)"
watch

section "Host a starts the VM under lockmgr run: the command runs holding the reservation"
# The VM-like command: its I/O path joins host a's registration and writes,
# then writes again after the handover below.
show "$lockmgr" run --plugin pr --plugin-dir "$prefix/lib/lock_manager" --config-dir "$work/a" \
    --uuid $uuid --name demo-vm --disk "$lun" -- \
    "$prtool" --initiator iqn.2026-01.lockmgr.demo:host-a --isid 5 "$lun" reservation rai "$keyA" write sleep 3 write &
vm=$!
sleep 1
watch

section "Host b is refused: a double start of the same VM, and another VM"
pr acquire b; show_refused "${cmd[@]}"
pr acquire b 11111111-2222-3333-4444-555555555555; show_refused "${cmd[@]}"

section "Live migration: a's state string goes to b, which takes over atomically (REGISTER + PREEMPT)"
pr inquire a; state=$("${cmd[@]}")
echo "state: $state"
pr acquire b "$uuid" --state "$state"; show "${cmd[@]}"
watch
echo "(the VM on host a now writes again: it must get RESERVATION CONFLICT)"
wait $vm

section "A clean-up on host a leaves b's reservation alone; teardown releases b"
pr release a; show "${cmd[@]}"
watch
pr release b; show "${cmd[@]}"
watch
rm -rf "$work"
tgt_stop
