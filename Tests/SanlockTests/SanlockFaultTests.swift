import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

extension SanlockRobustnessTests {
    /// Faults under the sanlock plugin. Each: a clear error within the
    /// call timeout given (--timeout 20), nothing half-acquired (asked of
    /// every daemon and read from the lease on disk), and recovery once
    /// the fault is gone.
    @Suite struct Faults {
        func cluster() throws -> SanlockCluster { try #require(SanlockCluster.current) }

        static let limit = ["--timeout", "20"]

        /// The leases any daemon of the cluster holds, with the host (a
        /// daemon that cannot say counts as holding something).
        func held(_ c: SanlockCluster) -> [String] {
            c.hosts.flatMap { host in
                do {
                    return try c.daemon(host).parsedStatus().resources.map { "\(host): \($0.name) p \($0.ownerPid)" }
                } catch {
                    return ["\(host): \(error)"]
                }
            }
        }

        /// Lease files some creator did not finish, or the listing's failure.
        func unfinishedFiles(_ c: SanlockCluster) -> [String] {
            do {
                return try FileManager.default.contentsOfDirectory(atPath: c.leaseDir).filter { $0.hasSuffix(".new") }
            } catch {
                return ["\(error)"]
            }
        }

        /// sanlock takes a VM's leases in one call, all or none: when a
        /// later one cannot be had (held by another host; not a lease at
        /// all), the earlier ones are given back before lockmgr reports,
        /// and a third host takes them at once.
        @Test func aMultiDiskAcquireFailingOnALaterLeaseHoldsNothing() throws {
            let c = try cluster()
            let blank = "\(c.dir)/blank.lease"
            try SanlockDaemon.makeLeaseFile(blank)  // zeroes: never initialised
            let taken = c.disk("multi-taken")
            let holder = try c.startVM(.b, name: "vm-multi-holder", ["--disk", taken])
            defer { holder.stop() }
            let cases: [(later: [String], status: Int32, reason: String)] = [
                (["--disk", taken], 75, "held by another host that is alive"),
                (["--lease", "key=blank,lockspace=\(SanlockCluster.lockspace),path=\(blank)"], 69, "not initialised"),
            ]
            for (i, failing) in cases.enumerated() {
                let first = c.disk("multi-first-\(i)")
                let r = c.lockmgr(
                    .a, "run", Self.limit + ["--disk", first] + failing.later + ["--", "/bin/true"],
                    name: "vm-multi-\(i)")
                #expect(r.status == failing.status, "\(r)")
                #expect(r.stderr.contains("cannot acquire lease '\(MD5.hex(first))'") && r.stderr.contains(failing.reason), "\(r)")
                #expect(held(c).filter { !$0.hasPrefix("host B: \(MD5.hex(taken))") }.isEmpty, "\(held(c))")
                let firstOnDisk = try SanlockLeaseRecord.read(path: c.leaseFile(forDisk: first))
                #expect(firstOnDisk.isFree, "the earlier lease was not given back: \(firstOnDisk)")
                let other = try c.startVM(.c, name: "vm-multi-other-\(i)", ["--disk", first])
                other.stop()
            }
        }

        /// A full lease directory: the new disk's lease file cannot be
        /// made. The error names the file and errno, nothing is acquired
        /// (not even the other disk, whose lease version is unchanged), no
        /// partial file is left; with space again, the same start works.
        @Test func aFullLeaseDirectoryFailsCleanlyAndRecovers() throws {
            let c = try cluster()
            let existing = c.disk("full-existing"), fresh = c.disk("full-new")
            try c.startVM(.a, name: "vm-full-setup", ["--disk", existing]).stop()
            #expect(eventually { (try? SanlockLeaseRecord.read(path: c.leaseFile(forDisk: existing)))?.isFree == true })
            let before = try SanlockLeaseRecord.read(path: c.leaseFile(forDisk: existing))

            // Leave half a lease of room: the new file is partly written, then fails.
            var fs = statvfs()
            try #require(statvfs(c.leaseDir, &fs) == 0)
            let free = Int(fs.f_bavail) * Int(fs.f_frsize)
            let filler = "\(c.leaseDir)/filler"
            let fill = Command.run(["fallocate", "-l", "\(free - (1 << 19))", filler])
            try #require(fill.status == 0, "\(fill)")
            defer { unlink(filler) }

            let r = c.lockmgr(.a, "acquire", Self.limit + ["--disk", existing, "--disk", fresh], name: "vm-full")
            #expect(r.status == 69, "\(r)")
            #expect(r.stderr.contains("cannot allocate 1048576 bytes for \(c.leaseFile(forDisk: fresh)): No space left on device"), "\(r)")
            #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: fresh)))
            #expect(unfinishedFiles(c).isEmpty, "\(unfinishedFiles(c))")
            #expect(held(c).isEmpty, "\(held(c))")
            #expect(try SanlockLeaseRecord.read(path: c.leaseFile(forDisk: existing)) == before, "the other disk was touched")

            unlink(filler)
            let vm = try c.startVM(.a, name: "vm-full", ["--disk", existing, "--disk", fresh])
            let state = c.state(.a, "inquire", pid: vm.pid, ["--disk", existing, "--disk", fresh]) ?? ""
            #expect(state.contains(MD5.hex(existing)) && state.contains(MD5.hex(fresh)), "\(state)")
            vm.stop()
        }

        /// A lease directory that became read-only (a read-only bind mount
        /// over it: root ignores permission bits). The daemon's lockspace
        /// stays writable through the mount it opened it on; a new disk's
        /// lease cannot be created: named, nothing acquired, nothing left;
        /// writable again, the same start works.
        @Test func anUnwritableLeaseDirectoryFailsCleanlyAndRecovers() throws {
            let c = try cluster()
            let fresh = c.disk("readonly-new")
            for step in [["mount", "--bind", c.leaseDir, c.leaseDir], ["mount", "-o", "remount,bind,ro", c.leaseDir]] {
                let r = Command.run(step, timeout: 30)
                try #require(r.status == 0, "\(step): \(r)")
            }
            var mounted = true
            defer { if mounted { Command.run(["umount", c.leaseDir], timeout: 30) } }

            let r = c.lockmgr(.b, "acquire", Self.limit + ["--disk", fresh], name: "vm-readonly")
            #expect(r.status == 69, "\(r)")
            #expect(
                r.stderr.contains("cannot create lease '\(MD5.hex(fresh))'") && r.stderr.contains(c.leaseFile(forDisk: fresh))
                    && r.stderr.contains("Read-only file system"), "\(r)")
            #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: fresh)))
            #expect(held(c).isEmpty, "\(held(c))")

            let unmount = Command.run(["umount", c.leaseDir], timeout: 30)
            try #require(unmount.status == 0, "\(unmount)")
            mounted = false
            try c.startVM(.b, name: "vm-readonly", ["--disk", fresh]).stop()
            #expect(unfinishedFiles(c).isEmpty, "\(unfinishedFiles(c))")
        }

        /// Host A's sanlock daemon is SIGKILLed under a running VM. What is
        /// true then: the VM keeps running (no watchdog here; in production
        /// wdmd resets the host), its lease stays owned by host A on disk,
        /// and host B is refused while A's host lease looks alive. A new
        /// start on A fails at once saying the daemon is not running and
        /// where its socket was (exit 69). Restarted, the first use of the
        /// plugin rejoins the lockspace: the previous life's lease is dead,
        /// so A starts the VM again on the same disk, and later B too.
        @Test func aKilledDaemonRefusesClearlyAndRecoversOnRestart() throws {
            let c = try cluster()
            let disk = ["--disk", c.disk("daemon-killed")]
            let leaseFile = c.leaseFile(forDisk: disk[1])
            let vm = try c.startVM(.a, name: "vm-daemon-killed", disk)
            defer { vm.stop() }

            c.a.crash()
            usleep(200_000)
            #expect(kill(vm.pid, 0) == 0, "the VM died with its daemon")
            let owned = try SanlockLeaseRecord.read(path: leaseFile)
            #expect(!owned.isFree && owned.ownerID == 1, "\(owned)")
            let elsewhere = c.lockmgr(.b, "acquire", Self.limit + disk, name: "vm-daemon-killed-b")
            #expect(elsewhere.status == 75 && elsewhere.stderr.contains("held by another host that is alive"), "\(elsewhere)")

            let otherDisk = c.disk("daemon-down")
            let down = c.lockmgr(.a, "acquire", Self.limit + ["--disk", otherDisk], name: "vm-daemon-down")
            #expect(down.status == 69, "\(down)")
            #expect(down.stderr.contains("the sanlock daemon is not running (stale socket in \(c.a.runDir))"), "\(down)")
            #expect(!FileManager.default.fileExists(atPath: c.leaseFile(forDisk: otherDisk)), "nothing was created for it")

            vm.stop()  // what the watchdog would have done
            try c.a.restart()
            let again = try c.startVM(.a, name: "vm-daemon-restarted", disk)
            let retaken = try SanlockLeaseRecord.read(path: leaseFile)
            #expect(
                retaken.ownerID == 1 && retaken.generation > owned.generation && retaken.version == owned.version + 1,
                "\(retaken) after \(owned)")
            again.stop()
            try c.startVM(.b, name: "vm-daemon-restarted-b", disk).stop()
        }

        /// A hung daemon (SIGSTOPped: it accepts connections and never
        /// answers) is a plugin call that never returns: lockmgr gives up
        /// after the call timeout, naming the call, and exits 69. Nothing
        /// is held once the daemon runs again, and a start then works.
        @Test func aHungDaemonMeetsTheCallTimeout() throws {
            let c = try cluster()
            let disk = ["--disk", c.disk("hung-daemon")]
            let daemon = c.daemon(.c)
            kill(daemon.pid, SIGSTOP)
            var stopped = true
            defer { if stopped { kill(daemon.pid, SIGCONT) } }

            let started = Date()
            let r = c.lockmgr(.c, "acquire", ["--timeout", "2"] + disk, name: "vm-hung")
            let took = Date().timeIntervalSince(started)
            #expect(!r.timedOut && r.status == 69, "\(r)")
            #expect(r.stderr.contains("lock plugin 'sanlock' did not return from drvInit within 2 s (limit from --timeout 2)"), "\(r)")
            #expect(took >= 2 && took < 2 + 8, "gave up after \(took) s")

            kill(daemon.pid, SIGCONT)
            stopped = false
            #expect(eventually { held(c).isEmpty }, "\(held(c))")
            try c.startVM(.c, name: "vm-hung", disk).stop()
        }
    }
}
