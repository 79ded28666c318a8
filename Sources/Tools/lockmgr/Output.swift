import ArgumentParser
import Glibc
import LockDriver

/// Exit statuses (sysexits.h numbers), one per kind of failure.
enum ExitStatus {
    static func code(for kind: LockErrorKind) -> Int32 {
        switch kind {
        case .unsupported: return 64   // EX_USAGE
        case .invalid: return 65       // EX_DATAERR
        case .backend: return 69       // EX_UNAVAILABLE
        case .internalError: return 70 // EX_SOFTWARE
        case .conflict: return 75      // EX_TEMPFAIL: held by someone else, may work later
        case .config: return 78        // EX_CONFIG
        }
    }
}

/// Minimal JSON values for --json output.
enum JSON {
    case string(String?)
    case number(Int64?)
    case bool(Bool)
    case array([JSON])
    case object([(String, JSON)])

    var text: String {
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

    static func quote(_ s: String) -> String {
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

extension LockResource {
    var json: JSON {
        var fields: [(String, JSON)] = [("mode", .string(mode.rawValue))]
        switch kind {
        case .disk(let path):
            fields.insert(contentsOf: [("type", .string("disk")), ("path", .string(path))], at: 0)
        case .lease(let key, let ls, let path, let offset):
            fields.insert(contentsOf: [("type", .string("lease")), ("key", .string(key)), ("lockspace", .string(ls)),
                                       ("path", .string(path)), ("offset", .number(Int64(clamping: offset)))], at: 0)
        }
        return .object(fields)
    }
}

/// Runs a command body, turning LockErrors into a message and the exit
/// status of their kind (and a JSON error object with --json).
func reportingErrors(json: Bool, _ body: () throws(LockError) -> Void) throws {
    do {
        try body()
    } catch {
        printError(error, json: json)
        throw ExitCode(ExitStatus.code(for: error.kind))
    }
}

func printError(_ error: LockError, json: Bool) {
    writeStderr("lockmgr: \(error.message)")
    if json {
        print(JSON.object([("error", .object([("kind", .string(error.kind.description)),
                                              ("message", .string(error.message))]))]).text)
    }
}

/// Writes a line to stderr (fd 2) without touching C's shared FILE state.
func writeStderr(_ line: String) {
    let text = line.hasSuffix("\n") ? line : line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
