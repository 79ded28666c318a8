import Glibc
import LockDriver
import Testing

/// `Spawn.wait`: the status of our own child within a deadline, and
/// nothing of a process that is not our child. Real processes (/bin/sh).
@Suite struct SpawnWaitTests {
    private func spawnShell(_ script: String) throws -> pid_t {
        try Spawn.start(["/bin/sh", "-c", script], output: "/dev/null").get()
    }

    @Test func givesTheExitStatusOfAChildThatExitsLater() throws {
        // Still running at the first waitpid: the status comes from the wait itself.
        let pid = try spawnShell("sleep 0.2; exit 7")
        #expect(Spawn.wait(pid, timeoutMilliseconds: 10_000) == 7)
    }

    @Test func givesOneHundredTwentyEightPlusTheSignalOfAKilledChild() throws {
        let pid = try spawnShell("kill -TERM $$; sleep 5")
        #expect(Spawn.wait(pid, timeoutMilliseconds: 10_000) == 128 + SIGTERM)
    }

    @Test func killsAndReapsAChildThatOutlivesTheTimeout() throws {
        let pid = try spawnShell("exec sleep 30")
        let started = Self.monotonicMilliseconds()
        #expect(Spawn.wait(pid, timeoutMilliseconds: 200) == nil)
        // Gone and reaped: no zombie left under its number.
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
        // Well before the child's own 30 s: the deadline ended the wait.
        #expect(Self.monotonicMilliseconds() - started < 20_000)
    }

    @Test func knowsNothingOfAProcessThatIsNotItsChild() {
        let parent = getppid()
        #expect(Spawn.wait(parent, timeoutMilliseconds: 100) == nil)
        #expect(kill(parent, 0) == 0, "the test's parent must not be signalled")
    }

    private static func monotonicMilliseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}
