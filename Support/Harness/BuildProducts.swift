import Foundation
import LockDriver

/// Where `swift build` put the products the tests exercise: the plugin
/// libraries (`liblockmgr_<name>.so`) and the `lockmgr` tool. The test
/// runner lives in the same directory, so it is found from /proc/self/exe;
/// LOCKMGR_BUILD_DIR overrides that.
public enum BuildProducts {
    public static let binDir: String = {
        if let dir = ProcessInfo.processInfo.environment["LOCKMGR_BUILD_DIR"] { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = (exe as NSString).deletingLastPathComponent
        // The runner may sit inside a bundle directory (…/X.xctest/…).
        while dir.contains(".xctest") { dir = (dir as NSString).deletingLastPathComponent }
        return dir
    }()

    public static var lockmgr: String { "\(binDir)/lockmgr" }

    public static func library(_ plugin: String) -> String { "\(binDir)/liblockmgr_\(plugin).so" }

    /// A plugin directory laid out as installed (`<name>.so`), pointing at
    /// the freshly built libraries. Fails if a plugin was not built: run
    /// `swift build` before `swift test` (make test does).
    public static let pluginDir: String = {
        let dir = TempDir.make("plugins")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: binDir)) ?? []
        for file in files where file.hasPrefix("liblockmgr_") && file.hasSuffix(".so") {
            let name = String(file.dropFirst("liblockmgr_".count).dropLast(3))
            try? FileManager.default.createSymbolicLink(atPath: "\(dir)/\(name).so", withDestinationPath: "\(binDir)/\(file)")
        }
        return dir
    }()

    /// libvirt's own plugins as Debian installs them.
    public static let libvirtPluginDir = "/usr/lib/x86_64-linux-gnu/libvirt/lock-driver"
}

/// Private temporary directories, removed when the test process exits
/// (a full suite makes ~130 MB of them: lease files, LUN images, logs).
/// LOCKMGR_KEEP_TEST_DIRS=1 keeps them for a post-mortem.
public enum TempDir {
    // A pthread lock, which TSan sees: the Synchronization module's Mutex
    // waits on raw futexes it cannot follow, and it reported two tests
    // starting at once as a race on this list.
    private static let lock = LockDriver.Mutex()
    nonisolated(unsafe) private static var made: [String] = []
    private static let owner = getpid()
    private static let removeAtExit: Void = {
        guard ProcessInfo.processInfo.environment["LOCKMGR_KEEP_TEST_DIRS"] != "1" else { return }
        _ = owner
        atexit { TempDir.removeAll() }
    }()

    public static func make(_ label: String) -> String {
        _ = removeAtExit
        var template = Array("/tmp/lockmgr-test-\(label)-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { buf -> String in
            guard let p = mkdtemp(buf.baseAddress!) else { return "/tmp/lockmgr-test-\(label)-\(getpid())" }
            return String(cString: p)
        }
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        lock.withLock { made.append(path) }
        return path
    }

    /// Only the process that made the directories removes them, not a
    /// forked child that exits.
    static func removeAll() {
        guard getpid() == owner else { return }
        let paths = lock.withLock { () -> [String] in
            defer { made.removeAll() }
            return made
        }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    public static func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }
}
