import Glibc
import LockDriver

/// The one place sanlock return codes become messages. Codes above -200 are
/// negated errnos whose meaning depends on the call; codes from -200 down
/// are sanlock's own (sanlock_rv.h), most of which `sanlock_strerror`
/// leaves as "Unknown error".
public enum SanlockStatus {
    /// The call that returned the code: the same errno means different
    /// things to different calls.
    public enum Call: Sendable {
        case register, acquire, release, inquire, restrict, killpath
        case addLockspace, writeLockspace, initLease, align
        /// sanlock's read of a lockspace or lease area (is it initialised?)
        case read
    }

    /// A LockError saying what failed (`what`), why, and sanlock's code.
    public static func error(_ rv: Int32, _ call: Call, _ what: String) -> LockError {
        LockError(kind(rv, call), "\(what): \(reason(rv, call)) (sanlock error \(rv))")
    }

    /// Held elsewhere or changed under us: the caller may retry or give up,
    /// nothing is wrong with the configuration or the backend.
    public static func kind(_ rv: Int32, _ call: Call) -> LockErrorKind {
        switch (rv, call) {
        case (-EEXIST, .acquire), (-EAGAIN, .acquire), (-EBUSY, .acquire): return .conflict
        case (-240, _), (-243, _), (-244, _), (-245, _), (-246, _), (-247, _), (-262, _): return .conflict
        case (-EINVAL, .addLockspace), (-231, _): return .config
        default: return .backend
        }
    }

    public static func reason(_ rv: Int32, _ call: Call) -> String {
        // Every call connects first; without a daemon they all fail the same way.
        if rv == -ENOENT || rv == -ECONNREFUSED, !daemonSocketExists {
            return "the sanlock daemon is not running (no socket \(runDir)/sanlock.sock)"
        }
        if let text = callSpecific(rv, call) { return text }
        if let text = sanlockCodes[rv] { return text }
        if rv > -200 && rv < 0 { return String(cString: strerror(-rv)) }
        return "unknown sanlock error"
    }

    private static func callSpecific(_ rv: Int32, _ call: Call) -> String? {
        guard rv > Int32.min else { return nil }  // -Int32.min would trap
        switch (-rv, call) {
        case (ECONNREFUSED, _):
            return "the sanlock daemon is not running (stale socket in \(runDir))"
        case (EACCES, _):
            return "permission denied on the sanlock daemon's socket in \(runDir)"
        case (EEXIST, .acquire):
            return "already held by another process on this host"
        case (EAGAIN, .acquire):
            return "its previous holder is still being released; try again"
        case (EBUSY, .acquire):
            return "another process on this host is acquiring it right now"
        case (ENOSPC, .acquire), (ENOSPC, .release), (ENOSPC, .initLease):
            return "this host has not joined the lease's lockspace (no sanlock add_lockspace for it)"
        case (ESRCH, _):
            return "the process is not registered with sanlock (acquire in the process itself, or with REGISTER_ONLY, first)"
        case (ENOENT, .acquire), (ENOENT, .initLease), (ENOENT, .align):
            return "the lease file does not exist"
        case (ENOENT, .release):
            return "the lease is not held by this process"
        case (EINVAL, .addLockspace):
            return "this host's sanlock daemon has joined the lockspace with another host_id, or the host_id is invalid"
        case (EINPROGRESS, .addLockspace):
            return "the lockspace is still being joined"
        case (EPERM, .restrict), (EPERM, .killpath):
            return "the process is not registered with this connection"
        default:
            return nil
        }
    }

    private static var daemonSocketExists: Bool {
        var st = stat()
        return stat("\(runDir)/sanlock.sock", &st) == 0
    }

    /// Where the client library looks for the daemon, as it decides it.
    private static var runDir: String {
        getenv("SANLOCK_RUN_DIR").map { String(cString: $0) } ?? "/run/sanlock"
    }

    /// sanlock_rv.h, in words a user can act on.
    private static let sanlockCodes: [Int32: String] = [
        -201: "sanlock internal error",
        -202: "I/O to the lease storage timed out",
        -203: "the watchdog could not be armed",
        -210: "paxos ballot: cannot read the lease",
        -211: "paxos ballot: cannot write the lease",
        -212: "paxos ballot: the lease version changed during the ballot",
        -213: "paxos ballot: a competing ballot is in progress",
        -214: "paxos ballot: lease checksum mismatch",
        -220: "cannot read the lease area",
        -221: "cannot write the lease area",
        -222: "the lease area changed while it was read",
        -223: "the lease area is not initialised (no sanlock lease found; run sanlock init on it)",
        -224: "the lease area was written by an incompatible sanlock version",
        -225: "the lease area's sector size does not match the storage",
        -226: "the lease area belongs to another lockspace",
        -227: "the lease area belongs to another resource name",
        -228: "the lease area's number of hosts does not match",
        -229: "the lease area is corrupt (checksum mismatch)",
        -230: "the lockspace geometry does not match the storage",
        -231: "the host_id is outside the lockspace's range",
        -240: "the lease was acquired by someone else since the state was saved (lease version changed): the state is stale",
        -241: "the lockspace failed while acquiring",
        -242: "cannot read the current owner's host lease",
        -243: "held by another host that is alive",
        -244: "held by another host",
        -245: "held by another owner",
        -246: "a shared holder is still present; try again",
        -247: "held by another host whose lease has not expired yet; try again",
        -250: "the lease version changed before release",
        -251: "the lease is owned by someone else",
        -260: "another host took over this host's id in the lockspace",
        -261: "this host's lockspace lease changed on disk",
        -262: "the host_id is in use by another live host",
        -270: "bad request record on the lease",
        -271: "request record of an incompatible version",
        -272: "the request is older than the lease",
        -273: "the request names a lease version that is not current",
    ]
}
