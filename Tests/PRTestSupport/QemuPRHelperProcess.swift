import Foundation

/// The REAL qemu-pr-helper (Debian qemu-system-common), run privately: its
/// own socket and pid file in a test directory, in the foreground, stopped
/// by `stop()`. A missing binary is an error, never a skip.
public final class QemuPRHelperProcess: @unchecked Sendable {
    public static let executable = "/usr/bin/qemu-pr-helper"

    public let socketPath: String
    public let logPath: String
    private let process = Process()

    public init(directory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw SocketPair.SetupError(description: "\(Self.executable) is missing: install Debian package qemu-system-common (scripts/debian-packages.txt)")
        }
        socketPath = "\(directory)/qemu-pr-helper.sock"
        logPath = "\(directory)/qemu-pr-helper.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["-k", socketPath, "-f", "\(directory)/qemu-pr-helper.pid"]
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Ready when the socket appears (a few ms); give up after 5 s.
        for _ in 0..<500 {
            if FileManager.default.fileExists(atPath: socketPath) { return }
            if !process.isRunning { break }
            usleep(10_000)
        }
        stop()
        throw SocketPair.SetupError(description: "qemu-pr-helper did not create \(socketPath): \(logText())")
    }

    deinit { stop() }

    /// What the helper printed (it logs protocol violations).
    public func logText() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<300 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
