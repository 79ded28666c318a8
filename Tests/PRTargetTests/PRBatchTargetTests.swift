import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// Many LUs in one call against a real tgtd: the commands of all LUs go
/// out together on one session per target (libiscsi command queueing).
/// Every LU is checked by PR IN on the checker's own session, and a batch
/// that cannot complete in time fails clearly and leaves nothing taken.
@Suite(.serialized) struct PRBatchTargetTests {
    let check = Checker()

    func locker(_ host: PRHost, _ vm: VM) throws -> (PRLocker, TransportFactory) {
        let conf = try PRConfig.load(path: host.configFile)
        let factory = TransportFactory(config: conf)
        let locker = try PRLocker(config: conf, vm: vm.uuid) { r throws(LockError) in try factory.transport(for: r) }
        return (locker, factory)
    }

    @Test func acquireHandoverAndReleaseOfSeventyLUNsOnOneSessionEach() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let luns = try tgt.addTarget(luns: 70).urls
        let resources = try luns.map { try PRResource($0) }
        let a = PRHost("batch-a"), b = PRHost("batch-b")

        let (la, fa) = try locker(a, .one)
        defer { fa.closeAll() }
        try la.acquire(resources, state: nil)
        #expect(fa.iscsiPool?.logins == 1, "one session for the target")
        #expect((fa.iscsiPool?.largestBatch ?? 0) >= 69, "the LUs' commands did not go out together")
        for lun in luns {
            #expect(try check.reservation(lun) == .init(key: a.key(.one).rawValue, type: .writeExclusiveRegistrantsOnly), "\(lun)")
            #expect(try Set(check.keys(lun)) == [a.key(.one).rawValue], "\(lun)")
            // Each LU's REGISTER AND IGNORE and RESERVE went in one batch,
            // and tgt ran them in the order sent: one RESERVE, no second attempt.
            let sent = la.commandsSent[lun] ?? []
            #expect(sent.filter { $0.hasPrefix("PR OUT") } == ["PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT RESERVE"], "\(sent)")
        }
        let state = try la.inquire(resources)
        #expect(state.entries.count == luns.count)

        // B takes every LU over with A's state while A holds (migrate-pr order).
        let (lb, fb) = try locker(b, .one)
        defer { fb.closeAll() }
        try lb.acquire(resources, state: state)
        #expect(fb.iscsiPool?.logins == 1)
        for lun in luns {
            #expect(try check.reservation(lun)?.key == b.key(.one).rawValue, "\(lun)")
            #expect(try check.keys(lun) == [b.key(.one).rawValue], "\(lun): A's registrations must be gone")
            // REGISTER AND IGNORE, PREEMPT, READ RESERVATION after the reads,
            // in one batch that tgt ran in order: nothing more, no second attempt.
            let sent = lb.commandsSent[lun] ?? []
            #expect(sent.suffix(3) == ["PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT PREEMPT", "PR IN READ RESERVATION"], "\(sent)")
            #expect(sent.filter { $0.hasPrefix("PR OUT") }.count == 2, "\(sent)")
        }

        let released = try lb.release(resources)
        #expect(released.entries.count == luns.count)
        for lun in luns {
            #expect(try check.reservation(lun) == nil, "\(lun)")
            #expect(try check.keys(lun).isEmpty, "\(lun)")
        }
    }

    /// tgt answers the first command on every LU of every new session with
    /// a unit attention (29/00). The first login-per-call operation learns
    /// it, and from then on each call's first batch carries a TEST UNIT
    /// READY ahead of each LU's read: the attention goes to it, and the
    /// read is not sent again (one round trip less per call).
    @Test func aLoginPerCallSendsNoReadTwiceOnceTgtsAttentionIsKnown() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let luns = try tgt.addTarget(luns: 4).urls
        let resources = try luns.map { try PRResource($0) }
        let a = PRHost("nexus-a")

        // Nothing is known of a target before its first attention: the
        // probe below is only sent because this call met one.
        let (first, f1) = try locker(a, .one)
        try first.acquire(resources, state: nil)
        f1.closeAll()

        let (second, f2) = try locker(a, .one)
        defer { f2.closeAll() }
        _ = try second.release(resources)
        for lun in luns {
            #expect(
                second.commandsSent[lun] == [
                    "TEST UNIT READY", "PR IN READ RESERVATION", "PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT PREEMPT",
                    "PR OUT REGISTER AND IGNORE EXISTING KEY",
                ], "\(lun)")
            #expect(try check.reservation(lun) == nil, "\(lun)")
            #expect(try check.keys(lun).isEmpty, "\(lun)")
        }
    }

    /// Target A (one LU, first in name order: acquired first, alone) and
    /// target B (64 LUs) behind a path that stops answering at B's first
    /// PR OUT: the batch of B's 64 REGISTERs never completes. The call
    /// fails after timeout_ms naming the timeout, gives A back, and tries
    /// B once more (one login for all 64, which times out too), so it takes
    /// about two timeouts, not one per LU; nothing stays reserved or
    /// registered.
    @Test func aBatchThatDoesNotCompleteInTimeFailsClearlyAndTakesNothing() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let ta = try tgt.addTarget(), tb = try tgt.addTarget(luns: 64)
        let proxies = try [FaultProxy(upstreamPort: tgt.port), FaultProxy(upstreamPort: tgt.port)]
            .sorted { "\($0.port)" < "\($1.port)" }
        let (healthy, faulty) = (proxies[0], proxies[1])
        defer { proxies.forEach { $0.stop() } }
        let a = healthy.url(ta.iqn)
        let bs = (1...64).map { "iscsi://127.0.0.1:\(faulty.port)/\(tb.iqn)/\($0)" }
        faulty.cut(atPROut: 1, stall: true)
        let timeout = 1000
        let host = PRHost("deadline", timeoutMilliseconds: timeout)
        let (locker, factory) = try locker(host, .one)
        defer { factory.closeAll() }

        let started = Date()
        let error = #expect(throws: LockError.self) { try locker.acquire(try ([a] + bs).map { try PRResource($0) }, state: nil) }
        let elapsed = Date().timeIntervalSince(started)
        print("pr batch: 64-LU batch stalled, timeout_ms \(timeout) → \(Int(elapsed * 1000)) ms: \(String(describing: error))")
        #expect(faulty.isDown, "the stall did not happen")
        #expect(error?.kind == .backend)
        #expect(
            error?.message.contains("SCSI command timed out: no answer from the target within \(timeout) ms (timeout_ms)") == true,
            "\(String(describing: error))")
        #expect(bs.contains { error?.message.hasPrefix($0) == true }, "the error names a LU of the stalled batch")
        #expect((locker.commandsSent[a] ?? []).contains("PR OUT RESERVE"), "A was not acquired before the stall")
        #expect(elapsed >= Double(timeout) / 1000, "gave up before the timeout: \(elapsed) s")
        #expect(elapsed < 2 * Double(timeout) / 1000 + Sanitizer.slackSeconds, "took \(elapsed) s")
        for lun in ta.urls + tb.urls {
            #expect(try check.reservation(lun) == nil, "\(lun)")
            #expect(try check.keys(lun).isEmpty, "\(lun)")
        }
    }
}
