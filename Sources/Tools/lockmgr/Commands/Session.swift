import LockDriver

/// Loads the configured plugin and builds a manager with the object and
/// its resources, as libvirt does before every operation.
func openManager(
    _ host: HostOptions, object: LockObject, resources: [LockResource],
    flags: NewFlags = []
) throws(LockError) -> LockManager {
    let plugin = try host.settings().loadPlugin()
    let manager = try plugin.makeManager(for: object, flags: flags)
    for resource in resources {
        try manager.addResource(resource)
    }
    return manager
}
