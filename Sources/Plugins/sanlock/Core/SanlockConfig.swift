import Glibc
import LockDriver

/// The plugin's configuration, `<driver>-sanlock.conf`, with libvirt's keys
/// and defaults so an existing `/etc/libvirt/qemu-sanlock.conf` works
/// unchanged, plus `failure_helper` (ours).
public struct SanlockConfig: Sendable, Equatable {
    /// Lease every read/write disk automatically in `__LIBVIRT__DISKS__`.
    public var autoDiskLeases = false
    /// Where the automatic lockspace and disk lease files live.
    public var diskLeaseDir = "/var/lib/libvirt/sanlock"
    /// This host's id in the automatic lockspace (1...2000); 0 = unset.
    public var hostID: UInt64 = 0
    /// Refuse to start an object with read/write disks but no lease.
    public var requireLeaseForDisks = true
    /// Seconds; 0 = sanlock's default (10).
    public var ioTimeout: UInt32 = 0
    /// Owner and group given to the lease files we create (nil: unchanged).
    public var user: UInt32?
    public var group: UInt32?
    /// Program sanlock runs when a lease is lost (killpath) outside libvirt;
    /// nil: `<prefix>/bin/lockmgr` next to the installed plugin.
    public var failureHelper: String?

    public static let knownKeys: Set<String> = [
        "auto_disk_leases", "disk_lease_dir", "host_id", "require_lease_for_disks",
        "io_timeout", "user", "group", "failure_helper",
    ]

    /// sanlock's limit on host ids in a lockspace of default geometry.
    public static let hostIDs: ClosedRange<Int64> = 1...2000

    public init() {}

    /// Reads the plugin config; `nil` or a missing file means defaults.
    public static func load(path: String?) throws(LockError) -> SanlockConfig {
        guard let path else { return SanlockConfig() }
        return try SanlockConfig(try ConfFile.load(path: path, missingIsEmpty: true))
    }

    public init(_ conf: ConfFile) throws(LockError) {
        try conf.rejectUnknown(Self.knownKeys)
        autoDiskLeases = try conf.bool("auto_disk_leases") ?? false
        if let dir = try conf.absolutePath("disk_lease_dir") { diskLeaseDir = dir }
        hostID = UInt64(try conf.integer("host_id", in: Self.hostIDs) ?? 0)
        requireLeaseForDisks = try conf.bool("require_lease_for_disks") ?? !autoDiskLeases
        ioTimeout = UInt32(try conf.integer("io_timeout", in: 0...600) ?? 0)
        if let name = try conf.string("user") { user = try Self.userID(name, origin: conf.location(of: "user")) }
        if let name = try conf.string("group") { group = try Self.groupID(name, origin: conf.location(of: "group")) }
        failureHelper = try conf.absolutePath("failure_helper")
        if autoDiskLeases && hostID == 0 {
            throw .config("\(conf.location(of: "auto_disk_leases")): auto_disk_leases = 1 needs host_id (this host's unique id, 1 to 2000)")
        }
    }

    /// libvirt accepts a name or `+N` for a numeric id.
    static func userID(_ text: String, origin: String) throws(LockError) -> UInt32 {
        if let id = numericID(text) { return id }
        guard let entry = getpwnam(text) else { throw .config("\(origin): user '\(text)' does not exist") }
        return entry.pointee.pw_uid
    }

    static func groupID(_ text: String, origin: String) throws(LockError) -> UInt32 {
        if let id = numericID(text) { return id }
        guard let entry = getgrnam(text) else { throw .config("\(origin): group '\(text)' does not exist") }
        return entry.pointee.gr_gid
    }

    private static func numericID(_ text: String) -> UInt32? {
        text.hasPrefix("+") ? UInt32(text.dropFirst()) : nil
    }
}
