import Glibc
import LockDriver
import PRProtocol

/// Makes sure one keeper watches a VM (call after writing its record): if
/// none runs, runs `pr-keeper start DIR UUID`,
/// which forks the keeper into a session of its own (so it is nobody's
/// child that matters: not libvirtd's, not the VM's) and returns once that
/// keeper holds its pid file, or found another keeper of the VM already
/// holding it. Only our own intermediate child is waited for.
public enum KeeperLauncher {
    /// `keeperPath` was checked to be executable by the caller, before
    /// its first SCSI command (a keeper that cannot start must not cost a
    /// reservation).
    public static func ensureRunning(keeperPath: String, store: KeeperStore, vm: UUIDBytes) throws(LockError) {
        // A keeper that holds its pid file keeps watching: it only lets go
        // of it under the record's flock, after finding the record empty,
        // and the caller has just written this VM's record. No process start
        // then (one costs milliseconds): a resume soon after a pause, a
        // rollback, a hot-plugged disk.
        if store.keeperRuns(vm) { return }
        let pid: pid_t
        switch Spawn.start([keeperPath, "start", store.dir, vm.description], output: store.logPath) {
        case .success(let p): pid = p
        case .failure(let e): throw .backend("cannot start the pr keeper \(keeperPath): \(e)")
        }
        // The intermediate exits 0 once the keeper holds its pid-file lock.
        // A host that reaps its own children leaves the status unknown
        // (nil): then the lock itself is the proof, given a moment.
        let status = Spawn.wait(pid, timeoutMilliseconds: 10_000)
        var running = store.runningKeeper(vm) != nil
        for _ in 0..<200 where !running && status == nil {
            usleep(10_000)
            running = store.runningKeeper(vm) != nil
        }
        guard running, status == nil || status == 0 else {
            let how = status.map { "exit status \($0)" } ?? "no answer within 10 s"
            throw .backend("the pr keeper for VM \(vm) did not start (\(keeperPath): \(how); see \(store.logPath))")
        }
    }
}
