import LockDriver
import PRProtocol

/// The one place that picks a transport for a resource (its address was
/// parsed with the resource): iSCSI → libiscsi; a device path → the
/// qemu-pr-helper socket when `pr_helper_socket` is configured, else the
/// device itself, through SG_IO or the kernel's block PR ioctls
/// (DevicePathRoute decides).
public struct TransportFactory {
    public let config: PRConfig
    /// iSCSI sessions opened for this operation; close them when done.
    public let iscsiPool: ISCSISessionPool?
    /// Which way each device path was reached, and why: the command log prints it.
    public let routes = RouteLog()

    /// `isidQualifier` picks the iSCSI session id: the plugin's calls use 0;
    /// a long-lived reader (the keeper) needs its own, because a target
    /// that reinstates sessions closes an open session when another login
    /// arrives with the same initiator name and ISID.
    public init(config: PRConfig, isidQualifier: UInt16 = 0) {
        self.config = config
        iscsiPool = config.iscsiInitiator.map { ISCSISessionPool(initiator: $0, isidQualifier: isidQualifier) }
    }

    /// A session id for a VM's keeper: derived from the VM, never the
    /// plugin's 0 nor pr-sessiond's.
    public static func keeperISIDQualifier(for vm: UUIDBytes) -> UInt16 {
        UInt16(truncatingIfNeeded: FNV.hash32(vm.bytes) % 0xFFFE) &+ 1
    }

    /// pr-sessiond's session id: its sessions stay open while plugin calls
    /// and keepers log in and out beside them.
    public static let sessionServiceISIDQualifier: UInt16 = 0xFFFF

    public func transport(for resource: PRResource) throws(LockError) -> SCSITransport {
        switch resource.address {
        case .iscsi(let url):
            guard let iscsiPool else {
                throw .config("\(config.origin): resource '\(resource.name)' needs 'iscsi_initiator' (this host's iSCSI name)")
            }
            return ISCSITransport(url: url, pool: iscsiPool)
        case .devicePath(let path):
            if let socket = config.helperSocket {
                return try PRHelperTransport(
                    socketPath: socket, devicePath: path,
                    timeoutMilliseconds: config.timeoutMilliseconds)
            }
            let route = try DevicePathRoute(
                path: path, setting: config.blockPR,
                timeoutMilliseconds: config.timeoutMilliseconds)
            routes.record(resource.name, route.reason)
            return route.transport
        }
    }

    public func closeAll() { iscsiPool?.closeAll() }
}

/// Resource → the reason its transport was chosen, filled as devices open.
public final class RouteLog: @unchecked Sendable {
    public private(set) var reasons: [String: String] = [:]
    func record(_ resource: String, _ reason: String) { reasons[resource] = reason }
}
