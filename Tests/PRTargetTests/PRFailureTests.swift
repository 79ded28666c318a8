import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// Targets that are down or silent, bad state strings and bad configs:
/// clear errors, nothing half-done, and for bad input no SCSI command at all.
@Suite struct PRFailureTests {
    let check = Checker()

    // 10
    @Test func crashedTargetIsAClearBackendErrorWithinTheTimeout() throws {
        let tgt = try TgtTarget()
        let lun = try tgt.addTarget().urls[0]
        tgt.crash()
        let a = PRHost("a", timeoutMilliseconds: 500)
        let started = Date()
        let r = a.lockmgr("acquire", .one, disks: [lun])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains(lun) && r.stderr.contains("login"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func silentTargetTimesOutAndNothingIsHalfDone() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let good = try tgt.addTarget().urls[0]
        let silent = try SilentPortal()
        let dead = "iscsi://127.0.0.1:\(silent.port)/iqn.2026-01.lockmgr.test:silent/1"
        // 1 s: short enough to prove the bound, long enough that the healthy
        // LUN's reads never time out on a loaded 2-core CI machine.
        let a = PRHost("a", timeoutMilliseconds: 1000)
        let started = Date()
        let r = a.lockmgr("acquire", .one, disks: [good, dead])
        let elapsed = Date().timeIntervalSince(started)
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains(dead) && r.stderr.contains("login timed out"), "\(r.stderr)")
        #expect(r.stderr.contains("within 1000 ms (timeout_ms)"), "the error does not name the timeout: \(r.stderr)")
        // Bounded by the configured timeout (plus process start and the
        // healthy LUN's reads), not libiscsi's none.
        print("pr faults: silent target, timeout_ms 1000 → exit \(r.status) in \(Int(elapsed * 1000)) ms")
        #expect(elapsed >= 1.0, "gave up before the configured timeout: \(elapsed) s")
        #expect(elapsed < 1.0 + Sanitizer.slackSeconds, "took \(elapsed) s")
        #expect(silent.connectionsAccepted() == 1)
        // The first LUN was only read: no registration, no reservation.
        #expect(try check.reservation(good) == nil)
        #expect(try check.keys(good).isEmpty)
        #expect(try check.generation(good) == 0)
    }

    // 11
    @Test func badStateStringsAreRejectedBeforeAnyCommand() throws {
        let silent = try SilentPortal()
        let lun = "iscsi://127.0.0.1:\(silent.port)/iqn.2026-01.lockmgr.test:never/1"
        let a = PRHost("a", timeoutMilliseconds: 300)
        let valid = PRState(
            vm: VM.one.uuid,
            entries: [
                .init(resource: lun, key: a.key(.one), type: .writeExclusiveRegistrantsOnly)
            ]
        ).encoded
        let cases: [(String, String)] = [
            ("garbage", "not a pr plugin state"),
            (String(valid.dropLast(9)), "truncated"),
            (valid.replacingOccurrences(of: ",5,", with: ",6,"), "checksum"),
            (valid + String(repeating: "x", count: PRState.maxLength), "limit"),
            ("lockmgr-pr-v1;vm=<script>;sum=0", "not allowed"),
        ]
        for (state, fragment) in cases {
            let r = a.lockmgr("acquire", .one, disks: [lun], state: state)
            #expect(r.status == 65, "\(r)")
            #expect(r.stderr.contains("invalid pr state string") && r.stderr.contains(fragment), "\(r.stderr)")
        }
        // A valid state of another VM.
        let r = a.lockmgr("acquire", .two, disks: [lun], state: valid)
        #expect(r.status == 65 && r.stderr.contains("produced for VM \(VM.one.uuid)"), "\(r)")
        #expect(silent.connectionsAccepted() == 0, "a command reached the target")
        #expect(a.commandsLogged().isEmpty)
    }

    @Test func registerOnlyTouchesNoDevice() throws {
        let silent = try SilentPortal()
        let lun = "iscsi://127.0.0.1:\(silent.port)/iqn.2026-01.lockmgr.test:never/1"
        let a = PRHost("a", timeoutMilliseconds: 300)
        let argv = [
            BuildProducts.lockmgr, "acquire", "--register-only", "--plugin", "pr", "--plugin-dir",
            BuildProducts.pluginDir, "--config-dir", a.configDir, "--uuid", VM.one.uuid.description,
            "--name", "vm1", "--disk", lun,
        ]
        let r = Command.run(argv, timeout: 30)
        #expect(r.status == 0, "\(r)")
        #expect(silent.connectionsAccepted() == 0)
    }

    @Test func badConfigsAndNamesAreClearErrors() throws {
        let lun = "iscsi://127.0.0.1:9/iqn.2026-01.lockmgr.test:never/1"
        let typo = PRHost("typo", config: "exclusive_typ = \"write-exclusive\"")
        let r1 = typo.lockmgr("acquire", .one, disks: [lun])
        #expect(r1.status == 78 && r1.stderr.contains("qemu-pr.conf:4: unknown setting 'exclusive_typ'"), "\(r1)")
        let shared = PRHost("sh", config: "shared_type = \"write-exclusive\"")
        let r2 = shared.lockmgr("acquire", .one, disks: [lun])
        #expect(r2.status == 78 && r2.stderr.contains("qemu-pr.conf:4: 'shared_type' must be an all-registrants"), "\(r2)")
        let a = PRHost("a")
        let r3 = a.lockmgr("acquire", .one, disks: ["iscsi://127.0.0.1:3260/only-target"])
        #expect(r3.status == 65 && r3.stderr.contains("not a valid iscsi://"), "\(r3)")
        let r4 = a.lockmgr("acquire", .one, disks: ["relative/disk.img"])
        #expect(r4.status == 65 && r4.stderr.contains("absolute device path or an iscsi:// URL"), "\(r4)")
        let r5 = a.lockmgr("acquire", .one, disks: [lun, "iscsi://127.0.0.1:9/iqn.2026-01.lockmgr.test:never/2", lun])
        #expect(r5.status == 65 && r5.stderr.contains("disk '\(lun)' was added twice"), "\(r5)")
    }
}

/// A TCP listener that accepts connections and never answers: the iSCSI
/// target that hangs.
final class SilentPortal {
    let fd: Int32
    let port: Int
    private var accepted: [Int32] = []

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok, listen(fd, 16) == 0 else { throw TgtTarget.Failure(description: "silent portal: \(errno)") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit {
        accepted.forEach { close($0) }
        close(fd)
    }

    /// How many connections arrived so far (the kernel completes the
    /// handshake even though nobody reads).
    func connectionsAccepted() -> Int {
        while case let c = accept(fd, nil, nil), c >= 0 { accepted.append(c) }
        return accepted.count
    }
}

/// The built plugin as a host sees it. (The only test loading pr.so into
/// this process: a plugin keeps the config of its first load.)
@Suite struct PRPluginTableTests {
    @Test func exportsTheTableWithUsesState() throws {
        let plugin = try LockPlugin.load(
            name: "pr", pluginDir: BuildProducts.pluginDir,
            configFile: "/nonexistent/qemu-pr.conf")
        #expect(plugin.version == ABIVersion.current)
        #expect(plugin.flags == .usesState)
        let object = LockObject(uuid: VM.one.uuid, name: "vm1", pid: 1)
        let manager = try plugin.makeManager(for: object)
        let lease = #expect(throws: LockError.self) {
            try manager.addResource(.lease(key: "k", lockspace: "ls", path: "/l"))
        }
        #expect(lease?.kind == .unsupported)
        let state = #expect(throws: LockError.self) { try manager.acquire(state: "lockmgr-pr-v1;tampered") }
        #expect(state?.kind == .invalid && state?.message.hasPrefix("pr: invalid pr state string") == true)
    }
}
