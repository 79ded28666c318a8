import LockDriver

/// READ FULL STATUS data (PR IN service action 03h, SPC-4 6.16.5): one
/// descriptor per registered I_T nexus, with its key, whether it holds the
/// reservation, and the type: the keys and the holder of READ KEYS and READ
/// RESERVATION in one command. Never traps on short or lying data: a length
/// that runs past what arrived is an error.
public struct FullStatus: Sendable, Equatable {
    public struct Registration: Sendable, Equatable {
        public var key: UInt64
        public var holdsReservation: Bool
        /// Scope and type as sent; meaningful when `holdsReservation`.
        public var scopeType: UInt8
        public init(key: UInt64, holdsReservation: Bool, scopeType: UInt8) {
            self.key = key
            self.holdsReservation = holdsReservation
            self.scopeType = scopeType
        }
    }

    public var generation: UInt32
    public var registrations: [Registration]
    /// The bytes the device said it has (header included): more than
    /// arrived means the allocation length was too small.
    public var announcedLength: Int

    public init(parsing d: [UInt8]) throws(LockError) {
        guard d.count >= 8 else { throw .backend("READ FULL STATUS returned \(d.count) bytes, need at least 8") }
        generation = BigEndian.uint32(d, at: 0)
        announcedLength = 8 + Int(BigEndian.uint32(d, at: 4))
        // An answer cut by the allocation length ends mid-list: what fits
        // is kept (the caller asks again); within a complete answer, a
        // descriptor running past the end is malformed.
        let cut = d.count < announcedLength
        let end = min(announcedLength, d.count)
        var regs: [Registration] = []
        var at = 8
        while at < end {
            let idLength = end - at >= 24 ? Int(BigEndian.uint32(d, at: at + 20)) : nil
            guard let idLength, idLength <= end - at - 24 else {
                if cut { break }
                throw .backend("READ FULL STATUS descriptor at byte \(at) runs past the \(end) bytes of data")
            }
            regs.append(
                Registration(key: BigEndian.uint64(d, at: at), holdsReservation: d[at + 12] & 0x01 != 0, scopeType: d[at + 13]))
            at += 24 + idLength
        }
        registrations = regs
    }

    /// Whether the whole list arrived (else ask again with `announcedLength`).
    public func isComplete(received: Int) -> Bool { announcedLength <= received }

    /// The same picture READ KEYS and READ RESERVATION give: every key, and
    /// the holder (key 0 under the all-registrants types, as READ
    /// RESERVATION reports it).
    public func view() throws(LockError) -> PRView {
        let holders = registrations.filter(\.holdsReservation)
        var reservation: ReservationStatus.Holder?
        if let first = holders.first {
            guard first.scopeType >> 4 == 0 else { throw .backend("reservation scope \(first.scopeType >> 4) is not LU scope") }
            guard let type = ReservationType(rawValue: first.scopeType & 0x0F) else {
                throw .backend("unknown reservation type \(first.scopeType & 0x0F)")
            }
            guard holders.allSatisfy({ $0.scopeType == first.scopeType }) else {
                throw .backend("READ FULL STATUS reports holders with different reservation types")
            }
            if !type.isAllRegistrants && Set(holders.map(\.key)).count > 1 {
                throw .backend("READ FULL STATUS reports \(Set(holders.map(\.key)).count) holders of a \(type) reservation")
            }
            reservation = .init(key: type.isAllRegistrants ? 0 : first.key, type: type)
        }
        return PRView(reservation: reservation, keys: registrations.map(\.key))
    }
}
