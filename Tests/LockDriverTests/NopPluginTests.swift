import Foundation
import Harness
import LockDriver
import Testing

/// The nop plugin driven through our host library: every operation
/// succeeds and no state is ever produced, like libvirt's built-in nop.
@Suite struct NopPluginTests {
    let object = LockObject(uuid: UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809")!, name: "vm1", id: 3, pid: 4242)

    @Test func loadsWithVersionAndNoFlags() throws {
        // Every in-process load of nop uses no config: one process, one config per plugin.
        let plugin = try LockPlugin.load(name: "nop", pluginDir: BuildProducts.pluginDir, configFile: nil)
        #expect(plugin.version == ABIVersion.current)
        #expect(plugin.flags == [])
        try plugin.unload()
        #expect(!plugin.isLoaded)
    }

    @Test func everyOperationSucceedsWithoutState() throws {
        let plugin = try LockPlugin.load(name: "nop", pluginDir: BuildProducts.pluginDir, configFile: nil)
        let manager = try plugin.makeManager(for: object, flags: .started)
        try manager.addResource(.disk("/var/lib/images/a.img"))
        try manager.addResource(.disk("/var/lib/images/b.img", mode: .shared))
        try manager.addResource(.lease(key: "k", lockspace: "ls", path: "/leases/k", offset: 1_048_576, mode: .readOnly))
        #expect(try manager.acquire(state: "ignored", flags: [.registerOnly, .restrict], action: .poweroff) == nil)
        #expect(try manager.inquire() == nil)
        #expect(try manager.release() == nil)
    }

    @Test func rejectsUnknownFlagsWithTheBridgeMessage() throws {
        let plugin = try LockPlugin.load(name: "nop", pluginDir: BuildProducts.pluginDir, configFile: nil)
        let manager = try plugin.makeManager(for: object)
        let error = #expect(throws: LockError.self) {
            try manager.acquire(flags: AcquireFlags(rawValue: 0x80))
        }
        #expect(error?.kind == .invalid)
        #expect(error?.message == "nop: drvAcquire: unsupported flags 0x80")
    }

    /// lockmgr's release-everything-held flag: a plugin that does not
    /// implement it says so instead of releasing only what was added.
    @Test func releaseOfEverythingHeldIsRefusedUnlessImplemented() throws {
        let plugin = try LockPlugin.load(name: "nop", pluginDir: BuildProducts.pluginDir, configFile: nil)
        let manager = try plugin.makeManager(for: object)
        let error = #expect(throws: LockError.self) { try manager.release(flags: .allHeld) }
        #expect(error?.kind == .unsupported)
        #expect(error?.message.contains("cannot release everything a process holds") == true, "\(String(describing: error))")
        let unknown = #expect(throws: LockError.self) { try manager.release(flags: ReleaseFlags(rawValue: 0x4)) }
        #expect(unknown?.message == "nop: drvRelease: unsupported flags 0x4")
    }
}

/// One process, one config per plugin: a second load of the same library
/// with another config is refused instead of silently using the first.
@Suite struct PluginConfigPerProcessTests {
    @Test func secondLoadWithAnotherConfigIsRefused() throws {
        let dir = TempDir.make("config-per-process")
        // A copy, not a link: its own library, apart from the nop other tests load.
        try FileManager.default.copyItem(atPath: BuildProducts.library("nop"), toPath: "\(dir)/cfgprobe.so")
        let first = try LockPlugin.load(name: "cfgprobe", pluginDir: dir, configFile: "\(dir)/qemu-a.conf")
        defer { try? first.unload() }
        let same = try LockPlugin.load(name: "cfgprobe", pluginDir: dir, configFile: "\(dir)/qemu-a.conf")
        try same.unload()
        let error = #expect(throws: LockError.self) {
            try LockPlugin.load(name: "cfgprobe", pluginDir: dir, configFile: "\(dir)/qemu-b.conf")
        }
        #expect(error?.kind == .config)
        #expect(error?.message.contains("already loaded in this process with config \(dir)/qemu-a.conf") == true, "\(error?.message ?? "")")
    }
}
