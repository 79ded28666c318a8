import Glibc
import LockDriver

/// Makes sure one keeper watches a VM: runs `pr-keeper start DIR UUID`,
/// which starts the keeper in a session of its own (so it is nobody's child
/// that matters: not libvirtd's, not the VM's) and returns once that keeper
/// holds its pid file, or found another keeper of the VM already holding
/// it. Only our own intermediate child is waited for.
public enum KeeperLauncher {
    public static func ensureRunning(keeperPath: String, store: KeeperStore, vm: UUIDBytes) throws(LockError) {
        guard access(keeperPath, X_OK) == 0 else {
            throw .config("the pr keeper \(keeperPath) is not an executable program: \(Errno.current)")
        }
        let pid: pid_t
        switch Spawn.start([keeperPath, "start", store.dir, vm.description], output: store.logPath) {
        case .success(let p): pid = p
        case .failure(let e): throw .backend("cannot start the pr keeper \(keeperPath): \(e)")
        }
        let status = Spawn.wait(pid, timeoutMilliseconds: 10_000)
        guard let status, status == 0, store.runningKeeper(vm) != nil else {
            let how = status.map { "exit status \($0)" } ?? "no answer within 10 s"
            throw .backend("the pr keeper for VM \(vm) did not start (\(keeperPath): \(how); see \(store.logPath))")
        }
    }
}
