import Foundation
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// FAKE: a batch sender that runs each batch through FakePRDevice LUs one
/// command after the other and records what went out together, so the
/// phases of a multi-LU call can be checked; `beforeBatch` lets a test act
/// as another host between two phases. With `runsBackwards` it runs each
/// batch last command first, as a target may run SIMPLE tasks in flight
/// in any order.
final class RecordingBatchSender: SCSIBatchSender {
    var batches: [[String]] = []
    var beforeBatch: ((Int, [(transport: SCSITransport, command: SCSICommand)]) -> Void)?
    var runsBackwards = false

    func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
    {
        beforeBatch?(batches.count, batch)
        batches.append(batch.map { "\($0.transport.deviceDescription) \($0.command.name)" })
        let run = { (item: (transport: SCSITransport, command: SCSICommand)) in
            Result { () throws(LockError) in try item.transport.send(item.command, timeoutMilliseconds: timeoutMilliseconds) }
        }
        return runsBackwards ? batch.reversed().map(run).reversed() : batch.map(run)
    }

    /// The batches that carried a PR OUT, as (LU, command) lists.
    var prOutBatches: [[String]] { batches.filter { $0.contains { $0.contains("PR OUT") } } }
}

/// FAKE: one FakePRDevice LU seen from one nexus, its commands going out
/// through a shared RecordingBatchSender; its own READ FULL STATUS family.
final class BatchedFakeLU: SCSITransport {
    let lu: FakePRDevice
    let nexus: String
    let name: String
    let sender: RecordingBatchSender
    let family: String
    /// As an iSCSI session (true) or a multipath map through the kernel's PR ioctls (false).
    let answersForOneNexus: Bool
    /// As pr-sessiond's sessions, kept logged in between calls.
    let nexusOutlivesCall: Bool
    /// As a login of this call: new until its first command.
    let newNexus: Bool
    private var used = false

    init(
        _ lu: FakePRDevice, nexus: String, name: String, sender: RecordingBatchSender, family: String,
        answersForOneNexus: Bool = false, nexusOutlivesCall: Bool = false, newNexus: Bool = false
    ) {
        (self.lu, self.nexus, self.name, self.sender, self.family) = (lu, nexus, name, sender, family)
        self.answersForOneNexus = answersForOneNexus
        self.nexusOutlivesCall = nexusOutlivesCall
        self.newNexus = newNexus
    }

    var deviceDescription: String { name }
    var batchSender: SCSIBatchSender? { sender }
    var nexusIsNew: Bool { newNexus && !used }

    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        used = true
        switch command.direction {
        case .none: return lu.execute(cdb: command.cdb, from: nexus)
        case .fromDevice(let length): return lu.execute(cdb: command.cdb, allocationLength: length, from: nexus)
        case .toDevice(let data): return lu.execute(cdb: command.cdb, dataOut: data, from: nexus)
        }
    }
}

/// PRLocker's phases across LUs, on fake LUs (no target here: the real
/// batching over iSCSI is tested against tgtd in PRTargetTests).
@Suite struct PRLockerPhaseTests {
    let vm = UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-000000000001")!
    let otherVM = UUIDBytes("5a1e0c4e-2222-4a4a-8b8b-000000000002")!
    let names = (0..<8).map { "/dev/fake/lu\($0)" }

    struct Host {
        let locker: PRLocker
        let sender: RecordingBatchSender
        let key: PRKey
    }

    /// A host (`nexus`, `hostPart`) running `vm` over `lus`, one family
    /// per test (READ FULL STATUS support is remembered per family).
    func host(
        _ nexus: String, _ hostPart: UInt32, vm: UUIDBytes, lus: [FakePRDevice], family: String, answersForOneNexus: Bool = false,
        nexusOutlivesCall: Bool = false
    ) throws -> Host {
        let sender = RecordingBatchSender()
        var transports: [String: BatchedFakeLU] = [:]
        for (name, lu) in zip(names, lus) {
            transports[name] = BatchedFakeLU(
                lu, nexus: nexus, name: name, sender: sender, family: family, answersForOneNexus: answersForOneNexus,
                nexusOutlivesCall: nexusOutlivesCall)
        }
        let locker = try PRLocker(config: PRConfig(hostPart: hostPart), vm: vm) { r throws(LockError) in
            guard let t = transports[r.name] else { throw .invalid("no fake LU \(r.name)") }
            return t
        }
        return Host(locker: locker, sender: sender, key: .exclusive(vm: vm, host: hostPart))
    }

    /// The first `count` LUs, listed last name first (the locker sorts them).
    func resources(_ count: Int) throws -> [PRResource] { try names.prefix(count).reversed().map { try PRResource($0) } }
    /// The same in name order.
    func inOrder(_ count: Int) throws -> [PRResource] { try names.prefix(count).map { try PRResource($0) } }
    static func family(_ test: String) -> String { "\(test) \(UInt64.random(in: 0...UInt64.max))" }

    @Test func theFirstLUInNameOrderGoesAloneThenTheRestTogether() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("gate"))
        try a.locker.acquire(resources(8), state: nil)
        for lu in lus {
            #expect(lu.reservation?.holder == "host-a")
            #expect(lu.registeredKeys == [a.key.rawValue])
        }
        let outs = a.sender.prOutBatches
        // The gate (lu0) alone; then the seven others together. Each LU's
        // REGISTER AND IGNORE and RESERVE in one batch, in that order.
        let chain = ["PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT RESERVE"]
        #expect(outs.count == 2, "\(outs)")
        #expect(outs.first == chain.map { "\(names[0]) \($0)" }, "\(outs)")
        #expect(outs.last == names.dropFirst().flatMap { name in chain.map { "\(name) \($0)" } }, "\(outs)")
        // Every LU reports 29/00 to its first command: the reads took two rounds, not one per LU.
        let reads = a.sender.batches.prefix { !$0.contains { $0.contains("PR OUT") } }
        #expect(reads.count <= 3 && reads.first?.count ?? 0 >= 8, "\(Array(reads))")
    }

    /// A release reads the holder alone where it settles the question (we
    /// hold: our key is registered), and the keys too only on a LU we do not
    /// hold, where our key may still be registered without the reservation.
    @Test func aReleaseReadsTheKeysOnlyWhereTheHolderLeavesThemOpen() throws {
        let lus = names.prefix(2).map { _ in FakePRDevice() }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("release-reads"))
        try a.locker.acquire(inOrder(1), state: nil)
        // Registered on lu1 from this nexus, never reserved (as after a failed step).
        let lu1 = PRDevice(transport: DirectToFake(lus[1], "host-a"), timeoutMilliseconds: 10)
        #expect(try lu1.prOut(.registerAndIgnore, key: 0, serviceActionKey: a.key.rawValue))
        a.sender.batches = []

        let state = try a.locker.release(inOrder(2))
        #expect(state.entries.map(\.resource) == [names[0]], "only the held LU is in the state")
        let reads = a.sender.batches.prefix { !$0.contains { $0.contains("PR OUT") } }
        #expect(
            Array(reads) == [
                ["\(names[0]) PR IN READ RESERVATION", "\(names[1]) PR IN READ RESERVATION"],
                ["\(names[1]) PR IN READ RESERVATION", "\(names[1]) PR IN READ KEYS"],
            ], "\(a.sender.batches)")
        for lu in lus {
            #expect(lu.reservation == nil)
            #expect(lu.registeredKeys.isEmpty)
        }
    }

    /// After the unregister, READ KEYS proves the key gone where one GOOD
    /// may answer for several nexuses (a multipath map through the kernel's
    /// PR ioctls), and is not sent where the answer is one nexus's (an iSCSI
    /// session): there the GOOD PREEMPT and GOOD unregister prove it. Either
    /// way the key is gone from every nexus, the data path's included.
    @Test(arguments: [false, true]) func aReleaseProvesTheKeyGoneWithAReadOnlyWhereOneAnswerMayStandForMany(
        oneNexus: Bool
    ) throws {
        let lus = names.prefix(2).map { _ in FakePRDevice() }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("release-proof"), answersForOneNexus: oneNexus)
        try a.locker.acquire(inOrder(2), state: nil)
        for lu in lus {
            let dataPath = PRDevice(transport: DirectToFake(lu, "host-a-data"), timeoutMilliseconds: 10)
            #expect(try dataPath.prOut(.registerAndIgnore, key: 0, serviceActionKey: a.key.rawValue))
        }
        a.sender.batches = []

        let state = try a.locker.release(inOrder(2))
        #expect(state.entries.map(\.resource) == Array(names.prefix(2)))
        let last = a.sender.batches.last ?? []
        let proof = ["\(names[0]) PR IN READ KEYS", "\(names[1]) PR IN READ KEYS"]
        if oneNexus {
            #expect(!a.sender.batches.joined().contains { $0.hasSuffix("READ KEYS") }, "\(a.sender.batches)")
            #expect(last.allSatisfy { $0.hasSuffix("PR OUT REGISTER AND IGNORE EXISTING KEY") }, "\(a.sender.batches)")
        } else {
            #expect(last == proof, "\(a.sender.batches)")
        }
        for lu in lus {
            #expect(lu.reservation == nil)
            #expect(lu.registeredKeys.isEmpty, "the data path's registration went with the PREEMPT")
        }
    }

    @Test func aLUTakenByAnotherHostMidBatchGivesBackEverything() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("midbatch"))
        let intruder = PRKey.exclusive(vm: otherVM, host: 0xC)
        // After the gate, just before the PR OUTs of the other seven go
        // out, host-c reserves lu5 (after our read of it).
        a.sender.beforeBatch = { _, batch in
            guard batch.count == 14, batch.contains(where: { $0.command.name == "PR OUT RESERVE" }) else { return }
            let c = PRDevice(transport: DirectToFake(lus[5], "host-c"), timeoutMilliseconds: 10)
            _ = try? c.prOut(.registerAndIgnore, key: 0, serviceActionKey: intruder.rawValue)
            _ = try? c.prOut(.reserve, type: .writeExclusiveRegistrantsOnly, key: intruder.rawValue)
        }
        let error = #expect(throws: LockError.self) { try a.locker.acquire(resources(8), state: nil) }
        #expect(error?.kind == .conflict && error?.message.contains(names[5]) == true, "\(String(describing: error))")
        for (i, lu) in lus.enumerated() where i != 5 {
            #expect(lu.reservation == nil, "\(names[i]) still reserved")
            #expect(lu.registeredKeys.isEmpty, "\(names[i]) keeps \(lu.registeredKeys)")
        }
        #expect(lus[5].reservation?.holder == "host-c")
        #expect(lus[5].registeredKeys == [intruder.rawValue], "our registration stayed on the LU we lost")
    }

    @Test func aUnitAttentionInsideABatchIsRetriedAndTheLUReVerified() throws {
        let lus = names.map { _ in FakePRDevice() }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("ua"))
        // "Reservations preempted" for lu3 arrives instead of its REGISTER
        // AND IGNORE: its RESERVE, right behind in the same batch, runs
        // unregistered and meets a conflict.
        a.sender.beforeBatch = { _, batch in
            if batch.count == 14, batch.contains(where: { $0.command.name == "PR OUT RESERVE" }) {
                lus[3].raiseUnitAttention(for: "host-a", asc: 0x2A, ascq: 0x03)
            }
        }
        try a.locker.acquire(resources(8), state: nil)
        for lu in lus { #expect(lu.reservation?.holder == "host-a") }
        let lu3 = a.locker.commandsSent[names[3]] ?? []
        // The REGISTER again in a round of its own; the conflict not taken
        // for a refusal: lu3 read again and acquired on the next attempt,
        // one step per batch.
        let register = "PR OUT REGISTER AND IGNORE EXISTING KEY"
        #expect(
            Array(lu3.suffix(8)) == [
                register, "PR OUT RESERVE", register, "PR IN READ RESERVATION", "PR IN READ RESERVATION", "PR IN READ KEYS",
                register, "PR OUT RESERVE",
            ], "\(lu3)")
        #expect(a.sender.batches.contains { $0 == ["\(names[3]) \(register)"] }, "the retry went in a round of its own")
        #expect(a.sender.batches.last == ["\(names[3]) PR OUT RESERVE"], "the last attempt sent one step per batch")
    }

    @Test func aHandoverTakesEveryLUFromThePeerTogether() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let family = Self.family("handover")
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: family)
        let b = try host("host-b", 0xB, vm: vm, lus: lus, family: family)
        try a.locker.acquire(resources(8), state: nil)
        let state = try a.locker.inquire(resources(8))
        try b.locker.acquire(resources(8), state: state)
        for lu in lus {
            #expect(lu.reservation?.holder == "host-b")
            #expect(lu.registeredKeys == [b.key.rawValue])
        }
        // Takeovers need no gate: REGISTER AND IGNORE, PREEMPT and READ
        // RESERVATION of all eight in one batch, each LU's in that order;
        // the read proves the holding, nothing is read after.
        #expect(b.sender.prOutBatches.map(\.count) == [24], "\(b.sender.prOutBatches)")
        #expect(b.sender.batches.last?.count == 24, "\(b.sender.batches)")
        let sent = b.locker.commandsSent[names[0]] ?? []
        #expect(sent.suffix(3) == ["PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT PREEMPT", "PR IN READ RESERVATION"], "\(sent)")
        let released = try b.locker.release(resources(8))
        #expect(released.entries.count == 8)
        for lu in lus {
            #expect(lu.reservation == nil)
            #expect(lu.registeredKeys.isEmpty)
        }
    }

    /// A new login of the same host (tgt: a new I_T nexus) acquiring again:
    /// every RESERVE conflicts (the old nexus holds), and PREEMPT of our own
    /// key moves each reservation here in one more phase.
    @Test func aReclaimFromANewNexusMovesEveryReservationTogether() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let family = Self.family("reclaim")
        let old = try host("host-a", 0xA, vm: vm, lus: lus, family: family)
        try old.locker.acquire(resources(8), state: nil)
        let new = try host("host-a-again", 0xA, vm: vm, lus: lus, family: family)
        try new.locker.acquire(resources(8), state: nil)
        for lu in lus {
            #expect(lu.reservation?.holder == "host-a-again")
            #expect(lu.registeredKeys == [new.key.rawValue], "the old nexus's registration is an orphan to drop")
        }
        let last = new.sender.prOutBatches.suffix(2).map {
            $0.map { $0.replacingOccurrences(of: #"^\S+ "#, with: "", options: .regularExpression) }
        }
        #expect(
            last.map { Set($0) } == [["PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT RESERVE"], ["PR OUT PREEMPT"]],
            "\(last)")
        #expect(last.map(\.count) == [14, 7])
    }

    /// On a nexus kept between calls (pr-sessiond's), where the acquire's
    /// registration is still in place, a release sends each LU's PREEMPT
    /// of our key and the unregister in one batch, in that order.
    @Test func aReleaseOnAKeptNexusPreemptsAndUnregistersInOneBatch() throws {
        let lus = names.prefix(2).map { _ in FakePRDevice() }
        let a = try host(
            "host-a", 0xA, vm: vm, lus: lus, family: Self.family("kept-release"), answersForOneNexus: true, nexusOutlivesCall: true)
        try a.locker.acquire(inOrder(2), state: nil)
        a.sender.batches = []

        let state = try a.locker.release(inOrder(2))
        #expect(state.entries.map(\.resource) == Array(names.prefix(2)))
        let outs = names.prefix(2).flatMap { ["\($0) PR OUT PREEMPT", "\($0) PR OUT REGISTER AND IGNORE EXISTING KEY"] }
        #expect(a.sender.prOutBatches == [outs], "\(a.sender.batches)")
        for lu in lus {
            #expect(lu.reservation == nil)
            #expect(lu.registeredKeys.isEmpty)
        }
    }

    /// A target that runs the commands in flight in another order than
    /// sent (here each batch last command first, which SAM allows for
    /// SIMPLE tasks). A chain's RESERVE or PREEMPT then runs before its
    /// REGISTER and meets a conflict, its read runs before the PREEMPT,
    /// a release's unregister before its PREEMPT: every LU is read again
    /// and done one step per batch. Slower, and the same end: acquire,
    /// handover and release each leave every LU as they do in order.
    @Test func aTargetThatRunsABatchOutOfOrderOnlyCostsAnotherAttempt() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let family = Self.family("backwards")
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: family, answersForOneNexus: true, nexusOutlivesCall: true)
        let b = try host("host-b", 0xB, vm: vm, lus: lus, family: family, answersForOneNexus: true, nexusOutlivesCall: true)
        a.sender.runsBackwards = true
        b.sender.runsBackwards = true

        try a.locker.acquire(resources(8), state: nil)
        for (name, lu) in zip(names, lus) {
            #expect(lu.reservation?.holder == "host-a")
            #expect(lu.registeredKeys == [a.key.rawValue])
            let sent = a.locker.commandsSent[name] ?? []
            #expect(sent.filter { $0 == "PR OUT RESERVE" }.count == 2, "the first RESERVE ran unregistered: \(sent)")
        }

        let state = try a.locker.inquire(resources(8))
        try b.locker.acquire(resources(8), state: state)
        for (name, lu) in zip(names, lus) {
            #expect(lu.reservation?.holder == "host-b")
            #expect(lu.registeredKeys == [b.key.rawValue])
            let sent = b.locker.commandsSent[name] ?? []
            #expect(sent.filter { $0 == "PR OUT PREEMPT" }.count == 2, "the first PREEMPT ran unregistered: \(sent)")
        }

        b.sender.batches = []
        let released = try b.locker.release(resources(8))
        #expect(released.entries.count == 8)
        for lu in lus {
            #expect(lu.reservation == nil)
            #expect(lu.registeredKeys.isEmpty)
        }
        // The unregister ran first, the PREEMPT met a conflict: registered, preempted, unregistered again.
        #expect(b.sender.prOutBatches.count == 4, "\(b.sender.prOutBatches)")
    }

    @Test func readFullStatusWhereTheDeviceHasIt() throws {
        let lus = names.map { _ in FakePRDevice(readsFullStatus: true) }
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: Self.family("full"))
        try a.locker.acquire(inOrder(4), state: nil)
        let state = try a.locker.inquire(inOrder(4))
        #expect(state.entries.count == 4)
        // The family's first LU probed READ FULL STATUS; the others read the
        // older way in the same round, and every read after that is one command.
        #expect(a.locker.commandsSent[names[0]]?.first == "PR IN READ FULL STATUS")
        #expect(a.locker.commandsSent[names[1]]?.first == "PR IN READ RESERVATION")
        #expect(a.locker.commandsSent[names[1]]?.last == "PR IN READ FULL STATUS")
        // A second call: READ FULL STATUS everywhere, nothing else read.
        let b = try host("host-b", 0xB, vm: otherVM, lus: lus, family: a.locker.devices[names[0]]?.transport.family ?? "")
        let error = #expect(throws: LockError.self) { try b.locker.acquire(inOrder(4), state: nil) }
        #expect(error?.kind == .conflict && error?.message.contains("another VM") == true)
        for name in names.prefix(4) { #expect(b.locker.commandsSent[name] == ["PR IN READ FULL STATUS"]) }
    }

    @Test func readFullStatusFallsBackWhereTheDeviceLacksIt() throws {
        let lus = names.map { _ in FakePRDevice(reportsPowerOn: true) }
        let family = Self.family("fallback")
        let a = try host("host-a", 0xA, vm: vm, lus: lus, family: family)
        try a.locker.acquire(inOrder(3), state: nil)
        let probe = a.locker.commandsSent[names[0]] ?? []
        // 29/00 first, then ILLEGAL REQUEST (invalid field in CDB), then the two reads.
        #expect(
            probe.prefix(4) == ["PR IN READ FULL STATUS", "PR IN READ FULL STATUS", "PR IN READ RESERVATION", "PR IN READ KEYS"], "\(probe)"
        )
        for lu in lus.prefix(3) { #expect(lu.reservation?.holder == "host-a") }
        // Remembered for the family: the next call does not probe.
        let b = try host("host-b", 0xB, vm: vm, lus: lus, family: family)
        _ = try b.locker.inquire(inOrder(3))
        for name in names.prefix(3) {
            #expect(!(b.locker.commandsSent[name] ?? []).contains("PR IN READ FULL STATUS"))
        }
    }
}
