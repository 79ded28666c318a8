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

    /// Read on every acquire (the VM's process identity): one read into a
    /// buffer on the stack and a parse of the bytes, no file-sized arrays
    /// and no strings per field.
    public static func read(_ pid: Int32) -> ProcStat? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer -> ProcStat? in
            var used = 0
            // The kernel hands over the whole line in one read; it ends in a newline.
            while used < buffer.count, used == 0 || buffer[used - 1] != UInt8(ascii: "\n") {
                let n = Glibc.read(fd, buffer.baseAddress! + used, buffer.count - used)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                used += n
            }
            return parse(UnsafeBufferPointer(rebasing: buffer[..<used]))
        }
    }

    /// `pid (comm) state ppid ...`: comm may contain spaces and parentheses,
    /// so fields are counted after the last ')'. Start time is field 22.
    public static func parse(_ text: String) -> ProcStat? {
        var text = text
        return text.withUTF8 { parse($0) }
    }

    static func parse(_ line: UnsafeBufferPointer<UInt8>) -> ProcStat? {
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var state: Character?, parent: Int32?
        var field = 0, start = close + 1, i = close + 1
        // Fields after the name, separated by spaces: 0 is the state, 1 the
        // parent, 19 the start time.
        while i <= line.count {
            if i < line.count && line[i] != UInt8(ascii: " ") {
                i += 1
                continue
            }
            if i > start {
                let token = UnsafeBufferPointer(rebasing: line[start..<i])
                switch field {
                case 0: state = Character(Unicode.Scalar(token[0]))
                case 1: parent = Int32(String(decoding: token, as: UTF8.self))
                case 19:
                    guard let state, let parent, let startTime = UInt64(String(decoding: token, as: UTF8.self)) else { return nil }
                    return ProcStat(state: state, parent: parent, startTime: startTime)
                default: break
                }
                field += 1
            }
            i += 1
            start = i
        }
        return nil
    }

    /// Stopped (SIGSTOP) or stopped by a tracer.
    public var isStopped: Bool { state == "T" || state == "t" }
}
