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

    /// The service carries out a PR OUT and the connection dies before its
    /// answer arrives (FakeServiceRelay drops it): the call cannot know
    /// whether the command took effect, fails naming the service, and gives
    /// back what it may have taken over direct logins; nothing stays on the LU.
    @Test func aServiceThatDiesBeforeAnsweringAPROutLeavesNothingTaken() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "cut"); defer { service.stop() }
        let relay = try FakeServiceRelay(upstream: service.socket)
        defer { relay.stop() }
        let a = host("svc-cut", relay.socket)
        let syslog = try SyslogListener()
        let acquired = run(a, "acquire", .one, disks: [lun], syslog: syslog)
        #expect(acquired.status == 69, "\(acquired)")
        #expect(acquired.stderr.contains("pr-sessiond at \(relay.socket) stopped answering"), "\(acquired.stderr)")
        #expect(acquired.stderr.contains("may or may not have reached the LU"), "\(acquired.stderr)")
        #expect(relay.forwardedPROut, "the PR OUT reached the service before the answer was lost")
        #expect(try check.reservation(lun) == nil)
        #expect(try check.keys(lun).isEmpty, "the registration the service made was given back")
        #expect(bypassWarnings(syslog).count == 1)
    }

    /// Reads whose answer is lost change nothing: they are asked again
    /// over a direct login, and the call succeeds.
    @Test func readsWhoseAnswerIsLostAreAskedAgainDirectly() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let service = try PRSessionDaemon(label: "reads"); defer { service.stop() }
        let relay = try FakeServiceRelay(upstream: service.socket, dropFirstRead: true)
        defer { relay.stop() }
        let a = host("svc-reads", relay.socket)
        let syslog = try SyslogListener()
        let acquired = run(a, "acquire", .one, disks: [lun], syslog: syslog)
        #expect(acquired.status == 0, "\(acquired)")
        #expect(!relay.forwardedPROut)
        #expect(try check.reservation(lun)?.key == a.key(.one).rawValue)
        let warnings = bypassWarnings(syslog)
        #expect(warnings.count == 1 && warnings[0].contains("stopped answering: connection closed"), "\(warnings)")
        #expect(run(a, "release", .one, disks: [lun], syslog: syslog).status == 0)
        #expect(try check.keys(lun).isEmpty)
    }
}
