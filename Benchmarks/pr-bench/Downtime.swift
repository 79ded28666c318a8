import BenchSupport
import Foundation
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// "Added migration downtime" (issue 14): what the locks add to a live
/// migration's pause, in libvirt's order. Before the measured window, as
/// libvirt does when it starts the destination's QEMU (paused, incoming),
/// host b's plugin gets Acquire(REGISTER_ONLY) for that process (its
/// keeper starts then). Inside the window: host a's release (the source
/// pauses; it returns the state) and host b's acquire with that state (the
/// destination resumes), each through a fresh manager, keepers on as
/// deployed; once with each call logging in itself, once through each
/// host's pr-sessiond (sessions kept logged in). The floors do the same with the fewest commands: the source
/// unregisters, the destination registers and reserves, one command at a
/// time (the sequential floor), on sessions kept logged in and with a
/// login per operation.
@MainActor final class DowntimeBench {
    enum Case: String, CaseIterable {
        case ours = "ours (keeper on, as deployed)"
        case oursService = "ours through pr-sessiond (keeper on)"
        case floorKept = "sequential floor, session kept"
        case floorInFlight = "floor, all LUs in flight, session kept"
        case floorLogin = "raw, login per operation"
    }
    enum Part: String, CaseIterable {
        case release = "source release"
        case acquire = "destination acquire with state"
        case total = "added downtime"
    }
    struct Key: Hashable { var c: Case; var part: Part; var luns: Int }

    /// The plugin hosts one "ours" case runs on: timed (keepers on) and
    /// counted (command_log, keeper off).
    struct Hosts {
        var source: PluginHost, destination: PluginHost
        var sourceCount: PluginHost, destinationCount: PluginHost
    }

    let hosts: [Case: Hosts]
    let sourceVM: LockObject
    /// The destination's QEMU: its own process, registered before each window.
    let incoming = Process()
    let destinationVM: LockObject
    var wall: [Key: Samples] = [:]
    /// Where each window's time went (part `.total`): CPU of the caller
    /// (the bench thread: host library and plugin, or the floor's sends),
    /// of the pr-sessiond processes, of tgtd, and the rest of the wall time.
    struct Shares {
        var caller = Samples(), service = Samples(), target = Samples(), rest = Samples()
    }
    var shares: [Key: Shares] = [:]
    let targetCPU: ProcessCPU
    let serviceCPU: [ProcessCPU]
    /// Ours' commands per part (counted with command_log, keeper off), and the floor's.
    var sent: [Key: [String]] = [:]
    var roundCounts: [Int: Int] = [:]

    init(direct: Hosts, service: Hosts, sourceVM: LockObject, targetCPU: ProcessCPU, serviceCPU: [ProcessCPU]) throws {
        hosts = [.ours: direct, .oursService: service]
        self.targetCPU = targetCPU
        self.serviceCPU = serviceCPU
        self.sourceVM = sourceVM
        incoming.executableURL = URL(fileURLWithPath: "/bin/sleep")
        incoming.arguments = ["100000"]
        try incoming.run()
        destinationVM = LockObject(uuid: sourceVM.uuid, name: sourceVM.name, pid: UInt32(incoming.processIdentifier))
    }

    func stop() {
        if incoming.isRunning { incoming.terminate(); incoming.waitUntilExit() }
    }

    func samples(_ c: Case, _ part: Part, _ n: Int) -> Samples { wall[Key(c: c, part: part, luns: n)] ?? Samples() }
    private func add(_ c: Case, _ n: Int, release: Double, acquire: Double, measured: Bool) {
        guard measured else { return }
        wall[Key(c: c, part: .release, luns: n), default: Samples()].add(release)
        wall[Key(c: c, part: .acquire, luns: n), default: Samples()].add(acquire)
        wall[Key(c: c, part: .total, luns: n), default: Samples()].add(release + acquire)
    }

    func share(_ c: Case, _ n: Int) -> Shares { shares[Key(c: c, part: .total, luns: n)] ?? Shares() }

    /// CPU counters read around a window: tgtd's and the services'.
    struct Marks {
        var target: Double?, service: Double?
    }
    private func marks() -> Marks { Marks(target: targetCPU.now(), service: ProcessCPU.sum(serviceCPU)) }

    private func addShares(_ c: Case, _ n: Int, wall: Double, caller: Double, _ a: Marks, _ b: Marks, measured: Bool) {
        guard measured else { return }
        var sh = shares[Key(c: c, part: .total, luns: n)] ?? Shares()
        var rest = wall - caller
        sh.caller.add(caller)
        if let t0 = a.target, let t1 = b.target {
            sh.target.add(t1 - t0)
            rest -= t1 - t0
        }
        // Only pr-sessiond's case talks to the services (their other work is idling).
        if c == .oursService, let s0 = a.service, let s1 = b.service {
            sh.service.add(s1 - s0)
            rest -= s1 - s0
        }
        sh.rest.add(rest)
        shares[Key(c: c, part: .total, luns: n)] = sh
    }

    func run(sizes: [Int], urls: [String], rounds: (Int) -> Int, warmUp: Int, rawA: RawHost, rawB: RawHost) throws {
        for n in sizes {
            let disks = Array(urls.prefix(n))
            for (c, h) in hosts { try count(c, h, disks) }
            let total = rounds(n)
            roundCounts[n] = total
            for round in 0..<(warmUp + total) {
                let measured = round >= warmUp
                let order = Case.allCases.indices.map { Case.allCases[($0 + round) % Case.allCases.count] }
                for c in order {
                    switch c {
                    case .ours, .oursService: try oursRound(c, disks, measured: measured)
                    case .floorKept, .floorInFlight, .floorLogin: try floorRound(c, n, rawA, rawB, measured: measured)
                    }
                }
            }
            for h in hosts.values.flatMap({ [$0.source, $0.destination] }) { try h.waitKeepersGone(sourceVM.uuid) }
            try rawA.checkClean(luns: n)
            FileHandle.standardError.write(Data("pr-bench: downtime, \(n) LUNs, \(total) rounds done\n".utf8))
        }
    }

    /// The destination host's keeper interval: a keeper leaves at its next
    /// round after its record empties, and each window must start with none
    /// (a new QEMU on the destination has no keeper yet); at the default 1 s
    /// waiting for it would cost half a second per round.
    static let destinationKeeperInterval = 100

    /// a holds (untimed); b's QEMU registers (untimed: done at its start);
    /// the window: a releases, b acquires with a's state; then b lets go
    /// (untimed) and its keeper is waited for, so that the next window's
    /// keeper is the one its registration started, never a leftover.
    private func oursRound(_ c: Case, _ disks: [String], measured: Bool) throws {
        guard let h = hosts[c] else { return }
        let (source, destination) = (h.source, h.destination)
        try destination.waitKeepersGone(sourceVM.uuid)
        _ = try source.call(sourceVM, disks: disks) { m throws(LockError) in try m.acquire() }
        _ = try destination.call(destinationVM, disks: disks) { m throws(LockError) in try m.acquire(flags: [.registerOnly, .restrict]) }
        settle(source)
        settle(destination)
        var state: String?
        let before = marks()
        let release = try source.call(sourceVM, disks: disks) { m throws(LockError) in state = try m.release() }
        let acquire = try destination.call(destinationVM, disks: disks) { m throws(LockError) in try m.acquire(state: state) }
        addShares(
            c, disks.count, wall: release.wall + acquire.wall, caller: release.cpu + acquire.cpu, before, marks(), measured: measured)
        _ = try destination.call(destinationVM, disks: disks) { m throws(LockError) in _ = try m.release() }
        add(c, disks.count, release: release.wall, acquire: acquire.wall, measured: measured)
    }

    /// Waits (up to 5 s) until the host's keeper of the VM sleeps between
    /// rounds: a source's keeper has been running long before a migration,
    /// not starting and reading all its LUs for the first time (which the
    /// untimed acquire just before made it do) inside the window.
    private func settle(_ host: PluginHost) {
        guard let pid = KeeperStore(dir: host.keeperDir).runningKeeper(sourceVM.uuid) else { return }
        let deadline = Clock.now() + 5e6
        while Clock.now() < deadline {
            let wchan = (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? ""
            if wchan.contains("nanosleep") || !FileManager.default.fileExists(atPath: "/proc/\(pid)") { return }
            usleep(500)
        }
    }

    private func floorRound(_ c: Case, _ n: Int, _ rawA: RawHost, _ rawB: RawHost, measured: Bool) throws(LockError) {
        let sending: RawHost.Sending = c == .floorLogin ? .loginPerOperation : c == .floorInFlight ? .inFlight : .sessionKept
        _ = try rawA.run(.acquire, luns: n, sending: sending)
        let before = marks()
        let cpu0 = Clock.threadCPU()
        let t0 = Clock.now()
        let released = try rawA.run(.release, luns: n, sending: sending)
        let t1 = Clock.now()
        let acquired = try rawB.run(.acquire, luns: n, sending: sending)
        let t2 = Clock.now()
        let cpu = Clock.threadCPU() - cpu0
        let after = marks()
        _ = try rawB.run(.release, luns: n, sending: sending)
        add(c, n, release: t1 - t0, acquire: t2 - t1, measured: measured)
        addShares(c, n, wall: t2 - t0, caller: cpu, before, after, measured: measured)
        if measured {
            sent[Key(c: c, part: .release, luns: n)] = released
            sent[Key(c: c, part: .acquire, luns: n)] = acquired
        }
    }

    /// One counted round, keeper off (a keeper reads on its own session).
    private func count(_ c: Case, _ h: Hosts, _ disks: [String]) throws(LockError) {
        let n = disks.count
        _ = try h.sourceCount.call(sourceVM, disks: disks) { m throws(LockError) in try m.acquire() }
        _ = h.sourceCount.takeCommands()
        _ = h.destinationCount.takeCommands()
        var state: String?
        _ = try h.sourceCount.call(sourceVM, disks: disks) { m throws(LockError) in state = try m.release() }
        sent[Key(c: c, part: .release, luns: n)] = h.sourceCount.takeCommands()
        _ = try h.destinationCount.call(destinationVM, disks: disks) { m throws(LockError) in try m.acquire(state: state) }
        sent[Key(c: c, part: .acquire, luns: n)] = h.destinationCount.takeCommands()
        _ = try h.destinationCount.call(destinationVM, disks: disks) { m throws(LockError) in _ = try m.release() }
        _ = h.destinationCount.takeCommands()
    }
}
