/// Minimal JSON values for the programs' --json output (no Foundation here).
public enum JSON {
    case string(String?)
    case number(Int64?)
    case bool(Bool)
    case array([JSON])
    case object([(String, JSON)])

    public var text: String {
        switch self {
        case .string(nil), .number(nil): return "null"
        case .string(let s?): return JSON.quote(s)
        case .number(let n?): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.map { JSON.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    /// The error object the tools print with `--json`: `{"error": {"kind", "message"}}`.
    public static func error(_ error: LockError) -> JSON {
        .object([("error", .object([("kind", .string(error.kind.description)), ("message", .string(error.message))]))])
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                out += "\\u00" + Hex.byte(UInt8(u.value))
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
