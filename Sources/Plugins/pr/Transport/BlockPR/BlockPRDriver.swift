import CPRShim
import Glibc
import LockDriver
import PRProtocol

/// The block layer's PR ioctls, as BlockPRTransport and NVMeTransport need
/// them. The kernel implementation is the production path; tests install
/// a fake that plays sd's, dm-multipath's or nvme's part, because this
/// machine has no block device with PR support.
public protocol BlockPRDriver: AnyObject, Sendable {
    /// One ioctl on `fd`: 0, a positive status the kernel passed up from
    /// the device, or a negative errno (the ioctl's own return value).
    func call(fd: Int32, _ request: BlockPRRequest) -> Int32

    /// IOC_PR_READ_KEYS (Linux 6.19) with room for `capacity` keys.
    func readKeys(fd: Int32, capacity: Int) -> Result<KernelPRKeys, BlockPRFailure>

    /// IOC_PR_READ_RESERVATION (Linux 6.19).
    func readReservation(fd: Int32) -> Result<KernelPRReservation, BlockPRFailure>
}

extension BlockPRDriver {
    /// A kernel before 6.19 does not know the read ioctls: the block layer answers ENOTTY.
    public func readKeys(fd: Int32, capacity: Int) -> Result<KernelPRKeys, BlockPRFailure> { .failure(BlockPRFailure(-ENOTTY)) }
    public func readReservation(fd: Int32) -> Result<KernelPRReservation, BlockPRFailure> { .failure(BlockPRFailure(-ENOTTY)) }
}

/// What IOC_PR_READ_KEYS answered: `available` is how many keys the device
/// has (more than `keys.count` when the room given was too small).
public struct KernelPRKeys: Sendable, Equatable {
    public var generation: UInt32
    public var keys: [UInt64]
    public var available: Int
    public init(generation: UInt32, keys: [UInt64], available: Int) {
        self.generation = generation
        self.keys = keys
        self.available = available
    }
}

/// What IOC_PR_READ_RESERVATION answered; `type` is a pr_type, 0 for none.
public struct KernelPRReservation: Sendable, Equatable {
    public var generation: UInt32
    public var key: UInt64
    public var type: UInt32
    public init(generation: UInt32, key: UInt64, type: UInt32) {
        self.generation = generation
        self.key = key
        self.type = type
    }
}

/// A PR ioctl's nonzero return: a negative errno or a positive device status.
public struct BlockPRFailure: Error, Sendable, Equatable {
    public var result: Int32
    public init(_ result: Int32) { self.result = result }
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

    public func readKeys(fd: Int32, capacity: Int) -> Result<KernelPRKeys, BlockPRFailure> {
        var keys = [UInt64](repeating: 0, count: max(capacity, 1))
        var generation: UInt32 = 0, available: UInt32 = 0
        let rc = keys.withUnsafeMutableBufferPointer {
            lockmgr_pr_read_keys(fd, &generation, $0.baseAddress, UInt32(clamping: capacity), &available)
        }
        guard rc == 0 else { return .failure(BlockPRFailure(rc)) }
        return .success(
            KernelPRKeys(generation: generation, keys: Array(keys.prefix(min(capacity, Int(available)))), available: Int(available)))
    }

    public func readReservation(fd: Int32) -> Result<KernelPRReservation, BlockPRFailure> {
        var key: UInt64 = 0
        var generation: UInt32 = 0, type: UInt32 = 0
        let rc = lockmgr_pr_read_reservation(fd, &key, &generation, &type)
        guard rc == 0 else { return .failure(BlockPRFailure(rc)) }
        return .success(KernelPRReservation(generation: generation, key: key, type: type))
    }
}
