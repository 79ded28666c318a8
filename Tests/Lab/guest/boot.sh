#!/bin/bash
# A lab guest after /init: this machine's root under a tmpfs overlay, the
# lab's mailbox at /lab. Makes this guest one host (hostname, initiator
# name, libvirt's host UUID, the pr plugin's identity, all written in the
# overlay), hides the Swift toolchain, logs into the lab's iSCSI target
# with the kernel's initiator, then serves the runner's commands
# (guest/agent.sh). Everything goes to /lab/boot.log.
exec >/lab/boot.log 2>&1
set -x
for a in $(cat /proc/cmdline); do
    case "$a" in lab.*=*) k=${a%%=*}; k=${k#lab.}; declare "lab_$k=${a#*=}" ;; esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "${lab_role:-}" = storage ] && exec "$lab_repo/Tests/Lab/guest/storage.sh"
mount -t devpts devpts /dev/pts 2>/dev/null || { mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; }
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
# What libvirtd loads must run without Swift: the toolchain is gone from here on.
[ -n "$lab_hide" ] && mount -t tmpfs -o size=1m tmpfs "$lab_hide"
hostname "lab-$lab_host"
echo "lab-$lab_host" > /etc/hostname
printf '127.0.0.1 localhost\n%s lab-%s\n%s lab-%s\n' "$lab_link" "$lab_host" "$lab_peerip" "lab-$lab_peer" > /etc/hosts
# libvirt's state starts empty here whatever this machine's root holds.
for d in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt/qemu /var/log/lockmgr; do
    mkdir -p "$d"; mount -t tmpfs tmpfs "$d"
done
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /etc/iscsi
echo "InitiatorName=$lab_iqn" > /etc/iscsi/initiatorname.iscsi

# The kernel's iSCSI initiator into the lab's tgtd (slirp: 10.0.2.2 is this
# machine's 127.0.0.1), once through each of its two portals: two sessions
# (the kernel numbers them, and open-iscsi makes the ISID from that number),
# so two I_T nexuses and two paths to every LU.
for port in "$lab_port" "$lab_port2"; do
    LD_LIBRARY_PATH="$lab_cache/root/usr/lib/x86_64-linux-gnu" \
        "$lab_cache/root/sbin/iscsistart" -i "$lab_iqn" -t "$lab_target" -g 1 -a 10.0.2.2 -p "$port"
done
# Stable names, the same on every host: /dev/lab/lunN (block device nodes,
# not links: libvirt hands the plugin the path as written in the domain),
# the first session's path; /dev/lab/pathsN lists every path of LUN N
# (major:minor, one per line, sessions in order).
mkdir -p /dev/lab
for i in $(seq 1 100); do
    n=0
    for s in /sys/block/sd*; do
        [ -e "$s/device/scsi_device" ] || continue
        n=$((n + 1))
    done
    [ "$n" -ge $((2 * lab_luns)) ] && break
    sleep 0.1
done
for s in /sys/block/sd*; do
    hctl=$(basename "$(readlink -f "$s/device")")
    echo "$hctl $(cat "$s/dev")"
done | sort -t: -k1,1n -k4,4n > /dev/lab/hctl
while read -r hctl dev; do
    lun=${hctl##*:}
    [ -e "/dev/lab/lun$lun" ] || mknod "/dev/lab/lun$lun" b $(tr ':' ' ' <<< "$dev")
    echo "$dev" >> "/dev/lab/paths$lun"
done < /dev/lab/hctl
# LUN lab_mplun through dm-multipath: /dev/mapper/lab-mp, both paths in one
# round-robin priority group (no queue_if_no_path: a failure shows).
paths=$(cat "/dev/lab/paths$lab_mplun")
dmsetup create lab-mp --table "0 $(blockdev --getsz /dev/lab/lun$lab_mplun) multipath 0 0 1 1 round-robin 0 $(echo $paths | wc -w) 1 $(for p in $paths; do printf '%s 1 ' "$p"; done)"
# No udev here: dmsetup makes the /dev/mapper node itself when asked.
dmsetup mknodes lab-mp
ls -l /dev/mapper; dmsetup table lab-mp; dmsetup status lab-mp
ls -l /dev/lab /dev/sg* /dev/sd*

"$lab_repo/Tests/Lab/guest/configure.sh"
touch /lab/ready
set +x
exec "$lab_repo/Tests/Lab/guest/agent.sh"
