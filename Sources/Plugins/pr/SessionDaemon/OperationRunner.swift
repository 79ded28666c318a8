import LockDriver
import PRProtocol
import PRTransport

/// Runs one plugin operation with the PR algorithm the plugin itself
/// would run (PRLocker: reads fresh, decides, acts, gives back what a
/// failed acquire took), on the sessions the table keeps: the same
/// commands as a plugin call's, without its login.
enum OperationRunner {
    static func run(_ request: SessionWire.Request, table: SessionTable) -> SessionWire.Reply {
        let initiator = request.config.iscsiInitiator ?? ""
        let urls = request.resources.compactMap { r -> ISCSIURL? in
            if case .iscsi(let url) = r.address { return url }
            return nil
        }
        return table.withSessions(initiator: initiator, urls: urls) { pools in
            var sent: [String: [String]] = [:]
            let outcome = Result { () throws(LockError) -> String? in
                let locker = try PRLocker(config: request.config, vm: request.vm) { r throws(LockError) in
                    guard case .iscsi(let url) = r.address, let pool = pools[SessionTable.key(initiator, url)] else {
                        throw .internalError("\(r.name): no session for this LUN in pr-sessiond")
                    }
                    return ISCSITransport(url: url, pool: pool)
                }
                defer { sent = locker.commandsSent }
                switch request.operation {
                case .acquire:
                    let state = try request.state.map { s throws(LockError) in try PRState(decoding: s) }
                    try locker.acquire(request.resources, state: state)
                    return nil
                case .release: return try locker.release(request.resources).encoded
                case .inquire: return try locker.inquire(request.resources).encoded
                }
            }
            return SessionWire.Reply(outcome: outcome, commandsSent: sent)
        }
    }
}
