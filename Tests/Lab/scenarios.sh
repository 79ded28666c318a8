# The lab's scenarios, in the order make test-lab runs them. Each is a
# function scenario_NAME run by run_scenario (Tests/Lab/host/checks.sh);
# `gx HOST SECONDS CMD` runs CMD in a guest (Tests/Lab/guest/lib.sh).
# Waits poll with generous deadlines: guests run QEMU under TCG in TCG.
# dead_host kills guest a: it runs last.

ALL_SCENARIOS=(kernel_paths start_refusals live_migration)

VM1=6c61620a-0000-4000-8000-000000000001
VM2=6c61620a-0000-4000-8000-000000000002
D1=/dev/lab/lun1

# message LABEL TEXT: a virsh message users see, kept for the README.
message() { printf '%s:\n%s\n\n' "$1" "$2" >> "$run/virsh-messages.txt"; log "  message ($1): $2"; }

# start_vm HOST NAME UUID DISK...: virsh create, then running; fails the scenario if not.
start_vm() {
    local h=$1 name=$2; shift 2
    local out rc; out=$(gx "$h" 300 "vm_create $name $* && wait_state $name running 120"); rc=$?
    check "$name starts on $h ($(echo $out | head -c 300))" test $rc = 0
}

# Both hosts' kernels reach the LU through their own iSCSI sessions, and
# both can write while nobody holds it.
scenario_kernel_paths() {
    check "LUN 1 starts free" free 1
    local out
    out=$(gx a 60 disk_write $D1); check "a's kernel writes a free LU ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write $D1); check "b's kernel writes a free LU ($out)" contains "$out" "WRITE OK"
}

# Start on a: the LU is reserved with the VM's key for a; a's kernel
# writes, b's gets RESERVATION CONFLICT; starting the same VM or another
# VM with that disk on b is refused by the lock manager.
scenario_start_refusals() {
    local ka kb out
    ka=$(key_of a $VM1)
    start_vm a vm1 $VM1 $D1
    check "a's key for vm1 ($ka) holds LUN 1, nothing else registered" holds 1 "$ka"
    out=$(gx a 60 disk_write $D1); check "a's kernel writes ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write $D1); check "b's kernel write is refused ($out)" contains "$out" "WRITE FAILED"
    check "b's refused write was a reservation conflict" contains "$out" "[Rr]eservation|nexus|exchange"
    out=$(gx b 300 vm_create vm1 $VM1 $D1); local rc=$?
    check "the same VM is refused on b" test $rc != 0
    check "b's refusal names the disk and a's key ($out)" contains "$out" "$D1.*$ka"
    message "virsh create of the same VM on host b while host a runs it" "$out"
    out=$(gx b 300 vm_create vm2 $VM2 $D1); rc=$?
    check "another VM with that disk is refused on b" test $rc != 0
    check "b's refusal names the disk and a's key ($out)" contains "$out" "$D1.*$ka"
    message "virsh create of another VM with the same disk on host b" "$out"
    check "nothing left of b's attempts: still only a's key" holds 1 "$ka"
    out=$(gx b 60 "virsh list --all --name | grep -c . || true")
    check "no domain left on b" test "$out" = 0
    gx a 120 "virsh destroy vm1" >/dev/null
    check "destroying vm1 on a frees LUN 1" eventually 30 free 1
}

# virsh migrate --live a -> b, libvirt's order (the source releases when
# its CPUs stop, the destination acquires with the state from the
# migration cookie when its CPUs start).
scenario_live_migration() {
    local ka kb out t
    ka=$(key_of a $VM1); kb=$(key_of b $VM1)
    start_vm a vm1 $VM1 $D1
    check "a holds LUN 1 with $ka" holds 1 "$ka"
    t=$(date +%s)
    out=$(gx a 400 "virsh migrate --live vm1 $PEER_URI_B --migrateuri tcp://$LINK_B")
    check "virsh migrate --live succeeds ($out)" test $? = 0
    log "  migration took $(( $(date +%s) - t )) s"
    out=$(gx b 120 "wait_state vm1 running 120"); check "vm1 runs on b ($out)" test $? = 0
    check "b's key $kb holds LUN 1 and nothing of a is registered" holds 1 "$kb"
    out=$(gx a 60 "wait_gone vm1 60"); check "vm1 is gone from a ($out)" test $? = 0
    out=$(gx a 60 disk_write $D1); check "a is fenced: its kernel write is refused ($out)" contains "$out" "WRITE FAILED"
    out=$(gx b 60 disk_write $D1); check "b's kernel writes ($out)" contains "$out" "WRITE OK"
    out=$(gx a 60 "sleep 2; keeper_log")
    check "a's keeper applied no failure action" lacks "$out" "LOCK LOST"
    check "a's keeper is gone (nothing left to watch)" test "$(gx a 30 'pgrep -c pr-keeper || true')" = 0
    gx b 120 "virsh destroy vm1" >/dev/null
    check "destroying vm1 on b frees LUN 1" eventually 30 free 1
}
