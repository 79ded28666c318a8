/// A value in a libvirt-style configuration file.
public enum ConfValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case list([ConfValue])

    var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .list: return "a list"
        }
    }
}

/// One `name = value` line.
public struct ConfEntry: Sendable, Equatable {
    public var name: String
    public var value: ConfValue
    public var line: Int
}
