#!/usr/bin/env bash
# The pr plugin: SCSI-3 persistent reservations on a real (userspace)
# iSCSI target. Two simulated hosts (two initiator names, two config dirs),
# a VM-like command holding its disk under `lockmgr run` and watched by its
# keeper, the other host refused, a live migration in QEMU's migrate-pr
# order with the state string, the VM's exit freeing the disk.
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
    # keeper_path is not set: the plugin finds <prefix>/libexec/lockmgr/pr-keeper beside itself.
    printf 'iscsi_initiator = "iqn.2026-01.lockmgr.demo:host-%s"\ntimeout_ms = 2000\nkeeper_dir = "%s"\nkeeper_interval_ms = 200\n' \
        $h "$work/$h/keeper" > "$work/$h/qemu-pr.conf"
done
cat "$work/a/qemu-pr.conf"
# pr OP HOST [UUID [ARGS...]]: sets cmd to the lockmgr command line for host a or b.
pr() { cmd=("$lockmgr" "$1" --plugin pr --plugin-dir "$prefix/lib/lock_manager" --config-dir "$work/$2"
            --uuid "${3:-$uuid}" --name demo-vm --disk "$lun" "${@:4}"); }
# Starts cmd in the background, so $! is the process that holds the locks.
show_bg() { printf '\n\033[1m$ %s &\033[0m\n' "${cmd[*]}"; "${cmd[@]}" & }
watch() { show "$prtool" --initiator iqn.2026-01.lockmgr.demo:observer "$lun" reservation keys; }
keeperlog() { echo "--- host $1's keeper log:"; sed 's/^/    /' "$work/$1/keeper/keeper.log" 2>/dev/null || true; }
keyA=$("$prtool" key --initiator iqn.2026-01.lockmgr.demo:host-a $uuid)
keyB=$("$prtool" key --initiator iqn.2026-01.lockmgr.demo:host-b $uuid)
echo "keys of this VM: host a $keyA, host b $keyB (VM part | host part)"
watch

section "Host a starts the VM under lockmgr run: the command runs holding the reservation"
# The VM-like command: its I/O path joins host a's registration and writes,
# then writes again after the handover below.
pr run a "$uuid" --action poweroff -- \
    "$prtool" --initiator iqn.2026-01.lockmgr.demo:host-a --isid 5 "$lun" reservation rai "$keyA" write sleep 3 write
show_bg
vm=$!
sleep 1
watch
echo "its keeper (pid $(cat "$work/a/keeper/$uuid.pid")) watches VM pid $vm:"
sed 's/^/    /' "$work/a/keeper/$uuid.vm"

section "Host b is refused: a double start of the same VM, and another VM"
pr run b "$uuid" -- true; show_refused "${cmd[@]}"
pr run b 11111111-2222-3333-4444-555555555555 -- true; show_refused "${cmd[@]}"

section "Live migration, QEMU's order: b starts the VM with a's state and takes over while a still runs"
pr inquire a "$uuid" --pid $vm; state=$("${cmd[@]}")
echo "state: $state"
pr run b "$uuid" --state "$state" --action poweroff -- sleep 4
show_bg
vmB=$!
sleep 1
watch
keeperlog a
echo "(a's keeper saw a handover, not a loss: no failure action. The VM on host a now writes again: RESERVATION CONFLICT)"
wait $vm

section "The VM exits on b: b's keeper gives the reservation back"
wait $vmB
sleep 0.5
keeperlog b
watch
rm -rf "$work"
tgt_stop
