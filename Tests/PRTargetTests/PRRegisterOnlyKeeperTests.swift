import Foundation
import Harness
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport
import Testing

/// libvirt starts QEMU (paused; on a migration destination, incoming) with
/// Acquire(REGISTER_ONLY) between fork and exec, long before the resume's
/// Acquire(state), which on a migration runs inside the guest's downtime.
/// The pr plugin starts the VM's keeper at the registration, so the resume
/// starts no process; these tests hold it to the keeper's safety rules
/// around that earlier start. Real tgtd, the real pr-keeper (behind a
/// wrapper that counts its starts), `lockmgr` subprocesses as the hosts'
/// libvirt calls. Serialized: they wait several keeper rounds.
@Suite(.serialized) struct PRRegisterOnlyKeeperTests {
    static let interval = 100
    let a = PRHost("a", keeperIntervalMilliseconds: interval)
    let check = Checker()

    /// A host whose keeper program logs every start to `starts` before it runs the real one.
    func countingHost(_ name: String) -> (host: PRHost, starts: String) {
        let dir = TempDir.make("keeper-counter-\(name)")
        let starts = "\(dir)/starts"
        TempDir.write("#!/bin/sh\necho start >> \(starts)\nexec \(BuildProducts.binDir)/pr-keeper \"$@\"\n", to: "\(dir)/pr-keeper")
        chmod("\(dir)/pr-keeper", 0o755)
        return (PRHost(name, config: "keeper_path = \"\(dir)/pr-keeper\"", keeperIntervalMilliseconds: Self.interval), starts)
    }

    func startsLogged(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    func record(_ host: PRHost, _ vm: VM) throws -> KeeperRecord? {
        try host.keeperDir.flatMap { dir throws(LockError) in try KeeperStore(dir: dir).read(vm.uuid) }
    }

    func noRecords(_ host: PRHost) -> Bool { host.keeperDir.map { KeeperStore(dir: $0).vms() } == [] }

    func clean(_ lun: String) -> Bool {
        (try? check.reservation(lun)) == .some(nil) && (try? check.keys(lun))?.isEmpty == true
    }

    /// A migration in libvirt's order: the destination's QEMU registers (its
    /// keeper starts, nothing is sent to the LU), then in the downtime the
    /// source releases and the destination acquires with the state: that
    /// acquire finds the keeper running and starts nothing.
    @Test func theDestinationsKeeperStartsAtRegistrationNotInTheDowntime() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let (b, starts) = countingHost("b")
        let source = try RunningVM(a, .one, lun)
        defer { source.kill() }
        let generation = try check.generation(lun)
        let incoming = try RunningVM(b, .one, [lun], extra: ["--register-only"])
        defer { incoming.kill() }
        let k = try #require(keeper(b, .one), "no keeper after REGISTER_ONLY")
        #expect(startsLogged(starts) == 1)
        #expect(try check.generation(lun) == generation, "REGISTER_ONLY changed the LU")
        let registered = try #require(try record(b, .one))
        #expect(registered.pid == incoming.pid && registered.resources.isEmpty, "\(registered)")

        // Rounds with nothing to watch: the keeper stays for the resume.
        usleep(useconds_t(5 * Self.interval * 1000))
        #expect(keeper(b, .one) == k, "the keeper of a registered VM left before its resume")

        let paused = a.lockmgr("release", .one, disks: [lun], options: ["--pid", "\(source.pid)"])
        #expect(paused.status == 0, "\(paused)")
        let state = paused.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let resumed = b.lockmgr("acquire", .one, disks: [lun], state: state, options: ["--pid", "\(incoming.pid)"])
        #expect(resumed.status == 0, "\(resumed)")
        #expect(startsLogged(starts) == 1, "the resume started the keeper program again")
        #expect(keeper(b, .one) == k)
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        #expect(try record(b, .one)?.resources.map(\.name) == [lun])

        // The source's QEMU ends; the destination's dies: its keeper gives the LU back.
        source.finish()
        incoming.kill()
        #expect(eventually { clean(lun) }, "still reserved after the destination VM was killed")
        #expect(eventually { keeper(b, .one) == nil && keeper(a, .one) == nil })
        #expect(keeperLog(b).contains("exited; released \(lun)"), "\(keeperLog(b))")
    }

    /// A start refused after the registration (libvirt gives up, QEMU dies):
    /// the keeper leaves with the process and removes the record; a resume
    /// that comes too late is refused and sends nothing.
    @Test func aVMThatDiesBeforeItsResumeLeavesNoKeeperAndNoRecord() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, [lun], extra: ["--register-only"])
        defer { vm.kill() }
        #expect(keeper(a, .one) != nil)
        vm.kill()
        #expect(eventually { keeper(a, .one) == nil }, "the keeper outlived its registered VM")
        #expect(eventually { noRecords(a) }, "a record was left behind")
        #expect(keeperLog(a).contains("exited holding nothing"), "\(keeperLog(a))")

        let generation = try check.generation(lun)
        let late = a.lockmgr("acquire", .one, disks: [lun], options: ["--pid", "\(vm.pid)"])
        #expect(late.status != 0 && late.stderr.contains("does not exist"), "\(late)")
        #expect(try check.generation(lun) == generation)
        #expect(clean(lun))
        #expect(keeper(a, .one) == nil)
    }

    /// The VM dies while its resume's acquire runs: before the acquire
    /// looks at the record, between its device commands and the record
    /// update (killed as soon as its first REGISTER shows on the LU, while
    /// it holds the record's flock), or after it. The keeper only acts under
    /// that flock, so whatever the order, every reservation taken is given
    /// back, no keeper stays and no record is left.
    @Test func aVMKilledDuringItsResumeAlwaysEndsReleased() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let luns = try tgt.addTarget(luns: 2).urls
        var statuses: [String: [Int32]] = [:]
        var killedMidAcquire = 0
        for attempt in 0..<12 {
            let vm = try RunningVM(a, .one, luns, extra: ["--register-only"])
            defer { vm.kill() }
            #expect(keeper(a, .one) != nil)
            let resume = try SpawnedProcess(a.lockmgrArgv("acquire", .one, disks: luns, options: ["--pid", "\(vm.pid)"]))
            let when: String
            switch attempt % 3 {
            case 0:
                when = "at once"
            case 1:
                when = "after its first REGISTER"
                let deadline = Date().addingTimeInterval(10)
                while (try? check.keys(luns[0]))?.isEmpty != false && resume.isRunning && Date() < deadline {}
                if resume.isRunning { killedMidAcquire += 1 }
            default:
                when = "after it"
                _ = resume.stop(SIGCONT, timeout: 30)
            }
            vm.kill()
            statuses[when, default: []].append(resume.stop(SIGCONT, timeout: 30) ?? -1)
            #expect(eventually { luns.allSatisfy(clean) }, "attempt \(attempt) (\(when)): a reservation outlived the killed VM")
            #expect(eventually { keeper(a, .one) == nil }, "attempt \(attempt) (\(when)): a keeper outlived the killed VM")
            // A keeper lets go of its pid file just before it removes the record (both under the record's flock).
            #expect(eventually { noRecords(a) }, "attempt \(attempt) (\(when)): a record was left behind")
        }
        print("pr register-only race: acquire exit statuses by kill time \(statuses); killed mid-acquire \(killedMidAcquire) of 4")
        #expect(killedMidAcquire > 0, "no kill landed inside an acquire: the race was not tested")
        #expect(statuses["after it"]?.allSatisfy { $0 == 0 } == true, "\(statuses)")
    }

    /// One process of a VM per host: a second registration is refused while
    /// the first process lives, before anything starts.
    @Test func aSecondRegistrationOfARunningVMIsRefused() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let vm = try RunningVM(a, .one, [lun], extra: ["--register-only"])
        defer { vm.kill() }
        let k = keeper(a, .one)
        let second = a.lockmgr("run", .one, disks: [lun], options: ["--register-only"], command: ["true"])
        #expect(second.status == 75, "\(second)")
        #expect(second.stderr.contains("already runs on this host as process \(vm.pid), registered, holding nothing yet"), "\(second)")
        #expect(keeper(a, .one) == k)
        #expect(try record(a, .one)?.pid == vm.pid)
        vm.kill()
        #expect(eventually { keeper(a, .one) == nil })
    }

    /// A dead process of the VM whose keeper died too (killed) still lists
    /// a reservation: a new registration must not take that record over
    /// (its reservation would then be forgotten); the new process's resume
    /// does, and its keeper then gives everything back when it dies.
    @Test func aRegistrationLeavesADeadProcesssReservationsListed() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let old = try RunningVM(a, .one, lun)
        defer { old.kill() }
        let oldKeeper = try #require(keeper(a, .one))
        kill(oldKeeper, SIGKILL)
        #expect(eventually { keeper(a, .one) == nil })
        old.kill()

        let vm = try RunningVM(a, .one, [lun], extra: ["--register-only"])
        defer { vm.kill() }
        #expect(try record(a, .one)?.pid == old.pid, "the dead process's record was replaced")
        #expect(try record(a, .one)?.resources.map(\.name) == [lun])
        expectOK(a.lockmgr("acquire", .one, disks: [lun], options: ["--pid", "\(vm.pid)"]))
        #expect(try record(a, .one)?.pid == vm.pid)
        #expect(keeper(a, .one) != nil)
        vm.kill()
        #expect(eventually { clean(lun) })
        #expect(eventually { keeper(a, .one) == nil })
    }

    func expectOK(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 0, "\(r)", sourceLocation: sourceLocation)
    }
}
