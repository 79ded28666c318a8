#!/usr/bin/env bash
# sanlock: disk leases on shared storage. Two private sanlock daemons play
# two hosts sharing one lease directory; a VM-like command holds its disk
# lease under `lockmgr run`; the other host is refused; the lease migrates
# with its state string, after which the old state is stale; a lost lease
# powers a VM off, or pauses it and frees the lease for another host.
# Usage: 20-sanlock.sh PREFIX (uses PREFIX/bin/lockmgr, PREFIX/lib/lock_manager).
set -euo pipefail
prefix=$1
. "$(dirname "$0")/lib.sh"
lockmgr="$prefix/bin/lockmgr"
command -v sanlock >/dev/null || { echo "demo: sanlock is not installed (apt-get install sanlock)" >&2; exit 1; }

work=$(mktemp -d /tmp/lockmgr-demo-sanlock-XXXXXX)
leases=$work/leases
disk=/var/lib/images/demo-vm.img
uuid=1e3b6c55-8f0a-4d2e-9b7c-3f5a6d8e9c01
vms=()
daemons=()

cleanup() {
    for pid in "${vms[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for host in a b; do
        SANLOCK_RUN_DIR=$work/run-$host sanlock client shutdown -f 1 -w 1 >/dev/null 2>&1 || true
    done
    for pid in "${daemons[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
} 2>/dev/null
trap cleanup EXIT

on() {  # on HOST SUBCOMMAND ARGS...: lockmgr as host a or b
    local host=$1; shift
    local sub=$1; shift
    env SANLOCK_RUN_DIR="$work/run-$host" "$lockmgr" "$sub" --plugin sanlock \
        --plugin-dir "$prefix/lib/lock_manager" --config-dir "$work/etc-$host" "$@"
}

start_vm() {  # start_vm HOST ARGS... -- COMMAND: lockmgr run in the background, same pid as the VM
    local host=$1; shift
    env SANLOCK_RUN_DIR="$work/run-$host" "$lockmgr" run --plugin sanlock \
        --plugin-dir "$prefix/lib/lock_manager" --config-dir "$work/etc-$host" "$@" &
}

run_with_action() {  # run_with_action NAME ACTION DISK: a VM on host a; sets vm_pid
    printf '\n\033[1m$ lockmgr run --action %s --disk %s -- sleep 600 &   # host a\033[0m\n' "$2" "$3"
    start_vm a --uuid "$uuid" --name "$1" --action "$2" --disk "$3" -- sleep 600
    vm_pid=$!
    vms+=("$vm_pid")
}

held_state() {  # held_state HOST NAME PID: waits until PID holds its lease, prints the state
    local state
    until state=$(on "$1" inquire --uuid "$uuid" --name "$2" --pid "$3" 2>/dev/null) && [ -n "$state" ]; do
        kill -0 "$3" 2>/dev/null || { echo "demo: $2 did not start on host $1" >&2; exit 1; }
        sleep 0.1
    done
    echo "$state"
}

revoke() {  # revoke STATE: another owner asks host a's holder for the lease (graceful request)
    local resource=${1%:*} version=${1##*:}
    show env SANLOCK_RUN_DIR="$work/run-a" sanlock client request -r "$resource:$((version + 1))" -f 2
    show env SANLOCK_RUN_DIR="$work/run-a" sanlock client examine -r "$resource"
}

section "Two hosts: private sanlock daemons sharing $leases"
mkdir -p "$leases"
id=1
for host in a b; do
    mkdir -p "$work/run-$host" "$work/etc-$host"
    cat > "$work/etc-$host/qemu-sanlock.conf" <<CONF
# libvirt's keys: an existing /etc/libvirt/qemu-sanlock.conf works unchanged
auto_disk_leases = 1
disk_lease_dir = "$leases"
host_id = $id
io_timeout = 1
CONF
    id=$((id + 1))
    printf '\n\033[1m$ SANLOCK_RUN_DIR=%s sanlock daemon -D -w 0 -l 0 -e demo-%s &\033[0m\n' "$work/run-$host" "$host"
    SANLOCK_RUN_DIR=$work/run-$host SANLOCK_PRIVILEGED=0 sanlock daemon -D -w 0 -U root -G root -l 0 \
        -L -1 -S -1 -e "demo-$host-$$" >"$work/daemon-$host.log" 2>&1 &
    daemons+=($!)
    until SANLOCK_RUN_DIR=$work/run-$host sanlock client status >/dev/null 2>&1; do sleep 0.1; done
done
show cat "$work/etc-a/qemu-sanlock.conf"
echo
echo "Below, 'on a CMD ...' is: SANLOCK_RUN_DIR=$work/run-a $lockmgr CMD --plugin sanlock \\"
echo "    --plugin-dir $prefix/lib/lock_manager --config-dir $work/etc-a ...   (and likewise for b)"

section "Each host's plugin creates (libvirt's layout) and joins __LIBVIRT__DISKS__"
show on a info sanlock
show on b info sanlock
show ls -l "$leases"

section "A VM-like command holds its disk lease under lockmgr run (same pid)"
printf '\n\033[1m$ lockmgr run --uuid %s --name demo-vm --disk %s -- sleep 600 &   # host a\033[0m\n' "$uuid" "$disk"
start_vm a --uuid "$uuid" --name demo-vm --disk "$disk" -- sleep 600
vm=$!
vms+=("$vm")
held_state a demo-vm "$vm" >/dev/null
show on a inquire --uuid "$uuid" --name demo-vm --pid "$vm" --disk "$disk"
echo "(the lease file is named by the MD5 of the disk path: $(printf %s "$disk" | md5sum | cut -d' ' -f1))"

section "Another VM on the same host, and host b, are refused"
show_refused on a acquire --uuid 2b4c6d8e-0000-4000-8000-000000000002 --name other-vm --disk "$disk"
show_refused on b acquire --uuid 2b4c6d8e-0000-4000-8000-000000000003 --name intruder --disk "$disk"

section "Migration: the source releases and hands its state to host b"
printf '\n\033[1m$ state=$(lockmgr release --pid %s --disk %s ...)   # host a\033[0m\n' "$vm" "$disk"
state=$(on a release --uuid "$uuid" --name demo-vm --pid "$vm" --disk "$disk")
echo "$state"
printf '\n\033[1m$ lockmgr run --state "$state" --disk %s -- sleep 600 &   # host b\033[0m\n' "$disk"
start_vm b --uuid "$uuid" --name demo-vm --state "$state" --disk "$disk" -- sleep 600
vm_b=$!
vms+=("$vm_b")
held_state b demo-vm "$vm_b" >/dev/null
show on b inquire --uuid "$uuid" --name demo-vm --pid "$vm_b" --disk "$disk"
show_refused on a acquire --uuid "$uuid" --name demo-vm --disk "$disk"

section "The destination stops; the source's old state is now stale"
show kill "$vm_b"
wait "$vm_b" 2>/dev/null || true
sleep 1   # host b's daemon writes the release
show_refused on a acquire --uuid "$uuid" --name demo-vm --state "$state" --disk "$disk"
echo "(libvirt's plugin would accept that stale state; ours honours the lease version)"

section "Lease lost without libvirt: sanlock runs lockmgr failure-action (poweroff)"
run_with_action demo-vm2 poweroff /var/lib/images/demo-vm2.img
vm2=$vm_pid
state2=$(held_state a demo-vm2 "$vm2")
echo "$state2"
# Another owner asks for the lease (graceful request): the holder's daemon
# runs the holder's failure helper, as when the lease is lost.
revoke "$state2"
for _ in $(seq 100); do kill -0 "$vm2" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vm2" 2>/dev/null; then echo "demo: pid $vm2 is still running" >&2; exit 1; fi
echo "pid $vm2 is gone; the helper said (in the daemon's log):"
grep "lockmgr: lock lost" "$work/daemon-a.log" || { echo "demo: no message from lockmgr failure-action" >&2; exit 1; }

section "Lease lost with --action pause: the VM is stopped and gives its lease up; host b takes over"
disk3=/var/lib/images/demo-vm3.img
run_with_action demo-vm3 pause "$disk3"
vm3=$vm_pid
revoke "$(held_state a demo-vm3 "$vm3")"
for _ in $(seq 100); do grep -q "demo-vm3.*paused; released" "$work/daemon-a.log" && break; sleep 0.1; done
echo "pid $vm3 is in state $(awk '{print $3}' "/proc/$vm3/stat") (T: stopped); the helper said:"
grep "demo-vm3" "$work/daemon-a.log" || { echo "demo: no message from lockmgr failure-action" >&2; exit 1; }
show on b acquire --uuid "$uuid" --name demo-vm3 --disk "$disk3"
