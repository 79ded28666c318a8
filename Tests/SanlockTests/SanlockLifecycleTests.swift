import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

/// A VM's whole life under lockmgr with the sanlock plugin, on two
/// simulated hosts (two private sanlock daemons sharing one lease
/// directory): start, refused double start, pause/resume, migration in
/// libvirt's order and in QEMU's migrate-pr order, rollbacks, exit, crash,
/// and a dead host. The "VM" is a `sleep` under `lockmgr run`: the same pid
/// holds the lease, as QEMU does when libvirt acquires between fork and exec.
@Suite(.serialized, .sanlockCluster)
struct SanlockLifecycleTests {
    func cluster() throws -> SanlockCluster { try #require(SanlockCluster.current) }

    @Test func aVMsLifeOnTwoHosts() throws {
        let c = try cluster()
        let name = "vm-life"
        let disk = ["--disk", c.disk("life")]
        // Every VM of this life asks for pause on lock loss: none of the
        // steps below is a loss, so the failure helper must never run.
        let pause = ["--action", "pause"]

        // Start on host A: lockmgr run acquires in the VM's own process.
        let first = try c.startVM(.a, name: name, pause + disk)
        let started = try #require(c.state(.a, "inquire", pid: first.pid, disk))

        // A second start of the same VM is refused, on this host and on host B,
        // and the refusals change nothing.
        let again = c.lockmgr(.a, "run", disk + ["--", "true"], name: name)
        #expect(again.status == 75 && again.stderr.contains("already held by another process on this host"), "\(again)")
        let elsewhere = c.lockmgr(.b, "run", disk + ["--", "true"], name: name)
        #expect(elsewhere.status == 75 && elsewhere.stderr.contains("held by another host that is alive"), "\(elsewhere)")
        #expect(c.state(.a, "inquire", pid: first.pid, disk) == started)

        // Pause as libvirt does it: stop the vCPUs, release on behalf of the
        // VM's pid and keep the state. Resume: acquire on its behalf with
        // that state (and the same failure action), then run again.
        first.signal(SIGSTOP)
        let paused = try #require(c.state(.a, "release", pid: first.pid, disk))
        #expect(paused == started)
        #expect(c.state(.a, "inquire", pid: first.pid, disk) == nil, "a paused VM holds nothing")
        let resumed = c.state(.a, "acquire", pid: first.pid, disk + pause + ["--state", paused])
        first.signal(SIGCONT)
        #expect(leaseVersion(resumed) == leaseVersion(paused).map { $0 + 1 }, "resumed: \(String(describing: resumed))")

        // Migration A → B in libvirt's order: the source releases (its
        // vCPUs stopped), the destination starts with the state it was sent.
        first.signal(SIGSTOP)
        let sent = try #require(c.state(.a, "release", pid: first.pid, disk))
        let second = try c.startVM(.b, name: name, pause + disk + ["--state", sent])
        let onB = try #require(c.state(.b, "inquire", pid: second.pid, disk))
        #expect(leaseVersion(onB) == leaseVersion(sent).map { $0 + 1 })
        #expect(c.lockmgr(.a, "acquire", disk).status == 75, "the source host cannot take it back behind B's back")
        first.stop()  // libvirt kills the source QEMU once the destination runs

        // Migration B → A in QEMU's migrate-pr order: the destination takes
        // over while the source still holds. A sanlock lease is exclusive
        // and cannot be held by two hosts even for an instant, so the early
        // takeover is refused and leaves the holder's lease as it was (same
        // version: the state stays valid). The honest sanlock equivalent of
        // the takeover is the handover once the source releases.
        let live = try #require(c.state(.b, "inquire", pid: second.pid, disk))
        let early = c.lockmgr(.a, "run", disk + ["--state", live, "--", "true"], name: name)
        #expect(early.status == 75 && early.stderr.contains("held by another host that is alive"), "\(early)")
        #expect(c.state(.b, "inquire", pid: second.pid, disk) == live, "the holder keeps its lease, same version")
        second.signal(SIGSTOP)
        let handedOver = try #require(c.state(.b, "release", pid: second.pid, disk))
        #expect(handedOver == live)
        let third = try c.startVM(.a, name: name, pause + disk + ["--state", handedOver])
        second.stop()

        // Rollback, destination never acquired: B's QEMU waits for the
        // incoming migration registered only (libvirt acquires on resume);
        // the source releases, the migration fails, B's process goes. The
        // source resumes with its own saved state.
        let incoming = try c.startVM(.b, name: name, ["--register-only"] + pause + disk)
        third.signal(SIGSTOP)
        let beforeFailure = try #require(c.state(.a, "release", pid: third.pid, disk))
        #expect(c.state(.b, "inquire", pid: incoming.pid, disk) == nil, "the destination never acquired")
        incoming.stop()
        let rolledBack = c.state(.a, "acquire", pid: third.pid, disk + pause + ["--state", beforeFailure])
        third.signal(SIGCONT)
        #expect(leaseVersion(rolledBack) == leaseVersion(beforeFailure).map { $0 + 1 }, "\(String(describing: rolledBack))")

        // Rollback after the destination acquired (resumed) and then died:
        // the guest ran on B and may have written the disk, so the source's
        // memory is older than the disk. Its saved state is refused as stale,
        // although the lease is free again; resuming with a plain acquire or
        // with B's state would silently run old memory on newer data. What is
        // left is a cold start (boot from disk), which a plain start allows.
        let resumedOnB = try c.startVM(.b, name: name, ["--register-only"] + pause + disk)
        third.signal(SIGSTOP)
        let beforeCrash = try #require(c.state(.a, "release", pid: third.pid, disk))
        #expect(c.state(.b, "acquire", pid: resumedOnB.pid, disk + pause + ["--state", beforeCrash]) != nil)
        resumedOnB.signal(SIGKILL)
        #expect(resumedOnB.waitForExit())
        var stale: CommandResult?
        let refused = eventually {
            stale = c.lockmgr(.a, "acquire", ["--pid", "\(third.pid)", "--state", beforeCrash] + disk + pause, name: name)
            return stale?.stderr.contains("the state is stale") == true
        }
        #expect(refused && stale?.status == 75, "\(String(describing: stale))")
        third.stop()

        // Normal exit frees the lease: a cold start on A that ends by itself.
        let exitFile = "\(c.dir)/exit-life"
        let cold = try c.startVM(.a, name: name, pause + disk, payload: SanlockCluster.exitWhenCreated(exitFile))
        #expect(c.lockmgr(.b, "acquire", disk).status == 75)
        TempDir.write("", to: exitFile)
        try #require(cold.waitForExit())
        #expect(cold.process.terminationReason == .exit && cold.process.terminationStatus == 0)
        #expect(eventually { c.lockmgr(.b, "acquire", disk).status == 0 }, "free once the VM exited")

        // SIGKILL of the VM frees the lease too.
        let killed = try c.startVM(.a, name: name, pause + disk)
        #expect(c.lockmgr(.b, "acquire", disk).status == 75)
        killed.signal(SIGKILL)
        #expect(killed.waitForExit())
        #expect(eventually { c.lockmgr(.b, "acquire", disk).status == 0 }, "free once the VM was killed")

        // None of this was a lost lease.
        let log = (try? String(contentsOfFile: c.helperLog, encoding: .utf8)) ?? ""
        #expect(log.isEmpty, "a release or handover ran the failure helper: \(log)")
    }

    /// A host that dies holding a lease keeps it: sanlock cannot tell a dead
    /// host from a slow one until its host lease times out (68 s with
    /// io_timeout 1, and safe only because the watchdog resets the host by
    /// then); that is the fence. A start on another host is refused while
    /// the dead host's lease still looks fresh, then waits. The explicit way
    /// to clear it is the host coming back: a daemon with the same host name
    /// (-e) rejoining the lockspace tells the others that its previous life's
    /// leases are dead, and the waiting start gets the lease. sanlock 3.8 has
    /// no command that frees another host's lease (re-initialising the lease
    /// area would also reset its version, so old states would become valid).
    @Test func aDeadHostsLeaseStaysUntilTheHostRejoins() throws {
        let c = try cluster()
        let disk = ["--disk", c.disk("dead-host")]
        let vm = try c.startVM(.a, name: "vm-dead-host", disk)

        c.a.crash()
        vm.stop()  // the host is gone, its VM with it
        let crashed = Date()
        let right = c.lockmgr(.b, "acquire", disk)
        #expect(right.status == 75 && right.stderr.contains("held by another host that is alive"), "\(right)")

        // Once A misses renewals, a start on B is no longer refused but
        // waits for A's lease to be known dead; it does not get the lease.
        var attempt: VM?
        let waits = eventually(timeout: 20) {
            attempt = try? c.launchVM(.b, name: "vm-dead-host", disk)
            guard let vm = attempt else { return false }
            // Ready: it took the lease (checked below). Ended: refused, try
            // again. A refusal takes well under a second here; 5 s keeps a
            // slow refusal on a loaded CI machine from passing as "waiting".
            return vm.waitReady(timeout: 1) || !vm.waitForExit(timeout: 5)
        }
        let waiting = try #require(attempt)
        #expect(waits, "every start on B ended at once")
        #expect(!waiting.waitReady(timeout: 3), "host B took a dead host's lease without it being cleared")
        let waitedFrom = Date().timeIntervalSince(crashed) - 9  // the last attempt's checks (1 + 5 s) and the 3 s above

        try c.a.restart()
        let restarted = Date()
        // The first use of the plugin on the restarted host rejoins the lockspace.
        let rejoin = Command.run(
            [
                BuildProducts.lockmgr, "info", "sanlock", "--plugin-dir", BuildProducts.pluginDir,
                "--config-dir", c.configDirA,
            ], environment: c.a.environment, timeout: 60)
        #expect(rejoin.status == 0, "\(rejoin)")
        let rejoined = Date()
        #expect(waiting.waitReady(timeout: 30), "host B's start did not get the lease after host A rejoined")
        #expect(c.state(.b, "inquire", pid: waiting.pid, disk) != nil, "B's VM holds the lease")
        print(
            String(
                format: "dead host: refused until %.1f s after the crash, then waiting; A's rejoin took %.1f s;",
                waitedFrom, rejoined.timeIntervalSince(restarted)),
            String(
                format: "B's start ran %.1f s after A's restart, %.1f s after the crash",
                Date().timeIntervalSince(restarted), Date().timeIntervalSince(crashed)))
        #expect(Date().timeIntervalSince(crashed) < 60, "freed by the rejoin, not by the host lease expiring")
        waiting.stop()
        #expect(
            try c.startVM(.a, name: "vm-after-rejoin", ["--disk", c.disk("after-rejoin")]).pid > 0,
            "host A works again")
    }
}
