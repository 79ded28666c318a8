import Foundation
import Glibc

/// A child process started with posix_spawn from the calling thread, with
/// a clean signal mask and default dispositions.
///
/// Why not Foundation's Process: its children inherit the test thread's
/// blocked-signal mask (measured here: SigBlk fffffffe3bfbea27, SIGTERM
/// included), so a daemon started with it ignores SIGTERM and a `sleep`
/// outlives terminate(). Spawning from the calling thread also keeps the
/// child in that thread's mount namespace (see InteropTests' PrivateRunDir).
public final class SpawnedProcess {
    public let pid: pid_t
    public private(set) var exitStatus: Int32?

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `argv` with stdin from /dev/null and stdout+stderr appended to `output`.
    public init(_ argv: [String], output: String = "/dev/null") throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw SpawnError(description: "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        pid = child
    }

    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc == pid else { return rc == 0 }
        // WIFEXITED / WEXITSTATUS, spelled out: the C macros are not imported.
        exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return false
    }

    /// Sends `signal` and waits up to `timeout` seconds; SIGKILL after that.
    /// Returns the exit status (128 + signal when killed by one), or nil if
    /// the process had to be SIGKILLed.
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM, timeout: TimeInterval = 10) -> Int32? {
        guard isRunning else { return exitStatus }
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(5_000) }
        guard isRunning else { return exitStatus }
        kill(pid, SIGKILL)
        while isRunning { usleep(5_000) }
        return nil
    }

    deinit { stop(SIGKILL, timeout: 5) }
}
