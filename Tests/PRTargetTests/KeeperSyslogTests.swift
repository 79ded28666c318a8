import Foundation
import Glibc
import Harness
import LockDriver
import PRKeeper
import Testing

/// The pr keeper's events reach syslog (ident `lockmgr-pr-keeper`, naming
/// the VM by name and uuid) as well as keeper.log (its stderr).
@Suite struct KeeperSyslogTests {
    @Test func aKeeperWhoseVMExitedSaysSoInSyslog() throws {
        let vm = try #require(UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-0000000000aa"))
        // This process's pid with another start time: a process that is
        // gone (its pid reused), so the keeper's first round finds the VM
        // exited.
        let keeperDir = try KeeperDirectory(
            "keeper-syslog", vm: vm, name: "vm-syslog", process: VMProcess(pid: getpid(), startTime: 1))
        let (dir, store) = (keeperDir.dir, keeperDir.store)
        let syslog = try SyslogListener()
        let result = Command.run(
            ["\(BuildProducts.binDir)/pr-keeper", "watch", dir, vm.description],
            environment: ["LOCKMGR_SYSLOG_SOCKET": syslog.path], timeout: 30)
        #expect(result.status == 0, "\(result)")
        let expected = "VM 'vm-syslog' (\(vm), pid \(getpid())) exited holding nothing"
        #expect(result.stderr.contains(expected), "keeper.log gets it on stderr: \(result)")
        let messages = syslog.messages()
        #expect(messages.count == 1, "\(messages)")
        #expect(messages.first?.hasPrefix("<30>") == true, "daemon.info: \(messages)")
        #expect(messages.first?.contains(" lockmgr-pr-keeper[") == true, "\(messages)")
        #expect(messages.first?.contains(expected) == true, "\(messages)")
        #expect(try store.read(vm) == nil, "the record is gone")
    }
}
