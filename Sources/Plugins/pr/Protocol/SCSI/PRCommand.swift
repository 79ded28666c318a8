import LockDriver

/// PERSISTENT RESERVE IN service actions (SPC-4 6.16).
public enum PRInAction: UInt8, Sendable {
    case readKeys = 0
    case readReservation = 1
    case reportCapabilities = 2
}

/// PERSISTENT RESERVE OUT service actions (SPC-4 6.17).
public enum PROutAction: UInt8, Sendable, CustomStringConvertible {
    case register = 0
    case reserve = 1
    case release = 2
    case clear = 3
    case preempt = 4
    case registerAndIgnore = 6

    public var description: String {
        switch self {
        case .register: return "REGISTER"
        case .reserve: return "RESERVE"
        case .release: return "RELEASE"
        case .clear: return "CLEAR"
        case .preempt: return "PREEMPT"
        case .registerAndIgnore: return "REGISTER AND IGNORE EXISTING KEY"
        }
    }
}

/// Persistent reservation types, LU scope.
public enum ReservationType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case writeExclusive = 1
    case exclusiveAccess = 3
    case writeExclusiveRegistrantsOnly = 5
    case exclusiveAccessRegistrantsOnly = 6
    case writeExclusiveAllRegistrants = 7
    case exclusiveAccessAllRegistrants = 8

    /// Under the all-registrants types every registrant is a holder and
    /// READ RESERVATION reports key 0: the reservation is shared.
    public var isAllRegistrants: Bool {
        self == .writeExclusiveAllRegistrants || self == .exclusiveAccessAllRegistrants
    }

    /// The names used in the config file.
    public var configName: String {
        switch self {
        case .writeExclusive: return "write-exclusive"
        case .exclusiveAccess: return "exclusive-access"
        case .writeExclusiveRegistrantsOnly: return "write-exclusive-registrants-only"
        case .exclusiveAccessRegistrantsOnly: return "exclusive-access-registrants-only"
        case .writeExclusiveAllRegistrants: return "write-exclusive-all-registrants"
        case .exclusiveAccessAllRegistrants: return "exclusive-access-all-registrants"
        }
    }

    public var description: String { configName }
}

/// The one CDB encoder for persistent reservations, shared by every
/// transport (SG_IO, qemu-pr-helper, iSCSI).
public struct PRCommand: Sendable, Equatable {
    public var cdb: [UInt8]
    public var direction: DataDirection

    public init(cdb: [UInt8], direction: DataDirection) {
        self.cdb = cdb
        self.direction = direction
    }

    /// PERSISTENT RESERVE IN (0x5E) asking for up to `allocationLength` bytes.
    public static func prIn(_ action: PRInAction, allocationLength: UInt16 = 8192) -> PRCommand {
        let len = allocationLength
        let cdb: [UInt8] = [0x5E, action.rawValue, 0, 0, 0, 0, 0, UInt8(len >> 8), UInt8(len & 0xFF), 0]
        return PRCommand(cdb: cdb, direction: .fromDevice(allocationLength: Int(len)))
    }

    /// PERSISTENT RESERVE OUT (0x5F) with the 24-byte basic parameter list.
    /// `type` matters for RESERVE, RELEASE and PREEMPT only (scope is LU).
    public static func prOut(_ action: PROutAction, type: ReservationType? = nil,
                             key: UInt64, serviceActionKey: UInt64 = 0) -> PRCommand {
        var params = [UInt8](repeating: 0, count: 24)
        for i in 0..<8 {
            params[i] = UInt8(truncatingIfNeeded: key >> (56 - 8 * UInt64(i)))
            params[8 + i] = UInt8(truncatingIfNeeded: serviceActionKey >> (56 - 8 * UInt64(i)))
        }
        let cdb: [UInt8] = [0x5F, action.rawValue & 0x1F, type?.rawValue ?? 0, 0, 0, 0, 0, 0, UInt8(params.count), 0]
        return PRCommand(cdb: cdb, direction: .toDevice(params))
    }

    /// WRITE(10) of `blocks` blocks at `lba`: used by the tests and the demo
    /// to show fencing with real I/O.
    public static func write10(lba: UInt32, blocks: UInt16, data: [UInt8]) -> PRCommand {
        let cdb: [UInt8] = [0x2A, 0, UInt8(lba >> 24), UInt8((lba >> 16) & 0xFF), UInt8((lba >> 8) & 0xFF),
                            UInt8(lba & 0xFF), 0, UInt8(blocks >> 8), UInt8(blocks & 0xFF), 0]
        return PRCommand(cdb: cdb, direction: .toDevice(data))
    }

    /// READ(10), the read-side counterpart of `write10`.
    public static func read10(lba: UInt32, blocks: UInt16, blockSize: Int) -> PRCommand {
        let cdb: [UInt8] = [0x28, 0, UInt8(lba >> 24), UInt8((lba >> 16) & 0xFF), UInt8((lba >> 8) & 0xFF),
                            UInt8(lba & 0xFF), 0, UInt8(blocks >> 8), UInt8(blocks & 0xFF), 0]
        return PRCommand(cdb: cdb, direction: .fromDevice(allocationLength: Int(blocks) * blockSize))
    }

    /// A short name for logs and error messages.
    public var name: String {
        guard let op = cdb.first else { return "empty CDB" }
        switch op {
        case 0x5E:
            switch cdb.count > 1 ? PRInAction(rawValue: cdb[1] & 0x1F) : nil {
            case .readKeys: return "PR IN READ KEYS"
            case .readReservation: return "PR IN READ RESERVATION"
            case .reportCapabilities: return "PR IN REPORT CAPABILITIES"
            case nil: return "PR IN"
            }
        case 0x5F:
            return "PR OUT " + (cdb.count > 1 ? PROutAction(rawValue: cdb[1] & 0x1F)?.description ?? "?" : "?")
        case 0x2A: return "WRITE(10)"
        case 0x28: return "READ(10)"
        default: return "opcode 0x" + Hex.byte(op)
        }
    }

    public var isPROut: Bool { cdb.first == 0x5F }
}
