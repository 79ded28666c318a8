# Functions the runner's commands call inside a lab guest (each command
# script sources this file). Every wait polls a condition with a deadline.
for a in $(cat /proc/cmdline); do
    case "$a" in lab.*=*) k=${a%%=*}; k=${k#lab.}; declare "lab_$k=${a#*=}" ;; esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LIBVIRT_DEFAULT_URI=qemu:///system
PEER_URI="qemu+tcp://$lab_peerip/system"

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || { echo "timed out waiting for: $*"; return 1; }
        sleep 0.2
    done
}

libvirtd_start() {
    pgrep -x virtlogd >/dev/null || virtlogd -d
    LIBVIRT_LOCK_MANAGER_PLUGIN_DIR="$lab_prefix/lib/lock_manager" libvirtd -d --listen
    wait_for 120 virsh list
}

# libvirtd_restart: kills libvirtd only (QEMU and the keepers run on), starts it again.
libvirtd_restart() {
    local pid; pid=$(pgrep -x libvirtd) || { echo "no libvirtd"; return 1; }
    kill "$pid"
    wait_for 60 sh -c "! kill -0 $pid"
    libvirtd_start
}

# domain_xml NAME UUID DISK...: a domain that needs no OS (SeaBIOS idles).
# DISK is a path, with :ro for a read-only disk or :shared for <shareable/>.
domain_xml() {
    local name=$1 uuid=$2 i=0 d path extra
    shift 2
    printf "<domain type='qemu'>\n  <name>%s</name>\n  <uuid>%s</uuid>\n" "$name" "$uuid"
    printf "  <memory unit='MiB'>32</memory>\n  <vcpu>1</vcpu>\n"
    printf "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
    printf "  <on_lockfailure>poweroff</on_lockfailure>\n  <devices>\n"
    for d in "$@"; do disk_xml "$d" $i; i=$((i + 1)); done
    printf "    <controller type='scsi' model='virtio-scsi'/>\n"
    printf "    <memballoon model='none'/>\n  </devices>\n</domain>\n"
}

# disk_xml DISK INDEX: one <disk> (DISK as in domain_xml; :scsi for a disk
# on the SCSI controller, which unplugs without the guest's help; :managed
# for a SCSI LUN whose reservations belong to the guest, through
# libvirt's qemu-pr-helper).
disk_xml() {
    local path=${1%%:*} opt= dev
    [ "$path" = "$1" ] || opt=${1#*:}
    dev=vd$(printf "\\x$(printf %x $((97 + $2)))")
    case "$opt" in
        scsi) printf "    <disk type='block' device='disk'>\n"
              printf "      <driver name='qemu' type='raw' cache='none'/>\n"
              printf "      <source dev='%s'/>\n      <target dev='sd%s' bus='scsi'/>\n" "$path" "${dev#vd}" ;;
        managed) printf "    <disk type='block' device='lun'>\n"
              printf "      <driver name='qemu' type='raw' cache='none'/>\n"
              printf "      <source dev='%s'><reservations managed='yes'/></source>\n" "$path"
              printf "      <target dev='sd%s' bus='scsi'/>\n" "${dev#vd}" ;;
        *)    printf "    <disk type='block' device='disk'>\n"
              printf "      <driver name='qemu' type='raw' cache='none'/>\n"
              printf "      <source dev='%s'/>\n      <target dev='%s' bus='virtio'/>\n" "$path" "$dev" ;;
    esac
    case "$opt" in
        ro) printf "      <readonly/>\n" ;;
        shared) printf "      <shareable/>\n" ;;
    esac
    printf "    </disk>\n"
}

# vm_create NAME UUID DISK...: virsh create; prints virsh's output.
vm_create() {
    domain_xml "$@" > "/tmp/$1.xml"
    virsh create "/tmp/$1.xml"
}

vm_state() { virsh domstate "$1" 2>/dev/null | head -1; }

# wait_state NAME STATE SECONDS
wait_state() {
    local end=$(( $(date +%s) + $3 ))
    until [ "$(vm_state "$1")" = "$2" ]; do
        [ "$(date +%s)" -lt "$end" ] || { echo "$1 is '$(vm_state "$1")', not '$2' after $3 s"; return 1; }
        sleep 0.2
    done
}

# wait_gone NAME SECONDS: the domain no longer exists here.
wait_gone() {
    local end=$(( $(date +%s) + $2 ))
    while virsh domstate "$1" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || { echo "$1 still exists after $2 s"; return 1; }
        sleep 0.2
    done
}

qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }

# disk_write PATH: one direct write of one logical block (512 bytes on the
# lab's LUs, 4 KiB on its NVMe namespace: O_DIRECT needs a whole block) by
# this host's kernel (its own I_T nexus, or NVMe host); prints WRITE OK or
# WRITE FAILED with the kernel's reason.
disk_write() {
    local bs; bs=$(blockdev --getss "$1" 2>/dev/null) || bs=512
    if out=$(dd if=/dev/zero of="$1" bs="$bs" count=1 seek=2000 oflag=direct conv=notrunc 2>&1); then
        echo "WRITE OK"
    else
        echo "WRITE FAILED: $(echo "$out" | head -1)"
        dmesg | grep -i -E 'reservation|nexus' | grep -v E820 | tail -2
    fi
}

# destroy_all: every domain of this host gone (the runner's clean-up).
destroy_all() {
    local d
    for d in $(virsh list --name); do virsh destroy "$d" >/dev/null 2>&1; done
    wait_for 60 sh -c '[ -z "$(virsh list --name)" ]'
}

# time_free_after_kill NAME DISK: SIGKILL the domain's QEMU, then poll the
# LU with PR IN (sg_persist, this host's nexus) until no key is left;
# prints the delay in ms.
time_free_after_kill() {
    local pid; pid=$(qemu_pid "$1") || return 1
    local t0; t0=$(date +%s%N)
    kill -KILL "$pid" || return 1
    local end=$(( $(date +%s) + 60 ))
    until sg_persist -n -i -k "$2" | grep -q 'there are NO registered'; do
        [ "$(date +%s)" -lt "$end" ] || { echo "still registered after 60 s"; return 1; }
        sleep 0.05
    done
    echo "free $(( ($(date +%s%N) - t0) / 1000000 )) ms after SIGKILL"
}

# hold_image_lock DISK: a process holding the byte-range lock by which QEMU
# says "I do not share write access" (raw-posix: byte 200 + perm bit 1), so
# a QEMU here that needs to write this disk fails to activate it. Prints its pid.
hold_image_lock() {
    nohup python3 -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 201)
open("/tmp/image-lock.ready", "w").close()
time.sleep(100000)' "$1" > /tmp/image-lock.log 2>&1 &
    local pid=$!
    wait_for 30 test -e /tmp/image-lock.ready || { cat /tmp/image-lock.log; return 1; }
    echo "$pid"
}

keeper_log() { cat /run/lockmgr/pr/keeper.log 2>/dev/null; }

# The lab's multipath maps: /dev/mapper/lab-mp (LUN lab_mplun through both
# sessions, Tests/Lab/guest/boot.sh) and /dev/mapper/lab-lio (lio_map).
MP=/dev/mapper/lab-mp
# map_paths MAP: its paths, major:minor, from its table.
map_paths() { dmsetup table "$1" | grep -o -E '[0-9]+:[0-9]+'; }

# mp_active [MAP]: how many of the map's paths dm-multipath has active ("A").
mp_active() { dmsetup status "${1:-lab-mp}" | grep -o -E '[0-9]+:[0-9]+ A' | wc -l; }

# write_through MAP I: one write through /dev/mapper/MAP while only its
# I-th path (1-based) is active: every other path failed with `dmsetup
# message fail_path`, then reinstated. Prints "path MAJ:MIN: WRITE OK|FAILED...".
write_through() {
    local i=0 p mine= out
    [ -b "/dev/mapper/$1" ] || { echo "/dev/mapper/$1 is not a block device"; return 1; }
    for p in $(map_paths "$1"); do
        i=$((i + 1))
        if [ "$i" = "$2" ]; then mine=$p; else dmsetup message "$1" 0 fail_path "$p"; fi
    done
    out=$(disk_write "/dev/mapper/$1")
    for p in $(map_paths "$1"); do [ "$p" = "$mine" ] || dmsetup message "$1" 0 reinstate_path "$p"; done
    echo "path $mine: $out"
}
mp_write_through() { write_through lab-mp "$1"; }

# kernel_pr_register DEV KEY: the block layer's IOC_PR_REGISTER (register
# and ignore, linux/pr.h) on DEV, as a lock manager using the kernel's PR
# API sends it (sd adds APTPL to every REGISTER; dm-multipath sends it
# down every path). Prints "ioctl returned R" (R > 0: a SCSI status the
# kernel passed up) or the errno.
kernel_pr_register() {
    python3 -c 'import fcntl, os, struct, sys
IOC_PR_REGISTER = (1 << 30) | (24 << 16) | (ord("p") << 8) | 200
fd = os.open(sys.argv[1], os.O_RDWR)
arg = bytearray(struct.pack("=QQII", 0, int(sys.argv[2], 16), 1, 0))
try:
    print("ioctl returned %d" % fcntl.ioctl(fd, IOC_PR_REGISTER, arg, True))
except OSError as e:
    print("ioctl failed: errno %d (%s)" % (e.errno, e.strerror))' "$@"
}

# The kernel's own iSCSI target (LIO), served by host a for the block-PR
# scenario: one file-backed LU (on /run, a tmpfs), LUN 0 of LIO_IQN, any
# initiator admitted, portals on a's loopback and on the private link
# (host b), ports 3260 and 3261 on each (a host's two paths: iscsistart
# logs in once per portal), and on a's slirp address (which the runner's
# reader reaches through QEMU's hostfwd). Unlike tgt, LIO keeps registrations through power loss
# (APTPL, in /var/target/pr), so it takes the kernel's PR ioctls.
LIO_IQN=iqn.2026-01.lockmgr.lab:lio
lio_serve() {
    local c=/sys/kernel/config/target t
    [ -d $c ] || mount -t configfs configfs /sys/kernel/config
    # Served already (an earlier scenario): nothing to do.
    [ "$(cat $c/iscsi/$LIO_IQN/tpgt_1/enable 2>/dev/null)" = 1 ] && return 0
    # LIO writes APTPL registrations to /var/target/pr/aptpl_<unit serial>
    # from kernel threads, which share PID 1's root: this overlay.
    mkdir -p /var/target/pr
    truncate -s 16M /run/lio.img
    mkdir -p $c/core/fileio_0/lu
    echo "fd_dev_name=/run/lio.img,fd_dev_size=16777216" > $c/core/fileio_0/lu/control
    echo lab-lio-lu > $c/core/fileio_0/lu/wwn/vpd_unit_serial
    echo 1 > $c/core/fileio_0/lu/enable
    t=$c/iscsi/$LIO_IQN/tpgt_1
    mkdir -p $t/lun/lun_0
    ln -s $c/core/fileio_0/lu $t/lun/lun_0/lu
    for p in 127.0.0.1:3260 127.0.0.1:3261 10.0.2.15:3260 "$lab_link:3260" "$lab_link:3261"; do mkdir "$t/np/$p"; done
    echo 1 > $t/attrib/generate_node_acls
    echo 0 > $t/attrib/demo_mode_write_protect
    echo 0 > $t/attrib/authentication
    echo 1 > $t/enable
}

# lio_paths: the block devices (major:minor) of this host's sessions to LIO_IQN.
lio_paths() {
    local s dev
    for s in /sys/class/iscsi_session/*; do
        grep -qx $LIO_IQN "$s/targetname" 2>/dev/null || continue
        for dev in "$s"/device/target*/*/block/sd*; do [ -e "$dev/dev" ] && cat "$dev/dev"; done
    done
}
lio_has_two_paths() { [ "$(lio_paths | wc -l)" -ge 2 ]; }

# lio_map ADDRESS: logs in to LIO_IQN through ADDRESS:3260 and :3261 (two
# sessions, two I_T nexuses) and maps both paths with dm-multipath as
# /dev/mapper/lab-lio; prints the paths.
lio_map() {
    local port
    # Mapped already (an earlier scenario): its paths.
    if dmsetup status lab-lio >/dev/null 2>&1; then map_paths lab-lio | paste -sd' '; return 0; fi
    for port in 3260 3261; do
        LD_LIBRARY_PATH="$lab_cache/root/usr/lib/x86_64-linux-gnu" \
            "$lab_cache/root/sbin/iscsistart" -i "$lab_iqn" -t $LIO_IQN -g 1 -a "$1" -p $port || return 1
    done
    wait_for 30 lio_has_two_paths || return 1
    set -- $(lio_paths)
    dmsetup create lab-lio --table "0 $(cat /sys/dev/block/$1/size) multipath 0 0 1 1 round-robin 0 2 1 $1 1 $2 1" || return 1
    dmsetup mknodes lab-lio
    echo "$*"
}

# --- NVMe over TCP: the storage box (guest c, nvmet) and its hosts ---
NVME_NQN=nqn.2026-01.lockmgr.lab:nvme
NVMET=/sys/kernel/config/nvmet
NVME=/dev/lab/nvme

# nvmet_up (storage box): subsystem NVME_NQN, namespace 1 with reservations
# on (resv_enable), backed by a file on a tmpfs (on the 9p-backed overlay
# nvmet sees "invalid LBA data size 0"), exported on tcp port 4420 of
# every address. After nvmet_down it only links the port again: the
# namespace, and the reservations nvmet keeps in memory, stayed.
nvmet_up() {
    local s=$NVMET/subsystems/$NVME_NQN p=$NVMET/ports/1
    if [ ! -d "$s" ]; then
        mkdir -p /run/nvmet && truncate -s 64M /run/nvmet/ns1.img || return 1
        mkdir "$s" && echo 1 > "$s/attr_allow_any_host" && mkdir "$s/namespaces/1" || return 1
        echo /run/nvmet/ns1.img > "$s/namespaces/1/device_path"
        echo 1 > "$s/namespaces/1/resv_enable"
        echo 1 > "$s/namespaces/1/enable" || return 1
        mkdir "$p" && echo tcp > "$p/addr_trtype" && echo ipv4 > "$p/addr_adrfam" || return 1
        echo 0.0.0.0 > "$p/addr_traddr" && echo 4420 > "$p/addr_trsvcid" || return 1
    fi
    [ -e "$p/subsystems/$NVME_NQN" ] || ln -s "$s" "$p/subsystems/$NVME_NQN"
}

# nvmet_down (storage box): the target gone from the network: the port
# unlinked, which drops every host's controller; hosts keep trying to
# reconnect (reconnect_delay).
nvmet_down() { rm -f "$NVMET/ports/1/subsystems/$NVME_NQN"; }

# This host's NVMe host ID and NQN: set per guest (every guest shares this
# machine's /etc/nvme). The registrant of an NVMe reservation is the host ID.
nvme_hostid() { printf '7ab0c0de-0000-4000-8000-0000000000%s' "$(printf %02x "'$lab_host")"; }
nvme_hostnqn() { echo "nqn.2014-08.org.nvmexpress:uuid:$(nvme_hostid)"; }

# nvme_connect ADDR PORT: this host's kernel connects to the storage box
# with NVMe/TCP (through /dev/nvme-fabrics: no nvme-cli needed) and
# /dev/lab/nvme becomes its namespace (a node, as /dev/lab/lunN). While the
# target is gone the kernel reconnects every second; fast_io_fail_tmo=2:
# after 2 s I/O fails instead of waiting for it (by default it queues up
# to ctrl_loss_tmo, 600 s).
nvme_connect() {
    if [ ! -b $NVME ]; then
        echo "transport=tcp,traddr=$1,trsvcid=$2,nqn=$NVME_NQN,hostnqn=$(nvme_hostnqn),hostid=$(nvme_hostid),reconnect_delay=1,fast_io_fail_tmo=2" > /dev/nvme-fabrics || return 1
        wait_for 30 sh -c 'ls -d /sys/block/nvme*n1' || return 1
        local dev; dev=$(cat /sys/block/nvme*n1/dev | head -1)
        mkdir -p /dev/lab && mknod $NVME b $(tr ':' ' ' <<< "$dev")
    fi
    nvme_live
}

# nvme_live [SECONDS]: this host's controller is connected ("live").
nvme_live() { wait_for "${1:-30}" grep -qx live /sys/class/nvme/nvme0/state; }
nvme_state() { cat /sys/class/nvme/nvme0/state; }

# nvme_observe (storage box): the box connects to its own target, as a
# third host (its own host ID): the independent reader's connection.
nvme_observe() { nvme_connect 127.0.0.1 4420; }

# nvme_report (storage box): the reservation as nvme-cli reads it on the
# box's own connection (Reservation Report, extended data structure):
# "type T holder K keys [K1 K2]": T the NVMe type (0: none; 3: write
# exclusive, registrants only), K the holder's key (-: none), keys in the
# pr plugin's hex.
nvme_report() {
    nvme_live 60 || { echo "the box's own connection is $(nvme_state)"; return 1; }
    nvme resv-report $NVME --eds -o json | python3 -c 'import json, sys
r = json.load(sys.stdin)
regs = r.get("regctlext", r.get("regctl_eds", []))
keys = ["%016x" % int(g["rkey"]) for g in regs]
holder = [k for g, k in zip(regs, keys) if int(g["rcsts"]) & 1]
print("type %d holder %s keys [%s]" % (int(r["rtype"]), holder[0] if holder and int(r["rtype"]) else "-", " ".join(keys)))'
}

# nvme_pr_read (storage box): the same through the kernel's read ioctls
# (Linux 6.19+: IOC_PR_READ_RESERVATION, IOC_PR_READ_KEYS), same format.
nvme_pr_read() {
    python3 -c 'import ctypes, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
res = bytearray(16)
fcntl.ioctl(fd, (2 << 30) | (16 << 16) | (ord("p") << 8) | 207, res, True)
key, gen, rtype = struct.unpack("=QII", res)
keys = ctypes.create_string_buffer(8 * 64)
arg = bytearray(struct.pack("=IIQ", 0, 64, ctypes.addressof(keys)))
fcntl.ioctl(fd, (3 << 30) | (16 << 16) | (ord("p") << 8) | 206, arg, True)
n = struct.unpack("=IIQ", arg)[1]
ks = ["%016x" % k for k in struct.unpack("=%dQ" % n, keys.raw[:8 * n])]
print("type %d holder %s keys [%s]" % (rtype, "%016x" % key if rtype else "-", " ".join(ks)))' $NVME
}

# lockmgr_pr COMMAND ARGS...: the lockmgr tool with the pr plugin, as
# this host (hosts a and b: the iscsi_initiator of their qemu-pr.conf; the
# storage box: host_id 3), without a keeper (the tool's calls come and
# go), its PR commands logged to /tmp/lockmgr-pr-commands.log.
lockmgr_pr() {
    mkdir -p /tmp/lockmgr-conf
    {
        if [ "$lab_host" = c ]; then echo 'host_id = 3'; else grep '^iscsi_initiator' /etc/libvirt/qemu-pr.conf; fi
        printf 'keeper = 0\ncommand_log = "/tmp/lockmgr-pr-commands.log"\n'
    } > /tmp/lockmgr-conf/qemu-pr.conf
    local command=$1; shift
    "$lab_prefix/bin/lockmgr" "$command" --plugin pr --plugin-dir "$lab_prefix/lib/lock_manager" --config-dir /tmp/lockmgr-conf "$@"
}

# nvme_clear (storage box): a clean slate: register (or replace) the box's
# own key, then Reservation Release with action Clear.
nvme_clear() {
    nvme_live 60 || return 1
    nvme resv-register $NVME --nrkey=195890861 --rrega=0 --iekey >/dev/null 2>&1 \
        || nvme resv-register $NVME --nrkey=195890861 --rrega=2 --iekey >/dev/null
    nvme resv-release $NVME --crkey=195890861 --rrela=1 >/dev/null
}

# lio_disk I: the node of lab-lio's I-th path (1-based), /dev/sdX: that
# path's own disk, its own I_T nexus.
lio_disk() { echo "/dev/$(basename "$(readlink -f "/sys/dev/block/$(map_paths lab-lio | sed -n "${1}p")")")"; }
# lio_path I: the I-th path of lab-lio, major:minor (as dmsetup names it).
lio_path() { map_paths lab-lio | sed -n "${1}p"; }

# lio_registrations KEY: how many I_T nexuses LIO (the storage box, host a)
# has registered with KEY (hex, 16 digits), from its own configfs view.
LIO_PR=/sys/kernel/config/target/core/fileio_0/lu/pr
lio_registrations() { grep -c -i "Key: 0x$1" $LIO_PR/res_pr_registered_i_pts || true; }

# lio_nexuses: LIO's registrations, one line each (initiator port with its ISID, key).
lio_nexuses() { cat $LIO_PR/res_pr_registered_i_pts; cat $LIO_PR/res_pr_holder_tg_port 2>/dev/null; }

# time_reregistered PATH KEY: reinstates lab-lio's PATH, then polls LIO's
# registrations until KEY is registered on 2 nexuses; prints the delay in ms.
time_reregistered() {
    local t0; t0=$(date +%s%N)
    dmsetup message lab-lio 0 reinstate_path "$1" || return 1
    local end=$(( $(date +%s) + 30 ))
    until [ "$(lio_registrations "$2")" = 2 ]; do
        [ "$(date +%s)" -lt "$end" ] || { echo "still $(lio_registrations "$2") registration(s) 30 s after reinstate_path"; return 1; }
        sleep 0.05
    done
    echo "registered on both nexuses $(( ($(date +%s%N) - t0) / 1000000 )) ms after reinstate_path"
}

# path_down I / path_up I: lab-lio's I-th path really down: its disk
# offline (the SCSI midlayer's state for a device that is gone: every
# command fails at once, host status DID_NO_CONNECT) and failed in the map,
# as multipathd's checker would fail it. path_up brings both back.
path_down() {
    local d; d=$(lio_disk "$1")
    echo offline > "/sys/class/block/${d#/dev/}/device/state" && dmsetup message lab-lio 0 fail_path "$(lio_path "$1")"
}
path_up() {
    local d; d=$(lio_disk "$1")
    echo running > "/sys/class/block/${d#/dev/}/device/state" && dmsetup message lab-lio 0 reinstate_path "$(lio_path "$1")"
}
# lio_reinstate: every path of lab-lio active again (what multipathd does once its checker passes).
lio_reinstate() {
    local p d
    for p in $(map_paths lab-lio); do
        d=$(basename "$(readlink -f "/sys/dev/block/$p")")
        [ "$(cat "/sys/class/block/$d/device/state")" = running ] || echo running > "/sys/class/block/$d/device/state"
        dmsetup message lab-lio 0 reinstate_path "$p"
    done
    mp_active lab-lio
}

# pr_conf_set NAME VALUE / pr_conf_unset NAME: one setting of this host's
# qemu-pr.conf (read by the plugin when libvirtd loads it: libvirtd_restart).
pr_conf_set() { pr_conf_unset "$1"; echo "$1 = $2" >> /etc/libvirt/qemu-pr.conf; }
pr_conf_unset() { sed -i "/^$1 /d" /etc/libvirt/qemu-pr.conf; }

# lio_lun_remove / lio_lun_add: the storage box's LU gone from its target
# (every command to it answered LOGICAL UNIT NOT SUPPORTED) and back.
lio_lun_remove() {
    local t=/sys/kernel/config/target/iscsi/$LIO_IQN/tpgt_1/lun/lun_0
    rm "$t/lu" && rmdir "$t"
}
lio_lun_add() {
    local c=/sys/kernel/config/target t=/sys/kernel/config/target/iscsi/$LIO_IQN/tpgt_1/lun/lun_0
    mkdir "$t" && ln -s $c/core/fileio_0/lu "$t/lu"
}
