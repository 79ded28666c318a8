import Foundation
import Glibc
import LockDriver
import PRProtocol
import PRTransport

/// FAKE: plays the kernel's side of the block-layer PR ioctls for
/// BlockPRTransport, because this machine has no block device with PR
/// support. It does what Linux does, as read in block/ioctl.c,
/// drivers/scsi/sd.c and drivers/md/dm.c: sd turns each ioctl into one
/// PERSISTENT RESERVE OUT on its path, with APTPL set on every REGISTER,
/// and returns the SCSI status (here as Linux 6.1: status byte, host byte
/// << 16); dm-multipath sends REGISTER down every path and unregisters the
/// paths already done when one fails, and sends everything else down its
/// current path. One path: a plain sd disk. Paths are I_T nexuses of a
/// FakePRDevice.
public final class FakeBlockPR: BlockPRDriver, @unchecked Sendable {
    private let lock = NSLock()
    private let device: FakePRDevice
    private let paths: [FakePRDevice.Nexus]
    private var recorded: [BlockPRRequest] = []
    /// The path non-REGISTER ioctls go down (dm: the current path).
    public var currentPath = 0
    /// Answers the next ioctl with this value (an errno as -errno, or a
    /// status) without reaching the device.
    public var nextResult: Int32?
    /// Answers Linux 6.19's read ioctls (sd's pr_read_keys and
    /// pr_read_reservation: READ KEYS / READ RESERVATION on the current
    /// path); false: a kernel before 6.19 (ENOTTY).
    public var answersReadIoctls = false
    /// How many read ioctls were answered.
    public private(set) var readCalls = 0

    public init(device: FakePRDevice, paths: [FakePRDevice.Nexus]) {
        self.device = device
        self.paths = paths
    }

    public var requests: [BlockPRRequest] { lock.withLock { recorded } }

    public func call(fd: Int32, _ request: BlockPRRequest) -> Int32 {
        let injected: Int32? = lock.withLock {
            recorded.append(request)
            defer { nextResult = nil }
            return nextResult
        }
        if let injected { return injected }
        switch request {
        case let .register(oldKey, newKey, ignore):
            // dm_pr_register: every path, stopping at the first failure;
            // then, if a key was being registered, every path unregisters it.
            for path in paths {
                let status = prOut(ignore ? 0x06 : 0x00, type: 0, key: oldKey, serviceActionKey: newKey, aptpl: true, on: path)
                guard status == 0 else {
                    if newKey != 0 {
                        for p in paths { _ = prOut(0x00, type: 0, key: newKey, serviceActionKey: 0, on: p) }
                    }
                    return status
                }
            }
            return 0
        case let .reserve(key, type):
            return prOut(0x01, type: Self.scsiType(type), key: key, serviceActionKey: 0, on: paths[currentPath])
        case let .release(key, type):
            return prOut(0x02, type: Self.scsiType(type), key: key, serviceActionKey: 0, on: paths[currentPath])
        case let .preempt(key, victim, type, abort):
            return prOut(abort ? 0x05 : 0x04, type: Self.scsiType(type), key: key, serviceActionKey: victim, on: paths[currentPath])
        case let .clear(key):
            return prOut(0x03, type: 0, key: key, serviceActionKey: 0, on: paths[currentPath])
        }
    }

    public func readKeys(fd: Int32, capacity: Int) -> Result<KernelPRKeys, BlockPRFailure> {
        guard answersReadIoctls else { return .failure(BlockPRFailure(-ENOTTY)) }
        lock.withLock { readCalls += 1 }
        let keys = device.registeredKeys
        return .success(KernelPRKeys(generation: device.generation, keys: Array(keys.prefix(capacity)), available: keys.count))
    }

    public func readReservation(fd: Int32) -> Result<KernelPRReservation, BlockPRFailure> {
        guard answersReadIoctls else { return .failure(BlockPRFailure(-ENOTTY)) }
        lock.withLock { readCalls += 1 }
        guard let r = device.reservation, let type = ReservationType(rawValue: r.type) else {
            return .success(KernelPRReservation(generation: device.generation, key: 0, type: 0))
        }
        return .success(
            KernelPRReservation(generation: device.generation, key: device.key(of: r.holder) ?? 0, type: UInt32(type.prTypeCode)))
    }

    private func prOut(
        _ serviceAction: UInt8, type: UInt8, key: UInt64, serviceActionKey: UInt64,
        aptpl: Bool = false, on path: FakePRDevice.Nexus
    ) -> Int32 {
        var params = [UInt8](repeating: 0, count: 24)
        for i in 0..<8 {
            params[i] = UInt8(truncatingIfNeeded: key >> (56 - 8 * UInt64(i)))
            params[8 + i] = UInt8(truncatingIfNeeded: serviceActionKey >> (56 - 8 * UInt64(i)))
        }
        params[20] = aptpl ? 0x01 : 0x00
        let cdb: [UInt8] = [0x5F, serviceAction, type, 0, 0, 0, 0, 0, 24, 0]
        return Int32(device.execute(cdb: cdb, dataOut: params, from: path).status)
    }

    /// sd's block_pr_type_to_scsi.
    static func scsiType(_ type: BlockPRType) -> UInt8 {
        [1: 1, 2: 3, 3: 5, 4: 6, 5: 7, 6: 8][type.rawValue] ?? 0
    }
}
