/// A typed parameter as the ABI passes it (`virLockManagerParam`).
public enum ParamValue: Sendable, Equatable {
    case string(String?)
    case cstring(String?)
    case int(Int32)
    case long(Int64)
    case uint(UInt32)
    case ulong(UInt64)
    case double(Double)
    case uuid(UUIDBytes)
}

public struct LockParam: Sendable, Equatable {
    public var key: String
    public var value: ParamValue

    public init(_ key: String, _ value: ParamValue) {
        self.key = key
        self.value = value
    }
}

extension LockObject {
    /// The five parameters libvirt passes to `drvNew` for a domain.
    public var params: [LockParam] {
        [
            LockParam("uuid", .uuid(uuid)),
            LockParam("name", .string(name)),
            LockParam("id", .uint(id)),
            LockParam("pid", .uint(pid)),
            LockParam("uri", .cstring(uri)),
        ]
    }

    /// Rebuilds the object from `drvNew` parameters. Unknown keys are
    /// ignored (as libvirt's sanlock plugin does) so newer hosts still work.
    public init(params: [LockParam]) throws(LockError) {
        var uuid: UUIDBytes?
        var name: String?
        var id: UInt32 = 0
        var pid: UInt32?
        var uri: String?
        for p in params {
            switch (p.key, p.value) {
            case ("uuid", .uuid(let u)): uuid = u
            case ("name", .string(let s)), ("name", .cstring(let s)): name = s
            case ("id", .uint(let v)): id = v
            case ("id", .int(let v)): id = UInt32(bitPattern: v)
            case ("pid", .uint(let v)): pid = v
            case ("pid", .int(let v)):
                guard v >= 0 else { throw .invalid("object parameter 'pid' is negative (\(v))") }
                pid = UInt32(v)
            case ("uri", .cstring(let s)), ("uri", .string(let s)): uri = s
            case ("uuid", _), ("name", _), ("id", _), ("pid", _), ("uri", _):
                throw .invalid("object parameter '\(p.key)' has the wrong type")
            default: continue
            }
        }
        guard let uuid else { throw .invalid("object parameter 'uuid' is missing") }
        guard let name, !name.isEmpty else { throw .invalid("object parameter 'name' is missing") }
        guard let pid else { throw .invalid("object parameter 'pid' is missing") }
        self.init(uuid: uuid, name: name, id: id, pid: pid, uri: uri)
    }
}

extension LockResource {
    /// The parameters `drvAddResource` carries: none for a disk, and
    /// path/offset/lockspace for a lease.
    public var params: [LockParam] {
        switch kind {
        case .disk: return []
        case .lease(_, let lockspace, let path, let offset):
            return [
                LockParam("path", .string(path)),
                LockParam("offset", .ulong(offset)),
                LockParam("lockspace", .string(lockspace)),
            ]
        }
    }

    /// Rebuilds a resource from `drvAddResource` arguments.
    public init(type: UInt32, name: String, params: [LockParam], flags: UInt32) throws(LockError) {
        guard let mode = AccessMode(flags: flags) else {
            throw .invalid("resource '\(name)': unsupported flags 0x\(String(flags, radix: 16))")
        }
        switch type {
        case 0:
            guard !params.contains(where: { _ in true }) else {
                throw .invalid("disk '\(name)' takes no parameters")
            }
            self.init(.disk(path: name), mode: mode)
        case 1:
            var path: String?
            var offset: UInt64?
            var lockspace: String?
            for p in params {
                switch (p.key, p.value) {
                case ("path", .string(let s)), ("path", .cstring(let s)): path = s
                case ("lockspace", .string(let s)), ("lockspace", .cstring(let s)): lockspace = s
                case ("offset", .ulong(let v)): offset = v
                case ("offset", .long(let v)):
                    guard v >= 0 else { throw .invalid("lease '\(name)': negative offset \(v)") }
                    offset = UInt64(v)
                default:
                    throw .invalid("lease '\(name)': unexpected parameter '\(p.key)'")
                }
            }
            guard let path, !path.isEmpty else { throw .invalid("lease '\(name)': missing 'path'") }
            guard let lockspace, !lockspace.isEmpty else { throw .invalid("lease '\(name)': missing 'lockspace'") }
            self.init(.lease(key: name, lockspace: lockspace, path: path, offset: offset ?? 0), mode: mode)
        default:
            throw .invalid("resource '\(name)': unknown resource type \(type)")
        }
    }
}
