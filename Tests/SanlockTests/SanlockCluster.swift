import Foundation
import LockDriver
import SanlockCore
import Testing
import TestSupport

/// Two sanlock "hosts" sharing one lease directory: daemons A (host_id 1)
/// and B (host_id 2), each with its own run directory, both joined to
/// `__LIBVIRT__DISKS__`. Every plugin call runs in a `lockmgr` subprocess
/// with the host's SANLOCK_RUN_DIR: the test process itself sets no
/// process-wide state (environment, libvirt's plugin statics) that other
/// suites in the same runner would see. Joins take seconds, so one
/// cluster serves a whole suite.
final class SanlockCluster: @unchecked Sendable {
    @TaskLocal static var current: SanlockCluster?

    enum Host { case a, b }

    static let lockspace = SanlockLease.autoLockspace

    let dir: String
    let leaseDir: String
    let a: SanlockDaemon
    let b: SanlockDaemon
    /// Plugin config directories (qemu-sanlock.conf) of host A and B.
    let configDirA: String
    let configDirB: String
    /// Every run of the failure helper appends its arguments here.
    let helperLog: String
    /// An initialised explicit lease in the auto lockspace.
    let explicitLease: String

    init() throws {
        dir = TempDir.make("sanlock-cluster")
        leaseDir = "\(dir)/leases"
        configDirA = "\(dir)/etc-a"
        configDirB = "\(dir)/etc-b"
        for d in [leaseDir, configDirA, configDirB] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        helperLog = "\(dir)/failure-helper.log"
        let helper = "\(dir)/failure-helper"
        // The daemon runs it with its own environment; LOCKMGR_PLUGIN_DIR
        // stands for an installed layout (lockmgr beside lib/lock_manager).
        TempDir.write("""
            #!/bin/sh
            echo "$@" >> \(helperLog)
            LOCKMGR_PLUGIN_DIR=\(BuildProducts.pluginDir) exec \(BuildProducts.lockmgr) "$@"

            """, to: helper)
        chmod(helper, 0o755)
        for (configDir, hostID) in [(configDirA, 1), (configDirB, 2)] {
            TempDir.write("""
                # libvirt's keys, as in /etc/libvirt/qemu-sanlock.conf
                auto_disk_leases = 1
                disk_lease_dir = "\(leaseDir)"
                host_id = \(hostID)
                io_timeout = 1
                failure_helper = "\(helper)"

                """, to: "\(configDir)/qemu-sanlock.conf")
        }

        let tag = "\(getpid())"
        a = try SanlockDaemon(name: "lockmgr-test-a-\(tag)")
        b = try SanlockDaemon(name: "lockmgr-test-b-\(tag)")
        // Our plugin creates __LIBVIRT__DISKS__ as libvirt would and joins it as host 1.
        let info = Command.run([BuildProducts.lockmgr, "info", "sanlock", "--plugin-dir", BuildProducts.pluginDir,
                                "--config-dir", configDirA], environment: a.environment, timeout: 60)
        guard info.status == 0 else {
            throw SanlockDaemon.Failure(description: "our plugin could not set up the lockspace on host A: \(info)")
        }
        try b.join(Self.lockspace, hostID: 2, path: SanlockLease.autoLockspacePath(leaseDir: leaseDir))
        explicitLease = "\(dir)/explicit-1.lease"
        try a.initLease(lockspace: Self.lockspace, name: "explicit-1", path: explicitLease)
    }

    func stop() {
        a.stop()
        b.stop()
    }

    func daemon(_ host: Host) -> SanlockDaemon { host == .a ? a : b }

    func configDir(_ host: Host) -> String { host == .a ? configDirA : configDirB }

    /// A disk path no other test uses.
    func disk(_ label: String) -> String { "/images/\(label)-\(UUID().uuidString.prefix(8)).img" }

    func leaseFile(forDisk disk: String) -> String { "\(leaseDir)/\(MD5.hex(disk))" }

    /// `lockmgr SUBCOMMAND` with our sanlock plugin (or, with `pluginDir`,
    /// libvirt's) as `host`.
    @discardableResult
    func lockmgr(_ host: Host, _ subcommand: String, _ args: [String], name: String = "vm-cli",
                 configDir: String? = nil, pluginDir: String = BuildProducts.pluginDir,
                 environment: [String: String]? = nil) -> CommandResult {
        Command.run([BuildProducts.lockmgr, subcommand] + hostOptions(host, configDir: configDir, pluginDir: pluginDir)
                    + ["--uuid", UUID().uuidString, "--name", name] + args,
                    environment: environment ?? daemon(host).environment, timeout: 60)
    }

    /// The state `lockmgr inquire` or `release` printed for `pid`; nil when
    /// it printed none. Fails the test if the command failed.
    func state(_ host: Host, _ subcommand: String, pid: Int32, _ args: [String],
               pluginDir: String = BuildProducts.pluginDir) -> String? {
        let r = lockmgr(host, subcommand, ["--pid", "\(pid)"] + args, pluginDir: pluginDir)
        #expect(r.status == 0, "lockmgr \(subcommand) failed: \(r)")
        let text = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    func hostOptions(_ host: Host, configDir: String? = nil, pluginDir: String = BuildProducts.pluginDir) -> [String] {
        ["--plugin", "sanlock", "--plugin-dir", pluginDir, "--config-dir", configDir ?? self.configDir(host)]
    }

    /// Starts a VM-like process under `lockmgr run` on `host`: lockmgr
    /// acquires in its own process, then execs the payload, which reports
    /// its pid. Throws with lockmgr's message if the acquire fails.
    func startVM(_ host: Host, name: String, _ args: [String], payload: [String] = ["sleep", "300"]) throws -> VM {
        let vm = try launchVM(host, name: name, args, payload: payload)
        guard vm.waitReady(timeout: 30) else {
            vm.stop()
            let message = String(decoding: vm.stderr.availableData, as: UTF8.self)
            throw SanlockDaemon.Failure(description: "lockmgr run \(args) failed: \(message)")
        }
        return vm
    }

    /// `lockmgr run` on `host`, not waiting for it: the payload reports
    /// ready (`VM.waitReady`) once lockmgr has acquired and exec'd it.
    func launchVM(_ host: Host, name: String, _ args: [String], payload: [String] = ["sleep", "300"]) throws -> VM {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuildProducts.lockmgr)
        process.arguments = ["run"] + hostOptions(host) + ["--uuid", UUID().uuidString, "--name", name] + args
            + ["--", "/bin/sh", "-c", "echo ready $$; exec \"$@\"", "sh"] + payload
        var env = ProcessInfo.processInfo.environment
        env["SANLOCK_RUN_DIR"] = daemon(host).runDir
        process.environment = env
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        return VM(process: process, input: input, output: out.fileHandleForReading, stderr: err.fileHandleForReading)
    }

    /// Revokes the lease a one-lease `state` describes, as another owner
    /// would: a graceful request (force mode 2) for the next version makes
    /// the holder's daemon run the holder's failure helper instead of SIGKILL.
    func revoke(_ host: Host, state: String) {
        let resource = state.split(separator: ":").dropLast().joined(separator: ":")
        daemon(host).client(["request", "-r", "\(resource):\((leaseVersion(state) ?? 0) + 1)", "-f", "2"])
        daemon(host).client(["examine", "-r", resource])
    }

    /// A VM payload that exits by itself (status 0) once `file` exists.
    /// Not EOF on stdin: the write end of a pipe leaks into every child the
    /// test runner spawns meanwhile (a libvirtd of a concurrent suite keeps
    /// it open for good), so the EOF may never come.
    static func exitWhenCreated(_ file: String) -> [String] {
        ["sh", "-c", "until [ -e \"$0\" ]; do sleep 0.05; done", file]
    }

    /// The client block of `pid` in `sanlock client status -D`.
    func clientStatus(_ host: Host, pid: Int32) -> String {
        let text = daemon(host).status()
        guard let start = text.range(of: "\np \(pid) ") else { return "" }
        let rest = text[start.upperBound...]
        let end = rest.range(of: "\np ")?.lowerBound ?? rest.range(of: "\ns ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }
}

/// A process started under `lockmgr run`.
final class VM: @unchecked Sendable {
    let process: Process
    let input: Pipe
    let stderr: FileHandle
    private(set) var reportedPid: Int32 = -1
    private let firstLine: FirstLine

    init(process: Process, input: Pipe, output: FileHandle, stderr: FileHandle) {
        self.process = process
        self.input = input
        self.stderr = stderr
        firstLine = FirstLine(output)
    }

    /// Whether the payload reported "ready PID" within `timeout`: lockmgr
    /// acquired and exec'd it.
    func waitReady(timeout: TimeInterval) -> Bool {
        guard let line = firstLine.wait(timeout: timeout), line.hasPrefix("ready ") else { return false }
        reportedPid = Int32(line.dropFirst("ready ".count).trimmingCharacters(in: .whitespaces)) ?? -1
        return true
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for the process to end; false on timeout.
    func waitForExit(timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// The lease version at the end of a one-lease state string.
func leaseVersion(_ state: String?) -> UInt64? {
    state?.split(separator: ":").last.flatMap { UInt64($0) }
}

/// The first line of a pipe, read in the background (not by the VM,
/// whose deinit must stay free to stop the process).
private final class FirstLine: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var line = ""

    init(_ handle: FileHandle) {
        DispatchQueue.global().async { [self] in
            while true {
                let byte = handle.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line += String(decoding: byte, as: UTF8.self)
            }
            done.signal()
        }
    }

    /// The line once read, nil if not within `timeout`; ready at once on later calls.
    func wait(timeout: TimeInterval) -> String? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        done.signal()
        return line
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if condition() { return true }
        usleep(100_000)
    } while Date() < deadline
    return false
}

/// Runs a suite inside one cluster, started before its first test and
/// stopped after its last.
struct SanlockClusterTrait: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let cluster = try SanlockCluster()
        defer { cluster.stop() }
        try await SanlockCluster.$current.withValue(cluster) { try await function() }
    }
}

extension Trait where Self == SanlockClusterTrait {
    static var sanlockCluster: Self { Self() }
}
