/// The exit statuses of every program we install (lockmgr, pr-tool, the
/// failure action): sysexits.h numbers, one per kind of failure, so a
/// script or a lock backend can tell "try later" from "fix the config".
public enum ExitStatus {
    public static let success: Int32 = 0
    public static let usage: Int32 = 64  // EX_USAGE: bad arguments, unsupported request
    public static let dataError: Int32 = 65  // EX_DATAERR: invalid state string or parameters
    public static let unavailable: Int32 = 69  // EX_UNAVAILABLE: the lock backend failed or did not answer
    public static let software: Int32 = 70  // EX_SOFTWARE: internal error
    public static let tempFail: Int32 = 75  // EX_TEMPFAIL: held by someone else, or refused for now
    public static let config: Int32 = 78  // EX_CONFIG: host or plugin config, unknown plugin

    public static func code(for kind: LockErrorKind) -> Int32 {
        switch kind {
        case .unsupported: return usage
        case .invalid: return dataError
        case .backend: return unavailable
        case .internalError: return software
        case .conflict: return tempFail
        case .config: return config
        }
    }

    /// The table as the programs' help and man pages print it.
    public static let summary = """
        Exit status: 0 success; 64 usage error or unsupported request; 65 invalid
        state string or parameters; 69 lock backend failure, or a call that did not
        return in time; 70 internal error; 75 lock conflict (held by someone else)
        or refused for now; 78 configuration error (host or plugin config, unknown plugin).
        """
}
