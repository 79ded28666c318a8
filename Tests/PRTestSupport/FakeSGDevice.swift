import CPRShim
import Foundation
import LockDriver
import PRProtocol
import PRTransport

/// FAKE: plays the kernel's side of SG_IO for SGIOTransport, because this
/// machine has no sg driver. It reads the request from the `sg_io_hdr_t`
/// exactly as the kernel would (interface_id, direction, cmdp/cmd_len,
/// dxferp/dxfer_len, sbp/mx_sb_len, timeout), records it, and answers from
/// a FakePRDevice as one I_T nexus — or injects a fault.
public final class FakeSGDevice: SGIODriver, @unchecked Sendable {
    /// What the transport put into sg_io_hdr_t, copied out of its buffers.
    public struct Request: Sendable {
        public var fd: Int32
        public var interfaceID: Int32
        public var direction: Int32
        public var cdb: [UInt8]
        public var dataLength: UInt32
        /// The data-out bytes (direction TO_DEV).
        public var dataOut: [UInt8]
        public var hasDataBuffer: Bool
        public var senseCapacity: UInt8
        public var timeoutMilliseconds: UInt32
    }

    public enum Fault: Sendable {
        /// ioctl() itself fails with this errno.
        case ioctlFails(Int32)
        /// The command completes with these host/driver statuses and no LU answer.
        case transport(hostStatus: UInt16, driverStatus: UInt16)
        /// The LU answers, but resid claims more than the buffer (a driver bug).
        case bogusResid
    }

    private let lock = NSLock()
    private let device: FakePRDevice
    private let nexus: FakePRDevice.Nexus
    private var recorded: [Request] = []
    /// What SG_GET_VERSION_NUM answers: the sg driver's 30527, or an errno.
    public var versionAnswer: Result<Int32, Errno> = .success(30527)
    /// Applied to the next command only.
    public var nextFault: Fault?

    public init(device: FakePRDevice, nexus: FakePRDevice.Nexus) {
        self.device = device
        self.nexus = nexus
    }

    public var requests: [Request] { lock.withLock { recorded } }

    public func versionNumber(fd: Int32) -> Result<Int32, Errno> { versionAnswer }

    public func execute(fd: Int32, header: inout sg_io_hdr_t) -> Result<Void, Errno> {
        let request = Self.read(header, fd: fd)
        let fault: Fault? = lock.withLock {
            recorded.append(request)
            defer { nextFault = nil }
            return nextFault
        }
        // The kernel refuses a header it does not understand.
        guard request.interfaceID == Int32(UInt8(ascii: "S")) else { return .failure(Errno(ENOSYS)) }
        switch fault {
        case .ioctlFails(let code):
            return .failure(Errno(code))
        case .transport(let host, let driver):
            header.status = 0
            header.host_status = host
            header.driver_status = driver
            header.sb_len_wr = 0
            header.resid = Int32(clamping: header.dxfer_len)
            return .success(())
        case .bogusResid, nil:
            break
        }

        let allocation = request.direction == SG_DXFER_FROM_DEV ? Int(request.dataLength) : 0
        let response = device.execute(
            cdb: request.cdb, dataOut: request.dataOut,
            allocationLength: allocation, from: nexus)
        header.status = response.status
        header.masked_status = response.status >> 1
        header.host_status = 0
        let sense = response.sense?.fixedFormat ?? []
        header.driver_status = sense.isEmpty ? 0 : 0x08  // DRIVER_SENSE
        let senseLength = min(sense.count, Int(header.mx_sb_len))
        if let sbp = header.sbp, senseLength > 0 {
            sbp.update(from: sense, count: senseLength)
        }
        header.sb_len_wr = UInt8(senseLength)
        let dataLength = min(response.data.count, allocation)
        if let dxferp = header.dxferp, dataLength > 0 {
            dxferp.copyMemory(from: response.data, byteCount: dataLength)
        }
        let transferred = request.direction == SG_DXFER_FROM_DEV ? dataLength : Int(header.dxfer_len)
        header.resid = Int32(clamping: Int(header.dxfer_len) - transferred)
        if case .bogusResid = fault { header.resid = Int32(clamping: Int(header.dxfer_len) + 100) }
        header.duration = 1
        header.info = response.status == 0 ? 0 : 0x01  // SG_INFO_CHECK
        return .success(())
    }

    private static func read(_ header: sg_io_hdr_t, fd: Int32) -> Request {
        let cdb = header.cmdp.map { Array(UnsafeBufferPointer(start: $0, count: Int(header.cmd_len))) } ?? []
        var dataOut: [UInt8] = []
        if header.dxfer_direction == SG_DXFER_TO_DEV, let dxferp = header.dxferp {
            dataOut = Array(UnsafeRawBufferPointer(start: dxferp, count: Int(header.dxfer_len)))
        }
        return Request(
            fd: fd, interfaceID: header.interface_id, direction: header.dxfer_direction,
            cdb: cdb, dataLength: header.dxfer_len, dataOut: dataOut,
            hasDataBuffer: header.dxferp != nil, senseCapacity: header.mx_sb_len,
            timeoutMilliseconds: header.timeout)
    }
}
