import Foundation
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// FAKE: a batch sender that runs each batch through FakePRDevice LUs one
/// command after the other and records what went out together, so the
/// phases of a multi-LU call can be checked; `beforeBatch` lets a test act
/// as another host between two phases.
final class RecordingBatchSender: SCSIBatchSender {
    var batches: [[String]] = []
    var beforeBatch: ((Int, [(transport: SCSITransport, command: SCSICommand)]) -> Void)?

    func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
    {
        beforeBatch?(batches.count, batch)
        batches.append(batch.map { "\($0.transport.deviceDescription) \($0.command.name)" })
        return batch.map { item in
            Result { () throws(LockError) in try item.transport.send(item.command, timeoutMilliseconds: timeoutMilliseconds) }
        }
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

    init(
        _ lu: FakePRDevice, nexus: String, name: String, sender: RecordingBatchSender, family: String,
        answersForOneNexus: Bool = false
    ) {
        (self.lu, self.nexus, self.name, self.sender, self.family) = (lu, nexus, name, sender, family)
        self.answersForOneNexus = answersForOneNexus
    }

    var deviceDescription: String { name }
    var batchSender: SCSIBatchSender? { sender }

    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
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
        _ nexus: String, _ hostPart: UInt32, vm: UUIDBytes, lus: [FakePRDevice], family: String, answersForOneNexus: Bool = false
    ) throws -> Host {
        let sender = RecordingBatchSender()
        var transports: [String: BatchedFakeLU] = [:]
        for (name, lu) in zip(names, lus) {
            transports[name] = BatchedFakeLU(
                lu, nexus: nexus, name: name, sender: sender, family: family, answersForOneNexus: answersForOneNexus)
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
        // The gate (lu0): REGISTER AND IGNORE, RESERVE, alone; then the seven others, each phase together.
        #expect(outs.count == 4, "\(outs)")
        #expect(outs.prefix(2).allSatisfy { $0.count == 1 && $0[0].hasPrefix(names[0]) }, "\(outs)")
        #expect(outs.dropFirst(2).allSatisfy { $0.count == 7 && !$0.contains { $0.hasPrefix(names[0]) } }, "\(outs)")
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
        // After the gate, just before the RESERVEs of the other seven go
        // out, host-c reserves lu5 (its REGISTER was already sent by us).
        a.sender.beforeBatch = { _, batch in
            guard batch.count == 7, batch.allSatisfy({ $0.command.name == "PR OUT RESERVE" }) else { return }
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
        // "Reservations preempted" for lu3 arrives instead of its RESERVE.
        a.sender.beforeBatch = { _, batch in
            if batch.count == 7, batch.allSatisfy({ $0.command.name == "PR OUT RESERVE" }) {
                lus[3].raiseUnitAttention(for: "host-a", asc: 0x2A, ascq: 0x03)
            }
        }
        try a.locker.acquire(resources(8), state: nil)
        for lu in lus { #expect(lu.reservation?.holder == "host-a") }
        let lu3 = a.locker.commandsSent[names[3]] ?? []
        // RESERVE again in the next round, then looked at (the view may have changed), not taken on trust.
        #expect(lu3.filter { $0 == "PR OUT RESERVE" }.count == 2, "\(lu3)")
        #expect(lu3.last == "PR IN READ RESERVATION", "\(lu3)")
        #expect(a.sender.batches.contains { $0 == ["\(names[3]) PR OUT RESERVE"] }, "the retry went in a round of its own")
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
        // Takeovers need no gate: REGISTER AND IGNORE, PREEMPT, READ RESERVATION, each for all eight at once.
        #expect(b.sender.prOutBatches.map(\.count) == [8, 8], "\(b.sender.prOutBatches)")
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
        let last = new.sender.prOutBatches.suffix(3).map {
            $0.map { $0.replacingOccurrences(of: #"^\S+ "#, with: "", options: .regularExpression) }
        }
        #expect(
            last.map { Set($0) } == [["PR OUT REGISTER AND IGNORE EXISTING KEY"], ["PR OUT RESERVE"], ["PR OUT PREEMPT"]],
            "\(last)")
        #expect(last.allSatisfy { $0.count == 7 })
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
