import ArgumentParser
import Glibc
import LockDriver

/// Carries out a lock failure action on a process when no libvirt is
/// around to do it. Lock backends run it when an object loses a lock
/// (sanlock's killpath; the pr plugin's keeper).
struct FailureActionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failure-action",
        abstract: "Apply a lock failure action (poweroff or pause) to a process that lost its locks.")

    @Option(help: ArgumentHelp("poweroff (SIGKILL) or pause (SIGSTOP).", valueName: "action"))
    var action: String

    @Option(help: ArgumentHelp("The process that lost its locks.", valueName: "pid"))
    var pid: Int32

    @Option(help: ArgumentHelp("Object name, for the log message.", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("What was lost, for the log message.", valueName: "text"))
    var reason: String?

    func validate() throws {
        guard action == "poweroff" || action == "pause" else {
            throw ValidationError("--action must be poweroff or pause, not '\(action)'")
        }
        guard pid > 1 else { throw ValidationError("--pid must be a process id greater than 1") }
    }

    func run() throws {
        let signal = action == "poweroff" ? SIGKILL : SIGSTOP
        let who = name.map { "'\($0)' (pid \(pid))" } ?? "pid \(pid)"
        let message = "lockmgr: lock lost for \(who)\(reason.map { ": \($0)" } ?? ""); applying \(action)"
        writeStderr(message)
        guard kill(pid, signal) == 0 else {
            let error = Errno.current
            writeStderr("lockmgr: cannot \(action) pid \(pid): \(error)")
            throw ExitCode(error.code == ESRCH ? 0 : 69)
        }
    }
}
