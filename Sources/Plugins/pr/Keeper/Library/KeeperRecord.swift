import LockDriver
import PRProtocol

/// What a keeper watches for one VM on this host: the VM's process, the
/// failure action it was started with, and the resources the plugin holds
/// for it. Written by the plugin at acquire and release, read (and trimmed)
/// by the keeper. One file per VM, `<keeper_dir>/<uuid>.vm`:
///
///     lockmgr-pr-keeper-v1
///     uuid 5a1e0c4e-1111-4a4a-8b8b-000000000001
///     name vm1
///     pid 4242
///     start 123456            (the process's start time, /proc/<pid>/stat field 22)
///     action poweroff
///     uri qemu:///system      (only under libvirt)
///     config /etc/libvirt/qemu-pr.conf
///     disk exclusive iscsi://127.0.0.1:3260/iqn.x:t1/1
///     releasing iscsi://127.0.0.1:3260/iqn.x:t1/1   (a release call failed part-way)
///
/// Values are %-escaped like state string names, so a line never holds a
/// space or a newline of its own.
public struct KeeperRecord: Sendable, Equatable {
    public var vm: UUIDBytes
    public var name: String
    public var pid: Int32
    public var startTime: UInt64
    public var action: FailureAction
    public var uri: String?
    public var configFile: String?
    public var resources: [PRResource]
    /// Resources whose release was asked for but failed part-way: still
    /// given back when the VM exits, but no longer the VM's, so their
    /// disappearance is no loss.
    public var releasing: [String] = []

    public init(
        vm: UUIDBytes, name: String, pid: Int32, startTime: UInt64, action: FailureAction,
        uri: String?, configFile: String?, resources: [PRResource]
    ) {
        self.vm = vm
        self.name = name
        self.pid = pid
        self.startTime = startTime
        self.action = action
        self.uri = uri
        self.configFile = configFile
        self.resources = resources
    }

    static let magic = "lockmgr-pr-keeper-v1"

    /// Whether this record is the one of `process` (same pid, same start).
    public func belongs(to process: VMProcess) -> Bool { pid == process.pid && startTime == process.startTime }

    /// The listed disks' names, for lookups: a record lists up to 256 disks,
    /// and a scan per disk cost tens of thousands of name compares per call.
    private var resourceNames: Set<String> { Set(resources.map(\.name)) }

    /// Adds resources not yet listed (an acquire after a pause or a hotplug).
    public mutating func add(_ more: [PRResource]) {
        var listed = resourceNames
        for r in more where listed.insert(r.name).inserted { resources.append(r) }
    }

    public mutating func remove(_ names: [String]) {
        let gone = Set(names)
        resources.removeAll { gone.contains($0.name) }
        releasing.removeAll { gone.contains($0) }
    }

    public mutating func markReleasing(_ names: [String]) {
        let listed = resourceNames
        var marked = Set(releasing)
        for n in names where listed.contains(n) && marked.insert(n).inserted { releasing.append(n) }
    }

    public var encoded: String {
        var lines = [Self.magic, "uuid \(vm)", "pid \(pid)", "start \(startTime)", "action \(action)"]
        if !name.isEmpty { lines.append("name \(PRState.escape(name))") }
        if let uri { lines.append("uri \(PRState.escape(uri))") }
        if let configFile { lines.append("config \(PRState.escape(configFile))") }
        for r in resources { lines.append("disk \(r.mode.rawValue) \(PRState.escape(r.name))") }
        for n in releasing { lines.append("releasing \(PRState.escape(n))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a record; `origin` names the file in errors.
    public init(decoding text: String, origin: String) throws(LockError) {
        let lines = text.splitBytes(at: "\n")
        guard lines.first == Self.magic else { throw Self.bad(origin, 1, "it does not start with '\(Self.magic)'") }
        var vm: UUIDBytes?, name = "", pid: Int32?, start: UInt64?, action: FailureAction?
        var uri: String?, config: String?, resources: [PRResource] = [], releasing: [String] = []
        var listed: Set<String> = []
        for (i, line) in lines.enumerated().dropFirst() {
            let fields = line.splitBytes(at: " ")
            guard fields.count >= 2 else { throw Self.bad(origin, i + 1, "'\(line)' is not 'field value'") }
            let value = fields[1]
            switch (fields[0], fields.count) {
            case ("uuid", 2): vm = UUIDBytes(value)
            case ("name", 2): name = try Self.unescape(value, origin, i + 1)
            case ("pid", 2): pid = Int32(value)
            case ("start", 2): start = UInt64(value)
            case ("action", 2): action = FailureAction(name: value)
            case ("uri", 2): uri = try Self.unescape(value, origin, i + 1)
            case ("config", 2): config = try Self.unescape(value, origin, i + 1)
            case ("disk", 3):
                guard let mode = AccessMode(rawValue: value) else { throw Self.bad(origin, i + 1, "unknown disk mode '\(value)'") }
                let name = try Self.unescape(fields[2], origin, i + 1)
                do { resources.append(try PRResource(name, mode: mode)) } catch {
                    throw Self.bad(origin, i + 1, error.message)
                }
                listed.insert(name)
            case ("releasing", 2):
                let name = try Self.unescape(value, origin, i + 1)
                guard listed.contains(name) else {
                    throw Self.bad(origin, i + 1, "'releasing' names a disk not listed before it")
                }
                releasing.append(name)
            default:
                throw Self.bad(origin, i + 1, "unknown or malformed line '\(line)'")
            }
        }
        guard let vm, let pid, pid > 0, let start, let action else {
            throw Self.bad(origin, lines.count, "uuid, pid, start and action are required")
        }
        self.init(
            vm: vm, name: name, pid: pid, startTime: start, action: action, uri: uri, configFile: config,
            resources: resources)
        self.releasing = releasing
    }

    /// Values are escaped as in state strings, but a bad one is this
    /// file's error, at its line (found by fuzzing: it read "invalid pr
    /// state string: resource field 3" without naming the file).
    private static func unescape(_ value: String, _ origin: String, _ line: Int) throws(LockError) -> String {
        do {
            return try PRState.unescape(value, field: line)
        } catch {
            throw bad(
                origin, line,
                "'\(value)' is not %-escaped as the plugin writes values (upper-case %XX for every byte but letters, digits and -._~/:@+)")
        }
    }

    static func bad(_ origin: String, _ line: Int, _ why: String) -> LockError {
        .internalError("\(origin):\(line): corrupt keeper record: \(why)")
    }
}
