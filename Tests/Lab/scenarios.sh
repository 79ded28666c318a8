# The lab's scenarios, in the order make test-lab runs them. Each is a
# function scenario_NAME run by run_scenario (Tests/Lab/host/checks.sh);
# `gx HOST SECONDS CMD` runs CMD in a guest (Tests/Lab/guest/lib.sh).
# Waits poll with generous deadlines: guests run QEMU under TCG in TCG.
# dead_host kills guest a: it runs last.

ALL_SCENARIOS=(kernel_paths start_refusals live_migration sigkill suspend_resume libvirtd_restart
    failed_migration hotplug shared_readonly guest_reservations multipath_sgio multipath_kernel_register multipath_block_pr
    multipath_path_return multipath_path_down block_pr_sd storage_lu_gone nvme_reservations nvme_target_down dead_host)

VM1=6c61620a-0000-4000-8000-000000000001
VM2=6c61620a-0000-4000-8000-000000000002
VM3=6c61620a-0000-4000-8000-000000000003
D1=/dev/lab/lun1

# message LABEL TEXT: a virsh message users see, kept for the README.
message() { printf '%s:\n%s\n\n' "$1" "$2" >> "$run/virsh-messages.txt"; log "  message ($1): $2"; }

# start_vm HOST NAME UUID DISK...: virsh create, then running; fails the scenario if not.
start_vm() {
    local h=$1 name=$2; shift 2
    local out rc; out=$(gx "$h" 300 "vm_create $name $* && wait_state $name running 120"); rc=$?
    check "$name starts on $h ($(echo $out | head -c 300))" test $rc = 0
}

# vm1_on_a [DISK...]: vm1 started on a with LUN 1 (and DISKs); a's key
# (set in ka) holds LUN 1.
vm1_on_a() {
    ka=$(key_of a $VM1)
    start_vm a vm1 $VM1 $D1 "$@"
    check "a holds LUN 1 with $ka" holds 1 "$ka"
}

# destroy_frees HOST NAME N...: virsh destroy, then LUNs N... are free.
destroy_frees() {
    local h=$1 name=$2 n; shift 2
    gx "$h" 120 "virsh destroy $name" >/dev/null
    for n in "$@"; do check "$name destroyed on $h: LUN $n is free" eventually 30 free "$n"; done
}

# Both hosts' kernels reach the LU through their own iSCSI sessions, and
# both can write while nobody holds it. Each libvirtd has loaded our pr.so
# from the lab's prefix, with the Swift toolchain hidden.
scenario_kernel_paths() {
    check "LUN 1 starts free" free 1
    local out h tc; tc=$(toolchain_dir)
    for h in a b; do
        out=$(gx $h 30 "grep -c '$prefix/lib/lock_manager/pr.so' /proc/\$(pgrep -x libvirtd)/maps")
        check "$h's libvirtd has loaded $prefix/lib/lock_manager/pr.so" test "${out:-0}" -gt 0
        [ -z "$tc" ] || { out=$(gx $h 30 "ls -A '$tc' | wc -l"); check "$h sees nothing of the toolchain in $tc" test "$out" = 0; }
    done
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
    destroy_frees a vm1 1
}

# virsh migrate --live a -> b, libvirt's order (the source releases when
# its CPUs stop, the destination acquires with the state from the
# migration cookie when its CPUs start).
scenario_live_migration() {
    local ka kb out t
    kb=$(key_of b $VM1)
    vm1_on_a
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
    destroy_frees b vm1 1
}

# The VM's QEMU killed with SIGKILL on a: a's keeper releases the LU (timed
# in the guest, from the kill to PR IN showing no key).
scenario_sigkill() {
    local ka out
    vm1_on_a
    out=$(gx a 120 time_free_after_kill vm1 $D1); local rc=$?
    check "the keeper frees LUN 1 after QEMU's SIGKILL ($out)" test $rc = 0
    log "  timing: $out (keeper_interval_ms = 500)"
    check "the reader sees LUN 1 free" eventually 30 free 1
    out=$(gx a 60 "wait_gone vm1 60"); check "libvirt on a saw vm1 die ($out)" test $? = 0
}

# virsh suspend releases (libvirt's pause), virsh resume takes it back with
# the state libvirt kept.
scenario_suspend_resume() {
    local ka out
    vm1_on_a
    out=$(gx a 120 "virsh suspend vm1 && wait_state vm1 paused 60"); check "virsh suspend ($out)" test $? = 0
    check "suspended: LUN 1 is free" eventually 30 free 1
    out=$(gx a 120 "virsh resume vm1 && wait_state vm1 running 60"); check "virsh resume ($out)" test $? = 0
    check "resumed: a holds LUN 1 with $ka again" eventually 30 holds 1 "$ka"
    out=$(gx a 60 keeper_log); check "no failure action on a" lacks "$out" "LOCK LOST"
    destroy_frees a vm1 1
}

# libvirtd restarted on a while the VM runs: the keeper survives, the
# reservation stays, and the VM's later exit still releases.
scenario_libvirtd_restart() {
    local ka out before after
    vm1_on_a
    before=$(gx a 30 "pgrep -x pr-keeper")
    out=$(gx a 300 libvirtd_restart); check "libvirtd restarted on a ($out)" test $? = 0
    out=$(gx a 60 "wait_state vm1 running 60"); check "vm1 still runs under the new libvirtd ($out)" test $? = 0
    after=$(gx a 30 "pgrep -x pr-keeper")
    check "the same keeper runs (pid $before, now $after)" test -n "$before" -a "$before" = "$after"
    check "a still holds LUN 1 with $ka" holds 1 "$ka"
    destroy_frees a vm1 1
}

# A migration that fails after the destination took over: b's QEMU cannot
# activate the disk when it resumes (another process on b holds QEMU's
# image lock on it), so b gives the LU back, a resumes with its own state
# and holds the LU again, and nothing is left on b.
scenario_failed_migration() {
    local ka kb out lockpid
    kb=$(key_of b $VM1)
    vm1_on_a
    lockpid=$(gx b 60 "hold_image_lock $D1"); check "an image lock is held on b (pid $lockpid)" test -n "$lockpid"
    gx b 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    out=$(gx a 400 "virsh migrate --live vm1 $PEER_URI_B --migrateuri tcp://$LINK_B"); local rc=$?
    check "virsh migrate fails" test $rc != 0
    message "virsh migrate --live when the destination cannot resume" "$out"
    out=$(gx a 120 "wait_state vm1 running 120"); check "vm1 runs on a again ($out)" test $? = 0
    check "a holds LUN 1 with $ka again, nothing of b registered" eventually 30 holds 1 "$ka"
    out=$(gx b 60 "wait_gone vm1 60"); check "no vm1 left on b ($out)" test $? = 0
    out=$(gx b 30 "cat /var/log/lockmgr/pr-commands.log")
    log "  b's PR commands during the migration: $(echo $out)"
    check "b had taken the LU over (b's plugin reserved it) before the failure" contains "$out" "(RESERVE|PREEMPT|reserve|preempt)"
    out=$(gx a 60 keeper_log); check "no failure action on a" lacks "$out" "LOCK LOST"
    out=$(gx a 60 disk_write $D1); check "a's kernel writes again ($out)" contains "$out" "WRITE OK"
    gx b 30 "kill $lockpid" >/dev/null
    destroy_frees a vm1 1
}

# A second disk hot-plugged into the running VM (SCSI: it unplugs without
# the guest OS's help) is reserved on attach and freed on detach.
scenario_hotplug() {
    local ka out
    vm1_on_a
    out=$(gx a 120 "disk_xml /dev/lab/lun2:scsi 1 > /tmp/hot.xml && virsh attach-device vm1 /tmp/hot.xml --live")
    check "virsh attach-device ($out)" test $? = 0
    check "the hot-plugged LUN 2 is held with $ka" eventually 30 holds 2 "$ka"
    out=$(gx b 300 vm_create vm2 $VM2 /dev/lab/lun2); local rc=$?
    check "another VM with the hot-plugged disk is refused on b" test $rc != 0
    message "virsh create on host b of a VM whose disk host a hot-plugged" "$out"
    out=$(gx a 120 "virsh detach-device vm1 /tmp/hot.xml --live"); check "virsh detach-device ($out)" test $? = 0
    check "detached: LUN 2 is free" eventually 60 free 2
    check "LUN 1 is still held with $ka" holds 1 "$ka"
    destroy_frees a vm1 1
}

# A <shareable/> disk on both hosts at once (an all-registrants
# reservation, one key per host), a <readonly/> disk on both (nothing
# reserved), next to each VM's own exclusive disk.
scenario_shared_readonly() {
    local ka kb2 sa sb out
    ka=$(key_of a $VM1); kb2=$(key_of b $VM2)
    sa=00000000$(key_of a $VM1 | cut -c9-); sb=00000000$(key_of b $VM1 | cut -c9-)
    start_vm a vm1 $VM1 $D1 /dev/lab/lun3:shared /dev/lab/lun4:ro
    start_vm b vm2 $VM2 /dev/lab/lun2 /dev/lab/lun3:shared /dev/lab/lun4:ro
    check "a holds LUN 1 with $ka" holds 1 "$ka"
    check "b holds LUN 2 with $kb2" holds 2 "$kb2"
    check "shared LUN 3: all-registrants, keys $sa and $sb" holds_all_registrants 3 "$sa" "$sb"
    check "read-only LUN 4: nothing reserved" free 4
    out=$(gx a 60 disk_write /dev/lab/lun3); check "a's kernel writes the shared LU ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write /dev/lab/lun3); check "b's kernel writes the shared LU ($out)" contains "$out" "WRITE OK"
    destroy_frees a vm1 1
    check "vm1 gone: shared LUN 3 keeps b's registration only" eventually 30 holds_all_registrants 3 "$sb"
    destroy_frees b vm2 2
    check "vm2 gone: LUN 3 free" eventually 30 free 3
}

# A guest's own SCSI-3 PR cluster (libvirt <reservations managed='yes'/>,
# QEMU's pr-manager through qemu-pr-helper) on LUN 5, listed in
# guest_reservations on both hosts: a reservation the guest cluster took
# (here: sg_persist on a, as qemu-pr-helper would send it) stays untouched
# while VMs on both hosts start with that disk; their other disks are
# still reserved as usual. Under a name the list does not hold, the same
# disk is refused at start.
scenario_guest_reservations() {
    local ka out
    out=$(gx a 60 "sg_persist -n -o -G -S c1c1 /dev/lab/lun5 && sg_persist -n -o -R -K c1c1 -T 5 /dev/lab/lun5")
    check "the guest cluster reserves LUN 5 with key c1c1 ($out)" holds 5 000000000000c1c1
    # The same LU under a name guest_reservations does not list: refused, naming the guest's key.
    out=$(gx a 300 "mknod /dev/lab/lun5-unlisted b \$(stat -c '0x%t 0x%T' /dev/lab/lun5) && vm_create vm2 $VM2 /dev/lab/lun5-unlisted:managed"); local rc=$?
    check "unlisted, the guest cluster's disk is refused at start" test $rc != 0
    check "the refusal names the disk and the guest cluster's key ($out)" contains "$out" "lun5-unlisted.*000000000000c1c1"
    check "the refusal points at guest_reservations" contains "$out" "guest_reservations"
    message "virsh create of a VM whose <reservations managed='yes'/> disk is not in guest_reservations" "$out"
    check "the refused start left LUN 5 untouched" holds 5 000000000000c1c1
    vm1_on_a /dev/lab/lun5:managed
    check "LUN 5 keeps the guest cluster's reservation, untouched" holds 5 000000000000c1c1
    out=$(gx a 30 "pgrep -a qemu-pr-helper"); check "libvirt runs qemu-pr-helper for the managed disk ($out)" test -n "$out"
    start_vm b vm2 $VM2 /dev/lab/lun5:managed
    check "vm2 with the same guest-cluster disk starts on b; LUN 5 untouched" holds 5 000000000000c1c1
    destroy_frees a vm1 1
    destroy_frees b vm2
    check "the guest cluster's reservation outlives both VMs (theirs to manage)" holds 5 000000000000c1c1
}

# The pr plugin through SG_IO on a dm-multipath map (LUN 6 through both of
# a's sessions, /dev/mapper/lab-mp). tgt does not report PTPL_C, so the
# plugin (block_pr = auto) stays on SG_IO and says so in its command log.
# dm-multipath hands each SG_IO to the path its selector picks, and
# round-robin moves on at every command: REGISTER lands on one path's
# I_T nexus, the RESERVE on the other's and meets a conflict. The plugin
# then reads the LU again and tries once more (a conflict is never taken
# for success or failure without looking), and that REGISTER goes down the
# other path. Which way the start ends depends on the path selector, so
# what is checked is the safety property: the start is refused and LUN 6
# stays free, or it is held with the key on both paths (the keeper
# registers a path that lacks it, see multipath_path_return); a free map
# keeps writing through both.
scenario_multipath_sgio() {
    local ka out h rc
    check "LUN 6 starts free" free 6
    for h in a b; do
        out=$(gx $h 30 mp_active); check "$h's map lab-mp has 2 active paths ($out)" test "$out" = 2
    done
    out=$(gx a 60 "mp_write_through 1; mp_write_through 2")
    check "a writes the free LU through each path ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 2
    ka=$(key_of a $VM1)
    gx a 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    out=$(gx a 300 "vm_create vm1 $VM1 /dev/mapper/lab-mp && wait_state vm1 running 120"); rc=$?
    log "  start on the map: exit $rc: $out"
    message "virsh create of a VM on a dm-multipath map through SG_IO (tgt, no PTPL_C)" "$out"
    out=$(gx a 30 "cat /var/log/lockmgr/pr-commands.log"); log "  a's PR commands: $(echo $out)"
    check "the plugin chose SG_IO for the map and logged why" contains "$out" "lab-mp transport: SG_IO \\(block_pr = auto"
    if [ "$rc" = 0 ]; then
        check "the start through SG_IO succeeded: LUN 6 is held with $ka on both paths" eventually 30 holds_on_paths 6 "$ka" 2
    else
        check "the start through SG_IO was refused: LUN 6 is free" free 6
    fi
    gx a 120 destroy_all >/dev/null
    check "a's map still has 2 active paths" test "$(gx a 30 mp_active)" = 2
}

# The kernel's own PR API on the map: IOC_PR_REGISTER (register and
# ignore) on /dev/mapper/lab-mp. sd adds APTPL=1 to every REGISTER, which
# tgt refuses (ILLEGAL REQUEST, invalid field in CDB: tgt keeps nothing
# through power loss). dm-multipath sends the REGISTER down its paths,
# stops at the first refusal and then unregisters the key on every path
# (refused again): the kernel logs PR commands failing on both paths, the
# ioctl returns CHECK CONDITION (Linux 6.1: the SCSI result), nothing is
# registered. So the block-PR transport cannot work on a tgt LU, and the
# plugin (block_pr = auto) does not choose it there (multipath_sgio).
scenario_multipath_kernel_register() {
    local out n
    check "LUN 6 starts free" free 6
    out=$(gx a 60 "dmesg -c >/dev/null; kernel_pr_register \$MP 5a5a; dmesg | grep 'PR command failed'")
    check "IOC_PR_REGISTER on the map returns CHECK CONDITION (status byte 0x02) ($(echo $out))" contains "$out" "ioctl returned [0-9]+"
    n=$(grep -o 'ioctl returned [0-9]*' <<< "$out" | awk '{print $3}')
    check "the returned status byte is CHECK CONDITION ($n)" test $(( ${n:-0} & 0xff )) = 2
    check "the kernel sent PR commands down both paths, each refused ($(echo $out))" \
        test "$(grep -o 'sd [0-9]*:0:0:6: PR command failed' <<< "$out" | sort -u | wc -l)" = 2
    check "nothing was registered on LUN 6" free 6
}

# The block-PR transport on dm-multipath, on an LU that takes it: host a
# serves the kernel's own iSCSI target (LIO keeps registrations through
# power loss, so it accepts the APTPL sd sends), both hosts log in twice
# and map the two paths as /dev/mapper/lab-lio; the reader here reaches
# LIO through QEMU's hostfwd (LUN[7]), with its own initiator name. The
# plugin chooses the kernel's PR ioctls (REPORT CAPABILITIES: PTPL_C), the
# kernel registers the key on both paths (READ KEYS from here lists it
# twice: one registration per I_T nexus), and every path of the holder
# writes while the other host's paths cannot. A live migration moves it
# to b's two paths and leaves no path of a registered.
scenario_multipath_block_pr() {
    local ka kb out
    out=$(gx a 60 lio_serve); check "a serves an LU with LIO ($out)" test $? = 0
    out=$(gx a 90 "lio_map 127.0.0.1"); check "a maps its two paths to it as lab-lio ($out)" test $? = 0
    out=$(gx b 90 "lio_map $LINK_A"); check "b maps its two paths to it as lab-lio ($out)" test $? = 0
    check "the LIO LU starts free" free 7
    ka=$(key_of a $VM1); kb=$(key_of b $VM1)
    gx a 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    start_vm a vm1 $VM1 /dev/mapper/lab-lio
    out=$(gx a 30 "cat /var/log/lockmgr/pr-commands.log"); log "  a's PR commands: $(echo $out)"
    check "the plugin chose the kernel's PR ioctls for the map (PTPL_C)" contains "$out" "lab-lio transport: block PR ioctls.*PTPL_C"
    check "$ka holds the LU, registered on both of a's paths" holds_on_paths 7 "$ka" 2
    out=$(gx a 120 "write_through lab-lio 1; write_through lab-lio 2")
    check "a writes through each of its paths ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 2
    out=$(gx b 120 "write_through lab-lio 1; write_through lab-lio 2")
    check "b writes through none of its paths ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 0
    out=$(gx a 400 "virsh migrate --live vm1 $PEER_URI_B --migrateuri tcp://$LINK_B")
    check "virsh migrate --live on the map ($out)" test $? = 0
    out=$(gx b 120 "wait_state vm1 running 120"); check "vm1 runs on b ($out)" test $? = 0
    check "$kb holds the LU on both of b's paths, nothing of a registered" eventually 30 holds_on_paths 7 "$kb" 2
    out=$(gx a 120 "write_through lab-lio 1; write_through lab-lio 2")
    check "a is fenced on both paths ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 0
    out=$(gx b 120 "write_through lab-lio 1; write_through lab-lio 2")
    check "b writes through each of its paths ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 2
    destroy_frees b vm1 7
}

# nvme_hosts: a and b connected to the storage box with NVMe/TCP (their
# own host IDs), each with the namespace as /dev/lab/nvme.
NVME=/dev/lab/nvme
nvme_hosts() {
    local h out
    for h in a b; do
        out=$(gx $h 90 "nvme_connect 10.0.2.2 $NVME_PORT && nvme_state")
        check "$h is connected to the storage box with NVMe/TCP ($out)" test "$out" = live
    done
}

# The pr plugin protects an NVMe namespace (nvmet on the storage box, Linux
# 7.x, over NVMe/TCP) as it protects a SCSI LU, under libvirt on hosts a
# and b (Linux 6.1: the PR ioctls for PR OUT, NVMe Reservation Report
# through the passthrough ioctl for PR IN; the registrant is the host, by
# its host ID). Every step is checked by the storage box's own connection
# with nvme-cli (resv-report). Last, the box itself acquires through the
# lockmgr tool: on Linux 7.x the plugin reads through the kernel's read
# ioctls, and they agree with nvme-cli.
scenario_nvme_reservations() {
    local ka kb out rc
    nvme_hosts
    check "the namespace starts free" nvme_free
    ka=$(key_of a $VM1); kb=$(key_of b $VM1)
    gx a 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    start_vm a vm1 $VM1 $NVME
    out=$(gx a 30 "cat /var/log/lockmgr/pr-commands.log"); log "  a's PR commands: $(echo $out)"
    check "a's plugin took the NVMe route and logged how it reads" \
        contains "$out" "$NVME transport: NVMe namespace 1: block PR ioctls for PR OUT.*Reservation Report through the passthrough ioctl"
    check "a's key $ka holds the namespace (NVMe type 3), nothing else registered" nvme_holds "$ka"
    out=$(gx a 60 disk_write $NVME); check "a's kernel writes ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write $NVME); check "b's kernel write is refused ($out)" contains "$out" "WRITE FAILED: .*(Invalid exchange|Input/output error)"
    out=$(gx b 300 vm_create vm2 $VM2 $NVME); rc=$?
    check "another VM with the namespace is refused on b" test $rc != 0
    check "b's refusal names the namespace and a's key ($out)" contains "$out" "$NVME.*$ka"
    message "virsh create on host b of a VM whose NVMe namespace host a holds" "$out"
    out=$(gx b 300 vm_create vm2 $VM2 /dev/lab/lun2 $NVME); rc=$?
    check "a VM with a free SCSI LU and the held namespace is refused on b" test $rc != 0
    check "all or nothing: the free LU was left untouched" free 2
    check "still a's key only on the namespace" nvme_holds "$ka"
    out=$(gx a 400 "virsh migrate --live vm1 $PEER_URI_B --migrateuri tcp://$LINK_B")
    check "virsh migrate --live with the namespace (handover with the state string) ($out)" test $? = 0
    out=$(gx b 120 "wait_state vm1 running 120"); check "vm1 runs on b ($out)" test $? = 0
    check "b's key $kb holds the namespace, nothing of a registered" eventually 30 nvme_holds "$kb"
    out=$(gx a 60 disk_write $NVME); check "a is fenced: its kernel write is refused ($out)" contains "$out" "WRITE FAILED: .*(Invalid exchange|Input/output error)"
    out=$(gx b 60 disk_write $NVME); check "b's kernel writes ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 'kill -KILL $(qemu_pid vm1)'); check "vm1's QEMU killed on b ($out)" test $? = 0
    check "b's keeper releases the namespace after QEMU's SIGKILL" eventually 60 nvme_free
    gx b 60 "wait_gone vm1 60" >/dev/null
    start_vm a vm1 $VM1 $NVME
    check "a holds it again" nvme_holds "$ka"
    gx a 120 "virsh destroy vm1" >/dev/null
    check "virsh destroy on a: no registrant left, not even key 0" eventually 30 nvme_free
    out=$(gx c 120 "lockmgr_pr acquire --uuid $VM3 --name vm3 --disk $NVME >/dev/null && nvme_report && nvme_pr_read && cat /tmp/lockmgr-pr-commands.log"); rc=$?
    log "  c: $(echo $out)"
    check "the storage box acquires the namespace with the lockmgr tool (exit $rc)" test $rc = 0
    check "on Linux 7.x the plugin reads through the kernel's read ioctls" \
        contains "$out" "$NVME transport: NVMe namespace 1: .*the kernel's read ioctls for PR IN"
    check "the kernel's read ioctls and nvme resv-report agree" \
        test "$(sed -n 1p <<< "$out")" = "$(sed -n 2p <<< "$out")"
    check "... on a type 3 reservation" contains "$(sed -n 1p <<< "$out")" "^type 3 holder [0-9a-f]{16} keys \[[0-9a-f]{16}\]$"
    out=$(gx c 120 "lockmgr_pr release --uuid $VM3 --name vm3 --disk $NVME"); check "lockmgr release on the box ($out)" test $? = 0
    check "released: the namespace is free" nvme_free
}

# The storage box's target gone (its port unlinked: every host's
# controller drops and keeps reconnecting; the hosts connected with
# fast_io_fail_tmo=2, so I/O fails instead of queueing) while host a
# acquires a SCSI LU and the namespace with the lockmgr tool: a clear
# error naming the namespace, and nothing half-acquired (the LU stays
# free). A `virsh create` of such a VM is refused too. The target back:
# the hosts reconnect and the same start under libvirt succeeds.
scenario_nvme_target_down() {
    local ka out rc
    nvme_hosts
    check "the namespace starts free" nvme_free
    ka=$(key_of a $VM1)
    gx c 30 nvmet_down >/dev/null
    out=$(gx a 60 "wait_for 30 sh -c '! grep -qx live /sys/class/nvme/nvme0/state'; nvme_state")
    check "a's controller lost the target ($out)" test "$out" != live
    out=$(gx a 120 "lockmgr_pr acquire --uuid $VM1 --name vm1 --disk /dev/lab/lun2 --disk $NVME"); rc=$?
    check "the acquire with the target down fails (exit $rc)" test $rc != 0 -a $rc != 124
    check "its error names the namespace ($out)" contains "$out" "$NVME"
    message "lockmgr acquire (pr plugin) of a SCSI LU and an NVMe namespace whose target is down" "$out"
    check "nothing half-acquired: LUN 2 is free" free 2
    out=$(gx a 300 vm_create vm1 $VM1 /dev/lab/lun2 $NVME); rc=$?
    check "virsh create with the target down is refused (exit $rc)" test $rc != 0 -a $rc != 124
    message "virsh create of a VM whose NVMe target is down" "$out"
    check "still nothing half-acquired: LUN 2 is free" free 2
    gx c 30 nvmet_up >/dev/null
    out=$(gx a 90 "nvme_live 60; nvme_state"); check "a reconnects when the target is back ($out)" test "$out" = live
    check "nothing of a is registered on the namespace" nvme_free
    start_vm a vm1 $VM1 /dev/lab/lun2 $NVME
    check "a's key $ka holds the namespace" nvme_holds "$ka"
    check "and LUN 2" holds 2 "$ka"
    destroy_frees a vm1 2
    check "the namespace is free again" eventually 30 nvme_free
}

# lio_setup: a serves the LIO LU, both hosts map their two paths to it as
# /dev/mapper/lab-lio (done once: multipath_block_pr, or the first of
# these scenarios run alone), every path up and active, the LU cleared.
lio_setup() {
    local out
    out=$(gx a 60 lio_serve); check "a serves an LU with LIO ($out)" test $? = 0
    # iscsistart talks on stderr: kept out of the answer unless the login fails.
    out=$(gx a 90 "{ lio_map 127.0.0.1 >/tmp/lio-map.log 2>&1 || { cat /tmp/lio-map.log; false; }; } && lio_reinstate")
    check "a's lab-lio has 2 active paths ($out)" test "$out" = 2
    out=$(gx b 90 "{ lio_map $LINK_A >/tmp/lio-map.log 2>&1 || { cat /tmp/lio-map.log; false; }; } && lio_reinstate")
    check "b's lab-lio has 2 active paths ($out)" test "$out" = 2
    prtool --initiator $OBSERVER "${LUN[7]}" rai 0bad0bad clear 0bad0bad >/dev/null 2>&1
    check "the LIO LU starts free" free 7
}

# A path that comes back after the acquire without the key gets it again
# from the keeper. Path 2 of a's map is failed in dm before the start, so
# RESERVE goes down path 1 (path 1's nexus holds the reservation; the
# kernel's REGISTER still went down both paths: dm-multipath registers on
# failed paths too). Path 2's nexus then loses its registration (sg_persist
# on its own disk: what a target that forgot the nexus, or a new session,
# shows), and stays without it while dm has the path failed: the keeper
# only registers on paths dm-multipath uses. reinstate_path: within the
# keeper's interval (500 ms here) LIO has the key on both nexuses again,
# and a writes through each path in turn.
scenario_multipath_path_return() {
    local ka out p2 d2
    lio_setup
    ka=$(key_of a $VM1)
    p2=$(gx a 30 "lio_path 2"); d2=$(gx a 30 "lio_disk 2")
    out=$(gx a 30 "dmsetup message lab-lio 0 fail_path $p2 && mp_active lab-lio"); check "a's path 2 ($p2, $d2) failed in dm ($out)" test "$out" = 1
    start_vm a vm1 $VM1 /dev/mapper/lab-lio
    check "$ka holds the LU, registered on both of a's paths" holds_on_paths 7 "$ka" 2
    log "  LIO's registrations: $(gx a 30 lio_nexuses | paste -sd'|')"
    out=$(gx a 30 "sg_persist -n -o -G -K $ka -S 0 $d2 && lio_registrations $ka")
    check "path 2's nexus lost its registration (LIO: $(echo $out | tail -c 3) left)" test "${out##*$'\n'}" = 1
    check "the reader sees $ka once: path 1's nexus, still holding" holds_on_paths 7 "$ka" 1
    sleep 3
    check "3 s later, path 2 failed in dm: the keeper left it alone" holds_on_paths 7 "$ka" 1
    out=$(gx a 60 "time_reregistered $p2 $ka"); local rc=$?
    check "reinstate_path: the keeper registers path 2's nexus again ($out)" test $rc = 0
    log "  timing: $out (keeper_interval_ms = 500)"
    check "the reader sees $ka holding, registered on both nexuses" holds_on_paths 7 "$ka" 2
    out=$(gx a 30 keeper_log); check "a's keeper says what it did, naming path 2's disk $d2" contains "$out" "lab-lio: key $ka registered on 1 of the map's 2 paths; registered it through every usable path.*: .*$d2"
    log "  keeper: $(grep 'registered it through' <<< "$out" | tail -1)"
    check "a's keeper applied no failure action" lacks "$out" "LOCK LOST"
    out=$(gx a 120 "write_through lab-lio 1; write_through lab-lio 2")
    check "a writes through each of its paths ($(echo $out))" test "$(grep -c 'WRITE OK' <<< "$out")" = 2
    destroy_frees a vm1 7
}

# A path really down (its disk offline, failed in dm) when a VM starts on
# the map: the kernel's IOC_PR_REGISTER goes down every path of the map,
# the dead one fails, and dm-multipath then unregisters the key on every
# path: the start is refused with the plugin's message, and nothing is
# registered anywhere (the reader, and LIO's own list). Once the path is
# back, the same start succeeds with the key on both paths.
scenario_multipath_path_down() {
    local ka out rc
    lio_setup
    ka=$(key_of a $VM1)
    out=$(gx a 30 "path_down 2 && mp_active lab-lio"); check "a's path 2 is down ($out active)" test "$out" = 1
    gx a 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    out=$(gx a 300 "vm_create vm1 $VM1 /dev/mapper/lab-lio"); rc=$?
    check "the start with a path down is refused (exit $rc)" test $rc != 0
    check "the refusal names the map and the kernel's register ($out)" contains "$out" "lab-lio.*IOC_PR_REGISTER"
    message "virsh create on a dm-multipath map with one path down (block PR)" "$out"
    log "  a's PR commands: $(gx a 30 'cat /var/log/lockmgr/pr-commands.log' | paste -sd'|')"
    check "nothing is registered on the LU (reader)" free 7
    out=$(gx a 30 "lio_registrations $ka"); check "LIO has no registration of $ka on any nexus ($out)" test "$out" = 0
    out=$(gx a 60 "virsh list --all --name | grep -c . || true"); check "no domain left on a" test "$out" = 0
    out=$(gx a 30 "path_up 2 && mp_active lab-lio"); check "a's path 2 is back ($out active)" test "$out" = 2
    start_vm a vm1 $VM1 /dev/mapper/lab-lio
    check "with both paths up the start holds the LU, $ka on both paths" holds_on_paths 7 "$ka" 2
    destroy_frees a vm1 7
}

# The block-PR transport on a plain disk: block_pr = "always" on a, the
# VM's disk is a's /dev/sdX of the LIO LU (its first session's disk, one
# I_T nexus). The plugin says it uses the kernel's PR ioctls; the key is
# registered once and holds; a writes through that disk, b cannot; b's VM
# with its own disk of the LU is refused naming a's key; destroy releases.
scenario_block_pr_sd() {
    local ka da db out rc
    lio_setup
    ka=$(key_of a $VM1)
    da=$(gx a 30 "lio_disk 1"); db=$(gx b 30 "lio_disk 1")
    out=$(gx a 300 "pr_conf_set block_pr '\"always\"' && libvirtd_restart"); check "block_pr = always on a ($out)" test $? = 0
    gx a 30 ": > /var/log/lockmgr/pr-commands.log" >/dev/null
    start_vm a vm1 $VM1 "$da"
    out=$(gx a 30 "cat /var/log/lockmgr/pr-commands.log"); log "  a's PR commands: $(echo $out)"
    check "the plugin used the kernel's PR ioctls on $da" contains "$out" "$da transport: block PR ioctls.*block_pr = always"
    check "$ka holds the LU, registered once (a's nexus of $da)" holds_on_paths 7 "$ka" 1
    out=$(gx a 60 disk_write "$da"); check "a's kernel writes through $da ($out)" contains "$out" "WRITE OK"
    out=$(gx b 60 disk_write "$db"); check "b's kernel write through $db is refused ($out)" contains "$out" "WRITE FAILED"
    out=$(gx b 300 vm_create vm2 $VM2 "$db"); rc=$?
    check "another VM with the LU is refused on b" test $rc != 0
    check "b's refusal names the disk and a's key ($out)" contains "$out" "$db.*$ka"
    message "virsh create on host b of a VM whose plain disk (block PR) host a holds" "$out"
    check "nothing left of b's attempt: $ka alone" holds_on_paths 7 "$ka" 1
    destroy_frees a vm1 7
    out=$(gx a 300 "pr_conf_unset block_pr && libvirtd_restart"); check "block_pr back to auto on a ($out)" test $? = 0
}

# The storage box loses the LU while a VM holds it, and gets it back
# without its reservation state (what a box rebooted without restoring its
# PR state shows). LIO on a unmaps LUN 0; from then on the hosts' commands
# to LUN 0 reach LIO's virtual LUN 0 (an empty read-only device it shows
# when no LU is mapped there), which has no reservation and no key. a's
# keeper sees the reservation gone and applies the VM's failure action
# (poweroff, through libvirt): the VM is no longer fenced, so it stops. b's
# start meanwhile is refused (the device refuses the REGISTER) and leaves
# nothing. The LU back: LIO dropped the registrations with the LUN, and
# b's VM starts and holds it on both of b's paths.
scenario_storage_lu_gone() {
    local ka kb out rc
    lio_setup
    ka=$(key_of a $VM1); kb=$(key_of b $VM2)
    start_vm a vm1 $VM1 /dev/mapper/lab-lio
    check "$ka holds the LU on both of a's paths" holds_on_paths 7 "$ka" 2
    out=$(gx a 30 lio_lun_remove); check "the storage box drops the LU ($out)" test $? = 0
    check "the reader now reaches LIO's virtual LUN 0: no reservation, no key" free 7
    out=$(gx a 120 "wait_gone vm1 90"); check "a's keeper powered vm1 off ($out)" test $? = 0
    out=$(gx a 30 keeper_log)
    check "a's keeper says the lock was lost and what it did" contains "$out" "LOCK LOST while running: /dev/mapper/lab-lio: no reservation on the LU any more.*failure action poweroff: done through libvirt"
    log "  keeper: $(grep 'LOCK LOST' <<< "$out" | tail -1)"
    message "a's keeper log when the storage box lost the LU (pr-keeper, not virsh)" "$(grep 'LOCK LOST' <<< "$out" | tail -1 | sed 's/^[^ ]* //')"
    out=$(gx b 300 vm_create vm2 $VM2 /dev/mapper/lab-lio); rc=$?
    check "b's start while the LU is gone is refused (exit $rc)" test $rc != 0
    check "the refusal names the map and the kernel's register ($out)" contains "$out" "lab-lio.*IOC_PR_REGISTER"
    message "virsh create on a dm-multipath map whose LU is gone from the storage box" "$out"
    log "  b's kernel: $(gx b 30 "dmesg | grep -i -E 'PR command failed|sense' | tail -3" | paste -sd'|')"
    out=$(gx b 60 "virsh list --all --name | grep -c . || true"); check "no domain left on b" test "$out" = 0
    check "nothing registered by b's attempt" free 7
    out=$(gx a 30 "lio_lun_add"); check "the LU is back ($out)" test $? = 0
    gx a 30 lio_reinstate >/dev/null; gx b 30 lio_reinstate >/dev/null
    check "back: the LU has none of its old registrations" free 7
    start_vm b vm2 $VM2 /dev/mapper/lab-lio
    check "b's VM now holds the LU, $kb on both of b's paths" holds_on_paths 7 "$kb" 2
    destroy_frees b vm2 7
}

# Host a powered off (its guest killed from here) while vm1 runs: its
# reservation stays (the fence); b cannot start vm1 until
# `pr-tool clear-host --host-is-dead` names a; then it can. Runs last.
scenario_dead_host() {
    local ka kb out rc
    kb=$(key_of b $VM1)
    vm1_on_a
    guest_kill a
    check "a is gone; its key still holds LUN 1" holds 1 "$ka"
    out=$(gx b 300 vm_create vm1 $VM1 $D1); rc=$?
    check "b cannot start vm1 while dead a's reservation stands" test $rc != 0
    check "b's refusal names the disk and a's key ($out)" contains "$out" "$D1.*$ka"
    check "b's refusal points at clear-host" contains "$out" "clear-host"
    message "virsh create on host b after host a died holding the disk" "$out"
    printf 'iscsi_initiator = "%s"\nkeeper_dir = "%s"\n' iqn.2026-01.lockmgr.lab:admin "$run/admin-keeper" > "$run/admin-pr.conf"
    out=$(prtool clear-host --config "$run/admin-pr.conf" --dead-host "$(iqn_of a)" --log "$run/clear-host.log" "${LUN[1]}" 2>&1); rc=$?
    check "clear-host without --host-is-dead is refused (exit $rc: $out)" test $rc = 75
    check "the refusal changed nothing" holds 1 "$ka"
    out=$(prtool clear-host --config "$run/admin-pr.conf" --dead-host "$(iqn_of a)" --host-is-dead --log "$run/clear-host.log" "${LUN[1]}" 2>&1); rc=$?
    check "clear-host --host-is-dead naming a (exit $rc: $out)" test $rc = 0
    check "the clearing is logged" grep -q "dropped the keys of dead host part" "$run/clear-host.log"
    log "  clear-host log: $(cat "$run/clear-host.log")"
    check "LUN 1 is free" free 1
    start_vm b vm1 $VM1 $D1
    check "b now holds LUN 1 with $kb" holds 1 "$kb"
    destroy_frees b vm1 1
}
