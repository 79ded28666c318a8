#!/usr/bin/env bash
# Builds what a lab guest boots: a Debian kernel and an initramfs of
# busybox, the kernel modules a guest needs and Tests/Lab/init. Only
# downloads Debian packages (apt-get download) and unpacks them (dpkg-deb
# -x) in the cache directory; nothing is installed on this machine.
#
#   Tests/Lab/build-guest.sh CACHE_DIR            the hosts (a, b): Debian 12's kernel
#   Tests/Lab/build-guest.sh CACHE_DIR storage    the storage box (c): Linux 7.x
#
# Hosts: modules for virtio, 9p, overlay, SCSI disk and generic, the
# kernel iSCSI initiator and target, dm-multipath, the NVMe/TCP host; also
# unpacks open-iscsi's iscsistart, which guests run from here through
# their 9p root. Output in CACHE_DIR (vmlinuz, initrd.gz, root/).
#
# Storage box: NVMe-oF target reservations (nvmet resv_enable) arrived in
# Linux 6.13, the block layer's read ioctls in 6.19; Debian 12 has
# neither, trixie-backports has 7.x. Its package index is fetched with a
# private apt configuration (sources file, lists directory) inside the
# cache, so this machine's apt sources stay untouched, and the newest
# version that has both an unsigned kernel image and a modules package is
# taken. Output in CACHE_DIR/storage. Needs the hosts' build first (its
# busybox).
#
# Prints the kernel version. Cached: a second run with the same kernel
# package does nothing.
set -euo pipefail
cache=$(realpath -m "$1")
kind=${2:-hosts}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"

# download DIR PACKAGE [APT-OPTIONS...]: PACKAGE's .deb in DIR (kept: a
# second run finds it), retried once after refreshing the index.
download() {
    local dir=$1 p=$2; shift 2
    ls "$dir/${p}_"*.deb >/dev/null 2>&1 && return 0
    (cd "$dir" && apt-get -q "$@" download "$p" >&2) \
        || { apt-get -q "$@" update >&2 && (cd "$dir" && apt-get -q "$@" download "$p" >&2); } \
        || { echo "build-guest: cannot download $p" >&2; return 1; }
}

# module_path MDIR NAME: NAME's file relative to MDIR (from modules.dep);
# "builtin" if the kernel has it built in; empty if neither.
module_path() {
    local rel
    rel=$(awk -F: -v n="$2" '{ f = $1; sub(".*/", "", f); sub("\\.ko.*", "", f); gsub("-", "_", f); if (f == n) { print $1; exit } }' "$1/modules.dep")
    if [ -n "$rel" ]; then echo "$rel"; return; fi
    awk -v n="$2" '{ f = $1; sub(".*/", "", f); sub("\\.ko.*", "", f); gsub("-", "_", f); if (f == n) { print "builtin"; exit } }' "$1/modules.builtin" 2>/dev/null || true
}

if [ "$kind" = storage ]; then
    out="$cache/storage"; apt_dir="$out/apt"
    mkdir -p "$apt_dir/lists/partial" "$out/debs"
    echo 'deb http://deb.debian.org/debian trixie-backports main' > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o APT::Get::List-Cleanup=0)
    # newest VERSION with linux-binary-unsigned-VERSION-amd64 and linux-modules-VERSION-amd64
    newest() {
        apt-cache "${apt_opts[@]}" pkgnames linux- 2>/dev/null \
            | sed -n -E 's/^linux-(binary-unsigned|modules)-(7\.[0-9.]+\+deb[0-9]+)-amd64$/\1 \2/p' \
            | sort -u | awk '{ n[$2]++ } END { for (v in n) if (n[v] == 2) print v }' | sort -V | tail -1
    }
    ver=$(newest)
    [ -n "$ver" ] || { apt-get -q "${apt_opts[@]}" update >&2 || true; ver=$(newest); }
    [ -n "$ver" ] || { echo "build-guest: no Linux 7.x kernel with modules in trixie-backports" >&2; exit 1; }
    kver="$ver-amd64"
    stamp="$out/guest-$kver.stamp"
    if [ -e "$stamp" ] && [ "$stamp" -nt "$here/init" ] && [ "$stamp" -nt "$0" ]; then echo "$kver"; exit 0; fi
    bb="$cache/root/bin/busybox"
    [ -x "$bb" ] || { echo "build-guest: build the hosts' guest first (its busybox)" >&2; exit 1; }
    for p in "linux-binary-unsigned-$kver" "linux-modules-$kver"; do download "$out/debs" "$p" "${apt_opts[@]}"; done
    root="$out/root"
    rm -rf "$root"; mkdir -p "$root"
    for d in "$out/debs/"*"$kver"*.deb; do dpkg-deb -x "$d" "$root"; done
    mdir="$root/usr/lib/modules/$kver"
    kernel=
    for f in "$mdir/vmlinuz"* "$root/boot/vmlinuz-$kver"*; do [ -e "$f" ] && { kernel=$f; break; }; done
    [ -n "$kernel" ] || { echo "build-guest: no kernel image in linux-binary-unsigned-$kver" >&2; exit 1; }
    cp "$kernel" "$out/vmlinuz"
    # Modules come compressed (.ko.xz); busybox's modprobe wants them plain.
    find "$mdir" -name '*.ko.xz' -exec xz -d -f {} +
    mkdir -p "$root/lib/modules"; ln -sfn "$mdir" "$root/lib/modules/$kver"
    "$bb" depmod -b "$root" "$kver"
    mdir="$root/lib/modules/$kver"
    # nvmet, nvmet_tcp: the target; nvme_tcp: the box's own initiator, the
    # lab's independent reader. NAME? may be built in: Debian's 7.x has
    # virtio_pci built in, and its packages carry no modules.builtin to say so.
    want="virtio_pci? virtio_net 9pnet_virtio 9p overlay configfs nvmet nvmet_tcp nvme_tcp"
    build="$out"
else
    # The kernel package linux-image-amd64 currently points at (Debian 12: 6.1.0-N).
    # Package lists missing or stale (the archive dropped the version they
    # name): apt-get update once, and ask again.
    kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || { apt-get update -q >&2; kpkg=$(kernel_package); }
    [ -n "$kpkg" ] || { echo "build-guest: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
    kver=${kpkg#linux-image-}
    stamp="$cache/guest-$kver.stamp"
    if [ -e "$stamp" ] && [ "$stamp" -nt "$here/init" ] && [ "$stamp" -nt "$0" ]; then echo "$kver"; exit 0; fi
    debs="$cache/debs"; root="$cache/root"
    mkdir -p "$debs"
    for p in "$kpkg" busybox-static open-iscsi libopeniscsiusr; do download "$debs" "$p"; done
    rm -rf "$root"; mkdir -p "$root"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$root"; done
    cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz"
    bb="$root/bin/busybox"
    mdir="$root/lib/modules/$kver"
    # The package has no modules.dep (depmod runs at install): make it here.
    [ -e "$mdir/modules.dep" ] || "$bb" depmod -b "$root" "$kver"
    # dm_multipath and its round-robin path selector: the lab's multipath
    # maps (dmsetup). target_core_file, iscsi_target_mod: the kernel's own
    # iSCSI target (LIO), which host a serves for the block-PR scenario
    # (tgt refuses the APTPL the kernel's PR ioctls send). crc32c_generic:
    # without it the iSCSI login fails ("crc32c loading error"). nvme_tcp:
    # the hosts' NVMe/TCP initiator into the storage box.
    want="virtio_pci virtio_net sd_mod sg crc32c_generic iscsi_tcp 9pnet_virtio 9p overlay dm_multipath dm_round_robin target_core_file iscsi_target_mod nvme_tcp"
    build="$cache"
fi

# The initramfs: busybox, the modules wanted with everything they depend
# on (modules.dep), /init.
ird="$build/initramfs"
rm -rf "$ird"; mkdir -p "$ird"/{bin,dev,proc,sys,mnt,lib/modules/$kver}
cp "$bb" "$ird/bin/busybox"
declare -A seen=()
add() { # add MODULE-PATH (relative to $mdir), with its dependencies
    local rel=$1 dep
    [ -z "${seen[$rel]:-}" ] || return 0
    seen[$rel]=1
    mkdir -p "$ird/lib/modules/$kver/$(dirname "$rel")"
    cp "$mdir/$rel" "$ird/lib/modules/$kver/$rel"
    for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$mdir/modules.dep"); do add "$dep"; done
}
load=
for m in $want; do
    optional=; [ "${m%\?}" = "$m" ] || { m=${m%\?}; optional=1; }
    rel=$(module_path "$mdir" "$m")
    [ -n "$rel" ] || [ -n "$optional" ] || { echo "build-guest: module $m not in Linux $kver" >&2; exit 1; }
    [ -n "$rel" ] || continue
    [ "$rel" = builtin ] && continue
    add "$rel"; load+=" $m"
done
cp "$mdir/modules.order" "$mdir/modules.builtin" "$ird/lib/modules/$kver/" 2>/dev/null || true
"$ird/bin/busybox" depmod -b "$ird" "$kver"
echo "$load" > "$ird/modules"
cp "$here/init" "$ird/init"; chmod 0755 "$ird/init"
(cd "$ird" && find . | "$ird/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$build/initrd.gz"
touch "$stamp"
echo "$kver"
