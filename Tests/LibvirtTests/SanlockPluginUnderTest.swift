import Foundation
import Harness

/// A sanlock lock driver plugin libvirtd is pointed at, through
/// LIBVIRT_LOCK_MANAGER_PLUGIN_DIR: libvirt's own, or ours.
struct SanlockPluginUnderTest: Sendable {
    var label: String
    var pluginDir: String
    /// How the plugin words sanlock's refusal when another process on this
    /// host holds the lease (-EEXIST): each plugin has its own text.
    var conflictText: String
    /// How it words the refusal when another live host holds it (-243).
    var otherHostText: String

    var pluginFile: String { "\(pluginDir)/sanlock.so" }

    static let libvirts = SanlockPluginUnderTest(
        label: "libvirt's sanlock.so", pluginDir: BuildProducts.libvirtPluginDir,
        conflictText: "Failed to acquire lock: File exists",
        otherHostText: "Failed to acquire lock: Lease is held by another host")

    /// Ours, as `swift build` left it (liblockmgr_sanlock.so linked as
    /// sanlock.so). Missing means the test fails, never skips.
    static let lockmgrs = SanlockPluginUnderTest(
        label: "lockmgr's sanlock.so", pluginDir: BuildProducts.pluginDir,
        conflictText: "already held by another process",
        otherHostText: "held by another host that is alive")
}
