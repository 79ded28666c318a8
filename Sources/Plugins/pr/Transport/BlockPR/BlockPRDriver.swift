import CPRShim
import LockDriver
import PRProtocol

/// The block layer's PR ioctls, as BlockPRTransport needs them. The kernel
/// implementation is the production path; tests install a fake that plays
/// sd's and dm-multipath's part, because this machine has no block device
/// with PR support.
public protocol BlockPRDriver: AnyObject, Sendable {
    /// One ioctl on `fd`: 0, a positive status the kernel passed up from
    /// the device, or a negative errno (the ioctl's own return value).
    func call(fd: Int32, _ request: BlockPRRequest) -> Int32
}

/// The real ioctls, through the C shim.
public final class KernelBlockPR: BlockPRDriver, Sendable {
    public init() {}

    public func call(fd: Int32, _ request: BlockPRRequest) -> Int32 {
        switch request {
        case let .register(oldKey, newKey, ignore):
            return lockmgr_pr_register(fd, oldKey, newKey, ignore ? 1 : 0)  // PR_FL_IGNORE_KEY
        case let .reserve(key, type):
            return lockmgr_pr_reserve(fd, key, type.rawValue, 0)
        case let .release(key, type):
            return lockmgr_pr_release(fd, key, type.rawValue, 0)
        case let .preempt(key, victimKey, type, abort):
            return lockmgr_pr_preempt(fd, key, victimKey, type.rawValue, abort ? 1 : 0)
        case let .clear(key):
            return lockmgr_pr_clear(fd, key)
        }
    }
}
