import Glibc
import LockDriver
import PRProtocol

/// Sends PERSISTENT RESERVE IN/OUT through a running qemu-pr-helper: the
/// privileged helper does the SG_IO (and, when built with libmpathpersist,
/// the multipath bookkeeping) on the device descriptor we pass it, so the
/// plugin itself needs neither root nor CAP_SYS_RAWIO.
///
/// One command at a time per connection (the protocol forbids more). After
/// any failure the connection is dropped — a late reply must never be read
/// as the answer to the next command — and the next command reconnects.
/// Thread-safe: all mutable state is touched only under `serial`.
public final class PRHelperTransport: SCSITransport, @unchecked Sendable {
    public let socketPath: String
    public var deviceDescription: String { device.path }
    /// Its own descriptor (and connection), its sends under its own lock.
    public var runsBesideOthers: Bool { true }

    private let device: DeviceFile
    private let serial = Mutex()
    private var connection: UnixSocketConnection?
    private var negotiatedFeatures: UInt32 = 0
    /// What the helper said it supports at the last negotiation.
    public var helperFeatures: UInt32 { serial.withLock { negotiatedFeatures } }

    /// Opens the device and connects to the helper, failing early when either is unusable.
    /// - Parameter timeoutMilliseconds: bounds connecting and feature negotiation.
    public init(socketPath: String, devicePath: String, timeoutMilliseconds: UInt32) throws(LockError) {
        self.socketPath = socketPath
        device = try DeviceFile(path: devicePath, accepts: .scsiDevicesOrRegularFiles)
        try serial.withLock { () throws(LockError) in
            connection = try connect(timeout: timeoutMilliseconds, deadline: Deadline(millisecondsFromNow: timeoutMilliseconds))
        }
    }

    public func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        try send(cdb: command.cdb, request: try request(for: command), timeoutMilliseconds: timeoutMilliseconds)
    }

    /// One exchange with the helper: `cdb` and what `request` says travels
    /// with it. The typed `send` derives both from the command; the tests
    /// drive it with CDBs spelled out byte by byte.
    func send(cdb: [UInt8], request: Request, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        guard timeoutMilliseconds > 0 else {
            throw .invalid("\(device.path): SCSI command timeout must be at least 1 ms")
        }
        return try serial.withLock { () throws(LockError) -> SCSIResponse in
            let deadline = Deadline(millisecondsFromNow: timeoutMilliseconds)
            do throws(LockError) {
                let live: UnixSocketConnection
                if let existing = connection {
                    live = existing
                } else {
                    live = try connect(timeout: timeoutMilliseconds, deadline: deadline)
                    connection = live
                }
                return try exchange(on: live, cdb: cdb, request: request, deadline: deadline, timeout: timeoutMilliseconds)
            } catch {
                connection = nil
                throw error
            }
        }
    }

    /// What one request carries besides its CDB.
    struct Request {
        var parameterList: [UInt8]
        var allocationLength: Int
    }

    /// The helper forwards PERSISTENT RESERVE IN and OUT only, with at most
    /// `PRHelperWire.maxDataSize` bytes either way.
    private func request(for command: SCSICommand) throws(LockError) -> Request {
        switch (command, command.direction) {
        case (.prIn, .fromDevice(let allocationLength)):
            guard allocationLength <= PRHelperWire.maxDataSize else {
                throw .invalid(
                    "\(device.path): qemu-pr-helper takes PR IN allocation lengths up to \(PRHelperWire.maxDataSize) bytes, not \(allocationLength)"
                )
            }
            return Request(parameterList: [], allocationLength: allocationLength)
        case (.prOut, .toDevice(let parameters)):
            return Request(parameterList: parameters, allocationLength: 0)
        default:
            throw .unsupported("\(device.path): qemu-pr-helper only forwards PERSISTENT RESERVE IN and OUT, not \(command.name)")
        }
    }

    private func connect(timeout: UInt32, deadline: Deadline) throws(LockError) -> UnixSocketConnection {
        let (live, supported) = try socketIO("connecting and negotiating features", timeout: timeout) { () throws(SocketFailure) in
            let live = try UnixSocketConnection.connect(path: socketPath, deadline: deadline)
            let supported = try live.readExactly(PRHelperWire.featuresSize, deadline: deadline)
            try live.writeAll(PRHelperWire.requestedFeatures, deadline: deadline)
            return (live, supported)
        }
        negotiatedFeatures = BigEndian.uint32(supported, at: 0)
        return live
    }

    private func socketIO<T>(_ action: String, timeout: UInt32, _ body: () throws(SocketFailure) -> T) throws(LockError) -> T {
        do {
            return try body()
        } catch {
            throw describe(error, while: action, timeout: timeout)
        }
    }

    private func exchange(
        on live: UnixSocketConnection, cdb: [UInt8], request: Request,
        deadline: Deadline, timeout: UInt32
    ) throws(LockError) -> SCSIResponse {
        let action = "command \(Hex.literal(cdb[0]))"
        let headerBytes = try socketIO(action, timeout: timeout) { () throws(SocketFailure) in
            try live.writeAll(PRHelperWire.paddedCDB(cdb), passing: device.fd, deadline: deadline)
            if !request.parameterList.isEmpty {
                try live.writeAll(request.parameterList, deadline: deadline)
            }
            return try live.readExactly(PRHelperReply.headerSize, deadline: deadline)
        }
        let reply: PRHelperReply
        do {
            reply = try PRHelperReply(header: headerBytes, allocationLength: request.allocationLength)
        } catch {
            throw describe(error, opcode: cdb[0])
        }
        let payload = try socketIO(action, timeout: timeout) { () throws(SocketFailure) in
            try live.readExactly(reply.payloadSize, deadline: deadline)
        }
        return reply.response(payload: payload)
    }

    /// A reply that breaks the protocol leaves the stream in an unknown
    /// place: refuse it (the caller drops the connection).
    private func describe(_ violation: PRHelperReply.Violation, opcode: UInt8) -> LockError {
        let peer = "qemu-pr-helper at \(socketPath)"
        switch violation {
        case .wrongHeaderSize(let n):
            return .backend("\(peer) sent a \(n)-byte reply header for \(device.path), not \(PRHelperReply.headerSize)")
        case .invalidStatus(let status):
            return .backend("\(peer) sent an invalid SCSI status \(status) for \(device.path)")
        case .payloadTooLarge(let size, let allocationLength):
            return .backend(
                "\(peer) announced a \(size)-byte payload for \(device.path), more than the allocation length \(allocationLength) of command \(Hex.literal(opcode))"
            )
        case .payloadWithStatus(let status):
            return .backend("\(peer) sent a payload with SCSI status \(Hex.literal(status)) for \(device.path)")
        }
    }

    private func describe(_ failure: SocketFailure, while action: String, timeout: UInt32) -> LockError {
        let peer = "qemu-pr-helper at \(socketPath)"
        switch failure {
        case .pathTooLong:
            return .config("qemu-pr-helper socket path \(socketPath) is empty or longer than a Unix socket address allows")
        case .timedOut:
            return .backend("\(peer) did not answer \(action) for \(device.path) within \(timeout) ms")
        case .closed(let received, let expected):
            return .backend("\(peer) closed the connection during \(action) for \(device.path) (after \(received) of \(expected) bytes)")
        case .system(let call, let error):
            return .backend("\(peer): \(call) failed during \(action) for \(device.path): \(error)")
        }
    }
}
