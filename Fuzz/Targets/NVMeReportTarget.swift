import LockDriver
import PRProtocol

/// An NVMe Reservation Report as a namespace (or anything pretending to be
/// one) sends it; the first input byte picks the layout (bit 0: extended).
/// The parser gives what the data holds or a backend error: no more
/// registrants than arrived or than REGCTL announces, a round trip through
/// the NVMe layout, and the SCSI view the decision layer reads (READ KEYS,
/// READ RESERVATION) consistent with the entries: a holder's key is a
/// registrant's key, and it parses back through the SPC decoders.
enum NVMeReportTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        guard let first = bytes.first else { return }
        let extended = first & 1 != 0
        let data = Array(bytes.dropFirst())
        let parsed: NVMeReservationReport
        do {
            parsed = try NVMeReservationReport(parsing: data, extended: extended)
        } catch {
            try PRDataTargets.expectBackendError(error, "NVMe Reservation Report")
            return
        }
        let header = NVMeReservationReport.headerSize(extended: extended)
        let entry = NVMeReservationReport.entrySize(extended: extended)
        try expect(
            parsed.registrants.count <= parsed.registrantCount && header + parsed.registrants.count * entry <= data.count,
            "\(parsed.registrants.count) registrants parsed from \(data.count) bytes (REGCTL \(parsed.registrantCount))")
        try expect(
            (try? NVMeReservationReport(parsing: parsed.encoded, extended: extended)) == parsed,
            "the report \(parsed) does not round-trip")
        let keys = parsed.registeredKeys
        try expect((try? RegisteredKeys(parsing: keys.encoded)) == keys, "READ KEYS from the report does not round-trip")
        let status: ReservationStatus
        do {
            status = try parsed.reservationStatus()
        } catch {
            try PRDataTargets.expectBackendError(error, "NVMe Reservation Report's holder")
            return
        }
        try expect((try? ReservationStatus(parsing: status.encoded)) == status, "READ RESERVATION from the report does not round-trip")
        guard let holder = status.reservation else {
            try expect(parsed.type == 0, "type \(parsed.type) read as no reservation")
            return
        }
        try expect(holder.type.prTypeCode == parsed.type, "type \(parsed.type) read as \(holder.type)")
        try expect(
            holder.type.isAllRegistrants ? holder.key == 0 : parsed.registrants.contains { $0.holdsReservation && $0.key == holder.key },
            "holder key \(holder.key) is no holding registrant's")
    }
}
