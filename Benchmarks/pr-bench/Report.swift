import BenchSupport
import Foundation

/// The measured figures as the Markdown section `pr.md` and the plot's
/// `pr-scale.tsv` (contract of the report assembler: section title, table
/// columns, TSV header).
struct Report {
    var sizes: [Int]
    var rounds: [Int: Int]
    var warmUp: Int
    var wall: [Key: Samples]
    var cpu: [Key: Samples]
    var commands: [Key: [String]]
    var elapsedSeconds: Double
    var target: String
    /// Where the keepers' records were (`--work-dir`).
    var workDir: String

    func w(_ v: Variant, _ op: Operation, _ n: Int) -> Samples { wall[Key(variant: v, op: op, luns: n)] ?? Samples() }
    func c(_ v: Variant, _ op: Operation, _ n: Int) -> Samples { cpu[Key(variant: v, op: op, luns: n)] ?? Samples() }
    func sent(_ v: Variant, _ op: Operation, _ n: Int) -> [String] { commands[Key(variant: v, op: op, luns: n)] ?? [] }

    /// "3 IN + 2 OUT", "1 TUR + 2 IN + 2 OUT"
    func count(_ list: [String]) -> String {
        let out = list.filter { $0.hasPrefix("PR OUT") }.count
        let tur = list.filter { $0 == "TEST UNIT READY" }.count
        return (tur > 0 ? "\(tur) TUR + " : "") + "\(list.count - out - tur) IN + \(out) OUT"
    }

    /// "READ RESERVATION ×2, READ KEYS, ..." (consecutive repeats folded: a UA retry).
    func sequence(_ list: [String]) -> String {
        var parts: [(String, Int)] = []
        for name in list {
            let short = name.replacingOccurrences(of: "PR IN ", with: "").replacingOccurrences(of: "PR OUT ", with: "")
                .replacingOccurrences(of: "REGISTER AND IGNORE EXISTING KEY", with: "REGISTER AND IGNORE")
            if let last = parts.last, last.0 == short { parts[parts.count - 1].1 += 1 } else { parts.append((short, 1)) }
        }
        return parts.map { $0.1 > 1 ? "\($0.0) ×\($0.1)" : $0.0 }.joined(separator: ", ")
    }

    /// A figure, or a dash where nothing was measured.
    func cell(_ v: Double, _ samples: Samples) -> String { samples.count == 0 ? "–" : micros(v) }

    /// A Markdown table and the blank line after it.
    func table(_ header: [String], _ rows: [[String]]) -> String {
        let line = { (cells: [String]) in "| " + cells.joined(separator: " | ") + " |\n" }
        return line(header) + line(header.map { _ in "---" }) + rows.map(line).joined() + "\n"
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }

    func markdown() -> String {
        let one = sizes.first ?? 1
        var s = "## pr plugin (SCSI-3 PR over iSCSI, tgtd)\n\n"
        s += "`make bench-pr` (`Benchmarks/pr-bench`, `scripts/bench-pr.sh`): a private tgtd on loopback, one target with "
        s += "\(sizes.last ?? 1) sparse 1 MiB LUNs; the release build's `liblockmgr_pr.so` loaded through our host library "
        s += "(`LockPlugin.load`), a fresh manager per call as libvirt makes, two simulated hosts (two initiator names, "
        s += "each its own copy of the .so and its own config: a process keeps one config per plugin). "
        s += "Acquire = host a starts the VM; handover = host b acquires with a's state while a holds (QEMU's migrate-pr order); "
        s += "release = host b releases. \"Ours through pr-sessiond\": each host's plugin reaches the target through that "
        s += "host's own pr-sessiond, which keeps the session logged in (`iscsi_session_socket`), keeper on, and each VM "
        s += "registered (REGISTER_ONLY: its keeper starts) before its acquire, as libvirt does at a VM's start. "
        s += "The floor sends only the commands the protocol needs (no reads) through the same "
        s += "libiscsi shim, on a session kept logged in; \"raw, login per operation\" adds the login and logout every plugin call pays. "
        s += "All variants run interleaved, one of each per round in rotating order, after \(warmUp) warm-up rounds; "
        s += "rounds per size: " + sizes.map { "\($0) LUN\($0 == 1 ? "" : "s"): \(rounds[$0] ?? 0)" }.joined(separator: ", ")
        s += " (with fewer than 100 rounds p99 is the maximum). Times in µs. "
        s += "**The machine was loaded** (2 cores shared with other builds; load average at the end \(Self.loadAverage())): "
        s += "compare figures within this run, not across runs. Whole run: \(Int(elapsedSeconds)) s. "
        s += "The keepers' records are in \(workDir) (`--work-dir`; by default /dev/shm, tmpfs as keeper_dir "
        s += "/run/lockmgr/pr is when deployed).\n\n"

        s += "### Latency, 1 LUN\n\n"
        s +=
            "Keeper on, as deployed: an acquire or handover that starts the VM's keeper (one with no registration before it: under libvirt a VM's start registers first "
        s += "and its keeper starts there, see the added migration downtime section; every tenth round "
        s +=
            "at 1 and 8 LUNs, every other one at 64 and 256, waits for the keepers to leave so these are measured) and one that finds it still running (a resume soon "
        s += "after a pause: a keeper leaves at its next round, up to 1 s after the release), each with its sample count.\n\n"
        let rows: [(Variant, Operation, String)] = [
            (.keeper, .acquire, "keeper on, keeper started"), (.keeperRunning, .acquire, "keeper on, keeper already running"),
            (.keeper, .handover, "keeper on, keeper started"), (.keeperRunning, .handover, "keeper on, keeper already running"),
            (.keeper, .release, "keeper on"),
            (.noKeeper, .acquire, "keeper = 0"), (.noKeeper, .handover, "keeper = 0"), (.noKeeper, .release, "keeper = 0"),
            (.service, .acquire, "through pr-sessiond, keeper on, registered first"),
            (.service, .handover, "through pr-sessiond, keeper on, registered first"),
            (.service, .release, "through pr-sessiond, keeper on"),
        ]
        s += table(
            ["operation", "ours median", "ours p99", "floor median", "floor p99", "ratio", "login per op median", "ours / login per op"],
            rows.map { v, op, label in
                let o = w(v, op, one), f = w(.raw, op, one), l = w(.rawLogin, op, one)
                return [
                    "\(op.rawValue) (\(label); \(o.count) samples)", cell(o.median, o), cell(o.p99, o),
                    micros(f.median), micros(f.p99), o.count == 0 ? "–" : ratio(o.median, f.median),
                    micros(l.median), o.count == 0 ? "–" : ratio(o.median, l.median),
                ]
            })

        s += "### Where the time goes, 1 LUN (medians, µs)\n\n"
        s += table(
            [
                "operation", "floor, session kept", "raw, login per operation", "ours, keeper = 0",
                "ours, keeper on (started / already running)",
                "CPU in our process: floor / login per op / ours keeper = 0",
            ],
            Operation.allCases.map { op in
                [
                    op.rawValue, micros(w(.raw, op, one).median), micros(w(.rawLogin, op, one).median),
                    micros(w(.noKeeper, op, one).median),
                    op == .release
                        ? micros(w(.keeper, op, one).median)
                        : "\(cell(w(.keeper, op, one).median, w(.keeper, op, one))) / \(cell(w(.keeperRunning, op, one).median, w(.keeperRunning, op, one)))",
                    "\(micros(c(.raw, op, one).median)) / \(micros(c(.rawLogin, op, one).median)) / \(micros(c(.noKeeper, op, one).median))",
                ]
            })

        s += "### Scale: resources (LUNs) per VM\n\n"
        s += "Ours: keeper on, acquire and handover that started the keeper (n: their samples).\n\n"
        s += table(
            [
                "operation", "LUNs", "rounds", "ours median", "ours p99", "n", "ours keeper = 0 median", "ours through pr-sessiond median",
                "raw login per op median",
                "floor median", "floor p99", "ratio", "ours µs per extra LUN", "floor µs per extra LUN",
            ],
            Operation.allCases.flatMap { op in
                sizes.map { n in
                    let o = w(.keeper, op, n), k = w(.noKeeper, op, n), l = w(.rawLogin, op, n), f = w(.raw, op, n)
                    func perLUN(_ v: Variant) -> String {
                        n == one ? "" : micros((w(v, op, n).median - w(v, op, one).median) / Double(n - one))
                    }
                    return [
                        op.rawValue, "\(n)", "\(rounds[n] ?? 0)", cell(o.median, o), cell(o.p99, o), "\(o.count)", micros(k.median),
                        micros(w(.service, op, n).median), micros(l.median), micros(f.median), micros(f.p99),
                        o.count == 0 ? "–" : ratio(o.median, f.median),
                        perLUN(.noKeeper), perLUN(.raw),
                    ]
                }
            })
        s += "(µs per extra LUN: the slope from 1 LUN, ours with keeper = 0, so the one keeper start per call does not blur it.)\n\n"

        s += "### SCSI commands per operation\n\n"
        s += "Ours counted from what the plugin sent (its `command_log`, one counted round per size, keeper = 0: a keeper reads "
        s += "on its own session); the floor's from its own sends. tgt reports a unit attention (29/00) to the first command "
        s += "on each LU of every new session. The floor, one command at a time, sends that command again (a repeat, ×2). "
        s += "Ours, once this target has shown it reports one, puts a TEST UNIT READY (TUR) ahead of each LU's first read "
        s += "in the same batch: it takes the attention, and nothing is sent again.\n\n"
        let minimum: [Operation: String] = [
            .acquire: "2 OUT: REGISTER + RESERVE",
            .handover: "2 OUT: REGISTER + PREEMPT(holder)",
            .release: "1 OUT on the holding nexus (unregister); 3 OUT on a new nexus (REGISTER AND IGNORE, PREEMPT own key, unregister)",
        ]
        let last = sizes.last ?? 1
        s += table(
            [
                "operation", "ours, 1 LUN", "ours' sequence, 1 LUN", "ours at \(last) LUNs",
                "ours through pr-sessiond, 1 LUN", "its sequence", "floor, session kept", "floor, login per op", "protocol minimum",
            ],
            Operation.allCases.map { op in
                [
                    op.rawValue, count(sent(.noKeeper, op, one)), sequence(sent(.noKeeper, op, one)),
                    count(sent(.noKeeper, op, last)), count(sent(.service, op, one)), sequence(sent(.service, op, one)),
                    sequence(sent(.raw, op, one)), sequence(sent(.rawLogin, op, one)),
                    minimum[op] ?? "",
                ]
            })
        s += Self.commandReasons
        s += "\n\n" + explanation(one) + "\n"
        return s
    }

    /// Why ours sends what the minimum does not: each extra command is a check.
    static let commandReasons = """
        Why the minimum: RESERVE and PREEMPT are only accepted from a registered I_T nexus, so each needs the REGISTER \
        before it, and nothing else is required when all goes well; unregistering the holder of a non-all-registrants \
        reservation releases it (SPC-4), so a nexus that still holds needs one command to release. tgt makes every login \
        a new I_T nexus and keeps the old one's registration, so a release from a new session must first bring the key \
        to this nexus (REGISTER AND IGNORE) and move the reservation here (PREEMPT of its own key). \
        What ours adds, per LU, and why it stays: **acquire** reads the LU before any PR OUT (READ RESERVATION and \
        READ KEYS, both in flight at once; READ FULL STATUS, one command, on targets that have it, which tgt does \
        not): under the registrants-only type a REGISTER alone lets this host write, so registering before looking \
        would open another VM's disk to writes until the RESERVE failed; the read also names the holder in a refusal, \
        finds this VM's registrations left on other hosts (fenced right after), and lets a multi-disk acquire find every \
        conflict before it changes anything (all or nothing). **handover** adds the same read before, and READ \
        RESERVATION after the PREEMPT: a GOOD PREEMPT does not prove we hold (if the holder changed since the read, \
        PREEMPT of the old key only removes registrations). The other registrations of this VM to fence come from the \
        read before (the READ KEYS after it was dropped: a registration of this VM made since is another host's \
        acquire, which finds our reservation and withdraws). **release** reads the holder first (READ RESERVATION: the \
        reservation type that PREEMPT must keep, whether we hold it for the returned state; READ KEYS too only on a LU \
        we do not hold, to send nothing when our key is not there). It sends no READ KEYS after: on an iSCSI session \
        (one I_T nexus) a GOOD PREEMPT of our key and a GOOD unregister prove the key gone from every nexus (SPC-4); \
        through the kernel's PR ioctls, where a multipath map answers one GOOD for all its paths, that read still \
        proves it. \
        The PREEMPT of our own key stays even on a nexus that holds the reservation: it also drops the key from the \
        host's other nexuses (its data paths), which must stop writing with the VM gone. Through pr-sessiond, whose \
        session keeps the acquire's registration, the PREEMPT goes first, the unregister right behind it, and the \
        REGISTER AND IGNORE only where the PREEMPT meets a conflict. Each of these steps goes out for all LUs of the \
        call at once (libiscsi command queueing on the target's one session): they cost round trips per call, not per \
        LU. And the PR OUTs of one LU go in one batch, one behind the other (an acquire's REGISTER AND IGNORE and \
        RESERVE; a handover's REGISTER AND IGNORE, PREEMPT and the READ RESERVATION after it; a release's PREEMPT and \
        unregister through pr-sessiond): one round trip where there were two or three. Only speed rests on the target \
        running them in the order sent (tgt does): a PR OUT run before the REGISTER it needs meets a conflict, and the \
        LU is read again and done one step per batch. On loopback a round trip costs little beyond the CPU around it; \
        `make bench-pr-latency` shows what the saved ones are worth with network latency.
        """

    func explanation(_ n: Int) -> String {
        let acquire = w(.noKeeper, .acquire, n).median, raw = w(.raw, .acquire, n).median, login = w(.rawLogin, .acquire, n).median
        let keeperCost = w(.keeper, .acquire, n).median - acquire
        let keeperFound = w(.keeperRunning, .acquire, n).median - acquire
        let perCommand = raw / Double(max(1, sent(.raw, .acquire, n).count))
        let extra = sent(.noKeeper, .acquire, n).count - sent(.rawLogin, .acquire, n).count
        let cpuOurs = c(.noKeeper, .acquire, n).median, cpuLogin = c(.rawLogin, .acquire, n).median
        var s = "**Where the extra time goes.** Taking acquire at \(n) LUN: the floor is \(micros(raw)) µs "
        s += "(\(sent(.raw, .acquire, n).count) commands, about \(micros(perCommand)) µs each on loopback). "
        s += "A login and logout around it, which every plugin call pays because libvirt creates a fresh manager per call, "
        s += "brings it to \(micros(login)) µs. Ours with keeper = 0 takes \(micros(acquire)) µs: the rest is the \(extra) extra "
        s += "commands (the reads above), and our own CPU (host library, plugin, libiscsi) of \(micros(cpuOurs)) µs against "
        s += "\(micros(cpuLogin)) µs for the raw login variant. "
        s += "Our CPU is now mostly the Swift code around each command (decoding, building the CDBs and answers, the "
        s += "host library's parameter arrays); system calls per call match the raw login variant plus the extra commands' "
        s += "(strace). The host library looks for libvirt.so.0 once per plugin load; it used to look on every plugin call "
        s += "and every added resource (dlopen RTLD_NOLOAD searches the library path: 25-50 µs each), 3 times per call at "
        s += "1 LUN and 258 times, about 12 ms, at 256 LUNs: found with strace while reading this benchmark. "
        s += "The keeper, on as deployed, adds \(micros(keeperCost)) µs to an acquire that starts it, and as much to a handover "
        s += "(here the destination's acquire starts its keeper; under libvirt the destination's QEMU registers first and its keeper "
        s += "starts then): one start of the static-Swift `pr-keeper` (`pr-keeper start`, which forks the keeper into a "
        s += "session of its own so that libvirtd never has to reap it; it used to start the program a second time for that), "
        s += "about 3.5 ms of CPU against 0.7 ms for /bin/true (perf stat), mostly the kernel's exec and the dynamic "
        s += "linker, and the wait until the keeper holds its pid file. An acquire that finds the VM's keeper running "
        s += "starts nothing (it used to start "
        s += "`pr-keeper start` anyway, which found the keeper and left; found with this benchmark) and pays "
        s += "\(micros(keeperFound)) µs over keeper = 0: the keeper's bookkeeping around the commands (the VM's process "
        s += "identity from /proc, the record read and rewritten under its flock, the check of the keeper's pid file). "
        s += "The keeper is what ties the reservation to the VM's process (a SCSI reservation outlives its process "
        s += "otherwise). A release with the keeper pays \(micros(w(.keeper, .release, n).median - w(.noKeeper, .release, n).median)) µs "
        s += "more: the record rewrite under its flock. Every keeper reads each of its LUs (2 PR IN) once per "
        s += "`keeper_interval_ms` (1 s) on its own session, and once more right after it starts: load tgtd carries during "
        s += "the whole run, which is why at 256 LUNs the keeper-on calls lose more than the keeper start (512 PR IN per "
        s += "keeper round compete with the call's own commands). "
        s += "As LUNs grow, the raw variants grow by their command count (1 to 4) times one round trip per extra LUN: "
        s += "they send one command after the other. Ours sends each step for all LUs together on the target's one "
        s += "session (tgt keeps up to 128 in flight), so its cost per extra LUN is tgt's own work and our CPU per "
        s += "command (4 to 6 commands per LU), not round trips; the fixed login and keeper costs fade."
        return s
    }

    /// For the plot: one row per plugin (ours as deployed, the raw floor), operation and size.
    /// The plot's data: ours as deployed (keeper started) and the floor.
    func scale() -> [ScalePoint] {
        [("lockmgr-pr", Variant.keeper), ("raw-floor", Variant.raw)].flatMap { name, v in
            Operation.allCases.flatMap { op in
                sizes.map { n in ScalePoint(plugin: name, operation: op.rawValue, resources: n, samples: w(v, op, n)) }
            }
        }
    }
}
