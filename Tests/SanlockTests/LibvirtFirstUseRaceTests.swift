import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

/// libvirt's own sanlock.so and ours using a fresh lease directory for the
/// first time at the same instant, from separate processes on one daemon.
/// libvirt's plugin creates a lockspace or lease file and initialises it in
/// two steps, so ours can meet the file in between (as another host on a
/// shared lease directory can): it must wait for the file to become valid,
/// never fail with "not initialised" and never initialise it itself.
///
/// Rounds: LOCKMGR_FIRST_USE_ROUNDS (default 20; the README records a run
/// of 200). Each round costs a lockspace join (~3 s with io_timeout 1).
@Suite(.serialized) struct LibvirtFirstUseRaceTests {
    static let rounds = Int(ProcessInfo.processInfo.environment["LOCKMGR_FIRST_USE_ROUNDS"] ?? "") ?? 20
    static let libvirtPlugin = "\(BuildProducts.libvirtPluginDir)/sanlock.so"
    static let lockspace = SanlockLease.autoLockspace

    /// One racer: `lockmgr ARGS` with one plugin, started through `gate`,
    /// output to files (see SanlockCluster.launchContender for why).
    final class Racer {
        let plugin: String
        let process: Process
        let errors: String
        let output: String

        init(plugin: String, pluginDir: String, _ args: [String], gate: StartGate, daemon: SanlockDaemon, files: String) throws {
            self.plugin = plugin
            (output, errors) = ("\(files).out", "\(files).err")
            let argv = gate.command(
                [BuildProducts.lockmgr] + args.prefix(1) + ["--plugin", "sanlock", "--plugin-dir", pluginDir]
                    + args.dropFirst())
            process = Process()
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            var env = ProcessInfo.processInfo.environment
            env["SANLOCK_RUN_DIR"] = daemon.runDir
            process.environment = env
            TempDir.write("", to: output)
            TempDir.write("", to: errors)
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle(forWritingAtPath: errors)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        /// Reaped, so Foundation lets go of its output files (see Contender.stop).
        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
        var stderr: String { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }
        var started: Bool { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").hasPrefix("ready ") }
        var summary: String { "\(plugin): exit \(exitStatus.map(String.init) ?? "-") \(stderr)" }
    }

    @Test func bothPluginsRacingOnAFreshLeaseDirectory() throws {
        try #require(
            FileManager.default.fileExists(atPath: Self.libvirtPlugin),
            "\(Self.libvirtPlugin) is missing: install the Debian package libvirt-sanlock")
        let base = TempDir.make("sanlock-first-use")
        let daemon = try SanlockDaemon(name: "lockmgr-test-first-use-\(getpid())")
        defer { daemon.stop() }
        var ourLeaseWins = 0, roundTimes: [Double] = []
        for round in 1...Self.rounds {
            let began = Date()
            let dir = "\(base)/\(round)", leaseDir = "\(dir)/leases", configDir = "\(dir)/etc"
            for d in [leaseDir, configDir] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
            TempDir.write(
                "auto_disk_leases = 1\ndisk_lease_dir = \"\(leaseDir)\"\nhost_id = 1\nio_timeout = 1\n",
                to: "\(configDir)/qemu-sanlock.conf")
            let plugins = [("ours", BuildProducts.pluginDir), ("libvirt's", BuildProducts.libvirtPluginDir)]
            // Alternate who is spawned first: the gate releases both anyway.
            let order = round % 2 == 0 ? plugins : plugins.reversed()
            func race(_ label: String, _ args: [String]) throws -> [Racer] {
                let gate = StartGate("\(dir)/\(label).go")
                let racers = try order.map { (name, pluginDir) in
                    try Racer(
                        plugin: name, pluginDir: pluginDir, args, gate: gate, daemon: daemon,
                        files: "\(dir)/\(label)-\(name == "ours" ? "ours" : "libvirt")")
                }
                try gate.open(forWaiters: racers.count)
                return racers
            }

            // 1. Both initialise: each creates or finds __LIBVIRT__DISKS__ and joins it.
            let inits = try race("init", ["info", "--config-dir", configDir])
            let settled = eventually(timeout: 60) { inits.allSatisfy { $0.exitStatus != nil } }
            try #require(settled, "round \(round): initialisation did not end: \(inits.map(\.summary))")
            for racer in inits {
                #expect(racer.exitStatus == 0, "round \(round): \(racer.summary)")
            }
            let lockspaceFile = SanlockLease.autoLockspacePath(leaseDir: leaseDir)
            let size = (try? FileManager.default.attributesOfItem(atPath: lockspaceFile))?[.size] as? Int
            #expect(size == 1 << 20, "round \(round): lockspace file \(lockspaceFile) is \(size.map(String.init) ?? "missing")")
            let status = daemon.client(["status"]).stdout
            #expect(status.contains("s \(Self.lockspace):1:\(lockspaceFile):0"), "round \(round): not joined: \(status)")
            // The lockspace reads back valid (sanlock's own check of the leader records).
            let read = daemon.client(["read", "-s", "\(Self.lockspace):0:\(lockspaceFile):0"])
            #expect(read.status == 0 && read.stdout.contains("s \(Self.lockspace):1:"), "round \(round): \(read)")

            // 2. Both take the same fresh disk's lease: one wins, the other is
            // refused as a conflict, never for a lease file caught half-made.
            let finished = "\(dir)/finished"
            let disk = "/images/first-use-\(round).img"
            let runs = try race(
                "run",
                [
                    "run", "--config-dir", configDir, "--uuid", UUID().uuidString,
                    "--name", "vm-first-use-\(round)", "--disk", disk, "--",
                    "/bin/sh", "-c", "echo ready $$; until [ -e \"$0\" ]; do sleep 0.05; done", finished,
                ])
            let decided = eventually(timeout: 60) {
                runs.contains { $0.started } && runs.contains { $0.exitStatus != nil } || runs.allSatisfy { $0.exitStatus != nil }
            }
            try #require(decided, "round \(round): the lease race did not settle: \(runs.map(\.summary))")
            let winners = runs.filter(\.started)
            #expect(winners.count == 1, "round \(round): \(runs.map(\.summary))")
            for loser in runs where !loser.started {
                if loser.plugin == "ours" {
                    #expect(loser.exitStatus == 75, "round \(round): \(loser.summary)")
                    #expect(
                        loser.stderr.contains("already held by another process on this host")
                            || loser.stderr.contains("another process on this host is acquiring it right now"),
                        "round \(round): \(loser.summary)")
                } else {
                    #expect(loser.exitStatus != 0 && loser.stderr.contains("Failed to acquire lock"), "round \(round): \(loser.summary)")
                }
            }
            if winners.first?.plugin == "ours" { ourLeaseWins += 1 }
            let leaseFile = "\(leaseDir)/\(MD5.hex(disk))"
            let leaseSize = (try? FileManager.default.attributesOfItem(atPath: leaseFile))?[.size] as? Int
            #expect(leaseSize == 1 << 20, "round \(round): lease file \(leaseFile) is \(leaseSize.map(String.init) ?? "missing")")
            TempDir.write("", to: finished)
            let ended = eventually(timeout: 30) { runs.allSatisfy { $0.exitStatus != nil } }
            #expect(ended && winners.allSatisfy { $0.exitStatus == 0 }, "round \(round): \(runs.map(\.summary))")
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: leaseDir))?.filter { $0.hasSuffix(".new") } ?? []
            #expect(leftovers.isEmpty, "round \(round): unfinished files left: \(leftovers)")

            // Nothing held; the daemon leaves the lockspace for the next round's fresh one.
            let idle = eventually(timeout: 10) { !daemon.client(["status"]).stdout.contains("\nr ") }
            #expect(idle, "round \(round): a lease is still held: \(daemon.status())")
            let removed = daemon.client(["rem_lockspace", "-s", "\(Self.lockspace):1:\(lockspaceFile):0"], timeout: 60)
            try #require(removed.status == 0 && !removed.stdout.contains("done -"), "round \(round): \(removed)")
            roundTimes.append(Date().timeIntervalSince(began))
        }
        let median = roundTimes.sorted()[roundTimes.count / 2]
        print(
            "sanlock first use with libvirt's plugin: \(Self.rounds) rounds;",
            "ours won the lease \(ourLeaseWins) times;", String(format: "round median %.2f s", median))
    }

    /// A lockspace or lease file that exists but that nobody finishes (its
    /// creator died between creating and initialising it) is waited for
    /// up to the limit io_timeout gives (2 x 1 s + 1 s here), then reported
    /// naming the file; it is never initialised by us.
    @Test func anUnfinishedFileNobodyCompletesIsReportedNotInitialised() throws {
        let dir = TempDir.make("sanlock-unfinished"), leaseDir = "\(dir)/leases", configDir = "\(dir)/etc"
        for d in [leaseDir, configDir] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        TempDir.write(
            "auto_disk_leases = 1\ndisk_lease_dir = \"\(leaseDir)\"\nhost_id = 1\nio_timeout = 1\n",
            to: "\(configDir)/qemu-sanlock.conf")
        let daemon = try SanlockDaemon(name: "lockmgr-test-unfinished-\(getpid())")
        defer { daemon.stop() }
        func lockmgr(_ args: [String]) -> (CommandResult, Double) {
            let began = Date()
            let r = Command.run(
                [BuildProducts.lockmgr] + args.prefix(1) + [
                    "--plugin", "sanlock", "--plugin-dir", BuildProducts.pluginDir,
                    "--config-dir", configDir,
                ] + args.dropFirst(),
                environment: daemon.environment, timeout: 60)
            return (r, Date().timeIntervalSince(began))
        }
        func isAllZeros(_ path: String) -> Bool {
            (FileManager.default.contents(atPath: path) ?? Data([1])).allSatisfy { $0 == 0 }
        }

        let lockspaceFile = SanlockLease.autoLockspacePath(leaseDir: leaseDir)
        try SanlockDaemon.makeLeaseFile(lockspaceFile)
        let (initFailed, waited) = lockmgr(["info"])
        #expect(initFailed.status == 69, "\(initFailed)")
        #expect(
            initFailed.stderr.contains(
                "lockspace \(Self.lockspace) file \(lockspaceFile) exists but was still not initialised after 3000 ms"),
            "\(initFailed)")
        #expect(initFailed.stderr.contains("(sanlock error -223)"), "\(initFailed)")
        #expect(waited >= 3 && waited < 3 + 5 + Sanitizer.slackSeconds, "waited \(waited) s")
        #expect(isAllZeros(lockspaceFile), "our plugin wrote into a lockspace file it did not create")

        // Once someone finishes it, the same call works.
        try daemon.initLockspace(Self.lockspace, path: lockspaceFile)
        let (initOK, _) = lockmgr(["info"])
        #expect(initOK.status == 0, "\(initOK)")

        let disk = "/images/unfinished.img"
        let leaseFile = "\(leaseDir)/\(MD5.hex(disk))"
        try SanlockDaemon.makeLeaseFile(leaseFile)
        let (acquireFailed, waitedForLease) = lockmgr([
            "run", "--uuid", UUID().uuidString, "--name", "vm-unfinished",
            "--disk", disk, "--", "/bin/true",
        ])
        #expect(acquireFailed.status == 69, "\(acquireFailed)")
        #expect(
            acquireFailed.stderr.contains(
                "lease '\(MD5.hex(disk))' in lockspace '\(Self.lockspace)' (\(leaseFile):0) file exists but was still not initialised after 3000 ms"
            ),
            "\(acquireFailed)")
        #expect(waitedForLease >= 3, "waited \(waitedForLease) s")
        #expect(isAllZeros(leaseFile), "our plugin wrote into a lease file it did not create")
    }
}
