import Glibc
import LockDriver
import PRCore

/// The pr plugin: SCSI-3 persistent reservations on the VM's LUNs. All the
/// logic is in PRCore; this is the glue to the lock driver interface.
final class PRDriver: LockPluginDriver {
    let config: PRConfig

    init(configFile: String?) throws(LockError) {
        config = try PRConfig.load(path: configFile)
    }

    func makeManager(for object: LockObject, flags: NewFlags) throws(LockError) -> PRManager {
        PRManager(config: config, object: object)
    }
}

final class PRManager: LockPluginManager {
    let config: PRConfig
    let object: LockObject
    var resources: [PRResource] = []

    init(config: PRConfig, object: LockObject) {
        self.config = config
        self.object = object
    }

    func addResource(_ resource: LockResource) throws(LockError) {
        guard case .disk(let name) = resource.kind else {
            throw .unsupported("\(resource): the pr plugin reserves disks (LUNs), not leases")
        }
        guard !resources.contains(where: { $0.name == name }) else {
            throw .invalid("disk '\(name)' was added twice")
        }
        // Reject a bad name now, before any device is touched.
        if name.hasPrefix(ISCSIURL.scheme) { _ = try ISCSIURL(parsing: name) }
        resources.append(PRResource(name, mode: resource.mode))
    }

    func acquire(state: String?, flags: AcquireFlags, action: FailureAction) throws(LockError) -> Int32? {
        // Parse the state before anything else: a bad one sends no command.
        let parsed = try state.map { s throws(LockError) in try PRState(decoding: s) }
        // Registration of the process (libvirt, between fork and exec): a
        // reservation belongs to the host, not to a process; nothing to do.
        if flags.contains(.registerOnly) { return nil }
        try withLocker { locker throws(LockError) in try locker.acquire(resources, state: parsed) }
        return nil
    }

    func release() throws(LockError) -> String? {
        try withLocker { locker throws(LockError) in try locker.release(resources).encoded }
    }

    func inquire() throws(LockError) -> String? {
        try withLocker { locker throws(LockError) in try locker.inquire(resources).encoded }
    }

    private func withLocker<R>(_ body: (PRLocker) throws(LockError) -> R) throws(LockError) -> R {
        let factory = TransportFactory(config: config)
        defer { factory.closeAll() }
        let locker = try PRLocker(config: config, vm: object.uuid) { name throws(LockError) in
            try factory.transport(for: name)
        }
        defer { logCommands(locker) }
        return try body(locker)
    }

    /// `command_log`: one line per command sent, "<resource> <command>".
    private func logCommands(_ locker: PRLocker) {
        guard let path = config.commandLog else { return }
        var text = ""
        for (resource, commands) in locker.commandsSent.sorted(by: { $0.key < $1.key }) {
            for c in commands { text += "\(resource) \(c)\n" }
        }
        guard !text.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
