import Glibc
import LockDriver
import PRProtocol

/// Persistent reservations on an NVMe namespace (/dev/nvmeXnY), carried
/// to the decision layer as the SCSI commands it speaks, so one algorithm
/// and one state format serve SCSI and NVMe (the six reservation types are
/// the same; ReservationType.prTypeCode maps the numbers):
///
/// - PR OUT through the block layer's PR ioctls, which nvme turns into
///   Reservation Register / Acquire / Release, with two exceptions the
///   ioctls cannot express on NVMe (drivers/nvme/host/pr.c): unregistering
///   (the kernel sends "replace with key 0", which leaves the host
///   registered with key 0) goes as Reservation Register, action
///   Unregister, through the passthrough ioctl; and REGISTER AND IGNORE
///   on a host already registered with another key (the kernel sends
///   "register", which NVMe refuses then) is sent again as "replace".
/// - READ KEYS and READ RESERVATION through Linux 6.19's read ioctls when
///   the kernel has them, else through an NVMe Reservation Report (the
///   passthrough ioctl, extended data structure: 128-bit host IDs),
///   chosen once when the device is opened (`reads`).
///
/// The registrant in NVMe is the host (its host ID), across all its
/// controllers, not an I_T nexus: one key per host per namespace.
public final class NVMeTransport: SCSITransport, @unchecked Sendable {
    /// How READ KEYS and READ RESERVATION reach the namespace.
    public enum Reads: Sendable, Equatable {
        /// IOC_PR_READ_KEYS / IOC_PR_READ_RESERVATION (Linux 6.19+).
        case kernelIoctls
        /// NVMe Reservation Report through NVME_IOCTL_IO_CMD.
        case reservationReport
    }

    public var deviceDescription: String { device.path }
    /// Its own descriptor (and connection), its sends under its own lock.
    public var runsBesideOthers: Bool { true }
    public let reads: Reads
    public let namespaceID: UInt32

    private let device: DeviceFile
    private let blockDriver: BlockPRDriver
    private let nvmeDriver: NVMeDriver
    private let serial = Mutex()

    init(device: DeviceFile, namespaceID: UInt32, reads: Reads, blockDriver: BlockPRDriver, nvmeDriver: NVMeDriver) {
        self.device = device
        self.namespaceID = namespaceID
        self.reads = reads
        self.blockDriver = blockDriver
        self.nvmeDriver = nvmeDriver
    }

    /// Opens `path` and asks whether it is an NVMe namespace (NVME_IOCTL_ID)
    /// and whether the kernel has the read ioctls; nil if it is no NVMe
    /// namespace. `unavailableReads` says why the read ioctls are not used.
    public static func open(
        path: String, blockDriver: BlockPRDriver = KernelBlockPR(), nvmeDriver: NVMeDriver = KernelNVMe()
    ) throws(LockError) -> (transport: NVMeTransport, unavailableReads: String?)? {
        let device = try DeviceFile(path: path, accepts: .scsiDevices)
        let id = nvmeDriver.namespaceID(fd: device.fd)
        // nvme's multipath head device answers every ioctl, this one too,
        // with EWOULDBLOCK while no path is live (the lab saw it with the
        // target gone): an NVMe namespace that cannot be reached now.
        if id == -EWOULDBLOCK {
            throw .backend(
                "\(path): an NVMe namespace with no live path to its target (NVME_IOCTL_ID: \(Errno(EWOULDBLOCK))); is the target reachable?"
            )
        }
        guard id > 0 else { return nil }
        let why = KernelPRReads.unavailable(driver: blockDriver, fd: device.fd)
        let transport = NVMeTransport(
            device: device, namespaceID: UInt32(id), reads: why == nil ? .kernelIoctls : .reservationReport,
            blockDriver: blockDriver, nvmeDriver: nvmeDriver)
        return (transport, why)
    }

    public func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        try serial.withLock { () throws(LockError) -> SCSIResponse in
            switch command {
            case .prIn(.reportCapabilities, _):
                throw .backend(
                    "\(device.path): PR IN REPORT CAPABILITIES is SCSI's; an NVMe namespace reports its reservation capabilities in Identify Namespace (RESCAP)"
                )
            case .prIn(let action, _):
                switch reads {
                case .kernelIoctls: return try KernelPRReads(driver: blockDriver, fd: device.fd, device: device.path).send(action)
                case .reservationReport: return try reportAsPRIn(action, timeoutMilliseconds: timeoutMilliseconds)
                }
            case let .prOut(action, type, key, serviceActionKey):
                return try prOut(action, type: type, key: key, serviceActionKey: serviceActionKey, timeoutMilliseconds: timeoutMilliseconds)
            case .write10, .testUnitReady:
                throw .invalid("\(device.path): \(command.name) is a SCSI command; it is not sent to an NVMe namespace")
            }
        }
    }

    // MARK: PR OUT

    private func prOut(
        _ action: PROutAction, type: ReservationType?, key: UInt64, serviceActionKey: UInt64, timeoutMilliseconds: UInt32
    ) throws(LockError) -> SCSIResponse {
        switch action {
        case .register where serviceActionKey == 0, .registerAndIgnore where serviceActionKey == 0:
            return try unregister(currentKey: key, ignoreKey: action == .registerAndIgnore, timeoutMilliseconds: timeoutMilliseconds)
        case .registerAndIgnore:
            let register = BlockPRRequest.register(oldKey: 0, newKey: serviceActionKey, ignoreExistingKey: true)
            let first = try ioctl(register)
            guard first.status == 0x18 else { return first }
            // Registered already, with another key: NVMe's "register" refuses
            // that whatever IEKEY says; "replace" with IEKEY does what SCSI's
            // REGISTER AND IGNORE does. (A nonzero old key makes the kernel
            // send "replace"; IEKEY makes the device ignore it.)
            return try ioctl(.register(oldKey: serviceActionKey, newKey: serviceActionKey, ignoreExistingKey: true))
        default:
            return try ioctl(BlockPRRequest(action, type: type, key: key, serviceActionKey: serviceActionKey))
        }
    }

    private func ioctl(_ request: BlockPRRequest) throws(LockError) -> SCSIResponse {
        try Self.response(blockDriver.call(fd: device.fd, request), command: request.ioctlName, device: device.path)
    }

    /// Reservation Register, action Unregister (RREGA 001b), with CRKEY =
    /// `currentKey` or IEKEY. A host that is not registered gets a
    /// reservation conflict; with IEKEY that is SCSI's "unregistering a
    /// nexus that holds nothing does nothing": GOOD.
    private func unregister(currentKey: UInt64, ignoreKey: Bool, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        var data = LittleEndian.bytes(currentKey) + LittleEndian.bytes(UInt64(0))
        let command = NVMeIOCommand(
            opcode: NVMeIOCommand.reservationRegister, namespaceID: namespaceID,
            cdw10: 0x1 | (ignoreKey ? 1 << 3 : 0), timeoutMilliseconds: timeoutMilliseconds)
        let result = nvmeDriver.ioCommand(fd: device.fd, command, data: &data)
        let response = try Self.response(result, command: "Reservation Register (unregister)", device: device.path, passthrough: true)
        return ignoreKey && response.status == 0x18 ? SCSIResponse(status: 0) : response
    }

    /// What a PR ioctl or a passthrough command returned, as the SCSI
    /// status the decision layer reads: GOOD, RESERVATION CONFLICT, or an
    /// error naming the device and the command. The PR ioctls return
    /// PR_STS_* codes since Linux 6.5 (0x18: conflict; 0x10000 and up:
    /// path failures) and nvme's own status before (0x83: conflict, with
    /// the DNR bit 0x4000); the passthrough ioctl always returns the NVMe
    /// status.
    public static func response(
        _ result: Int32, command: String, device: String, passthrough: Bool = false
    ) throws(LockError) -> SCSIResponse {
        if result == 0 { return SCSIResponse(status: 0x00) }
        if result < 0 {
            let error = Errno(-result)
            switch -result {
            case ENOTTY, EOPNOTSUPP:
                throw .backend(
                    "\(device): \(command) is not supported here (\(error)): no NVMe reservation support in this kernel or namespace")
            case EPERM, EACCES:
                throw .backend("\(device): \(command) refused (\(error)): reservations need CAP_SYS_ADMIN and a device opened for writing")
            case EINVAL:
                throw .backend("\(device): \(command) refused by the namespace (\(error): invalid field)")
            case EAGAIN, ENODEV, ENXIO, EIO:
                throw .backend("\(device): \(command) failed: \(error) (no live path to the NVMe target?)")
            default:
                throw .backend("\(device): \(command) failed: \(error)")
            }
        }
        let code = result & 0x7FF
        if code == 0x83 || (!passthrough && result == 0x18) { return SCSIResponse(status: 0x18) }
        if !passthrough && result >> 16 != 0 {
            throw .backend(
                "\(device): \(command) was not delivered: path status 0x\(String(result, radix: 16)) (no live path to the NVMe target?)")
        }
        throw .backend("\(device): \(command) failed with NVMe status 0x\(String(result, radix: 16))\(Self.statusName(code))")
    }

    static func statusName(_ code: Int32) -> String {
        switch code {
        case 0x002: return " (invalid field)"
        case 0x00B: return " (invalid namespace)"
        case 0x018: return " (host identifier inconsistent format)"
        case 0x001: return " (invalid opcode: no reservation support)"
        default: return ""
        }
    }

    // MARK: PR IN through a Reservation Report

    /// The most a report may need: 1023 extended entries.
    static let maxReportSize = 64 * 1024

    private func reportAsPRIn(_ action: PRInAction, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        // READ FULL STATUS is not translated: answered as by a device without it.
        guard action != .readFullStatus else { return .invalidFieldInCDB }
        let report = try reservationReport(timeoutMilliseconds: timeoutMilliseconds)
        switch action {
        case .readKeys: return SCSIResponse(status: 0, data: report.registeredKeys.encoded)
        default: return SCSIResponse(status: 0, data: try report.reservationStatus().encoded)
        }
    }

    /// The whole report: extended first (128-bit host IDs: what nvmet and
    /// the kernel's own fabrics host use), the 64-bit layout if the
    /// controller refuses that, asked again with room for every entry.
    func reservationReport(timeoutMilliseconds: UInt32) throws(LockError) -> NVMeReservationReport {
        var extended = true
        var size = 4096
        while true {
            var data = [UInt8](repeating: 0, count: size)
            let command = NVMeIOCommand(
                opcode: NVMeIOCommand.reservationReport, namespaceID: namespaceID,
                cdw10: UInt32(size / 4 - 1), cdw11: extended ? 1 : 0, timeoutMilliseconds: timeoutMilliseconds)
            let result = nvmeDriver.ioCommand(fd: device.fd, command, data: &data)
            if extended && result > 0 && (result & 0x7FF == 0x018 || result & 0x7FF == 0x002) {
                extended = false
                continue
            }
            let name = extended ? "Reservation Report (extended)" : "Reservation Report"
            let response = try Self.response(result, command: name, device: device.path, passthrough: true)
            guard response.status == 0 else { throw .backend("\(device.path): \(name) got a reservation conflict") }
            let report: NVMeReservationReport
            do { report = try NVMeReservationReport(parsing: data, extended: extended) } catch {
                throw LockError(error.kind, "\(device.path): \(error.message)")
            }
            if report.isComplete { return report }
            guard report.completeSize > size, report.completeSize <= Self.maxReportSize else {
                throw .backend(
                    "\(device.path): \(name) lists \(report.registrantCount) registrants; only \(report.registrants.count) fit in \(size) bytes"
                )
            }
            size = (report.completeSize + 3) / 4 * 4
        }
    }
}
