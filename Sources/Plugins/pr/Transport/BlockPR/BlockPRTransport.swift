import Glibc
import LockDriver
import PRProtocol

/// Persistent reservations through the kernel's block-layer PR API: every
/// PERSISTENT RESERVE OUT becomes the matching IOC_PR_* ioctl on the block
/// device, so the driver underneath carries it. On dm-multipath that is
/// the point: the kernel registers the key on every path (and rolls back
/// if one fails), where SG_IO reaches one path only. Everything else
/// goes through SG_IO on the same device, which dm-multipath passes to
/// one path (enough: the LU answers PR IN the same on every path), but
/// READ KEYS and READ RESERVATION, which go through Linux 6.19's read
/// ioctls when the kernel has them (`kernelReads`).
///
/// The answers come back as SCSIResponses, so the one decoder and the one
/// decision layer above see the same thing from every transport.
public final class BlockPRTransport: SCSITransport, @unchecked Sendable {
    public var deviceDescription: String { sgio.deviceDescription }
    /// Its own descriptor (and connection), its sends under its own lock.
    public var runsBesideOthers: Bool { true }

    private let sgio: SGIOTransport
    private let driver: BlockPRDriver
    private let kernelReads: Bool

    /// - Parameter sgio: the same device through SG_IO (opened, checked).
    /// - Parameter driver: the ioctls; tests pass a fake.
    /// - Parameter kernelReads: READ KEYS / READ RESERVATION through the
    ///   read ioctls (KernelPRReads.unavailable said they answer).
    public init(sgio: SGIOTransport, driver: BlockPRDriver = KernelBlockPR(), kernelReads: Bool = false) {
        self.sgio = sgio
        self.driver = driver
        self.kernelReads = kernelReads
    }

    public func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        if kernelReads, case .prIn(let action, _) = command, action != .reportCapabilities {
            let reads = KernelPRReads(driver: driver, fd: sgio.fd, device: deviceDescription)
            return try sgio.serialized { () throws(LockError) -> SCSIResponse in try reads.send(action) }
        }
        guard case let .prOut(action, type, key, serviceActionKey) = command else {
            return try sgio.send(command, timeoutMilliseconds: timeoutMilliseconds)
        }
        let request = try BlockPRRequest(action, type: type, key: key, serviceActionKey: serviceActionKey)
        // The kernel applies its own timeout (sd: SD_TIMEOUT); one ioctl at
        // a time on this transport, like SG_IO. The ioctl keeps the sense
        // data, so a CHECK CONDITION may be a UNIT ATTENTION the failed
        // command used up (a preempted path hears one): send it again, at
        // most `maxAttempts` times in all, as PRDevice does for SG_IO. A
        // command answered CHECK CONDITION was not executed; a real refusal
        // (APTPL) fails the same way each time.
        var result: Int32 = 0
        for _ in 0..<Self.maxAttempts {
            result = sgio.serialized { driver.call(fd: sgio.fd, request) }
            guard Self.isCheckCondition(result) else { break }
        }
        return try Self.response(result, request: request, device: deviceDescription)
    }

    static let maxAttempts = 4

    static func isCheckCondition(_ result: Int32) -> Bool {
        result > 0 && (result >> 16) & 0xFF == 0 && result & 0xFF == 0x02
    }

    /// What an IOC_PR_* return value means. sd returns the SCSI result
    /// (status byte, host byte << 16) before Linux 6.5 and a PR_STS_* code
    /// since (the same numbers for what matters here: 0x18 is RESERVATION
    /// CONFLICT, host bytes are path failures); negative values are errnos.
    public static func response(_ result: Int32, request: BlockPRRequest, device: String) throws(LockError) -> SCSIResponse {
        let name = request.ioctlName
        if result == 0 { return SCSIResponse(status: 0x00) }
        if result < 0 {
            let error = Errno(-result)
            switch -result {
            case ENOTTY, EOPNOTSUPP:
                throw .backend(
                    "\(device): \(name) is not supported here (\(error)): the device's driver has no persistent reservation support in this kernel"
                )
            case EPERM, EACCES:
                throw .backend(
                    "\(device): \(name) refused (\(error)): persistent reservations need CAP_SYS_ADMIN and a device opened for writing")
            case EINVAL:
                throw .backend(
                    "\(device): \(name) refused by the device (\(error): ILLEGAL REQUEST, invalid field; sd sets APTPL on every REGISTER, which a device that cannot persist through power loss refuses)"
                )
            default:
                throw .backend("\(device): \(name) failed: \(error)")
            }
        }
        let host = (result >> 16) & 0xFF
        let status = UInt8(truncatingIfNeeded: result & 0xFF)
        if host != 0 {
            // dm-multipath sends a REGISTER down every path and, when one
            // fails, unregisters the key on all of them: say so, it is why
            // nothing is left registered.
            let multipath =
                if case .register(_, let newKey, _) = request, newKey != 0 {
                    "; on a dm-multipath map a path is down: the kernel registers on every path and, when one fails, unregisters the key on all of them, so nothing is registered"
                } else { "" }
            throw .backend(
                "\(device): \(name) was not delivered: host status \(Hex.byte(UInt8(truncatingIfNeeded: host))) (\(SGIOStatus.hostName(UInt16(host))))\(multipath)"
            )
        }
        switch status {
        case 0x18:
            return SCSIResponse(status: 0x18)
        case 0x02:
            // The kernel keeps the sense data (it logs it): say what we know.
            throw .backend(
                "\(device): \(name) failed with CHECK CONDITION (the kernel logs the sense data: dmesg; sd sets APTPL on every REGISTER, which a device that cannot persist through power loss refuses)"
            )
        default:
            throw .backend("\(device): \(name) failed with status \(Hex.byte(status)) (ioctl returned \(result))")
        }
    }
}
