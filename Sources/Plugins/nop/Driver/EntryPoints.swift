import CLockDriver
import LockDriver

// The C table in Export/nop_export.c points at these functions.
private let bridge = PluginBridge<NopDriver>(name: "nop")

@_cdecl("nop_drvInit")
func nop_drvInit(_ version: UInt32, _ configFile: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    bridge.initialize(version: version, configFile: configFile, flags: flags)
}

@_cdecl("nop_drvDeinit")
func nop_drvDeinit() -> Int32 { bridge.deinitialize() }

@_cdecl("nop_drvNew")
func nop_drvNew(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ n: Int,
                _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.new(m, type: type, nparams: n, params: params, flags: flags)
}

@_cdecl("nop_drvFree")
func nop_drvFree(_ m: UnsafeMutablePointer<virLockManager>?) { bridge.free(m) }

@_cdecl("nop_drvAddResource")
func nop_drvAddResource(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ name: UnsafePointer<CChar>?,
                        _ n: Int, _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.addResource(m, type: type, name: name, nparams: n, params: params, flags: flags)
}

@_cdecl("nop_drvAcquire")
func nop_drvAcquire(_ m: UnsafeMutablePointer<virLockManager>?, _ state: UnsafePointer<CChar>?, _ flags: UInt32,
                    _ action: virDomainLockFailureAction, _ fd: UnsafeMutablePointer<Int32>?) -> Int32 {
    bridge.acquire(m, state: state, flags: flags, action: action, fd: fd)
}

@_cdecl("nop_drvRelease")
func nop_drvRelease(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.release(m, state: state, flags: flags)
}

@_cdecl("nop_drvInquire")
func nop_drvInquire(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.inquire(m, state: state, flags: flags)
}

// Compile-time check that every entry point matches the C typedef.
private let signatureCheck: (virLockDriverInit, virLockDriverDeinit, virLockDriverNew, virLockDriverFree,
                             virLockDriverAddResource, virLockDriverAcquire, virLockDriverRelease,
                             virLockDriverInquire) =
    (nop_drvInit, nop_drvDeinit, nop_drvNew, nop_drvFree, nop_drvAddResource, nop_drvAcquire,
     nop_drvRelease, nop_drvInquire)
