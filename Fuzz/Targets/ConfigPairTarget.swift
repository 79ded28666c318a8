import Glibc
import LockDriver
import PRProtocol
import PRTransport
import SanlockCore

/// The host config and the plugin config it selects, read as the host
/// reads them (libvirt's way: `lock_manager` in qemu.conf, then
/// `<config_dir>/<driver>-<name>.conf`). The input is both files, split at
/// its first NUL byte. Promises: each file's errors are config errors
/// naming that file; the plugin's config file stays inside config_dir
/// whatever the names say; the selected plugin's parser (both, for a name
/// that is neither) reads the second file or names it in its error.
enum ConfigPairTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        let split = bytes.firstIndex(of: 0) ?? bytes.endIndex
        let host = Array(bytes[..<split])
        let plugin = split < bytes.endIndex ? Array(bytes[(split + 1)...]) : []

        guard let dir = directory else { throw FuzzFailure(message: "cannot create a directory in /tmp") }
        let hostFile = "\(dir)/lockmgr.conf"
        var written: [String] = []
        defer { for file in written { unlink(file) } }
        try save(host, to: hostFile)
        written.append(hostFile)

        let settings: HostSettings
        do {
            // config_dir is the fuzzer's; the plugin file is then read from ours.
            settings = try HostSettings.resolve(
                configPath: hostFile, overrides: HostSettings.Overrides(configDir: dir),
                layout: InstallLayout(prefix: "/usr/local"), environment: { _ in nil })
        } catch {
            try expect(
                error.kind == .config && error.message.hasPrefix(hostFile + ":"),
                "the host config failed with a \(error.kind) not naming \(hostFile): \(error.message)")
            return
        }
        let pluginFile = settings.pluginConfigFile
        try expect(
            pluginFile == "\(dir)/\(settings.driver)-\(settings.lockManager).conf"
                && !settings.driver.containsByte("/") && !settings.lockManager.containsByte("/")
                && pluginFile.utf8.dropFirst(dir.utf8.count + 1).first != UInt8(ascii: "."),
            "plugin config \(pluginFile) for lock manager '\(settings.lockManager)', driver '\(settings.driver)' leaves \(dir)")
        try save(plugin, to: pluginFile)
        written.append(pluginFile)

        let name = settings.lockManager
        if name != "pr" {
            do { _ = try SanlockConfig.load(path: pluginFile) } catch { try expectNames(error, pluginFile, "the sanlock config") }
        }
        if name != "sanlock" {
            do {
                _ = try PRConfig.load(
                    path: pluginFile, systemInitiatorFile: "/nonexistent/initiatorname",
                    machineIDFile: "/nonexistent/machine-id")
            } catch {
                try expectNames(error, pluginFile, "the pr config")
            }
        }
    }

    /// One directory per process (emptied after every input, left empty
    /// at exit): a directory per input would halve the executions.
    private static let directory: String? = {
        var template = Array("/tmp/lockmgr-fuzz-pair-XXXXXX".utf8CString)
        return mkdtemp(&template).map { String(cString: $0) }
    }()

    private static func save(_ bytes: [UInt8], to path: String) throws(FuzzFailure) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FuzzFailure(message: "cannot create \(path): \(Errno.current)") }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard n == bytes.count else { throw FuzzFailure(message: "cannot write \(path): \(Errno.current)") }
    }

    private static func expectNames(_ error: LockError, _ file: String, _ what: String) throws(FuzzFailure) {
        try expect(
            error.kind == .config && error.message.hasPrefix(file + ":"),
            "\(what) failed with a \(error.kind) not naming \(file): \(error.message)")
    }
}
