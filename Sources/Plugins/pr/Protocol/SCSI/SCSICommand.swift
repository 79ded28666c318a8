import LockDriver

/// PERSISTENT RESERVE IN service actions (SPC-4 6.16).
public enum PRInAction: UInt8, Sendable {
    case readKeys = 0
    case readReservation = 1
    case reportCapabilities = 2
    case readFullStatus = 3
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

/// Which way data moves for one command.
public enum DataDirection: Sendable, Equatable {
    case none
    /// PERSISTENT RESERVE IN and friends: up to `allocationLength` bytes come back.
    case fromDevice(allocationLength: Int)
    /// PERSISTENT RESERVE OUT: the parameter list goes to the device.
    case toDevice([UInt8])
}

/// A command the pr plugin sends, typed, as it travels from the algorithm
/// through PRDevice to a transport; `cdb` and `direction` are the one CDB
/// encoder shared by every transport (SG_IO, qemu-pr-helper, iSCSI), so
/// the CDB and the data always agree.
public enum SCSICommand: Sendable, Equatable {
    /// PERSISTENT RESERVE IN (0x5E) asking for up to `allocationLength` bytes.
    case prIn(PRInAction, allocationLength: UInt16 = 8192)
    /// PERSISTENT RESERVE OUT (0x5F) with the 24-byte basic parameter list.
    /// `type` matters for RESERVE, RELEASE and PREEMPT only (scope is LU).
    case prOut(PROutAction, type: ReservationType? = nil, key: UInt64, serviceActionKey: UInt64 = 0)
    /// WRITE(10) of `blocks` blocks at `lba`: pr-tool's `write`, which shows
    /// fencing with real I/O (the demo, the tests).
    case write10(lba: UInt32, blocks: UInt16, data: [UInt8])
    /// TEST UNIT READY (0x00): sent ahead of a LU's first command on a new
    /// I_T nexus, to take the unit attention a target reports there.
    case testUnitReady

    public var cdb: [UInt8] {
        switch self {
        case .prIn(let action, let length):
            return [0x5E, action.rawValue, 0, 0, 0, 0, 0] + BigEndian.bytes(length) + [0]
        case .prOut(let action, let type, _, _):
            return [0x5F, action.rawValue & 0x1F, type?.rawValue ?? 0, 0, 0] + BigEndian.bytes(UInt32(24)) + [0]
        case .write10(let lba, let blocks, _):
            return [0x2A, 0] + BigEndian.bytes(lba) + [0] + BigEndian.bytes(blocks) + [0]
        case .testUnitReady:
            return [0x00, 0, 0, 0, 0, 0]
        }
    }

    public var direction: DataDirection {
        switch self {
        case .prIn(_, let length):
            return .fromDevice(allocationLength: Int(length))
        case .prOut(_, _, let key, let serviceActionKey):
            return .toDevice(BigEndian.bytes(key) + BigEndian.bytes(serviceActionKey) + [UInt8](repeating: 0, count: 8))
        case .write10(_, _, let data):
            return .toDevice(data)
        case .testUnitReady:
            return .none
        }
    }

    /// A short name for logs and error messages.
    public var name: String {
        switch self {
        case .prIn(.readKeys, _): return "PR IN READ KEYS"
        case .prIn(.readReservation, _): return "PR IN READ RESERVATION"
        case .prIn(.reportCapabilities, _): return "PR IN REPORT CAPABILITIES"
        case .prIn(.readFullStatus, _): return "PR IN READ FULL STATUS"
        case .prOut(let action, _, _, _): return "PR OUT \(action)"
        case .write10: return "WRITE(10)"
        case .testUnitReady: return "TEST UNIT READY"
        }
    }

    /// The operation code, for transport errors.
    public var opcode: UInt8 { cdb.first ?? 0 }
}
