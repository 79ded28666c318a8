import Glibc
import LockDriver
import PRProtocol
import PRTransport
import SanlockCore

/// A config file: it parses, or fails with a config error naming the file
/// and line; what parses renders back to text that parses to the same
/// entries; every typed getter, the host settings and both plugin configs
/// either give a value or a config error naming the file.
enum ConfigTarget {
    static let origin = "fuzz.conf"

    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        let text = String(decoding: bytes, as: UTF8.self)
        let conf: ConfFile
        do {
            conf = try ConfFile(parsing: text, origin: origin)
        } catch {
            try expectConfigError(error, "parsing")
            return
        }
        let lines = text.utf8.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        for e in conf.entries {
            try expect((1...lines).contains(e.line), "entry '\(e.name)' on line \(e.line) of a \(lines)-line text")
            try expect(
                e.name.utf8.first.map(startsName) == true && e.name.utf8.allSatisfy(continuesName),
                "entry name '\(e.name)' is not an identifier")
            try typedGetters(conf, e.name)
        }
        try roundTrip(conf)
        try hostSettings(bytes)
        do { _ = try SanlockConfig(conf) } catch { try expectConfigError(error, "the sanlock config") }
        do {
            _ = try PRConfig(conf, systemInitiatorFile: "/nonexistent/initiatorname", machineIDFile: "/nonexistent/machine-id")
        } catch {
            try expectConfigError(error, "the pr config")
        }
    }

    /// lockmgr.conf as the host reads it: from a file, through HostSettings.
    private static func hostSettings(_ bytes: [UInt8]) throws(FuzzFailure) {
        var template = Array("/tmp/lockmgr-fuzz-XXXXXX.conf".utf8CString)
        let fd = mkstemps(&template, 5)
        guard fd >= 0 else { throw FuzzFailure(message: "cannot create a temporary config file: \(Errno.current)") }
        let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(path) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw FuzzFailure(message: "cannot write \(path): \(Errno.current)") }
        do {
            _ = try HostSettings.resolve(configPath: path, layout: InstallLayout(prefix: "/usr/local"), environment: { _ in nil })
        } catch {
            try expect(
                error.kind == .config && error.message.hasPrefix(path + ":"),
                "host settings failed with a \(error.kind) not naming \(path): \(error.message)")
        }
    }

    private static func typedGetters(_ conf: ConfFile, _ name: String) throws(FuzzFailure) {
        do { _ = try conf.string(name) } catch { try expectConfigError(error, "string('\(name)')") }
        do { _ = try conf.integer(name, in: 0...100) } catch { try expectConfigError(error, "integer('\(name)')") }
        do { _ = try conf.bool(name) } catch { try expectConfigError(error, "bool('\(name)')") }
        do { _ = try conf.stringList(name) } catch { try expectConfigError(error, "stringList('\(name)')") }
    }

    private static func expectConfigError(_ error: LockError, _ what: String) throws(FuzzFailure) {
        try expect(
            error.kind == .config && error.message.hasPrefix(origin + ":"),
            "\(what) failed with a \(error.kind) not naming \(origin): \(error.message)")
    }

    /// Renders the entries in the file syntax and parses them again.
    private static func roundTrip(_ conf: ConfFile) throws(FuzzFailure) {
        var text = ""
        for e in conf.entries {
            guard let value = render(e.value) else { return }
            text += "\(e.name) = \(value)\n"
        }
        let again: ConfFile
        do {
            again = try ConfFile(parsing: text, origin: origin)
        } catch {
            throw FuzzFailure(message: "rendered entries do not parse (\(error.message)):\n\(text)")
        }
        try expect(
            again.entries.map(\.name) == conf.entries.map(\.name)
                && again.entries.map(\.value) == conf.entries.map(\.value),
            "rendered entries parse differently:\n\(text)")
    }

    /// nil for the strings no quoting can hold (both quotes and a newline or a `"""`).
    private static func render(_ value: ConfValue) -> String? {
        switch value {
        case .integer(let v): return "\(v)"
        case .string(let s):
            // By byte, as the parser reads: a quote followed by a combining
            // mark is another Character, which String.contains would miss.
            let oneLine = !s.containsByte("\n")
            if oneLine && !s.containsByte("\"") { return "\"\(s)\"" }
            if oneLine && !s.containsByte("'") { return "'\(s)'" }
            let quotes = Array("\"\"\"".utf8)
            let bytes = Array(s.utf8)
            let hasTripleQuote = bytes.count >= 3 && (0...bytes.count - 3).contains { bytes[$0..<$0 + 3].elementsEqual(quotes) }
            if !hasTripleQuote && bytes.last != UInt8(ascii: "\"") { return "\"\"\"\(s)\"\"\"" }
            return nil
        case .list(let items):
            var parts: [String] = []
            for item in items {
                guard let part = render(item) else { return nil }
                parts.append(part)
            }
            return "[" + parts.joined(separator: ", ") + "]"
        }
    }

    private static func startsName(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || c == UInt8(ascii: "_")
    }

    private static func continuesName(_ c: UInt8) -> Bool {
        startsName(c) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }
}
