import Foundation
import Harness
import LockDriver
import Testing

/// Every file `make install` installs runs on a host without a Swift
/// toolchain (a hypervisor host): each runs in a mount namespace where a
/// tmpfs hides the toolchain this test runner was linked from. The pr
/// keeper and sanlock's failure helper are started from inside, so they
/// run there too.
@Suite(.serialized) struct NoToolchainTests {
    let prefix: String
    let uuid = "9d0b3a52-6c1e-4f0e-8d7a-2b5c4e6f7a81"

    init() throws {
        prefix = TempDir.make("no-toolchain") + "/usr-local"
        let install = Command.run(["\(CProgram.repoRoot)/scripts/install-files.sh", BuildProducts.binDir, prefix], timeout: 60)
        guard install.status == 0 else { throw FixtureError("scripts/install-files.sh failed: \(install)") }
    }

    /// The toolchain's `usr`: where the runtime this process uses was loaded from.
    static let toolchain: String = {
        let maps = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
        let core = maps.split(separator: "\n").compactMap { $0.split(separator: " ").last }
            .first { $0.hasSuffix("/lib/swift/linux/libswiftCore.so") }
        return core.map { String($0.dropLast("/lib/swift/linux/libswiftCore.so".count)) } ?? "/opt/swift/usr"
    }()

    /// Runs argv with the toolchain hidden.
    func hidden(_ argv: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) -> CommandResult {
        Command.run(
            [
                "/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount -t tmpfs no-swift \"$0\" && exec \"$@\"",
                Self.toolchain,
            ] + argv, environment: environment, timeout: timeout)
    }

    var lockmgr: String { "\(prefix)/bin/lockmgr" }

    func lockmgr(
        _ sub: String, plugin: String, configDir: String, _ args: [String],
        environment: [String: String] = [:]
    ) -> CommandResult {
        hidden(
            [lockmgr, sub, "--plugin", plugin, "--config-dir", configDir, "--uuid", uuid, "--name", "vm-deploy"] + args,
            environment: environment)
    }

    /// The namespace really hides the toolchain: a program linked to its
    /// shared runtime (lockmgr-fuzz, not installed) cannot start.
    @Test func aProgramLinkedToTheToolchainCannotStartThere() throws {
        let linked = "\(BuildProducts.binDir)/lockmgr-fuzz"
        let ldd = Command.run(["/usr/bin/ldd", linked])
        try #require(ldd.stdout.contains("\(Self.toolchain)/lib/swift/linux/libswiftCore.so"), "\(ldd)")
        let outside = Command.run([linked, "--help"])
        #expect((outside.stdout + outside.stderr).contains("usage: lockmgr-fuzz"), "\(outside)")
        let r = hidden([linked, "--help"])
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("error while loading shared libraries: libswift"), "\(r)")
    }

    @Test func everyInstalledProgramAndPluginStarts() throws {
        for argv in [[lockmgr, "--help"], ["\(prefix)/bin/pr-tool", "--help"], ["\(prefix)/libexec/lockmgr/pr-keeper", "--help"]] {
            let r = hidden(argv)
            #expect(r.status == 0 && r.stdout.lowercased().contains("usage"), "\(r)")
        }
        for program in [lockmgr, "\(prefix)/bin/pr-tool", "\(prefix)/libexec/lockmgr/pr-keeper"] {
            let r = hidden([program, "--version"])
            #expect(r.status == 0 && !r.stdout.isEmpty, "\(r)")
        }
        let plugins = try FileManager.default.contentsOfDirectory(atPath: "\(prefix)/lib/lock_manager")
        #expect(Set(plugins) == ["nop.so", "sanlock.so", "pr.so"])
        let emptyConfigs = TempDir.make("no-toolchain-etc")
        for plugin in plugins {
            let r = hidden([lockmgr, "info", "\(prefix)/lib/lock_manager/\(plugin)", "--config-dir", emptyConfigs])
            #expect(r.status == 0 && r.stdout.contains("version: 1.0.0"), "\(r)")
        }
    }

    @Test func nopAcquireInquireRelease() throws {
        let vm = try SpawnedProcess(["/bin/sleep", "60"]); defer { vm.stop() }
        let etc = TempDir.make("no-toolchain-nop")
        let disk = ["--pid", "\(vm.pid)", "--disk", "/images/vm.img"]
        for sub in ["acquire", "inquire", "release"] {
            let r = lockmgr(sub, plugin: "nop", configDir: etc, disk)
            #expect(r.status == 0, "\(sub): \(r)")
        }
    }

    /// The pr plugin against a real tgtd: the reservation is taken, the
    /// installed keeper (found beside the installed plugin) watches the VM,
    /// and the release drops both.
    @Test func prAcquireInquireReleaseWithTheInstalledKeeper() throws {
        let tgt = try TgtTarget(); defer { tgt.stop() }
        let lun = try tgt.addTarget().urls[0]
        let etc = TempDir.make("no-toolchain-pr"), keeperDir = "\(etc)/keeper"
        TempDir.write(
            """
            iscsi_initiator = "iqn.2026-01.lockmgr.test:deploy"
            keeper_dir = "\(keeperDir)"
            keeper_interval_ms = 200
            """, to: "\(etc)/qemu-pr.conf")
        let vm = try SpawnedProcess(["/bin/sleep", "60"]); defer { vm.stop() }
        let args = ["--pid", "\(vm.pid)", "--disk", lun]
        let acquired = lockmgr("acquire", plugin: "pr", configDir: etc, args)
        try #require(acquired.status == 0, "\(acquired)")
        let keeperPid = try #require(runningKeeper(in: keeperDir), "no keeper pid file in \(keeperDir)")
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(keeperPid)/exe")
        #expect(exe == "\(prefix)/libexec/lockmgr/pr-keeper")
        let inquired = lockmgr("inquire", plugin: "pr", configDir: etc, args)
        #expect(inquired.status == 0 && !inquired.stdout.isEmpty, "\(inquired)")
        let observer = hidden(["\(prefix)/bin/pr-tool", "--initiator", "iqn.2026-01.lockmgr.test:observer", lun, "reservation"])
        #expect(observer.stdout.contains("reserved by"), "\(observer)")
        let released = lockmgr("release", plugin: "pr", configDir: etc, args)
        #expect(released.status == 0, "\(released)")
        let after = hidden(["\(prefix)/bin/pr-tool", lun, "reservation"])
        #expect(after.stdout.contains("no reservation"), "\(after)")
    }

    /// sanlock against a private daemon: a VM started by the installed
    /// lockmgr holds its lease (`run` registers the lockmgr beside the
    /// installed plugin as sanlock's failure helper, and refuses to start
    /// when that is not executable); `failure-action --action pause` (what
    /// that helper runs when the lease is lost) stops the VM and releases the
    /// lease through the installed plugin.
    @Test func sanlockRunInquireAndPause() throws {
        let daemon = try SanlockDaemon(name: "lockmgr-deploy-\(getpid())"); defer { daemon.stop() }
        let etc = TempDir.make("no-toolchain-sanlock"), leases = "\(etc)/leases"
        try FileManager.default.createDirectory(atPath: leases, withIntermediateDirectories: true)
        TempDir.write(
            """
            auto_disk_leases = 1
            disk_lease_dir = "\(leases)"
            host_id = 1
            io_timeout = 1
            """, to: "\(etc)/qemu-sanlock.conf")
        let disk = ["--disk", "\(etc)/vm.img"]
        var env = ProcessInfo.processInfo.environment
        env.merge(daemon.environment) { $1 }
        let vm = try SpawnedProcess(
            ["/usr/bin/env"] + env.map { "\($0)=\($1)" } + [
                "/usr/bin/unshare", "-m", "/bin/sh", "-c",
                "mount -t tmpfs no-swift \"$0\" && exec \"$@\"", Self.toolchain, lockmgr, "run", "--plugin", "sanlock",
                "--config-dir", etc, "--uuid", uuid, "--name", "vm-deploy", "--action", "pause",
            ] + disk + ["--", "/bin/sleep", "120"])
        defer { vm.stop(SIGKILL) }
        var state: CommandResult?
        #expect(
            waitUntil(seconds: 30) {
                let r = lockmgr(
                    "inquire", plugin: "sanlock", configDir: etc, ["--pid", "\(vm.pid)"] + disk, environment: daemon.environment)
                state = r
                return r.status == 0 && r.stdout.contains("__LIBVIRT__DISKS__")
            }, "\(String(describing: state))")
        let pause = hidden(
            [lockmgr, "failure-action", "--action", "pause", "--pid", "\(vm.pid)", "--plugin", "sanlock"],
            environment: daemon.environment)
        #expect(pause.status == 0 && pause.stderr.contains("paused; released through sanlock"), "\(pause)")
        #expect(ProcStat.read(vm.pid)?.isStopped == true)
        let after = lockmgr("inquire", plugin: "sanlock", configDir: etc, ["--pid", "\(vm.pid)"] + disk, environment: daemon.environment)
        #expect(!after.stdout.contains("__LIBVIRT__DISKS__"), "a paused VM holds nothing: \(after)")
    }

    /// poweroff, the other action sanlock's killpath runs: the process dies.
    @Test func failureActionPowersOff() throws {
        let doomed = try SpawnedProcess(["/bin/sleep", "60"]); defer { doomed.stop() }
        let off = hidden([lockmgr, "failure-action", "--action", "poweroff", "--pid", "\(doomed.pid)", "--name", "vm-deploy"])
        #expect(off.status == 0 && off.stderr.contains("applying poweroff"), "\(off)")
        #expect(waitUntil(seconds: 5) { !doomed.isRunning }, "pid \(doomed.pid) survived poweroff")
    }

    func runningKeeper(in dir: String) -> Int32? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard let pidFile = files.first(where: { $0.hasSuffix(".pid") }),
            let text = try? String(contentsOfFile: "\(dir)/\(pidFile)", encoding: .utf8)
        else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func waitUntil(seconds: Int, _ condition: () -> Bool) -> Bool {
        for _ in 0..<(seconds * 20) {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }
}
