import Foundation
import Glibc
import Harness
import LockDriver
import PRTransport

/// A fake in front of a real pr-sessiond: relays the plugin's requests and
/// the service's answers unchanged, but for one fault. `.dropAnswer(op)`:
/// the service carries out the first `op` and the relay closes the
/// plugin's connection instead of answering, as a service crashing at that
/// moment would.
final class FakeServiceRelay: @unchecked Sendable {
    let socket: String
    let upstream: String
    enum Fault {
        case dropAnswer(SessionWire.Operation)
    }
    let fault: Fault
    private let listener: Int32
    private let state = Mutex()
    private var cut = false

    init(upstream: String, _ fault: Fault) throws {
        self.upstream = upstream
        self.fault = fault
        socket = TempDir.make("svc-relay") + "/relay.sock"
        listener = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0, Self.withAddress(socket, { Glibc.bind(listener, $0, $1) }) == 0, listen(listener, 16) == 0 else {
            throw TgtTarget.Failure(description: "relay: cannot listen on \(socket): \(Errno.current)")
        }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Whether the fault was played.
    var faultPlayed: Bool { state.withLock { cut } }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func acceptLoop() {
        while let client = BlockingIO.accept(listener) {
            Thread.detachNewThread { [self] in relay(client) }
        }
    }

    private func relay(_ client: Int32) {
        defer { close(client) }
        let service = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(service) }
        guard service >= 0, Self.withAddress(upstream, { Glibc.connect(service, $0, $1) }) == 0 else { return }
        while let request = Self.readFrame(client) {
            let operation = try? SessionWire.decodeRequest(body: Array(request.dropFirst(SessionWire.headerSize))).operation
            guard BlockingIO.writeAll(service, request), let answer = Self.readFrame(service) else { return }
            let drop = state.withLock { () -> Bool in
                guard !cut, case .dropAnswer(let dropped) = fault, operation == dropped else { return false }
                cut = true
                return true
            }
            if drop { return }
            guard BlockingIO.writeAll(client, answer) else { return }
        }
    }

    /// One whole frame (header and body), or nil at the end of the stream.
    static func readFrame(_ fd: Int32) -> [UInt8]? {
        guard let header = BlockingIO.readExactly(fd, SessionWire.headerSize) else { return nil }
        let length = Int(BigEndian.uint32(header, at: 4))
        guard let body = BlockingIO.readExactly(fd, length) else { return nil }
        return header + body
    }

    static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        guard var address = UnixSocketConnection.address(of: path) else { return -1 }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
