import LockDriver

/// sanlock's own state string, as `sanlock_inquire` produces it and
/// libvirt stores it: leases separated by spaces, each
/// `LOCKSPACE:NAME:PATH:OFFSET[:PATH:OFFSET...]:LVER`, or `...:SH` for a
/// shared lease (no version); a backslash escapes the next character.
/// The plugin hands these strings out untouched and only reads them back.
public struct LeaseState: Sendable, Equatable {
    public struct Disk: Sendable, Equatable {
        public var path: String
        public var offset: UInt64
        public init(path: String, offset: UInt64) {
            self.path = path
            self.offset = offset
        }
    }

    public struct Entry: Sendable, Equatable {
        public var lockspace: String
        public var name: String
        public var disks: [Disk]
        /// nil for shared leases, which carry no version.
        public var version: UInt64?
        public var shared: Bool

        public init(lockspace: String, name: String, disks: [Disk], version: UInt64?, shared: Bool) {
            self.lockspace = lockspace
            self.name = name
            self.disks = disks
            self.version = version
            self.shared = shared
        }
    }

    public var entries: [Entry]

    public init(parsing text: String) throws(LockError) {
        var entries: [Entry] = []
        for item in text.splitBytes(at: " ") {
            entries.append(try Self.entry(item))
        }
        self.entries = entries
    }

    /// The entry describing a lease, matched by lockspace and name.
    public func entry(for lease: SanlockLease) -> Entry? {
        entries.first { $0.lockspace == lease.lockspace && $0.name == lease.name }
    }

    private static func entry(_ item: String) throws(LockError) -> Entry {
        let fields = split(item)
        func bad(_ why: String) -> LockError {
            .invalid("state entry '\(item)' is not a sanlock lease (\(why)); expected LOCKSPACE:NAME:PATH:OFFSET:VERSION")
        }
        guard fields.count >= 4 else { throw bad("too few fields") }
        var rest = Array(fields.dropFirst(2))
        var version: UInt64?
        var shared = false
        if rest.count % 2 == 1 {
            let last = rest.removeLast()
            if last == "SH" {
                shared = true
            } else {
                guard let v = UInt64(last) else { throw bad("version '\(last)' is not a number") }
                version = v
            }
        }
        var disks: [Disk] = []
        var i = 0
        while i + 1 < rest.count {
            guard let offset = UInt64(rest[i + 1]) else { throw bad("offset '\(rest[i + 1])' is not a number") }
            disks.append(Disk(path: rest[i], offset: offset))
            i += 2
        }
        guard !fields[0].isEmpty, !fields[1].isEmpty, !disks.isEmpty else { throw bad("empty field") }
        return Entry(lockspace: fields[0], name: fields[1], disks: disks, version: version, shared: shared)
    }

    /// Splits on ':' not preceded by a backslash, removing the escapes.
    private static func split(_ item: String) -> [String] {
        var fields: [String] = []
        var current: [UInt8] = []
        var escaped = false
        for byte in item.utf8 {
            if escaped {
                current.append(byte)
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: ":") {
                fields.append(String(decoding: current, as: UTF8.self))
                current = []
            } else {
                current.append(byte)
            }
        }
        fields.append(String(decoding: current, as: UTF8.self))
        return fields
    }
}
