import Foundation
import Glibc
import Harness

/// A real virtlockd (libvirt's lock daemon) for one test, inside a
/// `PrivateRunDir` thread: its sockets land in the test's own run dir.
/// Started in the foreground as our child so stopping it is a plain
/// SIGTERM + waitpid, with no orphan for PID 1 to reap.
final class PrivateVirtlockd {
    static let binary = "/usr/sbin/virtlockd"

    let process: SpawnedProcess
    /// The socket as seen from outside the namespace (inside: /run/libvirt/virtlockd-sock).
    let socketPath: String
    let logFile: String

    var pid: Int32 { process.pid }

    /// Starts the daemon and waits until it accepts connections. Call it on
    /// the `PrivateRunDir` thread whose `/run` is `runDir`.
    init(runDir: String, workDir: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw PrivateRunDir.SetupError(description: "\(Self.binary) is missing: install the Debian package libvirt-daemon")
        }
        socketPath = "\(runDir)/libvirt/virtlockd-sock"
        logFile = "\(workDir)/virtlockd.log"
        let config = "\(workDir)/virtlockd.conf"
        TempDir.write("log_outputs = \"3:file:\(logFile)\"\n", to: config)
        // Output before the log is set up goes to virtlockd.stderr.
        process = try SpawnedProcess(
            [Self.binary, "-f", config, "-p", "\(workDir)/virtlockd.pid"],
            output: "\(workDir)/virtlockd.stderr")

        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(socketPath) {
            guard process.isRunning else {
                throw PrivateRunDir.SetupError(
                    description: "virtlockd exited with \(process.exitStatus ?? -1) during startup; log: \(Self.read(logFile))")
            }
            guard Date() < deadline else {
                process.stop()
                throw PrivateRunDir.SetupError(
                    description: "virtlockd did not listen on \(socketPath) within 10 s; log: \(Self.read(logFile))")
            }
            usleep(5_000)
        }
    }

    /// SIGTERM is virtlockd's clean shutdown. Returns its exit status, or
    /// nil if it had to be SIGKILLed after 10 s.
    @discardableResult
    func stop() -> Int32? { process.stop(SIGTERM, timeout: 10) }

    deinit { stop() }

    var log: String { Self.read(logFile) }

    private static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Whether a Unix socket accepts a connection (a socket file can exist
    /// before the daemon listens on it).
    private static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
