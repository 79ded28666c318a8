import LockDriver
import PRProtocol

/// The plugin's side of pr-sessiond, the per-host service that keeps this
/// host's iSCSI sessions logged in (`iscsi_session_socket`): one
/// operation's batches go to it over one connection, so the operation pays
/// no login, logout or first-command unit attention.
///
/// The service holds no lock state (reservations live on the LU, their
/// owners in the keepers' records), so doing without it is always safe:
/// when it cannot be reached the operation logs in itself, as without the
/// setting, and says so in syslog. When it stops answering in the middle
/// of a batch, a batch of reads is sent again directly; a batch with a PR
/// OUT fails (it may or may not have reached the LU, as with a session
/// that breaks); the rest of the operation logs in itself.
public final class SessionServiceClient: SCSIBatchSender {
    public let socketPath: String
    let initiator: String
    /// Direct logins, for when the service is not there.
    let fallback: ISCSISessionPool
    private var connection: UnixSocketConnection?
    /// Why this operation's commands go through direct logins; nil while the service answers.
    public private(set) var bypassReason: String?
    /// Batches the service answered.
    public private(set) var batchesServed = 0

    static let log = Logger(ident: "lockmgr-pr", stderr: false)

    public init(socketPath: String, initiator: String, fallback: ISCSISessionPool) {
        self.socketPath = socketPath
        self.initiator = initiator
        self.fallback = fallback
    }

    public func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
    {
        var urls: [ISCSIURL] = []
        for entry in batch {
            guard let t = entry.transport as? ISCSITransport, t.goes(through: self) else {
                return batch.map { _ in
                    .failure(.internalError("\(entry.transport.deviceDescription): not a LUN of this pr-sessiond client"))
                }
            }
            urls.append(t.url)
        }
        if bypassReason == nil, connection == nil { connect(timeoutMilliseconds: timeoutMilliseconds) }
        guard bypassReason == nil, let connection else {
            let direct = zip(urls, batch).map { url, entry in
                (transport: ISCSITransport(url: url, pool: fallback) as SCSITransport, command: entry.command)
            }
            return fallback.send(direct, timeoutMilliseconds: timeoutMilliseconds)
        }
        if let i = batch.firstIndex(where: { !Self.travels($0.command) }) {
            return batch.map { _ in .failure(.internalError("\(urls[i]): \(batch[i].command.name) is not a PR command")) }
        }
        let request = SessionWire.Request(
            initiator: initiator, timeoutMilliseconds: timeoutMilliseconds,
            items: zip(urls, batch).map { ($0, $1.command) })
        let lengths = batch.map { entry -> Int in
            if case .fromDevice(let n) = entry.command.direction { return n }
            return 0
        }
        // The service may log in (its own timeout) before it sends the batch (another).
        let deadline = Deadline(millisecondsFromNow: timeoutMilliseconds &* 2 &+ 1000)
        do throws(ServiceFailure) {
            let results = try exchange(connection, request, lengths: lengths, deadline: deadline)
            batchesServed += 1
            return results
        } catch {
            self.connection = nil
            let reason = "pr-sessiond at \(socketPath) stopped answering: \(error)"
            bypass(reason)
            // Reads change nothing: ask again, directly. A PR OUT may have
            // been carried out; the operation decides from fresh reads.
            if batch.allSatisfy({ Self.isRead($0.command) }) {
                return send(batch, timeoutMilliseconds: timeoutMilliseconds)
            }
            return urls.map { .failure(.backend("\($0): \(reason); the command may or may not have reached the LU")) }
        }
    }

    private static func isRead(_ command: SCSICommand) -> Bool {
        if case .prIn = command { return true }
        return false
    }

    /// Ends this operation's connection; the service keeps its sessions.
    public func disconnect() { connection = nil }

    private func connect(timeoutMilliseconds: UInt32) {
        do {
            connection = try UnixSocketConnection.connect(path: socketPath, deadline: Deadline(millisecondsFromNow: timeoutMilliseconds))
            if Self.outages.withLock({ Self.outageReported.remove(socketPath) }) != nil {
                Self.log.log("pr-sessiond at \(socketPath) answers again", priority: .notice)
            }
        } catch {
            bypass("pr-sessiond at \(socketPath) cannot be reached: \(ServiceFailure.socket(error))")
        }
    }

    /// Said once per outage, not once per call: libvirtd makes many calls.
    private func bypass(_ reason: String) {
        bypassReason = reason
        let first = Self.outages.withLock { () -> Bool in
            Self.outageReported.insert(socketPath).inserted
        }
        if first { Self.log.log("\(reason); logging in to the iSCSI targets directly", priority: .warning) }
    }

    private static let outages = Mutex()
    nonisolated(unsafe) private static var outageReported: Set<String> = []

    private static func travels(_ command: SCSICommand) -> Bool {
        if case .write10 = command { return false }
        return true
    }

    enum ServiceFailure: Error, CustomStringConvertible {
        case socket(SocketFailure)
        case protocolViolation(SessionWire.Violation)

        var description: String {
            switch self {
            case .socket(.pathTooLong): return "the socket path is too long"
            case .socket(.timedOut): return "no answer in time"
            case .socket(.closed(let received, let expected)):
                return "connection closed (\(received) of \(expected) bytes)"
            case .socket(.system(let call, let error)): return "\(call): \(error)"
            case .protocolViolation(let v): return "protocol violation: \(v)"
            }
        }
    }

    private func exchange(
        _ c: UnixSocketConnection, _ request: SessionWire.Request, lengths: [Int], deadline: Deadline
    ) throws(ServiceFailure) -> [Result<SCSIResponse, LockError>] {
        do {
            try c.writeAll(SessionWire.encode(request), deadline: deadline)
            let header = try c.readExactly(SessionWire.headerSize, deadline: deadline)
            let length = try Self.checked { () throws(SessionWire.Violation) in
                try SessionWire.bodyLength(header: header, magic: SessionWire.replyMagic)
            }
            let body = try c.readExactly(length, deadline: deadline)
            return try Self.checked { () throws(SessionWire.Violation) in
                try SessionWire.decodeReply(body: body, allocationLengths: lengths)
            }
        } catch let e as SocketFailure {
            throw .socket(e)
        } catch let e as ServiceFailure {
            throw e
        } catch {
            throw .protocolViolation(SessionWire.Violation("\(error)"))
        }
    }

    private static func checked<R>(_ body: () throws(SessionWire.Violation) -> R) throws(ServiceFailure) -> R {
        do { return try body() } catch { throw .protocolViolation(error) }
    }
}
