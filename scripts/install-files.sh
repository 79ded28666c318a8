#!/usr/bin/env bash
# Installs a release build: scripts/install-files.sh BIN_DIR PREFIX [DESTDIR]
#
# PREFIX /usr is the distribution's layout (the Debian package; the same
# rule as InstallLayout in Sources/LockDriver/Host/HostSettings.swift):
# plugins as lockmgr-<name>.so in libvirt's lock-driver directory (libvirt
# ships a sanlock.so there and has a built-in nop), the host config in
# /etc/lockmgr, the plugin config examples under /usr/share/doc/lockmgr
# (plugins read /etc/libvirt/qemu-lockmgr-<name>.conf, as libvirt does).
# Any other prefix is self-contained: <prefix>/lib/lock_manager/<name>.so,
# <prefix>/etc/lockmgr/ with the config examples. Both: <prefix>/bin,
# <prefix>/libexec/lockmgr/{pr-keeper,pr-sessiond}, and pr-sessiond's
# systemd units (in /lib/systemd/system for /usr, else
# <prefix>/lib/systemd/system), not enabled: iscsi_session_socket is
# opt-in. Existing configs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 prefix=$2 dest=${3:-}
plugins=$(cd Sources/Plugins && for d in */Driver; do echo "${d%/Driver}"; done)
if [ "$prefix" = /usr ]; then
    plugindir=/usr/lib/$(gcc -print-multiarch)/libvirt/lock-driver plugin_prefix=lockmgr-
    etcdir=/etc/lockmgr examples=/usr/share/doc/lockmgr/examples unitdir=/lib/systemd/system
else
    plugindir=$prefix/lib/lock_manager plugin_prefix=
    etcdir=$prefix/etc/lockmgr examples=$prefix/etc/lockmgr unitdir=$prefix/lib/systemd/system
fi
install -d "$dest$prefix/bin" "$dest$plugindir" "$dest$prefix/libexec/lockmgr" "$dest$etcdir" "$dest$examples" "$dest$unitdir"
install -m 0755 "$bin/lockmgr" "$bin/pr-tool" "$dest$prefix/bin/"
install -m 0755 "$bin/pr-keeper" "$bin/pr-sessiond" "$dest$prefix/libexec/lockmgr/"
for unit in etc/systemd/*; do
    sed "s|@LIBEXECDIR@|$prefix/libexec/lockmgr|" "$unit" > "$dest$unitdir/$(basename "$unit")"
    chmod 0644 "$dest$unitdir/$(basename "$unit")"
done
for p in $plugins; do
    install -m 0644 "$bin/liblockmgr_$p.so" "$dest$plugindir/$plugin_prefix$p.so"
done
keep() { [ -e "$2" ] || install -m 0644 "$1" "$2"; }
keep etc/lockmgr.conf "$dest$etcdir/lockmgr.conf"
for f in etc/qemu-*.conf; do
    name=${f#etc/qemu-}
    keep "$f" "$dest$examples/qemu-$plugin_prefix$name"
done
echo "installed lockmgr $(echo $plugins) under $dest$prefix (plugins in $plugindir)"
