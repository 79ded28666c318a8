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
        let dir = TempDir.make("keeper-syslog")
        let config = "\(dir)/qemu-pr.conf"
        TempDir.write("host_id = 7\nkeeper_dir = \"\(dir)\"\n", to: config)
        let vm = try #require(UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-0000000000aa"))
        let store = KeeperStore(dir: dir)
        // This process's pid with another start time: a process that is
        // gone (its pid reused), so the keeper's first round finds the VM
        // exited. No disks: nothing to release, no device needed.
        try store.update(vm) { (record: inout KeeperRecord?) throws(LockError) in
            record = KeeperRecord(
                vm: vm, name: "vm-syslog", pid: getpid(), startTime: 1, action: .poweroff,
                uri: nil, configFile: config, resources: [])
        }
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
