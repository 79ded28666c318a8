import CPRShim
import Glibc
import LockDriver
import PRProtocol

/// Why a socket operation stopped; a transport turns it into a sentence
/// naming the socket and the device, or says `description`.
public enum SocketFailure: Error, CustomStringConvertible {
    case pathTooLong
    case timedOut
    /// The peer closed the connection after `received` of `expected` bytes.
    case closed(received: Int, expected: Int)
    case system(call: String, Errno)

    public var description: String {
        switch self {
        case .pathTooLong: return "the socket path is empty or too long for a Unix socket"
        case .timedOut: return "no answer in time"
        case .closed(let received, let expected): return "connection closed (\(received) of \(expected) bytes)"
        case .system(let call, let error): return "\(call): \(error)"
        }
    }
}

/// A non-blocking Unix stream socket whose every read and write waits in
/// poll() for at most the time left before a deadline.
public final class UnixSocketConnection {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// A connected socket accepted by a server (pr-sessiond), made
    /// non-blocking; closed with the connection.
    public static func adopt(fd: Int32) -> UnixSocketConnection {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return UnixSocketConnection(fd: fd)
    }

    deinit { close(fd) }

    /// The socket address of `path`; nil when it is empty or too long.
    public static func address(of path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard !pathBytes.isEmpty, pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        return address
    }

    public static func connect(path: String, deadline: Deadline) throws(SocketFailure) -> UnixSocketConnection {
        guard var address = address(of: path) else { throw .pathTooLong }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .system(call: "socket", .current) }
        let connection = UnixSocketConnection(fd: fd)
        while true {
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if rc == 0 { return connection }
            let error = Errno.current
            switch error.code {
            case EINTR:
                continue
            case EAGAIN:
                // A Unix listener's backlog is full: try again until the deadline.
                guard deadline.remainingMilliseconds > 0 else { throw .timedOut }
                usleep(1_000)
            case EINPROGRESS:
                try connection.wait(for: Int16(POLLOUT), deadline: deadline)
                var soError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) != 0 {
                    throw .system(call: "getsockopt", .current)
                }
                if soError != 0 { throw .system(call: "connect", Errno(soError)) }
                return connection
            default:
                throw .system(call: "connect", error)
            }
        }
    }

    /// Writes all of `bytes`; `passing` rides along with the first byte as SCM_RIGHTS.
    public func writeAll(_ bytes: [UInt8], passing passedFD: Int32? = nil, deadline: Deadline) throws(SocketFailure) {
        var offset = 0
        var fdToPass = passedFD
        while offset < bytes.count {
            let sent: Int = bytes.withUnsafeBytes { raw in
                let start = raw.baseAddress.map { $0 + offset }
                let length = raw.count - offset
                if let fdToPass {
                    return lockmgr_send_with_fd(fd, start, length, fdToPass)
                }
                let rc = Glibc.send(fd, start, length, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                return rc < 0 ? -Int(errno) : rc
            }
            if sent > 0 {
                offset += sent
                fdToPass = nil
                continue
            }
            let error = Errno(Int32(clamping: -sent))
            switch error.code {
            case EINTR:
                continue
            case EAGAIN:
                try wait(for: Int16(POLLOUT), deadline: deadline)
            case EPIPE, ECONNRESET:
                throw .closed(received: offset, expected: bytes.count)
            default:
                throw .system(call: passedFD != nil && offset == 0 ? "sendmsg" : "send", error)
            }
        }
    }

    public func readExactly(_ count: Int, deadline: Deadline) throws(SocketFailure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = buffer.withUnsafeMutableBytes { raw in
                Glibc.recv(fd, raw.baseAddress.map { $0 + offset }, count - offset, Int32(MSG_DONTWAIT))
            }
            if received > 0 {
                offset += received
                continue
            }
            if received == 0 { throw .closed(received: offset, expected: count) }
            let error = Errno.current
            switch error.code {
            case EINTR:
                continue
            case EAGAIN:
                try wait(for: Int16(POLLIN), deadline: deadline)
            case ECONNRESET:
                throw .closed(received: offset, expected: count)
            default:
                throw .system(call: "recv", error)
            }
        }
        return buffer
    }

    /// Whether the peer has closed its end (pr-sessiond: a plugin that
    /// stopped waiting), without waiting and without consuming anything.
    public var peerHasHungUp: Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        if entry.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) == 0
    }

    private func wait(for events: Int16, deadline: Deadline) throws(SocketFailure) {
        while true {
            let remaining = deadline.remainingMilliseconds
            guard remaining > 0 else { throw .timedOut }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&entry, 1, remaining)
            if rc > 0 { return }  // ready, or HUP/ERR: the next call reports which
            if rc == 0 { throw .timedOut }
            let error = Errno.current
            if error.code != EINTR { throw .system(call: "poll", error) }
        }
    }
}
