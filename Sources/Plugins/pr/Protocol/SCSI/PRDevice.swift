import LockDriver

/// One logical unit seen through a transport: sends PR commands, decodes
/// the answers, drains unit attentions, and counts what it sent.
///
/// Unit attention handling: a command answered with UNIT ATTENTION was not
/// executed, so it is sent again (at most `maxAttentions` times in a row).
/// Attentions that mean "the reservation picture changed" are remembered in
/// `sawReservationChange` so the algorithm re-reads the device before it
/// trusts decisions made on an earlier read.
public final class PRDevice {
    public let transport: SCSITransport
    public let timeoutMilliseconds: UInt32
    /// Every command sent, by name, in order: what the benchmark and the
    /// handover test count.
    public private(set) var sent: [String] = []
    public var sawReservationChange = false
    /// Whether a TEST UNIT READY may go ahead of this device's first
    /// command on a new nexus (see NewNexusAttention). Off only where one
    /// command at a time is the point: the benchmark's floors.
    public var probesNewNexus = true
    static let maxAttentions = 4

    public init(transport: SCSITransport, timeoutMilliseconds: UInt32) {
        self.transport = transport
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    public var name: String { transport.deviceDescription }
    public var prOutCount: Int { sent.filter { $0.hasPrefix("PR OUT") }.count }

    /// Sends `command`, retrying across unit attentions.
    public func execute(_ command: SCSICommand) throws(LockError) -> SCSIOutcome {
        try Self.execute([(self, command)])[0].get()
    }

    /// Sends one command per item, all at once where the transports allow
    /// (see SCSIBatch), and answers each: a command answered with a unit
    /// attention goes again in the next round with the others that did
    /// (at most `maxAttentions` times), so a batch of LUs that each report
    /// one costs two round trips, not one per LU. A target may run the
    /// commands in flight in any order (and a retry after a unit attention
    /// runs after the others): several commands to one device go in one
    /// batch only where their answers show whether they ran in the order
    /// sent (a PR OUT run before the REGISTER it needs meets a conflict).
    ///
    /// A device on a new nexus, of a family known to report a unit
    /// attention there, gets a TEST UNIT READY ahead of its first command
    /// in the first round (see NewNexusAttention): the attention it takes
    /// counts as the device's, and nothing is sent again for it.
    public static func execute(_ items: [(device: PRDevice, command: SCSICommand)]) -> [Result<SCSIOutcome, LockError>] {
        var results = [Result<SCSIOutcome, LockError>](
            repeating: .failure(.internalError("no answer recorded")), count: items.count)
        var attentions = [[UnitAttention]](repeating: [], count: items.count)
        // Both only concern the first round.
        var newNexus = newNexusDevices(items)
        var probes = newNexus.filter { NewNexusAttention.shared.expected($0.transport.family) }
        var waiting = Array(items.indices)
        while !waiting.isEmpty {
            let round = probes.map { (device: $0, command: SCSICommand.testUnitReady) } + waiting.map { items[$0] }
            for item in round { item.device.sent.append(item.command.name) }
            let timeout = round.map(\.device.timeoutMilliseconds).max() ?? 0
            let roundAnswers = SCSIBatch.send(round.map { ($0.device.transport, $0.command) }, timeoutMilliseconds: timeout)
            learnNewNexusAttention(newNexus, round: round, answers: roundAnswers)
            // A probe's answer is only what it did to the unit attention.
            for (probe, answer) in zip(probes, roundAnswers) {
                if case .success(let r) = answer, case .unitAttention(let ua) = SCSIOutcome(r), ua.invalidatesReservationView {
                    probe.sawReservationChange = true
                }
            }
            let answers = roundAnswers.dropFirst(probes.count)
            (newNexus, probes) = ([], [])
            var again: [Int] = []
            for (i, answer) in zip(waiting, answers) {
                let (d, command) = items[i]
                switch answer {
                case .failure(let error):
                    results[i] = .failure(error)
                case .success(let response):
                    let outcome = SCSIOutcome(response)
                    guard case .unitAttention(let ua) = outcome else {
                        results[i] = .success(outcome)
                        continue
                    }
                    attentions[i].append(ua)
                    if ua.invalidatesReservationView { d.sawReservationChange = true }
                    if attentions[i].count < maxAttentions {
                        again.append(i)
                    } else {
                        results[i] = .failure(
                            .backend(
                                "\(d.name): \(command.name) kept failing with unit attentions: "
                                    + attentions[i].map(\.description).joined(separator: ", ")))
                    }
                }
            }
            waiting = again
        }
        return results
    }

    /// READ KEYS, asking again with the length the device announced when
    /// the first answer did not fit (more than 1023 registrations).
    public func readKeys() throws(LockError) -> RegisteredKeys {
        try RegisteredKeys(parsing: readKeysData())
    }

    func readKeysData() throws(LockError) -> [UInt8] {
        let data = try expectGood(.prIn(.readKeys, allocationLength: 8192))
        let needed = RegisteredKeys.announcedLength(data)
        if needed > data.count && data.count >= 8192 {
            return try expectGood(.prIn(.readKeys, allocationLength: UInt16(clamping: needed)))
        }
        return data
    }

    public func readReservation() throws(LockError) -> ReservationStatus {
        try ReservationStatus(parsing: expectGood(.readReservation))
    }

    public func reportCapabilities() throws(LockError) -> PRCapabilities {
        try PRCapabilities(parsing: expectGood(.prIn(.reportCapabilities, allocationLength: 8)))
    }

    /// Sends a PR OUT and returns whether it succeeded or hit a conflict;
    /// every other answer is an error naming the device and the command.
    @discardableResult
    public func prOut(
        _ action: PROutAction, type: ReservationType? = nil, key: UInt64,
        serviceActionKey: UInt64 = 0
    ) throws(LockError) -> Bool {
        let command = SCSICommand.prOut(action, type: type, key: key, serviceActionKey: serviceActionKey)
        return try prOutResult(command, Self.execute([(self, command)])[0])
    }

    /// A PR OUT's answer: true when it succeeded, false on a conflict;
    /// every other answer is an error naming the device and the command.
    func prOutResult(_ command: SCSICommand, _ answer: Result<SCSIOutcome, LockError>) throws(LockError) -> Bool {
        switch try answer.get() {
        case .good: return true
        case .reservationConflict: return false
        case let other: throw failure(command, other)
        }
    }

    func expectGood(_ command: SCSICommand) throws(LockError) -> [UInt8] {
        let outcome = try execute(command)
        guard case .good(let data) = outcome else { throw failure(command, outcome) }
        return data
    }

    func failure(_ command: SCSICommand, _ outcome: SCSIOutcome) -> LockError {
        switch outcome {
        case .good: return .internalError("\(name): \(command.name) succeeded")
        case .reservationConflict: return .conflict("\(name): \(command.name) got RESERVATION CONFLICT")
        case .unitAttention(let ua): return .backend("\(name): \(command.name): \(ua)")
        case .checkCondition(let key, let asc, let ascq):
            var what = "CHECK CONDITION sense key \(Hex.byte(key)) \(Hex.byte(asc))/\(Hex.byte(ascq))"
            if key == 0x05 && asc == 0x24 { what += " (invalid field in CDB: not supported by the device)" }
            if key == 0x05 && asc == 0x20 { what += " (invalid command: no persistent reservation support)" }
            return .backend("\(name): \(command.name) failed: \(what)")
        case .otherStatus(let s): return .backend("\(name): \(command.name) failed with SCSI status 0x\(Hex.byte(s))")
        }
    }
}
