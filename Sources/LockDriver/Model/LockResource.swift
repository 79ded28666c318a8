import CLockDriver

/// How a resource is used: libvirt's READONLY / SHARED flags, or neither.
public enum AccessMode: String, Sendable, CaseIterable {
    case exclusive
    case shared
    case readOnly = "readonly"

    public var flags: UInt32 {
        switch self {
        case .exclusive: return 0
        case .shared: return UInt32(VIR_LOCK_MANAGER_RESOURCE_SHARED.rawValue)
        case .readOnly: return UInt32(VIR_LOCK_MANAGER_RESOURCE_READONLY.rawValue)
        }
    }

    /// READONLY wins over SHARED, as in libvirt's plugins.
    public init?(flags: UInt32) {
        let known = AccessMode.shared.flags | AccessMode.readOnly.flags
        guard flags & ~known == 0 else { return nil }
        if flags & AccessMode.readOnly.flags != 0 {
            self = .readOnly
        } else if flags & AccessMode.shared.flags != 0 {
            self = .shared
        } else {
            self = .exclusive
        }
    }
}

/// A resource added to a lock manager: a disk by path, or an explicit lease.
public struct LockResource: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case disk(path: String)
        case lease(key: String, lockspace: String, path: String, offset: UInt64)
    }

    public var kind: Kind
    public var mode: AccessMode

    public init(_ kind: Kind, mode: AccessMode = .exclusive) {
        self.kind = kind
        self.mode = mode
    }

    public static func disk(_ path: String, mode: AccessMode = .exclusive) -> LockResource {
        LockResource(.disk(path: path), mode: mode)
    }

    public static func lease(
        key: String, lockspace: String, path: String, offset: UInt64 = 0,
        mode: AccessMode = .exclusive
    ) -> LockResource {
        LockResource(.lease(key: key, lockspace: lockspace, path: path, offset: offset), mode: mode)
    }

    /// The resource's name as the ABI passes it: a disk's path or a lease's key.
    public var name: String {
        switch kind {
        case .disk(let path): return path
        case .lease(let key, _, _, _): return key
        }
    }

    public var typeCode: UInt32 {
        switch kind {
        case .disk: return UInt32(VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK.rawValue)
        case .lease: return UInt32(VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE.rawValue)
        }
    }

    public var description: String {
        switch kind {
        case .disk(let path): return "disk '\(path)'"
        case .lease(let key, let ls, let path, let offset):
            return "lease '\(key)' (lockspace '\(ls)', \(path):\(offset))"
        }
    }
}
