import CLockDriver
import Glibc

/// One lock manager object of a loaded plugin (libvirt's `virLockManager`):
/// register an object, add resources, then acquire, release or inquire.
public final class LockManager {
    public let plugin: LockPlugin
    public let object: LockObject
    public private(set) var resources: [LockResource] = []
    private let raw: UnsafeMutablePointer<virLockManager>

    init(plugin: LockPlugin, object: LockObject, flags: NewFlags) throws(LockError) {
        // drvNew runs before self is fully initialised: a throw after that
        // point would run deinit, calling drvFree on a manager the plugin
        // never created (libvirt frees it without drvFree too).
        let raw = UnsafeMutablePointer<virLockManager>.allocate(capacity: 1)
        raw.initialize(to: virLockManager(driver: plugin.table, privateData: nil))
        PluginErrors.reset()
        let rc = plugin.guarded("drvNew") {
            CParams.withCArray(object.params) { params, count in
                plugin.table.pointee.drvNew(
                    raw, UInt32(VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN.rawValue),
                    count, params, flags.rawValue)
            }
        }
        if rc < 0 {
            raw.deallocate()
            throw plugin.failure("drvNew")
        }
        self.plugin = plugin
        self.object = object
        self.raw = raw
    }

    deinit {
        plugin.guarded("drvFree") { plugin.table.pointee.drvFree(raw) }
        raw.deallocate()
    }

    public func addResource(_ resource: LockResource) throws(LockError) {
        PluginErrors.reset()
        let rc = plugin.guarded("drvAddResource") {
            CParams.withCArray(resource.params) { params, count in
                resource.name.withCString { name in
                    plugin.table.pointee.drvAddResource(raw, resource.typeCode, name, count, params, resource.mode.flags)
                }
            }
        }
        guard rc == 0 else { throw plugin.failure("drvAddResource") }
        resources.append(resource)
    }

    /// Acquires every added resource. Returns the fd the plugin wants kept
    /// open in the object's process, or nil.
    @discardableResult
    public func acquire(
        state: String? = nil, flags: AcquireFlags = [],
        action: FailureAction = .default
    ) throws(LockError) -> Int32? {
        PluginErrors.reset()
        var fd: Int32 = -1
        let rc = plugin.guarded("drvAcquire") {
            state.withOptionalCString { cState in
                plugin.table.pointee.drvAcquire(
                    raw, cState, flags.rawValue,
                    virDomainLockFailureAction(UInt32(bitPattern: action.rawValue)), &fd)
            }
        }
        guard rc == 0 else { throw plugin.failure("drvAcquire") }
        return fd >= 0 ? fd : nil
    }

    /// Releases every added resource (with `.allHeld`, everything the
    /// object's process holds); returns the state string describing them.
    public func release(flags: ReleaseFlags = []) throws(LockError) -> String? {
        try stateCall("drvRelease") { plugin.table.pointee.drvRelease(raw, $0, flags.rawValue) }
    }

    /// The state string describing the locks currently held.
    public func inquire() throws(LockError) -> String? {
        try stateCall("drvInquire") { plugin.table.pointee.drvInquire(raw, $0, 0) }
    }

    private func stateCall(
        _ operation: String,
        _ call: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32
    ) throws(LockError) -> String? {
        PluginErrors.reset()
        var state: UnsafeMutablePointer<CChar>? = nil
        let rc = plugin.guarded(operation) { call(&state) }
        defer { free(state) }
        guard rc == 0 else { throw plugin.failure(operation) }
        return state.map { String(cString: $0) }
    }
}
