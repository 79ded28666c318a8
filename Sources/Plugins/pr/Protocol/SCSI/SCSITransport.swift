import LockDriver

/// Which way data moves for one command.
public enum DataDirection: Sendable, Equatable {
    case none
    /// PERSISTENT RESERVE IN and friends: up to `allocationLength` bytes come back.
    case fromDevice(allocationLength: Int)
    /// PERSISTENT RESERVE OUT: the parameter list goes to the device.
    case toDevice([UInt8])
}

/// The outcome of one SCSI command as every transport reports it. Transport
/// failures (no connection, timeout, host/driver errors) are thrown instead.
public struct SCSIResponse: Sendable, Equatable {
    /// SAM status byte: GOOD 0x00, CHECK CONDITION 0x02, RESERVATION CONFLICT 0x18.
    public var status: UInt8
    /// Sense data (fixed or descriptor format) when status is CHECK CONDITION.
    public var sense: [UInt8]
    /// The data-in bytes actually transferred.
    public var data: [UInt8]

    public init(status: UInt8, sense: [UInt8] = [], data: [UInt8] = []) {
        self.status = status
        self.sense = sense
        self.data = data
    }
}

/// Sends CDBs to one logical unit: SG_IO on a block/sg device, the
/// qemu-pr-helper socket, or iSCSI through libiscsi. Every transport shares
/// one CDB encoder and one status/sense decoder above this interface.
public protocol SCSITransport: AnyObject {
    /// Names the device in error messages (a path or an iscsi:// URL).
    var deviceDescription: String { get }

    /// Sends one command. Throws `LockError.backend` naming the device when
    /// the command could not be delivered or timed out.
    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse
}
