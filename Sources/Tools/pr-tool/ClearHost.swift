import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// `pr-tool clear-host`: the administrator's explicit, logged removal of a
/// dead host's reservations (the ones that fenced it: a host that dies
/// holding reservations keeps them, so nobody else can start its VMs on a
/// disk it may still write to).
///
///   pr-tool clear-host --config FILE (--dead-host IQN | --dead-host-id N)
///                      [--host-is-dead] [--log FILE] URL...
///
/// FILE is this host's pr plugin config (initiator name, host_id,
/// keeper_dir). Refused, changing nothing:
/// - when the dead host is this host and a keeper or a VM process of this
///   host still holds one of the disks (its keeper records say so);
/// - when the dead host is another host and --host-is-dead is missing:
///   from here nobody can tell a dead host from a partitioned one, so the
///   administrator must say it (after making sure: power fencing, console).
enum ClearHost {
    static func run(_ arguments: [String]) -> Int32 {
        var args = arguments
        var configPath: String?, deadName: String?, deadID: UInt32?, logPath: String?
        var asserted = false
        var urls: [String] = []
        while !args.isEmpty {
            let a = args.removeFirst()
            switch a {
            case "--host-is-dead": asserted = true
            case "--config", "--dead-host", "--dead-host-id", "--log":
                guard !args.isEmpty else { return usage("\(a) needs a value") }
                let v = args.removeFirst()
                switch a {
                case "--config": configPath = v
                case "--dead-host": deadName = v
                case "--log": logPath = v
                default:
                    guard let id = UInt32(v), id > 0 else { return usage("--dead-host-id must be 1..4294967295, not '\(v)'") }
                    deadID = id
                }
            default:
                guard !a.hasPrefix("--") else { return usage("unknown option \(a)") }
                urls.append(a)
            }
        }
        guard let configPath else { return usage("--config (this host's pr plugin config) is required") }
        guard (deadName == nil) != (deadID == nil) else { return usage("give one of --dead-host IQN or --dead-host-id N") }
        guard !urls.isEmpty else { return usage("name at least one iscsi:// disk") }
        let log = Log(path: logPath)
        do throws(LockError) {
            let config = try PRConfig.load(path: configPath)
            let ours = try config.requireHostPart()
            let dead = deadID ?? PRKey.hostPart(ofIdentity: deadName ?? "")
            let who = "host part \(PRDecision.hex(dead))" + (deadName.map { " (\($0))" } ?? "")
            if dead == ours {
                if let holder = try livingHolder(KeeperStore(dir: config.keeperDir), urls) {
                    log.say("clear-host refused: \(who) is this host, and \(holder) is alive here; stop it (or its keeper) first")
                    return 75
                }
            } else if !asserted {
                log.say("clear-host refused: \(who) is another host, whose death cannot be seen from here; make sure it is down (fenced, powered off), then repeat with --host-is-dead")
                return 75
            }
            guard let initiator = config.iscsiInitiator else {
                throw LockError.config("\(config.origin): 'iscsi_initiator' is needed to reach iSCSI disks")
            }
            let pool = ISCSISessionPool(initiator: initiator)
            defer { pool.closeAll() }
            var failed = false
            for url in urls {
                do throws(LockError) {
                    let d = PRDevice(transport: ISCSITransport(url: try ISCSIURL(parsing: url), pool: pool),
                                     timeoutMilliseconds: config.timeoutMilliseconds)
                    let outcome = try PRHostClear.clear(hostPart: dead, on: d, defaultType: config.exclusiveType)
                    let held = outcome.reservation.map { "; its reservation (key \(PRKey(rawValue: $0.key)), \($0.type)) is gone" } ?? ""
                    log.say(outcome.dropped.isEmpty ? "clear-host: \(url): nothing of \(who) registered"
                            : "clear-host: \(url): dropped the keys of dead \(who): \(outcome.dropped.map(\.description).joined(separator: ", "))\(held)")
                } catch {
                    log.say("clear-host: \(url): FAILED: \(error.message)")
                    failed = true
                }
            }
            return failed ? 69 : 0
        } catch {
            log.say("clear-host: \(error.message)")
            return error.kind == .config ? 78 : 69
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

    static func usage(_ why: String) -> Int32 {
        Log(path: nil).say("pr-tool clear-host: \(why)\nusage: pr-tool clear-host --config FILE (--dead-host IQN | --dead-host-id N) [--host-is-dead] [--log FILE] URL...")
        return 64
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
