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

# disk_write PATH: one direct 512-byte write by this host's kernel (its own
# I_T nexus); prints WRITE OK or WRITE FAILED with the kernel's reason.
disk_write() {
    if out=$(dd if=/dev/zero of="$1" bs=512 count=1 seek=2000 oflag=direct conv=notrunc 2>&1); then
        echo "WRITE OK"
    else
        echo "WRITE FAILED: $(echo "$out" | head -1)"
        dmesg | grep -i -E 'reservation|nexus' | tail -2
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

# The lab's multipath map /dev/mapper/lab-mp (LUN lab_mplun through both
# sessions, Tests/Lab/guest/boot.sh). mp_paths: its paths, major:minor.
MP=/dev/mapper/lab-mp
mp_paths() { cat "/dev/lab/paths$lab_mplun"; }

# mp_active: how many of the map's paths dm-multipath has active ("A").
mp_active() { dmsetup status lab-mp | grep -o -E '[0-9]+:[0-9]+ A' | wc -l; }

# mp_write_through I: one write through the map while only its I-th path
# (1-based) is active: every other path failed with `dmsetup message
# fail_path`, then reinstated. Prints "path MAJ:MIN: WRITE OK|FAILED...".
mp_write_through() {
    local i=0 p mine= out
    [ -b $MP ] || { echo "$MP is not a block device"; return 1; }
    for p in $(mp_paths); do
        i=$((i + 1))
        if [ "$i" = "$1" ]; then mine=$p; else dmsetup message lab-mp 0 fail_path "$p"; fi
    done
    out=$(disk_write $MP)
    for p in $(mp_paths); do [ "$p" = "$mine" ] || dmsetup message lab-mp 0 reinstate_path "$p"; done
    echo "path $mine: $out"
}

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
