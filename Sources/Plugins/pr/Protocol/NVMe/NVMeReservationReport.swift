import LockDriver

/// The data of an NVMe Reservation Report (NVM Command Set, opcode 0x0E),
/// little-endian: a header (generation, reservation type, the number of
/// registrant entries, PTPL state), then one entry per registered
/// controller. With the extended data structure (EDS, what Linux's nvmet
/// answers: its host IDs are 128-bit) the header and each entry are 64
/// bytes and the host ID has 16 bytes; without it 24 bytes and 8.
///
/// The parser never traps on short or lying data: REGCTL may announce
/// more entries than arrived (the buffer was too small: `isComplete` says
/// so), and anything inconsistent is a backend error naming what.
public struct NVMeReservationReport: Sendable, Equatable {
    public struct Registrant: Sendable, Equatable {
        /// 0xFFFF: a dynamic controller (nvmet reports every host so).
        public var controllerID: UInt16
        /// RCSTS bit 0: this controller's host holds the reservation.
        public var holdsReservation: Bool
        /// 16 bytes with EDS, 8 without.
        public var hostID: [UInt8]
        public var key: UInt64

        public init(controllerID: UInt16, holdsReservation: Bool, hostID: [UInt8], key: UInt64) {
            self.controllerID = controllerID
            self.holdsReservation = holdsReservation
            self.hostID = hostID
            self.key = key
        }
    }

    public var extended: Bool
    public var generation: UInt32
    /// RTYPE: 0 for no reservation, else ReservationType.prTypeCode.
    public var type: UInt8
    /// REGCTL: how many entries the namespace has (may exceed `registrants`).
    public var registrantCount: Int
    public var persistThroughPowerLoss: Bool
    /// The entries that arrived, at most `registrantCount`.
    public var registrants: [Registrant]

    public init(
        extended: Bool, generation: UInt32, type: UInt8, registrantCount: Int? = nil,
        persistThroughPowerLoss: Bool = false, registrants: [Registrant]
    ) {
        self.extended = extended
        self.generation = generation
        self.type = type
        self.registrantCount = registrantCount ?? registrants.count
        self.persistThroughPowerLoss = persistThroughPowerLoss
        self.registrants = registrants
    }

    public static func headerSize(extended: Bool) -> Int { extended ? 64 : 24 }
    public static func entrySize(extended: Bool) -> Int { extended ? 64 : 24 }

    /// Every registrant the namespace has arrived.
    public var isComplete: Bool { registrants.count == registrantCount }

    /// Bytes needed for the whole report.
    public var completeSize: Int { Self.headerSize(extended: extended) + registrantCount * Self.entrySize(extended: extended) }

    public init(parsing d: [UInt8], extended: Bool) throws(LockError) {
        let header = Self.headerSize(extended: extended), entry = Self.entrySize(extended: extended)
        let what = extended ? "NVMe Reservation Report (extended)" : "NVMe Reservation Report"
        guard d.count >= header else { throw .backend("\(what) returned \(d.count) bytes, need at least \(header)") }
        self.extended = extended
        generation = LittleEndian.uint32(d, at: 0)
        type = d[4]
        guard type == 0 || ReservationType(prTypeCode: type) != nil else {
            throw .backend("\(what): unknown reservation type \(type)")
        }
        registrantCount = Int(LittleEndian.uint16(d, at: 5))
        persistThroughPowerLoss = d[9] & 0x01 != 0
        let arrived = min(registrantCount, (d.count - header) / entry)
        registrants = (0..<arrived).map { i in
            let at = header + i * entry
            let hostAt = extended ? at + 16 : at + 8
            let keyAt = extended ? at + 8 : at + 16
            return Registrant(
                controllerID: LittleEndian.uint16(d, at: at),
                holdsReservation: d[at + 2] & 0x01 != 0,
                hostID: Array(d[hostAt..<hostAt + (extended ? 16 : 8)]),
                key: LittleEndian.uint64(d, at: keyAt))
        }
    }

    /// The report in the NVMe layout (reserved bytes zero): what a fake
    /// namespace answers, and the fuzz target's round trip.
    public var encoded: [UInt8] {
        let entry = Self.entrySize(extended: extended)
        var d = [UInt8](repeating: 0, count: Self.headerSize(extended: extended))
        d.replaceSubrange(0..<4, with: LittleEndian.bytes(generation))
        d[4] = type
        d.replaceSubrange(5..<7, with: LittleEndian.bytes(UInt16(clamping: registrantCount)))
        d[9] = persistThroughPowerLoss ? 1 : 0
        for r in registrants {
            var e = [UInt8](repeating: 0, count: entry)
            e.replaceSubrange(0..<2, with: LittleEndian.bytes(r.controllerID))
            e[2] = r.holdsReservation ? 1 : 0
            let idSize = extended ? 16 : 8
            let id = Array(r.hostID.prefix(idSize)) + [UInt8](repeating: 0, count: max(0, idSize - r.hostID.count))
            let (hostAt, keyAt) = extended ? (16, 8) : (8, 16)
            e.replaceSubrange(hostAt..<hostAt + idSize, with: id)
            e.replaceSubrange(keyAt..<keyAt + 8, with: LittleEndian.bytes(r.key))
            d += e
        }
        return d
    }

    // MARK: As PERSISTENT RESERVE IN sees it

    /// READ KEYS: one key per registrant entry (NVMe lists a host once per
    /// controller, as SCSI lists a key once per I_T nexus).
    public var registeredKeys: RegisteredKeys {
        RegisteredKeys(generation: generation, keys: registrants.map(\.key))
    }

    /// READ RESERVATION: the holder's key, or 0 under the all-registrants
    /// types (SPC's convention, which the decision layer reads). The
    /// holder must be among the entries: an incomplete report is an error
    /// here (ask again with `completeSize` bytes).
    public func reservationStatus() throws(LockError) -> ReservationStatus {
        let holders = registrants.filter(\.holdsReservation)
        guard type != 0, let rtype = ReservationType(prTypeCode: type) else {
            guard holders.isEmpty else {
                throw .backend("NVMe Reservation Report: \(holders.count) registrants hold a reservation of type 0 (none)")
            }
            return ReservationStatus(generation: generation, reservation: nil)
        }
        if rtype.isAllRegistrants {
            return ReservationStatus(generation: generation, reservation: .init(key: 0, type: rtype))
        }
        guard let holder = holders.first else {
            throw .backend(
                isComplete
                    ? "NVMe Reservation Report: a \(rtype) reservation, but none of the \(registrants.count) registrants holds it"
                    : "NVMe Reservation Report: a \(rtype) reservation held by none of the \(registrants.count) of \(registrantCount) registrants that arrived"
            )
        }
        // A host with several controllers holds through each of them: one key, one host.
        guard holders.allSatisfy({ $0.key == holder.key && $0.hostID == holder.hostID }) else {
            throw .backend(
                "NVMe Reservation Report: a \(rtype) reservation held by \(holders.count) registrants of different hosts or keys")
        }
        return ReservationStatus(generation: generation, reservation: .init(key: holder.key, type: rtype))
    }
}
