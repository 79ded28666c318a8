import LockDriver
import PRProtocol
import PRTransport
import Testing

/// The one CDB encoder and the one status/sense decoder, byte for byte
/// against SPC-4's layouts.
@Suite struct SCSICodecTests {
    @Test func prInCDBs() {
        #expect(SCSICommand.prIn(.readKeys, allocationLength: 0x1234).cdb == [0x5E, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0])
        #expect(SCSICommand.prIn(.readReservation, allocationLength: 24).cdb == [0x5E, 1, 0, 0, 0, 0, 0, 0, 24, 0])
        #expect(SCSICommand.prIn(.reportCapabilities, allocationLength: 8).direction == .fromDevice(allocationLength: 8))
    }

    @Test func prOutCDBAndParameterList() {
        let c = SCSICommand.prOut(
            .preempt, type: .writeExclusiveRegistrantsOnly,
            key: 0x0102_0304_0506_0708, serviceActionKey: 0x1112_1314_1516_1718)
        #expect(c.cdb == [0x5F, 0x04, 0x05, 0, 0, 0, 0, 0, 24, 0])
        #expect(
            c.direction
                == .toDevice(
                    [1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
                        + [UInt8](repeating: 0, count: 8)))
        #expect(c.name == "PR OUT PREEMPT")
        #expect(SCSICommand.prOut(.registerAndIgnore, key: 0, serviceActionKey: 9).cdb[1...2] == [6, 0])
        #expect(SCSICommand.prOut(.reserve, type: .writeExclusiveAllRegistrants, key: 1).cdb[1...2] == [1, 7])
    }

    @Test(arguments: [
        (SCSIResponse(status: 0, data: [1]), SCSIOutcome.good(data: [1])),
        (SCSIResponse(status: 0x18), .reservationConflict),
        (SCSIResponse(status: 0x08), .otherStatus(0x08)),
        // fixed format, UNIT ATTENTION, reservations preempted
        (
            SCSIResponse(status: 2, sense: SenseData(decoding: [0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2A, 0x03, 0, 0, 0, 0])),
            .unitAttention(UnitAttention(asc: 0x2A, ascq: 0x03))
        ),
        // descriptor format, UNIT ATTENTION, power on / reset
        (
            SCSIResponse(status: 2, sense: SenseData(decoding: [0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0])),
            .unitAttention(UnitAttention(asc: 0x29, ascq: 0))
        ),
        // ILLEGAL REQUEST 24/00: e.g. tgt and READ FULL STATUS
        (
            SCSIResponse(status: 2, sense: SenseData(decoding: [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0])),
            .checkCondition(senseKey: 5, asc: 0x24, ascq: 0)
        ),
        // truncated sense never traps
        (SCSIResponse(status: 2, sense: SenseData(decoding: [0x70, 0])), .checkCondition(senseKey: 0, asc: 0, ascq: 0)),
    ])
    func decodesStatusAndSense(response: SCSIResponse, expected: SCSIOutcome) {
        #expect(SCSIOutcome(response) == expected)
    }

    @Test func unitAttentionsThatInvalidateTheReservationView() {
        #expect(UnitAttention(asc: 0x29, ascq: 0x07).invalidatesReservationView)
        #expect(UnitAttention(asc: 0x2A, ascq: 0x05).invalidatesReservationView)
        #expect(!UnitAttention(asc: 0x2A, ascq: 0x09).invalidatesReservationView)  // capacity changed
        #expect(!UnitAttention(asc: 0x3F, ascq: 0x0E).invalidatesReservationView)  // LUN inventory
    }

    @Test func readKeysParsing() throws {
        let d: [UInt8] = [0, 0, 0, 7, 0, 0, 0, 16] + [0, 0, 0, 0, 0, 0, 0, 0xA] + [1, 0, 0, 0, 0, 0, 0, 0xB]
        #expect(try RegisteredKeys(parsing: d) == RegisteredKeys(generation: 7, keys: [0xA, 0x0100_0000_0000_000B]))
        // Claims two keys but carries one: an error, not a trap.
        #expect(throws: LockError.self) { try RegisteredKeys(parsing: Array(d.prefix(16))) }
        #expect(throws: LockError.self) { try RegisteredKeys(parsing: [0, 0, 0]) }
        #expect(throws: LockError.self) { try RegisteredKeys(parsing: [0, 0, 0, 0, 0, 0, 0, 5] + [UInt8](repeating: 0, count: 8)) }
    }

    @Test func readReservationParsing() throws {
        #expect(try ReservationStatus(parsing: [0, 0, 0, 3, 0, 0, 0, 0]).reservation == nil)
        var d: [UInt8] = [0, 0, 0, 3, 0, 0, 0, 16] + [0, 0, 0, 0, 0, 0, 0, 0x42] + [0, 0, 0, 0, 0, 0x05, 0, 0]
        #expect(try ReservationStatus(parsing: d).reservation == .init(key: 0x42, type: .writeExclusiveRegistrantsOnly))
        d[21] = 0x02  // type 2 is obsolete
        #expect(throws: LockError.self) { try ReservationStatus(parsing: d) }
        d[21] = 0x15  // element scope
        #expect(throws: LockError.self) { try ReservationStatus(parsing: d) }
        #expect(throws: LockError.self) { try ReservationStatus(parsing: Array(d.prefix(20))) }
    }

    @Test func readFullStatusParsing() throws {
        func descriptor(_ key: UInt8, holds: Bool, _ scopeType: UInt8, transportID: [UInt8] = []) -> [UInt8] {
            [0, 0, 0, 0, 0, 0, 0, key, 0, 0, 0, 0, holds ? 1 : 0, scopeType, 0, 0, 0, 0, 0, 1]
                + [0, 0, 0, UInt8(transportID.count)] + transportID
        }
        func data(_ ds: [[UInt8]], extra: Int = 0) -> [UInt8] {
            let body = ds.flatMap { $0 }
            return [0, 0, 0, 7, 0, 0, 0, UInt8(body.count + extra)] + body
        }
        #expect(try FullStatus(parsing: data([])).view() == PRView(reservation: nil, keys: []))
        let tid: [UInt8] = [0x05, 0, 0, 8] + Array("iqn.a,i\0".utf8)
        // A holder under WE-RO with a TransportID, and a second registrant.
        let two = data([descriptor(0x42, holds: true, 0x05, transportID: tid), descriptor(0x43, holds: false, 0)])
        #expect(
            try FullStatus(parsing: two).view()
                == PRView(reservation: .init(key: 0x42, type: .writeExclusiveRegistrantsOnly), keys: [0x42, 0x43]))
        // All registrants: every registrant holds; the holder key reads 0 as READ RESERVATION gives it.
        let all = data([descriptor(0x1, holds: true, 0x07), descriptor(0x2, holds: true, 0x07)])
        #expect(try FullStatus(parsing: all).view().reservation == .init(key: 0, type: .writeExclusiveAllRegistrants))
        // Two different holders of an exclusive type, an element scope, an obsolete type: refused.
        #expect(throws: LockError.self) {
            try FullStatus(parsing: data([descriptor(0x1, holds: true, 0x05), descriptor(0x2, holds: true, 0x05)])).view()
        }
        #expect(throws: LockError.self) { try FullStatus(parsing: data([descriptor(0x1, holds: true, 0x15)])).view() }
        #expect(throws: LockError.self) { try FullStatus(parsing: data([descriptor(0x1, holds: true, 0x02)])).view() }
        // A TransportID running past a complete answer: an error, never a trap.
        var lying = data([descriptor(0x1, holds: false, 0, transportID: tid)])
        lying[8 + 23] = 200
        #expect(throws: LockError.self) { try FullStatus(parsing: lying) }
        // An answer cut by the allocation length: what fits, and incomplete.
        let cut = try FullStatus(parsing: Array(two.prefix(30)))
        #expect(cut.registrations.isEmpty && !cut.isComplete(received: 30))
        // More announced than arrived: incomplete, ask again.
        let short = data([descriptor(0x1, holds: false, 0)], extra: 24)
        #expect(try !FullStatus(parsing: short).isComplete(received: short.count))
        #expect(try FullStatus(parsing: short).announcedLength == short.count + 24)
    }

    @Test func reportCapabilitiesTypeMask() throws {
        let caps = try PRCapabilities(parsing: [0, 8, 0x10, 0x80, 0xA2, 0x01, 0, 0])  // WR_EX_AR, WR_EX_RO, EX_AC_AR, WR_EX
        #expect(caps.typeMaskValid)
        #expect(
            caps.supported == [
                .writeExclusiveAllRegistrants, .writeExclusiveRegistrantsOnly, .writeExclusive,
                .exclusiveAccessAllRegistrants,
            ])
    }
}
