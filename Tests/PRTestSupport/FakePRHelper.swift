import Foundation
import PRProtocol
import PRTransport

/// FAKE: the server side of the qemu-pr-helper protocol, in process, on a
/// private Unix socket, answering from a FakePRDevice as one I_T nexus (a
/// real helper serves its host's nexus). Like the real helper it checks the
/// CDB, reads the parameter list, and closes the connection on a protocol
/// violation. Misbehaviours let tests drive the client's error paths.
public final class FakePRHelper: @unchecked Sendable {
    public enum Behaviour: Sendable {
        case faithful
        /// Reads the request, then closes without a reply.
        case closeAfterRequest
        /// Sends the first `bytes` of the reply, then closes.
        case shortReply(bytes: Int)
        /// Announces and sends `extra` payload bytes more than the allocation length.
        case oversizedPayload(extra: Int)
        /// Reads the request and never answers (until the client goes away).
        case neverAnswer
        /// Accepts the connection but never sends its features.
        case neverNegotiate
        /// Answers every request with these bytes instead of a real reply.
        case rawReply([UInt8])
    }

    /// One request as the helper received it.
    public struct Received: Sendable {
        public var cdb: [UInt8]
        public var parameterList: [UInt8]
        /// The passed descriptor's identity (fstat st_dev, st_ino); nil if no fd came.
        public var passedFile: FileIdentity?
    }

    public let socketPath: String
    private let device: FakePRDevice
    private let nexus: FakePRDevice.Nexus
    private let behaviour: Behaviour
    private let supportedFeatures: UInt32
    private let listener: Int32
    private let lock = NSLock()
    private var log: [Received] = []
    private var requested: [UInt32] = []
    /// Open connections, so stop() can cut them; closed ones leave at once
    /// (their fd numbers get reused by other tests running in parallel).
    private var connections: Set<Int32> = []
    private var accepted = 0
    private var stopped = false

    public init(
        device: FakePRDevice, nexus: FakePRDevice.Nexus, behaviour: Behaviour = .faithful,
        supportedFeatures: UInt32 = 0, directory: String
    ) throws {
        self.device = device
        self.nexus = nexus
        self.behaviour = behaviour
        self.supportedFeatures = supportedFeatures
        socketPath = "\(directory)/fake-pr-helper.sock"
        listener = try TestSocket.listen(path: socketPath)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    public var received: [Received] { lock.withLock { log } }
    public var requestedFeatures: [UInt32] { lock.withLock { requested } }
    /// How many connections the helper has accepted.
    public var connectionCount: Int { lock.withLock { accepted } }

    /// Stops accepting and drops every connection.
    public func stop() {
        lock.withLock {
            if stopped { return }
            stopped = true
            shutdown(listener, Int32(SHUT_RDWR))
            for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
            unlink(socketPath)
        }
    }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // never leak into a spawned qemu-pr-helper
            let taken: Bool = lock.withLock {
                if stopped { return false }
                connections.insert(fd)
                accepted += 1
                return true
            }
            guard taken else { close(fd); return }
            Thread { [self] in
                serve(fd)
                lock.withLock {
                    connections.remove(fd)
                    close(fd)
                }
            }.start()
        }
    }

    private func serve(_ fd: Int32) {
        if case .neverNegotiate = behaviour {
            _ = TestSocket.readFully(fd, count: 1)  // wait for the client to give up
            return
        }
        guard TestSocket.writeFully(fd, be32(supportedFeatures)),
            let features = TestSocket.readFully(fd, count: 4)
        else { return }
        lock.withLock { requested.append(readBE32(features, at: 0)) }
        while let request = TestSocket.receiveWithFD(fd, count: 16) {
            guard let reply = handle(cdb: request.bytes, passedFD: request.fd, on: fd) else { return }
            if !TestSocket.writeFully(fd, reply) { return }
        }
    }

    /// The reply bytes for one request, or nil to close the connection.
    private func handle(cdb: [UInt8], passedFD: Int32?, on fd: Int32) -> [UInt8]? {
        let identity = passedFD.flatMap(FileIdentity.init(fd:))
        if let passedFD { close(passedFD) }
        let opcode = cdb[0]
        var parameters: [UInt8] = []
        var allocationLength = 0
        switch opcode {
        case 0x5E:
            allocationLength = Int(cdb[7]) << 8 | Int(cdb[8])
            guard allocationLength <= 8192 else { return nil }
        case 0x5F:
            let length = Int(readBE32(cdb, at: 5))
            guard length <= 8192, let list = TestSocket.readFully(fd, count: length) else { return nil }
            parameters = list
        default:
            return nil  // the real helper: "Invalid CDB, closing socket"
        }
        lock.withLock { log.append(Received(cdb: cdb, parameterList: parameters, passedFile: identity)) }
        guard identity != nil else { return nil }  // no descriptor: protocol violation

        switch behaviour {
        case .closeAfterRequest:
            return nil
        case .neverAnswer:
            _ = TestSocket.readFully(fd, count: 1)
            return nil
        case .rawReply(let bytes):
            return bytes
        default:
            break
        }
        let response = device.execute(cdb: cdb, dataOut: parameters, allocationLength: allocationLength, from: nexus)
        var payload = response.status == 0 ? response.data : []
        if case .oversizedPayload(let extra) = behaviour {
            payload += [UInt8](repeating: 0xEE, count: allocationLength + extra - payload.count)
        }
        var sense = response.sense?.fixedFormat ?? []
        sense += [UInt8](repeating: 0, count: 96 - sense.count)
        let reply = be32(UInt32(response.status)) + be32(UInt32(payload.count)) + sense + payload
        if case .shortReply(let bytes) = behaviour {
            _ = TestSocket.writeFully(fd, Array(reply.prefix(bytes)))
            return nil
        }
        return reply
    }
}

/// Which file a descriptor refers to, to prove the right one was passed.
public struct FileIdentity: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    public init?(fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}
