import Foundation
import Harness

/// The REAL qemu-pr-helper (Debian qemu-system-common), run privately: its
/// own socket and pid file in a test directory, in the foreground, stopped
/// by `stop()` (SIGTERM) or `crash()` (SIGKILL). A missing binary is an
/// error, never a skip. Started as a `SpawnedProcess` (clean signal mask),
/// so it does see our SIGTERM.
public final class QemuPRHelperProcess: @unchecked Sendable {
    public static let executable = "/usr/bin/qemu-pr-helper"

    public let socketPath: String
    public let logPath: String
    private let lock = NSLock()
    private let process: SpawnedProcess

    public init(directory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw TestSocket.SetupError(
                description: "\(Self.executable) is missing: install Debian package qemu-system-common (scripts/debian-packages.txt)")
        }
        socketPath = "\(directory)/qemu-pr-helper.sock"
        logPath = "\(directory)/qemu-pr-helper.log"
        process = try SpawnedProcess(
            [Self.executable, "-k", socketPath, "-f", "\(directory)/qemu-pr-helper.pid"],
            output: logPath)
        // Ready when the socket listens (~15 ms here); give up after 5 s. The
        // file appears at bind(), before listen(): a connect in between is
        // refused, so the file alone is not enough.
        for _ in 0..<500 {
            if Self.isListening(socketPath) { return }
            if !lock.withLock({ process.isRunning }) { break }
            usleep(10_000)
        }
        crash()
        throw TestSocket.SetupError(description: "qemu-pr-helper did not create \(socketPath): \(logText())")
    }

    deinit { stop() }

    /// Whether a Unix socket bound at `path` is listening, read from
    /// /proc/net/unix (flag __SO_ACCEPTCON) without connecting: a probe
    /// connection would show in the helper's log as a protocol violation.
    static func isListening(_ path: String) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 8 && fields[7] == path && fields[3] == "00010000"
        }
    }

    /// What the helper printed (it logs protocol violations).
    public func logText() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Asks the helper to exit (SIGTERM) and reaps it; SIGKILL after 3 s.
    public func stop() {
        lock.withLock { _ = process.stop(SIGTERM, timeout: 3) }
    }

    /// Kills the helper as a crash would (SIGKILL), with clients still connected.
    public func crash() {
        lock.withLock { _ = process.stop(SIGKILL, timeout: 3) }
    }
}
