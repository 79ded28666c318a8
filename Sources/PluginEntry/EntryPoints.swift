import CLockDriver
import LockDriver

// The eight functions every plugin's C table (LOCKMGR_EXPORT_DRIVER) points
// at. Each plugin links its own copy, kept local by the plugin's version
// script, and reaches its driver through lockmgr_plugin_bridge().

private let bridge: PluginEntryPoints = Unmanaged<PluginEntryPoints>.fromOpaque(lockmgr_plugin_bridge())
    .takeUnretainedValue()

@_cdecl("lockmgr_drvInit")
func lockmgr_drvInit(_ version: UInt32, _ configFile: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    bridge.initialize(version: version, configFile: configFile, flags: flags)
}

@_cdecl("lockmgr_drvDeinit")
func lockmgr_drvDeinit() -> Int32 { bridge.deinitialize() }

@_cdecl("lockmgr_drvNew")
func lockmgr_drvNew(
    _ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ n: Int,
    _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32
) -> Int32 {
    bridge.new(m, type: type, nparams: n, params: params, flags: flags)
}

@_cdecl("lockmgr_drvFree")
func lockmgr_drvFree(_ m: UnsafeMutablePointer<virLockManager>?) { bridge.free(m) }

@_cdecl("lockmgr_drvAddResource")
func lockmgr_drvAddResource(
    _ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ name: UnsafePointer<CChar>?,
    _ n: Int, _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32
) -> Int32 {
    bridge.addResource(m, type: type, name: name, nparams: n, params: params, flags: flags)
}

@_cdecl("lockmgr_drvAcquire")
func lockmgr_drvAcquire(
    _ m: UnsafeMutablePointer<virLockManager>?, _ state: UnsafePointer<CChar>?, _ flags: UInt32,
    _ action: virDomainLockFailureAction, _ fd: UnsafeMutablePointer<Int32>?
) -> Int32 {
    bridge.acquire(m, state: state, flags: flags, action: action, fd: fd)
}

@_cdecl("lockmgr_drvRelease")
func lockmgr_drvRelease(
    _ m: UnsafeMutablePointer<virLockManager>?,
    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32
) -> Int32 {
    bridge.release(m, state: state, flags: flags)
}

@_cdecl("lockmgr_drvInquire")
func lockmgr_drvInquire(
    _ m: UnsafeMutablePointer<virLockManager>?,
    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32
) -> Int32 {
    bridge.inquire(m, state: state, flags: flags)
}

// Compile-time check that every entry point matches the C typedef.
private let signatureCheck:
    (
        virLockDriverInit, virLockDriverDeinit, virLockDriverNew, virLockDriverFree,
        virLockDriverAddResource, virLockDriverAcquire, virLockDriverRelease,
        virLockDriverInquire
    ) =
        (
            lockmgr_drvInit, lockmgr_drvDeinit, lockmgr_drvNew, lockmgr_drvFree, lockmgr_drvAddResource,
            lockmgr_drvAcquire, lockmgr_drvRelease, lockmgr_drvInquire
        )
