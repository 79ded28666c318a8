import Glibc

/// What /proc/<pid>/stat says about a process that lock code needs: its
/// state letter (R, S, D, T, Z...), its parent, and its start time (which,
/// with the pid, tells a process from a later one that reused the pid).
public struct ProcStat: Sendable, Equatable {
    public var state: Character
    public var parent: Int32
    public var startTime: UInt64

    public init(state: Character, parent: Int32, startTime: UInt64) {
        self.state = state
        self.parent = parent
        self.startTime = startTime
    }

    public static func read(_ pid: Int32) -> ProcStat? {
        guard case .success(let text) = FileText.read("/proc/\(pid)/stat", limit: 4096) else { return nil }
        return parse(text)
    }

    /// `pid (comm) state ppid ...`: comm may contain spaces and parentheses,
    /// so fields are counted after the last ')'. Start time is field 22.
    public static func parse(_ text: String) -> ProcStat? {
        guard let close = text.lastIndex(ofByte: ")") else { return nil }
        let fields = text[text.utf8.index(after: close)...].splitBytes(at: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = Int32(fields[1]),
            let start = UInt64(fields[19])
        else { return nil }
        return ProcStat(state: state, parent: parent, startTime: start)
    }

    /// Stopped (SIGSTOP) or stopped by a tracer.
    public var isStopped: Bool { state == "T" || state == "t" }
}
