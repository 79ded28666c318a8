import CLockDriver
import LockDriver

// The C table in Export/pr_export.c points at these functions.
private let bridge = PluginBridge<PRDriver>(name: "pr")

@_cdecl("pr_drvInit")
func pr_drvInit(_ version: UInt32, _ configFile: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    bridge.initialize(version: version, configFile: configFile, flags: flags)
}

@_cdecl("pr_drvDeinit")
func pr_drvDeinit() -> Int32 { bridge.deinitialize() }

@_cdecl("pr_drvNew")
func pr_drvNew(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ n: Int,
                _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.new(m, type: type, nparams: n, params: params, flags: flags)
}

@_cdecl("pr_drvFree")
func pr_drvFree(_ m: UnsafeMutablePointer<virLockManager>?) { bridge.free(m) }

@_cdecl("pr_drvAddResource")
func pr_drvAddResource(_ m: UnsafeMutablePointer<virLockManager>?, _ type: UInt32, _ name: UnsafePointer<CChar>?,
                        _ n: Int, _ params: UnsafeMutablePointer<virLockManagerParam>?, _ flags: UInt32) -> Int32 {
    bridge.addResource(m, type: type, name: name, nparams: n, params: params, flags: flags)
}

@_cdecl("pr_drvAcquire")
func pr_drvAcquire(_ m: UnsafeMutablePointer<virLockManager>?, _ state: UnsafePointer<CChar>?, _ flags: UInt32,
                    _ action: virDomainLockFailureAction, _ fd: UnsafeMutablePointer<Int32>?) -> Int32 {
    bridge.acquire(m, state: state, flags: flags, action: action, fd: fd)
}

@_cdecl("pr_drvRelease")
func pr_drvRelease(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.release(m, state: state, flags: flags)
}

@_cdecl("pr_drvInquire")
func pr_drvInquire(_ m: UnsafeMutablePointer<virLockManager>?,
                    _ state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ flags: UInt32) -> Int32 {
    bridge.inquire(m, state: state, flags: flags)
}

// Compile-time check that every entry point matches the C typedef.
private let signatureCheck: (virLockDriverInit, virLockDriverDeinit, virLockDriverNew, virLockDriverFree,
                             virLockDriverAddResource, virLockDriverAcquire, virLockDriverRelease,
                             virLockDriverInquire) =
    (pr_drvInit, pr_drvDeinit, pr_drvNew, pr_drvFree, pr_drvAddResource, pr_drvAcquire,
     pr_drvRelease, pr_drvInquire)
