import Foundation

/// Starts racing processes together. The test holds an exclusive flock on
/// a file; each racer, started through `command(_:)`, takes a shared lock
/// on it first and so waits. Once /proc/locks shows every racer waiting,
/// `open` lets go and they all start at once. The racer execs its command
/// in place, so the process the test started is the command itself.
public final class StartGate: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(_ path: String) {
        self.path = path
        fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        _ = flock(fd, LOCK_EX)
    }

    /// `argv` run once the gate opens (as the same process: sh execs it).
    public func command(_ argv: [String]) -> [String] {
        ["/bin/sh", "-c", "exec 3<\"$0\" && flock --shared 3 && exec 3<&- && exec \"$@\"", path] + argv
    }

    /// Waits until `count` racers wait at the gate, then lets them all go.
    public func open(forWaiters count: Int) throws {
        var st = stat()
        fstat(fd, &st)
        let inode = ":\(st.st_ino) "
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
            let waiting = locks.split(separator: "\n").filter { $0.contains("->") && $0.contains(inode) }.count
            if waiting >= count {
                _ = flock(fd, LOCK_UN)
                return
            }
            usleep(2_000)
        }
        throw FixtureError("start gate \(path): \(count) processes did not all reach the gate")
    }

    deinit { Glibc.close(fd) }
}
