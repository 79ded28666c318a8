import CLockDriver
import Glibc

/// A loaded lock driver plugin: ours or libvirt's, any `.so` exporting a
/// `virLockDriverImpl` table of ABI 1.x.
public final class LockPlugin: @unchecked Sendable {
    /// The name the plugin was loaded under (file name without `.so`).
    public let name: String
    public let path: String
    public let version: ABIVersion
    public let flags: DriverFlags
    public let configFile: String?
    /// How long each call into the plugin may take; nil: no limit.
    public let callTimeout: CallTimeout?

    let table: UnsafeMutablePointer<virLockDriver>
    private var handle: UnsafeMutableRawPointer?

    /// Loads `<pluginDir>/<name>.so` and initialises it with `configFile`.
    /// With a `callTimeout`, a call that outlives it ends the process (see CallTimeout).
    public static func load(
        name: String, pluginDir: String, configFile: String?,
        callTimeout: CallTimeout? = nil
    ) throws(LockError) -> LockPlugin {
        try PluginName.validate(name)
        return try LockPlugin(path: "\(pluginDir)/\(name).so", name: name, configFile: configFile, callTimeout: callTimeout)
    }

    /// Loads a plugin file by path (for `lockmgr info` on any .so).
    public convenience init(path: String, configFile: String?, callTimeout: CallTimeout? = nil) throws(LockError) {
        try self.init(path: path, name: Self.name(ofFile: path), configFile: configFile, callTimeout: callTimeout)
    }

    /// The name a plugin file goes by: `<dir>/NAME.so` → NAME (a file not
    /// ending in `.so` keeps its whole name).
    public static func name(ofFile path: String) -> String {
        let file = path.splitBytes(at: "/").last ?? path
        return file.hasSuffix(".so") ? String(file.dropLast(3)) : file
    }

    private init(path: String, name: String, configFile: String?, callTimeout: CallTimeout?) throws(LockError) {
        if let callTimeout, !callTimeout.isUnlimited { try CallWatchdog.shared.start() }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw .config("lock plugin '\(name)' not found: \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw .config("lock plugin '\(name)': \(path) is not a regular file")
        }
        // RTLD_NODELETE: a plugin carrying a Swift runtime must never be unmapped.
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            throw .config("lock plugin '\(name)': cannot load \(path): \(Self.dlerrorText())")
        }
        guard let symbol = dlsym(handle, "virLockDriverImpl") else {
            dlclose(handle)
            throw .config("lock plugin '\(name)': \(path) does not export virLockDriverImpl (not a lock driver plugin)")
        }
        let table = symbol.assumingMemoryBound(to: virLockDriver.self)
        let version = ABIVersion(rawValue: table.pointee.version)
        guard version.major == ABIVersion.current.major else {
            dlclose(handle)
            throw .config("lock plugin '\(name)': ABI version \(version) is not supported (this host speaks \(ABIVersion.current))")
        }
        if let missing = Self.missingCallback(table.pointee) {
            dlclose(handle)
            throw .config("lock plugin '\(name)': callback '\(missing)' is NULL")
        }

        self.name = name
        self.path = path
        self.version = version
        self.flags = DriverFlags(rawValue: table.pointee.flags)
        self.configFile = configFile
        self.callTimeout = callTimeout
        self.table = table
        self.handle = handle

        // libvirt's own plugins run on libvirt.so.0, which must be initialised first.
        LibvirtRuntime.refresh()
        PluginErrors.reset()
        // A plugin keeps one configuration per process (libvirt loads each
        // plugin once): a second load must not silently run with the first
        // load's config, so a different config is refused.
        let rc: Int32 = try LoadedLibraries.lock.withLock { () throws(LockError) -> Int32 in
            if let first = LoadedLibraries.configFile(of: handle), first != configFile {
                dlclose(handle)
                throw LockError.config(
                    "lock plugin '\(name)' is already loaded in this process with config \(first ?? "none"); "
                        + "a process uses one config per plugin (use another process for \(configFile ?? "no config"))")
            }
            let rc = guarded("drvInit") {
                configFile.withOptionalCString { cfg in table.pointee.drvInit(UInt32(VIR_LOCK_MANAGER_VERSION), cfg, 0) }
            }
            if rc == 0 { LoadedLibraries.retain(handle, configFile: configFile) }
            return rc
        }
        if rc < 0 {
            let error = PluginErrors.take(operation: "drvInit", plugin: name)
            dlclose(handle)
            self.handle = nil
            throw LockError(error.kind, "lock plugin '\(name)' failed to initialise: \(error.message)")
        }
    }

    /// Calls `drvDeinit` and closes the library, unless the plugin refused.
    /// While other LockPlugin objects use the same library, only closes it.
    public func unload() throws(LockError) {
        guard let handle else { return }
        PluginErrors.reset()
        let refused = LoadedLibraries.lock.withLock {
            // Only the last user deinitialises; a plugin returning -1 asks
            // to stay loaded (libvirt's rule) and stays tracked, so its
            // config is still checked against later loads.
            guard LoadedLibraries.isLastUser(handle) else {
                LoadedLibraries.release(handle)
                return false
            }
            guard guarded("drvDeinit", { table.pointee.drvDeinit() }) == 0 else { return true }
            LoadedLibraries.release(handle)
            return false
        }
        if refused {
            throw PluginErrors.take(operation: "drvDeinit", plugin: name)
        }
        self.handle = nil
        dlclose(handle)
    }

    public var isLoaded: Bool { handle != nil }

    /// A manager for one object: libvirt's drvNew.
    public func makeManager(for object: LockObject, flags: NewFlags = []) throws(LockError) -> LockManager {
        guard isLoaded else { throw .internalError("lock plugin '\(name)' is unloaded") }
        return try LockManager(plugin: self, object: object, flags: flags)
    }

    /// Runs one call into the plugin under its call timeout.
    func guarded<R>(_ operation: String, _ call: () -> R) -> R {
        CallWatchdog.shared.guarding(callTimeout, plugin: name, operation: operation, call)
    }

    /// Translates the last failure of an entry point into a LockError.
    func failure(_ operation: String) -> LockError {
        PluginErrors.take(operation: operation, plugin: name)
    }

    private static func missingCallback(_ t: virLockDriver) -> String? {
        let callbacks: [(String, Bool)] = [
            ("drvInit", t.drvInit != nil), ("drvDeinit", t.drvDeinit != nil),
            ("drvNew", t.drvNew != nil), ("drvFree", t.drvFree != nil),
            ("drvAddResource", t.drvAddResource != nil), ("drvAcquire", t.drvAcquire != nil),
            ("drvRelease", t.drvRelease != nil), ("drvInquire", t.drvInquire != nil),
        ]
        return callbacks.first { !$0.1 }?.0
    }

    private static func dlerrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}

/// How many LockPlugin objects use each library. dlopen() hands out the
/// same handle, and the plugin keeps one driver state, however often (and
/// under whatever path) a file is loaded; so, as libvirt's refcounted
/// plugins, drvDeinit runs only when the last user unloads. The lock also
/// orders drvInit/drvDeinit of concurrent loads and unloads.
enum LoadedLibraries {
    static let lock = Mutex()
    nonisolated(unsafe) private static var users: [UnsafeMutableRawPointer: (count: Int, configFile: String?)] = [:]

    /// The config the library was first initialised with, if it is in use.
    static func configFile(of handle: UnsafeMutableRawPointer) -> String?? {
        users[handle].map { $0.configFile }
    }

    static func retain(_ handle: UnsafeMutableRawPointer, configFile: String?) {
        users[handle] = ((users[handle]?.count ?? 0) + 1, users[handle]?.configFile ?? configFile)
    }

    /// Whether one user is left. Call with `lock` held.
    static func isLastUser(_ handle: UnsafeMutableRawPointer) -> Bool {
        (users[handle]?.count ?? 1) <= 1
    }

    /// Forgets one user. Call with `lock` held.
    static func release(_ handle: UnsafeMutableRawPointer) {
        guard let entry = users[handle] else { return }
        users[handle] = entry.count > 1 ? (entry.count - 1, entry.configFile) : nil
    }
}

/// Plugin names become file names: anything that could leave the plugin
/// directory is refused before a path is built.
public enum PluginName {
    public static func validate(_ name: String) throws(LockError) {
        guard !name.isEmpty else { throw .config("lock plugin name is empty") }
        guard name.utf8.count <= 64 else { throw .config("lock plugin name '\(name)' is too long") }
        guard name != ".", name != "..", !name.hasPrefix(".") else {
            throw .config("lock plugin name '\(name)' may not start with '.'")
        }
        for c in name.utf8 {
            let ok =
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
                || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
            guard ok else {
                throw .config(
                    "lock plugin name '\(name)' contains '\(Character(Unicode.Scalar(c)))': names may use letters, digits, '_', '-' and '.' only"
                )
            }
        }
    }
}

extension Optional where Wrapped == String {
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let s): return s.withCString(body)
        case .none: return body(nil)
        }
    }
}
