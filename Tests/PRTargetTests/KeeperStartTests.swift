import Foundation
import Glibc
import Harness
import LockDriver
import PRKeeper
import Testing

/// Starting a VM's keeper: `pr-keeper start` forks the keeper into a
/// session of its own and returns once one holds the VM's pid file. Calls
/// for one VM may meet (libvirt registers and acquires from different
/// threads; two hosts' plugin copies share nothing but the directory).
@Suite struct KeeperStartTests {
    /// Eight starts at once (as many plugin calls that all found no keeper
    /// running): every one returns success, exactly one keeper stays, it
    /// is nobody's child here and leads its own session, and it does its
    /// work (the VM's exit ends it and its record).
    @Test func startsThatMeetLeaveOneDetachedKeeper() throws {
        let qemu = try SpawnedProcess(["/bin/sleep", "60"])
        defer { qemu.stop(SIGKILL) }
        let vm = try #require(UUIDBytes("5a1e0c4e-2222-4a4a-8b8b-0000000000bb"))
        let keeperDir = try KeeperDirectory(
            "keeper-start", vm: vm, name: "vm-start", process: try #require(VMProcess.current(qemu.pid)),
            intervalMilliseconds: 100)
        let (dir, store) = (keeperDir.dir, keeperDir.store)

        let lock = Mutex()
        var failures: [String] = []
        func record(_ failure: String) { lock.withLock { failures.append(failure) } }
        Parallel.forEach(8) { i in
            let argv = ["\(BuildProducts.binDir)/pr-keeper", "start", dir, vm.description]
            switch Spawn.start(argv, output: store.logPath) {
            case .success(let pid):
                let status = Spawn.wait(pid, timeoutMilliseconds: 10_000)
                if status != 0 { record("start \(i): status \(status.map(String.init) ?? "none")") }
            case .failure(let e): record("start \(i): \(e)")
            }
        }
        #expect(failures.isEmpty, "\(failures); \((try? String(contentsOfFile: store.logPath, encoding: .utf8)) ?? "")")
        let keeper = try #require(store.runningKeeper(vm), "no keeper holds the pid file")
        #expect(getsid(keeper) == keeper, "the keeper leads its own session")
        #expect(ProcStat.read(keeper)?.parent != getpid(), "the keeper is the test's child")
        #expect(eventually { keepers(in: dir) == [keeper] }, "keepers: \(keepers(in: dir)), holding the pid file: \(keeper)")

        qemu.stop(SIGKILL)
        #expect(eventually { keepers(in: dir).isEmpty }, "the keeper outlived its VM")
        #expect(try store.read(vm) == nil, "the record outlived the VM")
    }

    /// pr-keeper processes whose command line names `dir`.
    func keepers(in dir: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
                exe.hasSuffix("/pr-keeper"),
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return false }
            return String(decoding: cmdline, as: UTF8.self).contains(dir) && ProcStat.read(pid)?.state != "Z"
        }.sorted()
    }
}
