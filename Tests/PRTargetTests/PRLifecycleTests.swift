import Foundation
import Harness
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport
import Testing

/// The life of a VM holding pr reservations, against a real tgtd, with two
/// or three simulated hosts (their own initiator names, config dirs and
/// keeper dirs) running `lockmgr` subprocesses. A "VM" is a shell loop
/// under `lockmgr run`: the process that holds the locks is the process
/// that runs, and the keeper (pr-keeper, started by the plugin) watches it.
/// Serialized: the assertions that something did NOT happen wait a few
/// keeper rounds, which a loaded 2-core machine must not stretch.
@Suite(.serialized) struct PRLifecycleTests {
    static let interval = 100
    let a = PRHost("a", keeperIntervalMilliseconds: interval)
    let b = PRHost("b", keeperIntervalMilliseconds: interval)
    let c = PRHost("c")
    let check = Checker()

    // MARK: start, refused starts, pause/resume, normal exit

    @Test func runHoldsRefusesSecondStartsPausesResumesAndExitFrees() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, lun)
        defer { vm.kill() }
        #expect(keeper(a, .one) != nil, "a keeper watches the VM")
        #expect(try check.keys(lun) == [a.key(.one).rawValue])

        // Second starts: the same VM on another host, on this host, another VM.
        let generation = try check.generation(lun)
        expectRefused(b.lockmgr("run", .one, disks: [lun], command: ["true"]), ["double start"])
        expectRefused(a.lockmgr("run", .one, disks: [lun], command: ["true"]), ["already runs on this host as process \(vm.pid)"])
        expectRefused(a.lockmgr("run", .two, disks: [lun], command: ["true"]), [a.key(.one).description])
        #expect(try check.generation(lun) == generation, "a refused start changed the LU")

        // Pause (libvirt: Release from the daemon for the VM's pid): state saved, keeper gone, VM alive.
        let paused = a.lockmgr("release", .one, disks: [lun], options: ["--pid", "\(vm.pid)"])
        expectOK(paused)
        let saved = paused.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try PRState(decoding: saved).entries.map(\.key) == [a.key(.one)])
        #expect(try check.reservation(lun) == nil)
        #expect(eventually { keeper(a, .one) == nil }, "the keeper leaves once nothing is held")
        #expect(vm.isRunning)

        // Resume: Acquire with the saved state for the VM's pid.
        expectOK(a.lockmgr("acquire", .one, disks: [lun], state: saved, options: ["--pid", "\(vm.pid)"]))
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(keeper(a, .one) != nil)

        // Normal exit: the keeper gives the reservation back.
        let exited = Date()
        vm.finish()
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) }, "still reserved after the VM exited")
        Self.figure("normal exit → released", since: exited)
        #expect(try check.keys(lun).isEmpty)
        #expect(eventually { keeper(a, .one) == nil })
        #expect(vm.exitStatus == 0)
        #expect(keeperLog(a).contains("exited; released \(lun)"), "\(keeperLog(a))")
    }

    @Test func sigkillOfTheVMFreesTheLockThroughTheKeeper() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, lun)
        defer { vm.kill() }
        let killed = Date()
        vm.kill()
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) })
        Self.figure("SIGKILL of the VM → released", since: killed)
        #expect(try check.keys(lun).isEmpty)
        #expect(eventually { keeper(a, .one) == nil })
        // Free for the next start, on any host.
        let next = try RunningVM(b, .one, lun)
        next.kill()
    }

    /// Unwatched, a reservation would outlive its VM: an acquire whose
    /// keeper cannot start gives everything back; one whose keeper is not
    /// installed sends nothing at all.
    @Test func anAcquireWithoutAKeeperLeavesNothingBehind() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let qemu = try SpawnedProcess(["/bin/sleep", "60"])
        defer { qemu.stop(SIGKILL) }
        let failing = PRHost("x", config: "keeper_path = \"/bin/false\"", keeperIntervalMilliseconds: Self.interval)
        let r = failing.lockmgr("acquire", .one, disks: [lun], options: ["--pid", "\(qemu.pid)"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains("the pr keeper for VM \(VM.one.uuid) did not start"), "\(r)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty)
        #expect(failing.keeperDir.map { KeeperStore(dir: $0).vms() } == [], "a record was left behind")

        let generation = try check.generation(lun)
        let missing = PRHost("y", config: "keeper_path = \"/nonexistent/pr-keeper\"", keeperIntervalMilliseconds: Self.interval)
        let m = missing.lockmgr("acquire", .one, disks: [lun], options: ["--pid", "\(qemu.pid)"])
        #expect(m.status == 78, "\(m)")
        #expect(m.stderr.contains("/nonexistent/pr-keeper is not an executable program"), "\(m)")
        #expect(try check.generation(lun) == generation)
    }

    /// An acquire for a VM whose keeper runs (a hot-plugged disk; a resume
    /// while the keeper of the pause has not left yet) starts no process:
    /// the keeper program, a logging wrapper here, runs once. The running
    /// keeper watches the new disk too: the VM's exit frees both.
    @Test func anAcquireWhileTheKeeperRunsStartsNoSecondOne() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let luns = try tgt.addTarget(luns: 2).urls
        let dir = TempDir.make("keeper-wrapper")
        let starts = "\(dir)/starts"
        TempDir.write("#!/bin/sh\necho start >> \(starts)\nexec \(BuildProducts.binDir)/pr-keeper \"$@\"\n", to: "\(dir)/pr-keeper")
        chmod("\(dir)/pr-keeper", 0o755)
        let host = PRHost("w", config: "keeper_path = \"\(dir)/pr-keeper\"", keeperIntervalMilliseconds: Self.interval)
        let vm = try RunningVM(host, .one, luns[0])
        defer { vm.kill() }
        let first = try #require(keeper(host, .one))
        expectOK(host.lockmgr("acquire", .one, disks: [luns[1]], options: ["--pid", "\(vm.pid)"]))
        #expect(try String(contentsOfFile: starts, encoding: .utf8) == "start\n", "the keeper program was started again")
        #expect(keeper(host, .one) == first)
        #expect(try check.reservation(luns[1])?.key == host.key(.one).rawValue)
        vm.kill()
        #expect(eventually { luns.allSatisfy { (try? check.reservation($0)) == .some(nil) } }, "still reserved after the VM was killed")
        #expect(eventually { keeper(host, .one) == nil })
    }

    /// libvirt acquires on resume from libvirtd for the QEMU pid; libvirtd
    /// may then exit, crash or restart. Here the "daemon" is a shell in a
    /// session of its own that runs `lockmgr acquire --pid QEMU` and stays;
    /// killing its whole process group must not touch the keeper.
    @Test func theKeeperOutlivesTheDaemonThatStartedIt() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let qemu = try SpawnedProcess(["/bin/sleep", "60"])
        defer { qemu.stop(SIGKILL) }
        let acquire = a.lockmgrArgv("acquire", .one, disks: [lun], options: ["--pid", "\(qemu.pid)"])
            .map { "'\($0)'" }.joined(separator: " ")
        let daemon = try SpawnedProcess(
            ["/usr/bin/setsid", "/bin/sh", "-c", "\(acquire) && exec sleep 60"],
            output: "\(a.configDir)/daemon.out")
        defer { daemon.stop(SIGKILL) }
        #expect(
            eventually { keeper(a, .one) != nil }, "\((try? String(contentsOfFile: "\(a.configDir)/daemon.out", encoding: .utf8)) ?? "")")
        let k = try #require(keeper(a, .one))
        #expect(getsid(k) == k, "the keeper leads its own session")
        #expect(parent(of: k) != daemon.pid, "the keeper is the daemon's child")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)

        kill(-daemon.pid, SIGKILL)  // the daemon and its whole process group
        #expect(eventually { !daemon.isRunning })
        usleep(useconds_t(5 * Self.interval * 1000))
        #expect(keeper(a, .one) == k, "the keeper died with the daemon")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue, "released although the VM runs")
        qemu.stop(SIGKILL)
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) }, "the keeper no longer watches the VM")
        #expect(eventually { keeper(a, .one) == nil })
    }

    // MARK: migration

    /// libvirt's order: the source releases (paused), the destination
    /// starts with the state; the source's QEMU exits afterwards.
    @Test func libvirtOrderMigration() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let source = try RunningVM(a, .one, lun, action: "poweroff")
        defer { source.kill() }
        let destination = try RunningVM(b, .one, lun, state: try state("release", of: source, on: a, lun), action: "poweroff")
        defer { destination.kill() }
        #expect(try check.keys(lun) == [b.key(.one).rawValue])
        let generation = try check.generation(lun)
        source.finish()
        #expect(eventually { keeper(a, .one) == nil })
        usleep(useconds_t(3 * Self.interval * 1000))
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        #expect(try check.generation(lun) == generation, "the source's exit touched the destination's LU")
        #expect(destination.isRunning)
        destination.finish()
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) })
    }

    /// QEMU's migrate-pr order: the destination takes over while the source
    /// still holds and runs. The source's keeper sees a handover, not a
    /// loss: no failure action; and the source's later exit leaves the
    /// destination alone.
    @Test func migratePROrderHandsOverWithoutAFailureAction() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let source = try RunningVM(a, .one, lun, action: "poweroff")
        defer { source.kill() }
        let destination = try RunningVM(b, .one, lun, state: try state("inquire", of: source, on: a, lun), action: "poweroff")
        defer { destination.kill() }
        #expect(try check.keys(lun) == [b.key(.one).rawValue], "the takeover left the source registered")
        // The source's keeper confirms the handover and leaves; the source VM lives on.
        #expect(eventually { keeper(a, .one) == nil })
        #expect(keeperLog(a).contains("handed over to key \(b.key(.one))"), "\(keeperLog(a))")
        #expect(!keeperLog(a).contains("LOST"), "\(keeperLog(a))")
        #expect(source.isRunning, "the source VM got a failure action for a migration")
        let generation = try check.generation(lun)
        source.kill()
        usleep(useconds_t(3 * Self.interval * 1000))
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        #expect(try check.generation(lun) == generation)
        #expect(destination.isRunning)
        #expect(keeper(b, .one) != nil)
    }

    /// The migration fails after the destination took over: the source
    /// acquires with its own state (libvirt: resume on the source); the
    /// destination is fenced, and its keeper too sees a handover.
    @Test func rollbackOfAFailedMigration() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let source = try RunningVM(a, .one, lun, action: "poweroff")
        defer { source.kill() }
        let state = try state("inquire", of: source, on: a, lun)
        let destination = try RunningVM(b, .one, lun, state: state, action: "poweroff")
        defer { destination.kill() }
        let pathB = try DataPath(b, lun, key: b.key(.one))
        #expect(try pathB.write() == .good(data: []))
        #expect(eventually { keeper(a, .one) == nil })

        expectOK(a.lockmgr("acquire", .one, disks: [lun], state: state, options: ["--pid", "\(source.pid)", "--action", "poweroff"]))
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(try pathB.write() == .reservationConflict)
        #expect(keeper(a, .one) != nil, "the source is watched again")
        #expect(eventually { keeper(b, .one) == nil })
        #expect(destination.isRunning, "the failed destination got a failure action for a rollback")
        // libvirt then kills the failed destination: the source keeps its disk.
        destination.kill()
        usleep(useconds_t(3 * Self.interval * 1000))
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        source.finish()
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) })
    }

    /// A pause whose release fails part-way (one of two targets is down):
    /// the error reaches the caller, and the keeper does not take the
    /// disk the release did give back for a stolen one.
    @Test func aReleaseThatFailsPartWayIsNoLostLock() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let other = try TgtTarget(); defer { other.stop() }
        let (lun, lost) = (try tgt.addTarget().urls[0], try other.addTarget().urls[0])
        let vm = try RunningVM(a, .one, [lun, lost], action: "poweroff")
        defer { vm.kill() }
        let k = try #require(keeper(a, .one))
        other.crash()
        let r = a.lockmgr("release", .one, disks: [lun, lost], options: ["--pid", "\(vm.pid)"])
        #expect(r.status == 69, "\(r)")
        #expect(try check.reservation(lun) == nil, "the reachable disk was released")
        #expect(eventually { keeperLog(a).contains("\(lun) is no longer held, as the failed release call asked") }, "\(keeperLog(a))")
        usleep(useconds_t(3 * Self.interval * 1000))
        #expect(!keeperLog(a).contains("LOST"), "\(keeperLog(a))")
        #expect(vm.isRunning, "a failure action for a pause")
        // Its target gone, the keeper could only retry releasing the other disk.
        kill(k, SIGKILL)
    }

    // MARK: losing the lock while running

    @Test(arguments: ["poweroff", "pause", "default"])
    func aPreemptedReservationTriggersTheFailureAction(_ action: String) throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, lun, action: action)
        defer { vm.kill() }
        // Another VM on host c takes the LU by force.
        let intruder = try DataPath(c, lun, key: c.key(.two))
        let preempted = Date()
        #expect(
            try intruder.device.prOut(
                .preempt, type: .writeExclusiveRegistrantsOnly,
                key: c.key(.two).rawValue, serviceActionKey: a.key(.one).rawValue))
        #expect(eventually { keeperLog(a).contains("LOCK LOST") }, "\(keeperLog(a))")
        Self.figure("preempted → \(action) reported", since: preempted)
        let log = keeperLog(a)
        #expect(log.contains("reserved by key \(c.key(.two))"), "\(log)")
        #expect(log.contains("failure action \(action)"), "\(log)")
        switch action {
        case "poweroff":
            #expect(eventually { !vm.isRunning })
            #expect(vm.exitStatus == 128 + SIGKILL)
            #expect(log.contains("sent SIGKILL to pid \(vm.pid)"), "\(log)")
        case "pause":
            #expect(eventually { processState(vm.pid) == "T" })
            #expect(log.contains("sent SIGSTOP to pid \(vm.pid)"), "\(log)")
        default:
            #expect(log.contains("reported only"), "\(log)")
            #expect(vm.isRunning)
        }
        // The lost LU is no longer the keeper's business; the intruder keeps it.
        #expect(eventually { keeper(a, .one) == nil })
        #expect(try check.reservation(lun)?.key == c.key(.two).rawValue)
        kill(vm.pid, SIGCONT)
    }

    /// Under libvirt (a URI was given) the keeper asks libvirt to apply the
    /// action, so libvirt knows the domain's new state. libvirt's own test
    /// driver stands in for libvirtd: with a node file that defines the
    /// domain, `virsh destroy` succeeds and the keeper sends no signal;
    /// where libvirt does not know the domain, the keeper falls back to SIGKILL.
    @Test(arguments: [true, false])
    func underLibvirtTheActionGoesThroughVirsh(_ libvirtKnowsTheDomain: Bool) throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let node = "\(a.configDir)/node.xml"
        TempDir.write(
            """
            <node><domain type='test'><name>\(VM.one.name)</name><uuid>\(VM.one.uuid)</uuid>
            <memory>8192</memory><os><type>hvm</type></os></domain></node>
            """, to: node)
        let uri = libvirtKnowsTheDomain ? "test://\(node)" : "test:///default"
        let vm = try RunningVM(a, .one, lun, action: "poweroff", extra: ["--uri", uri])
        defer { vm.kill() }
        let intruder = try DataPath(c, lun, key: c.key(.two))
        #expect(
            try intruder.device.prOut(
                .preempt, type: .writeExclusiveRegistrantsOnly,
                key: c.key(.two).rawValue, serviceActionKey: a.key(.one).rawValue))
        #expect(eventually { keeperLog(a).contains("LOCK LOST") }, "\(keeperLog(a))")
        #expect(eventually { keeper(a, .one) == nil })
        let log = keeperLog(a)
        if libvirtKnowsTheDomain {
            #expect(log.contains("done through libvirt (virsh destroy)"), "\(log)")
            #expect(vm.isRunning, "signalled although libvirt applied the action")
        } else {
            #expect(log.contains("virsh destroy failed"), "\(log)")
            #expect(log.contains("sent SIGKILL to pid \(vm.pid)"), "\(log)")
            #expect(eventually { !vm.isRunning })
        }
    }

    // MARK: a dead host

    @Test func aDeadHostKeepsItsReservationUntilExplicitlyCleared() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, lun)
        defer { vm.kill() }
        let k = try #require(keeper(a, .one))
        defer { kill(k, SIGKILL) }

        // While A's VM runs: refused locally (A's own records show it alive)...
        let generation = try check.generation(lun)
        let local = clearHost(as: a, dead: a, lun)
        #expect(local.status == 75, "\(local)")
        #expect(local.stderr.contains("pid \(vm.pid)") && local.stderr.contains("is alive here"), "\(local)")
        // ...and from another host without the administrator saying A is dead.
        let remote = clearHost(as: b, dead: a, lun)
        #expect(remote.status == 75, "\(remote)")
        #expect(remote.stderr.contains("--host-is-dead"), "\(remote)")
        #expect(try check.generation(lun) == generation)

        // Host A dies: keeper and VM killed, nothing cleans up.
        kill(k, SIGKILL)
        vm.kill()
        usleep(useconds_t(5 * Self.interval * 1000))
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue, "a dead host's reservation must stay")
        expectRefused(b.lockmgr("run", .one, disks: [lun], command: ["true"]), ["double start"])
        expectRefused(b.lockmgr("run", .two, disks: [lun], command: ["true"]), [a.key(.one).description])

        let log = "\(b.configDir)/clear-host.log"
        let cleared = clearHost(as: b, dead: a, lun, extra: ["--host-is-dead", "--log", log])
        #expect(cleared.status == 0, "\(cleared)")
        #expect(cleared.stderr.contains("dropped the keys of dead host part"), "\(cleared)")
        let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logged.contains(a.key(.one).description), "the log names the dropped key: \(logged)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty)
        let next = try RunningVM(b, .one, lun)
        next.kill()
    }

    /// clear-host drops every key of the dead host and nothing else: its
    /// VM's exclusive reservation goes, and on a shared disk only its own
    /// registration, the live host keeping the shared reservation.
    @Test func clearingADeadHostLeavesOtherHostsAlone() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let t = try tgt.addTarget(luns: 2)
        let (exclusive, shared) = (t.urls[0], t.urls[1])
        let d = PRHost("d")
        expectOK(c.lockmgr("acquire", .two, disks: [exclusive], shared: [shared]))
        expectOK(d.lockmgr("acquire", .one, shared: [shared]))
        #expect(try Set(check.keys(shared)) == [c.sharedKey.rawValue, d.sharedKey.rawValue])

        let cleared = clearHost(as: d, dead: c, exclusive, shared, extra: ["--host-is-dead"])
        #expect(cleared.status == 0, "\(cleared)")
        #expect(try check.reservation(exclusive) == nil)
        #expect(try check.keys(exclusive).isEmpty)
        #expect(try check.reservation(shared) == .init(key: 0, type: .writeExclusiveAllRegistrants))
        #expect(try check.keys(shared) == [d.sharedKey.rawValue])
        // Nothing of c left: a second run has nothing to do.
        let again = clearHost(as: d, dead: c, exclusive, shared, extra: ["--host-is-dead"])
        #expect(again.status == 0 && again.stderr.contains("nothing of host part"), "\(again)")
    }

    /// The same host, rebooted (its keepers and VMs gone): it may clear its
    /// own leftovers without the flag, since here its liveness is known.
    @Test func aHostClearsItsOwnLeftoversOnceItsVMsAreGone() throws {
        let tgt = try TgtTarget(); defer { stopKeepers(); tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, lun)
        defer { vm.kill() }
        let k = try #require(keeper(a, .one))
        kill(k, SIGKILL)
        vm.kill()
        // kill() only sends the signal: wait until the keeper is gone as clear-host sees it.
        #expect(eventually { keeper(a, .one) == nil }, "the killed keeper still runs")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        let cleared = clearHost(as: a, dead: a, lun)
        #expect(cleared.status == 0, "\(cleared)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty)
    }

    // MARK: helpers

    /// The state string `lockmgr inquire|release --pid VM` prints on the source.
    func state(_ operation: String, of vm: RunningVM, on host: PRHost, _ lun: String) throws -> String {
        let r = host.lockmgr(operation, .one, disks: [lun], options: ["--pid", "\(vm.pid)"])
        guard r.status == 0 else { throw TgtTarget.Failure(description: "\(operation) on host \(host.name): \(r)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs after every VM of the test is gone and before the target stops
    /// (a keeper whose target vanished would retry its release forever):
    /// every keeper must leave by itself within a few rounds; one that does
    /// not is a failure, and is killed.
    func stopKeepers(sourceLocation: SourceLocation = #_sourceLocation) {
        for host in [a, b] {
            for vm in [VM.one, VM.two] where !eventually(timeout: 5, { keeper(host, vm) == nil }) {
                if let k = keeper(host, vm) {
                    Issue.record("the keeper of \(vm.name) on host \(host.name) (pid \(k)) outlived its VM", sourceLocation: sourceLocation)
                    kill(k, SIGKILL)
                }
            }
        }
    }

    func clearHost(as host: PRHost, dead: PRHost, _ luns: String..., extra: [String] = []) -> CommandResult {
        Command.run(
            [
                "\(BuildProducts.binDir)/pr-tool", "clear-host", "--config", host.configFile,
                "--dead-host", dead.initiator,
            ] + extra + luns, timeout: 30)
    }

    func expectOK(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 0, "\(r)", sourceLocation: sourceLocation)
    }

    func expectRefused(_ r: CommandResult, _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 75, "\(r)", sourceLocation: sourceLocation)
        for f in fragments { #expect(r.stderr.contains(f), "missing '\(f)' in: \(r.stderr)", sourceLocation: sourceLocation) }
    }

    func parent(of pid: Int32) -> Int32? { ProcStat.read(pid)?.parent }

    /// Timings go to the test log (figures for the README), never asserted.
    static func figure(_ what: String, since start: Date) {
        print("pr lifecycle: \(what) in \(Int(Date().timeIntervalSince(start) * 1000)) ms (keeper interval \(interval) ms)")
    }
}

/// A VM: a shell loop under `lockmgr run` on one host, a child of the test.
/// `finish()` makes it exit 0 by itself; `kill()` is SIGKILL.
final class RunningVM {
    let process: SpawnedProcess
    let stopFile: String
    var pid: Int32 { process.pid }

    convenience init(_ host: PRHost, _ vm: VM, _ lun: String, state: String? = nil, action: String? = nil, extra: [String] = []) throws {
        try self.init(host, vm, [lun], state: state, action: action, extra: extra)
    }

    init(_ host: PRHost, _ vm: VM, _ luns: [String], state: String? = nil, action: String? = nil, extra: [String] = []) throws {
        stopFile = "\(host.configDir)/stop-\(vm.name)-\(UInt32.random(in: 0...UInt32.max))"
        let loop = "while [ ! -e \(stopFile) ]; do sleep 0.02; done"
        let argv = host.lockmgrArgv(
            "run", vm, disks: luns, state: state,
            options: (action.map { ["--action", $0] } ?? []) + extra, command: ["/bin/sh", "-c", loop])
        process = try SpawnedProcess(argv, output: "\(host.configDir)/vm-\(vm.name).out")
        // Started once the shell runs (lockmgr run execs it after acquiring).
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline && process.isRunning {
            if let comm = try? String(contentsOfFile: "/proc/\(process.pid)/comm", encoding: .utf8), comm.hasPrefix("sh") { return }
            usleep(10_000)
        }
        let out = (try? String(contentsOfFile: "\(host.configDir)/vm-\(vm.name).out", encoding: .utf8)) ?? ""
        process.stop(SIGKILL)
        throw TgtTarget.Failure(description: "VM \(vm.name) on host \(host.name) did not start: \(out)")
    }

    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32? { process.exitStatus }

    func finish() {
        _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(5_000) }
    }

    func kill() {
        Glibc.kill(process.pid, SIGCONT)
        process.stop(SIGKILL, timeout: 5)
    }
}
