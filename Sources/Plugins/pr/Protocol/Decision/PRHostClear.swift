import LockDriver

/// Removes a dead host's registrations and reservations from one LU: every
/// key whose host part is the dead host's (each of its VMs' keys and its
/// shared key), each dropped with PRLocker.dropKey. Reservations of other
/// hosts are untouched; an all-registrants reservation stays with its other
/// registrants.
///
/// Whether the host is really dead is not decided here: a host that is
/// alive and loses its keys is fenced from its own disks. The caller
/// (`pr-tool clear-host`) refuses unless it can tell, or is told, that the
/// host is dead.
public enum PRHostClear {
    /// What was found and done on one LU, for the log.
    public struct Outcome: Sendable, Equatable {
        public var dropped: [PRKey]
        /// The reservation the dead host held, if any (now gone).
        public var reservation: ReservationStatus.Holder?
    }

    public static func deadKeys(hostPart: UInt32, in keys: [UInt64]) -> [PRKey] {
        var result: [PRKey] = []
        for k in keys.map(PRKey.init(rawValue:)) where k.hostPart == hostPart && !result.contains(k) { result.append(k) }
        return result
    }

    public static func clear(hostPart: UInt32, on d: PRDevice, defaultType: ReservationType) throws(LockError) -> Outcome {
        let reservation = try d.readReservation().reservation
        var keys = deadKeys(hostPart: hostPart, in: try d.readKeys().keys)
        // The holder first: once it is dropped the others are plain registrations.
        let held = reservation.flatMap { r in keys.first { $0.rawValue == r.key } }
        if let held { keys = [held] + keys.filter { $0 != held } }
        for k in keys {
            try PRLocker.dropKey(k, type: reservation?.type ?? defaultType, on: d)
        }
        let left = deadKeys(hostPart: hostPart, in: try d.readKeys().keys)
        guard left.isEmpty else {
            throw .backend("\(d.name): keys \(left.map(\.description).joined(separator: ", ")) are still registered after clearing")
        }
        return Outcome(dropped: keys, reservation: held == nil ? nil : reservation)
    }
}
