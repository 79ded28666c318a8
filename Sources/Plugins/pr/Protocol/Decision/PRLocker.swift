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

    /// Acquires every non-readonly resource, or none. In phases across all
    /// LUs: read every device (all in flight), decide every LU (a conflict
    /// anywhere is found before the first PR OUT), then act: the first LU
    /// in name order alone, then the rest together phase by phase, the
    /// takeovers last. A failure while acting gives back what was taken.
    public func acquire(_ resources: [PRResource], state: PRState?) throws(LockError) {
        if let state { try validate(state) }
        let wanted = resources.filter { $0.mode != .readOnly }
        let devs = try wanted.map { r throws(LockError) in try device(r) }
        var plans: [Plan] = []
        for (r, read) in zip(wanted, PRDevice.readViews(devs)) {
            let view = try read.get()
            plans.append(Plan(resource: r, step: try decide(r, view: view, state: state), view: view))
        }
        // Every host acts in the same order (by name), and on the first LU
        // alone: two hosts wanting the same LUs, listed in any order, meet
        // on that LU first, and the loser fails there before it touches
        // any other (it never makes the winner give everything back too).
        plans.sort { $0.resource.name < $1.resource.name }
        // Takeovers last: a takeover fences the migration peer, which may
        // still be running, and cannot be undone from here (we cannot
        // register as the peer's nexus). Doing them after everything else
        // means a failure elsewhere never has one to undo.
        let ordinary = plans.filter { !$0.step.isTakeover }
        let takeovers = plans.filter(\.step.isTakeover)
        let rounds = [Array(ordinary.prefix(1)), Array(ordinary.dropFirst()), takeovers]
        var done: [Plan] = []
        for group in rounds where !group.isEmpty {
            let failures = performAll(group, state: state)
            guard let first = failures.min(by: { $0.key < $1.key }) else {
                done += group
                continue
            }
            let failed = group.indices.filter { failures[$0] != nil }.map { group[$0] }
            done += group.indices.filter { failures[$0] == nil }.map { group[$0] }
            let others = failures.filter { $0.key != first.key }.sorted { $0.key < $1.key }.map(\.value.message)
            let message = first.value.message + (others.isEmpty ? "" : "; also " + Self.summary(others))
            throw giveBack(after: LockError(first.value.kind, message), failed: failed, done: done)
        }
    }

    /// One LU's decision, with the view it was made on.
    struct Plan {
        var resource: PRResource
        var step: PRStep
        var view: PRView
    }

    /// Undoes an acquire that failed on `failed` (each may have been
    /// registered before it failed) after `done` succeeded, and returns the
    /// error to throw. A reclaim is left alone (we held that LU before
    /// this call); a takeover is left with our key: giving it up would
    /// leave the LU unreserved and the running peer would take that for a
    /// lost lock. The peer takes it back by acquiring with its own state
    /// (migrate-pr's rollback).
    func giveBack(after error: LockError, failed: [Plan], done: [Plan]) -> LockError {
        var toRelease: [PRResource] = []
        var keptFromPeer: [String] = []
        var failedTakeovers: [Plan] = []
        for p in failed + done.reversed() {
            switch p.step {
            case .reserve, .joinShared: toRelease.append(p.resource)
            case .takeover:
                if failed.contains(where: { $0.resource.name == p.resource.name }) {
                    failedTakeovers.append(p)
                } else {
                    keptFromPeer.append(p.resource.name)
                }
            case .reclaim, .alreadyShared: break
            }
        }
        if !failedTakeovers.isEmpty, let devs = try? failedTakeovers.map({ p throws(LockError) in try device(p.resource) }) {
            for (p, read) in zip(failedTakeovers, PRDevice.readViews(devs)) {
                if let v = try? read.get(), holds(v, key: key(for: p.resource.mode), mode: p.resource.mode) {
                    keptFromPeer.append(p.resource.name)
                }
            }
        }
        let notes = releaseAll(toRelease).errors
        let undo = notes.isEmpty ? "" : "; giving back what was taken also failed: " + Self.summary(notes)
        let kept =
            keptFromPeer.isEmpty
            ? ""
            : "; taken over from the migration peer and kept with this host's key "
                + "(the peer takes them back by acquiring with its own state): " + keptFromPeer.joined(separator: ", ")
        return LockError(error.kind, error.message + undo + kept)
    }

    /// Errors of many LUs in one message, short enough for a log line: a
    /// batch that fails on one session fails on all its LUs the same way.
    static func summary(_ messages: [String]) -> String {
        let shown = messages.prefix(3).joined(separator: "; ")
        return messages.count > 3 ? shown + "; and \(messages.count - 3) more LUs failed" : shown
    }

    func decide(_ r: PRResource, view: PRView, state: PRState?) throws(LockError) -> PRStep {
        try PRDecision.acquire(
            resource: r.name, mode: r.mode, myKey: key(for: r.mode), view: view,
            exclusiveType: config.exclusiveType, sharedType: config.sharedType,
            stateEntry: state?.entry(for: r.name), hasState: state != nil)
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
}
