#!/usr/bin/env bash
# The host and the plugin ABI: lockmgr loads our plugins and libvirt's.
set -euo pipefail
prefix=$1
. "$(dirname "$0")/lib.sh"
lockmgr="$prefix/bin/lockmgr"
uuid=6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f

section "The host: plugins are lock_manager/<name>.so with libvirt's ABI"
show "$lockmgr" info nop
for so in /usr/lib/x86_64-linux-gnu/libvirt/lock-driver/*.so; do
    [ -e "$so" ] && show "$lockmgr" info "$so"
done

section "A VM-like command started under lockmgr run owns its locks (same pid)"
show "$lockmgr" run --plugin nop --uuid $uuid --name demo-vm --disk /var/lib/images/demo.img -- \
    sh -c 'echo "I am pid $$, running with plugin $LOCKMGR_PLUGIN"'

section "Bad input is refused with a clear message"
show_refused "$lockmgr" acquire --plugin nosuch --uuid $uuid --name demo-vm
