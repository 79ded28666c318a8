# Checks made from this machine, outside the guests: an independent PR
# reader (pr-tool, its own initiator name; PR IN only, but for the clean
# slate between scenarios) on the lab's LUs, and the scenario bookkeeping.
# Needs: prefix, LUN, log, say.

OBSERVER=iqn.2026-01.lockmgr.lab:observer
prtool() { "$prefix/bin/pr-tool" "$@"; }

# key_of HOST UUID: the pr plugin's key of that VM on that host.
key_of() { prtool key --initiator "$(iqn_of "$1")" "$2"; }

# pr_state N: "<reservation line>; <keys line>" of LUN N, as the reader sees it.
pr_state() { prtool --initiator $OBSERVER "${LUN[$1]}" reservation keys 2>&1 | paste -sd';' | sed 's/;/; /'; }

FAILS=0
# check DESCRIPTION COMMAND...: one assertion of the current scenario.
check() {
    local what=$1; shift
    if "$@"; then log "  ok: $what"; else log "  NOT OK: $what"; echo "    not ok: $what"; FAILS=$((FAILS + 1)); fi
}

# holds N KEY: the reader sees KEY holding LUN N and no other key registered.
holds() {
    local s; s=$(pr_state "$1"); log "  LUN $1: $s"
    [[ "$s" == "reserved by $2 "*"keys [$2]" ]]
}
# holds_all_registrants N KEY...: an all-registrants reservation; exactly KEY... registered (any order).
holds_all_registrants() {
    local n=$1 s k; shift; s=$(pr_state "$n"); log "  LUN $n: $s"
    [[ "$s" == "reserved by "*"all-registrants"* ]] || return 1
    for k in "$@"; do [[ "$s" == *"$k"* ]] || return 1; done
    local listed; listed=$(echo "$s" | sed 's/.*keys \[//; s/\]//' | wc -w)
    [ "$listed" = "$#" ]
}
# holds_on_paths N KEY COUNT: the reader sees KEY holding LUN N and
# registered COUNT times (tgt: one registration per I_T nexus, so per
# path of a multipath host), no other key.
holds_on_paths() {
    local s k n=0; s=$(pr_state "$1"); log "  LUN $1: $s"
    [[ "$s" == "reserved by $2 "* ]] || return 1
    for k in $(echo "$s" | sed 's/.*keys \[//; s/\]//'); do
        [ "$k" = "$2" ] || return 1
        n=$((n + 1))
    done
    [ "$n" = "$3" ]
}
# free N: no reservation and no key on LUN N.
free() {
    local s; s=$(pr_state "$1"); log "  LUN $1: $s"
    [[ "$s" == "no reservation; "*"keys []" ]]
}
# eventually SECONDS CHECK...: polls a check (free, holds...) until it passes.
eventually() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.3
    done
}
# not CHECK...: the check fails.
not() { ! "$@"; }
# contains TEXT PATTERN: TEXT has PATTERN (a grep -E pattern).
contains() { grep -q -E -- "$2" <<< "$1"; }
lacks() { ! contains "$@"; }

# reset_luns: the reader clears every LU (registers, then CLEAR): a clean slate between scenarios.
reset_luns() {
    local n
    for n in $(seq 1 $NLUNS); do
        prtool --initiator $OBSERVER "${LUN[$n]}" rai 0bad0bad clear 0bad0bad >/dev/null 2>&1
    done
}

# The NVMe namespace as the storage box's own connection reads it
# (nvme-cli's resv-report: the independent reader for NVMe).
nvme_seen() { local s; s=$(gx c 90 nvme_report); log "  NVMe namespace: $s"; echo "$s"; }
# nvme_holds KEY: KEY holds the namespace (write exclusive, registrants
# only: NVMe type 3, the plugin's default) and no other key is registered.
nvme_holds() { [ "$(nvme_seen)" = "type 3 holder $1 keys [$1]" ]; }
# nvme_free: no reservation and no registrant at all (not even key 0).
nvme_free() { [ "$(nvme_seen)" = "type 0 holder - keys []" ]; }

# run_scenario NAME: scenario_NAME with the bookkeeping, then a clean slate.
run_scenario() {
    local name=$1 t; t=$(date +%s)
    FAILS=0
    log "=== scenario $name"
    if ! declare -F "scenario_$name" >/dev/null; then say "FAIL $name: no such scenario"; return 1; fi
    "scenario_$name"
    local rc=$? secs=$(( $(date +%s) - t ))
    [ "$rc" = 0 ] || [ "$FAILS" -gt 0 ] || { FAILS=1; echo "    not ok: scenario exited $rc"; }
    clean_hosts
    if [ "$FAILS" = 0 ]; then say "PASS $name (${secs} s)"; else say "FAIL $name (${secs} s, $FAILS failed checks; $run/runner.log)"; fi
    [ "$FAILS" = 0 ]
}

# clean_hosts: no domain left on a live host, every LU cleared.
clean_hosts() {
    local h
    for h in a b; do [ -n "${QEMU_PID[$h]:-}" ] && gx $h 120 destroy_all >/dev/null; done
    reset_luns
    [ -z "${QEMU_PID[c]:-}" ] || gx c 120 "nvmet_up && nvme_clear" >/dev/null
}
