import Foundation

/// A private sanlock daemon for tests: its own run directory (the client
/// library and CLI find it through SANLOCK_RUN_DIR), its own host name, no
/// watchdog, no systemd, no privileges. Two of them joined to the same
/// lockspace file with different host_ids are two hosts of one cluster.
///
/// A missing sanlock is an error, never a skip: the tests exist to prove
/// behaviour against the real daemon.
public final class SanlockDaemon: @unchecked Sendable {
    public let name: String
    public let runDir: String
    private var process: Process
    private var stopped = false

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The environment that points clients at this daemon.
    public var environment: [String: String] { ["SANLOCK_RUN_DIR": runDir] }

    /// Starts `sanlock daemon` and waits until `sanlock client status` answers.
    public init(name: String) throws {
        guard SanlockDaemon.executable != nil else {
            throw Failure(description: "sanlock is not installed (apt-get install sanlock): the sanlock tests need a real daemon")
        }
        self.name = name
        runDir = TempDir.make("sanlock-\(name)")
        process = try Self.launch(name: name, runDir: runDir)
    }

    private static func launch(name: String, runDir: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? "sanlock")
        // -w 0: no watchdog; -l 0: no mlockall; -U/-G root: no sanlock user;
        // -L/-S -1: no log file or syslog noise from test daemons.
        process.arguments = [
            "daemon", "-D", "-w", "0", "-U", "root", "-G", "root", "-l", "0",
            "-L", "-1", "-S", "-1", "-e", name,
        ]
        var env = ProcessInfo.processInfo.environment
        env["SANLOCK_RUN_DIR"] = runDir
        env["SANLOCK_PRIVILEGED"] = "0"  // else it exits: cannot raise the memlock limit
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        // -D keeps it in the foreground (so it is our child) and logs there.
        let log = "\(runDir)/daemon.log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        process.standardError = handle ?? FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning {
                throw Failure(description: "sanlock daemon \(name) exited with \(process.terminationStatus); see \(log)")
            }
            let status = Command.run([executable ?? "sanlock", "client", "status"], environment: ["SANLOCK_RUN_DIR": runDir], timeout: 5)
            if status.status == 0 { return process }
            usleep(50_000)
        }
        kill(process.processIdentifier, SIGKILL)
        throw Failure(description: "sanlock daemon \(name) did not answer within 10 s (run dir \(runDir))")
    }

    /// The daemon's process id (for a test that stops it: a hung daemon).
    public var pid: Int32 { process.processIdentifier }

    /// A host crash: the daemon is SIGKILLed and writes nothing more. Its
    /// lockspace membership and leases stay on disk, alive in the other
    /// hosts' eyes until they time out; processes it served keep running.
    public func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The crashed host comes back: a new daemon with the same host name
    /// (`-e`) and run directory. Rejoining a lockspace with that name tells
    /// the other hosts that the leases of its previous life are dead.
    public func restart() throws {
        crash()
        process = try Self.launch(name: name, runDir: runDir)
        stopped = false
    }

    deinit { stop() }

    /// Runs `sanlock client ARGS` against this daemon.
    @discardableResult
    public func client(_ args: [String], timeout: TimeInterval = 30) -> CommandResult {
        Command.run([SanlockDaemon.executable ?? "sanlock", "client"] + args, environment: environment, timeout: timeout)
    }

    /// `sanlock client status -D`: lockspaces, clients with their pids and
    /// restrictions, resources.
    public func status() -> String { client(["status", "-D"]).stdout }

    /// Stops the daemon: a clean shutdown (which SIGKILLs processes still
    /// holding leases), then SIGKILL if it does not go.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            client(["shutdown", "-f", "1", "-w", "1"], timeout: 15)
        }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    // MARK: lease areas

    /// Creates a zeroed 1 MiB file: the size of one sanlock lease area.
    public static func makeLeaseFile(_ path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20)) else {
            throw Failure(description: "cannot create lease file \(path)")
        }
    }

    /// Writes a lockspace with io_timeout 1, so joins take ~3 s instead of 21.
    public func initLockspace(_ name: String, path: String) throws {
        try Self.makeLeaseFile(path)
        try check(client(["init", "-s", "\(name):0:\(path):0", "-o", "1"]), "init lockspace \(name)")
    }

    /// Joins a lockspace as `hostID` (blocks until joined).
    public func join(_ name: String, hostID: Int, path: String) throws {
        try check(
            client(["add_lockspace", "-s", "\(name):\(hostID):\(path):0", "-o", "1"], timeout: 60),
            "join lockspace \(name) as host \(hostID)")
    }

    /// Initialises a resource lease area.
    public func initLease(lockspace: String, name: String, path: String) throws {
        try Self.makeLeaseFile(path)
        try check(client(["init", "-r", "\(lockspace):\(name):\(path):0"]), "init lease \(name)")
    }

    private func check(_ result: CommandResult, _ what: String) throws {
        // `sanlock client` prints "... done <rv>" and exits 0 even on failure.
        let ok = result.status == 0 && !result.stdout.contains("done -") && !result.stderr.contains("error")
        guard ok else { throw Failure(description: "sanlock \(what) failed on daemon \(name): \(result)") }
    }

    public static let executable: String? = {
        ["/usr/sbin/sanlock", "/sbin/sanlock", "/usr/bin/sanlock"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}
