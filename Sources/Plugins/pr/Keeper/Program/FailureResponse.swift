import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// Applies a VM's failure action after it lost a reservation while
/// running. poweroff and pause go through libvirt when the VM is libvirt's
/// (the record has a URI and virsh is installed), so libvirt knows the
/// domain's new state; otherwise, or when virsh fails, by signal: SIGKILL,
/// SIGSTOP. default and ignore only report: the storage already refuses the
/// VM's writes (its key was preempted), so nothing is lost by letting the
/// administrator decide.
enum FailureResponse {
    static let virsh = "/usr/bin/virsh"

    /// What was done, for the report.
    static func apply(_ action: FailureAction, to record: KeeperRecord) -> String {
        let signal: Int32
        let verb: String
        switch action {
        case .poweroff: (signal, verb) = (SIGKILL, "destroy")
        case .pause: (signal, verb) = (SIGSTOP, "suspend")
        case .default, .ignore, .restart: return "reported only (the storage fences the VM's writes)"
        }
        var notes = ""
        if let uri = record.uri, access(virsh, X_OK) == 0 {
            let argv = [virsh, "-c", uri, verb, record.vm.description]
            switch Spawn.start(argv, output: "/dev/null") {
            case .success(let pid):
                let status = Spawn.wait(pid, timeoutMilliseconds: 15_000)
                if status == 0 { return "done through libvirt (virsh \(verb))" }
                notes = "virsh \(verb) failed (\(status.map { "exit \($0)" } ?? "timed out")); "
            case .failure(let e):
                notes = "cannot run virsh (\(e)); "
            }
        }
        guard kill(record.pid, signal) == 0 else {
            return notes + "cannot signal pid \(record.pid): \(Errno.current)"
        }
        return notes + "sent \(signal == SIGKILL ? "SIGKILL" : "SIGSTOP") to pid \(record.pid)"
    }
}
