import LockDriver
import PRProtocol

/// The one place that picks a transport for a resource (its address was
/// parsed with the resource): iSCSI → libiscsi; a device path → the
/// qemu-pr-helper socket when `pr_helper_socket` is configured, else SG_IO.
public struct TransportFactory {
    public let config: PRConfig
    /// iSCSI sessions opened for this operation; close them when done.
    public let iscsiPool: ISCSISessionPool?

    /// `isidQualifier` picks the iSCSI session id: the plugin's calls use 0;
    /// a long-lived reader (the keeper) needs its own, because a target
    /// that reinstates sessions closes an open session when another login
    /// arrives with the same initiator name and ISID.
    public init(config: PRConfig, isidQualifier: UInt16 = 0) {
        self.config = config
        iscsiPool = config.iscsiInitiator.map { ISCSISessionPool(initiator: $0, isidQualifier: isidQualifier) }
    }

    /// A session id for a VM's keeper: derived from the VM, never the plugin's 0.
    public static func keeperISIDQualifier(for vm: UUIDBytes) -> UInt16 {
        UInt16(truncatingIfNeeded: FNV.hash32(vm.bytes) % 0xFFFF) &+ 1
    }

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
            return try SGIOTransport(path: path)
        }
    }

    public func closeAll() { iscsiPool?.closeAll() }
}
