import BenchSupport
import Foundation
import Harness
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

// pr-bench: the pr plugin as libvirt runs it (the release build's
// liblockmgr_pr.so through our host library, a fresh manager per call,
// its keeper on as deployed, again with keeper = 0, and through each host's
// pr-sessiond (sessions kept logged in), keeper on) against the floor:
// the fewest PR commands that do the same, sent raw through libiscsi, on
// a session kept logged in and with a login per operation. Interleaved
// rounds (every variant once per round) at 1, 8, 64 and 256 LUNs of one
// private tgtd target (scripts/bench-pr.sh starts it).
//
//   pr-bench --target iscsi://127.0.0.1:PORT/IQN --luns 256 [--cycles 200] [--out DIR] [--keep yes]
//            [--work-dir DIR] [--target-pid PID] [--only downtime]
//
// --work-dir: where the work directory (plugin copies, configs, the
// keepers' records) is made; default /dev/shm (see workBase).
// --keep yes leaves the work directory (the plugin copies, configs) for a
// profiler's symbol lookup, e.g. under `perf record -g`.
// --only downtime runs the added-downtime windows alone and prints their
// medians instead of the report: a profiler's view of the window.
// Writes DIR/pr.md (the report section, also printed), DIR/pr-scale.tsv and
// DIR/downtime-pr.md (the added migration downtime, Downtime.swift).

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pr-bench: \(message)\n".utf8))
    exit(1)
}

/// `--name value` pairs.
func parseOptions() -> [String: String] {
    var parsed: [String: String] = [:]
    var argv = CommandLine.arguments.dropFirst()
    while let flag = argv.popFirst() {
        guard flag.hasPrefix("--"), let value = argv.popFirst() else {
            fail(
                "usage: pr-bench --target iscsi://HOST:PORT/IQN --luns N [--cycles N] [--out DIR] [--keep yes] [--work-dir DIR] [--target-pid PID] [--only downtime] (bad argument '\(flag)')"
            )
        }
        parsed[String(flag.dropFirst(2))] = value
    }
    return parsed
}
let options = parseOptions()
guard let target = options["target"], let lunCount = options["luns"].flatMap({ Int($0) }), lunCount >= 1 else {
    fail("usage: pr-bench --target iscsi://HOST:PORT/IQN --luns N [--cycles N] [--out DIR]")
}
if let only = options["only"], only != "downtime" {
    fail("--only takes 'downtime' (the added-downtime windows alone), not '\(only)'")
}
let cycles = options["cycles"].flatMap { Int($0) }.map { max(2, $0) } ?? 200
let outDir = options["out"]
let sizes = [1, 8, 64, 256].filter { $0 <= lunCount }
/// Rounds per size: fewer where one round costs hundreds of PR commands.
func rounds(_ n: Int) -> Int {
    switch n {
    case 1: return cycles
    case 8: return max(10, cycles / 2)
    case 64: return max(10, cycles / 8)
    default: return max(10, cycles / 10)
    }
}
let warmUpRounds = 2

let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let binDir = (selfPath as NSString).deletingLastPathComponent
let soPath = "\(binDir)/liblockmgr_pr.so"
let keeperPath = "\(binDir)/pr-keeper"
let sessiondPath = "\(binDir)/pr-sessiond"
for file in [soPath, keeperPath, sessiondPath]
where !FileManager.default.isExecutableFile(atPath: file) && !FileManager.default.fileExists(atPath: file) {
    fail("\(file) is missing: build the release products lockmgr_pr, pr-keeper and pr-sessiond first (make bench-pr)")
}
let urls = (1...lunCount).map { "\(target)/\($0)" }
let parsedURLs: [ISCSIURL]
do { parsedURLs = try urls.map { u throws(LockError) in try ISCSIURL(parsing: u) } } catch { fail(error.message) }

/// On tmpfs by default, as the keepers' records are when deployed
/// (keeper_dir /run/lockmgr/pr). In /tmp on ext4 every record update
/// (truncate, then write) made close() start writeback of the file (ext4's
/// auto_da_alloc), a cost no deployment pays; `--work-dir /tmp` measures it.
let workBase =
    options["work-dir"] ?? (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
let work = "\(workBase)/pr-bench-\(getpid())"
let uuid = UUIDBytes("b0b0b0b0-1111-4222-8333-444455556666")!

// The VM: a process of its own that outlives every call, watched by the keepers.
let vmProcess = Process()
vmProcess.executableURL = URL(fileURLWithPath: "/bin/sleep")
vmProcess.arguments = ["100000"]
do { try vmProcess.run() } catch { fail("cannot start the stand-in VM process: \(error)") }
/// Each simulated host's pr-sessiond, as deployed (one per host).
let services: (a: PRSessionDaemon, b: PRSessionDaemon)
do {
    services = (
        try PRSessionDaemon(label: "bench-a", program: sessiondPath), try PRSessionDaemon(label: "bench-b", program: sessiondPath)
    )
} catch {
    if vmProcess.isRunning { vmProcess.terminate(); vmProcess.waitUntilExit() }
    fail("cannot start pr-sessiond: \(error)")
}
func cleanUp() {
    services.a.stop()
    services.b.stop()
    if vmProcess.isRunning { vmProcess.terminate(); vmProcess.waitUntilExit() }
    if options["keep"] == "yes" {
        print("pr-bench: work directory kept: \(work)")
    } else {
        try? FileManager.default.removeItem(atPath: work)
    }
}
let vm = LockObject(uuid: uuid, name: "bench-vm", pid: UInt32(vmProcess.processIdentifier))

let initiatorA = "iqn.2026-01.lockmgr.bench:host-a"
let initiatorB = "iqn.2026-01.lockmgr.bench:host-b"
struct Hosts {
    var aKeeper: PluginHost, bKeeper: PluginHost, a: PluginHost, b: PluginHost, aCount: PluginHost, bCount: PluginHost
    /// Through each host's pr-sessiond: keeper on, and counted (keeper = 0, command_log).
    var aService: PluginHost, bService: PluginHost, aServiceCount: PluginHost, bServiceCount: PluginHost
}
let hosts: Hosts
do {
    func host(
        _ name: String, _ initiator: String, keeper: Bool, log: Bool = false, service: PRSessionDaemon? = nil
    ) throws
        -> PluginHost
    {
        try PluginHost(
            name: name, soPath: soPath, workDir: work, initiator: initiator, keeper: keeper,
            keeperPath: keeperPath, commandLog: log, sessionSocket: service?.socket)
    }
    hosts = Hosts(
        aKeeper: try host("pr-a-keeper", initiatorA, keeper: true), bKeeper: try host("pr-b-keeper", initiatorB, keeper: true),
        a: try host("pr-a", initiatorA, keeper: false), b: try host("pr-b", initiatorB, keeper: false),
        aCount: try host("pr-a-count", initiatorA, keeper: false, log: true),
        bCount: try host("pr-b-count", initiatorB, keeper: false, log: true),
        aService: try host("pr-a-svc", initiatorA, keeper: true, service: services.a),
        bService: try host("pr-b-svc", initiatorB, keeper: true, service: services.b),
        aServiceCount: try host("pr-a-svc-count", initiatorA, keeper: false, log: true, service: services.a),
        bServiceCount: try host("pr-b-svc-count", initiatorB, keeper: false, log: true, service: services.b))
} catch {
    cleanUp()
    fail("cannot load the pr plugin: \(error)")
}
let keyA = PRKey.exclusive(vm: uuid, host: PRKey.hostPart(ofIdentity: initiatorA))
let rawA = RawHost(initiator: "iqn.2026-01.lockmgr.bench:raw-a", vm: uuid, urls: parsedURLs, isidQualifier: 10)
let rawB = RawHost(initiator: "iqn.2026-01.lockmgr.bench:raw-b", vm: uuid, urls: parsedURLs, isidQualifier: 10)

/// What the destination gets: the state the source's inquire returns.
@MainActor func stateOfA(_ disks: [String]) -> String {
    PRState(vm: uuid, entries: disks.map { .init(resource: $0, key: keyA, type: .writeExclusiveRegistrantsOnly) }).encoded
}

enum Operation: String, CaseIterable { case acquire, handover, release }
enum Variant: String, CaseIterable {
    /// Keeper on, as deployed; acquire and handover that had to start the keeper (a VM start).
    case keeper = "ours (keeper on, as deployed)"
    /// Acquire and handover that found the VM's keeper still running (a resume soon after a pause).
    case keeperRunning = "ours (keeper on, keeper already running)"
    case noKeeper = "ours (keeper = 0)"
    case raw = "raw floor, session kept"
    case rawLogin = "raw, login per operation"
    /// Through pr-sessiond, keeper on, each VM registered (its keeper started) before its acquire, as under libvirt.
    case service = "ours through pr-sessiond (keeper on)"
}
struct Key: Hashable { var variant: Variant; var op: Operation; var luns: Int }
var wall: [Key: Samples] = [:]
var cpu: [Key: Samples] = [:]
var commands: [Key: [String]] = [:]
var roundCounts: [Int: Int] = [:]
var countingHostsProbed = false

@MainActor func record(_ v: Variant, _ op: Operation, _ n: Int, _ t: (wall: Double, cpu: Double), measured: Bool) {
    guard measured else { return }
    wall[Key(variant: v, op: op, luns: n), default: Samples()].add(t.wall)
    cpu[Key(variant: v, op: op, luns: n), default: Samples()].add(t.cpu)
}

/// acquire on host a, handover to host b (acquire with a's state while a
/// holds), release on b. With keepers, a's source-side release (libvirt's
/// clean-up after a migration) runs untimed so a's record empties.
@MainActor func pluginRound(_ a: PluginHost, _ b: PluginHost, _ v: Variant, _ disks: [String], measured: Bool) throws(LockError) {
    let n = disks.count
    let state = stateOfA(disks)
    /// With keepers, whether this acquire will have to start one.
    func kind(_ host: PluginHost) -> Variant {
        v == .keeper && KeeperStore(dir: host.keeperDir).runningKeeper(uuid) != nil ? .keeperRunning : v
    }
    let acquireKind = kind(a)
    record(acquireKind, .acquire, n, try a.call(vm, disks: disks) { m throws(LockError) in try m.acquire() }, measured: measured)
    let handoverKind = kind(b)
    record(
        handoverKind, .handover, n, try b.call(vm, disks: disks) { m throws(LockError) in try m.acquire(state: state) }, measured: measured)
    if v == .keeper { _ = try a.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() } }
    record(v, .release, n, try b.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }, measured: measured)
}

/// As pluginRound with keepers, through each host's pr-sessiond, and in
/// libvirt's order: each host's QEMU registers (REGISTER_ONLY: its keeper
/// starts) before its acquire, untimed, as at a VM's start.
@MainActor func serviceRound(_ disks: [String], measured: Bool) throws(LockError) {
    let (a, b, n, state) = (hosts.aService, hosts.bService, disks.count, stateOfA(disks))
    _ = try a.call(vm, disks: disks) { m throws(LockError) in try m.acquire(flags: [.registerOnly, .restrict]) }
    record(.service, .acquire, n, try a.call(vm, disks: disks) { m throws(LockError) in try m.acquire() }, measured: measured)
    _ = try b.call(vm, disks: disks) { m throws(LockError) in try m.acquire(flags: [.registerOnly, .restrict]) }
    record(
        .service, .handover, n, try b.call(vm, disks: disks) { m throws(LockError) in try m.acquire(state: state) }, measured: measured)
    _ = try a.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }
    record(.service, .release, n, try b.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }, measured: measured)
}

@MainActor func rawRound(_ v: Variant, _ n: Int, measured: Bool) throws(LockError) {
    let login = v == .rawLogin
    func timed(_ op: Operation, _ host: RawHost, _ raw: RawHost.Op) throws(LockError) {
        let cpu0 = Clock.threadCPU(), t0 = Clock.now()
        let sent = try host.run(raw, luns: n, sending: login ? .loginPerOperation : .sessionKept)
        record(v, op, n, (Clock.now() - t0, Clock.threadCPU() - cpu0), measured: measured)
        if measured { commands[Key(variant: v, op: op, luns: n)] = sent }
    }
    try timed(.acquire, rawA, .acquire)
    try timed(.handover, rawB, .handover(from: rawA.key))
    try timed(.release, rawB, .release)
}

/// One counted round per size with command_log on (keeper off: the keeper's
/// own reads go over its own session and are not the operation's), for
/// each way the plugin reaches the target: its own logins, pr-sessiond.
@MainActor func countRound(_ disks: [String]) throws(LockError) {
    let n = disks.count
    let ways = [(hosts.aCount, hosts.bCount, Variant.noKeeper), (hosts.aServiceCount, hosts.bServiceCount, Variant.service)]
    // A plugin probes READ FULL STATUS once per target per process (tgt
    // refuses it) and remembers the answer; libvirtd keeps the plugin
    // loaded, so what is counted is a later call's, as the timed rounds are.
    if !countingHostsProbed {
        for (a, b, _) in ways {
            _ = try a.call(vm, disks: disks) { m throws(LockError) in try m.acquire() }
            _ = try a.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }
            _ = try b.call(vm, disks: disks) { m throws(LockError) in try m.acquire() }
            _ = try b.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }
        }
        countingHostsProbed = true
    }
    for (a, b, v) in ways {
        _ = a.takeCommands(); _ = b.takeCommands()
        _ = try a.call(vm, disks: disks) { m throws(LockError) in try m.acquire() }
        commands[Key(variant: v, op: .acquire, luns: n)] = a.takeCommands()
        _ = try b.call(vm, disks: disks) { m throws(LockError) in try m.acquire(state: stateOfA(disks)) }
        commands[Key(variant: v, op: .handover, luns: n)] = b.takeCommands()
        _ = try b.call(vm, disks: disks) { m throws(LockError) in _ = try m.release() }
        commands[Key(variant: v, op: .release, luns: n)] = b.takeCommands()
    }
}

// The destination's stand-in QEMU is started now; its rounds run after the others.
let downtime: DowntimeBench
do {
    // Its own destination hosts: every window needs the last one's keeper gone (see DowntimeBench.oursRound).
    func destination(_ name: String, _ service: PRSessionDaemon?) throws -> PluginHost {
        try PluginHost(
            name: name, soPath: soPath, workDir: work, initiator: initiatorB, keeper: true, keeperPath: keeperPath,
            commandLog: false, keeperIntervalMilliseconds: DowntimeBench.destinationKeeperInterval, sessionSocket: service?.socket)
    }
    downtime = try DowntimeBench(
        direct: .init(
            source: hosts.aKeeper, destination: try destination("pr-b-downtime", nil), sourceCount: hosts.aCount,
            destinationCount: hosts.bCount),
        service: .init(
            source: hosts.aService, destination: try destination("pr-b-downtime-svc", services.b),
            sourceCount: hosts.aServiceCount, destinationCount: hosts.bServiceCount),
        sourceVM: vm, targetCPU: ProcessCPU(pid: options["target-pid"].flatMap { Int32($0) }, allThreads: false),
        serviceCPU: [services.a, services.b].map { ProcessCPU(pid: $0.pid, allThreads: true) })
} catch {
    cleanUp()
    fail("cannot start the migration destination's stand-in VM process: \(error)")
}

let started = Clock.now()
do {
    try rawA.warmUp()
    try rawB.warmUp()
    for n in sizes where options["only"] != "downtime" {
        let disks = Array(urls.prefix(n))
        try countRound(disks)
        let total = rounds(n)
        roundCounts[n] = total
        for round in 0..<(warmUpRounds + total) {
            let measured = round >= warmUpRounds
            // Rotate the order so no variant always follows the same one.
            let variants: [Variant] = [.keeper, .noKeeper, .raw, .rawLogin, .service]
            let k = variants.count
            let order = Array((variants + variants)[(round % k)..<(round % k + k)])
            for v in order {
                switch v {
                case .keeper:
                    // A keeper leaves at its next round (1 s) after its VM's
                    // last release, so many rounds find it still there: some
                    // rounds wait for both to leave, so that VM starts (a
                    // keeper start) are measured too.
                    if round % (n < 64 ? 10 : 2) == 0 { for h in [hosts.aKeeper, hosts.bKeeper] { try h.waitKeepersGone(uuid) } }
                    try pluginRound(hosts.aKeeper, hosts.bKeeper, v, disks, measured: measured)
                case .keeperRunning: break
                case .service: try serviceRound(disks, measured: measured)
                case .noKeeper: try pluginRound(hosts.a, hosts.b, v, disks, measured: measured)
                case .raw, .rawLogin: try rawRound(v, n, measured: measured)
                }
            }
        }
        // Independently: every keeper gone, nothing left on any LUN.
        for h in [hosts.aKeeper, hosts.bKeeper, hosts.aService, hosts.bService] { try h.waitKeepersGone(uuid) }
        try rawA.checkClean(luns: n)
        FileHandle.standardError.write(Data("pr-bench: \(n) LUNs, \(total) rounds done (\(Int((Clock.now() - started) / 1e6)) s)\n".utf8))
    }
    try downtime.run(sizes: sizes, urls: urls, rounds: rounds, warmUp: warmUpRounds, rawA: rawA, rawB: rawB)
} catch let error as LockError {
    downtime.stop()
    cleanUp()
    fail(error.message)
} catch {
    downtime.stop()
    cleanUp()
    fail("\(error)")
}
rawA.close()
rawB.close()
downtime.stop()
cleanUp()

let elapsed = (Clock.now() - started) / 1e6
if options["only"] == "downtime" {
    for n in sizes {
        for c in DowntimeBench.Case.allCases {
            let parts = DowntimeBench.Part.allCases.map { "\($0.rawValue) \(downtime.samples(c, $0, n).median)" }
            let sh = downtime.share(c, n)
            let cpu = "CPU: caller \(sh.caller.median), pr-sessiond \(sh.service.median), tgtd \(sh.target.median)"
            print("\(n) LUNs, \(c.rawValue): \(parts.joined(separator: ", ")); \(cpu) µs (medians)")
        }
    }
    exit(0)
}
let report = Report(
    sizes: sizes, rounds: roundCounts, warmUp: warmUpRounds, wall: wall, cpu: cpu,
    commands: commands, elapsedSeconds: elapsed, target: target, workDir: workBase)
do {
    try Section.write(name: "pr", markdown: report.markdown(), scale: report.scale(), to: outDir)
    let downtimeSection = DowntimeReport(bench: downtime, sizes: sizes, warmUp: warmUpRounds, main: report).markdown()
    try Section.write(name: "downtime-pr", markdown: downtimeSection, to: outDir)
} catch {
    fail("cannot write the report to \(outDir ?? "stdout"): \(error)")
}
