import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// Calls FakePRDevice directly, as one nexus: the model on its own, without a transport.
final class DirectToFake: SCSITransport, RawCDBSender {
    let device: FakePRDevice
    let nexus: String
    var deviceDescription: String { "fake LU via \(nexus)" }

    init(_ device: FakePRDevice, _ nexus: String) {
        self.device = device
        self.nexus = nexus
    }

    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        try send(cdb: command.cdb, direction: command.direction, timeoutMilliseconds: timeoutMilliseconds)
    }

    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        switch direction {
        case .none: return device.execute(cdb: cdb, from: nexus)
        case .fromDevice(let length): return device.execute(cdb: cdb, allocationLength: length, from: nexus)
        case .toDevice(let data): return device.execute(cdb: cdb, dataOut: data, from: nexus)
        }
    }
}

@Suite("FakePRDevice follows SPC-4")
struct FakePRDeviceTests {
    let device = FakePRDevice()
    var a: Initiator { Initiator(transport: DirectToFake(device, "host-a")) }
    var b: Initiator { Initiator(transport: DirectToFake(device, "host-b")) }
    var c: Initiator { Initiator(transport: DirectToFake(device, "host-c")) }

    @Test func registerNeedsKeyZeroFromAnUnregisteredNexus() throws {
        #expect(try a.prOut(.register, key: 0x99, serviceActionKey: 0xA).status == Status.reservationConflict)
        #expect(try a.keys().keys == [])
        #expect(try a.prOut(.register, key: 0, serviceActionKey: 0xA).status == Status.good)
        #expect(try a.keys().keys == [0xA])
        #expect(try a.keys().generation == 1)
    }

    @Test func reRegisteringNeedsTheCurrentKeyUnlessIgnoring() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        #expect(try a.prOut(.register, key: 0xB, serviceActionKey: 0xC).status == Status.reservationConflict)
        #expect(try a.prOut(.register, key: 0xA, serviceActionKey: 0xC).status == Status.good)
        #expect(try a.prOut(.registerAndIgnore, key: 0x1234, serviceActionKey: 0xD).status == Status.good)
        #expect(try a.keys().keys == [0xD])
        #expect(try a.keys().generation == 3)
    }

    @Test func generationCountsRegistrationsNotReservations() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        _ = try a.prOut(.release, key: 0xA, type: PRType.writeExclusive)
        #expect(try a.keys().generation == 1)
        _ = try a.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0xA)  // same key: still counted
        #expect(try a.keys().generation == 2)
    }

    @Test func reserveNeedsRegistrationAndTheRightKey() throws {
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive).status == Status.reservationConflict)
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        #expect(try a.prOut(.reserve, key: 0xB, type: PRType.writeExclusive).status == Status.reservationConflict)
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive).status == Status.good)
        let held = try #require(try a.reservation())
        #expect(held.key == 0xA && held.type == PRType.writeExclusive)
    }

    @Test func reserveConflictsUnlessSameHolderAndType() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly)
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.exclusiveAccess).status == Status.reservationConflict)
        #expect(try b.prOut(.reserve, key: 0xB, type: PRType.writeExclusiveRegistrantsOnly).status == Status.reservationConflict)
        #expect(try b.reservation()?.key == 0xA)
    }

    @Test func invalidTypeOrScopeIsIllegalRequest() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        let badType = try a.prOut(.reserve, key: 0xA, type: 2)
        #expect(badType.status == Status.checkCondition && senseTriple(badType) == [0x05, 0x24, 0x00])
        let badScope = try a.transport.send(
            cdb: PROut.reserve.cdb(type: 1, scope: 1),
            direction: .toDevice(parameters(key: 0xA)), timeoutMilliseconds: 100)
        #expect(senseTriple(badScope) == [0x05, 0x24, 0x00])
        #expect(try a.reservation() == nil)
    }

    @Test func releaseRules() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly)
        // A registered non-holder's RELEASE succeeds and changes nothing.
        #expect(try b.prOut(.release, key: 0xB, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try b.reservation()?.key == 0xA)
        // The holder with the wrong type: INVALID RELEASE OF PERSISTENT RESERVATION.
        let wrongType = try a.prOut(.release, key: 0xA, type: PRType.writeExclusive)
        #expect(senseTriple(wrongType) == [0x05, 0x26, 0x04])
        #expect(try a.prOut(.release, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try a.reservation() == nil)
        // Registrants-only release tells the other registrants: 2A/04, once.
        let attention = try b.prIn(.readKeys)
        #expect(attention.status == Status.checkCondition && senseTriple(attention) == [0x06, 0x2A, 0x04])
        #expect(try b.prIn(.readKeys).status == Status.good)
        #expect(try a.prIn(.readKeys).status == Status.good)
    }

    @Test func preemptOfTheHolderMovesTheReservation() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        let before = try b.keys().generation
        #expect(try b.prOut(.preempt, key: 0xB, serviceActionKey: 0xA, type: PRType.exclusiveAccess).status == Status.good)
        let held = try #require(try b.reservation())
        #expect(held.key == 0xB && held.type == PRType.exclusiveAccess)
        #expect(try b.keys().keys == [0xB])
        #expect(try b.keys().generation == before + 1)
        // The preempted nexus hears about it once, then is an outsider.
        #expect(senseTriple(try a.prIn(.readKeys)) == [0x06, 0x2A, 0x05])
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive).status == Status.reservationConflict)
        #expect(try a.prOut(.register, key: 0, serviceActionKey: 0xA).status == Status.good)
    }

    @Test func preemptOfANonHolderOnlyRemovesItsRegistrations() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try c.prOut(.register, key: 0, serviceActionKey: 0xB)  // two nexuses, one key
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly)
        #expect(try a.prOut(.preempt, key: 0xA, serviceActionKey: 0xB, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try a.keys().keys == [0xA])
        #expect(try a.reservation()?.key == 0xA)
        #expect(senseTriple(try b.prIn(.readKeys)) == [0x06, 0x2A, 0x05])
        #expect(senseTriple(try c.prIn(.readKeys)) == [0x06, 0x2A, 0x05])
    }

    @Test func preemptOfAnUnknownKeyConflictsAndOfKeyZeroIsIllegal() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        #expect(try a.prOut(.preempt, key: 0xA, serviceActionKey: 0x77, type: PRType.writeExclusive).status == Status.reservationConflict)
        #expect(senseTriple(try a.prOut(.preempt, key: 0xA, serviceActionKey: 0, type: PRType.writeExclusive)) == [0x05, 0x26, 0x00])
        #expect(try b.prOut(.preempt, key: 0xB, serviceActionKey: 0xA, type: PRType.writeExclusive).status == Status.reservationConflict)
    }

    @Test func allRegistrantsReservationsHaveKeyZeroAndPreemptZeroTakesOver() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveAllRegistrants)
        let shared = try #require(try b.reservation())
        #expect(shared.key == 0 && shared.type == PRType.writeExclusiveAllRegistrants)
        // Every registrant holds it: b re-reserving the same type is fine.
        #expect(try b.prOut(.reserve, key: 0xB, type: PRType.writeExclusiveAllRegistrants).status == Status.good)
        #expect(try b.prOut(.preempt, key: 0xB, serviceActionKey: 0, type: PRType.writeExclusive).status == Status.good)
        let taken = try #require(try b.reservation())
        #expect(taken.key == 0xB && taken.type == PRType.writeExclusive)
        #expect(try b.keys().keys == [0xB])
    }

    @Test func holderUnregisteringReleasesTheReservation() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.exclusiveAccessRegistrantsOnly)
        #expect(try a.prOut(.register, key: 0xA, serviceActionKey: 0).status == Status.good)
        #expect(senseTriple(try b.prIn(.readReservation)) == [0x06, 0x2A, 0x04])
        #expect(try b.reservation() == nil)
        #expect(try b.keys().keys == [0xB])
    }

    @Test func registerAndIgnoreByTheHolderChangesTheHolderKey() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        _ = try a.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0xAA)
        #expect(try a.reservation()?.key == 0xAA)
    }

    @Test func clearRemovesEverythingAndTellsTheOthers() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        #expect(try c.prOut(.clear, key: 0xC).status == Status.reservationConflict)
        #expect(try b.prOut(.clear, key: 0xB).status == Status.good)
        #expect(senseTriple(try a.prIn(.readKeys)) == [0x06, 0x2A, 0x03])
        #expect(try a.keys().keys == [])
        #expect(try a.reservation() == nil)
        #expect(try b.keys().generation == 3)
    }

    @Test func readKeysIsTruncatedToTheAllocationLength() throws {
        for (nexus, key) in [("h1", UInt64(1)), ("h2", 2), ("h3", 3)] {
            _ = try Initiator(transport: DirectToFake(device, nexus)).prOut(.register, key: 0, serviceActionKey: key)
        }
        let data = try a.prIn(.readKeys, allocationLength: 20).data
        #expect(data.count == 20)
        #expect(readBE32(data, at: 4) == 24)  // the full list length, not what fitted
        #expect(readBE64(data, at: 8) == 1)
    }

    @Test func reportCapabilitiesAdvertisesWhatTheFakeDoes() throws {
        let data = try a.prIn(.reportCapabilities, allocationLength: 8).data
        #expect(data == [0x00, 0x08, 0x01, 0x80, 0xEA, 0x01, 0x00, 0x00])
        #expect(senseTriple(try a.prIn(.readFullStatus)) == [0x05, 0x24, 0x00])
    }

    @Test func unsupportedFlagsAndLengthsAreRefused() throws {
        let specIPT = try a.prOut(.register, key: 0, serviceActionKey: 0xA, flags: 0x08)
        #expect(senseTriple(specIPT) == [0x05, 0x26, 0x00])
        let shortList = try a.transport.send(
            cdb: PROut.register.cdb(listLength: 16),
            direction: .toDevice(Array(parameters(key: 0, serviceActionKey: 0xA).prefix(16))),
            timeoutMilliseconds: 100)
        #expect(senseTriple(shortList) == [0x05, 0x1A, 0x00])
        #expect(senseTriple(try a.prOut(.registerAndMove, key: 0)) == [0x05, 0x24, 0x00])
        #expect(try a.keys().keys == [])
    }

    @Test func aUnitAttentionIsReportedInsteadOfExecutingTheCommand() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        device.raiseUnitAttention(for: "host-a", asc: 0x29, ascq: 0x07)
        let blocked = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        #expect(senseTriple(blocked) == [0x06, 0x29, 0x07])
        #expect(device.reservation == nil)
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive).status == Status.good)
    }

    @Test func powerLossKeepsStateOnlyWithAPTPL() throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        device.powerCycle()
        #expect(senseTriple(try a.prIn(.readKeys)) == [0x06, 0x29, 0x00])
        #expect(try a.keys().keys == [])
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA, flags: 0x01)
        _ = try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        #expect(try a.prIn(.reportCapabilities, allocationLength: 8).data[3] == 0x81)
        device.powerCycle()
        #expect(senseTriple(try b.prIn(.readKeys)) == [0x06, 0x29, 0x00])
        #expect(try b.keys().keys == [0xA])
        #expect(try b.reservation()?.key == 0xA)
    }

    /// READ(10)/WRITE(10) under each type, from the holder, a registered
    /// non-holder and an unregistered nexus (SPC-4 table 5.x).
    @Test(arguments: [
        // type, registrant read/write, outsider read/write
        (PRType.writeExclusive, true, false, true, false),
        (PRType.exclusiveAccess, false, false, false, false),
        (PRType.writeExclusiveRegistrantsOnly, true, true, true, false),
        (PRType.exclusiveAccessRegistrantsOnly, true, true, false, false),
        (PRType.writeExclusiveAllRegistrants, true, true, true, false),
        (PRType.exclusiveAccessAllRegistrants, true, true, false, false),
    ])
    func accessRules(type: UInt8, registrantRead: Bool, registrantWrite: Bool, outsiderRead: Bool, outsiderWrite: Bool) throws {
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0xA)
        _ = try b.prOut(.register, key: 0, serviceActionKey: 0xB)
        _ = try a.prOut(.reserve, key: 0xA, type: type)
        func allowed(_ nexus: String, write: Bool) -> Bool {
            let cdb: [UInt8] = [write ? 0x2A : 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]
            return device.execute(
                cdb: cdb, dataOut: write ? [UInt8](repeating: 0, count: 512) : [],
                allocationLength: write ? 0 : 512, from: nexus
            ).status == Status.good
        }
        #expect(allowed("host-a", write: false) && allowed("host-a", write: true))
        #expect(allowed("host-b", write: false) == registrantRead)
        #expect(allowed("host-b", write: true) == registrantWrite)
        #expect(allowed("host-c", write: false) == outsiderRead)
        #expect(allowed("host-c", write: true) == outsiderWrite)
        #expect(device.execute(cdb: [0, 0, 0, 0, 0, 0], from: "host-c").status == Status.good)  // TEST UNIT READY
    }
}
