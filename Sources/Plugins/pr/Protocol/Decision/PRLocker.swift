import LockDriver

/// The PR algorithm for one VM on one host: acquire (all or nothing),
/// release and inquire over a set of resources. It keeps nothing between
/// calls: every decision comes from the device, read fresh, plus the
/// config and the state string.
public final class PRLocker {
    public let config: PRConfig
    public let vm: UUIDBytes
    let hostPart: UInt32
    let open: (PRResource) throws(LockError) -> SCSITransport
    /// Devices opened by this locker, by resource name (for counting).
    public private(set) var devices: [String: PRDevice] = [:]

    /// `open` makes the transport for a resource (normally
    /// `TransportFactory.transport(for:)`; tests wrap it).
    public init(
        config: PRConfig, vm: UUIDBytes,
        open: @escaping (PRResource) throws(LockError) -> SCSITransport
    ) throws(LockError) {
        self.config = config
        self.vm = vm
        self.hostPart = try config.requireHostPart()
        self.open = open
    }

    public func key(for mode: AccessMode) -> PRKey {
        .holder(mode: mode, vm: vm, host: hostPart)
    }

    func device(_ r: PRResource) throws(LockError) -> PRDevice {
        if let d = devices[r.name] { return d }
        let d = PRDevice(transport: try open(r), timeoutMilliseconds: config.timeoutMilliseconds)
        devices[r.name] = d
        return d
    }

    /// Every command sent so far, per resource.
    public var commandsSent: [String: [String]] { devices.mapValues(\.sent) }

    /// Checks a state string against this VM before anything is sent.
    public func validate(_ state: PRState) throws(LockError) {
        guard state.vm == vm else {
            throw .invalid("invalid pr state string: it was produced for VM \(state.vm), not for this VM \(vm)")
        }
    }

    // MARK: acquire

    /// Acquires every non-readonly resource, or none: conflicts are found
    /// by reading every device before the first PR OUT, and a failure
    /// while acting gives back what was taken so far.
    public func acquire(_ resources: [PRResource], state: PRState?) throws(LockError) {
        if let state { try validate(state) }
        let wanted = resources.filter { $0.mode != .readOnly }
        var plans: [(PRResource, PRStep)] = []
        for r in wanted {
            plans.append((r, try decide(r, state: state)))
        }
        // Every host acts in the same order (by name): two hosts wanting
        // the same LUs, listed in different orders, could otherwise each
        // reserve one, meet the other's, and both give everything back,
        // leaving a round with no winner at all.
        plans.sort { $0.0.name < $1.0.name }
        // Takeovers last: a takeover fences the migration peer, which may
        // still be running, and cannot be undone from here (we cannot
        // register as the peer's nexus). Doing them after everything else
        // means a failure elsewhere never has one to undo.
        plans = plans.filter { !$0.1.isTakeover } + plans.filter { $0.1.isTakeover }
        var done: [(PRResource, PRStep)] = []
        for (r, step) in plans {
            do {
                try perform(step, on: r, state: state)
                done.append((r, step))
            } catch {
                var notes: [String] = []
                var keptFromPeer: [String] = []
                // The failing resource too: a step may have registered us
                // before it failed. A reclaim is left alone (we held that LU
                // before this call); a takeover is left with our key: giving
                // it up would leave the LU unreserved and the running peer
                // would take that for a lost lock. The peer takes it back by
                // acquiring with its own state (migrate-pr's rollback).
                for (taken, takenStep) in [(r, step)] + done.reversed() {
                    switch takenStep {
                    case .reserve, .joinShared:
                        do { try releaseOne(taken) } catch { notes.append(error.message) }
                    case .takeover:
                        if taken.name != r.name
                            || (try? view(of: device(taken))).map({ holds($0, key: key(for: taken.mode), mode: taken.mode) }) == true
                        {
                            keptFromPeer.append(taken.name)
                        }
                    case .reclaim, .alreadyShared:
                        break
                    }
                }
                let undo = notes.isEmpty ? "" : "; giving back what was taken also failed: " + notes.joined(separator: "; ")
                let kept =
                    keptFromPeer.isEmpty
                    ? ""
                    : "; taken over from the migration peer and kept with this host's key "
                        + "(the peer takes them back by acquiring with its own state): " + keptFromPeer.joined(separator: ", ")
                throw LockError(error.kind, error.message + undo + kept)
            }
        }
    }

    func view(of d: PRDevice) throws(LockError) -> PRView {
        let reservation = try d.readReservation().reservation
        let keys = try d.readKeys().keys
        return PRView(reservation: reservation, keys: keys)
    }

    func decide(_ r: PRResource, state: PRState?) throws(LockError) -> PRStep {
        let d = try device(r)
        return try PRDecision.acquire(
            resource: r.name, mode: r.mode, myKey: key(for: r.mode), view: view(of: d),
            exclusiveType: config.exclusiveType, sharedType: config.sharedType,
            stateEntry: state?.entry(for: r.name), hasState: state != nil)
    }

    /// Carries out `step`. If a PR OUT meets a conflict or the device
    /// signals that reservations changed meanwhile, the device is re-read
    /// and the decision made again (once): a race is never taken for
    /// success or failure without looking.
    func perform(_ first: PRStep, on r: PRResource, state: PRState?) throws(LockError) {
        let d = try device(r)
        let me = key(for: r.mode)
        var step = first
        for attempt in 0..<2 {
            d.sawReservationChange = false
            var ok = true
            let register = { () throws(LockError) -> Bool in
                try d.prOut(.registerAndIgnore, key: 0, serviceActionKey: me.rawValue)
            }
            switch step {
            case .reserve(let type, let fencing):
                ok = try register()
                if ok && !d.sawReservationChange { ok = try d.prOut(.reserve, type: type, key: me.rawValue) }
                for peer in fencing where ok && !d.sawReservationChange {
                    ok = try d.prOut(.preempt, type: type, key: me.rawValue, serviceActionKey: peer.rawValue)
                }
            case .reclaim(let type):
                // RESERVE answers GOOD only if this nexus already holds it
                // (SG_IO: the host's nexus persists). A conflict is the
                // device saying our holding nexus is gone (tgt: every login
                // is a new one): move it here with PREEMPT of our own key,
                // which also drops the orphans. Not preempting otherwise
                // keeps the registrations of the host's other paths.
                ok = try register()
                if ok && !d.sawReservationChange, try !d.prOut(.reserve, type: type, key: me.rawValue) {
                    ok = try d.prOut(.preempt, type: type, key: me.rawValue, serviceActionKey: me.rawValue)
                }
            case .takeover(let holder, let type):
                ok = try register()
                if ok && !d.sawReservationChange {
                    ok = try d.prOut(.preempt, type: type, key: me.rawValue, serviceActionKey: holder.rawValue)
                }
            case .joinShared:
                ok = try register()
            case .alreadyShared:
                return
            }
            // A GOOD RESERVE means this nexus holds the reservation. A GOOD
            // PREEMPT or REGISTER does not prove it (the holder may have
            // changed since we read it; PREEMPT of a key that no longer
            // holds only removes registrations): those are checked.
            let proven: Bool
            switch step {
            case .reserve: proven = true
            case .reclaim, .takeover, .joinShared, .alreadyShared: proven = false
            }
            if ok && proven && !d.sawReservationChange { return }
            // Look again: either we hold it now (done), or someone else does.
            let v = try view(of: d)
            if holds(v, key: me, mode: r.mode) {
                // Holding is not enough under a registrants-only type: the
                // same VM's registrations from other hosts could still
                // write. A unit attention may have cut the fencing short.
                try fenceSameVMPeers(d, view: v, me: me)
                return
            }
            guard attempt == 0 else { break }
            do {
                step = try PRDecision.acquire(
                    resource: r.name, mode: r.mode, myKey: me, view: v,
                    exclusiveType: config.exclusiveType, sharedType: config.sharedType,
                    stateEntry: state?.entry(for: r.name), hasState: state != nil)
            } catch {
                try? dropRegistration(d, key: me)
                throw error
            }
        }
        try? dropRegistration(d, key: me)
        throw .conflict("\(r.name): the reservation kept changing while acquiring it; gave up")
    }

    /// PREEMPTs (registrations only: we hold the reservation) every key of
    /// this VM registered from another host.
    func fenceSameVMPeers(_ d: PRDevice, view v: PRView, me: PRKey) throws(LockError) {
        guard let held = v.reservation, !held.type.isAllRegistrants, !me.isShared else { return }
        for raw in Set(v.keys) where raw != me.rawValue {
            let peer = PRKey(rawValue: raw)
            guard peer.vmPart == me.vmPart, !peer.isShared else { continue }
            _ = try d.prOut(.preempt, type: held.type, key: me.rawValue, serviceActionKey: raw)
        }
    }

    func holds(_ v: PRView, key: PRKey, mode: AccessMode) -> Bool {
        guard let h = v.reservation else { return false }
        if mode == .shared { return h.type.isAllRegistrants && v.keys.contains(key.rawValue) }
        return h.key == key.rawValue && !h.type.isAllRegistrants
    }

    /// Undoes our registration on this nexus after a failed step (we never
    /// got the reservation, so it releases nothing).
    func dropRegistration(_ d: PRDevice, key: PRKey) throws(LockError) {
        _ = try d.prOut(.register, key: key.rawValue, serviceActionKey: 0)
    }

    // MARK: release and inquire

    /// Gives up the reservations and registrations of ours; returns the
    /// state describing what was held. Never touches another key's
    /// reservation: a host only preempts its own key here.
    public func release(_ resources: [PRResource]) throws(LockError) -> PRState {
        var entries: [PRState.Entry] = []
        var errors: [String] = []
        for r in resources where r.mode != .readOnly {
            do {
                if let e = try releaseOne(r) { entries.append(e) }
            } catch {
                errors.append(error.message)
            }
        }
        guard errors.isEmpty else { throw .backend(errors.joined(separator: "; ")) }
        return PRState(vm: vm, entries: entries)
    }

    /// Releases one resource; returns its state entry if we held it.
    @discardableResult
    func releaseOne(_ r: PRResource) throws(LockError) -> PRState.Entry? {
        let d = try device(r)
        let me = key(for: r.mode)
        let v = try view(of: d)
        guard v.keys.contains(me.rawValue) else { return nil }
        let held = holds(v, key: me, mode: r.mode)
        let entry = held ? v.reservation.map { PRState.Entry(resource: r.name, key: me, type: $0.type) } : nil
        // Our registrations may belong to nexuses that no longer exist
        // (tgt: every login is a new nexus). Register this nexus with our
        // key, PREEMPT our own key (moving our reservation here, type kept,
        // and dropping the orphans), then unregister: unregistering the
        // holder of a non-all-registrants reservation releases it (SPC-4),
        // and the last registrant leaving ends an all-registrants one.
        let type = v.reservation?.type ?? (r.mode == .shared ? config.sharedType : config.exclusiveType)
        try Self.dropKey(me, type: type, on: d)
        return entry
    }

    /// Removes every registration of `key` (and the reservation, if `key`
    /// holds it), whichever nexuses they belong to: REGISTER AND IGNORE
    /// `key` on this nexus, PREEMPT(`key`, `key`) (moving a reservation
    /// held by `key` here, type kept, and dropping the other registrations
    /// of `key`), then unregister (which releases a reservation this nexus
    /// holds; SPC-4). Never touches another key's reservation.
    public static func dropKey(_ key: PRKey, type: ReservationType, on d: PRDevice) throws(LockError) {
        func expect(_ ok: Bool, _ what: String) throws(LockError) {
            guard ok else { throw .conflict("\(d.name): RESERVATION CONFLICT while \(what)") }
        }
        try expect(d.prOut(.registerAndIgnore, key: 0, serviceActionKey: key.rawValue), "registering key \(key) to drop it")
        try expect(
            d.prOut(.preempt, type: type, key: key.rawValue, serviceActionKey: key.rawValue),
            "dropping the other registrations of key \(key)")
        // REGISTER AND IGNORE with key 0: unregisters this nexus whatever it
        // holds, and does nothing on a nexus that holds nothing. Through the
        // kernel's PR ioctls a dm-multipath map sends it down every path,
        // and the PREEMPT above has just dropped the other paths' keys.
        try expect(d.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0), "unregistering key \(key)")
        guard try !d.readKeys().keys.contains(key.rawValue) else {
            throw .backend("\(d.name): key \(key) is still registered after dropping it")
        }
    }

    /// The state of what this host holds for this VM, read from the devices.
    public func inquire(_ resources: [PRResource]) throws(LockError) -> PRState {
        var entries: [PRState.Entry] = []
        for r in resources where r.mode != .readOnly {
            let me = key(for: r.mode)
            let v = try view(of: try device(r))
            if holds(v, key: me, mode: r.mode), let h = v.reservation {
                entries.append(PRState.Entry(resource: r.name, key: me, type: h.type))
            }
        }
        return PRState(vm: vm, entries: entries)
    }
}
