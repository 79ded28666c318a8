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

    /// A name may end in a character that Swift joins with the ')' after it
    /// into one Character (U+0600 is a "prepend" mark): the kernel's ')' is
    /// still a byte, and found as one.
    @Test func findsTheParenthesisByByte() {
        let line = "4242 (qemu\u{600}) S 17 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10 1"
        #expect(ProcStat.parse(line) == ProcStat(state: "S", parent: 17, startTime: 987654))
    }

    @Test func readsThisProcess() throws {
        let me = try #require(ProcStat.read(getpid()))
        #expect(me.parent == getppid())
        #expect(!me.isStopped)
        #expect(ProcStat.read(-1) == nil)
    }
}
