import CLockDriver
import Glibc

/// Where the host finds its plugins and their configuration, and which
/// plugin it uses. Each value comes from, in order of precedence: a
/// command-line flag, the environment, the host config file, the default.
public struct HostSettings: Sendable, Equatable {
    public var lockManager: String
    public var pluginDir: String
    public var configDir: String
    /// libvirt's driver name, the first half of `<driver>-<plugin>.conf`.
    public var driver: String
    /// How long one plugin call may take before the host gives up.
    public var callTimeout: CallTimeout

    public init(
        lockManager: String, pluginDir: String, configDir: String, driver: String,
        callTimeout: CallTimeout = .standard
    ) {
        self.lockManager = lockManager
        self.pluginDir = pluginDir
        self.configDir = configDir
        self.driver = driver
        self.callTimeout = callTimeout
    }

    /// The plugin's own config file, named as libvirt names it.
    public var pluginConfigFile: String { "\(configDir)/\(driver)-\(lockManager).conf" }

    /// Keys the host config file may set. `lockManager` is the design
    /// document's spelling; `lock_manager` is qemu.conf's.
    public static let knownKeys: Set<String> = [
        "lockManager", "lock_manager", "plugin_dir", "config_dir", "driver",
        "call_timeout",
    ]

    public struct Overrides: Sendable {
        public var lockManager: String?
        public var pluginDir: String?
        public var configDir: String?
        public var driver: String?
        /// Seconds, 0 for no limit.
        public var callTimeout: UInt32?
        public init(
            lockManager: String? = nil, pluginDir: String? = nil, configDir: String? = nil, driver: String? = nil,
            callTimeout: UInt32? = nil
        ) {
            self.lockManager = lockManager
            self.pluginDir = pluginDir
            self.configDir = configDir
            self.driver = driver
            self.callTimeout = callTimeout
        }
    }

    /// Environment variables that override the config file.
    public enum Environment {
        public static let config = "LOCKMGR_CONFIG"
        public static let pluginDir = "LOCKMGR_PLUGIN_DIR"
        public static let configDir = "LOCKMGR_CONFIG_DIR"
        public static let callTimeout = "LOCKMGR_CALL_TIMEOUT"
    }

    /// Resolves the settings. `configPath` nil means the default host
    /// config, which may be absent; an explicit path must exist.
    public static func resolve(
        configPath: String?, overrides: Overrides = Overrides(),
        layout: InstallLayout = .current(),
        environment: (String) -> String? = { getenv($0).map { String(cString: $0) } }
    )
        throws(LockError) -> HostSettings
    {
        let explicit = configPath ?? environment(Environment.config)
        let conf = try ConfFile.load(path: explicit ?? layout.hostConfigFile, missingIsEmpty: explicit == nil)
        try conf.rejectUnknown(knownKeys)

        // Read every key first: `??` takes autoclosures, which lose typed throws.
        let spelledLikeSeed = try conf.string("lockManager")
        let spelledLikeLibvirt = try conf.string("lock_manager")
        if let a = spelledLikeSeed, let b = spelledLikeLibvirt, a != b, let e = conf.entry("lock_manager") {
            throw .config("\(conf.origin):\(e.line): lock_manager = \"\(b)\" disagrees with lockManager = \"\(a)\"")
        }
        let configuredManager = spelledLikeSeed ?? spelledLikeLibvirt
        let configuredPluginDir = try conf.string("plugin_dir")
        let configuredConfigDir = try conf.string("config_dir")
        let configuredDriver = try conf.string("driver")
        // A bad name from the file is reported at its line (flags and env are checked below).
        for key in ["lockManager", "lock_manager", "driver"] {
            guard let e = conf.entry(key), case .string(let name) = e.value else { continue }
            do {
                try PluginName.validate(name)
            } catch {
                throw .config("\(conf.origin):\(e.line): '\(key)': \(error.message)")
            }
        }
        let callTimeout = try resolveCallTimeout(conf, override: overrides.callTimeout, environment: environment)
        let settings = HostSettings(
            lockManager: overrides.lockManager ?? configuredManager ?? layout.defaultLockManager,
            pluginDir: overrides.pluginDir ?? environment(Environment.pluginDir) ?? configuredPluginDir ?? layout.pluginDir,
            configDir: overrides.configDir ?? environment(Environment.configDir) ?? configuredConfigDir ?? layout.configDir,
            driver: overrides.driver ?? configuredDriver ?? "qemu",
            callTimeout: callTimeout)
        try PluginName.validate(settings.lockManager)
        try PluginName.validate(settings.driver)
        return settings
    }

    /// The call timeout, from the flag, the environment, the config, or
    /// the default; each origin is kept for the message when it expires.
    private static func resolveCallTimeout(
        _ conf: ConfFile, override: UInt32?,
        environment: (String) -> String?
    ) throws(LockError) -> CallTimeout {
        let key = "call_timeout"
        if let override { return CallTimeout(seconds: override, origin: "--timeout \(override)") }
        if let text = environment(Environment.callTimeout) {
            guard let seconds = UInt32(text) else {
                throw .config("\(Environment.callTimeout)='\(text)' is not a number of seconds (0 for no limit)")
            }
            return CallTimeout(seconds: seconds, origin: "\(Environment.callTimeout)=\(text)")
        }
        if let seconds = try conf.integer(key, in: 0...Int64(UInt32.max)), let e = conf.entry(key) {
            return CallTimeout(seconds: UInt32(clamping: seconds), origin: "\(key) = \(seconds) at \(conf.origin):\(e.line)")
        }
        return .standard
    }

    /// Loads the selected plugin with its config file and call timeout.
    public func loadPlugin() throws(LockError) -> LockPlugin {
        try LockPlugin.load(name: lockManager, pluginDir: pluginDir, configFile: pluginConfigFile, callTimeout: callTimeout)
    }
}

/// The install prefix and the paths under it, derived from where the
/// running executable lives (`<prefix>/bin/lockmgr`), so an installed tree
/// can be moved without rebuilding.
///
/// The prefix `/usr` is the distribution's (the Debian package, `make
/// install PREFIX=/usr`): plugins live where libvirt loads them, named
/// `lockmgr-<name>.so` beside libvirt's own, and read their configs where
/// libvirt does (`/etc/libvirt/qemu-lockmgr-<name>.conf`), so lockmgr and
/// libvirtd use a plugin with the same settings; the host config is
/// `/etc/lockmgr/lockmgr.conf`.
public struct InstallLayout: Sendable, Equatable {
    public var prefix: String

    public init(prefix: String) { self.prefix = prefix }

    public static let systemPrefix = "/usr"
    /// libvirt's lock driver directory on this architecture (Debian's multiarch path).
    public static let systemPluginDir = "/usr/lib/\(multiarchTriplet)/libvirt/lock-driver"
    /// What our plugins are called in `systemPluginDir`: libvirt ships a
    /// `sanlock.so` there and has a built-in `nop`.
    public static let systemPluginNamePrefix = "lockmgr-"

    #if arch(x86_64)
    static let multiarchTriplet = "x86_64-linux-gnu"
    #elseif arch(arm64)
    static let multiarchTriplet = "aarch64-linux-gnu"
    #else
    static let multiarchTriplet = "unknown-linux-gnu"
    #endif

    public var isSystem: Bool { prefix == Self.systemPrefix }
    public var pluginDir: String { isSystem ? Self.systemPluginDir : "\(prefix)/lib/lock_manager" }
    /// Where plugin configs live (`<driver>-<plugin>.conf`).
    public var configDir: String { isSystem ? "/etc/libvirt" : "\(prefix)/etc/lockmgr" }
    public var hostConfigFile: String { isSystem ? "/etc/lockmgr/lockmgr.conf" : "\(prefix)/etc/lockmgr/lockmgr.conf" }
    /// The plugin used when none is configured: the one that takes no locks.
    public var defaultLockManager: String { isSystem ? Self.systemPluginNamePrefix + "nop" : "nop" }
    public var binDir: String { under("bin") }
    /// Helper programs plugins start (the pr plugin's keeper).
    public var libexecDir: String { under("libexec/lockmgr") }

    func under(_ path: String) -> String { prefix == "/" ? "/" + path : "\(prefix)/\(path)" }

    /// The layout an installed plugin belongs to:
    /// `<prefix>/lib/lock_manager/<name>.so` → `<prefix>`, a plugin in
    /// `systemPluginDir` → `/usr`; nil for a plugin loaded from anywhere
    /// else (a build directory).
    public init?(pluginPath: String) {
        var parts = pluginPath.splitBytes(at: "/", omittingEmpty: false)
        if parts.count >= 2, parts.dropLast().joined(separator: "/") == Self.systemPluginDir {
            self.init(prefix: Self.systemPrefix)
            return
        }
        guard parts.count >= 4, parts[parts.count - 2] == "lock_manager", parts[parts.count - 3] == "lib" else {
            return nil
        }
        parts.removeLast(3)
        let prefix = parts.joined(separator: "/")
        self.init(prefix: prefix.isEmpty ? "/" : prefix)
    }

    /// The file the code at `address` was loaded from (pass `#dsohandle`
    /// from inside a plugin to find the plugin's own path).
    public static func loadedFile(containing address: UnsafeRawPointer) -> String? {
        lockmgr_loaded_file(address).map { String(cString: $0) }
    }

    public static func current() -> InstallLayout {
        guard let exe = RunningExecutable.path else { return InstallLayout(prefix: "/usr/local") }
        var parts = exe.splitBytes(at: "/", omittingEmpty: false)
        parts.removeLast(min(2, parts.count))  // drop "bin/lockmgr"
        let prefix = parts.joined(separator: "/")
        return InstallLayout(prefix: prefix.isEmpty ? "/" : prefix)
    }
}
