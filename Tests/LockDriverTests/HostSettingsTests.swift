import Harness
import LockDriver
import Testing

/// Which plugin and directories the host uses: flag > environment > host
/// config > default, and bad host configs are refused with file:line.
@Suite struct HostSettingsTests {
    let layout = InstallLayout(prefix: "/opt/lm")

    func write(_ text: String) -> String {
        let path = TempDir.make("settings") + "/lockmgr.conf"
        TempDir.write(text, to: path)
        return path
    }

    @Test func defaultsComeFromTheInstallPrefix() throws {
        let s = try HostSettings.resolve(configPath: nil, layout: layout, environment: { _ in nil })
        #expect(
            s
                == HostSettings(
                    lockManager: "nop", pluginDir: "/opt/lm/lib/lock_manager",
                    configDir: "/opt/lm/etc/lockmgr", driver: "qemu"))
        #expect(s.pluginConfigFile == "/opt/lm/etc/lockmgr/qemu-nop.conf")
    }

    @Test func configSelectsPluginInEitherSpelling() throws {
        let seed = try HostSettings.resolve(configPath: write("lockManager = \"pr\""), layout: layout, environment: { _ in nil })
        #expect(seed.lockManager == "pr")
        let libvirt = try HostSettings.resolve(
            configPath: write("lock_manager = 'sanlock'\nconfig_dir = '/etc/libvirt'"),
            layout: layout, environment: { _ in nil })
        #expect(libvirt.lockManager == "sanlock")
        #expect(libvirt.pluginConfigFile == "/etc/libvirt/qemu-sanlock.conf")
    }

    @Test func flagBeatsEnvironmentBeatsConfig() throws {
        let path = write("lockManager = 'pr'\nplugin_dir = '/conf/plugins'\nconfig_dir = '/conf/etc'\ndriver = 'lxc'")
        let env = ["LOCKMGR_PLUGIN_DIR": "/env/plugins", "LOCKMGR_CONFIG_DIR": "/env/etc"]
        let fromEnv = try HostSettings.resolve(configPath: path, layout: layout, environment: { env[$0] })
        #expect(fromEnv == HostSettings(lockManager: "pr", pluginDir: "/env/plugins", configDir: "/env/etc", driver: "lxc"))
        let fromFlags = try HostSettings.resolve(
            configPath: path, overrides: .init(lockManager: "nop", pluginDir: "/flag/plugins", configDir: "/flag/etc", driver: "qemu"),
            layout: layout, environment: { env[$0] })
        #expect(fromFlags == HostSettings(lockManager: "nop", pluginDir: "/flag/plugins", configDir: "/flag/etc", driver: "qemu"))
        let fromConf = try HostSettings.resolve(configPath: path, layout: layout, environment: { _ in nil })
        #expect(fromConf == HostSettings(lockManager: "pr", pluginDir: "/conf/plugins", configDir: "/conf/etc", driver: "lxc"))
    }

    @Test func callTimeoutFromFlagEnvironmentConfigOrDefault() throws {
        let path = write("lockManager = 'pr'\n\ncall_timeout = 30")
        let env = ["LOCKMGR_CALL_TIMEOUT": "0"]
        let fromConf = try HostSettings.resolve(configPath: path, layout: layout, environment: { _ in nil })
        #expect(fromConf.callTimeout == CallTimeout(seconds: 30, origin: "call_timeout = 30 at \(path):3"))
        let fromEnv = try HostSettings.resolve(configPath: path, layout: layout, environment: { env[$0] })
        #expect(fromEnv.callTimeout == CallTimeout(seconds: 0, origin: "LOCKMGR_CALL_TIMEOUT=0"))
        #expect(fromEnv.callTimeout.isUnlimited)
        let fromFlag = try HostSettings.resolve(
            configPath: path, overrides: .init(callTimeout: 5), layout: layout,
            environment: { env[$0] })
        #expect(fromFlag.callTimeout == CallTimeout(seconds: 5, origin: "--timeout 5"))
        let byDefault = try HostSettings.resolve(configPath: nil, layout: layout, environment: { _ in nil })
        #expect(byDefault.callTimeout == .standard)
        #expect(byDefault.callTimeout.seconds == 60)

        let negative = write("call_timeout = -1")
        #expect(throws: LockError.config("\(negative):1: 'call_timeout' must be between 0 and 4294967295, not -1")) {
            try HostSettings.resolve(configPath: negative, layout: layout, environment: { _ in nil })
        }
        #expect(throws: LockError.config("LOCKMGR_CALL_TIMEOUT='1.5' is not a number of seconds (0 for no limit)")) {
            try HostSettings.resolve(configPath: nil, layout: layout, environment: { $0 == "LOCKMGR_CALL_TIMEOUT" ? "1.5" : nil })
        }
    }

    /// The shipped etc/lockmgr.conf with every commented setting switched on
    /// is a valid host config (a key it documents is a key the host knows).
    @Test func shippedConfigWithEverySettingOn() throws {
        let shipped = try String(contentsOfFile: "\(CProgram.repoRoot)/etc/lockmgr.conf", encoding: .utf8)
        let enabled = shipped.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("#") && line.contains(" = ") && !line.hasPrefix("# ") ? String(line.dropFirst()) : String(line)
        }.joined(separator: "\n")
        let s = try HostSettings.resolve(configPath: write(enabled), layout: layout, environment: { _ in nil })
        #expect(s.callTimeout.seconds == 60)
        #expect(s.configDir == "/etc/libvirt")
    }

    /// The Debian package's layout (prefix /usr): plugins and their configs
    /// where libvirt has them, the host config under /etc.
    @Test func systemPrefixUsesLibvirtsDirectories() throws {
        let system = InstallLayout(prefix: "/usr")
        #if arch(x86_64)
        #expect(system.pluginDir == "/usr/lib/x86_64-linux-gnu/libvirt/lock-driver")
        #endif
        #expect(system.configDir == "/etc/libvirt")
        #expect(system.hostConfigFile == "/etc/lockmgr/lockmgr.conf")
        #expect(system.libexecDir == "/usr/libexec/lockmgr")
        #expect(system.binDir == "/usr/bin")
        #expect(InstallLayout(pluginPath: "\(system.pluginDir)/lockmgr-pr.so") == system)
        #expect(InstallLayout(pluginPath: "\(system.pluginDir)/sub/lockmgr-pr.so") == nil)
        let s = try HostSettings.resolve(configPath: write("# nothing set"), layout: system, environment: { _ in nil })
        #expect(s.lockManager == "lockmgr-nop")
        #expect(s.pluginConfigFile == "/etc/libvirt/qemu-lockmgr-nop.conf")
    }

    @Test func environmentCanNameTheConfigFile() throws {
        let path = write("lockManager = 'sanlock'")
        let s = try HostSettings.resolve(configPath: nil, layout: layout, environment: { $0 == "LOCKMGR_CONFIG" ? path : nil })
        #expect(s.lockManager == "sanlock")
    }

    @Test func badHostConfigsAreRefusedWithFileAndLine() throws {
        let unknown = write("lockManager = 'pr'\nlock_manger = 'x'")
        #expect(throws: LockError.config("\(unknown):2: unknown setting 'lock_manger'")) {
            try HostSettings.resolve(configPath: unknown, layout: layout, environment: { _ in nil })
        }
        let disagree = write("lockManager = 'sanlock'\nlock_manager = 'nop'")
        #expect(throws: LockError.config("\(disagree):2: lock_manager = \"nop\" disagrees with lockManager = \"sanlock\"")) {
            try HostSettings.resolve(configPath: disagree, layout: layout, environment: { _ in nil })
        }
        let wrongType = write("\nlockManager = 1")
        #expect(throws: LockError.config("\(wrongType):2: 'lockManager' must be a string, not an integer")) {
            try HostSettings.resolve(configPath: wrongType, layout: layout, environment: { _ in nil })
        }
        for (name, reason) in [("../../tmp/evil", "may not start with '.'"), ("sub/evil", "contains '/'")] {
            let escaping = write("lockManager = '\(name)'")
            let error = #expect(throws: LockError.self) {
                try HostSettings.resolve(configPath: escaping, layout: layout, environment: { _ in nil })
            }
            #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
            // Named at its file and line (it once said only the name; Fuzz/Regressions/config).
            #expect(error?.message.hasPrefix("\(escaping):1: 'lockManager': ") == true, "\(error?.message ?? "")")
        }
        let emptyDriver = write("lockManager = 'nop'\n\ndriver = \"\"")
        #expect(throws: LockError.config("\(emptyDriver):3: 'driver': lock plugin name is empty")) {
            try HostSettings.resolve(configPath: emptyDriver, layout: layout, environment: { _ in nil })
        }
        #expect(throws: LockError.config("cannot read config file /nonexistent/lm.conf: No such file or directory")) {
            try HostSettings.resolve(configPath: "/nonexistent/lm.conf", layout: layout, environment: { _ in nil })
        }
    }
}
