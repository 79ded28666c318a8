import CSanlock
import LockDriver
import SanlockCore

/// sanlock disk leases, compatible on disk with libvirt's sanlock plugin.
/// drvInit reads the config and, with automatic disk leases, creates and
/// joins `__LIBVIRT__DISKS__`: any failure there fails initialisation
/// instead of surfacing later as a confusing acquire error.
final class SanlockDriver: LockPluginDriver {
    let config: SanlockConfig
    let configOrigin: String
    /// `lockmgr` for failure actions outside libvirt, if known.
    let failureTool: String?

    init(configFile: String?) throws(LockError) {
        config = try SanlockConfig.load(path: configFile)
        configOrigin = configFile ?? "(no config file)"
        failureTool = config.failureHelper
            ?? csanlock_loaded_from().flatMap { FailureHelper.lockmgr(besidePlugin: String(cString: $0)) }
        if config.autoDiskLeases {
            try LeaseFiles(config: config).setUpAutoLockspace()
        }
    }

    func makeManager(for object: LockObject, flags: NewFlags) throws(LockError) -> SanlockManager {
        guard object.pid > 0, object.pid <= UInt32(Int32.max) else {
            throw .invalid("object '\(object.name)': pid \(object.pid) is not a process id")
        }
        return SanlockManager(driver: self, object: object)
    }
}
