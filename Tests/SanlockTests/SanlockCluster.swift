import Foundation
import Harness
import LockDriver
import SanlockCore
import Testing

/// Sanlock "hosts" sharing one lease directory: daemons A (host_id 1), B
/// (host_id 2) and, for suites that ask, more, each with its own run
/// directory, all joined to `__LIBVIRT__DISKS__`. Every plugin call runs
/// in a `lockmgr` subprocess with the host's SANLOCK_RUN_DIR: the test
/// process itself sets no process-wide state (environment, libvirt's
/// plugin statics) that other suites in the same runner would see. Joins
/// take seconds, so one cluster serves a whole suite.
final class SanlockCluster: @unchecked Sendable {
    @TaskLocal static var current: SanlockCluster?

    /// One simulated host: its daemon, plugin config and host_id (index + 1).
    struct Host: Hashable, Sendable, CustomStringConvertible {
        let index: Int
        static let a = Host(index: 0), b = Host(index: 1), c = Host(index: 2)
        var hostID: Int { index + 1 }
        var letter: String { String(UnicodeScalar(UInt8(ascii: "a") + UInt8(index))) }
        var description: String { "host \(letter.uppercased())" }
    }

    static let lockspace = SanlockLease.autoLockspace

    let dir: String
    let leaseDir: String
    let hosts: [Host]
    let daemons: [SanlockDaemon]
    /// Plugin config directories (qemu-sanlock.conf), one per host.
    let configDirs: [String]
    /// Every run of the failure helper appends its arguments here.
    let helperLog: String
    /// An initialised explicit lease in the auto lockspace.
    let explicitLease: String
    /// Whether leaseDir is a private tmpfs of its own (unmounted by stop()).
    private let mountedLeaseDir: Bool

    var a: SanlockDaemon { daemons[0] }
    var b: SanlockDaemon { daemons[1] }
    var configDirA: String { configDirs[0] }
    var configDirB: String { configDirs[1] }

    /// `leaseDirMiB`: put the lease directory on a tmpfs of that size,
    /// mounted for this cluster (as root), so a test can fill it up.
    init(hostCount: Int = 2, leaseDirMiB: Int? = nil) throws {
        let dir = TempDir.make("sanlock-cluster"), leaseDir = "\(dir)/leases"
        let hosts = (0..<max(hostCount, 2)).map { Host(index: $0) }
        let configDirs = hosts.map { "\(dir)/etc-\($0.letter)" }
        (self.dir, self.leaseDir, self.hosts, self.configDirs) = (dir, leaseDir, hosts, configDirs)
        for d in [leaseDir] + configDirs {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        if let size = leaseDirMiB {
            let mount = Command.run(["mount", "-t", "tmpfs", "-o", "size=\(size)m,mode=0755", "tmpfs", leaseDir], timeout: 30)
            guard mount.status == 0 else {
                throw FixtureError("cannot mount a \(size) MiB tmpfs on \(leaseDir) (the fault tests need root): \(mount)")
            }
        }
        mountedLeaseDir = leaseDirMiB != nil
        var complete = false
        defer { if !complete && leaseDirMiB != nil { Command.run(["umount", "-l", leaseDir], timeout: 30) } }
        helperLog = "\(dir)/failure-helper.log"
        let helper = "\(dir)/failure-helper"
        // The daemon runs it with its own environment; LOCKMGR_PLUGIN_DIR
        // stands for an installed layout (lockmgr beside lib/lock_manager).
        TempDir.write(
            """
            #!/bin/sh
            echo "$@" >> \(helperLog)
            LOCKMGR_PLUGIN_DIR=\(BuildProducts.pluginDir) exec \(BuildProducts.lockmgr) "$@"

            """, to: helper)
        chmod(helper, 0o755)
        for (configDir, host) in zip(configDirs, hosts) {
            TempDir.write(
                """
                # libvirt's keys, as in /etc/libvirt/qemu-sanlock.conf
                auto_disk_leases = 1
                disk_lease_dir = "\(leaseDir)"
                host_id = \(host.hostID)
                io_timeout = 1
                failure_helper = "\(helper)"

                """, to: "\(configDir)/qemu-sanlock.conf")
        }

        let tag = "\(getpid())-\((dir as NSString).lastPathComponent.suffix(6))"
        var started: [SanlockDaemon] = []
        for host in hosts { started.append(try SanlockDaemon(name: "lockmgr-test-\(host.letter)-\(tag)")) }
        daemons = started
        // Our plugin creates __LIBVIRT__DISKS__ as libvirt would and joins it as host 1.
        let info = Command.run(
            [
                BuildProducts.lockmgr, "info", "sanlock", "--plugin-dir", BuildProducts.pluginDir,
                "--config-dir", configDirs[0],
            ], environment: daemons[0].environment, timeout: 60)
        guard info.status == 0 else {
            throw SanlockDaemon.Failure(description: "our plugin could not set up the lockspace on host A: \(info)")
        }
        // The other hosts join together: a join takes seconds, mostly waiting.
        let lockspacePath = SanlockLease.autoLockspacePath(leaseDir: leaseDir)
        let others = Array(daemons.enumerated().dropFirst())
        let failures = ConcurrentFailures()
        DispatchQueue.concurrentPerform(iterations: others.count) { i in
            let (index, daemon) = others[i]
            do { try daemon.join(Self.lockspace, hostID: index + 1, path: lockspacePath) } catch { failures.add(error) }
        }
        if let failure = failures.first { throw failure }
        explicitLease = "\(dir)/explicit-1.lease"
        try daemons[0].initLease(lockspace: Self.lockspace, name: "explicit-1", path: explicitLease)
        complete = true
    }

    func stop() {
        daemons.forEach { $0.stop() }
        // Lazily: a process of a failed test may still have a file open there.
        if mountedLeaseDir { Command.run(["umount", "-l", leaseDir], timeout: 30) }
    }

    func daemon(_ host: Host) -> SanlockDaemon { daemons[host.index] }

    func configDir(_ host: Host) -> String { configDirs[host.index] }

    /// A disk path no other test uses.
    func disk(_ label: String) -> String { "/images/\(label)-\(UUID().uuidString.prefix(8)).img" }

    func leaseFile(forDisk disk: String) -> String { "\(leaseDir)/\(MD5.hex(disk))" }

    /// `lockmgr SUBCOMMAND` with our sanlock plugin (or, with `pluginDir`,
    /// libvirt's) as `host`.
    @discardableResult
    func lockmgr(
        _ host: Host, _ subcommand: String, _ args: [String], name: String = "vm-cli",
        configDir: String? = nil, pluginDir: String = BuildProducts.pluginDir,
        environment: [String: String]? = nil
    ) -> CommandResult {
        Command.run(
            [BuildProducts.lockmgr, subcommand] + hostOptions(host, configDir: configDir, pluginDir: pluginDir)
                + ["--uuid", UUID().uuidString, "--name", name] + args,
            environment: environment ?? daemon(host).environment, timeout: 60)
    }

    /// The state `lockmgr inquire` or `release` printed for `pid`; nil when
    /// it printed none. Fails the test if the command failed.
    func state(
        _ host: Host, _ subcommand: String, pid: Int32, _ args: [String],
        pluginDir: String = BuildProducts.pluginDir
    ) -> String? {
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
        process.arguments =
            ["run"] + hostOptions(host) + ["--uuid", UUID().uuidString, "--name", name] + args
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

    /// `lockmgr run` on `host` racing others: it waits for `gate` to open,
    /// then acquires and execs the payload. Output goes to files: a pipe's
    /// EOF may never come while a process the test runner spawned
    /// meanwhile holds a copy of its write end.
    func launchContender(_ host: Host, name: String, _ args: [String], gate: StartGate, payload: [String]) throws -> Contender {
        let files = "\(dir)/\(name)"
        let process = Process()
        let argv = gate.command(
            [BuildProducts.lockmgr, "run"] + hostOptions(host) + ["--uuid", UUID().uuidString, "--name", name]
                + args + ["--", "/bin/sh", "-c", "echo ready $$; exec \"$@\"", "sh"] + payload)
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env["SANLOCK_RUN_DIR"] = daemon(host).runDir
        process.environment = env
        TempDir.write("", to: "\(files).out")
        TempDir.write("", to: "\(files).err")
        process.standardOutput = FileHandle(forWritingAtPath: "\(files).out")
        process.standardError = FileHandle(forWritingAtPath: "\(files).err")
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Contender(host: host, process: process, output: "\(files).out", errors: "\(files).err")
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

/// A `lockmgr run` started by `launchContender`.
final class Contender: @unchecked Sendable {
    let host: SanlockCluster.Host
    let process: Process
    private let output: String
    private let errors: String

    init(host: SanlockCluster.Host, process: Process, output: String, errors: String) {
        self.host = host
        self.process = process
        self.output = output
        self.errors = errors
    }

    /// The payload's pid, once lockmgr acquired and exec'd it.
    var readyPid: Int32? {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard text.hasPrefix("ready "), let line = text.split(separator: "\n").first else { return nil }
        return Int32(line.dropFirst("ready ".count))
    }

    var hasExited: Bool { !process.isRunning }
    var exitStatus: Int32? { hasExited ? process.terminationStatus : nil }
    var stderr: String { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }

    /// Ends the process if it still runs, and always reaps it: Foundation
    /// lets go of a Process, and of the files given as its output, only
    /// once waitUntilExit has seen it end. Polling isRunning alone kept two
    /// descriptors per contender: a 1000-round race reached 1350 and
    /// crashed Foundation's own Process.run.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
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

/// Errors collected from concurrent work.
private final class ConcurrentFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func add(_ error: Error) { lock.withLock { errors.append(error) } }
    var first: Error? { lock.withLock { errors.first } }
}

/// Runs a suite inside one cluster, started before its first test and
/// stopped after its last.
struct SanlockClusterTrait: SuiteTrait, TestScoping {
    var hostCount = 2
    var leaseDirMiB: Int?

    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        let cluster = try SanlockCluster(hostCount: hostCount, leaseDirMiB: leaseDirMiB)
        defer { cluster.stop() }
        try await SanlockCluster.$current.withValue(cluster) { try await function() }
    }
}

extension Trait where Self == SanlockClusterTrait {
    static var sanlockCluster: Self { Self() }

    /// `hosts` daemons; with `leaseDirMiB`, the lease directory on a private tmpfs of that size.
    static func sanlockCluster(hosts: Int, leaseDirMiB: Int? = nil) -> Self {
        Self(hostCount: hosts, leaseDirMiB: leaseDirMiB)
    }
}
