import Foundation

/// Blocking Unix-socket primitives for the test-side servers (the client
/// side lives in PRTransport and is what the tests exercise).
public enum TestSocket {
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A listening Unix stream socket at `path` (replacing a stale one).
    public static func listen(path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw SetupError(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, Glibc.listen(fd, 8) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SetupError(description: "cannot listen on \(path): \(message)")
        }
        return fd
    }

    /// Reads exactly `count` bytes; nil if the peer closed first or on error.
    public static func readFully(_ fd: Int32, count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, count - offset, 0) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
        return buffer
    }

    public static func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }

    /// Reads exactly `count` bytes and the SCM_RIGHTS descriptor that came
    /// with any of them (received close-on-exec).
    public static func receiveWithFD(_ fd: Int32, count: Int) -> (bytes: [UInt8], fd: Int32?)? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        var passed: Int32?
        let controlSize = 64
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSize, alignment: 8)
        defer { control.deallocate() }
        while offset < count {
            control.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
            let n: Int = buffer.withUnsafeMutableBytes { raw in
                var iov = iovec(iov_base: raw.baseAddress! + offset, iov_len: count - offset)
                return withUnsafeMutablePointer(to: &iov) { iovPtr in
                    var message = msghdr()
                    message.msg_iov = iovPtr
                    message.msg_iovlen = 1
                    message.msg_control = control
                    message.msg_controllen = controlSize
                    let n = recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC))
                    if n > 0, let fd = firstPassedFD(control, length: Int(message.msg_controllen)) {
                        passed = fd
                    }
                    return n
                }
            }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if let passed { close(passed) }
            return nil
        }
        return (buffer, passed)
    }

    /// Walks the first control message by hand: CMSG_* are C macros.
    private static func firstPassedFD(_ control: UnsafeMutableRawPointer, length: Int) -> Int32? {
        let headerSize = MemoryLayout<cmsghdr>.size
        guard length >= headerSize + 4 else { return nil }
        let header = control.load(as: cmsghdr.self)
        guard header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) else { return nil }
        return control.load(fromByteOffset: headerSize, as: Int32.self)
    }
}
