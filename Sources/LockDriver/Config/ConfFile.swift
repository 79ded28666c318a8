import Glibc

/// A parsed configuration file in libvirt's syntax, with typed accessors
/// whose errors name the file and line of the offending entry.
public struct ConfFile: Sendable {
    /// Where the text came from, for error messages.
    public var origin: String
    /// Entries in file order, duplicates included.
    public var entries: [ConfEntry]

    public init(origin: String, entries: [ConfEntry]) {
        self.origin = origin
        self.entries = entries
    }

    /// An empty configuration: what a missing optional file means.
    public static func empty(origin: String) -> ConfFile {
        ConfFile(origin: origin, entries: [])
    }

    /// Parses `text`; errors carry `origin:line`.
    public init(parsing text: String, origin: String) throws(LockError) {
        var parser = ConfParser(text: Array(text.utf8), origin: origin)
        self.init(origin: origin, entries: try parser.parse())
    }

    /// Reads and parses a file. With `missingIsEmpty` a file that does not
    /// exist yields an empty configuration (libvirt's rule for plugin configs).
    public static func load(path: String, missingIsEmpty: Bool = false) throws(LockError) -> ConfFile {
        switch FileText.read(path) {
        case .success(let text):
            return try ConfFile(parsing: text, origin: path)
        case .failure(let error) where error.code == ENOENT && missingIsEmpty:
            return .empty(origin: path)
        case .failure(let error):
            throw .config("cannot read config file \(path): \(error)")
        }
    }

    /// The first entry with this name: libvirt's "first duplicate wins".
    public func entry(_ name: String) -> ConfEntry? {
        entries.first { $0.name == name }
    }

    public func contains(_ name: String) -> Bool { entry(name) != nil }

    func whereIs(_ e: ConfEntry) -> String { "\(origin):\(e.line)" }

    /// `file:line` of the setting `name`, or just the file when it is not
    /// set: where a plugin's own check of a value points the reader.
    public func location(of name: String) -> String {
        entry(name).map(whereIs) ?? origin
    }

    public func string(_ name: String) throws(LockError) -> String? {
        guard let e = entry(name) else { return nil }
        guard case .string(let s) = e.value else {
            throw .config("\(whereIs(e)): '\(name)' must be a string, not \(e.value.typeName)")
        }
        return s
    }

    /// A string setting that must be an absolute path (a relative one would
    /// depend on whichever directory the host happens to run in).
    public func absolutePath(_ name: String) throws(LockError) -> String? {
        guard let path = try string(name) else { return nil }
        guard path.hasPrefix("/") else {
            throw .config("\(location(of: name)): '\(name)' must be an absolute path, not '\(path)'")
        }
        return path
    }

    public func integer(_ name: String, in range: ClosedRange<Int64>? = nil) throws(LockError) -> Int64? {
        guard let e = entry(name) else { return nil }
        guard case .integer(let v) = e.value else {
            throw .config("\(whereIs(e)): '\(name)' must be an integer, not \(e.value.typeName)")
        }
        if let range, !range.contains(v) {
            throw .config("\(whereIs(e)): '\(name)' must be between \(range.lowerBound) and \(range.upperBound), not \(v)")
        }
        return v
    }

    /// Booleans are the integers 0 and 1, as in libvirt.
    public func bool(_ name: String) throws(LockError) -> Bool? {
        guard let e = entry(name) else { return nil }
        guard case .integer(let v) = e.value, v == 0 || v == 1 else {
            throw .config("\(whereIs(e)): '\(name)' must be 0 or 1")
        }
        return v == 1
    }

    public func stringList(_ name: String) throws(LockError) -> [String]? {
        guard let e = entry(name) else { return nil }
        guard case .list(let items) = e.value else {
            throw .config("\(whereIs(e)): '\(name)' must be a list of strings, not \(e.value.typeName)")
        }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                throw .config("\(whereIs(e)): '\(name)' must contain only strings")
            }
            out.append(s)
        }
        return out
    }

    /// Rejects names outside `known`: a misspelt key silently meaning
    /// "default" is how locks end up not being taken.
    public func rejectUnknown(_ known: Set<String>) throws(LockError) {
        for e in entries where !known.contains(e.name) {
            throw .config("\(whereIs(e)): unknown setting '\(e.name)'")
        }
    }
}

/// Whole-file reads with errno, shared by everything that reads small files.
public enum FileText {
    /// The file as text; invalid UTF-8 becomes U+FFFD.
    public static func read(_ path: String, limit: Int = 1 << 20) -> Result<String, Errno> {
        bytes(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The file's bytes, as they are.
    public static func bytes(_ path: String, limit: Int = 1 << 20) -> Result<[UInt8], Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.current) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        // No bigger than the limit needs: a small file (a /proc stat line,
        // read on every acquire) should not pay for zeroing 64 KiB.
        var chunk = [UInt8](repeating: 0, count: limit < 65536 ? max(limit, 0) + 1 : 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.current)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { return .failure(Errno(EFBIG)) }
        }
        return .success(bytes)
    }
}
