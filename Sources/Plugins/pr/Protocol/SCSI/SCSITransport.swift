import LockDriver

/// Sends commands to one logical unit: SG_IO on a block/sg device, the
/// qemu-pr-helper socket, or iSCSI through libiscsi. Every transport shares
/// one CDB encoder and one status/sense decoder above this interface.
public protocol SCSITransport: AnyObject {
    /// Names the device in error messages (a path or an iscsi:// URL).
    var deviceDescription: String { get }

    /// Sends one command. Throws `LockError.backend` naming the device when
    /// the command could not be delivered or timed out.
    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse
}
