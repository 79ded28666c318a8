import Foundation
import Harness
import Testing

/// `lockmgr` end to end, as a user runs it: real processes, real plugins.
@Suite struct LockmgrToolTests {
    let uuid = "4b1e4f8c-7e0d-4c59-9a57-3f1e2d6c0a11"

    func lockmgr(_ args: [String], plugins: String = BuildProducts.pluginDir, configDir: String? = nil) -> CommandResult {
        let configDir = configDir ?? TempDir.make("conf")
        return Command.run(
            [BuildProducts.lockmgr, args[0], "--plugin-dir", plugins, "--config-dir", configDir]
                + args.dropFirst(), timeout: 60)
    }

    @Test func infoPrintsVersionAndFlags() throws {
        let text = lockmgr(["info", "--plugin", "nop"])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("version: 1.0.0 (1000000)"))
        #expect(text.stdout.contains("flags:   none"))
        let json = lockmgr(["info", "--json", "probe"], plugins: try ProbePlugin.pluginDir)
        #expect(json.status == 0, "\(json)")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["version"] as? String == "1.0.0")
        #expect(object?["flags"] as? [String] == ["USES_STATE"])
    }

    @Test func infoLoadsLibvirtsOwnPluginsByPath() throws {
        for (file, flags) in [("sanlock.so", "USES_STATE"), ("lockd.so", "none")] {
            let r = lockmgr(["info", "\(BuildProducts.libvirtPluginDir)/\(file)"])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("flags:   \(flags)"), "\(r)")
        }
    }

    @Test func acquireInquireReleaseWithNop() throws {
        let common = [
            "--plugin", "nop", "--uuid", uuid, "--name", "vm1", "--disk", "/images/a.img",
            "--shared-disk", "/images/b.img", "--lease", "key=k1,lockspace=ls,path=/leases/k1,offset=0,shared",
        ]
        let acquired = lockmgr(["acquire", "--json"] + common)
        #expect(acquired.status == 0, "\(acquired)")
        let object = try JSONSerialization.jsonObject(with: Data(acquired.stdout.utf8)) as? [String: Any]
        let resources = object?["acquired"] as? [[String: Any]]
        #expect(resources?.map { $0["mode"] as? String } == ["exclusive", "shared", "shared"])
        #expect(resources?.last?["type"] as? String == "lease")
        #expect(object?["state"] is NSNull)
        for op in ["inquire", "release"] {
            let r = lockmgr([op] + common)
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.isEmpty, "nop has no state: \(r)")
        }
    }

    @Test func releasePrintsThePluginsState() throws {
        let r = lockmgr(
            [
                "release", "--plugin", "probe", "--uuid", uuid, "--name", "vm1", "--pid", "1234",
                "--disk", "/d",
            ], plugins: try ProbePlugin.pluginDir)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "probe-state\n")
    }

    /// The command lockmgr runs is the lock owner: the plugin's acquire ran
    /// in the same process (pid param == getpid() == the command's $$), and
    /// the fd it returned, opened O_CLOEXEC, is open in the command.
    @Test func runExecsTheCommandAsTheLockOwnerWithTheFd() throws {
        let configDir = TempDir.make("run")
        let report = "\(configDir)/qemu-probe.conf.report"
        let r = lockmgr(
            [
                "run", "--plugin", "probe", "--uuid", uuid, "--name", "vm1", "--disk", "/d", "--",
                "sh", "-c", "echo $$; readlink /proc/$$/fd/$LOCKMGR_LOCK_FD; echo $LOCKMGR_PLUGIN",
            ],
            plugins: try ProbePlugin.pluginDir, configDir: configDir)
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(r)")
        let commandPid = lines.first ?? "?"
        let log = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        #expect(log.contains("new type=0 nparams=5 flags=1"), "NEW_STARTED expected: \(log)")
        let acquire = log.split(separator: "\n").first { $0.hasPrefix("acquire") }.map(String.init) ?? ""
        #expect(acquire.hasPrefix("acquire pid=\(commandPid) getpid=\(commandPid) fd="), "\(acquire) vs \(r.stdout)")
        #expect(lines.dropFirst().first == report, "the lock fd is the plugin's file: \(r.stdout)")
        #expect(lines.last == "probe")
        #expect(!log.contains("release"), "nothing is released when the command starts: \(log)")
    }

    /// With no lock fd (nop), an inherited LOCKMGR_LOCK_FD must not reach
    /// the command pointing at some unrelated fd.
    @Test func runWithoutALockFdClearsAnInheritedOne() {
        let r = Command.run(
            [
                BuildProducts.lockmgr, "run", "--plugin-dir", BuildProducts.pluginDir, "--config-dir", TempDir.make("nofd"),
                "--plugin", "nop", "--uuid", uuid, "--name", "vm1", "--disk", "/d", "--",
                "sh", "-c", "echo \"fd=${LOCKMGR_LOCK_FD-unset}\"",
            ],
            environment: ["LOCKMGR_LOCK_FD": "7"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout == "fd=unset\n", "\(r)")
    }

    @Test func runThatCannotStartReleasesAndExits127() throws {
        let configDir = TempDir.make("run-fail")
        let r = lockmgr(
            [
                "run", "--plugin", "probe", "--uuid", uuid, "--name", "vm1", "--disk", "/d", "--",
                "/nonexistent/qemu",
            ], plugins: try ProbePlugin.pluginDir, configDir: configDir)
        #expect(r.status == 127, "\(r)")
        #expect(r.stderr.contains("cannot run '/nonexistent/qemu': No such file or directory"))
        let log = (try? String(contentsOfFile: "\(configDir)/qemu-probe.conf.report", encoding: .utf8)) ?? ""
        #expect(log.contains("release"), "the locks taken for it are given back: \(log)")
    }

    @Test func unknownPluginIsAConfigError() {
        let r = lockmgr(["acquire", "--plugin", "nosuch", "--uuid", uuid, "--name", "vm1"])
        #expect(r.status == 78, "\(r)")
        #expect(r.stderr.contains("lock plugin 'nosuch' not found: \(BuildProducts.pluginDir)/nosuch.so"), "\(r)")
        let escape = lockmgr(["acquire", "--plugin", "../nop", "--uuid", uuid, "--name", "vm1"])
        #expect(escape.status == 78, "\(escape)")
        #expect(escape.stderr.contains("may not start with '.'"), "\(escape)")
    }

    @Test func malformedConfigNamesFileAndLine() {
        let dir = TempDir.make("badconf")
        TempDir.write("# lockmgr\nlockManager = nop\n", to: "\(dir)/lockmgr.conf")
        let r = lockmgr(["inquire", "--config", "\(dir)/lockmgr.conf", "--uuid", uuid, "--name", "vm1"])
        #expect(r.status == 78, "\(r)")
        #expect(r.stderr.contains("\(dir)/lockmgr.conf:2: value of 'lockManager' must be a quoted string"), "\(r)")
        let json = lockmgr(["inquire", "--json", "--config", "\(dir)/missing.conf", "--uuid", uuid, "--name", "vm1"])
        #expect(json.status == 78)
        #expect(json.stdout.contains("\"kind\":\"configuration error\""), "\(json)")
    }

    @Test(arguments: [
        (["acquire", "--uuid", "not-a-uuid", "--name", "vm1"], "is not a UUID"),
        (["acquire", "--uuid", "4b1e4f8c-7e0d-4c59-9a57-3f1e2d6c0a11"], "Missing expected argument '--name"),
        (["acquire", "--uuid", "4b1e4f8c-7e0d-4c59-9a57-3f1e2d6c0a11", "--name", "v", "--lease", "key=k,path=/p"], "missing lockspace="),
        (["acquire", "--uuid", "4b1e4f8c-7e0d-4c59-9a57-3f1e2d6c0a11", "--name", "v", "--action", "explode"], "--action 'explode'"),
        (["run", "--uuid", "4b1e4f8c-7e0d-4c59-9a57-3f1e2d6c0a11", "--name", "v"], "missing command"),
    ])
    func usageErrorsExit64(_ args: [String], _ message: String) {
        let r = lockmgr(args)
        #expect(r.status == 64, "\(r)")
        #expect(r.stderr.contains(message), "\(r)")
    }

    @Test func helpDocumentsExitStatuses() {
        let r = Command.run([BuildProducts.lockmgr, "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("75 lock conflict"))
        #expect(r.stdout.contains("run                     Acquire the locks for a command, then exec it"), "\(r.stdout)")
    }
}
