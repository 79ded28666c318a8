import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// PRProtocol's algorithm (PRLocker) driven in-process against tgtd, with a transport
/// decorator that injects faults a real target produces rarely: a command
/// lost mid-acquire, a unit attention before a PREEMPT, a dropped session.
@Suite struct PRAlgorithmTargetTests {
    let check = Checker()

    func locker(_ host: PRHost, _ vm: VM, faults: FaultPlan? = nil) throws -> (PRLocker, TransportFactory) {
        let conf = try PRConfig.load(path: "\(host.configDir)/qemu-pr.conf")
        let factory = TransportFactory(config: conf)
        let locker = try PRLocker(config: conf, vm: vm.uuid) { name throws(LockError) in
            let real = try factory.transport(for: name)
            guard let faults else { return real }
            return FaultyTransport(real, plan: faults)
        }
        return (locker, factory)
    }

    @Test func aFailureWhileActingGivesBackWhatWasTaken() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget(luns: 3)
        let a = PRHost("a")
        // The RESERVE on the third LUN is lost on the wire.
        let plan = FaultPlan(resource: t.urls[2], prOutNumber: 2, fault: .transportError)
        let (locker, factory) = try locker(a, .one, faults: plan)
        defer { factory.closeAll() }
        let error = #expect(throws: LockError.self) { try locker.acquire(t.urls.map { try PRResource($0) }, state: nil) }
        #expect(error?.kind == .backend && error?.message.contains("injected") == true, "\(String(describing: error))")
        for lun in t.urls {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
    }

    @Test func aUnitAttentionBeforeThePreemptIsRetriedAndReVerified() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let a = PRHost("a"), b = PRHost("b")
        let acquired = a.lockmgr("acquire", .one, disks: [lun])
        try #require(acquired.status == 0, "\(acquired)")
        let stateA = acquired.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // "Reservations preempted" arrives instead of B's PREEMPT (not executed, as SAM says).
        let plan = FaultPlan(resource: lun, prOutNumber: 2, fault: .unitAttention(asc: 0x2A, ascq: 0x03))
        let (locker, factory) = try locker(b, .one, faults: plan)
        defer { factory.closeAll() }
        try locker.acquire([PRResource(lun)], state: try PRState(decoding: stateA))
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        let sent = locker.commandsSent[lun] ?? []
        // The PREEMPT was sent again after the attention, then the device re-read.
        #expect(sent.filter { $0 == "PR OUT PREEMPT" }.count == 2, "\(sent)")
        #expect(sent.last == "PR IN READ RESERVATION", "\(sent)")
        #expect(plan.injected == 1)
    }

    /// A destination whose takeover fails part-way must not leave the LUs
    /// it already took over unreserved: the source may still be running,
    /// and its keeper would take an unreserved LU for a lost lock. What was
    /// taken over stays with the destination's key (the source takes it
    /// back with its own state); the LU whose PREEMPT failed stays the source's.
    @Test func aFailedTakeoverKeepsWhatItTookOverForTheSourceToTakeBack() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget(luns: 2)
        let a = PRHost("a"), b = PRHost("b")
        let acquired = a.lockmgr("acquire", .one, disks: t.urls)
        try #require(acquired.status == 0, "\(acquired)")
        let stateA = try PRState(decoding: acquired.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        // B's PREEMPT of the second LUN is lost on the wire.
        let plan = FaultPlan(resource: t.urls[1], prOutNumber: 2, fault: .transportError)
        let (locker, factory) = try locker(b, .one, faults: plan)
        defer { factory.closeAll() }
        let error = #expect(throws: LockError.self) { try locker.acquire(t.urls.map { try PRResource($0) }, state: stateA) }
        #expect(error?.message.contains("kept with this host's key") == true, "\(String(describing: error))")
        #expect(try check.reservation(t.urls[0])?.key == b.key(.one).rawValue, "taken over and kept, not left unreserved")
        #expect(try check.reservation(t.urls[1])?.key == a.key(.one).rawValue, "the failed one is still the source's")
        // The source rolls back with its own state and holds both again.
        let rollback = a.lockmgr("acquire", .one, disks: t.urls, state: stateA.encoded)
        #expect(rollback.status == 0, "\(rollback)")
        for lun in t.urls { #expect(try check.reservation(lun)?.key == a.key(.one).rawValue) }
    }

    @Test func aLostSessionIsReEstablishedWithTheSameKey() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget()
        let lun = t.urls[0]
        let a = PRHost("a")
        let (first, f1) = try locker(a, .one)
        try first.acquire([PRResource(lun)], state: nil)
        // Acquiring again on the same nexus (what a persistent SG_IO nexus
        // sees): RESERVE confirms we hold it, no PREEMPT, which would drop
        // the registrations of the host's other paths.
        let path = try DataPath(a, lun, key: a.key(.one))
        try first.acquire([PRResource(lun)], state: nil)
        #expect(first.commandsSent[lun]?.contains("PR OUT PREEMPT") == false, "\(first.commandsSent)")
        #expect(try path.write() == .good(data: []))
        // The plugin's session goes away (network failure): on tgt its
        // registration stays behind as an orphan of a dead nexus.
        let sessions = try tgt.sessions(tid: t.tid)
        #expect(sessions.count == 2)  // the plugin's and the data path's
        for sid in sessions { try tgt.dropSession(tid: t.tid, sid: sid) }
        f1.closeAll()
        // A later acquire of the same VM on the same host (libvirt resuming
        // after a daemon restart) re-registers and PREEMPTs its own key.
        let (second, f2) = try locker(a, .one)
        defer { f2.closeAll() }
        try second.acquire([PRResource(lun)], state: nil)
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(try check.keys(lun) == [a.key(.one).rawValue], "orphans of our key are gone")
        #expect(second.commandsSent[lun]?.contains("PR OUT PREEMPT") == true)
        #expect(try DataPath(a, lun, key: a.key(.one)).write() == .good(data: []))
    }
}

extension PRAlgorithmTargetTests {
    @Test func aSessionDroppedUnderneathIsAnErrorThenANewLogin() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget()
        let lun = t.urls[0]
        let a = PRHost("a")
        let (locker, factory) = try locker(a, .one)
        defer { factory.closeAll() }
        try locker.acquire([PRResource(lun)], state: nil)
        for sid in try tgt.sessions(tid: t.tid) { try tgt.dropSession(tid: t.tid, sid: sid) }
        let e = #expect(throws: LockError.self) { try locker.inquire([PRResource(lun)]) }
        #expect(e?.kind == .backend && e?.message.contains(lun) == true, "\(String(describing: e))")
        // The broken session was discarded: the next call logs in again.
        let state = try locker.inquire([PRResource(lun)])
        #expect(state.entries == [.init(resource: lun, key: a.key(.one), type: .writeExclusiveRegistrantsOnly)])
        #expect(factory.iscsiPool?.logins == 2)
    }
}

/// Which command to spoil, and how.
final class FaultPlan: @unchecked Sendable {
    enum Fault { case transportError, unitAttention(asc: UInt8, ascq: UInt8) }
    let resource: String
    let prOutNumber: Int
    let fault: Fault
    var prOutsSeen = 0
    var injected = 0

    init(resource: String, prOutNumber: Int, fault: Fault) {
        self.resource = resource
        self.prOutNumber = prOutNumber
        self.fault = fault
    }
}

/// A transport decorator (a named test fake) in front of the real iSCSI
/// transport: the spoiled command never reaches the target.
final class FaultyTransport: SCSITransport {
    let real: SCSITransport
    let plan: FaultPlan

    init(_ real: SCSITransport, plan: FaultPlan) {
        self.real = real
        self.plan = plan
    }

    var deviceDescription: String { real.deviceDescription }

    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        if case .prOut = command, real.deviceDescription == plan.resource {
            plan.prOutsSeen += 1
            if plan.prOutsSeen == plan.prOutNumber {
                plan.injected += 1
                switch plan.fault {
                case .transportError:
                    throw .backend("\(deviceDescription): injected transport failure")
                case .unitAttention(let asc, let ascq):
                    return SCSIResponse(status: 2, sense: SenseData(key: 6, asc: asc, ascq: ascq))
                }
            }
        }
        return try real.send(command, timeoutMilliseconds: timeoutMilliseconds)
    }
}
