import BenchSupport
import Foundation

/// The "added migration downtime" section (`downtime-pr.md`): the
/// downtime figures next to their floors, and issue 14's goals, met or not,
/// next to what was measured (some goals are per operation: those come
/// from the pr section's rounds of the same run, `main`).
@MainActor struct DowntimeReport {
    let bench: DowntimeBench
    let sizes: [Int]
    let warmUp: Int
    /// The pr section's figures of the same run (acquire, handover, release).
    let main: Report

    typealias Case = DowntimeBench.Case
    typealias Part = DowntimeBench.Part

    func s(_ c: Case, _ part: Part, _ n: Int) -> Samples { bench.samples(c, part, n) }
    func sent(_ c: Case, _ part: Part, _ n: Int) -> [String] { bench.sent[DowntimeBench.Key(c: c, part: part, luns: n)] ?? [] }
    func commandCount(_ c: Case, _ n: Int) -> Int { sent(c, .release, n).count + sent(c, .acquire, n).count }

    /// "met" or "NOT MET", from a measured value and its bound (both finite).
    func verdict(_ value: Double, _ bound: Double) -> String {
        value.isFinite ? (value <= bound ? "met" : "**not met**") : "not measured"
    }

    func markdown() -> String {
        let one = sizes.first ?? 1, last = sizes.last ?? 1
        var t = "## Added migration downtime: pr (SCSI PR over iSCSI, tgtd)\n\n"
        t += "`make bench-pr` (`Benchmarks/pr-bench/Downtime.swift`), same run, target and hosts as the pr section. "
        t += "A live migration pauses the guest for its last copy; in libvirt's order the locks change hands inside that "
        t += "pause: the source's release (pause) and then the destination's acquire with the state the release returned "
        t += "(resume), each through a fresh manager as libvirt makes them, keepers on as deployed. Before the measured "
        t += "window, as libvirt does when it starts the destination's QEMU (paused, incoming), the destination's plugin "
        t += "gets Acquire(REGISTER_ONLY|RESTRICT) for that process: the keeper starts there, so the resume finds it "
        t += "running. Each window's destination starts with no keeper (the last one's is waited for; that host's "
        t +=
            "keeper_interval_ms is \(DowntimeBench.destinationKeeperInterval), so it leaves soon). The untimed acquire before each window starts the source's keeper anew (the last window's release "
        t += "let it go): the window opens once both keepers sleep between their rounds, as a source's keeper running "
        t += "for long does (it still reads its LUs every second, in or out of the window). "
        t += "The floors do the same with the protocol's minimum, one command at a time: the source "
        t += "unregisters (REGISTER to key 0; with a login per operation REGISTER AND IGNORE, PREEMPT of its own key and "
        t += "unregister, tgt making every login a new I_T nexus), the destination REGISTERs and RESERVEs; "
        t += "\"sequential floor, session kept\" on sessions logged in once, \"raw, login per operation\" with a login "
        t += "and logout around each of the two operations as every plugin call pays; \"floor, all LUs in flight\" sends "
        t += "the same commands as the sequential floor on the same sessions, but each step to every LU at once: "
        t += "what remains is the target's own work per command plus one round trip per step, the limit of any "
        t += "multi-LU handover on this target. tgtd's CPU time in each window is read from the kernel's counters "
        t += "(/proc/PID/schedstat of its main thread, which executes every PR command). Cases interleaved in rotating order "
        t += "after \(warmUp) warm-up rounds; rounds per size: "
        t += sizes.map { "\($0) LUN\($0 == 1 ? "" : "s"): \(bench.roundCounts[$0] ?? 0)" }.joined(separator: ", ")
        t += " (with fewer than 100 rounds p99 is the maximum). Times in µs. **The machine was loaded** "
        t += "(load average at the end \(Report.loadAverage())): compare within this run.\n\n"

        t += "### Goals (issue 14) against this run\n\n"
        t += main.table(["goal", "measured (medians)", "verdict"], goals(one: one, last: last))

        t += "### Added downtime per size\n\n"
        t += main.table(
            [
                "LUNs", "rounds", "ours median", "ours p99", "through pr-sessiond median", "through pr-sessiond p99",
                "source release (ours / pr-sessiond)", "destination acquire (ours / pr-sessiond)", "sequential floor, session kept",
                "floor, all LUs in flight", "raw, login per op", "ours / login per op", "pr-sessiond / login per op",
                "pr-sessiond / sequential floor",
                "commands: ours / pr-sessiond / floor", "pr-sessiond's commands at the floor's time per command",
            ],
            sizes.map { n in
                let o = s(.ours, .total, n), v = s(.oursService, .total, n), f = s(.floorKept, .total, n), l = s(.floorLogin, .total, n)
                let perCommand = f.median / Double(max(1, commandCount(.floorKept, n)))
                return [
                    "\(n)", "\(bench.roundCounts[n] ?? 0)", micros(o.median), micros(o.p99), micros(v.median), micros(v.p99),
                    "\(micros(s(.ours, .release, n).median)) / \(micros(s(.oursService, .release, n).median))",
                    "\(micros(s(.ours, .acquire, n).median)) / \(micros(s(.oursService, .acquire, n).median))",
                    micros(f.median), micros(s(.floorInFlight, .total, n).median), micros(l.median), ratio(o.median, l.median),
                    ratio(v.median, l.median), ratio(v.median, f.median),
                    "\(commandCount(.ours, n)) / \(commandCount(.oursService, n)) / \(commandCount(.floorKept, n))",
                    micros(perCommand * Double(commandCount(.oursService, n))),
                ]
            })
        t += "The last column is an estimate, not a measurement: the command count through pr-sessiond times the sequential "
        t += "floor's time per command, i.e. what those commands would cost sent one after another with no plugin, no "
        t += "service hop and no keeper.\n\n"
        t += targetTable()
        t += sharesTable(one, last)

        t += "### Commands in the window, 1 LUN\n\n"
        t += main.table(
            ["part", "ours", "ours' sequence", "through pr-sessiond", "sequential floor, session kept", "raw, login per op"],
            [Part.release, Part.acquire].map { p in
                [
                    p.rawValue, main.count(sent(.ours, p, one)), main.sequence(sent(.ours, p, one)),
                    main.sequence(sent(.oursService, p, one)), main.sequence(sent(.floorKept, p, one)),
                    main.sequence(sent(.floorLogin, p, one)),
                ]
            })
        t += explanation(one, last)
        return t + "\n"
    }

    func goals(one: Int, last: Int) -> [[String]] {
        var rows: [[String]] = []
        for (c, how) in [(Case.oursService, "through pr-sessiond"), (.ours, "a login per call")] {
            let down = s(c, .total, one)
            rows.append([
                "\(one) LUN: added downtime ≤ 1.5 ms (keeper included), \(how)",
                "\(micros(down.median)) µs (p99 \(micros(down.p99)))", verdict(down.median, 1500),
            ])
        }
        func perOperation(_ label: String, _ ours: Double, _ login: Double) -> [String] {
            [
                "\(one) LUN: \(label) ≤ 1.3× raw login per operation", "\(micros(ours)) / \(micros(login)) µs = \(ratio(ours, login))",
                verdict(ours / login, 1.3),
            ]
        }
        for (c, how) in [(Case.oursService, "through pr-sessiond"), (.ours, "login per call")] {
            rows.append(
                perOperation(
                    "source release (downtime, \(how))", s(c, .release, one).median, s(.floorLogin, .release, one).median))
            rows.append(
                perOperation(
                    "destination acquire with state (downtime, \(how))", s(c, .acquire, one).median,
                    s(.floorLogin, .acquire, one).median))
        }
        // The pr section's operations: acquire and handover that find the keeper running (as after REGISTER_ONLY).
        for (op, v, label) in [
            (Operation.acquire, Variant.service, "acquire (pr section, through pr-sessiond, registered first)"),
            (.handover, .service, "handover (pr section, through pr-sessiond, registered first)"),
            (.release, .service, "release (pr section, through pr-sessiond)"),
            (.acquire, .keeperRunning, "acquire (pr section, login per call, keeper running)"),
            (.handover, .keeperRunning, "handover (pr section, login per call, keeper running)"),
            (.release, .keeper, "release (pr section, login per call, keeper on)"),
        ] {
            rows.append(perOperation(label, main.w(v, op, one).median, main.w(.rawLogin, op, one).median))
        }
        let bigFloor = s(.floorKept, .total, last)
        let inFlight = s(.floorInFlight, .total, last)
        let handover = main.w(.service, .handover, last)
        rows.append([
            "\(last) LUNs: handover ≤ 30 ms",
            "pr section's handover through pr-sessiond: \(micros(handover.median)) µs; the whole window's floor with all LUs in flight: \(micros(inFlight.median)) µs",
            verdict(handover.median, 30_000),
        ])
        for (c, how) in [(Case.oursService, "through pr-sessiond"), (.ours, "login per call")] {
            let bigDown = s(c, .total, last)
            rows.append([
                "\(last) LUNs: added downtime ≤ 30 ms, below the sequential floor (\(how))",
                "\(micros(bigDown.median)) µs; sequential floor \(micros(bigFloor.median)) µs; floor with all LUs in flight \(micros(inFlight.median)) µs",
                bigDown.median <= 30_000 && bigDown.median < bigFloor.median ? "met" : "**not met**",
            ])
        }
        return rows
    }

    /// tgtd's CPU per window and per command: the target's own work, which
    /// no way of sending can avoid.
    func targetTable() -> String {
        let cases: [Case] = [.oursService, .ours, .floorInFlight, .floorKept]
        guard sizes.contains(where: { n in cases.contains { bench.share($0, n).target.count > 0 } }) else {
            return "(tgtd's CPU time was not measured: pr-bench ran without `--target-pid`.)\n\n"
        }
        var t = "### The target's own work in the window\n\n"
        t +=
            "tgtd's CPU time per window (median, µs, its main thread, where it executes every PR command), the commands of the window, and tgtd's CPU per command. "
        t += "The last column multiplies the protocol's minimum for the window (the floor's commands) by tgtd's CPU per "
        t += "command in the all-in-flight floor: what the target alone would spend on a handover that sent nothing more "
        t += "(a lower bound for any client, before round trips and the client's own CPU).\n\n"
        let header =
            ["LUNs"]
            + cases.map {
                "\($0 == .oursService ? "ours through pr-sessiond" : $0 == .ours ? "ours, login per call" : $0.rawValue): tgtd CPU / commands / per command"
            }
            + ["protocol minimum at tgtd's cost"]
        t += main.table(
            header,
            sizes.map { n in
                var row = ["\(n)"]
                for c in cases {
                    let cpu = bench.share(c, n).target.median, commands = commandCount(c, n)
                    row.append("\(micros(cpu)) / \(commands) / \(micros(cpu / Double(max(1, commands))))")
                }
                let perCommand = bench.share(.floorInFlight, n).target.median / Double(max(1, commandCount(.floorInFlight, n)))
                row.append(micros(perCommand * Double(commandCount(.floorKept, n))))
                return row
            })
        return t
    }

    /// The window's wall time split into the CPU of each party and the rest.
    func sharesTable(_ one: Int, _ last: Int) -> String {
        let cases: [Case] = [.oursService, .ours, .floorKept, .floorInFlight, .floorLogin]
        var t = "### Where the window's time goes\n\n"
        t += "Medians per window, µs: the wall time; the CPU of the caller's thread (the host library and the plugin, "
        t += "or the floor's sends, libiscsi included); of both pr-sessiond processes, every thread (through pr-sessiond "
        t += "only); of tgtd's main thread; and the rest, per window the wall time minus those (time when none of them "
        t += "ran on behalf of the window: waking a sleeping process on another core, loopback, the keepers' record "
        t += "files, the kernel's own threads); negative where they ran at the same time on the two cores (many LUs in "
        t += "flight: the caller or pr-sessiond sends while tgtd works). Keepers sleep through the window.\n\n"
        func m(_ x: Samples) -> String { x.count > 0 ? micros(x.median) : "—" }
        var rows: [[String]] = []
        for n in Set([one, last]).sorted() {
            for c in cases {
                let sh = bench.share(c, n)
                rows.append([
                    "\(n)", c.rawValue, micros(s(c, .total, n).median), m(sh.caller), m(sh.service), m(sh.target), m(sh.rest),
                ])
            }
        }
        t += main.table(["LUNs", "case", "wall", "caller's CPU", "pr-sessiond's CPU", "tgtd's CPU", "the rest"], rows)
        return t
    }

    func explanation(_ one: Int, _ last: Int) -> String {
        let release = s(.ours, .release, one).median, acquire = s(.ours, .acquire, one).median
        let floor = s(.floorKept, .total, one).median, login = s(.floorLogin, .total, one).median
        let perCommand = floor / Double(max(1, commandCount(.floorKept, one)))
        var t = "\n**Reading it.** At \(one) LUN the window costs \(micros(release + acquire)) µs in medians of the parts "
        t += "(source release \(micros(release)), destination acquire \(micros(acquire))): the sequential floor "
        t += "(\(commandCount(.floorKept, one)) commands, about \(micros(perCommand)) µs each on loopback) takes \(micros(floor)) µs, "
        t += "a login per operation brings it to \(micros(login)) µs. The destination's keeper is already running "
        t += "(started at REGISTER_ONLY, outside the window), so the acquire pays no process start, only the record "
        t += "update under its flock and the check of the keeper's pid file; the source's release pays the same record "
        t += "update. What remains above the login floor is ours' extra commands (the reads before and after each change, "
        t += "see the pr section for why each stays) and our own CPU around them. "
        t += "At \(last) LUNs the floors send one command at a time; ours keeps one step of every LU in flight at once "
        t += "on the target's session (a LU's PR OUTs one behind the other in one batch; the first LU alone, as the "
        t += "race gate), so the window grows with the steps and "
        t += "tgtd's own work per command rather than with round trips (\(micros(s(.ours, .total, last).median)) µs for "
        t += "ours against \(micros(s(.floorKept, .total, last).median)) µs for the sequential floor).\n\n"
        let vRelease = s(.oursService, .release, one).median, vAcquire = s(.oursService, .acquire, one).median
        t += "**Through pr-sessiond** the same window costs \(micros(s(.oursService, .total, one).median)) µs at \(one) LUN "
        t += "(source release \(micros(vRelease)), destination acquire \(micros(vAcquire))), with "
        t += "\(commandCount(.oursService, one)) commands against \(commandCount(.ours, one)) with a login per call: no login or "
        t += "logout, and no retry after the unit attention a new session gets (each host's service logged in once, before "
        t += "the run's first window). What remains above the sequential floor is ours' reads (kept for the reasons in the pr "
        t += "section), one Unix-socket round trip to the service per operation, our CPU in the plugin and the service, and the "
        t += "keeper record update. At \(last) LUNs the service saves only the logins "
        t += "(\(micros(s(.oursService, .total, last).median)) µs): the window there is tgtd's work per command."
        let ourCPU = bench.share(.oursService, last).target.median, ourCommands = commandCount(.oursService, last)
        let floorCPU = bench.share(.floorInFlight, last).target.median, floorCommands = commandCount(.floorInFlight, last)
        if ourCPU.isFinite, floorCPU.isFinite, floorCommands > 0, ourCommands > 0 {
            let perCommand = floorCPU / Double(floorCommands)
            let budget = 30_000 / perCommand
            t += " tgtd's main thread spends \(micros(ourCPU)) µs of CPU in it (\(micros(ourCPU / Double(ourCommands))) µs "
            t += "for each of the \(ourCommands) commands); the protocol's minimum with all LUs in flight takes "
            t += "\(micros(s(.floorInFlight, .total, last).median)) µs, \(micros(floorCPU)) µs of it tgtd's CPU "
            t += "(\(micros(perCommand)) µs per command). At that cost 30 ms of the target's work alone is about "
            t += "\(Int(budget)) commands, \(String(format: "%.1f", budget / Double(last))) per LU, against the "
            t += "\(ourCommands / last) per LU we send (the reads before and after each change, see the pr section). "
            // The target's CPU is not the whole cost: the client's work and
            // the round trips are in the floor's wall time too.
            let wallPerCommand = s(.floorInFlight, .total, last).median / Double(floorCommands)
            let perLU = 30_000 / wallPerCommand / Double(last)
            t += "At the floor's whole cost per command (its wall time, \(micros(wallPerCommand)) µs: the target's work, "
            t += "the client's and the round trips) 30 ms holds \(String(format: "%.1f", perLU)) commands per LU"
            t +=
                perLU < Double(ourCommands) / Double(last)
                ? ": ours would not fit even if sent as cheaply as the floor sends its own."
                : ": ours would fit if sent as cheaply as the floor sends its own; what is over is our cost per command."
        }
        return t + "\n"
    }
}
