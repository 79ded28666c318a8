import Glibc

/// A process as the keeper identifies it: pid plus start time, so a pid
/// reused by another process after the VM exited is not taken for the VM.
public struct VMProcess: Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The process `pid` as it is now; nil if there is none.
    public static func current(_ pid: Int32) -> VMProcess? {
        guard let stat = ProcStat.read(pid) else { return nil }
        return VMProcess(pid: pid, startTime: stat.startTime)
    }

    /// Running (or stopped): not gone, not a zombie, not a reused pid.
    public var isAlive: Bool {
        guard let stat = ProcStat.read(pid) else { return false }
        return stat.state != "Z" && stat.state != "X" && stat.startTime == startTime
    }
}

/// The two fields of /proc/<pid>/stat the keeper needs.
struct ProcStat {
    var state: Character
    var startTime: UInt64

    static func read(_ pid: Int32) -> ProcStat? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return parse(String(decoding: buffer[0..<n], as: UTF8.self))
    }

    /// `pid (comm) state ...`: comm may contain spaces and parentheses, so
    /// fields are counted after the last ')'. Start time is field 22.
    static func parse(_ text: String) -> ProcStat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return ProcStat(state: state, startTime: start)
    }
}
