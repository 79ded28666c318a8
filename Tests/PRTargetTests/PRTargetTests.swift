import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// The pr plugin against a real tgtd, driven through `lockmgr`
/// subprocesses (one config dir per simulated host), checked with
/// independent PR IN commands and real WRITEs.
@Suite struct PRTargetTests {
    let a = PRHost("a", config: "exclusive_type = \"exclusive-access-registrants-only\"")
    let b = PRHost("b")
    let c = PRHost("c")
    let check = Checker()

    func expectOK(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 0, "\(r)", sourceLocation: sourceLocation)
    }

    func expectRefused(
        _ r: CommandResult, status: Int32 = 75, _ fragments: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(r.status == status, "\(r)", sourceLocation: sourceLocation)
        for f in fragments { #expect(r.stderr.contains(f), "missing '\(f)' in: \(r.stderr)", sourceLocation: sourceLocation) }
    }

    var state: (CommandResult) -> String { { $0.stdout.trimmingCharacters(in: .whitespacesAndNewlines) } }

    // 1
    @Test func exclusiveAcquireFencesOthersAndASecondHostIsRefused() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        expectOK(a.lockmgr("acquire", .one, disks: [lun]))
        #expect(try check.reservation(lun) == .init(key: a.key(.one).rawValue, type: .exclusiveAccessRegistrantsOnly))
        #expect(try check.keys(lun) == [a.key(.one).rawValue])
        #expect(try DataPath(a, lun, key: a.key(.one)).write() == .good(data: []))
        #expect(try DataPath(b, lun, key: nil).write() == .reservationConflict)

        let generation = try check.generation(lun)
        expectRefused(b.lockmgr("acquire", .two, disks: [lun]), [lun, a.key(.one).description])
        #expect(try check.generation(lun) == generation)
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(b.commandsLogged().contains("\(lun) PR IN READ KEYS"), "B's commands are logged")
        #expect(b.takePROutCount() == 0)
        // The same VM started on B without a state string: a double start.
        expectRefused(b.lockmgr("acquire", .one, disks: [lun]), ["double start"])
        #expect(try check.generation(lun) == generation)
    }

    // LUN 300 is LUN 300: sent as a plain number it reaches LUN 44 on tgt
    // (300 mod 256); the untouched LUN 44 is the independent witness.
    @Test func aLUNAbove255IsReservedItselfNotAnotherLU() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let urls = try tgt.addTarget(lunNumbers: [44, 300]).urls
        let (low, high) = (urls[0], urls[1])
        expectOK(a.lockmgr("acquire", .one, disks: [high]))
        #expect(try check.reservation(low) == nil)
        #expect(try check.keys(low).isEmpty)
        #expect(try check.reservation(high)?.key == a.key(.one).rawValue)
        expectOK(a.lockmgr("release", .one, disks: [high]))
        #expect(try check.keys(high).isEmpty)
    }

    // 2
    @Test func releaseLeavesNoReservationAndNoRegistrationOfOurs() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let acquired = a.lockmgr("acquire", .one, disks: [lun])
        expectOK(acquired)
        let released = a.lockmgr("release", .one, disks: [lun])
        expectOK(released)
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty)
        let s = try PRState(decoding: state(released))
        #expect(s.entries == [.init(resource: lun, key: a.key(.one), type: .exclusiveAccessRegistrantsOnly)])
        #expect(state(acquired) == state(released))
    }

    // 3 (and the reverse safety of 5)
    @Test func handoverWithTheStateStringInTwoPROutCommands() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let stateA = state(a.lockmgr("acquire", .one, disks: [lun]))
        let pathA = try DataPath(a, lun, key: a.key(.one))
        #expect(try pathA.write() == .good(data: []))
        _ = b.takePROutCount()

        expectOK(b.lockmgr("acquire", .one, disks: [lun], state: stateA))
        let logged = b.commandsLogged()
        #expect(logged.contains("\(lun) PR OUT PREEMPT"), "\(logged)")
        #expect(b.takePROutCount() <= 2, "\(logged)")
        // Type preserved: A's type, not B's configured default.
        #expect(try check.reservation(lun) == .init(key: b.key(.one).rawValue, type: .exclusiveAccessRegistrantsOnly))
        #expect(try !check.keys(lun).contains(a.key(.one).rawValue))
        #expect(try pathA.write() == .reservationConflict)
        #expect(try DataPath(b, lun, key: b.key(.one)).write() == .good(data: []))

        // A clean-up on the source must leave the destination alone.
        let generation = try check.generation(lun)
        let released = a.lockmgr("release", .one, disks: [lun])
        expectOK(released)
        #expect(try PRState(decoding: state(released)).entries.isEmpty)
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        #expect(try check.generation(lun) == generation)
    }

    // 4
    @Test func libvirtStyleHandoverThroughAReleasedState() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        expectOK(a.lockmgr("acquire", .one, disks: [lun]))
        let saved = state(a.lockmgr("release", .one, disks: [lun]))
        expectOK(b.lockmgr("acquire", .one, disks: [lun], state: saved))
        #expect(try check.reservation(lun) == .init(key: b.key(.one).rawValue, type: .exclusiveAccessRegistrantsOnly))
        #expect(try check.keys(lun) == [b.key(.one).rawValue])
    }

    @Test func reservingAfterAReleaseFencesTheSameVMsLeftoverPaths() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        expectOK(a.lockmgr("acquire", .one, disks: [lun]))
        let saved = state(a.lockmgr("release", .one, disks: [lun]))
        // A path of host a is still registered (its release missed it).
        let pathA = try DataPath(a, lun, key: a.key(.one))
        expectOK(b.lockmgr("acquire", .one, disks: [lun], state: saved))
        #expect(try check.reservation(lun)?.key == b.key(.one).rawValue)
        #expect(try check.keys(lun) == [b.key(.one).rawValue])
        #expect(try pathA.write() == .reservationConflict)
    }

    // 5
    @Test func rollbackGivesTheReservationBackToTheSource() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let stateA = state(a.lockmgr("acquire", .one, disks: [lun]))
        expectOK(b.lockmgr("acquire", .one, disks: [lun], state: stateA))
        let pathB = try DataPath(b, lun, key: b.key(.one))
        #expect(try pathB.write() == .good(data: []))

        expectOK(a.lockmgr("acquire", .one, disks: [lun], state: stateA))
        #expect(try check.reservation(lun) == .init(key: a.key(.one).rawValue, type: .exclusiveAccessRegistrantsOnly))
        #expect(try !check.keys(lun).contains(b.key(.one).rawValue))
        #expect(try pathB.write() == .reservationConflict)
        #expect(try DataPath(a, lun, key: a.key(.one)).write() == .good(data: []))
    }

    // 6
    @Test func staleStateIsRefusedAndTheNewHolderUntouched() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let stateA = state(a.lockmgr("release", .one, disks: [lun], state: nil))  // empty, just to exercise
        #expect(try PRState(decoding: stateA).entries.isEmpty)
        let held = state(a.lockmgr("acquire", .one, disks: [lun]))
        expectOK(a.lockmgr("release", .one, disks: [lun]))
        // C (another VM) takes the LU meanwhile.
        expectOK(c.lockmgr("acquire", .two, disks: [lun]))
        let generation = try check.generation(lun)
        expectRefused(b.lockmgr("acquire", .one, disks: [lun], state: held), ["stale", c.key(.two).description])
        #expect(try check.reservation(lun)?.key == c.key(.two).rawValue)
        #expect(try check.generation(lun) == generation)
        #expect(b.takePROutCount() == 0)

        // The same VM on a third host is no migration peer of this state.
        expectOK(c.lockmgr("release", .two, disks: [lun]))
        let stateOnA = state(a.lockmgr("acquire", .one, disks: [lun]))
        expectOK(c.lockmgr("acquire", .one, disks: [lun], state: stateOnA))
        expectRefused(b.lockmgr("acquire", .one, disks: [lun], state: stateOnA), ["stale"])
        #expect(try check.reservation(lun)?.key == c.key(.one).rawValue)
    }

    // 7
    @Test func aFreshProcessInquiresAndReleasesWhatAnEarlierOneAcquired() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget(luns: 2)
        let acquired = a.lockmgr("acquire", .one, disks: t.urls)
        expectOK(acquired)
        let inquired = a.lockmgr("inquire", .one, disks: t.urls)
        expectOK(inquired)
        #expect(state(inquired) == state(acquired))
        #expect(try PRState(decoding: state(inquired)).entries.count == 2)
        expectOK(a.lockmgr("release", .one, disks: t.urls))
        for lun in t.urls {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
    }

    // 8
    @Test func readonlySkippedSharedHeldByTwoExclusiveRefused() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget(luns: 2)
        let (ro, shared) = (t.urls[0], t.urls[1])
        expectOK(a.lockmgr("acquire", .one, readonly: [ro]))
        #expect(a.takePROutCount() == 0)
        #expect(try check.reservation(ro) == nil)
        #expect(try check.generation(ro) == 0)

        expectOK(a.lockmgr("acquire", .one, shared: [shared]))
        expectOK(b.lockmgr("acquire", .two, shared: [shared]))
        #expect(try check.reservation(shared) == .init(key: 0, type: .writeExclusiveAllRegistrants))
        #expect(try Set(check.keys(shared)) == [a.sharedKey.rawValue, b.sharedKey.rawValue])
        #expect(try DataPath(b, shared, key: b.sharedKey).write() == .good(data: []))
        #expect(try DataPath(c, shared, key: nil).write() == .reservationConflict)

        expectRefused(c.lockmgr("acquire", .two, disks: [shared]), ["held shared", a.sharedKey.description])
        // And an exclusive holder refuses a shared user.
        expectOK(c.lockmgr("acquire", .two, disks: [ro]))
        expectRefused(a.lockmgr("acquire", .one, shared: [ro]), ["held exclusively", c.key(.two).description])
        // Releasing one shared user keeps the other's hold.
        expectOK(a.lockmgr("release", .one, shared: [shared]))
        #expect(try Set(check.keys(shared)) == [b.sharedKey.rawValue])  // B's plugin login and its data path
        #expect(try check.reservation(shared)?.type == .writeExclusiveAllRegistrants)
    }

    // 9
    @Test func allOrNothingWhenTheThirdLUNIsHeldElsewhere() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let t = try tgt.addTarget(luns: 3)
        expectOK(c.lockmgr("acquire", .two, disks: [t.urls[2]]))
        expectRefused(a.lockmgr("acquire", .one, disks: t.urls), [t.urls[2], c.key(.two).description])
        for lun in t.urls.prefix(2) {
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
        #expect(try check.reservation(t.urls[2])?.key == c.key(.two).rawValue)
    }

    // 12
    @Test func lockmgrRunHoldsTheReservationWhileTheCommandRuns() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let tool = "\(BuildProducts.binDir)/pr-tool"
        let r = a.lockmgr(
            "run", .one, disks: [lun], command: [tool, "--initiator", "iqn.2026-01.lockmgr.test:observer", lun, "reservation"])
        expectOK(r)
        #expect(r.stdout.contains("reserved by \(a.key(.one)) type 6"), "\(r)")
    }
}
