import CPRShim
import Glibc
import LockDriver

/// One path of a dm-multipath map: the SCSI disk underneath (its own I_T
/// nexus to the LU) and whether dm-multipath uses it now.
public struct MultipathPath: Sendable, Equatable {
    /// The disk's node, /dev/sdX.
    public var devicePath: String
    /// "major:minor", as dm-multipath names it.
    public var number: String
    /// dm-multipath has it active ("A"), not failed ("F").
    public var active: Bool
    /// The SCSI device answers (sysfs state "running"): not offline, not
    /// blocked while its transport recovers.
    public var running: Bool

    public init(devicePath: String, number: String, active: Bool, running: Bool) {
        self.devicePath = devicePath
        self.number = number
        self.active = active
        self.running = running
    }

    /// A path a PR command can be sent down now without waiting on a dead transport.
    public var usable: Bool { active && running }
}

/// What the keeper needs of the system to find a map's paths: sysfs, the
/// device-mapper status ioctl, stat. Tests pass a fake.
public protocol MultipathSystem {
    /// "major:minor" of a block device node; nil if `path` is not one.
    func blockDeviceNumber(_ path: String) -> String?
    /// A sysfs file's first line, trimmed; nil if it cannot be read.
    func read(_ path: String) -> String?
    /// A directory's entries; empty if it cannot be read.
    func list(_ path: String) -> [String]
    /// `dmsetup status NAME`: "TYPE PARAMS" per target; nil on failure.
    func dmStatus(_ name: String) -> String?
}

/// The dm-multipath map behind a device path, if it is one.
public enum MultipathMap {
    /// The paths of the map `devicePath` names (a /dev/mapper node or
    /// /dev/dm-N); nil when it is not a single-target multipath map.
    public static func paths(of devicePath: String, system: MultipathSystem = KernelMultipathSystem()) -> [MultipathPath]? {
        guard let number = system.blockDeviceNumber(devicePath) else { return nil }
        let sys = "/sys/dev/block/\(number)"
        guard let name = system.read("\(sys)/dm/name"), let status = system.dmStatus(name) else { return nil }
        let lines = status.splitBytes(at: "\n")
        guard lines.count == 1, lines[0].hasPrefix("multipath ") else { return nil }
        let states = pathStates(status: lines[0])
        var result: [MultipathPath] = []
        for disk in system.list("\(sys)/slaves").sorted() {
            guard let number = system.read("/sys/class/block/\(disk)/dev") else { continue }
            result.append(
                MultipathPath(
                    devicePath: "/dev/\(disk)", number: number, active: states[number] ?? false,
                    running: system.read("/sys/class/block/\(disk)/device/state") == "running"))
        }
        return result
    }

    /// Path → active, from a multipath target's status line: each path
    /// appears as "MAJOR:MINOR A|F FAILCOUNT ...".
    public static func pathStates(status: String) -> [String: Bool] {
        let words = status.splitBytes(at: " ")
        var states: [String: Bool] = [:]
        for (i, word) in words.enumerated() where i + 1 < words.count && isDeviceNumber(word) {
            switch words[i + 1] {
            case "A": states[word] = true
            case "F": states[word] = false
            default: continue
            }
        }
        return states
    }

    static func isDeviceNumber(_ word: String) -> Bool {
        let parts = word.splitBytes(at: ":", omittingEmpty: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }
}

/// The running kernel's view.
public struct KernelMultipathSystem: MultipathSystem {
    public init() {}

    public func blockDeviceNumber(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFBLK else { return nil }
        // glibc's encoding of dev_t (sys/sysmacros.h; the macros are not visible to Swift).
        let dev = UInt64(st.st_rdev)
        let major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~UInt64(0xFFF))
        let minor = (dev & 0xFF) | ((dev >> 12) & ~UInt64(0xFF))
        return "\(major):\(minor)"
    }

    public func read(_ path: String) -> String? {
        guard let file = fopen(path, "re") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.trimmingSpaces
    }

    public func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func dmStatus(_ name: String) -> String? {
        var out = [CChar](repeating: 0, count: 8192)
        guard lockmgr_dm_status(name, &out, out.count) == 0 else { return nil }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.last, c == "\n" || c == " " || c == "\t" { s = s.dropLast() }
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        return String(s)
    }
}
