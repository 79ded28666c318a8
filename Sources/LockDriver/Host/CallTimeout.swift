import Glibc

/// How long a host lets one plugin call run, and where that limit was set.
///
/// A plugin call cannot be cancelled: the host has no safe way to stop a
/// thread stuck inside a plugin (in the kernel, on a dead socket, on hung
/// storage). So the limit ends the whole process, and the process's end
/// is the clean-up: locks bound to it (sanlock's registration, the lock fd
/// of `lockmgr run`) go with it. A short-lived host such as `lockmgr`
/// wants that; a long-running one (libvirtd) must not set a limit.
public struct CallTimeout: Sendable, Equatable, CustomStringConvertible {
    /// Long enough for a sanlock lockspace join at sanlock's default
    /// io_timeout (about 21 s), short enough that a stuck call is noticed.
    public static let defaultSeconds: UInt32 = 60

    /// The limit in seconds; 0 means none.
    public var seconds: UInt32
    /// Where the value came from, as the user would look for it:
    /// `--timeout 5`, `LOCKMGR_CALL_TIMEOUT=5`, `FILE:LINE`, or the default.
    public var origin: String
    /// The status the process exits with when the limit passes (69,
    /// EX_UNAVAILABLE: the lock backend did not answer).
    public var exitStatus: Int32

    public init(seconds: UInt32, origin: String, exitStatus: Int32 = 69) {
        self.seconds = seconds
        self.origin = origin
        self.exitStatus = exitStatus
    }

    public static let standard = CallTimeout(
        seconds: defaultSeconds,
        origin: "the default; change it with call_timeout in lockmgr.conf, LOCKMGR_CALL_TIMEOUT or --timeout")

    public var isUnlimited: Bool { seconds == 0 }

    public var description: String {
        isUnlimited ? "no limit (\(origin))" : "\(seconds) s (\(origin))"
    }

    /// The line printed when `operation` of `plugin` outlives the limit.
    func expiryMessage(plugin: String, operation: String) -> String {
        "\(CallTimeout.programName): lock plugin '\(plugin)' did not return from \(operation) within \(seconds) s "
            + "(limit from \(origin)); giving up and exiting with status \(exitStatus): the call cannot be "
            + "cancelled, and exiting drops the locks this process holds. Locks requested for another process (--pid) "
            + "may still be granted: check with inquire.\n"
    }

    /// Read once: the message is built before every limited call.
    private static let programName: String =
        FileText.read("/proc/self/comm").map { $0.trimmingTrailingNewline }.get(or: "lock host")
}

extension Result {
    fileprivate func get(or fallback: Success) -> Success {
        if case .success(let value) = self { return value }
        return fallback
    }
}

extension String {
    fileprivate var trimmingTrailingNewline: String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}
