import Foundation
import Glibc
import Harness
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// pr-sessiond, the per-host service keeping iSCSI sessions logged in,
/// against a real tgtd and real pr-sessiond processes: `lockmgr` calls
/// (each a fresh process, as each libvirt call is a fresh manager) share
/// its one login; its crash and restart lose and leak nothing; a service
/// that is down or stops answering is done without, never silently
/// trusted.
@Suite(.serialized) struct SessionServiceTests {
    let check = Checker()

    func host(_ name: String, _ service: String, keeperInterval: Int? = nil) -> PRHost {
        PRHost(name, config: "iscsi_session_socket = \"\(service)\"", keeperIntervalMilliseconds: keeperInterval)
    }

    func run(
        _ host: PRHost, _ sub: String, _ vm: VM, disks: [String], state: String? = nil, options: [String] = [],
        syslog: SyslogListener
    ) -> CommandResult {
        Command.run(
            host.lockmgrArgv(sub, vm, disks: disks, state: state, options: options),
            environment: ["LOCKMGR_SYSLOG_SOCKET": syslog.path], timeout: 30)
    }

    func bypassWarnings(_ syslog: SyslogListener) -> [String] {
        syslog.messages(timeoutMilliseconds: 200).filter { $0.contains("logging in to the iSCSI targets directly") }
    }

    @Test func acquireHandoverAndReleaseThroughTheServiceShareItsLogins() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let target = try tgt.addTarget(luns: 2)
        let luns = target.urls
        let service = try PRSessionDaemon(label: "share"); defer { service.stop() }
        let a = host("svc-a", service.socket), b = host("svc-b", service.socket)
        let syslog = try SyslogListener()

        #expect(run(a, "acquire", .one, disks: luns, syslog: syslog).status == 0)
        for lun in luns { #expect(try check.reservation(lun)?.key == a.key(.one).rawValue, "\(lun)") }
        let sessionsAfterFirstCall = try tgt.sessions(tid: target.tid)

        let inquired = run(a, "inquire", .one, disks: luns, syslog: syslog)
        #expect(inquired.status == 0, "\(inquired)")
        let state = inquired.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let handover = run(b, "acquire", .one, disks: luns, state: state, syslog: syslog)
        #expect(handover.status == 0, "\(handover)")
        for lun in luns {
            #expect(try check.reservation(lun)?.key == b.key(.one).rawValue, "\(lun)")
            #expect(try check.keys(lun) == [b.key(.one).rawValue], "\(lun): A's registrations must be gone")
        }
        #expect(run(b, "release", .one, disks: luns, syslog: syslog).status == 0)
        for lun in luns {
            #expect(try check.reservation(lun) == nil, "\(lun)")
            #expect(try check.keys(lun).isEmpty, "\(lun)")
        }

        // One login per host (initiator name) for four calls, and the
        // session of A's first call still the one in use.
        #expect(service.logins.count == 2, "\(service.logText)")
        #expect(Set(sessionsAfterFirstCall).isSubset(of: try tgt.sessions(tid: target.tid)))
        #expect(bypassWarnings(syslog).isEmpty)
        #expect(a.commandsLogged().contains("\(luns[0]) PR OUT RESERVE"), "A's commands are logged as before")
    }

    /// On the service's kept session the acquire's registration is still
    /// there at the release: READ RESERVATION shows the VM holds, and the
    /// PREEMPT of its own key goes first, without registering again, the
    /// unregister behind it in the same batch; the PREEMPT still drops
    /// every other registration of the key (here the host's data path,
    /// which must lose its key with the VM). A LU that a call of the same
    /// host reserved with its own login (another nexus) answers that
    /// PREEMPT with RESERVATION CONFLICT (the unregister behind it finds
    /// nothing to drop) and is registered, preempted and unregistered the
    /// long way. Both end with no key and no reservation.
    @Test func aReleaseOnTheKeptSessionPreemptsWithoutRegisteringAgain() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let target = try tgt.addTarget(luns: 2)
        let (kept, elsewhere) = (target.urls[0], target.urls[1])
        let service = try PRSessionDaemon(label: "in-place"); defer { service.stop() }
        let a = host("svc-in-place", service.socket)
        let direct = PRHost("svc-in-place")
        #expect(direct.initiator == a.initiator, "the same host, without the service")
        let syslog = try SyslogListener()

        #expect(run(a, "acquire", .one, disks: [kept], syslog: syslog).status == 0)
        // The service's first command on a LU meets tgt's unit attention for
        // a new session and goes again: have it met before the counted release.
        #expect(run(a, "inquire", .one, disks: [elsewhere], syslog: syslog).status == 0)
        #expect(direct.lockmgr("acquire", .one, disks: [elsewhere]).status == 0)
        let path = try DataPath(a, kept, key: a.key(.one))
        for lun in [kept, elsewhere] { #expect(try check.reservation(lun)?.key == a.key(.one).rawValue, "\(lun)") }
        _ = a.takePROutCount()

        let released = run(a, "release", .one, disks: [kept, elsewhere], syslog: syslog)
        #expect(released.status == 0, "\(released)")
        let sent = a.commandsLogged()
        func sequence(_ lun: String) -> [String] {
            sent.filter { $0.hasPrefix("\(lun) ") }.map { String($0.dropFirst(lun.count + 1)) }
        }
        #expect(
            sequence(kept) == [
                "PR IN READ RESERVATION", "PR OUT PREEMPT", "PR OUT REGISTER AND IGNORE EXISTING KEY",
            ], "\(sent)")
        #expect(
            sequence(elsewhere) == [
                "PR IN READ RESERVATION", "PR OUT PREEMPT", "PR OUT REGISTER AND IGNORE EXISTING KEY",
                "PR OUT REGISTER AND IGNORE EXISTING KEY", "PR OUT PREEMPT", "PR OUT REGISTER AND IGNORE EXISTING KEY",
            ], "\(sent)")
        for lun in [kept, elsewhere] {
            #expect(try check.reservation(lun) == nil, "\(lun)")
            #expect(try check.keys(lun).isEmpty, "\(lun): every registration of the key is gone, the data path's included")
        }
        #expect(released.stdout.contains(kept) && released.stdout.contains(elsewhere), "both held, both in the state: \(released)")
        _ = path
    }

    /// The target ends the service's session while it idles (a target
    /// restart, a network cut): the next call's commands go out on a new
    /// login, not on the dead session.
    @Test func aSessionTheTargetClosedWhileIdleIsReplaced() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let target = try tgt.addTarget()
        let lun = target.urls[0]
        let service = try PRSessionDaemon(label: "idle"); defer { service.stop() }
        let a = host("svc-idle", service.socket)
        let syslog = try SyslogListener()
        #expect(run(a, "acquire", .one, disks: [lun], syslog: syslog).status == 0)
        let sessions = try tgt.sessions(tid: target.tid)
        #expect(sessions.count == 1, "only the service's session is left: \(sessions)")
        for sid in sessions { try tgt.dropSession(tid: target.tid, sid: sid) }
        let released = run(a, "release", .one, disks: [lun], syslog: syslog)
        #expect(released.status == 0, "\(released)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty)
        #expect(service.logText.contains("was closed while idle; logging in again"), "\(service.logText)")
        #expect(service.logins.count == 2, "\(service.logText)")
        #expect(bypassWarnings(syslog).isEmpty)
    }

    /// As systemd starts it from lockmgr-pr-sessiond.socket: the listening
    /// socket is fd 3, named by LISTEN_PID and LISTEN_FDS (python3 plays
    /// systemd's part). Without a socket either way it refuses to start.
    @Test func socketActivationServesOnThePassedSocket() throws {
        let program = "\(BuildProducts.binDir)/pr-sessiond"
        let bare = Command.run([program], timeout: 10)
        #expect(bare.status == 64, "\(bare)")
        #expect(bare.stderr.contains("no socket: pass --socket PATH, or start it from lockmgr-pr-sessiond.socket"), "\(bare)")

        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let dir = TempDir.make("svc-activation")
        let socket = "\(dir)/pr-sessiond.sock"
        let systemd = """
            import os, socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.bind(sys.argv[1])
            s.listen(16)
            os.dup2(s.fileno(), 3)
            os.set_inheritable(3, True)
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.environ["LISTEN_FDS"] = "1"
            os.execv(sys.argv[2], [sys.argv[2]])
            """
        let service = try SpawnedProcess(["/usr/bin/env", "python3", "-c", systemd, socket, program], output: "\(dir)/log")
        defer { service.stop() }
        #expect(eventually { FileManager.default.fileExists(atPath: socket) })
        let a = host("svc-activated", socket)
        let syslog = try SyslogListener()
        #expect(run(a, "acquire", .one, disks: [lun], syslog: syslog).status == 0)
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(run(a, "release", .one, disks: [lun], syslog: syslog).status == 0)
        #expect(try check.keys(lun).isEmpty)
        let log = (try? String(contentsOfFile: "\(dir)/log", encoding: .utf8)) ?? ""
        #expect(log.contains(": logged in to "), "the activated service carried the commands: \(log)")
        #expect(bypassWarnings(syslog).isEmpty)
    }

    /// The service holds no lock state: killed while a VM holds its LU,
    /// the reservation stays on the LU, and the restarted service (same
    /// socket, a dead instance's file replaced) releases it.
    @Test func aCrashedAndRestartedServiceLosesAndLeaksNothing() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "restart"); defer { service.stop() }
        let a = host("svc-restart", service.socket)
        let syslog = try SyslogListener()

        #expect(run(a, "acquire", .one, disks: [lun], syslog: syslog).status == 0)
        service.crash()
        #expect(FileManager.default.fileExists(atPath: service.socket), "a crash leaves the socket file")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue, "the reservation outlives the service")

        try service.start()
        let released = run(a, "release", .one, disks: [lun], syslog: syslog)
        #expect(released.status == 0, "\(released)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty, "no registration leaked on the dead instance's session")
        #expect(service.logins.count == 2, "one login per instance: \(service.logText)")
        #expect(bypassWarnings(syslog).isEmpty, "the restarted service was used")
    }

    /// A VM under its keeper while the service crashes: the keeper reads
    /// on its own session, takes nothing for a lost lock, and gives the
    /// reservation back when the VM exits with the service still down.
    @Test func theKeeperGivesBackWhileTheServiceIsDown() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "keeper"); defer { service.stop() }
        let a = host("svc-keeper", service.socket, keeperInterval: 100)
        let vm = try RunningVM(a, .one, lun)
        defer { vm.kill() }
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        service.crash()
        usleep(500_000)  // five keeper rounds without the service
        #expect(vm.isRunning, "the keeper took the service's crash for a lost lock: \(keeperLog(a))")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        vm.finish()
        #expect(eventually { (try? check.reservation(lun)) == .some(nil) }, "still reserved after the VM exited: \(keeperLog(a))")
        #expect(try check.keys(lun).isEmpty)
        #expect(eventually { keeper(a, .one) == nil }, "the keeper left")
    }

    /// No service at the configured path (no file, or a dead instance's
    /// socket file): the call logs in itself, succeeds, and syslog says why.
    @Test func aServiceThatIsDownIsDoneWithoutAndSaysSo() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let dead = try PRSessionDaemon(label: "dead")
        dead.crash()
        let missing = TempDir.make("svc-missing") + "/pr-sessiond.sock"
        for (socket, reason) in [(missing, "No such file or directory"), (dead.socket, "Connection refused")] {
            let a = host("svc-down", socket)
            let syslog = try SyslogListener()
            let acquired = run(a, "acquire", .one, disks: [lun], syslog: syslog)
            #expect(acquired.status == 0, "\(acquired)")
            #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
            let warnings = bypassWarnings(syslog)
            #expect(warnings.count == 1, "\(warnings)")
            #expect(warnings.first?.contains("pr-sessiond at \(socket) cannot be reached") == true, "\(warnings)")
            #expect(warnings.first?.contains(reason) == true, "\(warnings)")
            #expect(run(a, "release", .one, disks: [lun], syslog: syslog).status == 0)
            #expect(try check.reservation(lun) == nil)
            #expect(try check.keys(lun).isEmpty)
        }
    }

    /// The service carries out an acquire (or an inquire) and the
    /// connection dies before its answer arrives (FakeServiceRelay drops
    /// it): the plugin runs the operation again itself, which is safe
    /// because every decision comes from fresh reads (the acquire finds
    /// its own reservation and keeps it). Syslog says why.
    @Test(arguments: [SessionWire.Operation.acquire, .inquire])
    func anAcquireOrInquireWhoseAnswerIsLostIsRunAgainByThePlugin(_ dropped: SessionWire.Operation) throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "lost-\(dropped)"); defer { service.stop() }
        let relay = try FakeServiceRelay(upstream: service.socket, .dropAnswer(dropped))
        defer { relay.stop() }
        let a = host("svc-lost", relay.socket)
        let syslog = try SyslogListener()
        let acquired = run(a, "acquire", .one, disks: [lun], syslog: syslog)
        #expect(acquired.status == 0, "\(acquired)")
        let inquired = run(a, "inquire", .one, disks: [lun], syslog: syslog)
        #expect(inquired.status == 0, "\(inquired)")
        #expect(try PRState(decoding: inquired.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).entries.map(\.key) == [a.key(.one)])
        #expect(relay.faultPlayed)
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        let warnings = bypassWarnings(syslog)
        #expect(warnings.count == 1 && warnings[0].contains("stopped answering during the \(dropped): connection closed"), "\(warnings)")
        #expect(run(a, "release", .one, disks: [lun], syslog: syslog).status == 0)
        #expect(try check.keys(lun).isEmpty)
    }

    /// A release whose answer is lost: its answer was the state string a
    /// migration carries, so the call fails, saying the release may or may
    /// not have happened, rather than make one up. (The keeper, when on,
    /// still gives back what stays; here the service did release.)
    @Test func aReleaseWhoseAnswerIsLostFailsClearly() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "lost-release"); defer { service.stop() }
        let relay = try FakeServiceRelay(upstream: service.socket, .dropAnswer(.release))
        defer { relay.stop() }
        let a = host("svc-lost-release", relay.socket)
        let syslog = try SyslogListener()
        #expect(run(a, "acquire", .one, disks: [lun], syslog: syslog).status == 0)
        let released = run(a, "release", .one, disks: [lun], syslog: syslog)
        #expect(released.status == 69, "\(released)")
        #expect(released.stderr.contains("pr-sessiond at \(relay.socket) stopped answering during the release"), "\(released.stderr)")
        #expect(released.stderr.contains("the release may or may not have been carried out"), "\(released.stderr)")
        #expect(relay.faultPlayed)
        #expect(try check.reservation(lun) == nil, "the service did release")
        #expect(try check.keys(lun).isEmpty)
    }

    /// The plugin waits for an answer only so long (about nine timeouts),
    /// then fails the call and hangs up. An acquire that reaches the
    /// service in time but waits there behind another operation on its
    /// target (here an inquire of the same host, held up by a frozen tgtd)
    /// must not be carried out once it gets its turn, or a VM that libvirt
    /// was told did not start would hold its disk.
    @Test func anAcquireThePluginStoppedWaitingForIsNotStarted() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "late"); defer { service.stop() }
        let config = "iscsi_session_socket = \"\(service.socket)\""
        // The same host (initiator name), so the same session and its lock in the service.
        let blocker = PRHost("svc-late", config: config, timeoutMilliseconds: 10_000)
        // timeout_ms 100: the plugin waits 9 × 100 ms + 2 s.
        let late = PRHost("svc-late", config: config, timeoutMilliseconds: 100)
        #expect(blocker.initiator == late.initiator)
        let syslog = try SyslogListener()
        #expect(run(blocker, "inquire", .one, disks: [lun], syslog: syslog).status == 0, "the service logs in")

        tgt.freeze()
        /// The blocker's result, written before `done` is signalled.
        final class Background: @unchecked Sendable {
            var result: CommandResult?
            let done = DispatchSemaphore(value: 0)
        }
        let background = Background()
        let argv = blocker.lockmgrArgv("inquire", .one, disks: [lun], state: nil, options: [])
        let environment = ["LOCKMGR_SYSLOG_SOCKET": syslog.path]
        Thread.detachNewThread {
            background.result = Command.run(argv, environment: environment, timeout: 30)
            background.done.signal()
        }
        #expect(
            eventually(timeout: 10) { Self.unreadAtTarget(port: tgt.port) },
            "the blocker's inquire holds the target's session, its commands waiting at the frozen tgtd")
        let acquired = run(late, "acquire", .one, disks: [lun], syslog: syslog)
        tgt.thaw()
        #expect(background.done.wait(timeout: .now() + 20) == .success, "the blocker finished once tgtd was thawed")
        #expect(background.result?.status == 0, "\(String(describing: background.result))")

        #expect(acquired.status == 69, "\(acquired)")
        #expect(acquired.stderr.contains("stopped answering during the acquire: no answer in time"), "\(acquired.stderr)")
        #expect(acquired.stderr.contains("the acquire may or may not have been carried out"), "\(acquired.stderr)")
        #expect(
            eventually(timeout: 10) { service.logText.contains("the plugin stopped waiting before it could start; not started") },
            "\(service.logText)")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty, "nothing was registered for a call that failed")
    }

    /// Whether bytes sent to the target's portal wait unread there (the
    /// receive queue of a frozen tgtd's connection, from /proc/net/tcp,
    /// read to its end: with the suites running in parallel the file is
    /// long, and String(contentsOfFile:) gave back only its first lines).
    static func unreadAtTarget(port: Int) -> Bool {
        guard case .success(let text) = FileText.read("/proc/net/tcp") else { return false }
        let local = String(format: ":%04X", port)
        return text.split(separator: "\n").dropFirst().contains { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[1].hasSuffix(local) else { return false }
            let queues = fields[4].split(separator: ":")
            return queues.count == 2 && (Int(queues[1], radix: 16) ?? 0) > 0
        }
    }

    /// Operations stuck on a target that never answers (a listener that
    /// accepts nothing: every login waits its timeout) hold their workers;
    /// the pool grows, so an operation on a healthy target still runs at
    /// once rather than queue behind them.
    @Test func operationsStuckOnAHungTargetDoNotHoldUpOthers() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let blackHole = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(blackHole) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(blackHole, $0, length) == 0 && listen(blackHole, 64) == 0 && getsockname(blackHole, $0, &length) == 0
            }
        }
        try #require(listening)
        let hung = "iscsi://127.0.0.1:\(UInt16(bigEndian: address.sin_port))/iqn.2026-01.lockmgr.test:hung/1"
        let service = try PRSessionDaemon(label: "hung"); defer { service.stop() }
        // Each stuck operation holds its worker for at least one login timeout.
        let timeout = 15.0
        let a = PRHost(
            "svc-hung", config: "iscsi_session_socket = \"\(service.socket)\"", timeoutMilliseconds: Int(timeout * 1000))
        let stuck = try (1...6).map { i in
            let vm = VM(uuid: UUIDBytes("5a1e0c4e-3333-4a4a-8b8b-00000000000\(i)")!, name: "stuck\(i)")
            return try SpawnedProcess(a.lockmgrArgv("acquire", vm, disks: [hung]))
        }
        defer { for p in stuck { p.stop(SIGKILL) } }
        // Each has connected to the service (its one socket) and waits.
        let connected = eventually(timeout: 20) { stuck.allSatisfy { Self.socketCount($0.pid) >= 1 } }
        try #require(connected, "the stuck calls did not reach the service")
        let allWaiting = stuck.allSatisfy { $0.isRunning }
        #expect(allWaiting, "the hung target answered")
        let started = Date()
        let syslog = try SyslogListener()
        let healthy = run(a, "acquire", .one, disks: [lun], syslog: syslog)
        let took = Date().timeIntervalSince(started)
        #expect(healthy.status == 0, "\(healthy)")
        // Queued behind the stuck ones it would wait at least one timeout.
        #expect(took < timeout * 2 / 3, "the healthy target's acquire waited \(took) s behind the hung ones")
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        #expect(bypassWarnings(syslog).isEmpty, "it went through the service")
        #expect(run(a, "release", .one, disks: [lun], syslog: syslog).status == 0)
    }

    /// Sockets among a process's open files.
    static func socketCount(_ pid: pid_t) -> Int {
        let dir = "/proc/\(pid)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\($0)")) ?? "").hasPrefix("socket:") }
            .count
    }
}
