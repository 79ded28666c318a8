import Foundation

/// `sanlock client status` output: registered processes, joined
/// lockspaces, and held resources with their owners.
public struct SanlockStatus: Sendable, CustomStringConvertible {
    public struct Resource: Sendable, Equatable {
        public var lockspace: String
        public var name: String
        public var path: String
        public var offset: UInt64
        /// The lease version: sanlock increments it on every acquisition.
        public var version: UInt64?
        public var ownerPid: Int32
    }

    /// pid -> owner name ("p PID NAME"; the daemon's own threads show pid -1).
    public var processes: [Int32: String] = [:]
    /// "s LOCKSPACE:HOST_ID:PATH:OFFSET" entries, as printed.
    public var lockspaces: [String] = []
    public var resources: [Resource] = []
    public var text: String

    public var description: String { text }

    public init(parsing text: String) {
        self.text = text
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard words.count == 2 else { continue }
            switch words[0] {
            case "p":
                let fields = words[1].split(separator: " ", maxSplits: 1).map(String.init)
                if let pid = Int32(fields[0]) { processes[pid] = fields.count > 1 ? fields[1] : "" }
            case "s":
                lockspaces.append(words[1])
            case "r":
                if let resource = Self.resource(words[1]) { resources.append(resource) }
            default:
                continue
            }
        }
    }

    /// The resource with this name, if some process holds it.
    public func resource(named name: String) -> Resource? {
        resources.first { $0.name == name }
    }

    /// "LS:NAME:PATH:OFFSET[:LVER] p PID", where a ':' inside a field is
    /// escaped as "\:".
    private static func resource(_ text: String) -> Resource? {
        guard let owner = text.range(of: " p ", options: .backwards),
            let pid = Int32(text[owner.upperBound...].trimmingCharacters(in: .whitespaces))
        else { return nil }
        var fields: [String] = [], current = "", escaped = false
        for ch in text[..<owner.lowerBound] {
            if escaped {
                current.append(ch); escaped = false
            } else if ch == "\\" {
                escaped = true
            } else if ch == ":" {
                fields.append(current); current = ""
            } else {
                current.append(ch)
            }
        }
        fields.append(current)
        guard fields.count >= 4, let offset = UInt64(fields[3]) else { return nil }
        return Resource(
            lockspace: fields[0], name: fields[1], path: fields[2], offset: offset,
            version: fields.count > 4 ? UInt64(fields[4]) : nil, ownerPid: pid)
    }
}

extension SanlockDaemon {
    /// What the daemon holds now, from `sanlock client status`.
    public func parsedStatus() throws -> SanlockStatus {
        let result = client(["status"], timeout: 10)
        guard result.status == 0 else { throw FixtureError("sanlock client status on daemon \(name) failed: \(result)") }
        return SanlockStatus(parsing: result.stdout)
    }
}

/// A resource lease as stored on disk, read with `sanlock direct dump`
/// (no daemon involved): who owns it and how often it was acquired.
public struct SanlockLeaseRecord: Sendable, Equatable, CustomStringConvertible {
    /// The owner's last renewal stamp; 0 once released.
    public var timestamp: UInt64
    /// host_id and host generation of the last owner.
    public var ownerID: UInt64
    public var generation: UInt64
    /// The lease version: +1 on every acquisition.
    public var version: UInt64

    public var isFree: Bool { timestamp == 0 }

    public var description: String {
        "lease v\(version) owner host_id \(ownerID) gen \(generation) \(isFree ? "free" : "held, timestamp \(timestamp)")"
    }

    /// Parses the first record of `sanlock direct dump PATH:OFFSET`:
    /// "offset lockspace resource timestamp own gen lver".
    public init?(dump text: String) {
        let records = text.split(separator: "\n").dropFirst().map { $0.split(separator: " ") }
        guard let fields = records.first, fields.count >= 7 else { return nil }
        let numbers = fields.suffix(4).compactMap { UInt64($0) }
        guard numbers.count == 4 else { return nil }
        (timestamp, ownerID, generation, version) = (numbers[0], numbers[1], numbers[2], numbers[3])
    }

    /// Reads the lease at `path`:`offset` straight from the storage.
    public static func read(path: String, offset: UInt64 = 0) throws -> SanlockLeaseRecord {
        let result = Command.run([SanlockDaemon.executable ?? "sanlock", "direct", "dump", "\(path):\(offset)"], timeout: 10)
        guard result.status == 0, let record = SanlockLeaseRecord(dump: result.stdout) else {
            throw FixtureError("sanlock direct dump \(path):\(offset) gave no lease record: \(result)")
        }
        return record
    }
}
