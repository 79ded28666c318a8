import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// The pr plugin: SCSI-3 persistent reservations on the VM's LUNs. All the
/// logic is in PRProtocol, PRTransport and PRKeeper; this is the glue to the lock driver interface.
final class PRDriver: LockPluginDriver {
    let config: PRConfig
    let configFile: String?
    /// The keeper program: `keeper_path`, else beside the installed plugin
    /// (`<prefix>/lib/lock_manager/pr.so` → `<prefix>/libexec/lockmgr/pr-keeper`).
    let keeperPath: String?

    init(configFile: String?) throws(LockError) {
        config = try PRConfig.load(path: configFile)
        self.configFile = configFile
        keeperPath =
            config.keeperPath
            ?? InstallLayout.loadedFile(containing: #dsohandle).flatMap(InstallLayout.init(pluginPath:))
            .map { "\($0.libexecDir)/pr-keeper" }
    }

    func makeManager(for object: LockObject, flags: NewFlags) throws(LockError) -> PRManager {
        PRManager(driver: self, object: object)
    }
}

final class PRManager: LockPluginManager {
    let driver: PRDriver
    let object: LockObject
    var resources: [PRResource] = []
    /// The names of `resources`: a scan per added disk cost 32k name compares at 256 LUNs.
    private var names: Set<String> = []
    var config: PRConfig { driver.config }

    init(driver: PRDriver, object: LockObject) {
        self.driver = driver
        self.object = object
    }

    func addResource(_ resource: LockResource) throws(LockError) {
        guard case .disk(let name) = resource.kind else {
            throw .unsupported("\(resource): the pr plugin reserves disks (LUNs), not leases")
        }
        guard !names.contains(name) else { throw .invalid("disk '\(name)' was added twice") }
        // Parsed now (a bad name is refused before any device is touched) and once.
        let parsed = try PRResource(name, mode: resource.mode)
        // The guest's own PR cluster reserves this disk: take no part in it.
        if config.guestReservations.contains(name) { return }
        resources.append(parsed)
        names.insert(name)
    }

    func acquire(state: String?, flags: AcquireFlags, action: FailureAction) throws(LockError) -> Int32? {
        // Parse the state before anything else: a bad one sends no command.
        let parsed = try state.map { s throws(LockError) in try PRState(decoding: s) }
        let held = resources.filter { $0.mode != .readOnly }
        let watched = config.keeper && !held.isEmpty
        // Registration of the process (libvirt, between fork and exec, long
        // before the resume): a reservation belongs to the host, so no
        // command; but the VM's keeper starts now, off the resume's path
        // (inside a migration's downtime).
        if flags.contains(.registerOnly) {
            if watched { try register(action) }
            return nil
        }
        guard watched else {
            try acquireResources(state: state, parsed: parsed)
            return nil
        }
        let keeper = try keeperPlan(action)
        try keeper.store.update(object.uuid) { record throws(LockError) in
            try refuseDoubleStart(record, keeper.process)
            try acquireResources(state: state, parsed: parsed)
            var r =
                record.flatMap { $0.belongs(to: keeper.process) ? $0 : nil }
                ?? newRecord(keeper.process, action)
            r.action = action
            r.add(held)
            record = r
        }
        do {
            try KeeperLauncher.ensureRunning(keeperPath: keeper.path, store: keeper.store, vm: object.uuid)
        } catch {
            // Unwatched, the reservation would outlive the VM: give it back.
            let undo = Result { () throws(LockError) in try forget(keeper.store) }
            let note = if case .failure(let e) = undo { "; giving the reservations back also failed: \(e.message)" } else { "" }
            throw LockError(error.kind, error.message + note)
        }
        return nil
    }

    /// REGISTER_ONLY: a record naming the VM's process and no resources
    /// yet, and its keeper started, so that the resume's acquire finds it
    /// running. Such a keeper watches the process only: if it dies before
    /// the resume (a start refused later, a crash) there is nothing to
    /// give back and the keeper leaves.
    private func register(_ action: FailureAction) throws(LockError) {
        let keeper = try keeperPlan(action)
        let written = try keeper.store.update(object.uuid) { record throws(LockError) -> Bool in
            try refuseDoubleStart(record, keeper.process)
            if let r = record {
                // Our own record (a second registration): nothing to change.
                if r.belongs(to: keeper.process) { return true }
                // A dead process of this VM still lists reservations: its
                // keeper gives them back; taking its record over would
                // lose them. The resume's acquire starts our keeper then.
                if !r.resources.isEmpty { return false }
            }
            record = newRecord(keeper.process, action)
            return true
        }
        guard written else { return }
        do {
            try KeeperLauncher.ensureRunning(keeperPath: keeper.path, store: keeper.store, vm: object.uuid)
        } catch {
            // Leave no record behind that no keeper will ever remove.
            _ = try? keeper.store.update(object.uuid) { record throws(LockError) in
                if let r = record, r.belongs(to: keeper.process), r.resources.isEmpty { record = nil }
            }
            throw error
        }
    }

    /// The device cannot tell two processes of one host apart (same key):
    /// the keeper's record can.
    private func refuseDoubleStart(_ record: KeeperRecord?, _ process: VMProcess) throws(LockError) {
        guard let other = record, !other.belongs(to: process), VMProcess(pid: other.pid, startTime: other.startTime).isAlive
        else { return }
        let holding =
            other.resources.isEmpty
            ? "registered, holding nothing yet" : "holding \(other.resources.map(\.name).joined(separator: ", "))"
        throw .conflict(
            "VM '\(object.name)' (\(object.uuid)) already runs on this host as process \(other.pid), \(holding); refusing a double start"
        )
    }

    private func newRecord(_ process: VMProcess, _ action: FailureAction) -> KeeperRecord {
        KeeperRecord(
            vm: object.uuid, name: object.name, pid: process.pid, startTime: process.startTime, action: action,
            uri: object.uri, configFile: driver.configFile, resources: [])
    }

    /// Everything the keeper needs, checked before any SCSI command.
    private func keeperPlan(_ action: FailureAction) throws(LockError) -> (path: String, store: KeeperStore, process: VMProcess) {
        if action == .restart {
            throw .unsupported("failure action 'restart' is not supported by the pr plugin (supported: default, poweroff, pause, ignore)")
        }
        guard let path = driver.keeperPath else {
            throw .config(
                "\(config.origin): the pr keeper is not installed beside this plugin: set 'keeper_path' (or 'keeper = 0', unsafe: reservations then outlive their VM)"
            )
        }
        guard access(path, X_OK) == 0 else {
            throw .config("\(config.origin): the pr keeper \(path) is not an executable program: \(Errno.current)")
        }
        guard object.pid > 1, object.pid <= UInt32(Int32.max), let process = VMProcess.current(Int32(object.pid)) else {
            throw .invalid(
                "VM '\(object.name)': process \(object.pid) does not exist; the pr plugin holds reservations for a running process")
        }
        return (path, KeeperStore(dir: config.keeperDir), process)
    }

    /// Releases our resources and drops them from the keeper's record. If
    /// the release fails part-way they stay in the record, marked: the
    /// keeper still gives them back when the VM exits, and does not take
    /// their disappearance for a lost lock (the VM is being paused or
    /// migrated away, not robbed).
    private func forget(_ store: KeeperStore) throws(LockError) -> String {
        let names = resources.map(\.name)
        return try store.update(object.uuid) { record throws(LockError) -> Result<String, LockError> in
            do throws(LockError) {
                let state = try releaseResources()
                record?.remove(names)
                if record?.resources.isEmpty == true { record = nil }
                return .success(state)
            } catch {
                record?.markReleasing(names)
                return .failure(error)
            }
        }.get()
    }

    func release() throws(LockError) -> String? {
        guard config.keeper else { return try releaseResources() }
        return try forget(KeeperStore(dir: config.keeperDir))
    }

    func inquire() throws(LockError) -> String? {
        try perform(.inquire) { locker throws(LockError) in try locker.inquire(resources).encoded }
    }

    private func acquireResources(state: String?, parsed: PRState?) throws(LockError) {
        _ = try perform(.acquire, state: state) { locker throws(LockError) in
            try locker.acquire(resources, state: parsed)
            return nil
        }
    }

    private func releaseResources() throws(LockError) -> String {
        let state = try perform(.release) { locker throws(LockError) in try locker.release(resources).encoded }
        guard let state else { throw .internalError("pr-sessiond answered a release without its state string") }
        return state
    }

    /// Runs an operation in pr-sessiond (`iscsi_session_socket`) when every
    /// resource is an iSCSI LUN, else (or when the service cannot be
    /// reached) here, with logins of its own. Both run the same algorithm.
    private func perform(
        _ operation: SessionWire.Operation, state: String? = nil, _ local: (PRLocker) throws(LockError) -> String?
    ) throws(LockError) -> String? {
        if let socket = config.sessionSocket, config.iscsiInitiator != nil, !resources.isEmpty,
            resources.allSatisfy({ if case .iscsi = $0.address { true } else { false } })
        {
            _ = try config.requireHostPart()
            let request = SessionWire.Request(
                operation: operation, config: config, vm: object.uuid, resources: resources, state: state)
            switch SessionServiceClient.run(request, socketPath: socket) {
            case .answered(let reply):
                logCommands(reply.commandsSent)
                return try reply.outcome.get()
            case .unreachable:
                break
            case .lost(let reason, let stillRunning):
                // Acquire and inquire decide from fresh reads, so running
                // them here is safe once the service has stopped; a
                // release's answer (the state) is gone with the service.
                if operation == .release || stillRunning {
                    throw .backend("\(reason); the \(operation) may or may not have been carried out")
                }
            }
        }
        return try withLocker(local)
    }

    private func withLocker<R>(_ body: (PRLocker) throws(LockError) -> R) throws(LockError) -> R {
        let factory = TransportFactory(config: config)
        defer { factory.closeAll() }
        let locker = try PRLocker(config: config, vm: object.uuid) { resource throws(LockError) in
            try factory.transport(for: resource)
        }
        defer { logCommands(locker.commandsSent, routes: factory.routes) }
        return try body(locker)
    }

    /// `command_log`: one line per command sent, "<resource> <command>",
    /// after a "<resource> transport: <which and why>" line for each device path.
    private func logCommands(_ sent: [String: [String]], routes: RouteLog? = nil) {
        guard let path = config.commandLog else { return }
        var text = ""
        for (resource, commands) in sent.sorted(by: { $0.key < $1.key }) {
            if let reason = routes?.reasons[resource] { text += "\(resource) transport: \(reason)\n" }
            for c in commands { text += "\(resource) \(c)\n" }
        }
        guard !text.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
