import Glibc
import LockDriver
import PRTransport

/// pr-sessiond's listening socket: handed over by systemd (socket
/// activation: the service starts at the first plugin call) or bound here.
enum Listener {
    /// systemd's first passed descriptor (sd_listen_fds(3)).
    static let firstPassedFD: Int32 = 3

    /// The socket systemd passed us, if it passed exactly one.
    static func fromSystemd() -> Int32? {
        guard let pid = getenv("LISTEN_PID").flatMap({ pid_t(String(cString: $0)) }), pid == getpid(),
            let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count == 1
        else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        _ = fcntl(firstPassedFD, F_SETFD, FD_CLOEXEC)
        return firstPassedFD
    }

    enum Failure: Error, CustomStringConvertible {
        case alreadyServed(String)
        case system(String, call: String, Errno)
        case pathTooLong(String)

        var description: String {
            switch self {
            case .alreadyServed(let path): return "\(path): another pr-sessiond already answers there"
            case .system(let path, let call, let e): return "\(path): \(call): \(e)"
            case .pathTooLong(let path): return "\(path): too long for a Unix socket"
            }
        }
    }

    /// Binds `path` (mode 0600: only root's plugins may send PR commands
    /// through us). A socket file nobody answers on is a dead instance's, and replaced.
    static func bind(path: String) throws(Failure) -> Int32 {
        guard var address = UnixSocketConnection.address(of: path) else { throw .pathTooLong(path) }
        if (try? UnixSocketConnection.connect(path: path, deadline: Deadline(millisecondsFromNow: 1000))) != nil {
            throw .alreadyServed(path)
        }
        unlink(path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw .system(path, call: "socket", .current) }
        let old = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(old)
        guard bound == 0 else {
            let e = Errno.current
            close(listener)
            throw .system(path, call: "bind", e)
        }
        guard listen(listener, 128) == 0 else {
            let e = Errno.current
            close(listener)
            throw .system(path, call: "listen", e)
        }
        return listener
    }
}
