import Foundation
import Harness
import Testing

/// The other direction: libvirt's own plugin loader (lock_manager.c inside
/// libvirt.so.0, what libvirtd runs) loads OUR plugin from
/// LIBVIRT_LOCK_MANAGER_PLUGIN_DIR and drives it; errors our plugin raises
/// become libvirt's last error. The host is C/libvirt_loader_host.c.
@Suite struct LibvirtLoaderTests {
    private struct Run {
        var result: CommandResult
        var lines: [String] { result.stdout.split(separator: "\n").map(String.init) }
    }

    /// Builds the host and runs it with `fileName.so` → the built nop plugin.
    private func run(name: String, fileName: String) throws -> Run {
        try #require(
            FileManager.default.fileExists(atPath: CFixtures.libvirtLibrary),
            "\(CFixtures.libvirtLibrary) is missing: install the Debian package libvirt0")
        let nop = BuildProducts.library("nop")
        try #require(FileManager.default.fileExists(atPath: nop), "\(nop) is missing: run `swift build` before `swift test`")
        let dir = TempDir.make("libvirt-loader")
        let program = try CFixtures.executable(
            [CFixtures.source("libvirt_loader_host.c")], named: "libvirt_loader_host",
            in: dir, libraries: [CFixtures.libvirtLibrary])
        let pluginDir = "\(dir)/lock-driver"
        try FileManager.default.createDirectory(atPath: pluginDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(pluginDir)/\(fileName).so", withDestinationPath: nop)
        let result = Command.run(
            [program, name, "\(dir)/etc", "\(dir)/disk.img"],
            environment: ["LIBVIRT_LOCK_MANAGER_PLUGIN_DIR": pluginDir], timeout: 60)
        return Run(result: result)
    }

    @Test func loadsOurPluginAndDrivesACycle() throws {
        let run = try run(name: "ournop", fileName: "ournop")
        #expect(run.result.status == 0, "\(run.result)")
        #expect(
            Array(run.lines.prefix(9)) == [
                "plugin ournop usesState 0",
                "file loaded",  // libvirt dlopen()ed our file...
                "table ours",  // ...and uses our virLockDriverImpl
                "version 1000000",
                "new 0",
                "add disk 0",
                "acquire 0 fd -1",
                "inquire 0 state NULL",
                "release 0 state NULL",
            ])
        #expect(run.lines.suffix(2) == ["free 0", "unref done"])
    }

    /// Our plugin's message and kind reach libvirt's thread-local last
    /// error (domain VIR_FROM_LOCKING = 42, code VIR_ERR_INVALID_ARG = 8),
    /// which is what libvirtd shows its users.
    @Test func ourErrorsBecomeLibvirtsLastError() throws {
        let run = try run(name: "ournop", fileName: "ournop")
        #expect(run.result.status == 0, "\(run.result)")
        #expect(
            run.lines.contains(
                "acquire-badflags -1 error code=8 domain=42 message=invalid argument: nop: drvAcquire: unsupported flags 0x80"))
        #expect(
            run.lines.contains(
                "add-lease-nopath -1 error code=8 domain=42 message=invalid argument: nop: lease 'k1': missing 'path'"))
        // Delivered to libvirt, so not duplicated on stderr.
        #expect(!run.result.stderr.contains("lock driver error"), "\(run.result.stderr)")
    }

    /// Why our plugin is never installed for libvirt under the name "nop":
    /// libvirt substitutes its built-in driver without opening the file.
    @Test func theNameNopIsLibvirtsBuiltIn() throws {
        let run = try run(name: "nop", fileName: "nop")
        #expect(run.result.status == 0, "\(run.result)")
        #expect(run.lines.prefix(3) == ["plugin nop usesState 0", "file not-loaded", "table other"])
        // libvirt's built-in nop accepts any flags, so no error is raised.
        #expect(run.lines.contains { $0.hasPrefix("acquire-badflags 0 ") })
    }
}
