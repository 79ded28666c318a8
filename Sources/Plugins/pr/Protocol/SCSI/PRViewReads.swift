import LockDriver

/// Whether devices answer READ FULL STATUS, by `SCSITransport.family`,
/// for the life of the process (libvirtd keeps the plugin loaded, so only
/// its first call on a target pays the probe). A stale answer is harmless:
/// "supported" on a device that stopped answering it falls back on the
/// ILLEGAL REQUEST, "unsupported" only costs the two older commands.
final class FullStatusSupport: @unchecked Sendable {
    static let shared = FullStatusSupport()
    private let lock = Mutex()
    private var known: [String: Bool] = [:]

    func supports(_ family: String) -> Bool? { lock.withLock { known[family] } }
    func record(_ family: String, _ supported: Bool) { lock.withLock { known[family] = supported } }
    /// Forgets everything (tests).
    func reset() { lock.withLock { known = [:] } }
}

extension PRDevice {
    /// A device's keys and holder, read afresh.
    public func view() throws(LockError) -> PRView { try Self.readViews([self])[0].get() }

    /// Reads the keys and the holder of every device, all in flight
    /// together: READ FULL STATUS where the device's family answers it
    /// (one command), else READ RESERVATION and READ KEYS (both in flight:
    /// they are reads, their order does not matter). A family not known yet
    /// is probed on its first device while the others use the two reads;
    /// ILLEGAL REQUEST (invalid field in CDB, or invalid command operation
    /// code) marks it unsupported and that device is read the other way.
    public static func readViews(_ devices: [PRDevice]) -> [Result<PRView, LockError>] {
        var results = [Result<PRView, LockError>](
            repeating: .failure(.internalError("no view read")), count: devices.count)
        let support = FullStatusSupport.shared
        var pending = Array(devices.indices)
        var fullLength = [UInt16](repeating: 8192, count: devices.count)
        // Rounds: a probe refused, then the two reads; or a full status
        // longer than asked for, then again with its length.
        for _ in 0..<3 where !pending.isEmpty {
            var items: [(device: PRDevice, command: SCSICommand)] = []
            var owner: [Int] = []
            var probing: Set<String> = []
            for i in pending {
                let family = devices[i].transport.family
                let full = support.supports(family) ?? probing.insert(family).inserted
                if full {
                    items.append((devices[i], .prIn(.readFullStatus, allocationLength: fullLength[i])))
                    owner.append(i)
                } else {
                    items.append((devices[i], .readReservation))
                    items.append((devices[i], .prIn(.readKeys, allocationLength: 8192)))
                    owner += [i, i]
                }
            }
            let answers = PRDevice.execute(items)
            var again: [Int] = []
            var k = 0
            while k < items.count {
                let i = owner[k]
                let d = devices[i]
                if case .prIn(.readFullStatus, _) = items[k].command {
                    switch d.fullStatus(items[k].command, answers[k], support: support) {
                    case .view(let v): results[i] = .success(v)
                    case .failed(let e): results[i] = .failure(e)
                    case .unsupported: again.append(i)
                    case .longer(let n):
                        fullLength[i] = n
                        again.append(i)
                    }
                    k += 1
                } else {
                    results[i] = Result { () throws(LockError) in
                        let reservation = try ReservationStatus(parsing: d.good(items[k].command, answers[k]))
                        var keys = try d.good(items[k + 1].command, answers[k + 1])
                        if RegisteredKeys.announcedLength(keys) > keys.count { keys = try d.readKeysData() }
                        return PRView(reservation: reservation.reservation, keys: try RegisteredKeys(parsing: keys).keys)
                    }
                    k += 2
                }
            }
            pending = again
        }
        for i in pending {
            results[i] = .failure(.backend("\(devices[i].name): could not read its reservation state (READ FULL STATUS kept changing)"))
        }
        return results
    }

    /// Reads who holds each device's reservation, all in flight together:
    /// READ RESERVATION alone (the view's keys left empty) unless the keys
    /// are needed or READ FULL STATUS gives them in the same command.
    public static func readHolders(_ devices: [PRDevice], keysNeeded: [Bool]) -> [Result<PRView, LockError>] {
        let support = FullStatusSupport.shared
        let full = devices.indices.filter { keysNeeded[$0] || support.supports(devices[$0].transport.family) == true }
        let fullSet = Set(full)
        let holderOnly = devices.indices.filter { !fullSet.contains($0) }
        var results = [Result<PRView, LockError>](
            repeating: .failure(.internalError("no view read")), count: devices.count)
        for (i, read) in zip(full, readViews(full.map { devices[$0] })) { results[i] = read }
        let answers = execute(holderOnly.map { (devices[$0], SCSICommand.readReservation) })
        for (i, answer) in zip(holderOnly, answers) {
            results[i] = Result { () throws(LockError) in try devices[i].holderView(answer) }
        }
        return results
    }

    /// The view a READ RESERVATION answer gives: the holder, no keys.
    func holderView(_ answer: Result<SCSIOutcome, LockError>) throws(LockError) -> PRView {
        let status = try ReservationStatus(parsing: good(.readReservation, answer))
        return PRView(reservation: status.reservation, keys: [])
    }

    enum FullStatusAnswer {
        case view(PRView)
        case failed(LockError)
        case unsupported
        case longer(UInt16)
    }

    func fullStatus(
        _ command: SCSICommand, _ answer: Result<SCSIOutcome, LockError>, support: FullStatusSupport
    )
        -> FullStatusAnswer
    {
        let outcome: SCSIOutcome
        switch answer {
        case .failure(let e): return .failed(e)
        case .success(let o): outcome = o
        }
        switch outcome {
        case .good(let data):
            support.record(transport.family, true)
            do {
                let status = try FullStatus(parsing: data)
                guard status.isComplete(received: data.count) else {
                    guard status.announcedLength <= Int(UInt16.max), case .prIn(_, let asked) = command,
                        Int(asked) < status.announcedLength
                    else { return .failed(.backend("\(name): READ FULL STATUS lists more than fits one answer")) }
                    return .longer(UInt16(status.announcedLength))
                }
                return .view(try status.view())
            } catch {
                return .failed(LockError(error.kind, "\(name): \(error.message)"))
            }
        case .checkCondition(0x05, 0x24, _), .checkCondition(0x05, 0x20, _):
            support.record(transport.family, false)
            return .unsupported
        default:
            return .failed(failure(command, outcome))
        }
    }

    /// The data of a GOOD answer, else the error naming the device.
    func good(_ command: SCSICommand, _ answer: Result<SCSIOutcome, LockError>) throws(LockError) -> [UInt8] {
        let outcome = try answer.get()
        guard case .good(let data) = outcome else { throw failure(command, outcome) }
        return data
    }
}

extension SCSICommand {
    /// READ RESERVATION: room for the header and the one holder descriptor.
    static let readReservation = SCSICommand.prIn(.readReservation, allocationLength: 24)
}

extension RegisteredKeys {
    /// The bytes READ KEYS data says it has, header included.
    static func announcedLength(_ d: [UInt8]) -> Int { d.count >= 8 ? 8 + Int(BigEndian.uint32(d, at: 4)) : 0 }
}
