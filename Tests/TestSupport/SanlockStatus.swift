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
              let pid = Int32(text[owner.upperBound...].trimmingCharacters(in: .whitespaces)) else { return nil }
        var fields: [String] = [], current = "", escaped = false
        for ch in text[..<owner.lowerBound] {
            if escaped { current.append(ch); escaped = false } else if ch == "\\" { escaped = true } else if ch == ":" {
                fields.append(current); current = ""
            } else { current.append(ch) }
        }
        fields.append(current)
        guard fields.count >= 4, let offset = UInt64(fields[3]) else { return nil }
        return Resource(lockspace: fields[0], name: fields[1], path: fields[2], offset: offset,
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
