import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport
import Testing

/// The keeper's pure parts: its verdict on what a LU shows, its record
/// format, the process identity it watches, and where it is installed.
@Suite struct KeeperCoreTests {
    let vm = UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-000000000001")!
    let other = UUIDBytes("5a1e0c4e-2222-4a4a-8b8b-000000000002")!
    var me: PRKey { .exclusive(vm: vm, host: 7) }
    let lun = try! PRResource("iscsi://127.0.0.1:3260/iqn.x:t1/1")

    func view(_ holder: PRKey?, _ type: ReservationType = .writeExclusiveRegistrantsOnly, keys: [PRKey]) -> PRView {
        PRView(reservation: holder.map { .init(key: $0.rawValue, type: type) }, keys: keys.map(\.rawValue))
    }

    @Test func verdicts() throws {
        #expect(KeeperVerdict.judge(lun, myKey: me, view: view(me, keys: [me])) == .held)
        // The same VM from host 9: a migration took it over (or rolled back).
        let peer = PRKey.exclusive(vm: vm, host: 9)
        #expect(KeeperVerdict.judge(lun, myKey: me, view: view(peer, keys: [peer])) == .handedOver(to: peer))
        // Another VM, even from our own host: lost.
        let thief = PRKey.exclusive(vm: other, host: 7)
        guard case .lost(let why) = KeeperVerdict.judge(lun, myKey: me, view: view(thief, keys: [thief])) else {
            Issue.record("another VM's reservation is not a loss")
            return
        }
        #expect(why.contains(thief.description))
        // Nothing reserved any more (CLEAR, or preempted and released).
        guard case .lost = KeeperVerdict.judge(lun, myKey: me, view: view(nil, keys: [])) else {
            Issue.record("a vanished reservation is not a loss")
            return
        }
        // Shared: held while our host key is a registrant of an all-registrants reservation.
        let shared = try PRResource(lun.name, mode: .shared)
        let ours = PRKey.shared(host: 7), theirs = PRKey.shared(host: 9)
        let allRegistrants = view(PRKey(rawValue: 0), .writeExclusiveAllRegistrants, keys: [ours, theirs])
        #expect(KeeperVerdict.judge(shared, myKey: ours, view: allRegistrants) == .held)
        guard
            case .lost = KeeperVerdict.judge(
                shared, myKey: ours, view: view(PRKey(rawValue: 0), .writeExclusiveAllRegistrants, keys: [theirs]))
        else {
            Issue.record("a shared registration preempted is not a loss")
            return
        }
    }

    @Test func recordRoundTripsAndRejectsDamage() throws {
        var record = KeeperRecord(
            vm: vm, name: "my vm;1", pid: 4242, startTime: 99, action: .pause,
            uri: "qemu:///system", configFile: "/etc/libvirt/qemu-pr.conf",
            resources: [lun, try PRResource("/dev/disk/by-id/scsi-3600 x", mode: .shared)])
        #expect(try KeeperRecord(decoding: record.encoded, origin: "t") == record)
        record.markReleasing([lun.name, "iscsi://not/listed/1"])
        #expect(record.releasing == [lun.name])
        #expect(try KeeperRecord(decoding: record.encoded, origin: "t") == record)
        record.add([lun, try PRResource("iscsi://127.0.0.1:3260/iqn.x:t1/2")])
        #expect(record.resources.count == 3)
        record.remove([lun.name])
        #expect(!record.resources.contains(lun) && record.releasing.isEmpty)
        for bad in [
            "", "lockmgr-pr-keeper-v2\nuuid \(vm)\npid 1\nstart 1\naction pause\n",
            "lockmgr-pr-keeper-v1\nuuid \(vm)\npid 0\nstart 1\naction pause\n",
            "lockmgr-pr-keeper-v1\nuuid \(vm)\npid 5\nstart 1\naction explode\n",
            "lockmgr-pr-keeper-v1\nuuid \(vm)\npid 5\nstart 1\naction pause\ndisk sideways x\n",
            "lockmgr-pr-keeper-v1\nuuid \(vm)\npid 5\nstart 1\naction pause\nmystery 1\n",
            "lockmgr-pr-keeper-v1\nuuid \(vm)\npid 5\nstart 1\naction pause\nreleasing x\n",
        ] {
            #expect(throws: LockError.self, "accepted: \(bad)") { try KeeperRecord(decoding: bad, origin: "t") }
        }
    }

    @Test func aProcessIsItsPidAndStartTime() throws {
        let me = try #require(VMProcess.current(getpid()))
        #expect(me.isAlive)
        #expect(!VMProcess(pid: getpid(), startTime: me.startTime &+ 1).isAlive, "a reused pid is not the VM")
        #expect(VMProcess.current(Int32.max) == nil)
    }

    @Test func theKeeperIsFoundBesideAnInstalledPlugin() {
        #expect(InstallLayout(pluginPath: "/opt/lm/lib/lock_manager/pr.so")?.libexecDir == "/opt/lm/libexec/lockmgr")
        #expect(InstallLayout(pluginPath: "/lib/lock_manager/pr.so")?.libexecDir == "/libexec/lockmgr")
        #expect(InstallLayout(pluginPath: "/work/.build/debug/liblockmgr_pr.so") == nil)
    }

    @Test func keeperSettings() throws {
        let conf = try ConfFile(
            parsing: """
                host_id = 3
                keeper_dir = "/tmp/k"
                keeper_path = "/opt/pr-keeper"
                keeper_interval_ms = 250
                """, origin: "k.conf")
        let c = try PRConfig(conf)
        #expect(c.keeper && c.keeperDir == "/tmp/k" && c.keeperPath == "/opt/pr-keeper" && c.keeperIntervalMilliseconds == 250)
        #expect(try !PRConfig(ConfFile(parsing: "keeper = 0", origin: "k.conf")).keeper)
        #expect(throws: LockError.self) { try PRConfig(ConfFile(parsing: "keeper_dir = \"run/pr\"", origin: "k.conf")) }
        #expect(throws: LockError.self) { try PRConfig(ConfFile(parsing: "keeper_interval_ms = 5", origin: "k.conf")) }
    }
}
