import CLockDriver
import Glibc

/// Conversions between `[LockParam]` and C arrays of `virLockManagerParam`.
enum CParams {
    /// Decodes `count` parameters. Never traps on hostile input: a NULL
    /// array with a non-zero count or an unknown type is an error.
    static func decode(_ params: UnsafeMutablePointer<virLockManagerParam>?, count: Int) throws(LockError) -> [LockParam] {
        guard count >= 0 else { throw .invalid("parameter count \(UInt(bitPattern: count)) is out of range") }
        guard count > 0 else { return [] }
        guard let params else { throw .invalid("\(count) parameters announced but none passed") }
        guard count <= 64 else { throw .invalid("too many parameters (\(count))") }
        var out: [LockParam] = []
        for i in 0..<count {
            let p = params[i]
            guard let keyPtr = p.key else { throw .invalid("parameter \(i) has no key") }
            let key = String(cString: keyPtr)
            let value: ParamValue
            switch p.type {
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_STRING.rawValue):
                value = .string(p.value.str.map { String(cString: $0) })
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_CSTRING.rawValue):
                value = .cstring(p.value.cstr.map { String(cString: $0) })
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_INT.rawValue): value = .int(p.value.iv)
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_LONG.rawValue): value = .long(p.value.l)
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_UINT.rawValue): value = .uint(p.value.ui)
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_ULONG.rawValue): value = .ulong(p.value.ul)
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_DOUBLE.rawValue): value = .double(p.value.d)
            case Int32(VIR_LOCK_MANAGER_PARAM_TYPE_UUID.rawValue):
                var raw = p.value.uuid
                let bytes = withUnsafeBytes(of: &raw) { Array($0) }
                guard let u = UUIDBytes(bytes: bytes) else { throw .invalid("parameter '\(key)': bad uuid") }
                value = .uuid(u)
            default:
                throw .invalid("parameter '\(key)' has unknown type \(p.type)")
            }
            out.append(LockParam(key, value))
        }
        return out
    }

    /// Calls `body` with a C array for `params`; the strings live until it returns.
    /// No params means a NULL array, as libvirt passes for disks: its lockd
    /// plugin rejects a disk whose params pointer is not NULL.
    static func withCArray<R>(
        _ params: [LockParam],
        _ body: (UnsafeMutablePointer<virLockManagerParam>?, Int) -> R
    ) -> R {
        guard !params.isEmpty else { return body(nil, 0) }
        var owned: [UnsafeMutablePointer<CChar>] = []
        defer { owned.forEach { free($0) } }
        func dup(_ s: String) -> UnsafeMutablePointer<CChar>? {
            guard let p = strdup(s) else { return nil }
            owned.append(p)
            return p
        }
        var array: [virLockManagerParam] = params.map { p in
            var c = virLockManagerParam()
            c.key = UnsafePointer(dup(p.key))
            switch p.value {
            case .string(let s):
                c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_STRING.rawValue)
                c.value.str = s.flatMap(dup)
            case .cstring(let s):
                c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_CSTRING.rawValue)
                c.value.cstr = UnsafePointer(s.flatMap(dup))
            case .int(let v): c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_INT.rawValue); c.value.iv = v
            case .long(let v): c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_LONG.rawValue); c.value.l = v
            case .uint(let v): c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_UINT.rawValue); c.value.ui = v
            case .ulong(let v): c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_ULONG.rawValue); c.value.ul = v
            case .double(let v): c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_DOUBLE.rawValue); c.value.d = v
            case .uuid(let u):
                c.type = Int32(VIR_LOCK_MANAGER_PARAM_TYPE_UUID.rawValue)
                withUnsafeMutableBytes(of: &c.value.uuid) { dst in
                    for (i, b) in u.bytes.enumerated() where i < dst.count { dst[i] = b }
                }
            }
            return c
        }
        return array.withUnsafeMutableBufferPointer { body($0.baseAddress, $0.count) }
    }
}
