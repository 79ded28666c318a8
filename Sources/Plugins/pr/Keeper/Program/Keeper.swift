import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// The keeper of one VM. Every `keeper_interval_ms` it reads the VM's
/// record and:
/// - VM process gone (exited, killed, a zombie, or its pid reused): releases
///   what the record lists through PRLocker.release, which only ever
///   preempts this host's own key, so a reservation that moved to a
///   migration destination is left alone; then exits.
/// - Otherwise reads every listed LU (PR IN only, on its own session: it
///   never registers, so it cannot disturb a reservation). A resource the
///   same VM now holds from another host was handed over (migration): it
///   is dropped from the record, no action. A resource taken away (another
///   VM's key, no reservation, our key gone) is lost: the failure action
///   the VM was started with is applied and reported.
/// - Record gone or empty (everything released: pause, migration source,
///   hot-unplug): exits.
/// Suspicions are confirmed under the record's flock, which the plugin
/// holds across its own commands, so the plugin's work in progress is never
/// taken for a loss.
final class Keeper {
    let store: KeeperStore
    let vm: UUIDBytes
    var pidFile: Int32 = -1
    /// `pr-keeper start`'s pipe, told once the pid file is held (or seen
    /// held by another keeper of the VM).
    var readyFD: Int32?
    /// Reads of the LUs: kept open across rounds (one login, not one per round).
    var reader: (configFile: String?, config: PRConfig, factory: TransportFactory)?
    /// Errors already reported, so a lasting one is logged once.
    var reported: Set<String> = []
    /// keeper.log (our stderr) and syslog.
    static let log = Logger(ident: "lockmgr-pr-keeper")
    /// The VM's name, once a record told it: every message names the VM by
    /// name and uuid.
    var name: String?
    /// Per multipath resource, the state its paths were last repaired in (PathRepairRound).
    var pathRepairs: [String: String] = [:]

    init(store: KeeperStore, vm: UUIDBytes, readyFD: Int32? = nil) {
        self.store = store
        self.vm = vm
        self.readyFD = readyFD
    }

    func run() -> Never {
        guard takePidFile() else { exit(0) }
        while true {
            let interval = round()
            usleep(interval * 1000)
        }
    }

    /// One keeper per VM: the flock of `<uuid>.pid`, held until exit. A
    /// second keeper started meanwhile finds it taken and leaves.
    func takePidFile() -> Bool {
        defer { tellReady() }
        do { try store.prepare() } catch {
            report("\(who): \(error.message)")
            exit(1)
        }
        let path = store.pidPath(vm)
        pidFile = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard pidFile >= 0 else {
            report("\(who): cannot open \(path): \(Errno.current)")
            exit(1)
        }
        guard flock(pidFile, LOCK_EX | LOCK_NB) == 0 else { return false }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(pidFile, 0)
        _ = text.withUnsafeBytes { pwrite(pidFile, $0.baseAddress, $0.count, 0) }
        return true
    }

    func tellReady() {
        guard let fd = readyFD else { return }
        var one: UInt8 = 1
        _ = write(fd, &one, 1)
        close(fd)
        readyFD = nil
    }

    /// Called with the record's flock held, when the record is about to
    /// go: reports why, then lets go of the pid file (from here a new
    /// keeper of this VM may start). Whoever sees this keeper gone can
    /// read its last word in the log.
    func stepDown(_ why: String) -> String {
        report(why, priority: .info)
        close(pidFile)
        pidFile = -1
        return why
    }

    /// Exits once `stepDown` has been called (`why` is its message).
    func leave(_ why: String?) {
        guard why != nil else { return }
        exit(0)
    }

    /// One round; returns the interval until the next, in milliseconds.
    func round() -> UInt32 {
        let record: KeeperRecord
        do {
            guard let r = try store.read(vm) else { exitIfNoRecord(); return 100 }
            record = r
            name = r.name.isEmpty ? nil : r.name
        } catch {
            note(error.message)
            return 1000
        }
        let config: PRConfig
        do { config = try loadConfig(record) } catch {
            note("\(who): \(error.message)")
            return 1000
        }
        let process = VMProcess(pid: record.pid, startTime: record.startTime)
        if !process.isAlive {
            releaseAfterExit(process)
        } else {
            let suspects = record.resources.filter { r in
                guard r.mode != .readOnly, let verdict = look(r, config: config) else { return false }
                return verdict != .held
            }
            if !suspects.isEmpty { confirm(suspects, process) }
            repairPaths(record.resources.filter { $0.mode != .readOnly && !suspects.contains($0) }, process, config: config)
        }
        return config.keeperIntervalMilliseconds
    }

    func exitIfNoRecord() {
        leave(
            try? store.update(vm) { (record: inout KeeperRecord?) throws(LockError) -> String? in
                record == nil ? stepDown("\(who): nothing left to watch; keeper exits") : nil
            })
    }

    /// The VM's process is gone: give back what it held (never anyone
    /// else's reservation), drop the record, exit.
    func releaseAfterExit(_ process: VMProcess) {
        do {
            leave(
                try store.update(vm) { (record: inout KeeperRecord?) throws(LockError) -> String? in
                    guard let r = record else { return stepDown("\(who): nothing left to watch; keeper exits") }
                    // A new process of the VM took over the record meanwhile.
                    guard r.belongs(to: process), !process.isAlive else { return nil }
                    // Registered (libvirt's start), never resumed: nothing was taken.
                    if r.resources.isEmpty {
                        record = nil
                        return stepDown("\(describe(r)) exited holding nothing (registered only); keeper exits")
                    }
                    let config = try loadConfig(r)
                    let factory = TransportFactory(config: config)
                    defer { factory.closeAll() }
                    let locker = try PRLocker(config: config, vm: vm) { resource throws(LockError) in try factory.transport(for: resource) }
                    let state = try locker.release(r.resources)
                    let released = state.entries.map(\.resource)
                    let left = r.resources.map(\.name).filter { !released.contains($0) }
                    record = nil
                    return stepDown(
                        "\(describe(r)) exited; released \(released.isEmpty ? "nothing (nothing held any more)" : released.joined(separator: ", "))"
                            + (left.isEmpty ? "" : "; not held by this host any more, left alone: \(left.joined(separator: ", "))"))
                })
        } catch {
            note("\(who) exited but releasing its reservations failed (retrying): \(error.message)")
        }
    }

    /// What the LU shows for `r`; nil when it cannot be read (not a loss:
    /// an unreachable target proves nothing).
    func look(_ r: PRResource, config: PRConfig) -> KeeperVerdict? {
        guard let reader else { return nil }
        do {
            let device = PRDevice(
                transport: try reader.factory.transport(for: r),
                timeoutMilliseconds: config.timeoutMilliseconds)
            let view = PRView(reservation: try device.readReservation().reservation, keys: try device.readKeys().keys)
            let me = PRKey.holder(mode: r.mode, vm: vm, host: try config.requireHostPart())
            return KeeperVerdict.judge(r, myKey: me, view: view)
        } catch {
            note("\(who): cannot read \(r.name) (will retry): \(error.message)")
            // A fresh login next time.
            reader.factory.closeAll()
            self.reader = (reader.configFile, config, keeperFactory(config))
            return nil
        }
    }

    /// Looks again under the record's flock and acts on what is confirmed.
    /// The failure action runs after the flock is released: under libvirt,
    /// `virsh suspend` makes libvirtd call the plugin's release, which
    /// takes the same flock, so acting while holding it would deadlock
    /// until virsh timed out.
    func confirm(_ suspects: [PRResource], _ process: VMProcess) {
        var loss: (record: KeeperRecord, what: [String])?
        func actOnLoss() {
            guard let (r, what) = loss else { return }
            loss = nil
            let outcome = FailureResponse.apply(r.action, to: r)
            report("\(describe(r)): LOCK LOST while running: \(what.joined(separator: "; ")); failure action \(r.action): \(outcome)")
        }
        defer { actOnLoss() }
        do {
            let why = try store.update(vm) { (record: inout KeeperRecord?) throws(LockError) -> String? in
                guard var r = record, r.pid == process.pid, r.startTime == process.startTime, process.isAlive else { return nil }
                let config = try loadConfig(r)
                var lost: [String] = []
                for s in suspects where r.resources.contains(s) {
                    switch look(s, config: config) {
                    case .held?, nil:
                        continue
                    case .handedOver(let key)?:
                        report(
                            "\(describe(r)): \(s.name) handed over to key \(key) (VM part \(PRDecision.hex(key.vmPart)), host part \(PRDecision.hex(key.hostPart))): a migration, no failure action",
                            priority: .info)
                    case .lost? where r.releasing.contains(s.name):
                        report("\(describe(r)): \(s.name) is no longer held, as the failed release call asked", priority: .info)
                    case .lost(let why)?:
                        lost.append("\(s.name): \(why)")
                    }
                    r.remove([s.name])
                }
                if !lost.isEmpty { loss = (r, lost) }
                record = r.resources.isEmpty ? nil : r
                return record == nil ? stepDown("\(describe(r)): nothing left to watch; keeper exits") : nil
            }
            if why != nil {
                actOnLoss()  // before leave(): exit(0) skips the defer
                leave(why)
            }
        } catch {
            note("\(who): \(error.message)")
        }
    }

    func loadConfig(_ record: KeeperRecord) throws(LockError) -> PRConfig {
        if let reader, reader.configFile == record.configFile { return reader.config }
        let config = try PRConfig.load(path: record.configFile)
        reader?.factory.closeAll()
        reader = (record.configFile, config, keeperFactory(config))
        return config
    }

    /// Reads on a session of the keeper's own (see keeperISIDQualifier).
    func keeperFactory(_ config: PRConfig) -> TransportFactory {
        TransportFactory(config: config, isidQualifier: TransportFactory.keeperISIDQualifier(for: vm))
    }

    func note(_ message: String) {
        guard !reported.contains(message) else { return }
        reported.insert(message)
        report(message)
    }

    /// The VM as messages name it.
    var who: String { name.map { "VM '\($0)' (\(vm))" } ?? "VM \(vm)" }

    func report(_ message: String, priority: Logger.Priority = .warning) {
        Self.log.log(message, priority: priority)
    }

    func describe(_ r: KeeperRecord) -> String { "VM '\(r.name)' (\(r.vm), pid \(r.pid))" }
}
