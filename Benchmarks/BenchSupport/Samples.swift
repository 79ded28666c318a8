import Glibc

/// Latencies of one measured case (microseconds, unless a benchmark says otherwise).
public struct Samples: Sendable {
    public private(set) var values: [Double] = []
    private var sorted: [Double] { values.sorted() }

    public init() {}

    public mutating func add(_ microseconds: Double) { values.append(microseconds) }

    public var count: Int { values.count }
    public var median: Double { percentile(0.5) }
    public var p99: Double { percentile(0.99) }

    /// Nearest-rank percentile: with 100 samples the p99 is the 99th
    /// smallest, so it says something only with a hundred samples or more.
    public func percentile(_ p: Double) -> Double {
        let s = sorted
        guard !s.isEmpty else { return .nan }
        let rank = Int((p * Double(s.count)).rounded(.up))
        return s[min(max(rank, 1), s.count) - 1]
    }
}

/// A monotonic clock in microseconds.
public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }

    /// CPU microseconds spent by the calling thread: the part of a
    /// latency that is this process's own work (not a daemon's or target's).
    public static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }

    /// Runs `body` and returns how long it took, in microseconds.
    public static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = now()
        try body()
        return now() - start
    }
}
