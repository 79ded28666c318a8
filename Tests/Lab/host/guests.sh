# The lab's guests, seen from this machine: hosts a and b, and for the
# NVMe scenarios the storage box c; boot, commands through each guest's
# mailbox (a 9p directory), power off.
# Needs: repo, prefix, cache, run, TARGET, TGT_PORT, TGT_PORT2, NLUNS, MPLUN, LIO_PORT, log, say;
# STORAGE=1 and NVME_PORT to boot c.

declare -A QEMU_PID=()
LINK_A=169.254.77.1
LINK_B=169.254.77.2
PEER_URI_B=qemu+tcp://$LINK_B/system

iqn_of() { echo "iqn.2026-01.lockmgr.lab:host-$1"; }

# The directory holding the Swift toolchain (…/usr/bin/swift): hidden in guests.
toolchain_dir() {
    local s; s=$(readlink -f "$(command -v swift 2>/dev/null)" 2>/dev/null) || return 0
    [ -n "$s" ] && dirname "$(dirname "$(dirname "$s")")"
}

# guest_start HOST LINKPORT: QEMU in the background; its console in $run/HOST.console.
guest_start() {
    local h=$1 port=$2 me peer myip peerip link n fwd=
    if [ "$h" = a ]; then me=0a; peer=b; myip=$LINK_A; peerip=$LINK_B; link="listen=127.0.0.1:$port"
    else me=0b; peer=a; myip=$LINK_B; peerip=$LINK_A; link="connect=127.0.0.1:$port"; fi
    # a's LIO target (lio_serve) is read from here through 127.0.0.1:LIO_PORT.
    [ "$h" = a ] && fwd=",hostfwd=tcp:127.0.0.1:$LIO_PORT-10.0.2.15:3260"
    mkdir -p "$run/$h/cmd"
    echo 1 > "$run/$h/next"
    local append="console=ttyS0 panic=-1 quiet lab.host=$h lab.peer=$peer lab.iqn=$(iqn_of $h)"
    append+=" lab.target=$TARGET lab.port=$TGT_PORT lab.port2=$TGT_PORT2 lab.luns=$NLUNS lab.mplun=$MPLUN lab.prefix=$prefix lab.repo=$repo"
    append+=" lab.cache=$cache lab.hide=$(toolchain_dir) lab.link=$myip lab.peerip=$peerip"
    append+=" lab.hostuuid=7ab00000-0000-4000-8000-0000000000$me"
    nice -n 10 qemu-system-x86_64 -accel tcg -cpu max -m 1536 -smp 1 -nodefaults -display none \
        -no-reboot -serial "file:$run/$h.console" -monitor none \
        -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" -append "$append" \
        -netdev user,id=n0$fwd -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:$me \
        -netdev socket,id=n1,$link -device virtio-net-pci,netdev=n1,mac=52:54:00:77:01:$me \
        -fsdev local,id=fs0,path=/,security_model=none,readonly=on \
        -device virtio-9p-pci,fsdev=fs0,mount_tag=hostroot \
        -fsdev local,id=fs1,path="$run/$h",security_model=none \
        -device virtio-9p-pci,fsdev=fs1,mount_tag=mailbox \
        > "$run/$h.qemu.log" 2>&1 &
    QEMU_PID[$h]=$!
    log "guest $h: QEMU pid ${QEMU_PID[$h]}"
}

# storage_start: the storage box (guest c: Linux 7.x from $cache/storage,
# built by build-guest.sh storage) in the background, its console in
# $run/c.console. Its nvmet listens on its port 4420, which QEMU forwards
# from 127.0.0.1:NVME_PORT here: the hosts reach it at 10.0.2.2:NVME_PORT.
storage_start() {
    mkdir -p "$run/c/cmd"
    echo 1 > "$run/c/next"
    local append="console=ttyS0 panic=-1 quiet lab.host=c lab.role=storage lab.prefix=$prefix lab.repo=$repo lab.cache=$cache"
    nice -n 10 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nodefaults -display none \
        -no-reboot -serial "file:$run/c.console" -monitor none \
        -kernel "$cache/storage/vmlinuz" -initrd "$cache/storage/initrd.gz" -append "$append" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$NVME_PORT-10.0.2.15:4420" -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:0c \
        -fsdev local,id=fs0,path=/,security_model=none,readonly=on \
        -device virtio-9p-pci,fsdev=fs0,mount_tag=hostroot \
        -fsdev local,id=fs1,path="$run/c",security_model=none \
        -device virtio-9p-pci,fsdev=fs1,mount_tag=mailbox \
        > "$run/c.qemu.log" 2>&1 &
    QEMU_PID[c]=$!
    log "guest c (storage box): QEMU pid ${QEMU_PID[c]}"
}

# wait_file SECONDS FILE [PID]: polls until FILE exists (fails early if PID died).
wait_file() {
    local end=$(( $(date +%s) + $1 ))
    until [ -e "$2" ]; do
        [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || return 1
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# guests_boot: both guests up, logged in to the target, libvirtd answering.
guests_boot() {
    local port t h
    port=$(tgt_free_port)
    t=$(date +%s)
    [ "${STORAGE:-0}" = 1 ] && storage_start
    guest_start a "$port"
    # b connects to a's end of the private link: a must be listening first.
    local i
    for i in $(seq 1 100); do
        # Listening on 127.0.0.1:port (/proc/net/tcp: address and port in hex, state 0A).
        grep -q "0100007F:$(printf %04X "$port") 00000000:0000 0A" /proc/net/tcp && break
        sleep 0.1
    done
    guest_start b "$port"
    for h in a b; do
        wait_file 300 "$run/$h/ready" "${QEMU_PID[$h]}" || { say "guest $h did not boot"; return 1; }
        say "guest $h booted in $(( $(date +%s) - t )) s"
    done
    if [ "${STORAGE:-0}" = 1 ]; then
        wait_file 300 "$run/c/ready" "${QEMU_PID[c]}" || { say "the storage box did not boot (see $run/c.console, $run/c/boot.log)"; return 1; }
        say "storage box c booted in $(( $(date +%s) - t )) s"
    fi
    gx a 180 libvirtd_start > /dev/null & local pa=$!
    gx b 180 libvirtd_start > /dev/null || { say "libvirtd did not start on b"; return 1; }
    wait $pa || { say "libvirtd did not start on a"; return 1; }
    say "libvirtd up on a and b after $(( $(date +%s) - t )) s"
}

# gx HOST SECONDS COMMANDS...: runs COMMANDS (one shell line, lib.sh
# sourced) in HOST; its output goes to $run/HOST/out/N and to stdout.
# Returns its exit status, or 124 if it does not finish within SECONDS.
gx() {
    local h=$1 secs=$2; shift 2
    # The counter lives in a file: gx often runs in a subshell, $(gx ...).
    local n; n=$(cat "$run/$h/next")
    echo $((n + 1)) > "$run/$h/next"
    printf '. %s/Tests/Lab/guest/lib.sh\n%s\n' "$repo" "$*" > "$run/$h/cmd/.$n.sh"
    mv "$run/$h/cmd/.$n.sh" "$run/$h/cmd/$n.sh"
    log "$h#$n> $*"
    if ! wait_file "$secs" "$run/$h/rc/$n" "${QEMU_PID[$h]}"; then
        log "$h#$n: no answer within $secs s"
        return 124
    fi
    local rc; rc=$(cat "$run/$h/rc/$n")
    sed "s/^/    $h| /" "$run/$h/out/$n" >> "$run/runner.log"
    log "$h#$n: exit $rc"
    cat "$run/$h/out/$n"
    return "$rc"
}

# guest_kill HOST: the host's power cut (its QEMU killed from here).
guest_kill() {
    kill -KILL "${QEMU_PID[$1]}" 2>/dev/null
    wait "${QEMU_PID[$1]}" 2>/dev/null
    QEMU_PID[$1]=
}

lab_stop() {
    local h
    for h in "${!QEMU_PID[@]}"; do
        [ -n "${QEMU_PID[$h]:-}" ] || continue
        kill -TERM "${QEMU_PID[$h]}" 2>/dev/null
    done
    for h in "${!QEMU_PID[@]}"; do
        [ -n "${QEMU_PID[$h]:-}" ] || continue
        wait "${QEMU_PID[$h]}" 2>/dev/null
    done
    tgt_stop
}
