import Glibc
import LockDriver
import Testing

/// /proc/<pid>/stat parsing: the command name may hold spaces and ')'.
@Suite struct ProcStatTests {
    @Test func parsesAfterTheLastParenthesis() {
        let line = "4242 (qemu (vm) 1) T 17 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
        #expect(ProcStat.parse(line) == ProcStat(state: "T", parent: 17, startTime: 987654))
        #expect(ProcStat.parse(line)?.isStopped == true)
        #expect(ProcStat.parse("4242 (short) S 1 2") == nil, "too few fields")
        #expect(ProcStat.parse("garbage") == nil)
    }

    @Test func readsThisProcess() throws {
        let me = try #require(ProcStat.read(getpid()))
        #expect(me.parent == getppid())
        #expect(!me.isStopped)
        #expect(ProcStat.read(-1) == nil)
    }
}
