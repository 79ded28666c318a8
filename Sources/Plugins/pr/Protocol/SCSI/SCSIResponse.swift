import LockDriver

/// The one status + sense decoder: what a command's answer means.
public enum SCSIOutcome: Sendable, Equatable {
    case good(data: [UInt8])
    case reservationConflict
    /// Sense key 6: an event happened since our last command (reset,
    /// reservations or registrations preempted/released). The command was
    /// not executed.
    case unitAttention(UnitAttention)
    /// Any other CHECK CONDITION (e.g. ILLEGAL REQUEST 24/00 for an
    /// unsupported service action).
    case checkCondition(senseKey: UInt8, asc: UInt8, ascq: UInt8)
    /// BUSY, TASK SET FULL and the like.
    case otherStatus(UInt8)

    public init(_ response: SCSIResponse) {
        switch response.status {
        case 0x00: self = .good(data: response.data)
        case 0x18: self = .reservationConflict
        case 0x02:
            let sense = response.sense ?? SenseData(key: 0, asc: 0, ascq: 0)
            if sense.key == 0x06 {
                self = .unitAttention(UnitAttention(asc: sense.asc, ascq: sense.ascq))
            } else {
                self = .checkCondition(senseKey: sense.key, asc: sense.asc, ascq: sense.ascq)
            }
        default: self = .otherStatus(response.status)
        }
    }
}

/// A unit attention condition by its additional sense code.
public struct UnitAttention: Sendable, Equatable, CustomStringConvertible {
    public var asc: UInt8
    public var ascq: UInt8

    public init(asc: UInt8, ascq: UInt8) {
        self.asc = asc
        self.ascq = ascq
    }

    /// 2A/03 reservations preempted, 2A/04 released, 2A/05 registrations
    /// preempted, 29/xx power on, reset or I_T nexus loss: the reservation
    /// picture may have changed under us, so decisions must be re-made.
    public var invalidatesReservationView: Bool {
        asc == 0x29 || (asc == 0x2A && (ascq == 0x03 || ascq == 0x04 || ascq == 0x05))
    }

    public var description: String {
        let code = "\(Hex.byte(asc))/\(Hex.byte(ascq))"
        switch (asc, ascq) {
        case (0x29, _): return "unit attention \(code) (power on, reset or I_T nexus loss)"
        case (0x2A, 0x03): return "unit attention \(code) (reservations preempted)"
        case (0x2A, 0x04): return "unit attention \(code) (reservations released)"
        case (0x2A, 0x05): return "unit attention \(code) (registrations preempted)"
        default: return "unit attention \(code)"
        }
    }
}

/// What a CHECK CONDITION's sense says: key, additional sense code and
/// qualifier. libiscsi hands them over parsed; SG_IO and qemu-pr-helper
/// hand over bytes, decoded here once.
public struct SenseData: Sendable, Equatable {
    public var key: UInt8
    public var asc: UInt8
    public var ascq: UInt8

    public init(key: UInt8, asc: UInt8, ascq: UInt8) {
        self.key = key
        self.asc = asc
        self.ascq = ascq
    }

    /// Sense bytes in fixed (0x70/0x71) or descriptor (0x72/0x73) format;
    /// what is missing or unknown reads as 0.
    public init(decoding b: [UInt8]) {
        self.init(key: 0, asc: 0, ascq: 0)
        guard let first = b.first else { return }
        switch first & 0x7F {
        case 0x70, 0x71:
            if b.count > 2 { key = b[2] & 0x0F }
            if b.count > 13 { asc = b[12]; ascq = b[13] }
        case 0x72, 0x73:
            if b.count > 3 { key = b[1] & 0x0F; asc = b[2]; ascq = b[3] }
        default:
            break
        }
    }
}

/// The answer of one SCSI command as every transport reports it. Transport
/// failures (no connection, timeout, host/driver errors) are thrown instead.
public struct SCSIResponse: Sendable, Equatable {
    /// SAM status byte: GOOD 0x00, CHECK CONDITION 0x02, RESERVATION CONFLICT 0x18.
    public var status: UInt8
    /// With CHECK CONDITION: what went wrong.
    public var sense: SenseData?
    /// The data-in bytes actually transferred.
    public var data: [UInt8]

    public init(status: UInt8, sense: SenseData? = nil, data: [UInt8] = []) {
        self.status = status
        self.sense = sense
        self.data = data
    }
}

extension SCSIResponse {
    /// ILLEGAL REQUEST, INVALID FIELD IN CDB: what a device answers a
    /// service action it lacks. Transports that translate PR IN answer
    /// READ FULL STATUS so, and the reads fall back to the two older ones.
    public static let invalidFieldInCDB = SCSIResponse(status: 0x02, sense: SenseData(key: 0x05, asc: 0x24, ascq: 0x00))
}
