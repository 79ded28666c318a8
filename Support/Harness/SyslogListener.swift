import Foundation
import Glibc

/// A private syslog socket: a Unix datagram socket in a temp directory
/// that programs are pointed at ($LOCKMGR_SYSLOG_SOCKET, or a Logger's
/// `syslogSocket`), so tests read what would reach /dev/log.
public final class SyslogListener: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init() throws {
        path = TempDir.make("syslog") + "/log"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw FixtureError("bind \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    /// Every datagram that arrives within `timeoutMilliseconds` of the last
    /// one (or of the call, for the first).
    public func messages(timeoutMilliseconds: Int32 = 2000) -> [String] {
        var result: [String] = []
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&entry, 1, result.isEmpty ? timeoutMilliseconds : 200) == 1 {
            var buffer = [UInt8](repeating: 0, count: 8192)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            result.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        return result
    }
}
