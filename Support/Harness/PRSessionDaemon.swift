import Foundation
import Glibc

/// A private pr-sessiond for tests and benchmarks: its own socket and log
/// file in a directory of its own, started from a given build's programs.
/// Started again on the same socket, it is the same host's service
/// restarted.
public final class PRSessionDaemon: @unchecked Sendable {
    public let socket: String
    public let log: String
    private var process: SpawnedProcess?
    let program: String

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameter program: the pr-sessiond to run (default: this build's).
    public init(label: String, program: String = "\(BuildProducts.binDir)/pr-sessiond") throws {
        let dir = TempDir.make("pr-sessiond-\(label)")
        socket = "\(dir)/pr-sessiond.sock"
        log = "\(dir)/pr-sessiond.log"
        self.program = program
        try start()
    }

    /// Starts it (again) and waits until it accepts connections.
    public func start() throws {
        let p = try SpawnedProcess([program, "--socket", socket], output: log)
        process = p
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if Self.answers(socket) { return }
            guard p.isRunning else { break }
            usleep(5_000)
        }
        p.stop(SIGKILL)
        throw Failure(description: "pr-sessiond did not start listening on \(socket): \(logText)")
    }

    public var pid: pid_t? { process?.pid }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// SIGKILL: a crash, nothing cleaned up (the socket file stays behind).
    public func crash() { process?.stop(SIGKILL, timeout: 5) }

    public func stop() { process?.stop(SIGTERM, timeout: 5) }

    public var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Lines of its log saying it logged in to a target.
    public var logins: [String] { logText.split(separator: "\n").map(String.init).filter { $0.contains(": logged in to ") } }

    static func answers(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    deinit { process?.stop(SIGKILL, timeout: 5) }
}
