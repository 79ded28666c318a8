import Foundation
import Glibc
import Harness
import LockDriver
import Testing

/// One private virtlockd plus libvirt's lockd.so loaded by our host,
/// configured for indirect file leases: each disk gets a lease file named
/// by the SHA-256 of its path in `file_lockspace_dir`, fcntl-locked by
/// virtlockd while held.
///
/// lockd.so keeps its configuration in a process-wide static, so sessions
/// must not overlap: suites using it are serialized.
struct LockdSession {
    static let plugin = "\(BuildProducts.libvirtPluginDir)/lockd.so"

    let dir: String
    let lockspace: String
    let config: String
    var runDir: String { "\(dir)/run" }

    /// What the daemon and the namespace looked like, checked by the test.
    struct Daemon {
        var pid: Int32 = 0
        var namespace: String?
        var threadNamespace: String?
        var exitStatus: Int32?
        var log = ""
    }

    init() throws {
        try #require(
            FileManager.default.fileExists(atPath: Self.plugin),
            "\(Self.plugin) is missing: install the Debian package libvirt-daemon")
        dir = TempDir.make("lockd")
        lockspace = "\(dir)/lockspace"
        config = "\(dir)/qemu-lockd.conf"
        for d in [runDir, lockspace] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        TempDir.write(
            """
            auto_disk_leases = 1
            file_lockspace_dir = "\(lockspace)"
            require_lease_for_disks = 1

            """, to: config)
    }

    /// A fresh (empty) disk image in the session's directory.
    func disk(_ name: String) -> String {
        let path = "\(dir)/\(name)"
        TempDir.write("", to: path)
        return path
    }

    /// The lease file lockd uses for `disk`.
    func leaseFile(for disk: String) throws -> String {
        "\(lockspace)/\(try Self.sha256(disk))"
    }

    /// Starts virtlockd in a private mount namespace, loads lockd.so with
    /// the session's config (its drvInit creates the lockspace in the
    /// daemon), runs `body`, unloads and stops the daemon. Runs on the
    /// namespace's own thread: return observations, check them outside.
    func run<T>(_ body: @escaping (LockPlugin) throws -> T) throws -> (T, Daemon) {
        let runDir = self.runDir, dir = self.dir, config = self.config
        return try PrivateRunDir.run(runDir) { () throws -> (T, Daemon) in
            var daemonInfo = Daemon(threadNamespace: PrivateRunDir.currentThreadNamespace)
            let daemon = try PrivateVirtlockd(runDir: runDir, workDir: dir)
            daemonInfo.pid = daemon.pid
            daemonInfo.namespace = PrivateRunDir.namespace(ofPid: daemon.pid)
            let result: T
            do {
                let plugin = try LockPlugin(path: Self.plugin, configFile: config)
                defer { try? plugin.unload() }
                result = try body(plugin)
            } catch {
                daemon.stop()
                throw error
            }
            daemonInfo.exitStatus = daemon.stop()
            daemonInfo.log = daemon.log
            return (result, daemonInfo)
        }
    }

    static func sha256(_ text: String) throws -> String {
        let result = Command.run(["sha256sum"], timeout: 10, input: text)
        let hash = try #require(result.stdout.split(separator: " ").first.map(String.init), "\(result)")
        try #require(hash.count == 64, "\(result)")
        return hash
    }

    /// The pid holding a conflicting fcntl lock on `path`, or nil if none.
    static func lockHolder(_ path: String) -> Int32? {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var query = flock()
        query.l_type = Int16(F_WRLCK)
        query.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &query) == 0, query.l_type != Int16(F_UNLCK) else { return nil }
        return query.l_pid
    }

    /// Keeps the registration socket lockd hands back out of other tests'
    /// child processes (libvirt leaks it into the VM on purpose).
    static func keepPrivate(_ fd: Int32?) {
        if let fd { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }
}
