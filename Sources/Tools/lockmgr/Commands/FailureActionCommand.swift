import ArgumentParser
import Glibc
import LockDriver

/// Carries out a lock failure action on a process when no libvirt is
/// around to do it: the sanlock plugin makes it sanlock's killpath. (The pr
/// plugin's keeper signals the VM, or asks libvirt, itself.)
struct FailureActionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failure-action",
        abstract: "Apply a lock failure action (poweroff or pause) to a process that lost its locks.",
        discussion: """
            poweroff kills the process (SIGKILL); its locks go with it. pause stops it
            (SIGSTOP) and, with --plugin, then gives up everything it still holds through
            that plugin, as libvirt releases a domain's locks when it pauses it: another
            host can take over, and the paused process resumes only by acquiring again.
            """)

    @Option(help: ArgumentHelp("poweroff (SIGKILL) or pause (SIGSTOP).", valueName: "action"))
    var action: String

    @Option(help: ArgumentHelp("The process that lost its locks.", valueName: "pid"))
    var pid: Int32

    @Option(help: ArgumentHelp("Object name, for the log message.", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("What was lost, for the log message.", valueName: "text"))
    var reason: String?

    /// --plugin names the plugin that holds the process's locks (pause releases through it).
    @OptionGroup var host: HostOptions

    /// How long a pause waits for the process to be seen stopped before
    /// giving anything up: a process still running must keep its locks.
    static let stopTimeout: Double = 5

    func validate() throws {
        guard action == "poweroff" || action == "pause" else {
            throw ValidationError("--action must be poweroff or pause, not '\(action)'")
        }
        guard pid > 1 else { throw ValidationError("--pid must be a process id greater than 1") }
    }

    /// What happens is told on stderr (the lock daemon's log) and syslog:
    /// losing a lock is an event an administrator must see.
    static let syslog = Logger(ident: "lockmgr", stderr: false)

    /// One line to stderr and syslog.
    private func report(_ message: String) {
        writeStderr("lockmgr: \(message)")
        Self.syslog.log(message)
    }

    func run() throws {
        let signal = action == "poweroff" ? SIGKILL : SIGSTOP
        let who = name.map { "'\($0)' (pid \(pid))" } ?? "pid \(pid)"
        report("lock lost for \(who)\(reason.map { ": \($0)" } ?? ""); applying \(action)")
        guard kill(pid, signal) == 0 else {
            let error = Errno.current
            report("cannot \(action) pid \(pid): \(error)")
            throw ExitCode(error.code == ESRCH ? ExitStatus.success : ExitStatus.unavailable)
        }
        guard action == "pause", host.plugin != nil else { return }
        guard waitUntilStopped() else {
            report("pid \(pid) was not seen stopped within \(Int(Self.stopTimeout)) s; it keeps its locks")
            throw ExitCode(ExitStatus.unavailable)
        }
        try reportingErrors(json: host.json) { () throws(LockError) in
            // Only the pid matters to a release of everything it holds.
            guard let noUUID = UUIDBytes(bytes: [UInt8](repeating: 0, count: 16)) else {
                throw .internalError("cannot build an all-zero UUID")
            }
            // No plugin config: releasing everything a pid holds needs none,
            // and the plugin's setup (sanlock joining its disk lockspace)
            // could block or fail exactly when leases are being lost.
            let settings = try host.settings()
            let plugin = try LockPlugin.load(
                name: settings.lockManager, pluginDir: settings.pluginDir, configFile: nil,
                callTimeout: settings.callTimeout)
            let object = LockObject(uuid: noUUID, name: name ?? "pid \(pid)", pid: UInt32(pid))
            let state = try plugin.makeManager(for: object, flags: []).release(flags: .allHeld)
            report("\(who) paused; released through \(plugin.name): \(state ?? "nothing was held")")
        }
    }

    /// SIGSTOP takes effect asynchronously (a process in uninterruptible
    /// I/O stops when the I/O ends): poll /proc until it shows stopped.
    private func waitUntilStopped() -> Bool {
        var waited = 0.0
        while waited < Self.stopTimeout {
            if ProcStat.read(pid)?.isStopped == true { return true }
            usleep(10_000)
            waited += 0.01
        }
        return false
    }
}
