import ArgumentParser
import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// `pr-tool clear-host`: the administrator's explicit, logged removal of a
/// dead host's reservations (the ones that fenced it: a host that dies
/// holding reservations keeps them, so nobody else can start its VMs on a
/// disk it may still write to).
struct ClearHost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear-host",
        abstract: "Remove a dead host's registrations and reservations from iSCSI disks.",
        discussion: """
            FILE is this host's pr plugin config (initiator name, host_id, keeper_dir).
            Refused, changing nothing (status 75): when the dead host is this host and a
            keeper or a VM process of this host still holds one of the disks (its keeper
            records say so); when the dead host is another host and --host-is-dead is
            missing: from here nobody can tell a dead host from a partitioned one, so the
            administrator must say it (after making sure: power fencing, console).
            Every step is logged to stderr, syslog (facility auth) and --log.
            """)

    @Option(help: ArgumentHelp("This host's pr plugin config.", valueName: "file"))
    var config: String

    @Option(name: .customLong("dead-host"), help: ArgumentHelp("The dead host's initiator name.", valueName: "iqn"))
    var deadName: String?

    @Option(name: .customLong("dead-host-id"), help: ArgumentHelp("The dead host's host_id.", valueName: "n"))
    var deadID: UInt32?

    @Flag(name: .customLong("host-is-dead"), help: "Assert that the other host is down (fenced, powered off).")
    var asserted = false

    @Option(help: ArgumentHelp("Also append every message to this file.", valueName: "file"))
    var log: String?

    @Flag(help: "Print the outcome per disk as JSON.")
    var json = false

    @Argument(help: ArgumentHelp("The disks: iscsi://host[:port]/target-iqn/lun.", valueName: "url"))
    var urls: [String] = []

    func validate() throws {
        guard (deadName == nil) != (deadID == nil) else { throw ValidationError("give one of --dead-host IQN or --dead-host-id N") }
        if deadID == 0 { throw ValidationError("--dead-host-id must be 1..4294967295") }
        guard !urls.isEmpty else { throw ValidationError("name at least one iscsi:// disk") }
        for url in urls {
            do throws(LockError) { _ = try ISCSIURL(parsing: url) } catch { throw ValidationError(error.message) }
        }
    }

    func run() throws {
        let status = clear()
        if status != ExitStatus.success { throw ExitCode(status) }
    }

    /// Clears every disk it can; the exit status.
    private func clear() -> Int32 {
        let configPath = config, logPath = log
        var report: [JSON] = []
        var refusal: JSON = .string(nil)
        defer { if json { say(JSON.object([("disks", .array(report)), ("error", refusal)]).text) } }
        let log = Log(path: logPath)
        func refuse(_ kind: LockErrorKind, _ message: String) {
            log.say(message)
            refusal = .object([("kind", .string(kind.description)), ("message", .string(message))])
        }
        do throws(LockError) {
            let config = try PRConfig.load(path: configPath)
            let ours = try config.requireHostPart()
            let dead = deadID ?? PRKey.hostPart(ofIdentity: deadName ?? "")
            let who = "host part \(PRDecision.hex(dead))" + (deadName.map { " (\($0))" } ?? "")
            if dead == ours {
                if let holder = try Self.livingHolder(KeeperStore(dir: config.keeperDir), urls) {
                    refuse(.conflict, "clear-host refused: \(who) is this host, and \(holder) is alive here; stop it (or its keeper) first")
                    return ExitStatus.tempFail
                }
            } else if !asserted {
                refuse(
                    .conflict,
                    "clear-host refused: \(who) is another host, whose death cannot be seen from here; make sure it is down (fenced, powered off), then repeat with --host-is-dead"
                )
                return ExitStatus.tempFail
            }
            guard let initiator = config.iscsiInitiator else {
                throw LockError.config("\(config.origin): 'iscsi_initiator' is needed to reach iSCSI disks")
            }
            let pool = ISCSISessionPool(initiator: initiator)
            defer { pool.closeAll() }
            var failed = false
            for url in urls {
                do throws(LockError) {
                    let d = PRDevice(
                        transport: ISCSITransport(url: try ISCSIURL(parsing: url), pool: pool),
                        timeoutMilliseconds: config.timeoutMilliseconds)
                    let outcome = try PRHostClear.clear(hostPart: dead, on: d, defaultType: config.exclusiveType)
                    let held = outcome.reservation.map { "; its reservation (key \(PRKey(rawValue: $0.key)), \($0.type)) is gone" } ?? ""
                    log.say(
                        outcome.dropped.isEmpty
                            ? "clear-host: \(url): nothing of \(who) registered"
                            : "clear-host: \(url): dropped the keys of dead \(who): \(outcome.dropped.map(\.description).joined(separator: ", "))\(held)"
                    )
                    report.append(
                        .object([
                            ("url", .string(url)),
                            ("dropped", .array(outcome.dropped.map { .string($0.description) })),
                            ("reservation", .string(outcome.reservation.map { PRKey(rawValue: $0.key).description })),
                            ("error", .string(nil)),
                        ]))
                } catch {
                    log.say("clear-host: \(url): FAILED: \(error.message)")
                    report.append(.object([("url", .string(url)), ("error", .string(error.message))]))
                    failed = true
                }
            }
            return failed ? ExitStatus.unavailable : ExitStatus.success
        } catch {
            refuse(error.kind, "clear-host: \(error.message)")
            return ExitStatus.code(for: error.kind == .config ? .config : .backend)
        }
    }

    /// A VM or keeper of this host that still holds one of `urls`, by its record.
    static func livingHolder(_ store: KeeperStore, _ urls: [String]) throws(LockError) -> String? {
        for vm in store.vms() {
            guard let r = try store.read(vm), r.resources.contains(where: { urls.contains($0.name) }) else { continue }
            if VMProcess(pid: r.pid, startTime: r.startTime).isAlive { return "VM '\(r.name)' (\(vm), pid \(r.pid))" }
            if let keeper = store.runningKeeper(vm) { return "the keeper (pid \(keeper)) of VM '\(r.name)' (\(vm))" }
        }
        return nil
    }

    /// stderr, syslog (auth facility: it changes who may write a disk), and --log.
    struct Log {
        var path: String?

        func say(_ message: String) {
            Logger.write(message + "\n", to: 2)
            Logger(ident: "lockmgr-pr-tool", facility: .auth, stderr: false, file: path).log(message)
        }
    }
}
