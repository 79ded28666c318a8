#!/bin/bash
# One host's libvirt and pr plugin settings, written whole (never edited:
# the 9p root below is this machine's own /etc/libvirt) into the overlay.
set -eu
for a in $(cat /proc/cmdline); do
    case "$a" in lab.*=*) k=${a%%=*}; k=${k#lab.}; declare "lab_$k=${a#*=}" ;; esac
done
cat > /etc/libvirt/libvirtd.conf <<CONF
listen_tls = 0
listen_tcp = 1
listen_addr = "$lab_link"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$lab_hostuuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
# namespaces: libvirt's private /dev for QEMU cannot be set up on this root.
cat > /etc/libvirt/qemu.conf <<CONF
lock_manager = "pr"
namespaces = [ ]
user = "root"
group = "root"
remember_owner = 0
cgroup_controllers = [ ]
CONF
# The keeper looks every 500 ms; each host is known by its initiator name
# (the key's host part is a hash of it). LUN 5 is a guest cluster's disk
# (<reservations managed='yes'/>): the plugin leaves it alone.
cat > /etc/libvirt/qemu-pr.conf <<CONF
iscsi_initiator = "$lab_iqn"
keeper_interval_ms = 500
timeout_ms = 5000
command_log = "/var/log/lockmgr/pr-commands.log"
guest_reservations = [ "/dev/lab/lun5" ]
CONF
echo 'uri_default = "qemu:///system"' > /etc/libvirt/libvirt.conf
