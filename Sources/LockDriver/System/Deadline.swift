import Glibc

/// A point on the monotonic clock by which an operation must finish, so
/// that a command's several reads and writes share one timeout.
public struct Deadline {
    private let nanoseconds: UInt64

    public init(millisecondsFromNow milliseconds: UInt32) {
        nanoseconds = Self.now() &+ UInt64(milliseconds) &* 1_000_000
    }

    /// Milliseconds left, rounded up so poll() never busy-loops on a
    /// sub-millisecond remainder; 0 once the deadline has passed.
    public var remainingMilliseconds: Int32 {
        let now = Self.now()
        guard nanoseconds > now else { return 0 }
        let left = (nanoseconds - now + 999_999) / 1_000_000
        return Int32(clamping: left)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
