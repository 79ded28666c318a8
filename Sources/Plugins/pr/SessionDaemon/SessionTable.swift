import LockDriver
import PRProtocol
import PRTransport

/// The iSCSI sessions pr-sessiond keeps logged in: one per initiator name
/// and target, each behind its own lock (libiscsi contexts are not
/// thread-safe), so a target that hangs delays only its own VMs.
final class SessionTable: @unchecked Sendable {
    final class Entry: @unchecked Sendable {
        let lock = Mutex()
        let pool: ISCSISessionPool
        init(initiator: String) {
            pool = ISCSISessionPool(initiator: initiator, isidQualifier: TransportFactory.sessionServiceISIDQualifier)
        }
    }

    private let lock = Mutex()
    private var entries: [String: Entry] = [:]
    let log: Logger

    init(log: Logger) { self.log = log }

    private func entry(initiator: String, url: ISCSIURL) -> Entry {
        lock.withLock {
            let key = "\(initiator) \(url.portal)/\(url.target)"
            if let e = entries[key] { return e }
            let e = Entry(initiator: initiator)
            entries[key] = e
            return e
        }
    }

    /// Sends a request's commands, those of one target together on its
    /// session; targets one after the other, in a fixed order (no two
    /// requests wait for each other's locks crosswise).
    func run(_ request: SessionWire.Request) -> [Result<SCSIResponse, LockError>] {
        var results = [Result<SCSIResponse, LockError>](
            repeating: .failure(.internalError("no answer recorded")), count: request.items.count)
        var groups: [String: [Int]] = [:]
        for (i, item) in request.items.enumerated() {
            groups["\(item.url.portal)/\(item.url.target)", default: []].append(i)
        }
        for key in groups.keys.sorted() {
            guard let indices = groups[key], let first = indices.first else { continue }
            let e = entry(initiator: request.initiator, url: request.items[first].url)
            let answers = e.lock.withLock {
                for id in e.pool.dropDeadSessions() {
                    log.log("session to \(id) as \(request.initiator) was closed while idle; logging in again", priority: .notice)
                }
                let logins = e.pool.logins
                let batch = indices.map { i in
                    (
                        transport: ISCSITransport(url: request.items[i].url, pool: e.pool) as SCSITransport,
                        command: request.items[i].command
                    )
                }
                let answers = e.pool.send(batch, timeoutMilliseconds: request.timeoutMilliseconds)
                if e.pool.logins != logins {
                    log.log("logged in to \(key) as \(request.initiator)", priority: .info)
                }
                return answers
            }
            for (i, answer) in zip(indices, answers) { results[i] = answer }
        }
        return results
    }
}
