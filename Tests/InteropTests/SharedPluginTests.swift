import Foundation
import LockDriver
import Testing
import TestSupport

/// Loading the same plugin file twice gives two LockPlugin objects over one
/// mapped library and one driver state (dlopen returns the same handle).
/// Like libvirt's refcounted plugins, unloading one must not deinitialise
/// the library under the other.
@Suite struct SharedPluginTests {
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
}
