import Foundation
import Glibc
import Harness
import Testing

/// `lockmgr failure-action` tells syslog (ident `lockmgr`) what it does,
/// besides its stderr: a lost lock is an event an administrator must see.
@Suite struct FailureActionSyslogTests {
    @Test func poweroffIsReportedToSyslogNamingTheVM() throws {
        let syslog = try SyslogListener()
        let victim = Process()
        victim.executableURL = URL(fileURLWithPath: "/bin/sleep")
        victim.arguments = ["60"]
        try victim.run()
        defer { if victim.isRunning { victim.terminate() } }
        let pid = victim.processIdentifier
        let result = Command.run(
            [
                BuildProducts.lockmgr, "failure-action", "--action", "poweroff", "--pid", "\(pid)",
                "--name", "vm-syslog", "--reason", "lease lost",
            ],
            environment: ["LOCKMGR_SYSLOG_SOCKET": syslog.path])
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("lockmgr: lock lost for 'vm-syslog' (pid \(pid)): lease lost; applying poweroff"), "\(result)")
        let messages = syslog.messages()
        #expect(messages.count == 1, "\(messages)")
        #expect(messages.first?.hasPrefix("<28>") == true, "daemon.warning: \(messages)")
        #expect(messages.first?.contains(" lockmgr[") == true, "\(messages)")
        #expect(
            messages.first?.hasSuffix("]: lock lost for 'vm-syslog' (pid \(pid)): lease lost; applying poweroff") == true,
            "\(messages)")
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal && victim.terminationStatus == SIGKILL)
    }
}
