#!/usr/bin/env python3
"""Measures running pr keepers (scripts/bench-keepers.sh sets them up).

Over --seconds: each keeper's CPU (utime+stime from /proc/PID/stat) and
memory (Rss, Pss, Private_Dirty from /proc/PID/smaps_rollup), tgtd's CPU,
and the commands the keepers send: iSCSI PDUs carrying data on their TCP
connections to tgtd (ss's data_segs_out; the keepers only send PR IN
commands, one PDU each, while nothing changes). Then every VM is SIGKILLed
at once and each keeper timed until it has released and exited; the LUs
are then read with pr-tool (PR IN) to check nothing is left reserved.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def memory_kib(pid):
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].rstrip(":") in ("Rss", "Pss", "Private_Dirty"):
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def data_segments(port, pids):
    """data_segs_out per connection to tgtd's port, of the given processes."""
    text = subprocess.run(["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
                          capture_output=True, text=True, check=True).stdout
    total, connections = 0, 0
    # Each connection: a line with users:(("pr-keeper",pid=N,fd=M)), then its info line.
    blocks = re.split(r"\n(?=\S)", text.strip()) if text.strip() else []
    for block in blocks:
        owner = re.search(r"pid=(\d+)", block)
        segs = re.search(r"data_segs_out:(\d+)", block)
        if owner and int(owner.group(1)) in pids and segs:
            total += int(segs.group(1))
            connections += 1
    return total, connections


def alive(pid):
    """Running: not gone and not a zombie (a detached keeper's exit is
    reaped by whoever adopted it, maybe much later)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", required=True, help="TSV: vm pid, keeper pid file, LU url")
    ap.add_argument("--tgtd", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--interval-ms", type=int, required=True)
    ap.add_argument("--pr-tool", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()

    vms = []
    for line in open(a.vms):
        vm_pid, pid_file, url = line.rstrip("\n").split("\t")
        keeper = int(open(pid_file).read().strip())
        vms.append((int(vm_pid), keeper, url))
    keepers = [k for _, k, _ in vms]
    missing = [k for k in keepers if not alive(k)]
    if missing:
        sys.exit(f"keeper-load: {len(missing)} keepers are not running: {missing[:5]}")

    # Let every keeper log in and settle into its rhythm first.
    time.sleep(max(2.0, 3 * a.interval_ms / 1000))
    t0 = time.monotonic()
    cpu0 = {k: cpu_ticks(k) for k in keepers}
    tgt0 = cpu_ticks(a.tgtd)
    segs0, conns = data_segments(a.port, set(keepers))
    time.sleep(a.seconds)
    t1 = time.monotonic()
    cpu1 = {k: cpu_ticks(k) for k in keepers}
    tgt1 = cpu_ticks(a.tgtd)
    segs1, conns1 = data_segments(a.port, set(keepers))
    mem = [memory_kib(k) for k in keepers]
    elapsed = t1 - t0

    cpu_pct = [100 * (cpu1[k] - cpu0[k]) / TICKS / elapsed for k in keepers]
    tgt_pct = 100 * (tgt1 - tgt0) / TICKS / elapsed
    rate = (segs1 - segs0) / elapsed
    expected = 2 * len(vms) * 1000 / a.interval_ms  # READ RESERVATION + READ KEYS per LU per round

    # Every VM dies at once; a keeper has noticed once it has released and exited.
    killed = {}
    for vm_pid, keeper, _ in vms:
        os.kill(vm_pid, signal.SIGKILL)
        killed[keeper] = time.monotonic()
    latency = {}
    deadline = time.monotonic() + 60 + 10 * a.interval_ms / 1000
    while len(latency) < len(keepers) and time.monotonic() < deadline:
        now = time.monotonic()
        for k in keepers:
            if k not in latency and not alive(k):
                latency[k] = now - killed[k]
        time.sleep(0.005)
    late = [k for k in keepers if k not in latency]

    left = []
    for _, _, url in vms:
        r = subprocess.run([a.pr_tool, url, "reservation", "keys"], capture_output=True, text=True)
        if r.returncode != 0 or "no reservation" not in r.stdout or "keys []" not in r.stdout:
            left.append(f"{url}: {r.stdout.strip()} {r.stderr.strip()}")

    lat_ms = [1000 * v for v in latency.values()]
    rows = [
        ("VMs (keepers), one LU each", f"{len(vms)}"),
        ("keeper_interval_ms", f"{a.interval_ms}"),
        ("measured over", f"{elapsed:.0f} s"),
        ("CPU per keeper: mean / max", f"{statistics.mean(cpu_pct):.3f} % / {max(cpu_pct):.3f} % of one core"),
        ("CPU, all keepers", f"{sum(cpu_pct):.1f} % of one core"),
        ("memory per keeper: Rss / Pss / Private_Dirty (mean)",
         f"{statistics.mean(m['Rss'] for m in mem):.0f} / {statistics.mean(m['Pss'] for m in mem):.0f} / "
         f"{statistics.mean(m['Private_Dirty'] for m in mem):.0f} KiB"),
        ("memory, all keepers (Pss)", f"{sum(m['Pss'] for m in mem) / 1024:.1f} MiB"),
        ("commands to the target (PDUs on the keepers' connections)",
         f"{rate:.0f} /s over {conns1} connections (2 PR IN per LU per round would be {expected:.0f} /s)"),
        ("tgtd CPU", f"{tgt_pct:.1f} % of one core"),
        ("all VMs SIGKILLed at once: released and exited, median / p95 / max",
         f"{statistics.median(lat_ms):.0f} / {percentile(lat_ms, 95):.0f} / {max(lat_ms):.0f} ms"
         if lat_ms else "none"),
        ("keepers not done within the deadline", f"{len(late)}"),
        ("LUs left reserved or registered afterwards (pr-tool PR IN)", f"{len(left)}"),
    ]
    report = "| keepers under load | |\n|---|---:|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(report, end="")
    for line in left[:5]:
        print("left:", line)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "keepers.md"), "w") as f:
            f.write(report)
    return 1 if late or left else 0


if __name__ == "__main__":
    sys.exit(main())
