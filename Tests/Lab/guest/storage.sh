#!/bin/bash
# The lab's storage box (guest c, Linux 7.x) after /init: serves one NVMe
# namespace over NVMe/TCP with reservations on (nvmet, resv_enable), and
# connects to it itself, as a third host: the independent reader
# (`nvme resv-report`) and the kernel's read ioctls. Then serves the
# runner's commands (guest/agent.sh). Everything goes to /lab/boot.log.
exec >/lab/boot.log 2>&1
set -x
for a in $(cat /proc/cmdline); do
    case "$a" in lab.*=*) k=${a%%=*}; k=${k#lab.}; declare "lab_$k=${a#*=}" ;; esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t devpts devpts /dev/pts 2>/dev/null || { mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; }
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
hostname lab-c
echo lab-c > /etc/hostname
mount -t configfs none /sys/kernel/config
. "$lab_repo/Tests/Lab/guest/lib.sh"
nvmet_up
nvme_observe
ls -l /dev/nvme*; nvme list
touch /lab/ready
set +x
exec "$lab_repo/Tests/Lab/guest/agent.sh"
