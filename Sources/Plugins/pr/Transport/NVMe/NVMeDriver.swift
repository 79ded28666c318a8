import CPRShim
import LockDriver
import PRProtocol

/// The NVMe ioctls NVMeTransport needs besides the block layer's PR
/// ioctls. The kernel implementation is the production path; tests
/// install a fake namespace.
public protocol NVMeDriver: AnyObject, Sendable {
    /// NVME_IOCTL_ID: the namespace id (> 0) of an NVMe namespace block
    /// device, or a negative errno for anything else.
    func namespaceID(fd: Int32) -> Int32

    /// NVME_IOCTL_IO_CMD: one I/O command, `data` going in or out as the
    /// opcode says. Returns the NVMe status (0 on success) or -errno.
    func ioCommand(fd: Int32, _ command: NVMeIOCommand, data: inout [UInt8]) -> Int32
}

/// The fields of an NVMe I/O command the pr plugin sets.
public struct NVMeIOCommand: Sendable, Equatable {
    public var opcode: UInt8
    public var namespaceID: UInt32
    public var cdw10: UInt32
    public var cdw11: UInt32 = 0
    public var timeoutMilliseconds: UInt32

    public init(opcode: UInt8, namespaceID: UInt32, cdw10: UInt32, cdw11: UInt32 = 0, timeoutMilliseconds: UInt32) {
        self.opcode = opcode
        self.namespaceID = namespaceID
        self.cdw10 = cdw10
        self.cdw11 = cdw11
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Reservation Register (0x0D).
    public static let reservationRegister: UInt8 = 0x0D
    /// Reservation Report (0x0E).
    public static let reservationReport: UInt8 = 0x0E
}

/// The real ioctls, through the C shim.
public final class KernelNVMe: NVMeDriver, Sendable {
    public init() {}

    public func namespaceID(fd: Int32) -> Int32 { lockmgr_nvme_namespace_id(fd) }

    public func ioCommand(fd: Int32, _ command: NVMeIOCommand, data: inout [UInt8]) -> Int32 {
        data.withUnsafeMutableBytes {
            lockmgr_nvme_io_command(
                fd, command.opcode, command.namespaceID, command.cdw10, command.cdw11,
                $0.baseAddress, UInt32(clamping: $0.count), command.timeoutMilliseconds)
        }
    }
}
