import Foundation

/// A long-running program a test starts in the foreground as its own child,
/// so it can be waited for and never outlives the test as an orphan. Its
/// output goes to a log file that failure messages quote.
///
/// Spawned with posix_spawn rather than Foundation's Process: the child gets
/// an empty signal mask and default signal dispositions. A child spawned from
/// a Dispatch worker thread otherwise inherits that thread's blocked signals,
/// and a daemon with SIGTERM blocked never stops.
public final class Daemon: @unchecked Sendable {
    public let name: String
    public let logPath: String
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ argv: [String], name: String, logPath: String, environment: [String: String] = [:]) throws {
        self.name = name
        self.logPath = logPath
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        pid = try Self.spawn(argv, environment: env.map { "\($0.key)=\($0.value)" }, logPath: logPath, name: name)
    }

    private static func spawn(_ argv: [String], environment: [String], logPath: String, name: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        var attrs = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attrs)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attrs)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attrs, &noSignals)
        posix_spawnattr_setsigdefault(&attrs, &allSignals)
        posix_spawnattr_setflags(&attrs, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attrs, cArgs, cEnv)
        guard rc == 0 else {
            throw FixtureError("\(name): cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Whether it still runs; reaps it once it has exited.
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid || (rc < 0 && errno == ECHILD) {
            exitStatus = status
            return false
        }
        return true
    }

    /// The raw wait status once it has exited.
    public var terminationStatus: Int32? {
        _ = isRunning
        lock.lock()
        defer { lock.unlock() }
        return exitStatus
    }

    /// The end of the log, for failure messages.
    public func logTail(lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Sends `signal`, waits up to `timeout` seconds, then SIGKILLs.
    /// Returns whether it exited before the SIGKILL.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 10) -> Bool {
        guard isRunning else { return true }
        kill(pid, signal)
        if waitForExit(timeout: timeout) { return true }
        kill(pid, SIGKILL)
        _ = waitForExit(timeout: 10)
        return false
    }

    /// Waits until the program exits by itself (after a shutdown request).
    public func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            guard Date() < deadline else { return false }
            usleep(10_000)
        }
        return true
    }

    /// Polls `probe` every 50 ms until it holds; fails early with the log
    /// if the program died, or after `timeout` seconds.
    public func waitUntil(_ what: String, timeout: TimeInterval, _ probe: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !probe() {
            guard isRunning else {
                throw FixtureError("\(name) exited (wait status \(terminationStatus ?? -1)) before \(what); its log \(logPath) ends:\n\(logTail())")
            }
            guard Date() < deadline else {
                throw FixtureError("\(name) not \(what) after \(Int(timeout)) s; its log \(logPath) ends:\n\(logTail())")
            }
            usleep(50_000)
        }
    }

    deinit { stop(signal: SIGKILL, timeout: 5) }
}
