import Foundation
import LockDriver
import SanlockCore
import Testing
import TestSupport

/// Our sanlock plugin against real sanlock daemons: two hosts, VM-like
/// processes under `lockmgr run`, and libvirt's own sanlock.so.
@Suite(.serialized, .sanlockCluster)
struct SanlockPluginTests {
    func cluster() throws -> SanlockCluster { try #require(SanlockCluster.current) }

    /// `LS:NAME:PATH:OFFSET:VERSION` with a numeric version.
    func isEntry(_ entry: Substring, lockspace: String, name: String, path: String) -> Bool {
        let prefix = "\(lockspace):\(name):\(path):0:"
        return entry.hasPrefix(prefix) && UInt64(entry.dropFirst(prefix.count)) != nil
    }

    // 1. Acquire, inquire, release; the state string's format.
    @Test func acquireInquireReleaseAutoAndExplicitLeases() throws {
        let c = try cluster()
        let disk = c.disk("t1"), readOnly = c.disk("t1-ro")
        let explicit = LockResource.lease(key: "explicit-1", lockspace: SanlockCluster.lockspace, path: c.explicitLease)
        let vm = try c.startVM(.a, name: "vm-t1", ["--disk", disk, "--readonly-disk", readOnly,
                                                   "--lease", "key=explicit-1,lockspace=\(SanlockCluster.lockspace),path=\(c.explicitLease)"])
        // The automatic lease file, laid out as libvirt lays it out.
        let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
        #expect(attributes[.size] as? Int == 1 << 20)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: readOnly)), "read-only disks take no lease")

        let m = try c.manager(pid: vm.pid, name: "vm-t1", [.disk(disk), .disk(readOnly, mode: .readOnly), explicit])
        let state = try #require(try m.inquire())
        let entries = state.split(separator: " ")
        #expect(entries.count == 2, "\(state)")
        #expect(entries.contains { isEntry($0, lockspace: SanlockCluster.lockspace, name: MD5.hex(disk), path: c.leaseFile(forDisk: disk)) })
        #expect(entries.contains { isEntry($0, lockspace: SanlockCluster.lockspace, name: "explicit-1", path: c.explicitLease) })

        #expect(try m.release() == state)
        #expect(try m.inquire() == nil, "everything released")
        // Free again: another VM takes both.
        let next = try c.startVM(.a, name: "vm-t1b", ["--disk", disk, "--lease", "key=explicit-1,lockspace=\(SanlockCluster.lockspace),path=\(c.explicitLease)"])
        next.stop()
    }

    @Test func sharedDisksTakeSharedLeases() throws {
        let c = try cluster()
        let disk = c.disk("shared")
        let first = try c.startVM(.a, name: "vm-sh1", ["--shared-disk", disk])
        let second = try c.startVM(.a, name: "vm-sh2", ["--shared-disk", disk])
        let state = try #require(try c.manager(pid: second.pid, name: "vm-sh2", [.disk(disk, mode: .shared)]).inquire())
        #expect(state == "\(SanlockCluster.lockspace):\(MD5.hex(disk)):\(c.leaseFile(forDisk: disk)):0:SH")
        let writer = c.lockmgr(.a, "acquire", ["--disk", disk])
        #expect(writer.status == 75, "an exclusive user must wait for the shared holders: \(writer)")
        first.stop()
        second.stop()
    }

    // 2. Mutual exclusion on one host and across hosts.
    @Test func secondVMAndSecondHostAreRefused() throws {
        let c = try cluster()
        let disk = c.disk("t2")
        let vm = try c.startVM(.a, name: "vm-t2", ["--disk", disk])

        let sameHost = c.lockmgr(.a, "acquire", ["--disk", disk], name: "vm-t2-other")
        #expect(sameHost.status == 75)
        #expect(sameHost.stderr.contains("cannot acquire lease '\(MD5.hex(disk))'"), "\(sameHost)")
        #expect(sameHost.stderr.contains("already held by another process on this host"), "\(sameHost)")

        let otherHost = c.lockmgr(.b, "acquire", ["--disk", disk], name: "vm-t2-elsewhere")
        #expect(otherHost.status == 75)
        #expect(otherHost.stderr.contains("held by another host that is alive"), "\(otherHost)")
        vm.stop()
    }

    // 3. The holder dies: its lease is free for another host.
    @Test func killedHolderFreesTheLeaseForAnotherHost() throws {
        let c = try cluster()
        let disk = c.disk("t3")
        let vm = try c.startVM(.a, name: "vm-t3", ["--disk", disk])
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75, "held while the holder lives")
        vm.signal(SIGKILL)
        #expect(vm.waitForExit())
        var last: CommandResult?
        let taken = eventually {
            last = c.lockmgr(.b, "acquire", ["--disk", disk], name: "vm-t3-b")
            return last?.status == 0
        }
        #expect(taken, "host B could not take the lease of a killed holder: \(String(describing: last))")
    }

    // 4. Migration: source releases with a state, destination acquires with it; the state is then stale.
    @Test func migrationHandsOverAndTheOldStateIsStale() throws {
        let c = try cluster()
        let disk = c.disk("t4")
        let source = try c.startVM(.a, name: "vm-t4", ["--disk", disk])
        let sourceManager = try c.manager(pid: source.pid, name: "vm-t4", [.disk(disk)])
        let inquired = try #require(try sourceManager.inquire())
        let state = try #require(try sourceManager.release())
        #expect(state == inquired)

        let destination = try c.startVM(.b, name: "vm-t4", ["--disk", disk, "--state", state])
        let stolen = c.lockmgr(.a, "acquire", ["--disk", disk])
        #expect(stolen.status == 75 && stolen.stderr.contains("held by another host"), "\(stolen)")
        destination.stop()

        // The destination took a newer version: the source's state is stale
        // even once the lease is free (libvirt's plugin would accept it).
        var reuse: CommandResult?
        let refused = eventually {
            reuse = c.lockmgr(.a, "acquire", ["--disk", disk, "--state", state], name: "vm-t4")
            return reuse?.stderr.contains("the state is stale") == true
        }
        #expect(refused, "\(String(describing: reuse))")
        #expect(reuse?.status == 75)
        #expect(reuse?.stderr.contains("lease version changed") == true)
        #expect(c.lockmgr(.a, "acquire", ["--disk", disk]).status == 0, "refused for the state, not because it was held")
        source.stop()
    }

    // 5. libvirt's own sanlock.so against the same daemon and lease directory.
    @Test func interoperatesWithLibvirtsPlugin() throws {
        let c = try cluster()
        let libvirt = try LockPlugin.load(name: "sanlock", pluginDir: BuildProducts.libvirtPluginDir,
                                          configFile: "\(c.configDirA)/qemu-sanlock.conf")
        #expect(libvirt.flags == .usesState)
        let disk = c.disk("t5")
        let vm1 = try c.startVM(.a, name: "vm-t5a", ["--register-only"])
        let vm2 = try c.startVM(.a, name: "vm-t5b", ["--register-only"])

        // libvirt's plugin creates the lease file and takes the lease for vm1.
        try c.manager(pid: vm1.pid, name: "vm-t5a", [.disk(disk)], plugin: libvirt).acquire()
        let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
        #expect(attributes[.size] as? Int == 1 << 20 && attributes[.posixPermissions] as? Int == 0o600)

        // Ours refuses it for vm2.
        let ours = try c.manager(pid: vm2.pid, name: "vm-t5b", [.disk(disk)])
        let refused = #expect(throws: LockError.self) { try ours.acquire() }
        #expect(refused?.kind == .conflict)
        #expect(refused?.message.contains("already held by another process") == true, "\(refused?.message ?? "")")

        // libvirt's plugin releases; ours acquires with the state it produced.
        let state = try #require(try c.manager(pid: vm1.pid, name: "vm-t5a", [.disk(disk)], plugin: libvirt).release())
        try c.manager(pid: vm2.pid, name: "vm-t5b", [.disk(disk)]).acquire(state: state)
        #expect(try ours.inquire()?.contains(MD5.hex(disk)) == true)

        // Now libvirt's plugin is refused the lease ours holds.
        #expect(throws: LockError.self) {
            try c.manager(pid: vm1.pid, name: "vm-t5a", [.disk(disk)], plugin: libvirt).acquire()
        }
        vm1.stop()
        vm2.stop()
    }

    // 6. lockmgr run: the command is the lease owner; its exit frees the lease.
    @Test func runMakesTheCommandTheLeaseOwner() throws {
        let c = try cluster()
        let disk = c.disk("t6")
        let vm = try c.startVM(.a, name: "vm-t6", ["--disk", disk], payload: ["sh", "-c", "read line"])
        #expect(vm.reportedPid == vm.pid, "the command runs as lockmgr's own pid")
        let state = try c.manager(pid: vm.pid, name: "vm-t6", [.disk(disk)]).inquire()
        #expect(state?.contains(MD5.hex(disk)) == true, "the command's pid holds the lease")
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75)

        try vm.input.fileHandleForWriting.close()   // the command reads EOF and exits
        #expect(vm.waitForExit())
        #expect(vm.process.terminationStatus != 0 || vm.process.terminationReason == .exit)
        #expect(eventually { c.lockmgr(.b, "acquire", ["--disk", disk]).status == 0 }, "free once the command exited")
    }

    // 7. libvirt's start-then-resume: REGISTER_ONLY|RESTRICT in the VM, acquire from outside.
    @Test func registerOnlyThenAcquireOnBehalf() throws {
        let c = try cluster()
        let disk = c.disk("t7")
        let vm = try c.startVM(.a, name: "vm-t7", ["--register-only", "--restrict", "--action", "poweroff", "--disk", disk])
        let m = try c.manager(pid: vm.pid, name: "vm-t7", [.disk(disk)])
        #expect(try m.inquire() == nil, "registered, holding nothing")
        #expect(c.clientStatus(.a, pid: vm.pid).contains("restricted=1"), "RESTRICT applied to the VM's registration")

        // libvirt's resume passes the domain's failure action again.
        try m.acquire(action: .poweroff)
        #expect(try m.inquire()?.contains(MD5.hex(disk)) == true)
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75)
        let unsupported = #expect(throws: LockError.self) { try m.acquire(action: .restart) }
        #expect(unsupported?.kind == .unsupported)

        let restrictOther = #expect(throws: LockError.self) { try m.acquire(flags: .restrict) }
        #expect(restrictOther?.kind == .unsupported)

        // A process that never registered cannot have leases taken for it.
        let stranger = Process()
        stranger.executableURL = URL(fileURLWithPath: "/bin/sleep")
        stranger.arguments = ["30"]
        try stranger.run()
        defer { kill(stranger.processIdentifier, SIGKILL); stranger.waitUntilExit() }
        let unregistered = #expect(throws: LockError.self) {
            try c.manager(pid: stranger.processIdentifier, name: "stranger", [.disk(c.disk("t7b"))]).acquire()
        }
        #expect(unregistered?.message.contains("not registered with sanlock") == true, "\(unregistered?.message ?? "")")
        vm.stop()
    }

    // Failure actions without libvirt: sanlock runs `lockmgr failure-action`.
    @Test(arguments: ["poweroff", "pause"])
    func failureActionRunsWhenTheLeaseIsRevoked(action: String) throws {
        let c = try cluster()
        let disk = c.disk("fa-\(action)")
        let vm = try c.startVM(.a, name: "vm-fa", ["--action", action, "--disk", disk])
        defer { vm.stop() }
        let state = try #require(try c.manager(pid: vm.pid, name: "vm-fa", [.disk(disk)]).inquire())
        // Another owner requests the lease, gracefully (force mode 2): the
        // holder's daemon runs the holder's killpath instead of SIGKILL.
        let version = try #require(state.split(separator: ":").last.flatMap { UInt64($0) })
        let resource = state.split(separator: ":").dropLast().joined(separator: ":")
        c.a.client(["request", "-r", "\(resource):\(version + 1)", "-f", "2"])
        c.a.client(["examine", "-r", resource])

        if action == "poweroff" {
            #expect(vm.waitForExit(timeout: 15), "powered off")
            #expect(vm.process.terminationReason == .uncaughtSignal && vm.process.terminationStatus == SIGKILL)
        } else {
            #expect(eventually(timeout: 15) { processState(vm.pid) == "T" }, "paused (stopped)")
        }
        let log = (try? String(contentsOfFile: c.helperLog, encoding: .utf8)) ?? ""
        #expect(log.contains("failure-action --action \(action) --pid \(vm.pid) --name vm-fa"), "helper log: \(log)")
    }

    @Test func unsupportedFailureActionsAreRefusedAtAcquire() throws {
        let c = try cluster()
        let r = c.lockmgr(.a, "acquire", ["--action", "restart", "--disk", c.disk("restart")])
        #expect(r.status == 64)
        #expect(r.stderr.contains("failure action 'restart' is not supported with sanlock"), "\(r)")
    }

    // 8. Bad configuration, no daemon, lease problems: clear errors.
    @Test func missingDaemonIsAClearInitError() throws {
        let c = try cluster()
        let empty = TempDir.make("no-sanlock")
        let r = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], environment: ["SANLOCK_RUN_DIR": empty])
        #expect(r.status != 0)
        #expect(r.stderr.contains("failed to initialise"), "\(r)")
        #expect(r.stderr.contains("the sanlock daemon is not running (no socket \(empty)/sanlock.sock)"), "\(r)")
    }

    @Test func autoLeasesWithoutHostIDNameTheConfigFile() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-badconf")
        TempDir.write("auto_disk_leases = 1\ndisk_lease_dir = \"\(c.leaseDir)\"\n", to: "\(dir)/qemu-sanlock.conf")
        let r = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(r.status == 78)
        #expect(r.stderr.contains("\(dir)/qemu-sanlock.conf: auto_disk_leases = 1 needs host_id"), "\(r)")

        TempDir.write("auto_disk_leases = 1\nhost_id = 1\nlease_dir = \"/x\"\n", to: "\(dir)/qemu-sanlock.conf")
        let typo = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(typo.status == 78)
        #expect(typo.stderr.contains("\(dir)/qemu-sanlock.conf:3: unknown setting 'lease_dir'"), "\(typo)")

        // Lockspace setup fails initialisation (libvirt's plugin swallows this).
        TempDir.write("auto_disk_leases = 1\nhost_id = 1\ndisk_lease_dir = \"\(dir)/missing\"\n", to: "\(dir)/qemu-sanlock.conf")
        let noDir = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(noDir.status == 78)
        #expect(noDir.stderr.contains("failed to initialise"), "\(noDir)")
        #expect(noDir.stderr.contains("cannot create lockspace __LIBVIRT__DISKS__: disk_lease_dir \(dir)/missing does not exist"), "\(noDir)")
    }

    @Test func diskWithoutLeaseIsRefusedWhenLeasesAreRequired() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-noauto")
        TempDir.write("require_lease_for_disks = 1\n", to: "\(dir)/qemu-sanlock.conf")
        let r = c.lockmgr(.a, "acquire", ["--disk", "/images/unleased.img"], configDir: dir)
        #expect(r.status == 78)
        #expect(r.stderr.contains("read/write disk /images/unleased.img has no lease"), "\(r)")
    }

    @Test func leaseProblemsNameTheLeaseAndTheCause() throws {
        let c = try cluster()
        func acquire(_ lease: String) -> CommandResult { c.lockmgr(.a, "acquire", ["--lease", lease]) }

        let missing = acquire("key=gone,lockspace=\(SanlockCluster.lockspace),path=\(c.dir)/no-such.lease")
        #expect(missing.stderr.contains("cannot acquire lease 'gone'") && missing.stderr.contains("the lease file does not exist"), "\(missing)")

        let blank = "\(c.dir)/blank.lease"
        try SanlockDaemon.makeLeaseFile(blank)
        let uninitialised = acquire("key=blank,lockspace=\(SanlockCluster.lockspace),path=\(blank)")
        #expect(uninitialised.stderr.contains("lease area is not initialised"), "\(uninitialised)")
        #expect(uninitialised.stderr.contains("(sanlock error -223)"))

        let other = "\(c.dir)/other-lockspace.lease"
        try c.a.initLease(lockspace: "NOTJOINED", name: "elsewhere", path: other)
        let notJoined = acquire("key=elsewhere,lockspace=NOTJOINED,path=\(other)")
        #expect(notJoined.stderr.contains("lockspace 'NOTJOINED'") && notJoined.stderr.contains("has not joined"), "\(notJoined)")
        for r in [missing, uninitialised, notJoined] { #expect(r.status != 0) }
    }
}

/// The state letter of /proc/PID/stat (R, S, T, Z...).
func processState(_ pid: Int32) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ").first.map(String.init)
}
