# A private tgtd (userspace iSCSI target) for the demo and the benchmark:
# loopback only, a free port, its own control socket, file-backed LUNs in
# $TGT_DIR. Source it, then: tgt_start; tgt_add_target IQN NLUNS; ...; tgt_stop.

tgt_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

tgt_start() {
    TGT_DIR=$(mktemp -d /tmp/lockmgr-tgt-XXXXXX)
    local tries
    for tries in 1 2 3 4 5 6 7 8; do
        TGT_PORT=$(tgt_free_port)
        TGT_CONTROL=$(( (RANDOM % 9000) + 1000 ))
        /usr/sbin/tgtd -f --iscsi portal=127.0.0.1:$TGT_PORT -C $TGT_CONTROL >/dev/null 2>&1 &
        TGT_PID=$!
        local i
        for i in $(seq 1 200); do
            if tgtadm -C $TGT_CONTROL --lld iscsi --op show --mode sys >/dev/null 2>&1; then
                TGT_NEXT_TID=1
                trap tgt_stop EXIT
                return 0
            fi
            kill -0 $TGT_PID 2>/dev/null || break
            sleep 0.02
        done
        kill -KILL $TGT_PID 2>/dev/null || true
        wait $TGT_PID 2>/dev/null || true
    done
    echo "tgt: cannot start tgtd" >&2
    return 1
}

# tgt_add_portal: a second portal (another free port on 127.0.0.1) into the
# same target portal group: an initiator that logs in through both has two
# sessions, two I_T nexuses, two paths to every LU. Sets TGT_PORT2.
tgt_add_portal() {
    TGT_PORT2=$(tgt_free_port)
    tgtadm -C $TGT_CONTROL --lld iscsi --op new --mode portal --param portal=127.0.0.1:$TGT_PORT2
}

# tgt_add_target IQN NLUNS: prints one iscsi:// URL per LUN.
tgt_add_target() {
    local iqn=$1 n=$2 tid=$TGT_NEXT_TID lun
    TGT_NEXT_TID=$((TGT_NEXT_TID + 1))
    tgtadm -C $TGT_CONTROL --lld iscsi --op new --mode target --tid $tid -T "$iqn"
    for lun in $(seq 1 "$n"); do
        truncate -s 1M "$TGT_DIR/t$tid-l$lun.img"
        tgtadm -C $TGT_CONTROL --lld iscsi --op new --mode logicalunit --tid $tid --lun $lun -b "$TGT_DIR/t$tid-l$lun.img"
        echo "iscsi://127.0.0.1:$TGT_PORT/$iqn/$lun"
    done
    tgtadm -C $TGT_CONTROL --lld iscsi --op bind --mode target --tid $tid -I ALL
}

tgt_stop() {
    [ -n "${TGT_PID:-}" ] || return 0
    local tid
    for tid in $(seq 1 $((TGT_NEXT_TID - 1))); do
        tgtadm -C $TGT_CONTROL --lld iscsi --op delete --mode target --tid $tid --force >/dev/null 2>&1 || true
    done
    tgtadm -C $TGT_CONTROL --op delete --mode system >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 100); do kill -0 $TGT_PID 2>/dev/null || break; sleep 0.02; done
    kill -KILL $TGT_PID 2>/dev/null || true
    wait $TGT_PID 2>/dev/null || true
    rm -rf "$TGT_DIR" /var/run/tgtd/socket.$TGT_CONTROL /var/run/tgtd/socket.$TGT_CONTROL.lock
    TGT_PID=
}
