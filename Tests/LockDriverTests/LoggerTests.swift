import Foundation
import Glibc
import Harness
import LockDriver
import Testing

/// The one logger: a line to its file (and stderr) and a syslog datagram,
/// read here from a private socket instead of /dev/log.
@Suite struct LoggerTests {
    @Test func sendsOneSyslogDatagramWithFacilityPriorityIdentAndPid() throws {
        let syslog = try SyslogListener()
        let logger = Logger(ident: "lockmgr-pr-keeper", facility: .daemon, stderr: false, syslogSocket: syslog.path)
        logger.log("VM 'vm1' (5a1e0c4e-1111-4a4a-8b8b-000000000001): LOCK LOST", priority: .warning)
        logger.log("keeper exits", priority: .info)
        let messages = syslog.messages()
        #expect(messages.count == 2, "\(messages)")
        // <daemon(3) * 8 + warning(4)> = <28>, then "Mmm dd hh:mm:ss ", then ident[pid]: message.
        let first = try #require(messages.first)
        #expect(first.hasPrefix("<28>"), "\(first)")
        #expect(first.hasSuffix(" lockmgr-pr-keeper[\(getpid())]: VM 'vm1' (5a1e0c4e-1111-4a4a-8b8b-000000000001): LOCK LOST"), "\(first)")
        #expect(messages.last?.hasPrefix("<30>") == true, "daemon.info: \(messages)")
    }

    @Test func authFacilityForChangesOfWhoMayWrite() throws {
        let syslog = try SyslogListener()
        Logger(ident: "lockmgr-pr-tool", facility: .auth, stderr: false, syslogSocket: syslog.path).log("cleared")
        #expect(syslog.messages().first?.hasPrefix("<36>") == true)  // auth(4) * 8 + warning(4)
    }

    @Test func writesTheFileWithAnUTCTimestampEvenWithoutASyslogListener() throws {
        let dir = TempDir.make("logger")
        let logger = Logger(
            ident: "lockmgr", stderr: false, file: "\(dir)/events.log",
            syslogSocket: "\(dir)/no-such-socket")
        logger.log("first")
        logger.log("second")
        let lines = try String(contentsOfFile: "\(dir)/events.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let pattern = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ lockmgr\[\d+\]: first$/#
        #expect(lines.first.map { (try? pattern.wholeMatch(in: String($0))) != nil } == true, "\(lines)")
    }
}
