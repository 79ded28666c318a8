import LockDriver
import PRProtocol

/// The plugin's side of pr-sessiond, the per-host service that keeps this
/// host's iSCSI sessions logged in (`iscsi_session_socket`): one lock
/// operation is one request, which the service runs on its sessions, so
/// the operation pays no login, logout or first-command unit attention.
///
/// The service holds no lock state (reservations live on the LUs, their
/// owners in the keepers' records), so doing without it is always safe:
/// the caller runs the operation itself, with logins of its own, when the
/// service cannot be reached, and says so in syslog once per outage.
public enum SessionServiceClient {
    public enum Outcome {
        case answered(SessionWire.Reply)
        /// Nothing was sent: the caller runs the operation itself.
        case unreachable(String)
        /// The request went out and no answer came back: the service may
        /// have carried out all, part or none of it. `stillRunning`: the
        /// wait timed out, the service may still be at it.
        case lost(String, stillRunning: Bool)
    }

    static let log = Logger(ident: "lockmgr-pr", stderr: false)

    /// Sends `request` and waits for the answer, for at most long enough
    /// for every step of the operation to use its timeout.
    public static func run(_ request: SessionWire.Request, socketPath: String) -> Outcome {
        let timeout = request.config.timeoutMilliseconds
        let connection: UnixSocketConnection
        do {
            connection = try UnixSocketConnection.connect(path: socketPath, deadline: Deadline(millisecondsFromNow: timeout))
        } catch {
            let reason = "pr-sessiond at \(socketPath) cannot be reached: \(error)"
            reportOutage(socketPath, reason)
            return .unreachable(reason)
        }
        reportRecovery(socketPath)
        // A login, then up to eight steps (reads, changes, checks, giving back) of one timeout each.
        let deadline = Deadline(millisecondsFromNow: timeout &* 9 &+ 2000)
        do {
            try connection.writeAll(SessionWire.encode(request), deadline: deadline)
            let header = try connection.readExactly(SessionWire.headerSize, deadline: deadline)
            let length = try SessionWire.bodyLength(header: header, magic: SessionWire.replyMagic)
            let body = try connection.readExactly(length, deadline: deadline)
            return .answered(try SessionWire.decodeReply(body: body, keepingCommands: request.config.commandLog != nil))
        } catch {
            let stillRunning = if case SocketFailure.timedOut = error { true } else { false }
            let what = error is SocketFailure ? "\(error)" : "protocol violation: \(error)"
            let reason = "pr-sessiond at \(socketPath) stopped answering during the \(request.operation): \(what)"
            reportOutage(socketPath, reason)
            return .lost(reason, stillRunning: stillRunning)
        }
    }

    private static let outages = Mutex()
    nonisolated(unsafe) private static var outageReported: Set<String> = []

    /// Said once per outage, not once per call: libvirtd makes many calls.
    private static func reportOutage(_ socketPath: String, _ reason: String) {
        let first = outages.withLock { outageReported.insert(socketPath).inserted }
        if first { log.log("\(reason); logging in to the iSCSI targets directly", priority: .warning) }
    }

    private static func reportRecovery(_ socketPath: String) {
        if outages.withLock({ outageReported.remove(socketPath) }) != nil {
            log.log("pr-sessiond at \(socketPath) answers again", priority: .notice)
        }
    }
}
