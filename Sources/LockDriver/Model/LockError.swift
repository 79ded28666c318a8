import CLockDriver

/// Why a lock operation failed. Plugins classify their errors with it and
/// hosts map it to exit codes (and, inside libvirt, to libvirt error numbers).
public enum LockErrorKind: Int32, Sendable, CustomStringConvertible {
    case internalError = 0
    case conflict = 1
    case backend = 2
    case config = 3
    case invalid = 4
    case unsupported = 5

    public var description: String {
        switch self {
        case .internalError: return "internal error"
        case .conflict: return "lock conflict"
        case .backend: return "backend failure"
        case .config: return "configuration error"
        case .invalid: return "invalid request"
        case .unsupported: return "unsupported request"
        }
    }
}

/// An error from a lock plugin, the loader or the configuration: a kind and
/// a sentence saying what failed and where.
public struct LockError: Error, Sendable, Equatable, CustomStringConvertible {
    public var kind: LockErrorKind
    public var message: String

    public init(_ kind: LockErrorKind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public static func conflict(_ m: String) -> LockError { LockError(.conflict, m) }
    public static func backend(_ m: String) -> LockError { LockError(.backend, m) }
    public static func config(_ m: String) -> LockError { LockError(.config, m) }
    public static func invalid(_ m: String) -> LockError { LockError(.invalid, m) }
    public static func unsupported(_ m: String) -> LockError { LockError(.unsupported, m) }
    public static func internalError(_ m: String) -> LockError { LockError(.internalError, m) }
}
