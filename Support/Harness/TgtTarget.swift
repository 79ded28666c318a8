import Foundation

/// A private tgtd (Debian `tgt`, the userspace iSCSI target) for one test:
/// its own loopback port, its own control socket, file-backed LUNs in its
/// own temp dir. A missing tgtd fails the test (it throws), never skips.
/// Call `stop()` (tests use `defer`); `deinit` stops it too.
public final class TgtTarget: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let port: Int
    public let control: Int
    public let dir: String
    private var process: Process
    private var nextTid = 1
    /// What was added, so `restart()` can set it up again: (tid, iqn, LUN count).
    private var targets: [(tid: Int, iqn: String, luns: [Int])] = []
    private var stopped = false

    public init() throws {
        let tgtd = "/usr/sbin/tgtd"
        guard FileManager.default.isExecutableFile(atPath: tgtd) else {
            throw Failure(description: "tgtd not found at \(tgtd): install Debian package 'tgt' (make deps)")
        }
        dir = TempDir.make("tgt")
        // tgtd takes control socket numbers below 10000 and exits when the
        // number (or the port) is in use: retry with fresh ones.
        var lastError = "not started"
        for _ in 0..<8 {
            let port = try Self.freePort()
            let control = Int.random(in: 1000...9999)
            if let process = try Self.launch(port: port, control: control) {
                self.port = port
                self.control = control
                self.process = process
                return
            }
            lastError = "tgtd on 127.0.0.1:\(port) (control \(control)) did not become ready"
        }
        throw Failure(description: lastError)
    }

    /// Starts tgtd; nil (and nothing left running) if it does not become ready.
    private static func launch(port: Int, control: Int) throws -> Process? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/tgtd")
        process.arguments = ["-f", "--iscsi", "portal=127.0.0.1:\(port)", "-C", "\(control)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        if waitReady(process, control: control) { return process }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return nil
    }

    /// After `crash()`: a new tgtd on the same port and control socket with
    /// the same targets and LUNs over the same backing files, as a target
    /// host that rebooted. tgt keeps PR state in memory only, so every LU
    /// comes back with no registration and no reservation.
    public func restart() throws {
        guard stopped else { throw Failure(description: "restart: tgtd is still running (crash() it first)") }
        guard let process = try Self.launch(port: port, control: control) else {
            throw Failure(description: "tgtd on 127.0.0.1:\(port) (control \(control)) did not come back")
        }
        self.process = process
        stopped = false
        for t in targets {
            try adm(["--op", "new", "--mode", "target", "--tid", "\(t.tid)", "-T", t.iqn])
            for lun in t.luns { try addLUN(tid: t.tid, lun: lun, megabytes: 1, keepData: true) }
            try adm(["--op", "bind", "--mode", "target", "--tid", "\(t.tid)", "-I", "ALL"])
        }
    }

    private static func waitReady(_ process: Process, control: Int) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && process.isRunning {
            let r = Command.run(
                ["/usr/sbin/tgtadm", "-C", "\(control)", "--lld", "iscsi", "--op", "show", "--mode", "sys"],
                timeout: 5)
            if r.status == 0 { return true }
            usleep(10_000)
        }
        return false
    }

    deinit { stop() }

    public var portal: String { "127.0.0.1:\(port)" }

    /// A new target with `luns` LUNs of `megabytes` MiB each; returns the
    /// target name and one iscsi:// URL per LUN.
    @discardableResult
    public func addTarget(luns: Int = 1, megabytes: Int = 1) throws -> (iqn: String, tid: Int, urls: [String]) {
        try addTarget(lunNumbers: Array(1...max(1, luns)), megabytes: megabytes)
    }

    /// A new target with the given LUN numbers (e.g. beyond 255); one URL per LUN, in that order.
    @discardableResult
    public func addTarget(lunNumbers: [Int], megabytes: Int = 1) throws -> (iqn: String, tid: Int, urls: [String]) {
        let tid = nextTid
        nextTid += 1
        let iqn = "iqn.2026-01.lockmgr.test:t\(tid)"
        try adm(["--op", "new", "--mode", "target", "--tid", "\(tid)", "-T", iqn])
        var urls: [String] = []
        for lun in lunNumbers {
            try addLUN(tid: tid, lun: lun, megabytes: megabytes)
            urls.append("iscsi://\(portal)/\(iqn)/\(lun)")
        }
        try adm(["--op", "bind", "--mode", "target", "--tid", "\(tid)", "-I", "ALL"])
        targets.append((tid, iqn, lunNumbers))
        return (iqn, tid, urls)
    }

    private func addLUN(tid: Int, lun: Int, megabytes: Int, keepData: Bool = false) throws {
        let file = "\(dir)/t\(tid)-l\(lun).img"
        if !keepData {
            _ = FileManager.default.createFile(atPath: file, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            try h.truncate(atOffset: UInt64(megabytes) << 20)
            try h.close()
        }
        try adm(["--op", "new", "--mode", "logicalunit", "--tid", "\(tid)", "--lun", "\(lun)", "-b", file])
    }

    /// Forgets all PR state of a LUN (tgt keeps it in memory only).
    public func resetLUN(tid: Int, lun: Int) throws {
        try adm(["--op", "delete", "--mode", "logicalunit", "--tid", "\(tid)", "--lun", "\(lun)"])
        try addLUN(tid: tid, lun: lun, megabytes: 1)
    }

    /// Session ids currently logged in to target `tid`.
    public func sessions(tid: Int) throws -> [Int] {
        let out = try adm(["--op", "show", "--mode", "target"])
        var result: [Int] = []
        var inTarget = false
        for line in out.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("Target ") { inTarget = line.hasPrefix("Target \(tid):") }
            if inTarget, t.hasPrefix("I_T nexus: "), let sid = Int(t.dropFirst("I_T nexus: ".count)) { result.append(sid) }
        }
        return result
    }

    /// Drops one session, as a network failure would.
    public func dropSession(tid: Int, sid: Int) throws {
        try adm(["--op", "delete", "--mode", "conn", "--tid", "\(tid)", "--sid", "\(sid)", "--cid", "0"])
    }

    /// Freezes the target (SIGSTOP): connections stay up and nothing is
    /// answered until `thaw()`. `stop()` thaws it first.
    public func freeze() {
        guard !stopped else { return }
        kill(process.processIdentifier, SIGSTOP)
    }

    public func thaw() {
        guard !stopped else { return }
        kill(process.processIdentifier, SIGCONT)
    }

    /// Crashes the target (SIGKILL): connections are refused from now on.
    public func crash() {
        guard !stopped else { return }
        stopped = true
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        removeControlSocket()
    }

    public func stop() {
        guard !stopped else { return }
        thaw()
        stopped = true
        for tid in 1..<nextTid {
            _ = try? adm(["--op", "delete", "--mode", "target", "--tid", "\(tid)", "--force"])
        }
        _ = try? adm(["--op", "delete", "--mode", "system"], lld: false)
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        removeControlSocket()
    }

    /// tgtd leaves its control socket and lock file behind.
    private func removeControlSocket() {
        unlink("/var/run/tgtd/socket.\(control)")
        unlink("/var/run/tgtd/socket.\(control).lock")
    }

    @discardableResult
    func adm(_ args: [String], lld: Bool = true) throws -> String {
        let argv = ["/usr/sbin/tgtadm", "-C", "\(control)"] + (lld ? ["--lld", "iscsi"] : []) + args
        let r = Command.run(argv, timeout: 10)
        guard r.status == 0 else { throw Failure(description: "\(argv.joined(separator: " ")): \(r)") }
        return r.stdout
    }

    /// A loopback TCP port nobody listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw Failure(description: "bind: \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
