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

    /// Read on every acquire (the VM's process identity): the bytes are
    /// parsed as they are, no string per field.
    public static func read(_ pid: Int32) -> ProcStat? {
        guard case .success(let bytes) = FileText.bytes("/proc/\(pid)/stat", limit: 4096) else { return nil }
        return bytes.withUnsafeBufferPointer { parse($0) }
    }

    /// `pid (comm) state ppid ...`: comm may contain spaces and parentheses,
    /// so fields are counted after the last ')'. Start time is field 22.
    public static func parse(_ text: String) -> ProcStat? {
        var text = text
        return text.withUTF8 { parse($0) }
    }

    static func parse(_ line: UnsafeBufferPointer<UInt8>) -> ProcStat? {
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After the name: 0 the state, 1 the parent, 19 the start time (20: the rest).
        let fields = line[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 20)
        guard fields.count > 19, let state = fields[0].first,
            let parent = Int32(String(decoding: fields[1], as: UTF8.self)),
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return ProcStat(state: Character(Unicode.Scalar(state)), parent: parent, startTime: start)
    }

    /// Stopped (SIGSTOP) or stopped by a tracer.
    public var isStopped: Bool { state == "T" || state == "t" }
}
