import Foundation
import Glibc
import Harness
import LockDriver
import Testing

/// libvirt's own sanlock.so (Debian libvirt-sanlock) loaded and
/// initialised by our host. With `auto_disk_leases = 0` it needs no sanlock
/// daemon to initialise; errors it raises reach us as libvirt's text.
/// Serialized: sanlock.so keeps its configuration in a process-wide static.
@Suite(.serialized) struct LibvirtSanlockTests {
    static let sanlockPlugin = "\(BuildProducts.libvirtPluginDir)/sanlock.so"

    private func config(_ text: String) -> String {
        let path = "\(TempDir.make("sanlock-conf"))/qemu-sanlock.conf"
        TempDir.write(text, to: path)
        return path
    }

    /// Run where /run is an empty private directory (PrivateRunDir), so no
    /// sanlock daemon is reachable at its default /run/sanlock: init must
    /// not need one.
    @Test func initialisesWithoutADaemonAndUsesState() throws {
        try #require(
            FileManager.default.fileExists(atPath: Self.sanlockPlugin),
            "\(Self.sanlockPlugin) is missing: install the Debian package libvirt-sanlock")
        try #require(getenv("SANLOCK_RUN_DIR") == nil, "SANLOCK_RUN_DIR is set: this test needs sanlock's default run dir")
        let conf = config("auto_disk_leases = 0\nrequire_lease_for_disks = 1\n")
        let emptyRun = TempDir.make("sanlock-run")
        let object = LockObject(
            uuid: try #require(UUIDBytes("0b8c2f4e-6a1d-4c3b-9e5f-7a8b9c0d1e2f")), name: "vm-s", id: 5,
            pid: UInt32(getpid()))

        let (version, flags, acquired) = try PrivateRunDir.run(emptyRun) {
            () throws -> (ABIVersion, DriverFlags, Result<Int32?, LockError>) in
            let plugin = try LockPlugin(path: Self.sanlockPlugin, configFile: conf)
            defer { try? plugin.unload() }
            let manager = try plugin.makeManager(for: object, flags: .started)
            try manager.addResource(.disk("/var/lib/images/s.img"))
            return (plugin.version, plugin.flags, Result { () throws(LockError) in try manager.acquire() })
        }
        #expect(version == ABIVersion.current)
        #expect(flags == .usesState)

        // A read/write disk without a lease is refused before any daemon is
        // contacted, with libvirt's message and error class
        // (VIR_ERR_CONFIG_UNSUPPORTED).
        let error = #expect(throws: LockError.self) { try acquired.get() }
        #expect(error?.kind == .config)
        #expect(
            error?.message == "unsupported configuration: Read/write, exclusive access, disks were present, but no leases specified",
            "\(String(describing: error))")
    }

    @Test func initFailureShowsLibvirtsMessage() throws {
        try #require(
            FileManager.default.fileExists(atPath: Self.sanlockPlugin),
            "\(Self.sanlockPlugin) is missing: install the Debian package libvirt-sanlock")
        let error = #expect(throws: LockError.self) {
            _ = try LockPlugin(path: Self.sanlockPlugin, configFile: config("auto_disk_leases = 1\n"))
        }
        // libvirt's sanlock.so classifies this one as VIR_ERR_INTERNAL_ERROR;
        // the host keeps libvirt's class rather than guessing a better one.
        #expect(error?.kind == .internalError)
        #expect(
            error?.message.hasPrefix("lock plugin 'sanlock' failed to initialise: internal error: ") == true,
            "\(String(describing: error))")
        #expect(
            error?.message.contains("Automatic disk lease mode enabled, but no host ID is set") == true,
            "\(String(describing: error))")
    }
}
