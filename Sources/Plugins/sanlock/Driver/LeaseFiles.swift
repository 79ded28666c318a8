import Glibc
import LockDriver
import SanlockCore

/// Creates the automatic lockspace and disk lease files exactly as
/// libvirt's plugin does, so either plugin can find the other's files:
/// mode 0600 (the lockspace 0660 when a group is configured), owner from
/// the config, zero-filled to sanlock's alignment, then initialised by
/// the daemon. Existing files are used as they are: a live lease is never
/// rewritten, and one someone else is still initialising is waited for
/// (`UnfinishedArea`).
struct LeaseFiles {
    let config: SanlockConfig

    /// Makes sure `__LIBVIRT__DISKS__` exists, then joins it as host_id.
    func setUpAutoLockspace() throws(LockError) {
        let path = SanlockLease.autoLockspacePath(leaseDir: config.diskLeaseDir)
        let name = SanlockLease.autoLockspace
        let mode: mode_t = config.group == nil ? 0o600 : 0o660
        let ours = try create(path, mode: mode, what: "lockspace \(name)", fixExisting: true) { (file) throws(LockError) in
            try SanlockClient.writeLockspace(name: name, path: file, ioTimeout: config.ioTimeout)
        }
        if !ours {
            try awaitInitialised("lockspace \(name) file \(path)") { SanlockClient.readLockspace(name: name, path: path) }
        }
        try SanlockClient.joinLockspace(name: name, hostID: config.hostID, path: path, ioTimeout: config.ioTimeout)
    }

    /// Makes sure an automatic disk lease's file exists and is initialised.
    func ensure(_ lease: SanlockLease) throws(LockError) {
        _ = try create(lease.path, mode: 0o600, what: lease.description, fixExisting: false) { (file) throws(LockError) in
            var unlinked = lease
            unlinked.path = file
            try SanlockClient.initLease(unlinked)
        }
    }

    /// Waits while `read` (sanlock's check of an area someone else created)
    /// finds it unfinished. Any other answer is left to the call that
    /// follows, which reports it in its own words.
    func awaitInitialised(_ what: String, read: () -> Int32) throws(LockError) {
        let wait = UnfinishedArea(ioTimeout: config.ioTimeout)
        var waited = 0, look = 1
        var rv = read()
        while UnfinishedArea.isUnfinished(rv) {
            guard waited < wait.limitMs else { throw SanlockStatus.error(rv, .read, wait.gaveUp(what)) }
            let pause = min(UnfinishedArea.pauseMs(beforeLook: look), wait.limitMs - waited)
            usleep(UInt32(pause) * 1000)
            waited += pause
            look += 1
            rv = read()
        }
    }

    /// Creates `path` if missing, complete and initialised, or not at all.
    /// The file is built under a private name and hard-linked into place
    /// once `initialise` (given the private name) has run: several hosts
    /// or processes using a disk for the first time at once all find a
    /// finished lease at `path` (one link wins, the others use it), and a
    /// creator that fails or dies half-way (a full or read-only directory,
    /// a call timeout) leaves nothing at `path` that would break the next
    /// attempt. A link, never a rename: a rename would replace a lease
    /// someone may already hold with a different file. Returns whether the
    /// file at `path` is the one we built (else someone else's, which may
    /// still be unfinished).
    private func create(
        _ path: String, mode: mode_t, what: String, fixExisting: Bool,
        initialise: (String) throws(LockError) -> Void
    ) throws(LockError) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 {
            if fixExisting { try fixOwnership(path, st) }
            return false
        }
        let dir = parent(of: path)
        var dst = stat()
        guard stat(dir, &dst) == 0, dst.st_mode & S_IFMT == S_IFDIR else {
            throw .config("cannot create \(what): disk_lease_dir \(dir) does not exist or is not a directory")
        }
        let file = String(path[path.index(after: path.lastIndex(of: "/") ?? path.startIndex)...])
        // Unique among live creators: the lease directory is shared by the
        // hosts, each with its own host_id, and pids are unique per host.
        let building = "\(dir)/.\(file).\(config.hostID).\(getpid()).new"
        unlink(building)  // left by a dead process of this host with the same pid
        let fd = open(building, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 {
            throw .backend("cannot create \(what) file \(path) (as \(building)): \(Errno.current)")
        }
        do throws(LockError) {
            // The configured mode, whatever the caller's umask.
            guard fchmod(fd, mode) == 0 else { throw .backend("cannot chmod \(building): \(Errno.current)") }
            if config.user != nil || config.group != nil {
                guard fchown(fd, config.user ?? UInt32.max, config.group ?? UInt32.max) == 0 else {
                    throw .backend("cannot chown \(building): \(Errno.current)")
                }
            }
            let size = try SanlockClient.align(path: building)
            try zeroFill(fd, size: size, path: path)
        } catch {
            close(fd)
            unlink(building)
            throw error
        }
        // close() once, whatever it returns: inside libvirtd a second close
        // could hit another thread's fd that reused the number.
        let closed = close(fd) == 0 ? nil : Errno.current
        defer { unlink(building) }
        if let closed { throw .backend("cannot save \(path) (as \(building)): \(closed)") }
        try initialise(building)
        // EEXIST: a concurrent creator put its own file there first.
        guard link(building, path) == 0 else {
            if errno == EEXIST { return false }
            throw .backend("cannot put \(what) in place: link \(building) to \(path): \(Errno.current)")
        }
        return true
    }

    private func zeroFill(_ fd: Int32, size: Int, path: String) throws(LockError) {
        let chunk = [UInt8](repeating: 0, count: 65536)
        var written = 0
        while written < size {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, size - written)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .backend("cannot allocate \(size) bytes for \(path): \(Errno.current)")
            }
            written += n
        }
    }

    /// libvirt hands an existing lockspace to the configured user/group.
    private func fixOwnership(_ path: String, _ st: stat) throws(LockError) {
        let wrongOwner = (config.user.map { $0 != st.st_uid } ?? false) || (config.group.map { $0 != st.st_gid } ?? false)
        if wrongOwner && chown(path, config.user ?? UInt32.max, config.group ?? UInt32.max) != 0 {
            throw .backend("cannot chown \(path): \(Errno.current)")
        }
        if config.group != nil && st.st_mode & 0o060 != 0o060 && chmod(path, 0o660) != 0 {
            throw .backend("cannot chmod \(path) to 0660: \(Errno.current)")
        }
    }

    private func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
