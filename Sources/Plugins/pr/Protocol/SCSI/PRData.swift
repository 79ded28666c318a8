import LockDriver

/// Parsers for PERSISTENT RESERVE IN data. They never trap on short or
/// lying data: a length field larger than what arrived is an error.
public struct RegisteredKeys: Sendable, Equatable {
    public var generation: UInt32
    public var keys: [UInt64]

    public init(generation: UInt32, keys: [UInt64]) {
        self.generation = generation
        self.keys = keys
    }

    public init(parsing d: [UInt8]) throws(LockError) {
        guard d.count >= 8 else { throw .backend("READ KEYS returned \(d.count) bytes, need at least 8") }
        generation = BigEndian.uint32(d, at: 0)
        let length = Int(BigEndian.uint32(d, at: 4))
        guard length % 8 == 0 else { throw .backend("READ KEYS additional length \(length) is not a multiple of 8") }
        guard length <= d.count - 8 else {
            throw .backend("READ KEYS lists \(length / 8) keys but only \((d.count - 8) / 8) arrived (allocation too small)")
        }
        keys = stride(from: 8, to: 8 + length, by: 8).map { BigEndian.uint64(d, at: $0) }
    }

    /// The READ KEYS parameter data (SPC-4 6.16.2): what a transport that
    /// reads keys another way (the kernel's read ioctls, NVMe) answers, so
    /// one decoder serves every transport.
    public var encoded: [UInt8] {
        BigEndian.bytes(generation) + BigEndian.bytes(UInt32(clamping: 8 * keys.count)) + keys.flatMap { BigEndian.bytes($0) }
    }
}

/// READ RESERVATION data: nil reservation when none exists.
public struct ReservationStatus: Sendable, Equatable {
    public struct Holder: Sendable, Equatable {
        /// 0 under the all-registrants types.
        public var key: UInt64
        public var type: ReservationType
        public init(key: UInt64, type: ReservationType) {
            self.key = key
            self.type = type
        }
    }

    public var generation: UInt32
    public var reservation: Holder?

    public init(generation: UInt32, reservation: Holder?) {
        self.generation = generation
        self.reservation = reservation
    }

    public init(parsing d: [UInt8]) throws(LockError) {
        guard d.count >= 8 else { throw .backend("READ RESERVATION returned \(d.count) bytes, need at least 8") }
        generation = BigEndian.uint32(d, at: 0)
        let length = BigEndian.uint32(d, at: 4)
        if length == 0 {
            reservation = nil
            return
        }
        guard length >= 16, d.count >= 24 else {
            throw .backend("READ RESERVATION additional length \(length) with \(d.count) bytes is malformed")
        }
        let scopeType = d[21]
        guard scopeType >> 4 == 0 else { throw .backend("reservation scope \(scopeType >> 4) is not LU scope") }
        guard let type = ReservationType(rawValue: scopeType & 0x0F) else {
            throw .backend("unknown reservation type \(scopeType & 0x0F)")
        }
        reservation = Holder(key: BigEndian.uint64(d, at: 8), type: type)
    }

    /// The READ RESERVATION parameter data (SPC-4 6.16.3), LU scope.
    public var encoded: [UInt8] {
        guard let reservation else { return BigEndian.bytes(generation) + BigEndian.bytes(UInt32(0)) }
        return BigEndian.bytes(generation) + BigEndian.bytes(UInt32(16)) + BigEndian.bytes(reservation.key)
            + [0, 0, 0, 0, 0, reservation.type.rawValue, 0, 0]
    }
}

/// REPORT CAPABILITIES: which types the device supports, and whether it
/// can keep registrations through a power loss (PTPL_C).
public struct PRCapabilities: Sendable, Equatable {
    public var typeMaskValid: Bool
    public var supported: Set<ReservationType>
    /// PTPL_C: the device accepts APTPL. Linux's sd sets APTPL on every
    /// REGISTER it sends for the block-layer PR ioctls.
    public var persistThroughPowerLossCapable: Bool

    public init(parsing d: [UInt8]) throws(LockError) {
        guard d.count >= 8, BigEndian.uint16(d, at: 0) >= 8 else { throw .backend("REPORT CAPABILITIES returned malformed data") }
        typeMaskValid = d[3] & 0x80 != 0
        persistThroughPowerLossCapable = d[2] & 0x01 != 0
        let mask = UInt16(d[4]) << 8 | UInt16(d[5])
        var s = Set<ReservationType>()
        // Bits of the persistent reservation type mask, SPC-4 table 173.
        if mask & 0x8000 != 0 { s.insert(.writeExclusiveAllRegistrants) }
        if mask & 0x4000 != 0 { s.insert(.exclusiveAccessRegistrantsOnly) }
        if mask & 0x2000 != 0 { s.insert(.writeExclusiveRegistrantsOnly) }
        if mask & 0x0800 != 0 { s.insert(.exclusiveAccess) }
        if mask & 0x0200 != 0 { s.insert(.writeExclusive) }
        if mask & 0x0001 != 0 { s.insert(.exclusiveAccessAllRegistrants) }
        supported = s
    }
}
