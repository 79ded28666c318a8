#!/usr/bin/env bash
# The Debian package on a clean Debian 12 root without Swift:
#   scripts/deb/test-package.sh .build-deb/lockmgr_VERSION_ARCH.deb
# A debootstrap'ed bookworm minbase (cached in .build-deb/bookworm-base,
# made from nothing when missing) is copied, and in a chroot of the copy
# (same network namespace, so the tgtd started here on loopback is
# reachable): apt install of the .deb (Depends from Debian's archive); every
# program's --help, versions that agree with the package's; pr-sessiond's
# systemd units; the nop, pr (real tgtd, the installed keeper, then through
# the installed pr-sessiond) and sanlock (a daemon in the chroot)
# flows with the package's own layout and defaults; dpkg -r, dpkg -i again,
# dpkg --purge. Also: no file of the package is a file of libvirt's own
# packages, and lintian. Fails on the first thing that does not hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=$(readlink -f "$1")
cache=$PWD/.build-deb
base=$cache/bookworm-base
mirror=http://deb.debian.org/debian

if [ -z "${LOCKMGR_DEB_TEST_INSIDE:-}" ]; then
    if [ ! -e "$base/.complete" ]; then
        echo "== debootstrap --variant=minbase bookworm (once; cached in $base)"
        rm -rf "$cache/bookworm-new"
        debootstrap --variant=minbase bookworm "$cache/bookworm-new" "$mirror" > "$cache/debootstrap.log"
        touch "$cache/bookworm-new/.complete"
        rm -rf "$base" && mv "$cache/bookworm-new" "$base"
    fi
    # Mounts live in a private mount namespace: they go when the test ends.
    LOCKMGR_DEB_TEST_INSIDE=1 exec unshare -m --propagation private "$0" "$@"
fi

root=$(mktemp -d /tmp/lockmgr-deb-root-XXXXXX)
source scripts/demo/tgt.sh
cleanup() {
    # Processes started in the chroot (the VMs' stand-ins, keepers, sanlock).
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    tgt_stop
    umount -R "$root/proc" "$root/dev" "$root/run" 2>/dev/null || true
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
chr() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

step "fresh copy of the Debian 12 root: $root"
cp -a "$base/." "$root/"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
pkg=/tmp/$(basename "$deb")
chr sh -c 'command -v swift swiftc' && fail "the root has a Swift toolchain"

step "no file of the package belongs to libvirt's packages (libvirt-daemon, libvirt-sanlock, libvirt0)"
ours=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' | sort)
theirs=$(dpkg -L libvirt-daemon libvirt-sanlock libvirt0 | sort -u)
clash=$(comm -12 <(echo "$ours") <(echo "$theirs"))
[ -z "$clash" ] || fail "files also in libvirt's packages: $clash"

step "apt install ./$(basename "$deb") (Depends from Debian's archive)"
chr apt-get update -q >/dev/null
chr apt-get install -y -q --no-install-recommends "$pkg" > "$cache/apt-install.log" || { cat "$cache/apt-install.log"; fail "apt install"; }
chr dpkg -s lockmgr | sed -n 's/^\(Version\|Depends\):/  &/p'

step "every program starts; lockmgr, pr-tool, pr-keeper, pr-sessiond and the package agree on the version"
version=$(chr dpkg-query -W -f '${Version}' lockmgr)
for p in /usr/bin/lockmgr /usr/bin/pr-tool /usr/libexec/lockmgr/pr-keeper /usr/libexec/lockmgr/pr-sessiond; do
    chr "$p" --help >/dev/null || fail "$p --help"
    v=$(chr "$p" --version)
    [ "$v" = "$version" ] || fail "$p --version says '$v', the package is $version"
done
echo "  all $version"
for page in man8/lockmgr.8 man8/pr-tool.8 man5/lockmgr-pr.conf.5 man5/lockmgr-sanlock.conf.5; do
    [ -s "$root/usr/share/man/$page.gz" ] || fail "missing man page $page"
done
for unit in lockmgr-pr-sessiond.socket lockmgr-pr-sessiond.service; do
    [ -s "$root/lib/systemd/system/$unit" ] || fail "missing systemd unit $unit"
done
grep -qx 'ExecStart=/usr/libexec/lockmgr/pr-sessiond' "$root/lib/systemd/system/lockmgr-pr-sessiond.service" \
    || fail "lockmgr-pr-sessiond.service does not start /usr/libexec/lockmgr/pr-sessiond"
grep -qx 'ListenStream=/run/lockmgr/pr-sessiond.sock' "$root/lib/systemd/system/lockmgr-pr-sessiond.socket" \
    || fail "lockmgr-pr-sessiond.socket does not listen on /run/lockmgr/pr-sessiond.sock"
lockdriver=$(cd "$root" && echo usr/lib/*/libvirt/lock-driver)
ls "$root/$lockdriver" | sed 's/^/  \/'"${lockdriver//\//\\/}"'\//'
chr lockmgr info | grep -q 'lockmgr-nop' || fail "the default plugin is not lockmgr-nop"

uuid=5e0c7d1a-2b3c-4d5e-8f90-a1b2c3d4e5f6
step "nop, the default: acquire, inquire, release"
chr sh -ec "sleep 60 & vm=\$!
    for sub in acquire inquire release; do lockmgr \$sub --uuid $uuid --name vm-deb --pid \$vm --disk /images/vm.img; done
    kill \$vm"

step "pr against tgtd on loopback: /etc/libvirt/qemu-lockmgr-pr.conf, keeper from /usr/libexec"
tgt_start
trap cleanup EXIT   # tgt_start sets its own: ours calls it
url=$(tgt_add_target iqn.2026-01.lockmgr.test:deb 1)
mkdir -p "$root/etc/libvirt"
printf 'iscsi_initiator = "iqn.2026-01.lockmgr.test:deb-host"\nkeeper_interval_ms = 200\n' > "$root/etc/libvirt/qemu-lockmgr-pr.conf"
chr sh -ec "sleep 60 & vm=\$!
    lm() { lockmgr \$1 --plugin lockmgr-pr --uuid $uuid --name vm-deb --pid \$vm --disk $url; }
    lm acquire
    keeper=\$(cat /run/lockmgr/pr/$uuid.pid)
    [ \"\$(readlink /proc/\$keeper/exe)\" = /usr/libexec/lockmgr/pr-keeper ] || { echo 'no keeper from /usr/libexec'; exit 1; }
    echo \"  keeper \$keeper: \$(readlink /proc/\$keeper/exe)\"
    lm inquire >/dev/null
    pr-tool --initiator iqn.2026-01.lockmgr.test:observer $url reservation | grep -q 'reserved by'
    lm release >/dev/null
    pr-tool $url reservation | grep -q 'no reservation'
    kill \$vm"

step "pr through the installed pr-sessiond (as its unit starts it, on the unit's socket)"
printf 'iscsi_session_socket = "/run/lockmgr/pr-sessiond.sock"\n' >> "$root/etc/libvirt/qemu-lockmgr-pr.conf"
chr sh -ec "mkdir -p /run/lockmgr
    /usr/libexec/lockmgr/pr-sessiond --socket /run/lockmgr/pr-sessiond.sock > /run/lockmgr/pr-sessiond.log 2>&1 &
    for i in \$(seq 1 100); do [ -S /run/lockmgr/pr-sessiond.sock ] && break; sleep 0.05; done
    sleep 60 & vm=\$!
    lm() { lockmgr \$1 --plugin lockmgr-pr --uuid $uuid --name vm-deb --pid \$vm --disk $url; }
    lm acquire
    pr-tool --initiator iqn.2026-01.lockmgr.test:observer $url reservation | grep -q 'reserved by'
    lm release >/dev/null
    pr-tool $url reservation | grep -q 'no reservation'
    grep -q 'logged in to' /run/lockmgr/pr-sessiond.log || { cat /run/lockmgr/pr-sessiond.log; echo 'the service was not used'; exit 1; }
    echo \"  \$(grep -c 'logged in to' /run/lockmgr/pr-sessiond.log) login by pr-sessiond for acquire + release\"
    kill \$vm"

step "sanlock: a daemon in the root, /etc/libvirt/qemu-lockmgr-sanlock.conf, run, inquire, failure-action pause"
chr apt-get install -y -q --no-install-recommends sanlock >> "$cache/apt-install.log"
mkdir -p "$root/var/lib/lockmgr-test"
printf 'auto_disk_leases = 1\ndisk_lease_dir = "/var/lib/lockmgr-test"\nhost_id = 1\nio_timeout = 1\n' \
    > "$root/etc/libvirt/qemu-lockmgr-sanlock.conf"
export_run="SANLOCK_RUN_DIR=/run/sanlock-test"
mkdir -p "$root/run/sanlock-test"
chr env $export_run SANLOCK_PRIVILEGED=0 sanlock daemon -D -w 0 -U root -G root -l 0 -L -1 -S -1 -e deb-test >/dev/null 2>&1 &
for i in $(seq 1 100); do chr env $export_run sanlock client status >/dev/null 2>&1 && break; sleep 0.1; done
chr env $export_run sh -ec "
    lockmgr run --plugin lockmgr-sanlock --uuid $uuid --name vm-deb --action pause --disk /images/vm.img -- sleep 120 &
    vm=\$!
    lm() { lockmgr \$1 --plugin lockmgr-sanlock --uuid $uuid --name vm-deb --pid \$vm --disk /images/vm.img; }
    for i in \$(seq 1 300); do lm inquire 2>/dev/null | grep -q __LIBVIRT__DISKS__ && break; sleep 0.1; done
    lm inquire | grep -q __LIBVIRT__DISKS__ || { echo 'the VM holds no lease'; exit 1; }
    lockmgr failure-action --action pause --pid \$vm --plugin lockmgr-sanlock 2>&1 | grep 'released through lockmgr-sanlock'
    ! lm inquire | grep -q __LIBVIRT__DISKS__
    kill -KILL \$vm"

step "dpkg -r, dpkg -i again, dpkg --purge"
chr dpkg -r lockmgr >/dev/null
[ ! -e "$root/usr/bin/lockmgr" ] && [ ! -e "$root/$lockdriver/lockmgr-pr.so" ] || fail "files left after dpkg -r"
[ -e "$root/etc/lockmgr/lockmgr.conf" ] || fail "dpkg -r removed the conffile (only --purge may)"
chr dpkg -i "$pkg" >/dev/null
[ "$(chr lockmgr --version)" = "$version" ] || fail "lockmgr after dpkg -i again"
chr lockmgr info lockmgr-pr >/dev/null || fail "the pr plugin after dpkg -i again"
chr dpkg --purge lockmgr >/dev/null
[ ! -e "$root/etc/lockmgr" ] || fail "/etc/lockmgr left after --purge"

step "lintian"
if command -v lintian >/dev/null; then
    lintian --fail-on error,warning "$deb"
    echo "  no errors or warnings (info tags with reasons: scripts/deb/lintian-overrides)"
else
    fail "lintian is not installed (make deps installs it)"
fi
echo "PASS: $(basename "$deb") on a clean Debian 12 root"
