import BenchSupport

/// The sanlock part of "added migration downtime" (issue 14,
/// `downtime-sanlock.md`): the same rounds as the handover of the sanlock
/// section, shown as what a live migration's pause pays in libvirt's
/// order: host A's release (pause, returns the state) and host B's acquire
/// with that state (resume), host B's VM process registered beforehand as
/// libvirt registers the incoming QEMU at its start.
enum SanlockDowntime {
    /// Samples key of host B's acquire with the state (the handover's second part).
    static let destinationAcquire = "downtime: destination acquire with state"

    static func markdown(_ t: SanlockReport.Table, scales: [Int], cycles: Int, load: String) -> String {
        var lines = [
            "## Added migration downtime: sanlock plugin",
            "",
            "`make bench-sanlock` (`Benchmarks/sanlock-bench`), same run as the sanlock section: source release (host A,",
            "returning the state) + destination acquire with that state (host B, another daemon), each through a fresh",
            "manager and timed in its own host's process, the destination's VM process registered with its daemon before",
            "(as libvirt registers the incoming QEMU at its start). Floor: the raw calls (`sanlock_inquire` +",
            "`sanlock_release` on A, `sanlock_state_to_args` + `sanlock_acquire` on B). Median / p99 in µs of \(cycles)",
            "rounds; load average at the start \(load) (**loaded machine**: compare within this run). Issue 14 sets no",
            "figure for sanlock: it is here as the other backend's cost of the same pause.",
            "",
            "| leases | ours: added downtime | source release | destination acquire | libvirt sanlock.so: added downtime | floor: added downtime | ours / floor | ours / libvirt |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for count in scales {
            func cell(_ op: String, _ impl: String) -> String {
                guard let s = t[op]?[count]?[impl] else { return "missing" }
                return "\(micros(s.median)) / \(micros(s.p99))"
            }
            func median(_ impl: String) -> Double { t["handover"]?[count]?[impl]?.median ?? .nan }
            lines.append(
                "| \(count) | \(cell("handover", "ours")) | \(cell("release", "ours")) | \(cell(destinationAcquire, "ours")) | "
                    + "\(cell("handover", "libvirt")) | \(cell("handover", "floor")) | \(ratio(median("ours"), median("floor"))) | "
                    + "\(ratio(median("ours"), median("libvirt"))) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
