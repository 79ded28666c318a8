import Glibc
import LockDriver
import PRProtocol

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
