import Foundation

/// The CPU time another process spends, read from the kernel's per-thread
/// run-time counters (schedstat, nanoseconds). For tgtd the main thread
/// alone (/proc/PID/schedstat): it executes every PR command there, and its
/// other threads (16 per LU) only move data; that is the target's own work
/// per command, which bounds how fast many LUs can change hands however
/// the commands are sent. For pr-sessiond every thread
/// (/proc/PID/task/*/schedstat). Without a pid nothing is measured.
struct ProcessCPU {
    let pid: Int32?
    let allThreads: Bool

    /// Microseconds of CPU used so far (nil when not measured).
    func now() -> Double? {
        guard let pid else { return nil }
        let files =
            allThreads
            ? ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).map {
                "/proc/\(pid)/task/\($0)/schedstat"
            } : ["/proc/\(pid)/schedstat"]
        var nanoseconds: UInt64 = 0
        var read = false
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), let first = text.split(separator: " ").first,
                let ns = UInt64(first)
            else { continue }
            nanoseconds += ns
            read = true
        }
        return read ? Double(nanoseconds) / 1000 : nil
    }

    /// The sum over several processes (nil if any is not measured).
    static func sum(_ processes: [ProcessCPU]) -> Double? {
        var total = 0.0
        for p in processes {
            guard let v = p.now() else { return nil }
            total += v
        }
        return total
    }
}
