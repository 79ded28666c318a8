import Foundation
import Harness
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// A simulated host: one iSCSI initiator name, its own config dir with a
/// `qemu-pr.conf`, and `lockmgr` subprocesses using the built pr plugin.
/// Each call is a fresh process, as each libvirt call is a fresh manager.
struct PRHost {
    let name: String
    let initiator: String
    let configDir: String
    let commandLog: String

    /// The keeper's directory; nil when this host runs without keepers
    /// (`keeper = 0`: the algorithm suites, where a reservation taken by a
    /// short-lived `lockmgr acquire` must stay for the test to look at).
    let keeperDir: String?

    init(_ name: String, config extra: String = "", timeoutMilliseconds: Int = 10_000, keeperIntervalMilliseconds: Int? = nil) {
        self.name = name
        initiator = "iqn.2026-01.lockmgr.test:host-\(name)"
        let dir = TempDir.make("pr-host-\(name)")
        configDir = dir
        commandLog = "\(dir)/commands.log"
        keeperDir = keeperIntervalMilliseconds.map { _ in "\(dir)/keeper" }
        let keeper =
            keeperIntervalMilliseconds.map {
                """
                keeper_dir = "\(dir)/keeper"
                keeper_path = "\(BuildProducts.binDir)/pr-keeper"
                keeper_interval_ms = \($0)
                """
            } ?? "keeper = 0"
        TempDir.write(
            """
            iscsi_initiator = "\(initiator)"
            timeout_ms = \(timeoutMilliseconds)
            command_log = "\(commandLog)"
            \(extra)
            \(keeper)
            """, to: "\(configDir)/qemu-pr.conf")
    }

    var configFile: String { "\(configDir)/qemu-pr.conf" }

    func key(_ vm: VM) -> PRKey { .exclusive(vm: vm.uuid, host: PRKey.hostPart(ofIdentity: initiator)) }
    var sharedKey: PRKey { .shared(host: PRKey.hostPart(ofIdentity: initiator)) }

    /// Runs `lockmgr <sub> --plugin pr ...` for `vm`.
    @discardableResult
    func lockmgr(
        _ sub: String, _ vm: VM, disks: [String] = [], shared: [String] = [], readonly: [String] = [],
        state: String? = nil, options: [String] = [], command: [String] = []
    ) -> CommandResult {
        Command.run(
            lockmgrArgv(
                sub, vm, disks: disks, shared: shared, readonly: readonly, state: state,
                options: options, command: command), timeout: 30)
    }

    func lockmgrArgv(
        _ sub: String, _ vm: VM, disks: [String] = [], shared: [String] = [], readonly: [String] = [],
        state: String? = nil, options: [String] = [], command: [String] = []
    ) -> [String] {
        var argv = [
            BuildProducts.lockmgr, sub, "--plugin", "pr", "--plugin-dir", BuildProducts.pluginDir,
            "--config-dir", configDir, "--uuid", vm.uuid.description, "--name", vm.name,
        ]
        argv +=
            disks.flatMap { ["--disk", $0] } + shared.flatMap { ["--shared-disk", $0] }
            + readonly.flatMap { ["--readonly-disk", $0] }
        if let state { argv += ["--state", state] }
        argv += options
        if !command.isEmpty { argv += ["--"] + command }
        return argv
    }

    /// PR OUT commands the plugin logged since the last call (then forgets them).
    func takePROutCount() -> Int {
        let text = (try? String(contentsOfFile: commandLog, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: commandLog)
        return text.split(separator: "\n").filter { $0.contains(" PR OUT ") }.count
    }

    func commandsLogged() -> [String] {
        ((try? String(contentsOfFile: commandLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

// MARK: keepers and processes, as the tests look at them

/// The pid of the running keeper of `vm` on `host`, if any.
func keeper(_ host: PRHost, _ vm: VM) -> Int32? {
    host.keeperDir.flatMap { KeeperStore(dir: $0).runningKeeper(vm.uuid) }
}

func keeperLog(_ host: PRHost) -> String {
    host.keeperDir.flatMap { try? String(contentsOfFile: "\($0)/keeper.log", encoding: .utf8) } ?? ""
}

/// Polls `condition` until it holds or `timeout` seconds pass.
func eventually(timeout: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The state letter of /proc/<pid>/stat ("T" = stopped).
func processState(_ pid: Int32) -> String? { ProcStat.read(pid).map { String($0.state) } }

struct VM {
    let uuid: UUIDBytes
    let name: String
    static let one = VM(uuid: UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-000000000001")!, name: "vm1")
    static let two = VM(uuid: UUIDBytes("5a1e0c4e-2222-4a4a-8b8b-000000000002")!, name: "vm2")
}

/// Independent checks: its own iSCSI sessions and raw PR IN / WRITE
/// commands through PRTransport's transport and PRProtocol's encoder, none of the plugin's
/// algorithm.
final class Checker {
    let pool = ISCSISessionPool(initiator: "iqn.2026-01.lockmgr.test:checker", isidQualifier: 9)
    deinit { pool.closeAll() }

    func device(_ url: String) throws -> PRDevice {
        PRDevice(transport: ISCSITransport(url: try ISCSIURL(parsing: url), pool: pool), timeoutMilliseconds: 3000)
    }

    func reservation(_ url: String) throws -> ReservationStatus.Holder? { try device(url).readReservation().reservation }
    func keys(_ url: String) throws -> [UInt64] { try device(url).readKeys().keys }
    func generation(_ url: String) throws -> UInt32 { try device(url).readKeys().generation }
}

/// A host's I/O path to a LUN: its own session (its own I_T nexus on tgt)
/// with the host's initiator name, registered with the host's key the way
/// a host registers each of its paths. Under the registrants-only types it
/// may write while its key is registered, and is fenced once the key is
/// preempted.
final class DataPath {
    let pool: ISCSISessionPool
    let device: PRDevice

    init(_ host: PRHost, _ url: String, key: PRKey?) throws {
        pool = ISCSISessionPool(initiator: host.initiator, isidQualifier: 5)
        device = PRDevice(transport: ISCSITransport(url: try ISCSIURL(parsing: url), pool: pool), timeoutMilliseconds: 3000)
        if let key {
            guard try device.prOut(.registerAndIgnore, key: 0, serviceActionKey: key.rawValue) else {
                throw TgtTarget.Failure(description: "data path of \(host.name) could not register \(key)")
            }
        }
    }

    deinit { pool.closeAll() }

    /// WRITE(10) of one block: GOOD or RESERVATION CONFLICT (unit attentions drained).
    func write() throws -> SCSIOutcome {
        try device.execute(.write10(lba: 0, blocks: 1, data: [UInt8](repeating: 0xA5, count: 512)))
    }
}
