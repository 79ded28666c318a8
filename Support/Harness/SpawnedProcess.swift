import Foundation
import Glibc
import LockDriver

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
        switch Spawn.start(argv, output: output) {
        case .success(let child): pid = child
        case .failure(let error): throw SpawnError(description: "cannot start \(argv[0]): \(error)")
        }
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
