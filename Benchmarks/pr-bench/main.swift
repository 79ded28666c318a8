import Glibc
import LockDriver
import PRCore

// pr-bench: latency of the pr plugin's acquire, handover and release on one
// LUN, next to the floor: the very same CDBs replayed raw through libiscsi
// on sessions that are already logged in. The difference is the plugin's
// own cost: a login per operation (each libvirt call is a fresh manager)
// plus the Swift logic.
//
//   pr-bench iscsi://127.0.0.1:PORT/IQN/LUN [iterations]

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}

func die(_ message: String) -> Never {
    let line = Array("pr-bench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// Records the commands the plugin sends, to replay them raw.
final class Recorder: SCSITransport {
    let real: SCSITransport
    var commands: [PRCommand] = []
    init(_ real: SCSITransport) { self.real = real }
    var deviceDescription: String { real.deviceDescription }
    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        commands.append(PRCommand(cdb: cdb, direction: direction))
        return try real.send(cdb: cdb, direction: direction, timeoutMilliseconds: timeoutMilliseconds)
    }
}

struct Sample {
    var plugin: [Double] = []
    var raw: [Double] = []
    var commands: [PRCommand] = []
}

let args = CommandLine.arguments
guard args.count >= 2 else { die("usage: pr-bench iscsi://HOST:PORT/IQN/LUN [iterations]") }
let lun = args[1]
let iterations = args.count > 2 ? Int(args[2]) ?? 200 : 200
let vm = UUIDBytes("b0b0b0b0-1111-4222-8333-444455556666")!
let hostA = PRConfig(iscsiInitiator: "iqn.2026-01.lockmgr.bench:host-a")
let hostB = PRConfig(iscsiInitiator: "iqn.2026-01.lockmgr.bench:host-b")
let resources = [PRResource(lun)]

/// One plugin operation as libvirt runs it: fresh manager, login, commands, logout.
func pluginOp(_ config: PRConfig, _ body: (PRLocker) throws(LockError) -> Void) throws(LockError) -> (Double, [PRCommand]) {
    let start = now()
    let factory = TransportFactory(config: config)
    var recorder: Recorder?
    let locker = try PRLocker(config: config, vm: vm) { name throws(LockError) in
        let r = Recorder(try factory.transport(for: name))
        recorder = r
        return r
    }
    try body(locker)
    factory.closeAll()
    return (now() - start, recorder?.commands ?? [])
}

// Raw sessions for the floor: one per host, logged in once.
let rawA = ISCSISessionPool(initiator: "iqn.2026-01.lockmgr.bench:raw-a", isidQualifier: 3)
let rawB = ISCSISessionPool(initiator: "iqn.2026-01.lockmgr.bench:raw-b", isidQualifier: 3)
func rawReplay(_ pool: ISCSISessionPool, _ commands: [PRCommand]) throws(LockError) -> Double {
    let transport = ISCSITransport(url: try ISCSIURL(parsing: lun), pool: pool)
    let start = now()
    for c in commands { _ = try transport.send(cdb: c.cdb, direction: c.direction, timeoutMilliseconds: 5000) }
    return now() - start
}

var acquire = Sample(), handover = Sample(), release = Sample()
var login: [Double] = []
do {
    // Warm up both raw sessions (their logins are not part of the floor).
    _ = try rawReplay(rawA, [.prIn(.readKeys)])
    _ = try rawReplay(rawB, [.prIn(.readKeys)])
    for _ in 0..<iterations {
        var state: PRState?
        let (ta, ca) = try pluginOp(hostA) { l throws(LockError) in
            try l.acquire(resources, state: nil)
            state = try PRState(decoding: PRState(vm: vm, entries: [
                .init(resource: lun, key: l.key(for: .exclusive), type: hostA.exclusiveType)]).encoded)
        }
        let (tb, cb) = try pluginOp(hostB) { l throws(LockError) in try l.acquire(resources, state: state) }
        let (tr, cr) = try pluginOp(hostB) { l throws(LockError) in _ = try l.release(resources) }
        acquire.plugin.append(ta); acquire.commands = ca
        handover.plugin.append(tb); handover.commands = cb
        release.plugin.append(tr); release.commands = cr
        acquire.raw.append(try rawReplay(rawA, ca))
        handover.raw.append(try rawReplay(rawB, cb))
        release.raw.append(try rawReplay(rawB, cr))
        let t0 = now()
        let p = ISCSISessionPool(initiator: "iqn.2026-01.lockmgr.bench:login", isidQualifier: 4)
        _ = try rawReplay(p, [])
        _ = try ISCSITransport(url: try ISCSIURL(parsing: lun), pool: p)
            .send(cdb: PRCommand.prIn(.readKeys).cdb, direction: .fromDevice(allocationLength: 8192), timeoutMilliseconds: 5000)
        p.closeAll()
        login.append(now() - t0)
    }
} catch {
    die(error.message)
}
rawA.closeAll()
rawB.closeAll()

func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
func p90(_ v: [Double]) -> Double { let s = v.sorted(); return s.isEmpty ? 0 : s[min(s.count - 1, s.count * 9 / 10)] }
func fmt(_ us: Double) -> String {
    let r = (us * 10).rounded() / 10
    let s = "\(r)"
    return String(repeating: " ", count: max(0, 9 - s.count)) + s
}
func counts(_ c: [PRCommand]) -> String {
    let out = c.filter(\.isPROut).count
    return "\(c.count - out) IN + \(out) OUT"
}

print("pr-bench: \(iterations) iterations on \(lun) (microseconds, median / p90)")
print("operation   plugin median     p90   | raw same CDBs median     p90   | PR commands")
for (name, s) in [("acquire ", acquire), ("handover", handover), ("release ", release)] {
    print("\(name)    \(fmt(median(s.plugin)))  \(fmt(p90(s.plugin)))   |        \(fmt(median(s.raw)))  \(fmt(p90(s.raw)))   | \(counts(s.commands)): \(s.commands.map(\.name).joined(separator: ", "))")
}
print("login + 1 PR IN + logout (what a fresh manager pays first): median \(fmt(median(login))) p90 \(fmt(p90(login)))")

// What a keeper adds to every real acquire: writing the VM's record and
// starting pr-keeper (spawn, detach, wait until it holds its pid file).
// pr-keeper is the one built beside this program.
/// The directory this program was run from.
func ownDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    return exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
}
let keeperPath = ownDirectory() + "/pr-keeper"
let store = KeeperStore(dir: "/tmp/pr-bench-keeper-\(getpid())")
var keeperStart: [Double] = []
do {
    guard let me = VMProcess.current(getpid()) else { die("cannot read /proc/self/stat") }
    for _ in 0..<min(iterations, 50) {
        let t0 = now()
        try store.update(vm) { record throws(LockError) in
            record = KeeperRecord(vm: vm, name: "bench", pid: me.pid, startTime: me.startTime, action: .default,
                                  uri: nil, configFile: nil, resources: [])
        }
        try KeeperLauncher.ensureRunning(keeperPath: keeperPath, store: store, vm: vm)
        keeperStart.append(now() - t0)
        // Let it go (no record: it leaves) before the next round.
        try store.update(vm) { record throws(LockError) in record = nil }
        while store.runningKeeper(vm) != nil { usleep(1000) }
    }
} catch {
    die(error.message)
}
for file in [store.logPath, store.pidPath(vm)] { unlink(file) }
rmdir(store.dir)
print("keeper start (record + spawn + ready), \(keeperStart.count) runs: median \(fmt(median(keeperStart))) p90 \(fmt(p90(keeperStart)))")
