import BenchSupport
import LockDriver
import PRProtocol
import PRTransport

/// The floor: the fewest PR commands that do each operation, sent through
/// the same libiscsi shim the plugin uses, with no plugin, no host library,
/// no reads and no checks. Host a and host b are other initiator names than
/// the plugin's (a login with the plugin's name and ISID would end the
/// plugin's session or this one).
///
/// Three ways of sending (`Sending`):
/// - `sessionKept`: one session per host, logged in once (a host whose
///   I_T nexus persists, as with the kernel initiator and SG_IO), one
///   command at a time. Acquire = REGISTER + RESERVE, handover = REGISTER +
///   PREEMPT, release = REGISTER with service action key 0 (unregistering
///   the holder releases a non-all-registrants reservation, SPC-4).
/// - `inFlight`: the same commands on the same session, each step sent to
///   every LU at once (all in flight together): what is left is the
///   target's own work per command plus one round trip per step, the
///   physical limit of a multi-LU operation.
/// - `loginPerOperation`: a login and logout around every operation, as the
///   plugin pays (libvirt makes a fresh manager per call). tgt makes every
///   login a new I_T nexus, so the release must first bring the key to the
///   new nexus: REGISTER AND IGNORE + PREEMPT(own key) + unregister, the
///   minimum on such a target; and the first command on each LU of a new
///   session meets a unit attention (29/xx) and is sent again (one command
///   at a time: no TEST UNIT READY in flight ahead of it, as ours sends).
final class RawHost {
    let initiator: String
    let key: UInt64
    let type = ReservationType.writeExclusiveRegistrantsOnly
    let urls: [ISCSIURL]
    private let keptPool: ISCSISessionPool
    private var keptDevices: [PRDevice] = []

    init(initiator: String, vm: UUIDBytes, urls: [ISCSIURL], isidQualifier: UInt16) {
        self.initiator = initiator
        self.key = PRKey.exclusive(vm: vm, host: PRKey.hostPart(ofIdentity: initiator)).rawValue
        self.urls = urls
        keptPool = ISCSISessionPool(initiator: initiator, isidQualifier: isidQualifier)
        keptDevices = urls.map { Self.device($0, keptPool) }
    }

    /// Logs in and clears the unit attentions of the new session (not part of the floor).
    func warmUp() throws(LockError) {
        for d in keptDevices { _ = try d.readKeys() }
    }

    func close() { keptPool.closeAll() }

    /// One command at a time, even the first on a new session: no TEST UNIT
    /// READY goes ahead of it in flight (the plugin's way), so the unit
    /// attention costs the floor its retry.
    static func device(_ url: ISCSIURL, _ pool: ISCSISessionPool) -> PRDevice {
        let d = PRDevice(transport: ISCSITransport(url: url, pool: pool), timeoutMilliseconds: 5000)
        d.probesNewNexus = false
        return d
    }

    enum Op { case acquire, handover(from: UInt64), release }
    enum Sending { case sessionKept, inFlight, loginPerOperation }

    /// Runs `op` on the first `n` LUNs; returns the commands sent.
    func run(_ op: Op, luns n: Int, sending: Sending) throws(LockError) -> [String] {
        let login = sending == .loginPerOperation
        let pool = login ? ISCSISessionPool(initiator: initiator, isidQualifier: keptPool.isidQualifier &+ 1) : keptPool
        defer { if login { pool.closeAll() } }
        let devices =
            login
            ? urls.prefix(n).map { Self.device($0, pool) }
            : Array(keptDevices.prefix(n))
        let before = devices.map(\.sent.count)
        var steps: [(action: PROutAction, type: ReservationType?, key: UInt64, serviceActionKey: UInt64)] = []
        switch op {
        case .acquire:
            steps = [(.register, nil, 0, key), (.reserve, type, key, 0)]
        case .handover(let holder):
            steps = [(.register, nil, 0, key), (.preempt, type, key, holder)]
        case .release:
            if login { steps = [(.registerAndIgnore, nil, 0, key), (.preempt, type, key, key)] }
            steps.append((.register, nil, key, 0))
        }
        if sending == .inFlight {
            for step in steps {
                let command = SCSICommand.prOut(step.action, type: step.type, key: step.key, serviceActionKey: step.serviceActionKey)
                for (d, answer) in zip(devices, PRDevice.execute(devices.map { ($0, command) })) {
                    try expect(d, step.action, answer)
                }
            }
        } else {
            for d in devices {
                for step in steps {
                    let command = SCSICommand.prOut(step.action, type: step.type, key: step.key, serviceActionKey: step.serviceActionKey)
                    try expect(d, step.action, PRDevice.execute([(d, command)])[0])
                }
            }
        }
        return zip(devices, before).flatMap { d, b in d.sent[b...] }
    }

    private func expect(_ d: PRDevice, _ action: PROutAction, _ answer: Result<SCSIOutcome, LockError>) throws(LockError) {
        switch try answer.get() {
        case .good: return
        case .reservationConflict:
            throw .conflict("\(d.name): raw \(action) got RESERVATION CONFLICT (the benchmark's LUNs were not clean)")
        case let other: throw .backend("\(d.name): raw \(action): \(other)")
        }
    }

    /// Checks independently that the first `n` LUNs hold no reservation and no key.
    func checkClean(luns n: Int) throws(LockError) {
        for d in keptDevices.prefix(n) {
            let keys = try d.readKeys().keys
            let reservation = try d.readReservation().reservation
            guard keys.isEmpty, reservation == nil else {
                throw .internalError(
                    "\(d.name): left behind after a round: keys \(keys.map { PRKey(rawValue: $0).description }), reservation \(String(describing: reservation))"
                )
            }
        }
    }
}
