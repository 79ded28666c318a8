import Glibc

/// A C errno value with its strerror text.
public struct Errno: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }

    /// The calling thread's current errno.
    public static var current: Errno { Errno(errno) }

    public var description: String { String(cString: strerror(code)) }
}
