#!/usr/bin/env bash
# Builds what a lab guest boots: Debian 12's kernel and an initramfs of
# busybox, the kernel modules a guest needs (virtio, 9p, overlay, SCSI disk
# and generic, kernel iSCSI initiator and target, dm-multipath) and Tests/Lab/init. Only downloads Debian
# packages (apt-get download) and unpacks them (dpkg-deb -x) in the cache
# directory; nothing is installed on this machine. Also unpacks open-iscsi's
# iscsistart, which guests run from here through their 9p root.
#
#   Tests/Lab/build-guest.sh CACHE_DIR     (prints nothing on success but the kernel version)
#
# Cached: a second run with the same kernel package does nothing.
set -euo pipefail
cache=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"

# The kernel package linux-image-amd64 currently points at (Debian 12: 6.1.0-N).
# Package lists missing or stale (the archive dropped the version they
# name): apt-get update once, and ask again.
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(kernel_package)
[ -n "$kpkg" ] || { apt-get update -q >&2; kpkg=$(kernel_package); }
[ -n "$kpkg" ] || { echo "build-guest: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
kver=${kpkg#linux-image-}
stamp="$cache/guest-$kver.stamp"
if [ -e "$stamp" ] && [ "$stamp" -nt "$here/init" ] && [ "$stamp" -nt "$0" ]; then
    echo "$kver"; exit 0
fi

debs="$cache/debs"; root="$cache/root"
mkdir -p "$debs"
for p in "$kpkg" busybox-static open-iscsi libopeniscsiusr; do
    ls "$debs/${p}_"*.deb >/dev/null 2>&1 || (cd "$debs" && apt-get download -q "$p" >&2) \
        || { apt-get update -q >&2 && (cd "$debs" && apt-get download -q "$p" >&2); } \
        || { echo "build-guest: cannot download $p" >&2; exit 1; }
done
rm -rf "$root"; mkdir -p "$root"
for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$root"; done
cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz"

# The initramfs: busybox, the modules below with everything they depend on
# (modules.dep), /init. dm_multipath and its round-robin path selector:
# the lab's multipath maps (dmsetup). target_core_file, iscsi_target_mod:
# the kernel's own iSCSI target (LIO), which host a serves for the
# block-PR scenario (tgt refuses the APTPL the kernel's PR ioctls send). crc32c_generic: without it the iSCSI login fails
# ("crc32c loading error").
ird="$cache/initramfs"
rm -rf "$ird"; mkdir -p "$ird"/{bin,dev,proc,sys,mnt,lib/modules/$kver}
cp "$root/bin/busybox" "$ird/bin/busybox"
want="virtio_pci virtio_net sd_mod sg crc32c_generic iscsi_tcp 9pnet_virtio 9p overlay dm_multipath dm_round_robin target_core_file iscsi_target_mod"
mdir="$root/lib/modules/$kver"
# The package has no modules.dep (depmod runs at install): make it here.
[ -e "$mdir/modules.dep" ] || "$root/bin/busybox" depmod -b "$root" "$kver"
declare -A seen=()
add() { # add MODULE-PATH (relative to $mdir), with its dependencies
    local rel=$1 dep
    [ -z "${seen[$rel]:-}" ] || return 0
    seen[$rel]=1
    mkdir -p "$ird/lib/modules/$kver/$(dirname "$rel")"
    cp "$mdir/$rel" "$ird/lib/modules/$kver/$rel"
    for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$mdir/modules.dep"); do add "$dep"; done
}
for m in $want; do
    rel=$(awk -F: -v n="$m" '{ f = $1; sub(".*/", "", f); sub("\\.ko.*", "", f); gsub("-", "_", f); if (f == n) { print $1; exit } }' "$mdir/modules.dep")
    [ -n "$rel" ] || { echo "build-guest: module $m not in $kpkg" >&2; exit 1; }
    add "$rel"
done
cp "$mdir/modules.order" "$mdir/modules.builtin" "$ird/lib/modules/$kver/" 2>/dev/null || true
"$ird/bin/busybox" depmod -b "$ird" "$kver"
echo "$want" > "$ird/modules"
cp "$here/init" "$ird/init"; chmod 0755 "$ird/init"
(cd "$ird" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$cache/initrd.gz"
touch "$stamp"
echo "$kver"
