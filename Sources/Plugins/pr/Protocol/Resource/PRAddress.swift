import LockDriver

/// Where a pr resource is, parsed once from its name (when the plugin is
/// given the disk, when a keeper record is read) and carried to the
/// transport factory, which only picks by case.
public enum PRAddress: Sendable, Equatable {
    /// A LUN reached through libiscsi.
    case iscsi(ISCSIURL)
    /// A block or sg device, through SG_IO or qemu-pr-helper.
    case devicePath(String)

    public init(parsing name: String) throws(LockError) {
        if name.hasPrefix(ISCSIURL.scheme) {
            self = .iscsi(try ISCSIURL(parsing: name))
            return
        }
        guard name.hasPrefix("/") else {
            throw .invalid("resource '\(name)': the pr plugin takes an absolute device path or an iscsi:// URL")
        }
        self = .devicePath(name)
    }
}

/// One resource as the plugin sees it: its name as libvirt gave it (what
/// state strings and keeper records carry), its address, its mode.
public struct PRResource: Sendable, Equatable {
    public let name: String
    public let address: PRAddress
    public var mode: AccessMode

    public init(_ name: String, mode: AccessMode = .exclusive) throws(LockError) {
        self.name = name
        address = try PRAddress(parsing: name)
        self.mode = mode
    }
}
