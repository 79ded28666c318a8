import LockDriver

/// No locking at all, exactly like libvirt's built-in "nop" driver: every
/// operation succeeds and there is never a state string. Useful to run the
/// host without a backend, and as the smallest example of a plugin.
final class NopDriver: LockPluginDriver {
    init(configFile: String?) throws(LockError) {}

    func makeManager(for object: LockObject, flags: NewFlags) throws(LockError) -> NopManager {
        NopManager()
    }
}

final class NopManager: LockPluginManager {
    func addResource(_ resource: LockResource) throws(LockError) {}
    func acquire(state: String?, flags: AcquireFlags, action: FailureAction) throws(LockError) -> Int32? { nil }
    func release() throws(LockError) -> String? { nil }
    func inquire() throws(LockError) -> String? { nil }
}
