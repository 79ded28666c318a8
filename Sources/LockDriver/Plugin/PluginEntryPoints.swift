import CLockDriver

/// The eight C entry points as the generic trampolines in Sources/PluginEntry
/// see a plugin. `PluginBridge` implements them for a `LockPluginDriver`; a
/// plugin hands its bridge over with `lockmgr_plugin_bridge()`.
public class PluginEntryPoints: @unchecked Sendable {
    init() {}

    /// What the plugin's `lockmgr_plugin_bridge()` returns. The bridge is a
    /// global of the plugin, alive as long as the (pinned) plugin is.
    public var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    public func initialize(version: UInt32, configFile: UnsafePointer<CChar>?, flags: UInt32) -> Int32 { unimplemented() }
    public func deinitialize() -> Int32 { unimplemented() }
    public func new(
        _ manager: UnsafeMutablePointer<virLockManager>?, type: UInt32, nparams: Int,
        params: UnsafeMutablePointer<virLockManagerParam>?, flags: UInt32
    ) -> Int32 { unimplemented() }
    public func free(_ manager: UnsafeMutablePointer<virLockManager>?) {}
    public func addResource(
        _ manager: UnsafeMutablePointer<virLockManager>?, type: UInt32,
        name: UnsafePointer<CChar>?, nparams: Int,
        params: UnsafeMutablePointer<virLockManagerParam>?, flags: UInt32
    ) -> Int32 { unimplemented() }
    public func acquire(
        _ manager: UnsafeMutablePointer<virLockManager>?, state: UnsafePointer<CChar>?,
        flags: UInt32, action: virDomainLockFailureAction,
        fd: UnsafeMutablePointer<Int32>?
    ) -> Int32 { unimplemented() }
    public func release(
        _ manager: UnsafeMutablePointer<virLockManager>?,
        state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, flags: UInt32
    ) -> Int32 { unimplemented() }
    public func inquire(
        _ manager: UnsafeMutablePointer<virLockManager>?,
        state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, flags: UInt32
    ) -> Int32 { unimplemented() }

    private func unimplemented() -> Int32 {
        lockmgr_plugin_report_error(LockErrorKind.internalError.rawValue, "lock plugin has no driver behind its entry points")
        return -1
    }
}
