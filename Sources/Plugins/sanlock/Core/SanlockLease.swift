import LockDriver

/// One sanlock resource lease as the plugin asks the daemon for it: a name
/// in a lockspace, the file (or device) and offset of its lease area.
public struct SanlockLease: Sendable, Equatable, CustomStringConvertible {
    public var lockspace: String
    public var name: String
    public var path: String
    public var offset: UInt64
    public var shared: Bool
    /// The lease version a state string promised; acquire fails if it moved on.
    public var version: UInt64?

    /// sanlock's fixed field sizes, terminating NUL included.
    public static let nameLength = 48
    public static let pathLength = 1024
    /// sanlock takes at most this many leases per call (SANLK_MAX_RESOURCES).
    public static let maxPerProcess = 8

    /// The lockspace libvirt uses for automatic disk leases.
    public static let autoLockspace = "__LIBVIRT__DISKS__"

    public init(lockspace: String, name: String, path: String, offset: UInt64 = 0, shared: Bool = false) throws(LockError) {
        guard !name.isEmpty, name.utf8.count < Self.nameLength else {
            throw .invalid("lease name '\(name)' must be 1 to \(Self.nameLength - 1) bytes")
        }
        guard !lockspace.isEmpty, lockspace.utf8.count < Self.nameLength else {
            throw .invalid("lease '\(name)': lockspace name '\(lockspace)' must be 1 to \(Self.nameLength - 1) bytes")
        }
        guard path.hasPrefix("/"), path.utf8.count < Self.pathLength else {
            throw .invalid("lease '\(name)': path '\(path)' must be absolute and shorter than \(Self.pathLength) bytes")
        }
        // sanlock's state strings separate leases with spaces and cannot carry one.
        guard !path.containsByte(" "), !name.containsByte(" "), !lockspace.containsByte(" ") else {
            throw .invalid("lease '\(name)' (\(lockspace), \(path)): sanlock cannot describe names or paths containing spaces")
        }
        self.lockspace = lockspace
        self.name = name
        self.path = path
        self.offset = offset
        self.shared = shared
    }

    /// The automatic lease of a disk, laid out as libvirt lays it out:
    /// named by the MD5 of the disk path, in its own file at offset 0.
    public static func automatic(disk: String, leaseDir: String, shared: Bool) throws(LockError) -> SanlockLease {
        let name = MD5.hex(disk)
        return try SanlockLease(lockspace: autoLockspace, name: name, path: "\(leaseDir)/\(name)", shared: shared)
    }

    /// The automatic lockspace's file in `leaseDir`.
    public static func autoLockspacePath(leaseDir: String) -> String { "\(leaseDir)/\(autoLockspace)" }

    public var description: String {
        "lease '\(name)' in lockspace '\(lockspace)' (\(path):\(offset)\(shared ? ", shared" : ""))"
    }
}
