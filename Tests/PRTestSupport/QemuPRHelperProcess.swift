import Foundation

/// The REAL qemu-pr-helper (Debian qemu-system-common), run privately: its
/// own socket and pid file in a test directory, in the foreground, stopped
/// by `stop()` (SIGTERM) or `crash()` (SIGKILL). A missing binary is an
/// error, never a skip.
///
/// Spawned with posix_spawn and a cleared signal mask, not Foundation's
/// Process: children of the test runner inherit its threads' blocked
/// signals (SIGTERM included), and the helper would ignore our SIGTERM.
public final class QemuPRHelperProcess: @unchecked Sendable {
    public static let executable = "/usr/bin/qemu-pr-helper"

    public let socketPath: String
    public let logPath: String
    private let lock = NSLock()
    private var pid: pid_t?

    public init(directory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw TestSocket.SetupError(description: "\(Self.executable) is missing: install Debian package qemu-system-common (scripts/debian-packages.txt)")
        }
        socketPath = "\(directory)/qemu-pr-helper.sock"
        logPath = "\(directory)/qemu-pr-helper.log"
        pid = try Self.spawn([Self.executable, "-k", socketPath, "-f", "\(directory)/qemu-pr-helper.pid"], log: logPath)
        // Ready when the socket appears (~15 ms here); give up after 5 s.
        for _ in 0..<500 {
            if FileManager.default.fileExists(atPath: socketPath) { return }
            if !isRunning { break }
            usleep(10_000)
        }
        crash()
        throw TestSocket.SetupError(description: "qemu-pr-helper did not create \(socketPath): \(logText())")
    }

    deinit { stop() }

    /// What the helper printed (it logs protocol violations).
    public func logText() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Asks the helper to exit (SIGTERM) and reaps it; SIGKILL after 3 s.
    public func stop() {
        terminate(with: SIGTERM, graceMilliseconds: 3000)
    }

    /// Kills the helper as a crash would (SIGKILL), with clients still connected.
    public func crash() {
        terminate(with: SIGKILL, graceMilliseconds: 3000)
    }

    private var isRunning: Bool {
        lock.withLock {
            guard let pid else { return false }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { self.pid = nil; return false }
            return true
        }
    }

    private func terminate(with signal: Int32, graceMilliseconds: Int) {
        guard let running = lock.withLock({ pid }) else { return }
        kill(running, signal)
        var waited = 0
        while isRunning && waited < graceMilliseconds {
            usleep(10_000)
            waited += 10
        }
        lock.withLock {
            guard let pid else { return }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            self.pid = nil
        }
    }

    private static func spawn(_ argv: [String], log: String) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else {
            throw TestSocket.SetupError(description: "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }
}
