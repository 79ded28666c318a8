import Foundation
import Harness
import Testing

/// pr-tool's command line: bad input is refused with the shared usage
/// status (64) before any session is opened (the URL below has no target:
/// reaching it would fail differently), and the versions agree.
@Suite struct PRToolTests {
    let tool = "\(BuildProducts.binDir)/pr-tool"
    let nowhere = "iscsi://127.0.0.1:1/iqn.2026-01.lockmgr.test:nowhere/1"

    @Test func badNumbersAndCommandsAreRefusedBeforeAnythingIsSent() {
        for (args, message) in [
            (["--isid", "x", nowhere, "keys"], "The value 'x' is invalid for '--isid <n>'"),
            (["--timeout", "-5", nowhere, "keys"], "--timeout"),
            ([nowhere, "reserve", "1", "9"], "reserve: '9' is not a reservation type"),
            ([nowhere, "register", "zz", "1"], "register: 'zz' is not a hex key"),
            ([nowhere, "keys", "frobnicate"], "unknown command 'frobnicate'"),
            ([nowhere], "name at least one command"),
            (["http://x/y", "keys"], "iscsi://"),
            (["clear-host", "--config", "/dev/null", "--dead-host-id", "0", nowhere], "--dead-host-id must be 1..4294967295"),
            (["clear-host", "--config", "/dev/null", nowhere], "give one of --dead-host IQN or --dead-host-id N"),
        ] {
            let r = Command.run([tool] + args, timeout: 30)
            #expect(r.status == 64, "\(args): \(r)")
            #expect(r.stderr.contains(message), "\(args): missing '\(message)' in \(r.stderr)")
        }
    }

    @Test func keyPrintsThePluginsKeyAsTextOrJSON() throws {
        let uuid = "3bd9b2e0-8f59-4d3a-9a7c-111111111111"
        let text = Command.run([tool, "key", "--initiator", "iqn.2026-01.lockmgr.test:a", uuid])
        #expect(text.status == 0 && text.stdout.count == 17, "\(text)")
        let json = Command.run([tool, "key", "--json", "--initiator", "iqn.2026-01.lockmgr.test:a", uuid])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: String]
        #expect(object?["key"] == text.stdout.trimmingCharacters(in: .newlines), "\(json)")
    }

    @Test func lockmgrAndPRToolPrintTheSameVersion() {
        let ours = Command.run([tool, "--version"]), lockmgr = Command.run([BuildProducts.lockmgr, "--version"])
        #expect(ours.status == 0 && !ours.stdout.isEmpty, "\(ours)")
        #expect(ours.stdout == lockmgr.stdout)
    }
}
