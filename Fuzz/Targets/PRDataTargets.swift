import LockDriver
import PRProtocol
import PRTransport

/// PERSISTENT RESERVE IN data and sense data as a device (or anything
/// pretending to be one) sends them: each parser gives a value that the
/// data really holds, or a backend error; what parses, written out again
/// in the SPC-4 layout, parses to the same value.
enum PRDataTargets {
    static func readKeys(_ d: [UInt8]) throws(FuzzFailure) {
        let parsed: RegisteredKeys
        do {
            parsed = try RegisteredKeys(parsing: d)
        } catch {
            try expectBackendError(error, "READ KEYS")
            return
        }
        try expect(8 + 8 * parsed.keys.count <= d.count, "\(parsed.keys.count) keys parsed from \(d.count) bytes")
        let written = be32(parsed.generation) + be32(UInt32(8 * parsed.keys.count)) + parsed.keys.flatMap(be64)
        try expect(written.elementsEqual(d.prefix(written.count)), "READ KEYS \(parsed) is not what the data says")
        try expect((try? RegisteredKeys(parsing: written)) == parsed, "READ KEYS \(parsed) does not round-trip")
    }

    static func readReservation(_ d: [UInt8]) throws(FuzzFailure) {
        let parsed: ReservationStatus
        do {
            parsed = try ReservationStatus(parsing: d)
        } catch {
            try expectBackendError(error, "READ RESERVATION")
            return
        }
        var written = be32(parsed.generation)
        if let holder = parsed.reservation {
            try expect(d.count >= 24, "a reservation parsed from \(d.count) bytes")
            written += be32(16) + be64(holder.key) + [0, 0, 0, 0, 0, holder.type.rawValue, 0, 0]
        } else {
            written += be32(0)
        }
        try expect((try? ReservationStatus(parsing: written)) == parsed, "READ RESERVATION \(parsed) does not round-trip")
    }

    static func reportCapabilities(_ d: [UInt8]) throws(FuzzFailure) {
        let parsed: PRCapabilities
        do {
            parsed = try PRCapabilities(parsing: d)
        } catch {
            try expectBackendError(error, "REPORT CAPABILITIES")
            return
        }
        let mask = UInt16(d[4]) << 8 | UInt16(d[5])
        let known: [(ReservationType, UInt16)] = [
            (.writeExclusiveAllRegistrants, 0x8000), (.exclusiveAccessRegistrantsOnly, 0x4000),
            (.writeExclusiveRegistrantsOnly, 0x2000), (.exclusiveAccess, 0x0800),
            (.writeExclusive, 0x0200), (.exclusiveAccessAllRegistrants, 0x0001),
        ]
        for (type, bit) in known {
            try expect(parsed.supported.contains(type) == (mask & bit != 0), "type \(type) read wrongly from mask \(mask)")
        }
        try expect(parsed.typeMaskValid == (d[3] & 0x80 != 0), "the type mask valid bit was read wrongly")
    }

    /// READ FULL STATUS: every descriptor parsed lies inside the data and
    /// inside the announced length; written out again (TransportIDs as
    /// zero bytes of the same lengths) it parses to the same registrations;
    /// the view derived from it names only keys it lists, and a holder only
    /// when a descriptor holds.
    static func readFullStatus(_ d: [UInt8]) throws(FuzzFailure) {
        let parsed: FullStatus
        do {
            parsed = try FullStatus(parsing: d)
        } catch {
            try expectBackendError(error, "READ FULL STATUS")
            return
        }
        try expect(
            8 + 24 * parsed.registrations.count <= min(d.count, parsed.announcedLength),
            "\(parsed.registrations.count) descriptors from \(d.count) bytes")
        var body: [UInt8] = []
        var at = 8
        for r in parsed.registrations {
            let idLength = Int(BigEndian.uint32(d, at: at + 20))
            body += be64(r.key) + [0, 0, 0, 0, r.holdsReservation ? 1 : 0, r.scopeType, 0, 0, 0, 0, 0, 0] + be32(UInt32(idLength))
            body += [UInt8](repeating: 0, count: idLength)
            at += 24 + idLength
        }
        guard parsed.isComplete(received: d.count) else { return }
        let written = be32(parsed.generation) + be32(UInt32(body.count)) + body
        let again = try? FullStatus(parsing: written)
        try expect(again?.registrations == parsed.registrations, "READ FULL STATUS \(parsed) does not round-trip")
        guard let view = try? parsed.view() else { return }
        try expect(view.keys == parsed.registrations.map(\.key), "the view's keys are not the descriptors' keys")
        try expect(
            (view.reservation != nil) == parsed.registrations.contains(where: \.holdsReservation), "a holder without a holding descriptor")
        if let h = view.reservation, !h.type.isAllRegistrants {
            try expect(parsed.registrations.contains { $0.holdsReservation && $0.key == h.key }, "holder key \(h.key) holds nothing")
        }
    }

    /// First byte: the SAM status; the rest: sense data.
    static func sense(_ bytes: [UInt8]) throws(FuzzFailure) {
        guard let status = bytes.first else { return }
        let sense = Array(bytes.dropFirst())
        let outcome = SCSIOutcome(SCSIResponse(status: status, sense: SenseData(decoding: sense)))
        guard status == 0x02 else { return }
        switch outcome {
        case .unitAttention(let ua):
            try expect(!ua.description.isEmpty, "a unit attention without a description")
            // The same condition in the other sense format means the same.
            let fixed: [UInt8] = [0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, ua.asc, ua.ascq]
            try expect(
                SCSIOutcome(SCSIResponse(status: 0x02, sense: SenseData(decoding: fixed))) == outcome,
                "fixed-format \(ua) decodes differently")
        case .checkCondition(let key, let asc, let ascq):
            try expect(key <= 0x0F && key != 0x06, "sense key \(key) decoded")
            let descriptor: [UInt8] = [0x72, key, asc, ascq, 0, 0, 0, 0]
            try expect(
                SCSIOutcome(SCSIResponse(status: 0x02, sense: SenseData(decoding: descriptor))) == outcome,
                "descriptor-format sense \(key)/\(asc)/\(ascq) decodes differently")
        default:
            throw FuzzFailure(message: "CHECK CONDITION decoded as \(outcome)")
        }
    }

    static func expectBackendError(_ error: LockError, _ what: String) throws(FuzzFailure) {
        try expect(error.kind == .backend && !error.message.isEmpty, "bad \(what) data failed as \(error.kind): \(error.message)")
    }

    static func be32(_ v: UInt32) -> [UInt8] { BigEndian.bytes(v) }
    static func be64(_ v: UInt64) -> [UInt8] { BigEndian.bytes(v) }
}

/// A qemu-pr-helper reply, laid out as the input: 2 bytes PR IN allocation
/// length (0 = a PR OUT), 1 byte PR IN service action, the reply header,
/// then the payload. The header is accepted only within the protocol; the
/// response built from it carries sense only with CHECK CONDITION and data
/// only with GOOD, and its data goes through the parser of the action.
enum PRHelperReplyTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        guard bytes.count >= 3 else { return }
        let allocationLength = (Int(bytes[0]) << 8 | Int(bytes[1])) % (8192 + 1)
        let action = bytes[2] % 3
        let rest = bytes.dropFirst(3)
        let header = Array(rest.prefix(PRHelperReply.headerSize))
        let reply: PRHelperReply
        do {
            reply = try PRHelperReply(header: header, allocationLength: allocationLength)
        } catch {
            try expect(
                header.count == PRHelperReply.headerSize || error == .wrongHeaderSize(header.count),
                "a \(header.count)-byte header refused as \(error)")
            return
        }
        try expect(header.count == PRHelperReply.headerSize, "a \(header.count)-byte header accepted")
        try expect(reply.payloadSize <= allocationLength, "a \(reply.payloadSize)-byte payload for \(allocationLength) bytes accepted")
        try expect(reply.payloadSize == 0 || reply.status == 0, "a payload with status \(reply.status) accepted")
        try expect(reply.sense == nil || reply.status == 0x02, "sense kept with status \(reply.status)")
        // The transport reads exactly payloadSize bytes next; fewer means the helper hung up.
        let payload = Array(rest.dropFirst(PRHelperReply.headerSize).prefix(reply.payloadSize))
        guard payload.count == reply.payloadSize else { return }
        guard case .good(let data) = SCSIOutcome(reply.response(payload: payload)) else { return }
        switch action {
        case 0: try PRDataTargets.readKeys(data)
        case 1: try PRDataTargets.readReservation(data)
        default: try PRDataTargets.reportCapabilities(data)
        }
    }
}
