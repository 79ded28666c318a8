import Foundation

/// The CPU time the iSCSI target (tgtd) spends, read from the kernel's
/// run-time counter of its main thread (/proc/PID/schedstat, nanoseconds):
/// tgtd executes every PR command there (its other threads, 16 per LU,
/// only move data), so this is the target's own work per command, which
/// bounds how fast many LUs can change hands however the commands are
/// sent. Without a pid (`--target-pid` not given) nothing is measured.
struct TargetCPU {
    let pid: Int32?

    /// Microseconds of CPU the target's main thread has used so far.
    func now() -> Double? {
        guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/schedstat", encoding: .utf8),
            let first = text.split(separator: " ").first, let nanoseconds = UInt64(first)
        else { return nil }
        return Double(nanoseconds) / 1000
    }
}
