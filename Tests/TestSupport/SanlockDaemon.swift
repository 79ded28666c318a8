import Foundation

/// A private sanlock daemon for one test run: its own SANLOCK_RUN_DIR (so
/// the CLI and the client library, which honour it, talk to this daemon
/// only), no watchdog, no mlockall, no shared log or syslog. Runs in the
/// foreground (-D) as the test's child, logging to `<runDir>/sanlock.log`.
public final class SanlockDaemon: @unchecked Sendable {
    public let runDir: String
    public let hostName: String
    private let daemon: Daemon
    private var stopped = false

    /// The environment a client of this daemon (a plugin host, libvirtd) needs.
    public var environment: [String: String] { ["SANLOCK_RUN_DIR": runDir] }

    public init(hostName: String, runDir: String = TempDir.make("sanlock-run")) throws {
        self.runDir = runDir
        self.hostName = hostName
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/sanlock") else {
            throw FixtureError("sanlock is not installed (/usr/sbin/sanlock): run scripts/install-deps.sh")
        }
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        // SANLOCK_PRIVILEGED=0: root here lacks CAP_SYS_RESOURCE for the memlock limit.
        daemon = try Daemon(["/usr/sbin/sanlock", "daemon", "-D", "-w", "0", "-U", "root", "-G", "root",
                             "-l", "0", "-L", "-1", "-S", "-1", "-e", hostName],
                            name: "sanlock daemon \(hostName)", logPath: "\(runDir)/sanlock.log",
                            environment: ["SANLOCK_RUN_DIR": runDir, "SANLOCK_PRIVILEGED": "0"])
        do {
            try daemon.waitUntil("answering `sanlock client status`", timeout: 10) {
                client(["status"], timeout: 5).status == 0
            }
        } catch {
            stop()
            throw error
        }
    }

    /// Runs `sanlock client ARGS` against this daemon.
    @discardableResult
    public func client(_ args: [String], timeout: TimeInterval = 30) -> CommandResult {
        Command.run(["/usr/sbin/sanlock", "client"] + args, environment: environment, timeout: timeout)
    }

    /// What the daemon holds now, from `sanlock client status`.
    public func status() throws -> SanlockStatus {
        let result = client(["status"], timeout: 10)
        guard result.status == 0 else { throw FixtureError("sanlock client status failed: \(result)") }
        return SanlockStatus(parsing: result.stdout)
    }

    /// `sanlock client shutdown -f 1 -w 1`: the daemon ignores SIGTERM while
    /// it has lockspaces; forced shutdown SIGKILLs registered processes and
    /// leaves. Idempotent.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        if daemon.isRunning { client(["shutdown", "-f", "1", "-w", "1"], timeout: 20) }
        if !daemon.waitForExit(timeout: 10) { daemon.stop(signal: SIGKILL, timeout: 5) }
    }

    deinit { stop() }
}

/// `sanlock client status` output: registered processes, joined
/// lockspaces, and held resources with their owners.
public struct SanlockStatus: Sendable, CustomStringConvertible {
    public struct Resource: Sendable, Equatable {
        public var lockspace: String
        public var name: String
        public var path: String
        public var offset: UInt64
        /// The lease version: sanlock increments it on every acquisition.
        public var version: UInt64?
        public var ownerPid: Int32
    }

    /// pid -> owner name ("p PID NAME"; the daemon's own threads show pid -1).
    public var processes: [Int32: String] = [:]
    /// "s LOCKSPACE:HOST_ID:PATH:OFFSET" entries, as printed.
    public var lockspaces: [String] = []
    public var resources: [Resource] = []
    public var text: String

    public var description: String { text }

    public init(parsing text: String) {
        self.text = text
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard words.count == 2 else { continue }
            switch words[0] {
            case "p":
                let fields = words[1].split(separator: " ", maxSplits: 1).map(String.init)
                if let pid = Int32(fields[0]) { processes[pid] = fields.count > 1 ? fields[1] : "" }
            case "s":
                lockspaces.append(words[1])
            case "r":
                if let resource = Self.resource(words[1]) { resources.append(resource) }
            default:
                continue
            }
        }
    }

    /// The resource with this name, if some process holds it.
    public func resource(named name: String) -> Resource? {
        resources.first { $0.name == name }
    }

    /// "LS:NAME:PATH:OFFSET[:LVER] p PID", where a ':' inside a field is
    /// escaped as "\:".
    private static func resource(_ text: String) -> Resource? {
        guard let owner = text.range(of: " p ", options: .backwards),
              let pid = Int32(text[owner.upperBound...].trimmingCharacters(in: .whitespaces)) else { return nil }
        var fields: [String] = [], current = "", escaped = false
        for ch in text[..<owner.lowerBound] {
            if escaped { current.append(ch); escaped = false } else if ch == "\\" { escaped = true } else if ch == ":" {
                fields.append(current); current = ""
            } else { current.append(ch) }
        }
        fields.append(current)
        guard fields.count >= 4, let offset = UInt64(fields[3]) else { return nil }
        return Resource(lockspace: fields[0], name: fields[1], path: fields[2], offset: offset,
                        version: fields.count > 4 ? UInt64(fields[4]) : nil, ownerPid: pid)
    }
}
