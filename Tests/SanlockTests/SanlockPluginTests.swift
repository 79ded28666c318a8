import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

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
        let resources = [
            "--disk", disk, "--readonly-disk", readOnly,
            "--lease", "key=explicit-1,lockspace=\(SanlockCluster.lockspace),path=\(c.explicitLease)",
        ]
        let vm = try c.startVM(.a, name: "vm-t1", resources)
        // The automatic lease file, laid out as libvirt lays it out.
        let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
        #expect(attributes[.size] as? Int == 1 << 20)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: readOnly)), "read-only disks take no lease")

        let state = try #require(c.state(.a, "inquire", pid: vm.pid, resources))
        let entries = state.split(separator: " ")
        #expect(entries.count == 2, "\(state)")
        #expect(
            entries.contains { isEntry($0, lockspace: SanlockCluster.lockspace, name: MD5.hex(disk), path: c.leaseFile(forDisk: disk)) })
        #expect(entries.contains { isEntry($0, lockspace: SanlockCluster.lockspace, name: "explicit-1", path: c.explicitLease) })

        #expect(c.state(.a, "release", pid: vm.pid, resources) == state)
        #expect(c.state(.a, "inquire", pid: vm.pid, resources) == nil, "everything released")
        // Free again: another VM takes both.
        let next = try c.startVM(
            .a, name: "vm-t1b", ["--disk", disk, "--lease", "key=explicit-1,lockspace=\(SanlockCluster.lockspace),path=\(c.explicitLease)"])
        next.stop()
    }

    @Test func explicitLeaseAtAnOffset() throws {
        let c = try cluster()
        let file = "\(c.dir)/two-leases"
        try SanlockDaemon.makeLeaseFile(file)
        for (name, offset) in [("first", 0), ("second", 1 << 20)] {
            let r = c.a.client(["init", "-r", "\(SanlockCluster.lockspace):\(name):\(file):\(offset)"])
            try #require(r.status == 0 && !r.stdout.contains("done -"), "\(r)")
        }
        let second = "key=second,lockspace=\(SanlockCluster.lockspace),path=\(file),offset=\(1 << 20)"
        let vm = try c.startVM(.a, name: "vm-offset", ["--lease", second])
        #expect(
            c.state(.a, "inquire", pid: vm.pid, ["--lease", second])
                == "\(SanlockCluster.lockspace):second:\(file):1048576:1")
        // The lease at offset 0 in the same file is a different lease: free.
        #expect(c.lockmgr(.b, "acquire", ["--lease", "key=first,lockspace=\(SanlockCluster.lockspace),path=\(file)"]).status == 0)
        #expect(c.lockmgr(.b, "acquire", ["--lease", second]).status == 75)
        vm.stop()
    }

    @Test func userAndGroupOwnTheLeaseFilesAsInLibvirt() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-owner")
        let conf = try String(contentsOfFile: "\(c.configDirA)/qemu-sanlock.conf", encoding: .utf8)
        TempDir.write(conf + "user = \"+65534\"\ngroup = \"+65534\"\n", to: "\(dir)/qemu-sanlock.conf")
        let disk = c.disk("owned")
        let r = c.lockmgr(.a, "acquire", ["--disk", disk], configDir: dir)
        #expect(r.status == 0, "\(r)")
        let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
        #expect(attributes[.ownerAccountID] as? Int == 65534 && attributes[.groupOwnerAccountID] as? Int == 65534)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        // The existing lockspace is handed to them too, with group access.
        let lockspace = try FileManager.default.attributesOfItem(atPath: SanlockLease.autoLockspacePath(leaseDir: c.leaseDir))
        #expect(lockspace[.groupOwnerAccountID] as? Int == 65534 && lockspace[.posixPermissions] as? Int == 0o660)
    }

    @Test func sharedDisksTakeSharedLeases() throws {
        let c = try cluster()
        let disk = c.disk("shared")
        let first = try c.startVM(.a, name: "vm-sh1", ["--shared-disk", disk])
        let second = try c.startVM(.a, name: "vm-sh2", ["--shared-disk", disk])
        let state = try #require(c.state(.a, "inquire", pid: second.pid, ["--shared-disk", disk]))
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
        let inquired = try #require(c.state(.a, "inquire", pid: source.pid, ["--disk", disk]))
        let state = try #require(c.state(.a, "release", pid: source.pid, ["--disk", disk]))
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
        // The same state with its version cut off, or marked shared, would
        // skip that check: refused as invalid before anything is acquired.
        let unversioned = state.split(separator: ":").dropLast().joined(separator: ":")
        for tampered in [unversioned, unversioned + ":SH"] {
            let r = c.lockmgr(.a, "acquire", ["--disk", disk, "--state", tampered], name: "vm-t4")
            #expect(r.status == 65 && r.stderr.contains("without a lease version"), "\(tampered): \(r)")
        }
        #expect(c.lockmgr(.a, "acquire", ["--disk", disk]).status == 0, "refused for the state, not because it was held")
        source.stop()
    }

    // 5. libvirt's own sanlock.so against the same daemon and lease directory,
    // loaded by our host (lockmgr) like ours.
    @Test func interoperatesWithLibvirtsPlugin() throws {
        let c = try cluster()
        let libvirt = BuildProducts.libvirtPluginDir
        let disk = c.disk("t5")
        let vm1 = try c.startVM(.a, name: "vm-t5a", ["--register-only"])
        let vm2 = try c.startVM(.a, name: "vm-t5b", ["--register-only"])
        func acquire(_ vm: VM, pluginDir: String, _ extra: [String] = []) -> CommandResult {
            c.lockmgr(.a, "acquire", ["--pid", "\(vm.pid)", "--disk", disk] + extra, name: "vm-t5", pluginDir: pluginDir)
        }

        // libvirt's plugin creates the lease file and takes the lease for vm1.
        let byLibvirt = acquire(vm1, pluginDir: libvirt)
        #expect(byLibvirt.status == 0, "\(byLibvirt)")
        let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
        #expect(attributes[.size] as? Int == 1 << 20 && attributes[.posixPermissions] as? Int == 0o600)

        // Ours refuses it for vm2.
        let refused = acquire(vm2, pluginDir: BuildProducts.pluginDir)
        #expect(refused.status == 75)
        #expect(refused.stderr.contains("already held by another process on this host"), "\(refused)")

        // libvirt's plugin releases; ours acquires with the state it produced.
        let state = try #require(c.state(.a, "release", pid: vm1.pid, ["--disk", disk], pluginDir: libvirt))
        let taken = acquire(vm2, pluginDir: BuildProducts.pluginDir, ["--state", state])
        #expect(taken.status == 0, "\(taken)")
        #expect(c.state(.a, "inquire", pid: vm2.pid, ["--disk", disk])?.contains(MD5.hex(disk)) == true)

        // Now libvirt's plugin is refused the lease ours holds.
        let refusedByLibvirt = acquire(vm1, pluginDir: libvirt)
        #expect(refusedByLibvirt.status != 0)
        #expect(refusedByLibvirt.stderr.contains("Failed to acquire lock"), "\(refusedByLibvirt)")
        vm1.stop()
        vm2.stop()
    }

    /// The other direction: libvirt's own loader (lock_manager.c in
    /// libvirt.so.0, what libvirtd runs) loads our sanlock.so from
    /// LIBVIRT_LOCK_MANAGER_PLUGIN_DIR and drives a real cycle in its own
    /// process, as in a domain's start. Host: the interop tests' C program.
    @Test func libvirtsLoaderDrivesOurPlugin() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-libvirt-loader")
        let source = try String(contentsOfFile: "\(CProgram.repoRoot)/Tests/InteropTests/C/libvirt_loader_host.c", encoding: .utf8)
        let host = try CProgram.build(
            source, name: "libvirt_loader_host", in: dir,
            flags: [
                "-I", "\(CProgram.repoRoot)/Tests/InteropTests/C",
                "/usr/lib/x86_64-linux-gnu/libvirt.so.0",
            ])
        let pluginDir = "\(dir)/lock-driver"
        try FileManager.default.createDirectory(atPath: pluginDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(pluginDir)/sanlock.so", withDestinationPath: BuildProducts.library("sanlock"))
        let disk = c.disk("libvirt-loader")
        var env = c.a.environment
        env["LIBVIRT_LOCK_MANAGER_PLUGIN_DIR"] = pluginDir
        let run = Command.run([host, "sanlock", c.configDirA, disk], environment: env, timeout: 60)
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(
            Array(lines.prefix(6)) == [
                "plugin sanlock usesState 1", "file loaded", "table ours", "version 1000000",
                "new 0", "add disk 0",
            ], "\(run)")
        #expect(lines.contains { $0.hasPrefix("acquire 0 fd ") && !$0.hasSuffix("fd -1") }, "registered in its own process: \(run)")
        let lease = "\(SanlockCluster.lockspace):\(MD5.hex(disk)):\(c.leaseFile(forDisk: disk)):0:"
        #expect(lines.contains { $0.hasPrefix("inquire 0 state \(lease)") }, "\(run)")
        #expect(lines.contains { $0.hasPrefix("release 0 state \(lease)") }, "\(run)")
        #expect(
            lines.contains { $0.contains("error code=8 domain=42 message=invalid argument: sanlock: drvAcquire: unsupported flags 0x80") },
            "our errors become libvirt's: \(run)")
    }

    // 6. lockmgr run: the command is the lease owner; its exit frees the lease.
    @Test func runMakesTheCommandTheLeaseOwner() throws {
        let c = try cluster()
        let disk = c.disk("t6")
        let exitFile = "\(c.dir)/exit-t6"
        let vm = try c.startVM(.a, name: "vm-t6", ["--disk", disk], payload: SanlockCluster.exitWhenCreated(exitFile))
        #expect(vm.reportedPid == vm.pid, "the command runs as lockmgr's own pid")
        let state = c.state(.a, "inquire", pid: vm.pid, ["--disk", disk])
        #expect(state?.contains(MD5.hex(disk)) == true, "the command's pid holds the lease")
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75)

        TempDir.write("", to: exitFile)  // the command ends by itself
        try #require(vm.waitForExit())
        #expect(vm.process.terminationReason == .exit && vm.process.terminationStatus == 0)
        #expect(eventually { c.lockmgr(.b, "acquire", ["--disk", disk]).status == 0 }, "free once the command exited")
    }

    // 7. libvirt's start-then-resume: REGISTER_ONLY|RESTRICT in the VM, acquire from outside.
    @Test func registerOnlyThenAcquireOnBehalf() throws {
        let c = try cluster()
        let disk = c.disk("t7")
        let vm = try c.startVM(.a, name: "vm-t7", ["--register-only", "--restrict", "--action", "poweroff", "--disk", disk])
        #expect(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]) == nil, "registered, holding nothing")
        #expect(c.clientStatus(.a, pid: vm.pid).contains("restricted=1"), "RESTRICT applied to the VM's registration")

        // libvirt's resume: on behalf of the pid, passing the domain's failure action again.
        func acquire(_ extra: [String], pid: Int32 = vm.pid, disk: String = disk) -> CommandResult {
            c.lockmgr(.a, "acquire", ["--pid", "\(pid)", "--disk", disk] + extra, name: "vm-t7")
        }
        let resumed = acquire(["--action", "poweroff"])
        #expect(resumed.status == 0, "\(resumed)")
        #expect(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk])?.contains(MD5.hex(disk)) == true)
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75)

        let restrictOther = acquire(["--restrict"])
        #expect(
            restrictOther.status == 64 && restrictOther.stderr.contains("RESTRICT can only be applied by the process itself"),
            "\(restrictOther)")
        let restart = acquire(["--action", "restart"])
        #expect(restart.status == 64, "\(restart)")

        // A process that never registered cannot have leases taken for it.
        let stranger = Process()
        stranger.executableURL = URL(fileURLWithPath: "/bin/sleep")
        stranger.arguments = ["30"]
        try stranger.run()
        defer { kill(stranger.processIdentifier, SIGKILL); stranger.waitUntilExit() }
        let unregistered = acquire([], pid: stranger.processIdentifier, disk: c.disk("t7b"))
        #expect(unregistered.status != 0)
        #expect(unregistered.stderr.contains("not registered with sanlock"), "\(unregistered)")
        vm.stop()
    }

    // Failure actions without libvirt: sanlock runs `lockmgr failure-action`.
    @Test(arguments: ["poweroff", "pause"])
    func failureActionRunsWhenTheLeaseIsRevoked(action: String) throws {
        let c = try cluster()
        let disk = c.disk("fa-\(action)")
        let vm = try c.startVM(.a, name: "vm-fa", ["--action", action, "--disk", disk])
        defer { vm.stop() }
        let state = try #require(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]))
        c.revoke(.a, state: state)

        if action == "poweroff" {
            #expect(vm.waitForExit(timeout: 15), "powered off")
            #expect(vm.process.terminationReason == .uncaughtSignal && vm.process.terminationStatus == SIGKILL)
        } else {
            #expect(eventually(timeout: 15) { processState(vm.pid) == "T" }, "paused (stopped)")
            // As libvirt releases a domain's leases when it pauses it, the
            // pause gives the lease up: another host can take over.
            var takeover: CommandResult?
            let taken = eventually(timeout: 15) {
                takeover = c.lockmgr(.b, "acquire", ["--disk", disk], name: "vm-fa-b")
                return takeover?.status == 0
            }
            #expect(taken, "host B could not take the paused VM's lease: \(String(describing: takeover))")
            #expect(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]) == nil, "the paused process holds nothing")
            #expect(processState(vm.pid) == "T", "still paused, not killed")
            let report = (try? String(contentsOfFile: "\(c.a.runDir)/daemon.log", encoding: .utf8)) ?? ""
            #expect(
                report.contains("'vm-fa' (pid \(vm.pid)) paused; released through sanlock: \(state)"),
                "the helper reports the state to resume with: \(report.suffix(2000))")
            // Resuming with that state is refused now that host B took the lease.
            var resume: CommandResult?
            let stale = eventually {
                resume = c.lockmgr(.a, "acquire", ["--pid", "\(vm.pid)", "--state", state, "--disk", disk], name: "vm-fa")
                return resume?.stderr.contains("the state is stale") == true
            }
            #expect(stale && resume?.status == 75, "\(String(describing: resume))")
        }
        let log = (try? String(contentsOfFile: c.helperLog, encoding: .utf8)) ?? ""
        let plugin = action == "pause" ? " --plugin=sanlock" : ""
        #expect(log.contains("failure-action --action=\(action) --pid=\(vm.pid)\(plugin) --name=vm-fa"), "helper log: \(log)")
    }

    /// After a failure-action pause nobody took the lease: the process
    /// resumes with the state the helper reported, and holds again.
    @Test func pausedByTheFailureActionResumesWithTheReleasedState() throws {
        let c = try cluster()
        let disk = c.disk("fa-resume")
        let vm = try c.startVM(.a, name: "vm-fa-resume", ["--action", "pause", "--disk", disk])
        defer { vm.stop() }
        let state = try #require(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]))
        let version = try #require(leaseVersion(state))
        c.revoke(.a, state: state)
        #expect(
            eventually(timeout: 15) { processState(vm.pid) == "T" && c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]) == nil },
            "paused and released")
        let resumed = c.lockmgr(
            .a, "acquire", ["--pid", "\(vm.pid)", "--action", "pause", "--state", state, "--disk", disk],
            name: "vm-fa-resume")
        #expect(resumed.status == 0, "\(resumed)")
        kill(vm.pid, SIGCONT)
        #expect(leaseVersion(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk])) == version + 1, "holds again, one version on")
        #expect(c.lockmgr(.b, "acquire", ["--disk", disk]).status == 75)
        // The old request (version N+1) is satisfied by the new version: no second pause.
        c.a.client(["examine", "-r", state.split(separator: ":").dropLast().joined(separator: ":")])
        sleep(1)
        #expect(processState(vm.pid) != "T", "not paused again")
        #expect(c.state(.a, "inquire", pid: vm.pid, ["--disk", disk]) != nil, "still holds")
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
        #expect(r.status == 69, "a backend failure: \(r)")
        #expect(r.stderr.contains("failed to initialise"), "\(r)")
        #expect(r.stderr.contains("the sanlock daemon is not running (no socket \(empty)/sanlock.sock)"), "\(r)")
    }

    @Test func autoLeasesWithoutHostIDNameTheConfigFile() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-badconf")
        TempDir.write("auto_disk_leases = 1\ndisk_lease_dir = \"\(c.leaseDir)\"\n", to: "\(dir)/qemu-sanlock.conf")
        let r = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(r.status == 78)
        #expect(r.stderr.contains("\(dir)/qemu-sanlock.conf:1: auto_disk_leases = 1 needs host_id"), "\(r)")

        TempDir.write("auto_disk_leases = 1\nhost_id = 1\nlease_dir = \"/x\"\n", to: "\(dir)/qemu-sanlock.conf")
        let typo = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(typo.status == 78)
        #expect(typo.stderr.contains("\(dir)/qemu-sanlock.conf:3: unknown setting 'lease_dir'"), "\(typo)")

        // Lockspace setup fails initialisation (libvirt's plugin swallows this).
        TempDir.write("auto_disk_leases = 1\nhost_id = 1\ndisk_lease_dir = \"\(dir)/missing\"\n", to: "\(dir)/qemu-sanlock.conf")
        let noDir = c.lockmgr(.a, "acquire", ["--disk", c.disk("t8")], configDir: dir)
        #expect(noDir.status == 78)
        #expect(noDir.stderr.contains("failed to initialise"), "\(noDir)")
        #expect(
            noDir.stderr.contains("cannot create lockspace __LIBVIRT__DISKS__: disk_lease_dir \(dir)/missing does not exist"), "\(noDir)")
    }

    @Test func diskWithoutLeaseIsRefusedWhenLeasesAreRequired() throws {
        let c = try cluster()
        let dir = TempDir.make("sanlock-noauto")
        TempDir.write("require_lease_for_disks = 1\n", to: "\(dir)/qemu-sanlock.conf")
        let r = c.lockmgr(.a, "acquire", ["--disk", "/images/unleased.img"], configDir: dir)
        #expect(r.status == 78)
        #expect(r.stderr.contains("read/write disk /images/unleased.img has no lease"), "\(r)")
    }

    @Test func moreLeasesThanSanlockTakesAreRefusedBeforeAnyIsTaken() throws {
        let c = try cluster()
        let disks = (0..<9).map { c.disk("many-\($0)") }
        let r = c.lockmgr(.a, "acquire", disks.flatMap { ["--disk", $0] })
        #expect(r.status == 64)
        #expect(r.stderr.contains("disk '\(disks[8])': sanlock takes at most 8 leases per object"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: disks[8])))
    }

    @Test func leaseProblemsNameTheLeaseAndTheCause() throws {
        let c = try cluster()
        func acquire(_ lease: String) -> CommandResult { c.lockmgr(.a, "acquire", ["--lease", lease]) }

        let missing = acquire("key=gone,lockspace=\(SanlockCluster.lockspace),path=\(c.dir)/no-such.lease")
        #expect(
            missing.stderr.contains("cannot acquire lease 'gone'") && missing.stderr.contains("the lease file does not exist"), "\(missing)"
        )

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
func processState(_ pid: Int32) -> String? { ProcStat.read(pid).map { String($0.state) } }
