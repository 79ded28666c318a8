/// What a lock plugin written in Swift implements. `PluginBridge` exposes it
/// through the C `virLockDriver` table.
///
/// libvirt builds a fresh manager for every operation (New, AddResource...,
/// one of Acquire/Release/Inquire, Free), so a manager must not rely on
/// memory from an earlier call: everything comes from the object, the
/// resources, the configuration, the state string or the backend itself.
public protocol LockPluginDriver: AnyObject {
    associatedtype Manager: LockPluginManager

    /// `drvInit`: read the plugin's config file (`nil` or missing: defaults).
    init(configFile: String?) throws(LockError)

    /// `drvNew` for a domain.
    func makeManager(for object: LockObject, flags: NewFlags) throws(LockError) -> Manager
}

public protocol LockPluginManager: AnyObject {
    /// `drvAddResource`: validate and remember one resource.
    func addResource(_ resource: LockResource) throws(LockError)

    /// `drvAcquire`: take every resource or none. Returns an fd the caller
    /// must keep open in the object's process (leaked into it), or nil.
    func acquire(state: String?, flags: AcquireFlags, action: FailureAction) throws(LockError) -> Int32?

    /// `drvRelease`: give the locks up; returns the state describing them.
    func release() throws(LockError) -> String?

    /// `drvInquire`: the state describing the locks currently held.
    func inquire() throws(LockError) -> String?

    /// `drvRelease` with `ReleaseFlags.allHeld`: give up everything the
    /// object's process holds; returns the state describing it.
    func releaseAllHeld() throws(LockError) -> String?
}

extension LockPluginManager {
    public func releaseAllHeld() throws(LockError) -> String? {
        throw .unsupported("drvRelease: this plugin cannot release everything a process holds (flag allHeld)")
    }
}
