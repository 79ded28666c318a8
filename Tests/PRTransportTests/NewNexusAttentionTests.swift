import LockDriver
import PRProtocol
import PRTestSupport
import Testing

/// A LU's first command on a new nexus meets the unit attention a target
/// reports there (29/00: tgt, on every LU of every login). Once a family is
/// known to do so, a TEST UNIT READY goes ahead in the same batch and takes
/// it, so nothing is sent twice. FAKE LUs (FakePRDevice reporting power-on
/// to each nexus's first command, as tgt does to each login; a new nexus
/// name per call, as a login per call is), batches through
/// RecordingBatchSender.
@Suite struct NewNexusAttentionTests {
    let vm = UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-000000000001")!
    let name = "/dev/fake/lu0"

    typealias Call = (locker: PRLocker, sender: RecordingBatchSender)

    /// One plugin call's locker: a new nexus `nexus` to `lu`.
    func call(_ lu: FakePRDevice, nexus: String, family: String, backwards: Bool = false) throws -> Call {
        let sender = RecordingBatchSender()
        sender.runsBackwards = backwards
        let t = BatchedFakeLU(lu, nexus: nexus, name: name, sender: sender, family: family, answersForOneNexus: true, newNexus: true)
        let locker = try PRLocker(config: PRConfig(hostPart: 7), vm: vm) { _ throws(LockError) in t }
        return (locker, sender)
    }

    var resources: [PRResource] { get throws { [try PRResource(name)] } }

    @Test func onceLearnedTheAttentionIsTakenByATestUnitReadyInTheFirstBatch() throws {
        let lu = FakePRDevice(reportsPowerOn: true)
        let family = PRLockerPhaseTests.family("new-nexus")

        // Nothing known of the family yet: the first command meets 29/00 and goes again.
        let first = try call(lu, nexus: "login-1", family: family)
        try first.locker.acquire(resources, state: nil)
        let firstSent = first.locker.commandsSent[name] ?? []
        #expect(!firstSent.contains("TEST UNIT READY"), "\(firstSent)")
        #expect(firstSent.count >= 2 && firstSent[0] == firstSent[1], "the first command was not sent again: \(firstSent)")
        #expect(lu.reservation != nil)

        // Learned: the next login's first batch carries a TEST UNIT READY ahead of the read.
        let second = try call(lu, nexus: "login-2", family: family)
        _ = try second.locker.release(resources)
        let sent = second.locker.commandsSent[name] ?? []
        #expect(Array(sent.prefix(2)) == ["TEST UNIT READY", "PR IN READ RESERVATION"], "\(sent)")
        #expect(sent.filter { $0 == "PR IN READ RESERVATION" }.count == 1, "the read went twice: \(sent)")
        #expect(second.sender.batches.first?.count == 2, "\(second.sender.batches)")
        #expect(lu.reservation == nil && lu.registeredKeys.isEmpty, "the release must still have happened")
    }

    @Test func aTargetThatRunsTheProbeLastCostsTheRetryAndNothingElse() throws {
        let lu = FakePRDevice(reportsPowerOn: true)
        let family = PRLockerPhaseTests.family("new-nexus-backwards")
        let taken = try call(lu, nexus: "login-1", family: family)
        try taken.locker.acquire(resources, state: nil)

        // Last command first: a read meets the attention before the TEST UNIT READY runs, and goes again alone.
        let backwards = try call(lu, nexus: "login-2", family: family, backwards: true)
        let state = try backwards.locker.inquire(resources)
        let batches = backwards.sender.batches.map { $0.map { $0.replacingOccurrences(of: "\(name) ", with: "") } }
        #expect(batches.count == 2 && batches[0].first == "TEST UNIT READY", "\(batches)")
        #expect(batches.count == 2 && batches[1].count == 1 && batches[0].dropFirst().contains(batches[1][0]), "\(batches)")
        #expect(state.entries.count == 1, "the LU is still ours: \(state)")

        // It still counted as the family reporting one: the next call probes again.
        let next = try call(lu, nexus: "login-3", family: family)
        _ = try next.locker.release(resources)
        #expect(next.locker.commandsSent[name]?.first == "TEST UNIT READY")
        #expect(lu.reservation == nil && lu.registeredKeys.isEmpty)
    }

    @Test func aFamilyThatStopsReportingItIsNoLongerProbed() throws {
        let family = PRLockerPhaseTests.family("new-nexus-quiet")
        let teach = try call(FakePRDevice(reportsPowerOn: true), nexus: "login-1", family: family)
        _ = try teach.locker.inquire(resources)

        // Same family, no attention: the probe is answered GOOD, and the next call sends none.
        let quiet = FakePRDevice(reportsPowerOn: false)
        let probed = try call(quiet, nexus: "login-2", family: family)
        try probed.locker.acquire(resources, state: nil)
        #expect(probed.locker.commandsSent[name]?.first == "TEST UNIT READY")
        let next = try call(quiet, nexus: "login-3", family: family)
        _ = try next.locker.release(resources)
        let sent = next.locker.commandsSent[name] ?? []
        #expect(!sent.contains("TEST UNIT READY"), "\(sent)")
        #expect(quiet.reservation == nil && quiet.registeredKeys.isEmpty)
    }

    @Test func aNexusThatIsNotNewIsNeverProbed() throws {
        let lu = FakePRDevice(reportsPowerOn: true)
        let family = PRLockerPhaseTests.family("new-nexus-kept")
        let teach = try call(lu, nexus: "login-1", family: family)
        _ = try teach.locker.inquire(resources)

        let sender = RecordingBatchSender()
        let kept = BatchedFakeLU(lu, nexus: "kept", name: name, sender: sender, family: family, answersForOneNexus: true)
        let locker = try PRLocker(config: PRConfig(hostPart: 7), vm: vm) { _ throws(LockError) in kept }
        _ = try locker.inquire(resources)
        #expect(!(locker.commandsSent[name] ?? []).contains("TEST UNIT READY"), "\(locker.commandsSent)")
    }
}
