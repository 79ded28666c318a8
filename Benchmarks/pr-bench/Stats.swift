import Glibc

/// Wall-clock microseconds (monotonic).
func nowMicros() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}

/// CPU microseconds spent by the calling thread (our code and libiscsi's,
/// not tgtd's): what a profile of this process could ever win back.
func threadCPUMicros() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}

/// Samples of one measured thing, in microseconds.
struct Samples {
    private(set) var values: [Double] = []
    mutating func add(_ v: Double) { values.append(v) }
    var count: Int { values.count }

    /// Nearest-rank percentile: with fewer than 100 samples p99 is the maximum.
    func percentile(_ p: Double) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(s.count)).rounded(.up))
        return s[min(s.count - 1, max(0, rank - 1))]
    }
    var median: Double { percentile(50) }
    var p99: Double { percentile(99) }
}

/// "1234" for µs above 100, "12.3" below: enough digits to compare, no noise.
func us(_ v: Double) -> String {
    v >= 100 ? "\(Int(v.rounded()))" : "\((v * 10).rounded() / 10)"
}

func ratio(_ a: Double, _ b: Double) -> String {
    guard b > 0 else { return "n/a" }
    return "\(((a / b) * 10).rounded() / 10)×"
}
