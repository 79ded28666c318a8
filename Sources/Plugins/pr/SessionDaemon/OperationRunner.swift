import LockDriver
import PRProtocol
import PRTransport

/// Runs one plugin operation with the PR algorithm the plugin itself
/// would run (PRLocker: reads fresh, decides, acts, gives back what a
/// failed acquire took), on the sessions the table keeps: the same
/// commands as a plugin call's, without its login.
///
/// The plugin waits for the answer only so long, then reports the call
/// failed and closes its connection. So an operation whose plugin has hung
/// up is not started (it waited for another on the same target), and a
/// fresh acquire that succeeds after its plugin hung up is given back: no
/// one would ever be told the VM holds it. (A takeover, with a migration's
/// state, is kept, as a failed acquire keeps one: the source takes it back
/// by acquiring with its own state.)
enum OperationRunner {
    static func run(
        _ request: SessionWire.Request, table: SessionTable, log: Logger, pluginGone: () -> Bool
    ) -> SessionWire.Reply? {
        let initiator = request.config.iscsiInitiator ?? ""
        let urls = request.resources.compactMap { r -> ISCSIURL? in
            if case .iscsi(let url) = r.address { return url }
            return nil
        }
        let what = "\(request.operation) of VM \(request.vm) (\(request.resources.map(\.name).joined(separator: ", ")))"
        return table.withSessions(initiator: initiator, urls: urls) { pools -> SessionWire.Reply? in
            if pluginGone() {
                log.log("\(what): the plugin stopped waiting before it could start; not started", priority: .warning)
                return nil
            }
            let locker: PRLocker
            do throws(LockError) {
                locker = try PRLocker(config: request.config, vm: request.vm) { r throws(LockError) in
                    guard case .iscsi(let url) = r.address, let pool = pools[SessionTable.key(initiator, url)] else {
                        throw .internalError("\(r.name): no session for this LUN in pr-sessiond")
                    }
                    return ISCSITransport(url: url, pool: pool)
                }
            } catch {
                return SessionWire.Reply(outcome: .failure(error), commandsSent: [:])
            }
            let outcome = Result { () throws(LockError) -> String? in
                switch request.operation {
                case .acquire:
                    let state = try request.state.map { s throws(LockError) in try PRState(decoding: s) }
                    try locker.acquire(request.resources, state: state)
                    return nil
                case .release: return try locker.release(request.resources).encoded
                case .inquire: return try locker.inquire(request.resources).encoded
                }
            }
            if request.operation == .acquire, case .success = outcome, pluginGone() {
                guard request.state == nil else {
                    log.log("\(what): done after the plugin stopped waiting; a takeover, kept", priority: .warning)
                    return nil
                }
                let undo = Result { () throws(LockError) in try locker.release(request.resources) }
                let how = if case .failure(let e) = undo { "giving it back failed: \(e.message)" } else { "given back" }
                log.log("\(what): done after the plugin stopped waiting; \(how)", priority: .warning)
                return nil
            }
            return SessionWire.Reply(outcome: outcome, commandsSent: locker.commandsSent)
        }
    }
}
