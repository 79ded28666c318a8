import LockDriver
import PRProtocol

/// One call of the block layer's persistent reservation API (<linux/pr.h>),
/// made from the typed PERSISTENT RESERVE OUT the decision layer sends.
public enum BlockPRRequest: Sendable, Equatable {
    case register(oldKey: UInt64, newKey: UInt64, ignoreExistingKey: Bool)
    case reserve(key: UInt64, type: BlockPRType)
    case release(key: UInt64, type: BlockPRType)
    /// `victimKey` is the service action key: whose registrations go.
    case preempt(key: UInt64, victimKey: UInt64, type: BlockPRType, abort: Bool)
    case clear(key: UInt64)

    /// The ioctl's name, for messages.
    public var ioctlName: String {
        switch self {
        case .register: return "IOC_PR_REGISTER"
        case .reserve: return "IOC_PR_RESERVE"
        case .release: return "IOC_PR_RELEASE"
        case .preempt(_, _, _, let abort): return abort ? "IOC_PR_PREEMPT_ABORT" : "IOC_PR_PREEMPT"
        case .clear: return "IOC_PR_CLEAR"
        }
    }

    /// The ioctl for one typed PR OUT: the same keys, the kernel's type
    /// numbers. Every PROutAction the plugin sends has one.
    public init(_ action: PROutAction, type: ReservationType?, key: UInt64, serviceActionKey: UInt64) throws(LockError) {
        func kernelType() throws(LockError) -> BlockPRType {
            guard let type else { throw .internalError("block PR: PR OUT \(action) without a reservation type") }
            return BlockPRType(type)
        }
        switch action {
        case .register: self = .register(oldKey: key, newKey: serviceActionKey, ignoreExistingKey: false)
        case .registerAndIgnore: self = .register(oldKey: key, newKey: serviceActionKey, ignoreExistingKey: true)
        case .reserve: self = .reserve(key: key, type: try kernelType())
        case .release: self = .release(key: key, type: try kernelType())
        case .preempt: self = .preempt(key: key, victimKey: serviceActionKey, type: try kernelType(), abort: false)
        case .clear: self = .clear(key: key)
        }
    }
}

/// <linux/pr.h>'s enum pr_type: its own numbering, not SPC's type codes
/// (NVMe's, see ReservationType.prTypeCode).
public struct BlockPRType: Sendable, Equatable {
    public var rawValue: UInt32

    public init(_ scsi: ReservationType) {
        rawValue = UInt32(scsi.prTypeCode)
    }
}
