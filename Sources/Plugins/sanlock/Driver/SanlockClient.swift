import CSanlock
import Glibc
import LockDriver
import SanlockCore

/// libsanlock_client, one small function per call. Every failure becomes a
/// LockError through SanlockStatus, naming `what` was being done.
enum SanlockClient {
    /// Opens a registered connection for the calling process. Its leases
    /// live exactly as long as this fd (or the process).
    static func register() throws(LockError) -> Int32 {
        let fd = sanlock_register()
        guard fd >= 0 else { throw SanlockStatus.error(fd, .register, "cannot register with the sanlock daemon") }
        return fd
    }

    static func killpath(_ fd: Int32, _ helper: FailureHelper) throws(LockError) {
        var args = Array(helper.args.utf8CString)
        let rv = args.withUnsafeMutableBufferPointer { buf in
            sanlock_killpath(fd, 0, helper.path, buf.baseAddress)
        }
        guard rv >= 0 else {
            throw SanlockStatus.error(rv, .killpath, "cannot set the failure action helper '\(helper.path) \(helper.args)'")
        }
    }

    static func restrict(_ fd: Int32) throws(LockError) {
        let rv = sanlock_restrict(fd, UInt32(SANLK_RESTRICT_ALL))
        guard rv >= 0 else { throw SanlockStatus.error(rv, .restrict, "cannot restrict the registered process") }
    }

    /// Acquires every lease or none, on `fd` (registered by this process)
    /// or, with fd -1, on behalf of the registered process `pid`. A lease
    /// area found unfinished (someone else is still creating it) is handed
    /// to `awaitUnfinished`, and the acquire tried once more after it.
    static func acquire(
        fd: Int32, pid: Int32, _ leases: [SanlockLease], owner: String,
        awaitUnfinished: () throws(LockError) -> Void = {}
    ) throws(LockError) {
        guard !leases.isEmpty else { return }
        try withResources(leases) { resources, count throws(LockError) in
            var options = sanlk_options()
            csanlock_options_set_owner(&options, owner)
            var rv = sanlock_acquire(fd, fd >= 0 ? -1 : pid, 0, count, resources, &options)
            if UnfinishedArea.isUnfinished(rv) {
                try awaitUnfinished()
                rv = sanlock_acquire(fd, fd >= 0 ? -1 : pid, 0, count, resources, &options)
            }
            guard rv >= 0 else { throw SanlockStatus.error(rv, .acquire, "cannot acquire \(describe(leases))") }
        }
    }

    /// Releases the leases `pid` holds among `leases`.
    static func release(pid: Int32, _ leases: [SanlockLease]) throws(LockError) {
        guard !leases.isEmpty else { return }
        try withResources(leases) { resources, count throws(LockError) in
            let rv = sanlock_release(-1, pid, 0, count, resources)
            guard rv >= 0 else { throw SanlockStatus.error(rv, .release, "cannot release \(describe(leases))") }
        }
    }

    /// Releases every lease `pid` holds.
    static func releaseAll(pid: Int32) throws(LockError) {
        let rv = sanlock_release(-1, pid, UInt32(SANLK_REL_ALL), 0, nil)
        guard rv >= 0 else { throw SanlockStatus.error(rv, .release, "cannot release the leases of pid \(pid)") }
    }

    /// sanlock's state string for everything `pid` holds; nil when it
    /// holds nothing or is not registered at all.
    static func inquire(pid: Int32) throws(LockError) -> String? {
        var count: Int32 = 0
        var state: UnsafeMutablePointer<CChar>? = nil
        let rv = sanlock_inquire(-1, pid, 0, &count, &state)
        defer { free(state) }
        if rv == -ESRCH { return nil }
        guard rv >= 0 else { throw SanlockStatus.error(rv, .inquire, "cannot inquire the leases of pid \(pid)") }
        guard let state, state.pointee != 0 else { return nil }
        return String(cString: state)
    }

    /// Whether `pid` has a registered connection to the daemon.
    static func isRegistered(pid: Int32) throws(LockError) -> Bool {
        var count: Int32 = 0
        let rv = sanlock_inquire(-1, pid, 0, &count, nil)
        if rv == -ESRCH { return false }
        guard rv >= 0 else { throw SanlockStatus.error(rv, .inquire, "cannot inquire the leases of pid \(pid)") }
        return true
    }

    // MARK: lockspaces and lease areas

    static func align(path: String) throws(LockError) -> Int {
        var disk = sanlk_disk()
        guard csanlock_disk_init(&disk, path, 0) == 0 else { throw .invalid("path too long for sanlock: \(path)") }
        let rv = sanlock_align(&disk)
        guard rv > 0 else { throw SanlockStatus.error(rv, .align, "cannot query the lease alignment of \(path)") }
        return Int(rv)
    }

    static func writeLockspace(name: String, path: String, ioTimeout: UInt32) throws(LockError) {
        var ls = try lockspace(name: name, hostID: 0, path: path)
        let rv = sanlock_write_lockspace(&ls, 0, 0, ioTimeout)
        guard rv >= 0 else { throw SanlockStatus.error(rv, .writeLockspace, "cannot initialise lockspace \(name) in \(path)") }
    }

    /// Joins the lockspace; already joined counts as success, a join in
    /// progress (another process started it) is waited for.
    static func joinLockspace(name: String, hostID: UInt64, path: String, ioTimeout: UInt32) throws(LockError) {
        var ls = try lockspace(name: name, hostID: hostID, path: path)
        for _ in 0..<10 {
            let rv = sanlock_add_lockspace_timeout(&ls, 0, ioTimeout)
            if rv >= 0 || rv == -EEXIST { return }
            if rv == -EINPROGRESS {
                _ = sanlock_inq_lockspace(&ls, UInt32(SANLK_INQ_WAIT))
                continue
            }
            throw SanlockStatus.error(rv, .addLockspace, "cannot join lockspace \(name) (\(path)) as host_id \(hostID)")
        }
        throw SanlockStatus.error(-EINPROGRESS, .addLockspace, "cannot join lockspace \(name) (\(path)) as host_id \(hostID)")
    }

    /// sanlock's check of a lockspace area (the record of host_id 1, which
    /// sanlock writes last): 0 when valid, else the code.
    static func readLockspace(name: String, path: String) -> Int32 {
        guard var ls = try? lockspace(name: name, hostID: 0, path: path) else { return -EINVAL }
        var ioTimeout: UInt32 = 0
        return sanlock_read_lockspace(&ls, 0, &ioTimeout)
    }

    /// sanlock's check of a lease area's leader record: 0 when valid.
    static func readLease(_ lease: SanlockLease) -> Int32 {
        var rv: Int32 = -EINVAL
        try? withResources([lease]) { resources, _ throws(LockError) in
            guard let res = resources[0] else { return }
            rv = sanlock_read_resource(res, 0)
        }
        return rv
    }

    static func initLease(_ lease: SanlockLease) throws(LockError) {
        try withResources([lease]) { resources, _ throws(LockError) in
            let rv = sanlock_init(nil, resources[0], 0, 0)
            guard rv >= 0 else { throw SanlockStatus.error(rv, .initLease, "cannot initialise \(lease)") }
        }
    }

    // MARK: helpers

    private static func lockspace(name: String, hostID: UInt64, path: String) throws(LockError) -> sanlk_lockspace {
        var ls = sanlk_lockspace()
        guard csanlock_lockspace_init(&ls, name, hostID, path, 0) == 0 else {
            throw .invalid("lockspace \(name): name or path too long for sanlock (\(path))")
        }
        return ls
    }

    /// C resources for the duration of `body`, versions applied.
    private static func withResources(
        _ leases: [SanlockLease],
        _ body: (UnsafeMutablePointer<UnsafeMutablePointer<sanlk_resource>?>, Int32) throws(LockError) -> Void
    ) throws(LockError) {
        var resources: [UnsafeMutablePointer<sanlk_resource>?] = []
        defer { resources.withUnsafeMutableBufferPointer { csanlock_resources_free($0.baseAddress, Int32($0.count)) } }
        for lease in leases {
            var flags: UInt32 = lease.shared ? UInt32(SANLK_RES_SHARED) : 0
            if lease.version != nil { flags |= UInt32(SANLK_RES_LVER) }
            guard
                let res = csanlock_resource_new(
                    lease.lockspace, lease.name, lease.path, lease.offset,
                    flags, lease.version ?? 0)
            else {
                throw .internalError("cannot allocate a sanlock resource for \(lease)")
            }
            resources.append(res)
        }
        var failure: LockError?
        resources.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            do throws(LockError) { try body(base, Int32(buf.count)) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    static func describe(_ leases: [SanlockLease]) -> String {
        leases.count == 1 ? leases[0].description : leases.map(\.description).joined(separator: ", ")
    }
}
