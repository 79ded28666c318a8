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

    /// Where this transport's commands can go out together with others'
    /// (nil: one at a time, through `send`).
    var batchSender: SCSIBatchSender? { get }

    /// Devices of one family run one SCSI implementation (the LUNs of one
    /// iSCSI target): what one of them supports, the others do.
    var family: String { get }

    /// Whether this transport's I_T nexus outlives the operation (an iSCSI
    /// session pr-sessiond keeps logged in), so that a registration an
    /// earlier call made is likely still on it. Only a hint: commands that
    /// rely on it fail with RESERVATION CONFLICT when it is wrong, and the
    /// caller then registers first.
    var nexusOutlivesCall: Bool { get }

    /// Whether a status from this transport is the answer of one I_T nexus
    /// (an iSCSI session). Then a GOOD unregister after a GOOD PREEMPT of
    /// the same key proves the key gone from every nexus (SPC-4), and a
    /// release needs no READ KEYS to show it. Not so through the kernel's
    /// PR ioctls, where a dm-multipath map sends a command down every path
    /// and answers for all of them as one.
    var answersForOneNexus: Bool { get }

    /// Whether `send` may run on a thread of its own while other
    /// transports' sends run: its device, descriptor and connection are its
    /// own (SG_IO, the kernel's PR ioctls, qemu-pr-helper, NVMe). A batch
    /// then runs such devices side by side, each device's commands in
    /// order; the others without a batch sender one after the other.
    var runsBesideOthers: Bool { get }

    /// Whether nothing has gone to this LU on its I_T nexus yet (a login
    /// not used for it so far). A target may answer the first command of a
    /// new nexus with a unit attention (tgt: 29/00 on every LU of every new
    /// session), which that command then costs a round trip to retry.
    var nexusIsNew: Bool { get }
}

/// Sends many commands at once, each to its own transport (normally one
/// command per LU): what lets a multi-LU call keep many commands in flight
/// instead of paying one round trip after the other. Transports that share
/// a sender (the LUNs of one iSCSI session pool) go out together.
public protocol SCSIBatchSender: AnyObject {
    /// One result per command, in order; a command that could not be
    /// delivered or was not answered in time fails alone with the reason
    /// (and, on a broken session, every other command of that session).
    func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
}

extension SCSITransport {
    /// No batch sender: commands go one after the other.
    public var batchSender: SCSIBatchSender? { nil }

    /// Each device its own family.
    public var family: String { deviceDescription }

    /// A nexus of this call alone: register before relying on it.
    public var nexusOutlivesCall: Bool { false }

    /// One answer may stand for several nexuses: prove with a read.
    public var answersForOneNexus: Bool { false }

    /// Shares something with other transports: one send at a time.
    public var runsBesideOthers: Bool { false }

    /// A nexus that lives long (the kernel's, the helper's): no unit
    /// attention is expected of a first command.
    public var nexusIsNew: Bool { false }
}

/// Sends a batch over whatever transports it names: the commands of
/// transports sharing a batch sender together; those of transports that
/// take one command at a time and run beside others (SG_IO, the kernel's
/// PR ioctls, qemu-pr-helper, NVMe) in order per device, each device on a
/// thread of its own, the devices side by side; any other one after the
/// other. A step over several disks then waits for one device's round
/// trip, not one per disk, and a hung device holds the step up for one
/// timeout, not one per disk behind it.
public enum SCSIBatch {
    public static func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
    {
        var results = [Result<SCSIResponse, LockError>](
            repeating: .failure(.internalError("no answer recorded")), count: batch.count)
        var groups: [ObjectIdentifier: (sender: SCSIBatchSender, indices: [Int])] = [:]
        var order: [ObjectIdentifier] = []
        var deviceOf: [ObjectIdentifier: Int] = [:]
        var devices: [[Int]] = []
        var alone: [Int] = []
        for (i, item) in batch.enumerated() {
            guard let sender = item.transport.batchSender else {
                guard item.transport.runsBesideOthers else {
                    alone.append(i)
                    continue
                }
                let device = ObjectIdentifier(item.transport)
                if let d = deviceOf[device] {
                    devices[d].append(i)
                } else {
                    deviceOf[device] = devices.count
                    devices.append([i])
                }
                continue
            }
            let id = ObjectIdentifier(sender)
            if groups[id] == nil { order.append(id) }
            groups[id, default: (sender, [])].indices.append(i)
        }
        for id in order {
            guard let group = groups[id] else { continue }
            let answers = group.sender.send(group.indices.map { batch[$0] }, timeoutMilliseconds: timeoutMilliseconds)
            for (i, answer) in zip(group.indices, answers) { results[i] = answer }
        }
        // The transports that share something go one after the other, as one
        // more piece beside the devices' (they share nothing with those).
        let lists = alone.isEmpty ? devices : devices + [alone]
        guard !lists.isEmpty else { return results }
        // Each thread writes only its own piece's slots.
        let answers = UnsafeMutableBufferPointer<Result<SCSIResponse, LockError>>.allocate(capacity: batch.count)
        defer { answers.deallocate() }
        _ = answers.initialize(from: results)
        Parallel.forEach(lists.count) { d in
            for i in lists[d] {
                let item = batch[i]
                answers[i] = Result { () throws(LockError) in
                    try item.transport.send(item.command, timeoutMilliseconds: timeoutMilliseconds)
                }
            }
        }
        let all = Array(answers)
        _ = answers.deinitialize()
        return all
    }
}
