import CLockDriver
import LockDriver

// The C table in Export/sanlock_export.c points at these functions.
private let bridge = PluginBridge<SanlockDriver>(name: "sanlock")

@_cdecl("sanlock_drvInit")
func sanlock_drvInit(_ version: UInt32, _ configFile: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    bridge.initialize(version: version, configFile: configFile, flags: flags)
}

@_cdecl("sanlock_drvDeinit")
func sanlock_drvDeinit() -> Int32 { bridge.deinitialize() }

@_cdecl("sanlock_drvNew")
func sanlock_drvNew(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ n: Int,
                _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.new(m, type: type, nparams: n, params: params, flags: flags)
}

@_cdecl("sanlock_drvFree")
func sanlock_drvFree(_ m: UnsafeMutablePointer<virLockManager>?) { bridge.free(m) }

@_cdecl("sanlock_drvAddResource")
func sanlock_drvAddResource(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ name: UnsafePointer<CChar>?,
                        _ n: Int, _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.addResource(m, type: type, name: name, nparams: n, params: params, flags: flags)
}

@_cdecl("sanlock_drvAcquire")
func sanlock_drvAcquire(_ m: UnsafeMutablePointer<virLockManager>?, _ state: UnsafePointer<CChar>?, _ flags: UInt32,
                    _ action: virDomainLockFailureAction, _ fd: UnsafeMutablePointer<Int32>?) -> Int32 {
    bridge.acquire(m, state: state, flags: flags, action: action, fd: fd)
}

@_cdecl("sanlock_drvRelease")
func sanlock_drvRelease(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.release(m, state: state, flags: flags)
}

@_cdecl("sanlock_drvInquire")
func sanlock_drvInquire(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.inquire(m, state: state, flags: flags)
}

// Compile-time check that every entry point matches the C typedef.
private let signatureCheck: (virLockDriverInit, virLockDriverDeinit, virLockDriverNew, virLockDriverFree,
                             virLockDriverAddResource, virLockDriverAcquire, virLockDriverRelease,
                             virLockDriverInquire) =
    (sanlock_drvInit, sanlock_drvDeinit, sanlock_drvNew, sanlock_drvFree, sanlock_drvAddResource, sanlock_drvAcquire,
     sanlock_drvRelease, sanlock_drvInquire)
