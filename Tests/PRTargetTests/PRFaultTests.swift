import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// Faults under a real tgtd, through `lockmgr` processes: a session cut in
/// the middle of a two-LU acquire, tgtd killed and restarted. For each: a
/// clear error within the configured time, nothing half-acquired (PR IN on
/// the checker's own session), and the same acquire working once the fault
/// is gone. (The target that accepts connections and never answers is in
/// PRFailureTests.)
@Suite(.serialized) struct PRFaultTests {
    static let timeout = 2000

    /// B's path cuts the connection at B's first PR OUT, after A was
    /// reserved (see TwoPaths). Without `forwardTheCut` the
    /// REGISTER never reaches B; with it, B executes it and the answer is
    /// lost, so the plugin cannot know.
    @Test(arguments: [false, true])
    func aSessionCutInTheMiddleOfATwoLUAcquire(forwardTheCut: Bool) throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let paths = try TwoPaths(tgt); defer { paths.stop() }
        let (a, b, aDirect, bDirect, proxy) = (paths.a, paths.b, paths.aDirect, paths.bDirect, paths.faulty)
        proxy.cut(atPROut: 1, forward: forwardTheCut)
        let host = PRHost("cut", timeoutMilliseconds: Self.timeout)
        let check = Checker()

        let started = Date()
        let r = host.lockmgr("acquire", .one, disks: [a, b])
        let elapsed = Date().timeIntervalSince(started)
        print(
            "pr faults: session cut (command \(forwardTheCut ? "executed, answer lost" : "never sent")) → exit \(r.status) in \(Int(elapsed * 1000)) ms: \(r.stderr)"
        )
        #expect(proxy.isDown, "the cut did not happen: \(r)")
        #expect(r.status == 69, "\(r)")
        // The target closing with our REGISTER AND IGNORE's RESERVE unread
        // resets the connection (TCP sends RST): we see the reset or the
        // failed write instead of an orderly close.
        #expect(
            r.stderr.range(
                of: #"\#(b): command cancelled: connection (closed by the target|lost: (Connection reset by peer|Broken pipe))"#,
                options: .regularExpression) != nil,
            "the error names the cut LU and what happened: \(r.stderr)")
        #expect(elapsed < Double(Self.timeout) / 1000 + Sanitizer.slackSeconds, "took \(elapsed) s")
        #expect(host.commandsLogged().contains { $0.hasPrefix("\(a) PR OUT") }, "A was not acted on before the cut")
        // A was given back over its own healthy session.
        #expect(try check.reservation(aDirect) == nil)
        #expect(try check.keys(aDirect).isEmpty)
        // B: never reserved. An executed REGISTER whose answer was lost
        // stays registered (the path is down, nobody can undo it), and the
        // error says the LU's state is unknown.
        #expect(try check.reservation(bDirect) == nil)
        if forwardTheCut {
            #expect(try check.keys(bDirect) == [host.key(.one).rawValue])
            #expect(r.stderr.contains("giving back what was taken also failed"), "\(r.stderr)")
        } else {
            #expect(try check.keys(bDirect).isEmpty)
        }

        // The network is back: the same acquire works, and the release leaves nothing.
        proxy.heal()
        let again = host.lockmgr("acquire", .one, disks: [a, b])
        #expect(again.status == 0, "\(again)")
        // Only our key (on B also the orphan of the cut session, as tgt
        // keeps registrations of ended sessions; the release drops it).
        for lun in [aDirect, bDirect] {
            #expect(try check.reservation(lun)?.key == host.key(.one).rawValue)
            #expect(try Set(check.keys(lun)) == [host.key(.one).rawValue])
        }
        #expect(host.lockmgr("release", .one, disks: [a, b]).status == 0)
        for lun in [aDirect, bDirect] {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
    }

    /// The target stops answering in the middle of the same acquire (B's
    /// first PR OUT is swallowed; the connection and new ones stay open,
    /// unanswered). The command times out after timeout_ms; giving back
    /// tries B once more (a new login, which times out too), so the whole
    /// acquire takes about two timeouts: each wait is bounded by
    /// timeout_ms, the acquire by one per attempt to reach the hung LU.
    @Test func aTargetThatHangsInTheMiddleOfATwoLUAcquire() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let paths = try TwoPaths(tgt); defer { paths.stop() }
        let (a, b, proxy) = (paths.a, paths.b, paths.faulty)
        proxy.cut(atPROut: 1, stall: true)
        let timeout = 1000
        let host = PRHost("hang", timeoutMilliseconds: timeout)
        let check = Checker()

        let started = Date()
        let r = host.lockmgr("acquire", .one, disks: [a, b])
        let elapsed = Date().timeIntervalSince(started)
        print("pr faults: target hangs mid-acquire, timeout_ms \(timeout) → exit \(r.status) in \(Int(elapsed * 1000)) ms: \(r.stderr)")
        #expect(proxy.isDown, "the stall did not happen: \(r)")
        #expect(r.status == 69, "\(r)")
        #expect(
            r.stderr.contains("\(b): SCSI command timed out: no answer from the target within \(timeout) ms (timeout_ms)"),
            "\(r.stderr)")
        #expect(elapsed >= Double(timeout) / 1000, "gave up before the timeout: \(elapsed) s")
        #expect(elapsed < 2 * Double(timeout) / 1000 + Sanitizer.slackSeconds, "took \(elapsed) s")
        for lun in [paths.aDirect, paths.bDirect] {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }

        proxy.heal()
        let again = host.lockmgr("acquire", .one, disks: [a, b])
        #expect(again.status == 0, "\(again)")
        #expect(host.lockmgr("release", .one, disks: [a, b]).status == 0)
        for lun in [paths.aDirect, paths.bDirect] {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
    }

    /// tgtd crashes (SIGKILL) under a running VM and comes back. While it
    /// is down: acquires fail clearly within the timeout; the VM's keeper
    /// cannot read the LU, which proves nothing, so it only logs and keeps
    /// the VM running. tgt keeps PR state in memory only: the LU comes back
    /// with no reservation and no registration. The keeper then sees the
    /// reservation gone (anyone could take the LU now) and applies the
    /// VM's failure action (here pause: SIGSTOP); acquires work again.
    @Test func tgtdKilledAndRestarted() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let a = PRHost("a", timeoutMilliseconds: Self.timeout, keeperIntervalMilliseconds: 100)
        let b = PRHost("b", timeoutMilliseconds: Self.timeout)
        let vm = try RunningVM(a, .one, lun, action: "pause")
        defer { vm.kill(); stopKeeper(a) }
        #expect(try Checker().reservation(lun)?.key == a.key(.one).rawValue)

        tgt.crash()
        let started = Date()
        let refused = b.lockmgr("acquire", .two, disks: [lun])
        let elapsed = Date().timeIntervalSince(started)
        print("pr faults: acquire while tgtd is down → exit \(refused.status) in \(Int(elapsed * 1000)) ms: \(refused.stderr)")
        #expect(refused.status == 69, "\(refused)")
        #expect(
            refused.stderr.contains(lun) && refused.stderr.contains("login")
                && refused.stderr.contains("Connection refused"), "\(refused.stderr)")
        #expect(elapsed < Double(Self.timeout) / 1000 + Sanitizer.slackSeconds, "took \(elapsed) s")
        #expect(eventually { keeperLog(a).contains("cannot read \(lun) (will retry)") }, "\(keeperLog(a))")
        usleep(300_000)  // a few keeper rounds with the target down
        #expect(vm.isRunning && processState(vm.pid) != "T", "the keeper acted on an unreachable target")
        #expect(!keeperLog(a).contains("LOCK LOST"))

        try tgt.restart()
        let check = Checker()
        // Checked before the keeper could have acted? It never registers,
        // so either way: nothing on the LU.
        #expect(try check.keys(lun).isEmpty)
        #expect(eventually { keeperLog(a).contains("LOCK LOST") }, "\(keeperLog(a))")
        let log = keeperLog(a)
        #expect(log.contains("no reservation on the LU any more"), "\(log)")
        #expect(log.contains("failure action pause"), "\(log)")
        #expect(eventually { processState(vm.pid) == "T" }, "the VM was not paused")
        #expect(try check.reservation(lun) == nil)

        // Recovery: acquires work again.
        let acquired = b.lockmgr("acquire", .two, disks: [lun])
        #expect(acquired.status == 0, "\(acquired)")
        #expect(try check.reservation(lun)?.key == b.key(.two).rawValue)
        #expect(b.lockmgr("release", .two, disks: [lun]).status == 0)
        #expect(try check.keys(lun).isEmpty)
    }

    /// After the VM is gone its keeper must leave by itself; one that
    /// does not is a failure, and is killed.
    func stopKeeper(_ host: PRHost) {
        guard !eventually(timeout: 5, { keeper(host, .one) == nil }), let k = keeper(host, .one) else { return }
        Issue.record("the keeper of vm1 on host \(host.name) (pid \(k)) outlived its VM")
        kill(k, SIGKILL)
    }
}

/// LUs A and B on two targets of one tgtd, each reached through its own
/// FaultProxy (its own path). The plugin acts in name order, so `faulty`
/// (B's path) is the proxy whose URL sorts last: a fault there comes after
/// A was reserved. The checker reads both directly (`aDirect`, `bDirect`).
struct TwoPaths {
    let a: String, b: String, aDirect: String, bDirect: String
    let healthy: FaultProxy, faulty: FaultProxy

    init(_ tgt: TgtTarget) throws {
        let targets = try [tgt.addTarget(), tgt.addTarget()]
        let proxies = try [FaultProxy(upstreamPort: tgt.port), FaultProxy(upstreamPort: tgt.port)]
            .sorted { "\($0.port)" < "\($1.port)" }
        (healthy, faulty) = (proxies[0], proxies[1])
        (a, b) = (healthy.url(targets[0].iqn), faulty.url(targets[1].iqn))
        (aDirect, bDirect) = (targets[0].urls[0], targets[1].urls[0])
    }

    func stop() {
        healthy.stop()
        faulty.stop()
    }
}
