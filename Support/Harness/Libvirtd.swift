import Foundation

/// A real libvirtd (Debian's, monolithic) with the QEMU driver, whose lock
/// manager is sanlock loaded from `pluginDir`, backed by a private sanlock
/// daemon. /etc/libvirt and /run/libvirt are shared by the whole machine,
/// so only one of these may exist at a time: tests using it must run
/// serialized, and nothing else may start libvirtd meanwhile.
///
/// `stop()` stops everything it started (domains, libvirtd, virtlogd,
/// sanlock) and restores the configuration files it replaced.
public final class LibvirtHost: @unchecked Sendable {
    public static let uri = "qemu:///system"
    /// The lockspace libvirt's sanlock plugin (and ours) uses for disk leases.
    public static let diskLockspace = "__LIBVIRT__DISKS__"

    public let pluginDir: String
    /// Disk images: world-traversable, because QEMU runs as libvirt-qemu.
    public let imageDir: String
    /// disk_lease_dir: the lockspace file and one lease file per disk.
    public let leaseDir: String
    /// "kvm" if /dev/kvm is usable, else "qemu" (TCG).
    public let domainType: String
    public let sanlock: SanlockDaemon

    private let workDir: String
    private var backups: [ConfigBackup] = []
    private var virtlogd: SpawnedProcess?
    private var libvirtd: SpawnedProcess?
    private var qemuPids: [String: Int32] = [:]

    /// Starts everything; the caller must `stop()` it (also on failure).
    public static func start(pluginDir: String) throws -> LibvirtHost {
        try LibvirtHost(pluginDir: pluginDir)
    }

    private init(pluginDir: String) throws {
        self.pluginDir = pluginDir
        for tool in ["/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "/usr/bin/virsh", "/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-img"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            throw FixtureError("\(tool) is missing: run scripts/install-deps.sh (libvirt-daemon-system, qemu-system-x86, ...)")
        }
        guard FileManager.default.fileExists(atPath: "\(pluginDir)/sanlock.so") else {
            throw FixtureError("no sanlock.so in \(pluginDir): libvirtd would exit at start (build it with `swift build`)")
        }
        workDir = TempDir.make("libvirt")
        imageDir = "\(workDir)/images"
        leaseDir = "\(workDir)/leases"
        for dir in [imageDir, leaseDir] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        for dir in [workDir, imageDir] { chmod(dir, 0o755) }
        domainType = Self.prepareKVM()
        sanlock = try SanlockDaemon(name: "lockmgr-libvirt-\(getpid())")
        do {
            try configure()
            try startVirtlogd()
            try startLibvirtd()
        } catch {
            stop()
            throw error
        }
    }

    /// Without udev /dev/kvm is root-only; QEMU runs as libvirt-qemu (group
    /// kvm). Done before libvirtd starts: it re-probes QEMU whenever the
    /// node's ctime changes. Left in place afterwards, as udev would leave it.
    private static func prepareKVM() -> String {
        var st = stat()
        guard stat("/dev/kvm", &st) == 0 else { return "qemu" }
        if let kvm = getgrnam("kvm"), st.st_gid != kvm.pointee.gr_gid || st.st_mode & 0o777 != 0o660 {
            chown("/dev/kvm", st.st_uid, kvm.pointee.gr_gid)
            chmod("/dev/kvm", 0o660)
        }
        let fd = open("/dev/kvm", O_RDWR)
        guard fd >= 0 else { return "qemu" }
        close(fd)
        return "kvm"
    }

    private func configure() throws {
        backups.append(
            try ConfigBackup(
                replacing: "/etc/libvirt/qemu.conf",
                with: """
                    # Written by lockmgr's LibvirtHost test fixture; restored afterwards.
                    lock_manager = "sanlock"

                    """))
        // io_timeout 1: joining the lockspace takes ~3 s instead of ~21 s.
        // user/group: who libvirt makes own the lease files (the sanlock daemon's user).
        backups.append(
            try ConfigBackup(
                replacing: "/etc/libvirt/qemu-sanlock.conf",
                with: """
                    # Written by lockmgr's LibvirtHost test fixture; restored afterwards.
                    auto_disk_leases = 1
                    disk_lease_dir = "\(leaseDir)"
                    host_id = 1
                    io_timeout = 1
                    user = "root"
                    group = "root"

                    """))
    }

    private func startVirtlogd() throws {
        let socket = "/run/libvirt/virtlogd-sock"
        let started = Date().addingTimeInterval(-1)
        let log = "\(workDir)/virtlogd.log"
        let daemon = try SpawnedProcess(["/usr/sbin/virtlogd"], output: log)
        virtlogd = daemon
        // A stale socket from an earlier run may exist: wait for a fresh one.
        try Self.wait(for: daemon, "virtlogd", log: log, until: "listening on \(socket)", timeout: 10) {
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: socket),
                let created = attrs[.modificationDate] as? Date
            else { return false }
            return created >= started
        }
    }

    private func startLibvirtd() throws {
        // A sanitized build's plugins need the runtime preloaded into libvirtd.
        let preload = try Sanitizer.preloadEnvironment().map { "\($0.key)=\($0.value)" }
        let daemon = try SpawnedProcess(
            [
                try Subreaper.path(), "/usr/bin/env",
                "SANLOCK_RUN_DIR=\(sanlock.runDir)",
                "LIBVIRT_LOCK_MANAGER_PLUGIN_DIR=\(pluginDir)",
            ] + preload
                + ["/usr/sbin/libvirtd"], output: libvirtdLogPath)
        libvirtd = daemon
        try Self.wait(
            for: daemon, "libvirtd", log: libvirtdLogPath, until: "answering `virsh -c \(Self.uri) list`",
            timeout: 60
        ) {
            virsh(["list"], timeout: 10).status == 0
        }
    }

    private var libvirtdLogPath: String { "\(workDir)/libvirtd.log" }

    /// Polls `probe` every 50 ms until it holds; fails early, quoting the
    /// log, if the daemon died, or after `timeout` seconds.
    private static func wait(
        for daemon: SpawnedProcess, _ name: String, log: String, until what: String,
        timeout: TimeInterval, _ probe: () -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !probe() {
            guard daemon.isRunning else {
                throw FixtureError("\(name) exited (status \(daemon.exitStatus ?? -1)) before \(what); \(log) ends:\n\(tail(log))")
            }
            guard Date() < deadline else {
                throw FixtureError("\(name) not \(what) after \(Int(timeout)) s; \(log) ends:\n\(tail(log))")
            }
            usleep(50_000)
        }
    }

    private static func tail(_ path: String, lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// `virsh -c qemu:///system ARGS`.
    @discardableResult
    public func virsh(_ args: [String], timeout: TimeInterval = 60) -> CommandResult {
        Command.run(["/usr/bin/virsh", "-c", Self.uri] + args, timeout: timeout)
    }

    /// The end of libvirtd's log, for failure messages.
    public var libvirtdLog: String { Self.tail(libvirtdLogPath) }

    /// The lock plugin file libvirtd has mapped (symlinks resolved), from
    /// /proc/PID/maps: proof of which plugin is really in use.
    public func loadedLockPlugins() throws -> [String] {
        let pidText = (try? String(contentsOfFile: "/run/libvirtd.pid", encoding: .utf8)) ?? ""
        guard let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FixtureError("cannot read libvirtd's pid from /run/libvirtd.pid")
        }
        guard let data = Self.readProcFile("/proc/\(pid)/maps") else {
            throw FixtureError("cannot read /proc/\(pid)/maps")
        }
        let maps = String(decoding: data, as: UTF8.self)
        let paths = maps.split(separator: "\n").compactMap { line -> String? in
            guard let slash = line.firstIndex(of: "/") else { return nil }
            let path = String(line[slash...])
            return path.hasSuffix("sanlock.so") ? path : nil
        }
        return Array(Set(paths)).sorted()
    }

    /// A new raw 16 MiB disk image; never an existing one (its lease may be live).
    public func createDisk(_ name: String) throws -> String {
        let path = "\(imageDir)/\(name).img"
        guard !FileManager.default.fileExists(atPath: path) else { throw FixtureError("disk \(path) already exists") }
        let result = Command.run(["/usr/bin/qemu-img", "create", "-q", "-f", "raw", path, "16M"], timeout: 30)
        guard result.status == 0 else { throw FixtureError("qemu-img create \(path) failed: \(result)") }
        return path
    }

    /// A tiny domain of this host's type.
    public func domain(_ name: String, disks: [String]) -> TinyDomain {
        TinyDomain(name: name, type: domainType, disks: disks)
    }

    /// `virsh create` (a transient domain); stop() destroys it.
    public func start(_ domain: TinyDomain) throws -> CommandResult {
        let file = "\(workDir)/\(domain.name).xml"
        TempDir.write(domain.xml, to: file)
        let result = virsh(["create", file])
        if result.status == 0, let pid = try? qemuPid(domain.name) { qemuPids[domain.name] = pid }
        return result
    }

    /// The QEMU process of a running domain, from libvirt's pid file, checked
    /// against /proc: it must be a QEMU started for this guest.
    public func qemuPid(_ name: String) throws -> Int32 {
        let file = "/run/libvirt/qemu/\(name).pid"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw FixtureError("no QEMU pid for domain \(name) in \(file)")
        }
        guard Self.isQEMU(pid, guest: name) else {
            throw FixtureError("pid \(pid) from \(file) is not a running QEMU for guest \(name)")
        }
        return pid
    }

    public static func isQEMU(_ pid: Int32, guest name: String) -> Bool {
        guard let data = readProcFile("/proc/\(pid)/cmdline") else { return false }
        let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        // libvirt passes `-name guest=NAME,debug-threads=on`.
        return (argv.first?.contains("qemu-system") ?? false)
            && argv.contains { $0 == "guest=\(name)" || $0.hasPrefix("guest=\(name),") }
    }

    /// /proc files report size 0, and Foundation's whole-file readers stop
    /// short on them: read until EOF.
    private static func readProcFile(_ path: String) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return try? handle.readToEnd()
    }

    /// Tears everything down in reverse order; safe to call twice and after
    /// a partial start.
    public func stop() {
        if libvirtd?.isRunning ?? false {
            for name in qemuPids.keys { virsh(["destroy", name], timeout: 30) }
        }
        libvirtd?.stop(SIGTERM, timeout: 20)
        // Anything libvirtd could not destroy must not outlive the test.
        for (name, pid) in qemuPids where Self.isQEMU(pid, guest: name) { kill(pid, SIGKILL) }
        qemuPids = [:]
        virtlogd?.stop(SIGTERM, timeout: 10)
        sanlock.stop()
        for backup in backups.reversed() { backup.restore() }
        backups = []
    }
}
