import ArgumentParser
import Glibc
import LockDriver

extension LockResource {
    var json: JSON {
        var fields: [(String, JSON)] = [("mode", .string(mode.rawValue))]
        switch kind {
        case .disk(let path):
            fields.insert(contentsOf: [("type", .string("disk")), ("path", .string(path))], at: 0)
        case .lease(let key, let ls, let path, let offset):
            fields.insert(
                contentsOf: [
                    ("type", .string("lease")), ("key", .string(key)), ("lockspace", .string(ls)),
                    ("path", .string(path)), ("offset", .number(Int64(clamping: offset))),
                ], at: 0)
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
        print(
            JSON.error(error).text)
    }
}

/// Writes a line to stderr (fd 2) without touching C's shared FILE state.
func writeStderr(_ line: String) {
    let text = line.hasSuffix("\n") ? line : line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
