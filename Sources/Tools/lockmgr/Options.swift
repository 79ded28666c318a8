import ArgumentParser
import LockDriver

/// Options every subcommand shares: which plugin, where it and its config live, output format.
struct HostOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Host config file.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Plugin to use, overriding the config's lockManager.", valueName: "name"))
    var plugin: String?

    @Option(name: .customLong("plugin-dir"), help: ArgumentHelp("Directory of <name>.so plugins.", valueName: "dir"))
    var pluginDir: String?

    @Option(name: .customLong("config-dir"), help: ArgumentHelp("Directory of <driver>-<name>.conf plugin configs.", valueName: "dir"))
    var configDir: String?

    @Option(name: .long, help: ArgumentHelp("Driver name in plugin config file names (default qemu).", valueName: "name"))
    var driver: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Seconds one plugin call may take; then lockmgr exits 69 (0: no limit; default \(CallTimeout.defaultSeconds)).",
            valueName: "seconds"))
    var timeout: UInt32?

    @Flag(name: .long, help: "Print results as JSON on stdout.")
    var json = false

    func settings(plugin: String? = nil) throws(LockError) -> HostSettings {
        try HostSettings.resolve(
            configPath: config,
            overrides: .init(
                lockManager: plugin ?? self.plugin, pluginDir: pluginDir, configDir: configDir, driver: driver,
                callTimeout: timeout))
    }
}

/// The object locks are taken for: libvirt's five domain parameters.
struct ObjectOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Object (VM) UUID.", valueName: "uuid"))
    var uuid: String

    @Option(help: ArgumentHelp("Object (VM) name.", valueName: "name"))
    var name: String

    @Option(help: ArgumentHelp("Object (VM) id.", valueName: "n"))
    var id: UInt32 = 0

    @Option(help: ArgumentHelp("Process that owns the locks (default: this process).", valueName: "pid"))
    var pid: UInt32?

    @Option(help: ArgumentHelp("Hypervisor connection URI passed to the plugin.", valueName: "uri"))
    var uri: String?

    func validate() throws {
        guard UUIDBytes(uuid) != nil else { throw ValidationError("--uuid '\(uuid)' is not a UUID") }
        guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
    }

    func object(defaultPid: UInt32) -> LockObject {
        LockObject(
            uuid: UUIDBytes(uuid) ?? UUIDBytes(bytes: [UInt8](repeating: 0, count: 16))!,
            name: name, id: id, pid: pid ?? defaultPid, uri: uri)
    }
}

/// The resources to lock, in the order they are added.
struct ResourceOptions: ParsableArguments {
    @Option(name: .customLong("disk"), help: ArgumentHelp("Disk to lock exclusively (path or URL).", valueName: "path"))
    var disks: [String] = []

    @Option(name: .customLong("shared-disk"), help: ArgumentHelp("Disk to lock shared.", valueName: "path"))
    var sharedDisks: [String] = []

    @Option(name: .customLong("readonly-disk"), help: ArgumentHelp("Disk used read-only.", valueName: "path"))
    var readonlyDisks: [String] = []

    @Option(
        name: .customLong("lease"),
        help: ArgumentHelp("Explicit lease: key=K,lockspace=LS,path=P[,offset=N][,shared|,readonly].", valueName: "spec"))
    var leases: [String] = []

    func validate() throws {
        for spec in leases { _ = try Self.parseLease(spec) }
    }

    var resources: [LockResource] {
        disks.map { .disk($0) } + sharedDisks.map { .disk($0, mode: .shared) }
            + readonlyDisks.map { .disk($0, mode: .readOnly) } + leases.compactMap { try? Self.parseLease($0) }
    }

    static func parseLease(_ spec: String) throws -> LockResource {
        var fields: [String: String] = [:]
        var mode = AccessMode.exclusive
        for part in spec.splitBytes(at: ",", omittingEmpty: false) {
            if part == "shared" { mode = .shared; continue }
            if part == "readonly" { mode = .readOnly; continue }
            guard let eq = part.firstIndex(ofByte: "="), eq != part.startIndex else {
                throw ValidationError("--lease '\(spec)': expected key=value, got '\(part)'")
            }
            let key = String(part[..<eq])
            guard ["key", "lockspace", "path", "offset"].contains(key) else {
                throw ValidationError("--lease '\(spec)': unknown field '\(key)'")
            }
            fields[key] = String(part[part.utf8.index(after: eq)...])
        }
        guard let key = fields["key"], !key.isEmpty else { throw ValidationError("--lease '\(spec)': missing key=") }
        guard let lockspace = fields["lockspace"], !lockspace.isEmpty else {
            throw ValidationError("--lease '\(spec)': missing lockspace=")
        }
        guard let path = fields["path"], !path.isEmpty else { throw ValidationError("--lease '\(spec)': missing path=") }
        var offset: UInt64 = 0
        if let text = fields["offset"] {
            guard let v = UInt64(text) else { throw ValidationError("--lease '\(spec)': offset '\(text)' is not a number") }
            offset = v
        }
        return .lease(key: key, lockspace: lockspace, path: path, offset: offset, mode: mode)
    }
}

/// How to acquire: state from a migration or pause, flags, failure action.
struct AcquireOptions: ParsableArguments {
    @Option(help: ArgumentHelp("State string from an earlier release/inquire (migration, resume).", valueName: "state"))
    var state: String?

    @Flag(name: .customLong("register-only"), help: "Register the process with the backend, take no locks.")
    var registerOnly = false

    @Flag(name: .long, help: "Forbid further lock calls from the registered process.")
    var restrict = false

    @Option(
        help: ArgumentHelp(
            "Failure action when a lock is lost: default, poweroff, restart, pause, ignore.",
            valueName: "action"))
    var action: String = "default"

    func validate() throws {
        guard FailureAction(name: action) != nil else {
            throw ValidationError("--action '\(action)' is not one of default, poweroff, restart, pause, ignore")
        }
    }

    var flags: AcquireFlags {
        var f: AcquireFlags = []
        if registerOnly { f.insert(.registerOnly) }
        if restrict { f.insert(.restrict) }
        return f
    }

    var failureAction: FailureAction { FailureAction(name: action) ?? .default }
}
