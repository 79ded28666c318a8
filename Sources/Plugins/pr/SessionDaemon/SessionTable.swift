import LockDriver
import PRProtocol
import PRTransport

/// The iSCSI sessions pr-sessiond keeps logged in: one per initiator name
/// and target, each behind its own lock (libiscsi contexts are not
/// thread-safe; a target that hangs delays only the operations on it).
final class SessionTable: @unchecked Sendable {
    final class Entry: @unchecked Sendable {
        let lock = Mutex()
        let key: String
        let pool: ISCSISessionPool
        init(key: String, initiator: String) {
            self.key = key
            pool = ISCSISessionPool(initiator: initiator, isidQualifier: TransportFactory.sessionServiceISIDQualifier, kept: true)
        }
    }

    private let lock = Mutex()
    private var entries: [String: Entry] = [:]
    let log: Logger

    init(log: Logger) { self.log = log }

    static func key(_ initiator: String, _ url: ISCSIURL) -> String { "\(initiator) \(url.portal)/\(url.target)" }

    private func entry(_ key: String, initiator: String) -> Entry {
        lock.withLock {
            if let e = entries[key] { return e }
            let e = Entry(key: key, initiator: initiator)
            entries[key] = e
            return e
        }
    }

    /// Runs `body` holding the sessions of every target `urls` name, their
    /// locks taken in one order (no two operations wait for each other
    /// crosswise), after dropping any the target closed while idle.
    func withSessions<R>(
        initiator: String, urls: [ISCSIURL], _ body: ([String: ISCSISessionPool]) -> R
    ) -> R {
        let keys = Set(urls.map { Self.key(initiator, $0) }).sorted()
        let held = keys.map { entry($0, initiator: initiator) }
        func hold(_ i: Int) -> R {
            guard i < held.count else {
                return body(Dictionary(uniqueKeysWithValues: held.map { ($0.key, $0.pool) }))
            }
            return held[i].lock.withLock {
                for id in held[i].pool.dropDeadSessions() {
                    log.log("session to \(id) as \(initiator) was closed while idle; logging in again", priority: .notice)
                }
                let logins = held[i].pool.logins
                defer {
                    if held[i].pool.logins != logins { log.log("logged in to \(held[i].key)", priority: .info) }
                }
                return hold(i + 1)
            }
        }
        return hold(0)
    }
}
