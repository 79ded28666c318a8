import LockDriver

// The generic entry points in the C table (Sources/PluginEntry) reach this
// plugin's driver through here.
private let bridge = PluginBridge<NopDriver>(name: "nop")

@_cdecl("lockmgr_plugin_bridge")
func lockmgr_plugin_bridge() -> UnsafeMutableRawPointer { bridge.opaque }
