import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// The keeper's multipath repair without a kernel: a FAKE system (sysfs,
/// the dm status ioctl) for finding a map's paths, and one model LU
/// (FakePRDevice) reached through a FAKE SG_IO device per path, each its
/// own I_T nexus. The lab (scenario multipath_path_return) runs it on
/// real dm-multipath over LIO.
@Suite("Multipath path repair")
struct PathRepairTests {
    /// A FAKE of what MultipathMap reads from the system.
    struct FakeSystem: MultipathSystem {
        var devices: [String: String] = [:]
        var files: [String: String] = [:]
        var directories: [String: [String]] = [:]
        var status: [String: String] = [:]
        func blockDeviceNumber(_ path: String) -> String? { devices[path] }
        func read(_ path: String) -> String? { files[path] }
        func list(_ path: String) -> [String] { directories[path] ?? [] }
        func dmStatus(_ name: String) -> String? { status[name] }
    }

    /// /dev/mapper/lab-lio (254:0) over sdb (8:16) and sdc (8:32), with dm's status line.
    func system(status: String, sdcState: String = "running") -> FakeSystem {
        var s = FakeSystem()
        s.devices["/dev/mapper/lab-lio"] = "254:0"
        s.files["/sys/dev/block/254:0/dm/name"] = "lab-lio"
        s.directories["/sys/dev/block/254:0/slaves"] = ["sdc", "sdb"]
        s.files["/sys/class/block/sdb/dev"] = "8:16"
        s.files["/sys/class/block/sdc/dev"] = "8:32"
        s.files["/sys/class/block/sdb/device/state"] = "running"
        s.files["/sys/class/block/sdc/device/state"] = sdcState
        s.status["lab-lio"] = status
        return s
    }

    let bothActive = "multipath 2 0 0 0 1 1 A 0 2 0 8:16 A 0 0 8:32 A 0 0 \n"
    let secondFailed = "multipath 2 0 0 0 1 1 A 0 2 0 8:16 A 0 0 8:32 F 1 0 \n"
    let key: UInt64 = 0x1111_2222_3333_4444
    let other: UInt64 = 0x1111_2222_5555_6666

    // MARK: Finding the paths

    @Test func aMultipathMapsPathsComeWithDmsStateAndTheDisksState() throws {
        let paths = try #require(MultipathMap.paths(of: "/dev/mapper/lab-lio", system: system(status: secondFailed, sdcState: "offline")))
        #expect(
            paths == [
                MultipathPath(devicePath: "/dev/sdb", number: "8:16", active: true, running: true),
                MultipathPath(devicePath: "/dev/sdc", number: "8:32", active: false, running: false),
            ])
        #expect(paths.map(\.usable) == [true, false])
        // Active in dm but its disk blocked (transport recovering): not usable either.
        let blocked = try #require(MultipathMap.paths(of: "/dev/mapper/lab-lio", system: system(status: bothActive, sdcState: "blocked")))
        #expect(blocked.map(\.usable) == [true, false])
    }

    @Test func onlyASingleMultipathTargetIsAMultipathMap() {
        #expect(MultipathMap.paths(of: "/dev/mapper/lab-lio", system: system(status: "linear \n")) == nil)
        #expect(MultipathMap.paths(of: "/dev/mapper/lab-lio", system: system(status: bothActive + bothActive)) == nil)
        // A plain disk (no dm/name) and a file that is no block device.
        var plain = system(status: bothActive)
        plain.devices["/dev/sdb"] = "8:16"
        #expect(MultipathMap.paths(of: "/dev/sdb", system: plain) == nil)
        #expect(MultipathMap.paths(of: "/tmp/image", system: plain) == nil)
    }

    @Test func pathStatesAreReadFromEveryPriorityGroup() {
        let twoGroups = "multipath 2 0 0 0 2 1 A 0 1 0 8:16 A 0 0 E 0 1 0 65:0 F 3 0"
        #expect(MultipathMap.pathStates(status: twoGroups) == ["8:16": true, "65:0": false])
    }

    // MARK: Which paths to register

    func path(_ n: Int, usable: Bool = true) -> MultipathPath {
        MultipathPath(devicePath: "/dev/sd\(n)", number: "8:\(16 * n)", active: usable, running: true)
    }

    @Test func theKeyIsRegisteredAgainOnlyWhenFewerNexusesCarryItThanTheMapHasPaths() {
        let two = [path(1), path(2)]
        #expect(PathRepair.pathsToRegister(key: key, keysSeen: [key, key], paths: two).isEmpty)
        #expect(PathRepair.pathsToRegister(key: key, keysSeen: [key, other], paths: two) == two)
        // Not registered anywhere: not ours to repair (the keeper's verdict handles a loss).
        #expect(PathRepair.pathsToRegister(key: key, keysSeen: [other], paths: two).isEmpty)
        // A path down still counts: the usable one is registered (again, or for the first time).
        let oneDown = [path(1), path(2, usable: false)]
        #expect(PathRepair.pathsToRegister(key: key, keysSeen: [key], paths: oneDown) == [path(1)])
        #expect(PathRepair.pathsToRegister(key: key, keysSeen: [key, key], paths: oneDown).isEmpty)
    }

    @Test func theStateARepairIsDecidedOnChangesWithTheRegistrationsAndTheUsablePaths() {
        let two = [path(1), path(2)]
        let once = PathRepair.state(key: key, keysSeen: [key, other], toRegister: two)
        #expect(once == PathRepair.state(key: key, keysSeen: [other, key], toRegister: two))
        #expect(once != PathRepair.state(key: key, keysSeen: [key, key, other], toRegister: two))
        #expect(once != PathRepair.state(key: key, keysSeen: [key, other], toRegister: [path(1)]))
    }

    // MARK: Registering

    /// The LU with `key` registered on nexus p1 and holding it (WE-RO), p2 unregistered.
    func heldOnOnePath() throws -> (FakePRDevice, (String) throws(LockError) -> PRDevice) {
        let lu = FakePRDevice()
        let open = { (disk: String) throws(LockError) -> PRDevice in
            PRDevice(
                transport: try SGIOTransport(path: "/dev/null", driver: FakeSGDevice(device: lu, nexus: disk)),
                timeoutMilliseconds: 1000)
        }
        let p1 = try open("/dev/sd1")
        try p1.prOut(.registerAndIgnore, key: 0, serviceActionKey: key)
        try p1.prOut(.reserve, type: .writeExclusiveRegistrantsOnly, key: key)
        return (lu, open)
    }

    @Test func aPathThatCameBackWithoutTheKeyGetsItAndTheReservationStays() throws {
        let (lu, open) = try heldOnOnePath()
        let outcome = PathRepair.run(key: key, paths: [path(1), path(2)], device: open) { () throws(LockError) in true }
        #expect(outcome == PathRepair.Outcome(registered: ["/dev/sd1", "/dev/sd2"]))
        #expect(lu.key(of: "/dev/sd1") == key && lu.key(of: "/dev/sd2") == key)
        #expect(lu.reservation?.holder == "/dev/sd1")
    }

    @Test func aPathThatCannotBeReachedIsReportedAndTheOthersAreStillRegistered() throws {
        let (lu, open) = try heldOnOnePath()
        let reachable = { (disk: String) throws(LockError) -> PRDevice in
            if disk == "/dev/sd3" { throw .backend("\(disk): host status 0x01 (DID_NO_CONNECT)") }
            return try open(disk)
        }
        let outcome = PathRepair.run(key: key, paths: [path(2), path(3)], device: reachable) { () throws(LockError) in true }
        #expect(outcome.registered == ["/dev/sd2"])
        #expect(outcome.failed.count == 1 && outcome.failed[0].contains("/dev/sd3 (8:48): /dev/sd3: host status 0x01"))
        #expect(lu.key(of: "/dev/sd2") == key)
        #expect(lu.reservation?.holder == "/dev/sd1")
    }

    @Test func aReservationTakenMeanwhileMakesTheRepairTakeTheKeyBack() throws {
        let (lu, open) = try heldOnOnePath()
        // Another host's acquire preempts this key while the repair runs.
        let thief = try open("/dev/other-host")
        try thief.prOut(.registerAndIgnore, key: 0, serviceActionKey: other)
        let outcome = PathRepair.run(key: key, paths: [path(2)], device: open) { () throws(LockError) in
            try thief.prOut(.preempt, type: .writeExclusiveRegistrantsOnly, key: other, serviceActionKey: key)
            return false
        }
        #expect(outcome.undone)
        #expect(outcome.failed.isEmpty, "\(outcome.failed)")
        // The preemption removed p1's registration; the repair's own on p2 was taken back.
        #expect(lu.key(of: "/dev/sd1") == nil && lu.key(of: "/dev/sd2") == nil)
        #expect(lu.reservation?.holder == "/dev/other-host")
    }

    @Test func anUnreadableReservationAfterRegisteringLeavesTheRegistrations() throws {
        let (lu, open) = try heldOnOnePath()
        let outcome = PathRepair.run(key: key, paths: [path(2)], device: open) { () throws(LockError) in
            throw .backend("timed out")
        }
        // Taking the key back could release a reservation still ours: left for the next round.
        #expect(!outcome.undone)
        #expect(outcome.failed == ["cannot read the reservation after registering: timed out"])
        #expect(lu.key(of: "/dev/sd2") == key && lu.reservation?.holder == "/dev/sd1")
    }
}
