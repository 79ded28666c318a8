import Harness
import LockDriver
import PRKeeper
import PRProtocol

/// A keeper directory holding one VM's record with no disks (nothing to
/// release, no device needed), and the config the record names: where a
/// test of the keeper program starts.
struct KeeperDirectory {
    let dir: String
    let store: KeeperStore
    let vm: UUIDBytes

    init(_ label: String, vm: UUIDBytes, name: String, process: VMProcess, intervalMilliseconds: Int? = nil) throws {
        dir = TempDir.make(label)
        store = KeeperStore(dir: dir)
        self.vm = vm
        let config = "\(dir)/qemu-pr.conf"
        let interval = intervalMilliseconds.map { "keeper_interval_ms = \($0)\n" } ?? ""
        TempDir.write("host_id = 7\nkeeper_dir = \"\(dir)\"\n\(interval)", to: config)
        try store.update(vm) { (record: inout KeeperRecord?) throws(LockError) in
            record = KeeperRecord(
                vm: vm, name: name, pid: process.pid, startTime: process.startTime, action: .poweroff,
                uri: nil, configFile: config, resources: [])
        }
    }
}
