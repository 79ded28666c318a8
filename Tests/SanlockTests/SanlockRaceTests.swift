import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

/// Races and faults against real sanlock daemons: three hosts sharing one
/// lease directory, itself a private 32 MiB tmpfs so a test can fill it.
/// One cluster for both suites: joining a lockspace takes seconds. Hosts:
/// 3, or LOCKMGR_RACE_HOSTS (make stress).
@Suite(.serialized, .sanlockCluster(hosts: RaceScale.hosts(default: 3, minimum: 3), leaseDirMiB: 32))
struct SanlockRobustnessTests {}

extension SanlockRobustnessTests {
    @Suite struct Races {
        func cluster() throws -> SanlockCluster { try #require(SanlockCluster.current) }

        /// 20, or LOCKMGR_RACE_ROUNDS (make stress).
        static let rounds = RaceScale.rounds(default: 20)

        /// How sanlock's refusals read, depending on when a loser looked:
        /// the winner's host alive, the lease owned or changing hands on
        /// disk, or (on the winner's own host) held or being acquired.
        static let conflictReasons = [
            "held by another host that is alive", "held by another host", "held by another owner",
            "already held by another process on this host", "another process on this host is acquiring it right now",
        ]

        /// Every host starts a VM on the same disk at the same moment (and
        /// host A a second one, racing on its own daemon too), round after
        /// round. Each round exactly one `lockmgr run` gets the lease and
        /// starts its command; every other one exits 75 saying who holds
        /// it. Checked independently of lockmgr: the winner's daemon holds
        /// the lease for the winner's pid and no other daemon holds it; the
        /// lease on disk went up by exactly one version (one acquisition)
        /// and names the winner's host_id. After the winner exits, no
        /// daemon holds anything and another host takes the lease with
        /// sanlock's own client (then frees it). Round 1 is also the
        /// disk's first use: every contender creates its lease file.
        @Test func racingHostsHaveExactlyOneWinnerEveryRound() throws {
            let c = try cluster()
            let disk = c.disk("race")
            let leaseName = MD5.hex(disk), leaseFile = c.leaseFile(forDisk: disk)
            let contenders = c.hosts + [.a]
            var version: UInt64 = 0
            var wins: [SanlockCluster.Host: Int] = [:]
            var roundTimes: [Double] = []
            var leadersLeftToNextBallot = 0
            for round in 1...Self.rounds {
                let started = Date()
                let race = try RaceRound(c, label: "race-\(round)", contenders, ["--disk", disk])
                let racers = race.racers
                try #require(race.winners.count == 1, "round \(round): \(race.winners.count) winners; \(race.outcomes)")
                let winner = race.winners[0]
                let winnerPid = try #require(winner.readyPid)
                for loser in racers where loser !== winner {
                    #expect(loser.exitStatus == 75, "round \(round), \(loser.host): \(loser.stderr)")
                    let why = loser.stderr
                    #expect(why.contains("cannot acquire lease '\(leaseName)'"), "round \(round), \(loser.host): \(why)")
                    #expect(Self.conflictReasons.contains { why.contains($0) }, "round \(round), \(loser.host): \(why)")
                }

                // The daemons and the disk agree with lockmgr.
                for host in c.hosts {
                    let held = try c.daemon(host).parsedStatus().resources.filter { $0.name == leaseName }
                    if host == winner.host {
                        #expect(held.map(\.ownerPid) == [winnerPid], "round \(round), \(host): \(held)")
                    } else {
                        #expect(held.isEmpty, "round \(round): \(host) also holds the lease: \(held)")
                    }
                }
                let taken = try SanlockLeaseRecord.read(path: leaseFile)
                #expect(taken.version == version + 1, "round \(round): one acquisition expected, disk says \(taken) after v\(version)")
                #expect(taken.ownerID == UInt64(winner.host.hostID) && !taken.isFree, "round \(round): \(taken)")
                version = taken.version
                wins[winner.host, default: 0] += 1

                // The winner's command ends: nothing is left behind anywhere.
                race.finish()
                #expect(winner.hasExited, "round \(round): the winner's command did not end")
                #expect(winner.exitStatus == 0, "round \(round): \(winner.stderr)")
                let released = eventually(timeout: 10) {
                    c.hosts.allSatisfy { (try? c.daemon($0).parsedStatus().resources.isEmpty) == true }
                }
                #expect(released, "round \(round): a lease is still held: \(c.hosts.map { c.daemon($0).status() })")
                // Free on disk: when another host finished the winner's ballot
                // (it wrote the leader record), sanlock releases by marking
                // only the winner's ballot block, which `direct dump` does not
                // show; the leader then still carries a timestamp. So what
                // counts is what other hosts conclude: one of them acquires
                // it with sanlock's own client, no lockmgr involved.
                let leaderLeft = (try? SanlockLeaseRecord.read(path: leaseFile))?.isFree == false
                if leaderLeft { leadersLeftToNextBallot += 1 }
                let prober = c.hosts.first { $0 != winner.host } ?? .b
                let probe = c.daemon(prober).client([
                    "command", "-r", "\(SanlockCluster.lockspace):\(leaseName):\(leaseFile):0",
                    "-c", "/bin/true",
                ])
                #expect(probe.status == 0, "round \(round): \(prober) cannot take the lease after the winner left: \(probe)")
                var after = try SanlockLeaseRecord.read(path: leaseFile)
                let freed = eventually(timeout: 10) {
                    after = (try? SanlockLeaseRecord.read(path: leaseFile)) ?? after
                    return after.isFree
                }
                #expect(freed && after.version == version + 1, "round \(round): after \(prober)'s probe: \(after)")
                version = after.version
                roundTimes.append(Date().timeIntervalSince(started))
            }
            let median = roundTimes.sorted()[roundTimes.count / 2]
            print(
                "sanlock race: \(Self.rounds) rounds, \(contenders.count) contenders on \(c.hosts.count) hosts;",
                "wins \(c.hosts.map { "\($0): \(wins[$0, default: 0])" }.joined(separator: ", "));",
                "\(leadersLeftToNextBallot) releases left the leader record to the next ballot;",
                String(format: "round median %.2f s", median))
        }

        /// A disk's first use by every host at once: each contender finds
        /// no lease file and creates one. Exactly one wins; the others are
        /// refused as conflicts, never with a half-made lease file (sanlock
        /// reading a file still being zero-filled says "Message too long",
        /// one not yet initialised "not initialised"); the file in place is
        /// complete, and no contender's unfinished file is left behind.
        @Test func firstUseOfADiskByEveryHostAtOnce() throws {
            let c = try cluster()
            let contenders = c.hosts + c.hosts + c.hosts
            for round in 1...8 {
                let disk = c.disk("first-use-\(round)")
                let race = try RaceRound(c, label: "first-\(round)", contenders, ["--disk", disk])
                #expect(race.winners.count == 1, "round \(round): \(race.outcomes)")
                #expect(race.racers.filter { $0.exitStatus == 75 }.count == contenders.count - 1, "round \(round): \(race.outcomes)")
                let attributes = try FileManager.default.attributesOfItem(atPath: c.leaseFile(forDisk: disk))
                #expect(attributes[.size] as? Int == 1 << 20)
                race.finish()
                #expect(race.racers.allSatisfy { $0.hasExited })
            }
            let unfinished = try FileManager.default.contentsOfDirectory(atPath: c.leaseDir).filter { $0.hasSuffix(".new") }
            #expect(unfinished.isEmpty, "unfinished lease files left: \(unfinished)")
        }
    }
}

/// `lockmgr run`s on several hosts racing for the same resources, let go
/// at once; settled when all but one ended and that one started its
/// command (or all ended). Their commands run until `finish()`.
final class RaceRound {
    let racers: [Contender]
    private let done: String

    init(_ c: SanlockCluster, label: String, _ contenders: [SanlockCluster.Host], _ args: [String]) throws {
        let gate = StartGate("\(c.dir)/\(label).go")
        let done = "\(c.dir)/\(label).done"
        racers = try contenders.enumerated().map { (i, host) throws -> Contender in
            try c.launchContender(host, name: "\(label)-\(i)", args, gate: gate, payload: SanlockCluster.exitWhenCreated(done))
        }
        self.done = done
        try gate.open(forWaiters: racers.count)
        let settled = eventually(timeout: 30) { [racers] in
            let ended = racers.filter(\.hasExited).count
            return ended == racers.count || (ended == racers.count - 1 && racers.contains { $0.readyPid != nil })
        }
        guard settled else { throw FixtureError("\(label) did not settle: \(outcomes)") }
    }

    var winners: [Contender] { racers.filter { $0.readyPid != nil } }

    var outcomes: String {
        racers.map { "\($0.host): exit \($0.exitStatus.map(String.init) ?? "-") \($0.stderr)" }.joined(separator: "; ")
    }

    /// Ends the winner's command and waits for every racer to be gone.
    func finish() {
        TempDir.write("", to: done)
        _ = eventually(timeout: 10) { [racers] in racers.allSatisfy(\.hasExited) }
    }

    deinit { racers.forEach { $0.stop() } }
}
