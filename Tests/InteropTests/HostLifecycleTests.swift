import Foundation
import Glibc
import Harness
import LockDriver
import Testing

/// The host library follows libvirt's lifecycle rules for plugins and
/// managers, which plugins written for libvirt rely on.
@Suite struct HostLifecycleTests {
    /// Loading the same plugin file twice gives two LockPlugin objects over
    /// one mapped library and one driver state (dlopen returns the same
    /// handle). Like libvirt's refcounted plugins, unloading one must not
    /// deinitialise the library under the other.
    @Test func unloadingOneLoadKeepsTheOtherWorking() throws {
        let plugin = BuildProducts.library("nop")
        try #require(FileManager.default.fileExists(atPath: plugin), "\(plugin) is missing: run `swift build` before `swift test`")
        // A name of its own; glibc still recognises the already loaded
        // library by its inode, so both loads share one nop driver state.
        let dir = TempDir.make("shared-plugin")
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/twice.so", withDestinationPath: plugin)
        let first = try LockPlugin.load(name: "twice", pluginDir: dir, configFile: nil)
        let second = try LockPlugin.load(name: "twice", pluginDir: dir, configFile: nil)
        try first.unload()
        #expect(!first.isLoaded)
        let object = LockObject(uuid: try #require(UUIDBytes("11111111-2222-3333-4444-555555555555")), name: "vm-t", pid: UInt32(getpid()))
        let manager = try second.makeManager(for: object)
        try manager.addResource(.disk("/var/lib/images/t.img"))
        #expect(try manager.acquire() == nil)
        try second.unload()
    }

    /// A manager whose drvNew failed was never created by the plugin:
    /// libvirt frees it without calling drvFree, and so must we (calling
    /// it, and freeing twice, corrupted the heap and crashed the host).
    @Test func failedNewIsNeverFreedByThePlugin() throws {
        let dir = TempDir.make("new-fails")
        let path = try CFixtures.sharedObject(
            [CFixtures.source("bad_plugin.c"), CFixtures.errorChannelSource],
            named: "newfails.so", in: dir, defines: ["DEFECT_NEW_FAILS"])
        let plugin = try LockPlugin(path: path, configFile: nil)
        defer { try? plugin.unload() }
        let library = try #require(dlopen(path, RTLD_NOW | RTLD_NOLOAD))
        defer { dlclose(library) }
        let freeCalls = try #require(dlsym(library, "bad_free_calls")).assumingMemoryBound(to: Int32.self)
        let uuid = try #require(UUIDBytes("0f0e0d0c-0b0a-0908-0706-050403020100"))

        for _ in 0..<200 {
            let error = #expect(throws: LockError.self) {
                _ = try plugin.makeManager(for: LockObject(uuid: uuid, name: "refused", pid: 1))
            }
            #expect(error == LockError(.invalid, "bad-new: object 'refused' is refused"))
        }
        #expect(freeCalls.pointee == 0)

        do { _ = try plugin.makeManager(for: LockObject(uuid: uuid, name: "accepted", pid: 1)) }
        #expect(freeCalls.pointee == 1)
    }
}
