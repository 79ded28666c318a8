import LockDriver

/// What to do on one LU, decided from what the device shows (pure logic,
/// unit-tested without a device).
public enum PRStep: Sendable, Equatable {
    /// Nothing reserved: REGISTER AND IGNORE our key, RESERVE, then PREEMPT
    /// the `fencing` keys: registrations the same VM left on other hosts,
    /// which could still write under a registrants-only type.
    case reserve(ReservationType, fencing: [PRKey] = [])
    /// Our own key holds (an earlier process or login of this host):
    /// REGISTER AND IGNORE + RESERVE, and if another nexus of ours holds it
    /// (RESERVATION CONFLICT), PREEMPT(our key) to move it onto this nexus
    /// and drop our orphaned registrations. Type preserved.
    case reclaim(ReservationType)
    /// The same VM holds from another host (migration peer): REGISTER AND
    /// IGNORE our key + PREEMPT(holder) in one atomic step, type preserved.
    case takeover(from: PRKey, ReservationType)
    /// A shared reservation exists: REGISTER AND IGNORE makes us a holder.
    case joinShared
    /// Our host is already a registrant of the shared reservation.
    case alreadyShared
}

/// The inputs of a decision for one resource.
public struct PRView: Sendable, Equatable {
    public var reservation: ReservationStatus.Holder?
    public var keys: [UInt64]

    public init(reservation: ReservationStatus.Holder?, keys: [UInt64]) {
        self.reservation = reservation
        self.keys = keys
    }
}

extension PRStep {
    public var isTakeover: Bool {
        if case .takeover = self { return true }
        return false
    }
}

public enum PRDecision {
    /// Decides how to acquire `resource` in `mode` with `myKey`.
    /// `stateEntry` is the entry of a supplied state string for this
    /// resource (nil without state); `hasState` tells whether a state was
    /// supplied at all. Throws `.conflict` naming the holder; never decides
    /// to preempt a key that is neither ours nor, with a state, the same
    /// VM's migration peer.
    public static func acquire(
        resource: String, mode: AccessMode, myKey: PRKey, view: PRView,
        exclusiveType: ReservationType, sharedType: ReservationType,
        stateEntry: PRState.Entry?, hasState: Bool
    ) throws(LockError) -> PRStep {
        let stale = hasState ? "the state string is stale: " : ""
        guard let holder = view.reservation else {
            // Registrations without a reservation: ours, or of the same VM
            // (a migration peer's leftovers), or of shared users, are
            // harmless. Anyone else's means another host is about to reserve
            // (or crashed mid-way): do not race it.
            let foreign = view.keys.map(PRKey.init(rawValue:)).filter { k in
                k != myKey && !(mode == .shared && k.isShared) && !(mode == .exclusive && k.vmPart == myKey.vmPart)
            }
            if let other = foreign.first {
                throw .conflict(
                    "\(resource): not reserved, but key \(other) (\(describe(other))) is registered: another host may be acquiring it; refusing"
                )
            }
            if mode == .shared { return .reserve(sharedType) }
            var peers: [PRKey] = []
            for k in view.keys.map(PRKey.init(rawValue:)) where k != myKey && !peers.contains(k) { peers.append(k) }
            if let t = stateEntry?.type, !t.isAllRegistrants { return .reserve(t, fencing: peers) }
            return .reserve(exclusiveType, fencing: peers)
        }
        let holderKey = PRKey(rawValue: holder.key)
        if holder.type.isAllRegistrants {
            guard mode == .shared else {
                let holders = Set(view.keys).sorted().map { PRKey(rawValue: $0).description }.joined(separator: ", ")
                throw .conflict("\(resource): \(stale)held shared (\(holder.type)) by keys \(holders); an exclusive acquire is refused")
            }
            return view.keys.contains(myKey.rawValue) ? .alreadyShared : .joinShared
        }
        guard mode == .exclusive else {
            throw .conflict(
                "\(resource): \(stale)held exclusively (\(holder.type)) by key \(holderKey) (\(describe(holderKey))); a shared acquire is refused"
            )
        }
        if holderKey == myKey { return .reclaim(holder.type) }
        guard holderKey.vmPart == myKey.vmPart else {
            // Our shared keys only ever hold all-registrants reservations:
            // this holder is not one of our VMs.
            if holderKey.isShared {
                throw .conflict(
                    "\(resource): \(stale)reserved (\(holder.type)) by key \(holderKey), which no VM of this plugin uses: another user of the LU, such as a guest's own PR cluster (if so, list the disk in guest_reservations)"
                )
            }
            throw .conflict("\(resource): \(stale)held by key \(holderKey) (\(describe(holderKey))), another VM")
        }
        // The same VM holds it from another host.
        guard hasState else {
            throw .conflict(
                "\(resource): this VM already holds it from another host (key \(holderKey), host part \(hex(holderKey.hostPart))); refusing a double start without a state string (if that host is down, pr-tool clear-host --host-is-dead frees its reservations)"
            )
        }
        guard let entry = stateEntry else {
            throw .conflict(
                "\(resource): the state string does not cover this resource, which this VM holds from another host (key \(holderKey)); refusing"
            )
        }
        // Destination: the holder must be the host the state came from.
        // Source rolling back (the state names our own key): the holder is
        // the migration peer, whichever host that is.
        guard holderKey == entry.key || entry.key == myKey else {
            throw .conflict(
                "\(resource): the state string is stale: it names key \(entry.key) but key \(holderKey) now holds the reservation; refusing"
            )
        }
        return .takeover(from: holderKey, holder.type)
    }

    static func describe(_ k: PRKey) -> String {
        k.isShared
            ? "shared user on host part \(hex(k.hostPart))"
            : "VM part \(hex(k.vmPart)), host part \(hex(k.hostPart))"
    }

    public static func hex(_ v: UInt32) -> String {
        Hex.string([UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)])
    }
}
