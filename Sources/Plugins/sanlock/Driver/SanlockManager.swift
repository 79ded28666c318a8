import Glibc
import LockDriver
import SanlockCore

/// The leases of one object (VM) for one operation. sanlock ties leases to
/// a process: the VM's own process registers and acquires for itself;
/// any other process (libvirtd, `lockmgr acquire --pid`) acts on behalf of
/// the VM's registered pid.
final class SanlockManager: LockPluginManager {
    private let driver: SanlockDriver
    private let object: LockObject
    private var leases: [SanlockLease] = []
    /// The automatic disk leases among them: files a plugin (ours, or
    /// libvirt's on this or another host) creates on first use, so one may
    /// still be unfinished when we meet it.
    private var automaticLeases: [SanlockLease] = []
    /// Read/write disks present without a lease (auto leases off).
    private var unleasedDisks: [String] = []

    init(driver: SanlockDriver, object: LockObject) {
        self.driver = driver
        self.object = object
    }

    private var config: SanlockConfig { driver.config }
    private var pid: Int32 { Int32(truncatingIfNeeded: object.pid) }
    private var isOwnProcess: Bool { pid == getpid() }

    func addResource(_ resource: LockResource) throws(LockError) {
        // Read-only use needs no lease: it must not block the writer.
        if resource.mode == .readOnly { return }
        let shared = resource.mode == .shared
        if case .disk(let path) = resource.kind, !config.autoDiskLeases {
            if !shared { unleasedDisks.append(path) }
            return
        }
        guard leases.count < SanlockLease.maxPerProcess else {
            throw .unsupported("\(resource): sanlock takes at most \(SanlockLease.maxPerProcess) leases per object")
        }
        switch resource.kind {
        case .disk(let path):
            let lease = try SanlockLease.automatic(disk: path, leaseDir: config.diskLeaseDir, shared: shared)
            try LeaseFiles(config: config).ensure(lease)
            leases.append(lease)
            automaticLeases.append(lease)
        case .lease(let key, let lockspace, let path, let offset):
            leases.append(try SanlockLease(lockspace: lockspace, name: key, path: path, offset: offset, shared: shared))
        }
    }

    func acquire(state: String?, flags: AcquireFlags, action: FailureAction) throws(LockError) -> Int32? {
        if leases.isEmpty, let disk = unleasedDisks.first, config.requireLeaseForDisks {
            throw .config(
                "object '\(object.name)': read/write disk \(disk) has no lease and require_lease_for_disks is set (\(driver.configOrigin))")
        }
        // Everything is validated before anything is registered or taken.
        let wanted = try versioned(leases, by: state)
        guard isOwnProcess else {
            try FailureHelper.checkSupported(action)
            try acquireOnBehalf(wanted, flags: flags)
            return nil
        }
        let helper = try FailureHelper.make(
            action: action, object: object, lockmgr: driver.failureTool,
            plugin: driver.pluginName)
        if let helper { try checkExecutable(helper.path) }

        let fd = try SanlockClient.register()
        do throws(LockError) {
            if let helper { try SanlockClient.killpath(fd, helper) }
            if !flags.contains(.registerOnly) {
                try SanlockClient.acquire(fd: fd, pid: pid, wanted, owner: object.name, awaitUnfinished: awaitAutomaticLeases)
            }
            // The VM process keeps the registration across exec: its
            // leases then die with it, not with us.
            if case .failure(let error) = CloseOnExec.clear(fd) {
                throw .backend("cannot make the sanlock registration inheritable: \(error)")
            }
            if flags.contains(.restrict) { try SanlockClient.restrict(fd) }
        } catch {
            close(fd)  // closing the registration drops anything acquired on it
            throw error
        }
        return fd
    }

    /// libvirt's resume and hotplug path: the VM process registered itself
    /// when it started; take the leases for it.
    /// The failure action was fixed when the process registered (sanlock
    /// keeps one helper per registration); libvirt passes it again on
    /// resume, so it is accepted here and not applied twice.
    private func acquireOnBehalf(_ wanted: [SanlockLease], flags: AcquireFlags) throws(LockError) {
        if flags.contains(.restrict) {
            throw .unsupported("RESTRICT can only be applied by the process itself (pid \(pid) is not this process)")
        }
        if flags.contains(.registerOnly) || wanted.isEmpty {
            // Nothing to take; still refuse a process that never registered.
            guard try SanlockClient.isRegistered(pid: pid) else {
                throw SanlockStatus.error(-ESRCH, .acquire, "cannot acquire for '\(object.name)' (pid \(pid))")
            }
            return
        }
        // sanlock itself refuses an unregistered pid (ESRCH).
        try SanlockClient.acquire(fd: -1, pid: pid, wanted, owner: object.name, awaitUnfinished: awaitAutomaticLeases)
    }

    /// An acquire met a lease area with no record yet: if it is an
    /// automatic lease file someone else is still creating, wait for it.
    /// Explicit leases are the administrator's to initialise beforehand;
    /// waiting would only delay their error.
    private func awaitAutomaticLeases() throws(LockError) {
        let files = LeaseFiles(config: config)
        for lease in automaticLeases {
            try files.awaitInitialised("\(lease.description) file") { SanlockClient.readLease(lease) }
        }
    }

    /// Returns the state of everything the process held, taken just before
    /// releasing (it carries the versions a migration destination needs).
    func release() throws(LockError) -> String? {
        // No resources (libvirt unplugging a network disk): nothing is
        // released, so no state may suggest otherwise.
        guard !leases.isEmpty else { return nil }
        // Unregistered, or registered holding nothing: nothing to release.
        guard let state = try SanlockClient.inquire(pid: pid) else { return nil }
        try SanlockClient.release(pid: pid, leases)
        return state
    }

    /// A paused process gives up everything it holds (lockmgr
    /// failure-action's pause), whatever resources this manager was given.
    func releaseAllHeld() throws(LockError) -> String? {
        guard let state = try SanlockClient.inquire(pid: pid) else { return nil }
        try SanlockClient.releaseAll(pid: pid)
        return state
    }

    func inquire() throws(LockError) -> String? {
        try SanlockClient.inquire(pid: pid)
    }

    /// Our leases with the versions a saved state promises. Unlike
    /// libvirt's plugin, the version is honoured: sanlock then refuses a
    /// lease someone else took since the state was saved.
    private func versioned(_ leases: [SanlockLease], by state: String?) throws(LockError) -> [SanlockLease] {
        guard let state else { return leases }
        let parsed = try LeaseState(parsing: state)
        return try leases.map { (lease) throws(LockError) -> SanlockLease in
            guard let entry = parsed.entry(for: lease) else { return lease }
            guard entry.disks.first == LeaseState.Disk(path: lease.path, offset: lease.offset) else {
                let where_ = entry.disks.map { "\($0.path):\($0.offset)" }.joined(separator: ", ")
                throw .invalid("state describes lease '\(lease.name)' at \(where_), but it is configured at \(lease.path):\(lease.offset)")
            }
            var versioned = lease
            if !lease.shared {
                // Without a version an exclusive lease would be acquired
                // whatever happened since: that is the stale state we refuse.
                guard !entry.shared, let version = entry.version else {
                    throw .invalid("state describes exclusive lease '\(lease.name)' without a lease version (or as shared); refusing it")
                }
                versioned.version = version
            }
            return versioned
        }
    }

    private func checkExecutable(_ path: String) throws(LockError) {
        guard access(path, X_OK) == 0 else {
            throw .config("failure helper \(path) is not an executable program: \(Errno.current)")
        }
    }
}
