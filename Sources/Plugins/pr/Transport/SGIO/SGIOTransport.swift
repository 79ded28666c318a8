import CPRShim
import Glibc
import LockDriver
import PRProtocol

/// Sends CDBs to a SAN LU through the Linux SG_IO ioctl on a block device
/// (/dev/sdX, /dev/mapper/*) or an sg node (/dev/sgN): the production path.
/// PERSISTENT RESERVE OUT needs CAP_SYS_RAWIO.
/// Thread-safe: one command at a time, under `serial`.
public final class SGIOTransport: SCSITransport, @unchecked Sendable {
    /// Sense buffer size: the kernel's SCSI_SENSE_BUFFERSIZE.
    public static let senseCapacity = 96

    public var deviceDescription: String { device.path }
    /// Its own descriptor (and connection), its sends under its own lock.
    public var runsBesideOthers: Bool { true }

    private let device: DeviceFile
    private let driver: SGIODriver
    private let serial = Mutex()

    /// Opens `path` and checks that it answers SG_GET_VERSION_NUM.
    /// - Parameter driver: the ioctls; tests pass a fake.
    public init(path: String, driver: SGIODriver = KernelSGIO()) throws(LockError) {
        device = try DeviceFile(path: path, accepts: .scsiDevices)
        self.driver = driver
        if case .failure(let error) = driver.versionNumber(fd: device.fd) {
            throw .config("\(path) is not a SCSI device: it does not answer SG_GET_VERSION_NUM (\(error))")
        }
    }

    public func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        try send(cdb: command.cdb, direction: command.direction, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// The open descriptor and the command lock, for BlockPRTransport's
    /// ioctls on the same device.
    var fd: Int32 { device.fd }
    func serialized<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R { try serial.withLock(body) }

    /// The marshalling into sg_io_hdr_t, for any CDB: what the typed `send`
    /// uses, and what the tests drive with CDBs spelled out byte by byte.
    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        guard (6...16).contains(cdb.count) else {
            throw .invalid("\(device.path): a CDB of \(cdb.count) bytes cannot be sent with SG_IO (6 to 16 bytes)")
        }
        guard timeoutMilliseconds > 0 else {
            // The kernel would read 0 as "use the driver default" (60 s): say what we mean instead.
            throw .invalid("\(device.path): SCSI command timeout must be at least 1 ms")
        }
        var dataBuffer: [UInt8]
        let transferDirection: Int32
        switch direction {
        case .none:
            dataBuffer = []
            transferDirection = SG_DXFER_NONE
        case .fromDevice(let allocationLength):
            guard allocationLength >= 0, allocationLength <= Int(UInt32.max) else {
                throw .invalid("\(device.path): allocation length \(allocationLength) is out of range")
            }
            dataBuffer = [UInt8](repeating: 0, count: allocationLength)
            transferDirection = SG_DXFER_FROM_DEV
        case .toDevice(let parameters):
            guard parameters.count <= Int(UInt32.max) else {
                throw .invalid("\(device.path): parameter list of \(parameters.count) bytes is too long")
            }
            dataBuffer = parameters
            transferDirection = SG_DXFER_TO_DEV
        }
        var cdbBuffer = cdb
        var sense = [UInt8](repeating: 0, count: Self.senseCapacity)
        let opcode = cdb[0]

        return try serial.withLock { () throws(LockError) -> SCSIResponse in
            var header = sg_io_hdr_t()
            let outcome = cdbBuffer.withUnsafeMutableBufferPointer { cdbPtr in
                dataBuffer.withUnsafeMutableBufferPointer { dataPtr in
                    sense.withUnsafeMutableBufferPointer { sensePtr in
                        header.interface_id = Int32(UInt8(ascii: "S"))
                        header.dxfer_direction = transferDirection
                        header.cmd_len = UInt8(cdbPtr.count)
                        header.mx_sb_len = UInt8(sensePtr.count)
                        header.iovec_count = 0
                        header.dxfer_len = UInt32(dataPtr.count)
                        header.dxferp = dataPtr.count > 0 ? UnsafeMutableRawPointer(dataPtr.baseAddress) : nil
                        header.cmdp = cdbPtr.baseAddress
                        header.sbp = sensePtr.baseAddress
                        header.timeout = timeoutMilliseconds
                        header.flags = 0
                        return driver.execute(fd: device.fd, header: &header)
                    }
                }
            }
            if case .failure(let error) = outcome {
                throw ioctlError(error, opcode: opcode)
            }
            try checkDelivery(header, opcode: opcode, timeoutMilliseconds: timeoutMilliseconds)

            // resid = bytes the LU did not transfer. Outside the buffer it is
            // a driver bug, and no byte count derived from it can be trusted.
            let notTransferred = Int(header.resid)
            guard (0...dataBuffer.count).contains(notTransferred) else {
                throw .backend(
                    "\(device.path): SG_IO reported resid \(notTransferred) for a \(dataBuffer.count)-byte buffer (command \(Hex.literal(opcode)))"
                )
            }
            let transferred = dataBuffer.count - notTransferred
            let senseLength = min(Int(header.sb_len_wr), sense.count)
            let data = transferDirection == SG_DXFER_FROM_DEV ? Array(dataBuffer.prefix(transferred)) : []
            let senseData = senseLength > 0 ? SenseData(decoding: Array(sense.prefix(senseLength))) : nil
            return SCSIResponse(status: header.status, sense: senseData, data: data)
        }
    }

    private func ioctlError(_ error: Errno, opcode: UInt8) -> LockError {
        switch error.code {
        case EPERM, EACCES:
            return .backend(
                "\(device.path): SG_IO refused for command \(Hex.literal(opcode)) (\(error)); persistent reservations need CAP_SYS_RAWIO")
        case EINTR:
            return .backend(
                "\(device.path): SG_IO for command \(Hex.literal(opcode)) was interrupted; its outcome on the device is unknown")
        default:
            return .backend("\(device.path): SG_IO failed for command \(Hex.literal(opcode)): \(error)")
        }
    }

    /// Host and driver status describe the path to the LU, not the LU's
    /// answer: anything but "delivered" means we do not know what the LU did.
    private func checkDelivery(_ header: sg_io_hdr_t, opcode: UInt8, timeoutMilliseconds: UInt32) throws(LockError) {
        let host = header.host_status
        let driver = header.driver_status
        if host == SGIOStatus.hostTimeout || driver & 0x0f == SGIOStatus.driverTimeout {
            throw .backend(
                "\(device.path): command \(Hex.literal(opcode)) timed out after \(timeoutMilliseconds) ms (host status \(SGIOStatus.hostName(host)), driver status \(SGIOStatus.driverName(driver)))"
            )
        }
        if host != 0 {
            throw .backend(
                "\(device.path): command \(Hex.literal(opcode)) was not delivered: host status \(Hex.literal(UInt8(truncatingIfNeeded: host))) (\(SGIOStatus.hostName(host)))"
            )
        }
        let driverCode = driver & 0x0f
        if driverCode != 0 && driverCode != SGIOStatus.driverSense {
            throw .backend(
                "\(device.path): command \(Hex.literal(opcode)) failed in the driver: driver status \(Hex.literal(UInt8(truncatingIfNeeded: driver))) (\(SGIOStatus.driverName(driver)))"
            )
        }
    }
}
