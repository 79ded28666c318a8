import LockDriver

/// Carrying out the decided steps, many LUs at once: each phase sends at
/// most one command per LU, all of them in flight together, and waits for
/// every answer before the next phase (a LU's commands stay in order).
extension PRLocker {
    /// Carries out each plan's step; returns the failures by index into
    /// `plans` (the others now hold their LU). If a PR OUT meets a
    /// conflict, or the device signals that reservations changed
    /// meanwhile, the LU is re-read and decided again (once): a race is
    /// never taken for success or failure without looking. A failed LU is
    /// left without our registration on this nexus where that can be done.
    func performAll(_ plans: [Plan], state: PRState?, attempts: Int = 2) -> [Int: LockError] {
        var failures: [Int: LockError] = [:]
        var steps = plans.map(\.step)
        let me = plans.map { key(for: $0.resource.mode) }
        // What each LU's keys were before this attempt: a takeover or a
        // reclaim is proven by READ RESERVATION alone, and the same VM's
        // other registrations to fence are those seen before (see checkHolding).
        var views = plans.map(\.view)
        var active: [Int] = []
        var devs: [PRDevice?] = []
        for (i, p) in plans.enumerated() {
            do {
                devs.append(try device(p.resource))
                if !p.step.isAlreadyShared { active.append(i) }
            } catch {
                devs.append(nil)
                failures[i] = error
            }
        }
        for attempt in 0..<attempts where !active.isEmpty {
            var phase = Phase(devices: devs)
            phase.start(active)
            // On the first attempt, where a LU's commands share a batch
            // (iSCSI command queueing), its REGISTER AND IGNORE, its RESERVE
            // or PREEMPT and, for an exclusive takeover, the READ
            // RESERVATION that proves it go out in one batch, one behind
            // the other: one round trip instead of three. Only speed rests
            // on the target running them in the order sent (SAM lets it
            // reorder SIMPLE tasks; tgt runs PR commands in arrival order):
            // a RESERVE or PREEMPT run before the REGISTER meets a conflict,
            // a read run before the PREEMPT does not show us holding, and
            // either LU is read again and, on the next attempt, sent one
            // step per batch.
            phase.send(
                [
                    { i in .prOut(.registerAndIgnore, key: 0, serviceActionKey: me[i].rawValue) },
                    { i in
                        switch steps[i] {
                        case .reserve(let type, _), .reclaim(let type): return .prOut(.reserve, type: type, key: me[i].rawValue)
                        case .takeover(let holder, let type):
                            return .prOut(.preempt, type: type, key: me[i].rawValue, serviceActionKey: holder.rawValue)
                        case .joinShared, .alreadyShared: return nil
                        }
                    },
                ],
                chainedWhere: { i in attempt == 0 && devs[i]?.transport.batchSender != nil },
                readHolderAfter: { i in steps[i].isTakeover && plans[i].resource.mode == .exclusive })
            // RESERVE answers GOOD only if this nexus already holds it
            // (SG_IO: the host's nexus persists). A conflict on a reclaim
            // is the device saying our holding nexus is gone (tgt: every
            // login is a new one): move it here with PREEMPT of our own
            // key, which also drops the orphans. Not preempting otherwise
            // keeps the registrations of the host's other paths.
            phase.retryConflicts { i in
                guard case .reclaim(let type) = steps[i] else { return nil }
                return .prOut(.preempt, type: type, key: me[i].rawValue, serviceActionKey: me[i].rawValue)
            }
            for k in 0..<(steps.map(\.fencing.count).max() ?? 0) {
                phase.send { i in
                    guard case .reserve(let type, let fencing) = steps[i], k < fencing.count else { return nil }
                    return .prOut(.preempt, type: type, key: me[i].rawValue, serviceActionKey: fencing[k].rawValue)
                }
            }
            failures.merge(phase.failures) { a, _ in a }
            // A GOOD RESERVE means this nexus holds the reservation. A GOOD
            // PREEMPT or REGISTER does not prove it (the holder may have
            // changed since we read it; PREEMPT of a key that no longer
            // holds only removes registrations): those are checked.
            let unproven = phase.running.filter { i in
                guard case .reserve = steps[i] else { return true }
                return !phase.ok[i] || phase.devices[i]?.sawReservationChange == true
            }
            let rechecked = checkHolding(unproven, plans: plans, views: views, devices: devs, readAfter: phase.holderRead)
            failures.merge(rechecked.failures) { a, _ in a }
            active = []
            for (i, v) in rechecked.notHeld {
                guard let d = devs[i] else { continue }
                guard attempt + 1 < attempts else {
                    try? dropRegistration(d, key: me[i])
                    failures[i] = .conflict("\(plans[i].resource.name): the reservation kept changing while acquiring it; gave up")
                    continue
                }
                do {
                    steps[i] = try decide(plans[i].resource, view: v, state: state)
                    views[i] = v
                    if !steps[i].isAlreadyShared { active.append(i) }
                } catch {
                    try? dropRegistration(d, key: me[i])
                    failures[i] = error
                }
            }
        }
        return failures
    }

    /// Looks again at LUs whose holding is not proven: either we hold it
    /// now (done, after fencing the same VM's other registrations), or
    /// the full view to decide again with is returned. `readAfter` holds
    /// the holders read in the same batch right behind a LU's PR OUTs: one
    /// that shows us holding proves it (whenever the target ran that read,
    /// our key held then) and is not read again; any other is.
    func checkHolding(
        _ indices: [Int], plans: [Plan], views: [PRView], devices: [PRDevice?], readAfter: [Int: PRView] = [:]
    )
        -> (failures: [Int: LockError], notHeld: [Int: PRView])
    {
        var failures: [Int: LockError] = [:]
        var notHeld: [Int: PRView] = [:]
        let present = indices.filter { devices[$0] != nil }
        var reads: [Int: Result<PRView, LockError>] = [:]
        for i in present {
            guard let v = readAfter[i], devices[i]?.sawReservationChange == false, plans[i].resource.mode == .exclusive,
                holds(v, key: key(for: plans[i].resource.mode), mode: plans[i].resource.mode)
            else { continue }
            reads[i] = .success(v)
        }
        let toRead = present.filter { reads[$0] == nil }
        let keysNeeded = toRead.map { plans[$0].resource.mode != .exclusive }
        for (i, read) in zip(toRead, PRDevice.readHolders(toRead.compactMap { devices[$0] }, keysNeeded: keysNeeded)) {
            reads[i] = read
        }
        for i in present {
            guard let d = devices[i], let read = reads[i] else { continue }
            let me = key(for: plans[i].resource.mode)
            do {
                var v = try read.get()
                if v.keys.isEmpty && plans[i].resource.mode == .exclusive {
                    // READ RESERVATION only: the same VM's registrations
                    // seen before this attempt (the holder's all went with
                    // the PREEMPT). A registration of this VM made since
                    // by another host is that host's acquire, which sees
                    // our reservation and drops it.
                    let preempted = plans[i].step.preemptedKey
                    v.keys = views[i].keys.filter { $0 != preempted?.rawValue }
                }
                if holds(v, key: me, mode: plans[i].resource.mode) {
                    // Holding is not enough under a registrants-only type:
                    // the same VM's registrations from other hosts could
                    // still write. A unit attention may have cut the
                    // fencing short.
                    try fenceSameVMPeers(d, view: v, me: me)
                } else {
                    // Decided again on a full, fresh view.
                    notHeld[i] = try d.view()
                }
            } catch {
                // Our registration stays: if we hold the LU, unregistering
                // would release it (giving back decides what to undo).
                failures[i] = error
            }
        }
        return (failures, notHeld)
    }
}

/// One phase of `performAll`: the LUs still running, whether each one's
/// last PR OUT succeeded, and the failures so far.
struct Phase {
    let devices: [PRDevice?]
    var running: [Int] = []
    var ok: [Bool]
    /// The LUs the last `send` sent a command to.
    var lastSent: Set<Int> = []
    var failures: [Int: LockError] = [:]
    /// Holders read right behind a chain's PR OUTs (see `send(_:chainedWhere:readHolderAfter:)`).
    var holderRead: [Int: PRView] = [:]

    init(devices: [PRDevice?]) {
        self.devices = devices
        ok = [Bool](repeating: true, count: devices.count)
    }

    mutating func start(_ indices: [Int]) {
        running = indices
        for i in indices {
            ok[i] = true
            devices[i]?.sawReservationChange = false
        }
    }

    /// Sends `command(i)` to every running LU whose last PR OUT succeeded
    /// and that saw no reservation change (nil: nothing for that LU).
    mutating func send(_ command: (Int) -> SCSICommand?) {
        sendWhere({ [ok, devices] i in ok[i] && devices[i]?.sawReservationChange == false }, command)
    }

    /// Sends `steps` in order, as `send` does each, to the LUs `send`
    /// would pick: a LU's next step counts only if its last one
    /// succeeded. Where `chained(i)`, all of LU i's steps go in one batch,
    /// one behind the other, and, where `readHolderAfter(i)`, READ
    /// RESERVATION behind them, its view kept in `holderRead` if every PR
    /// OUT before it succeeded. The other LUs get one batch per step.
    mutating func send(
        _ steps: [(Int) -> SCSICommand?], chainedWhere chained: (Int) -> Bool, readHolderAfter: (Int) -> Bool
    ) {
        let together = running.filter { i in ok[i] && devices[i]?.sawReservationChange == false && chained(i) }
        var items: [(device: PRDevice, command: SCSICommand)] = []
        var owners: [(lu: Int, step: Int?)] = []
        for i in together {
            guard let d = devices[i] else { continue }
            for (k, step) in steps.enumerated() {
                guard let c = step(i) else { continue }
                items.append((d, c))
                owners.append((i, k))
            }
            if readHolderAfter(i) {
                items.append((d, .readReservation))
                owners.append((i, nil))
            }
        }
        var lastOfChains: Set<Int> = []
        var stopped: Set<Int> = []
        for (k, answer) in PRDevice.execute(items).enumerated() {
            let (i, step) = owners[k]
            guard !stopped.contains(i), let d = devices[i] else { continue }
            guard let step else {
                holderRead[i] = try? d.holderView(answer)
                continue
            }
            do {
                let good = try d.prOutResult(items[k].command, answer)
                if step == steps.count - 1 { lastOfChains.insert(i) }
                if !good {
                    ok[i] = false
                    stopped.insert(i)
                }
            } catch {
                failures[i] = error
                stopped.insert(i)
            }
        }
        running.removeAll { failures[$0] != nil }
        let chainedSet = Set(together)
        for step in steps {
            sendWhere({ [ok, devices] i in !chainedSet.contains(i) && ok[i] && devices[i]?.sawReservationChange == false }, step)
        }
        lastSent.formUnion(lastOfChains)
    }

    /// Sends `command(i)` to the running LUs whose PR OUT in the last
    /// `send` met a conflict (and that saw no reservation change).
    mutating func retryConflicts(_ command: (Int) -> SCSICommand?) {
        sendWhere({ [ok, devices, lastSent] i in lastSent.contains(i) && !ok[i] && devices[i]?.sawReservationChange == false }, command)
    }

    private mutating func sendWhere(_ selected: (Int) -> Bool, _ command: (Int) -> SCSICommand?) {
        var items: [(device: PRDevice, command: SCSICommand)] = []
        var owners: [Int] = []
        for i in running where selected(i) {
            guard let d = devices[i], let c = command(i) else { continue }
            items.append((d, c))
            owners.append(i)
        }
        lastSent = Set(owners)
        guard !items.isEmpty else { return }
        var failed: Set<Int> = []
        for (k, answer) in PRDevice.execute(items).enumerated() {
            let i = owners[k]
            do {
                ok[i] = try items[k].device.prOutResult(items[k].command, answer)
            } catch {
                failures[i] = error
                failed.insert(i)
            }
        }
        running.removeAll { failed.contains($0) }
    }
}

extension PRStep {
    var isAlreadyShared: Bool {
        if case .alreadyShared = self { return true }
        return false
    }

    /// The keys a reserve step preempts after its RESERVE.
    var fencing: [PRKey] {
        if case .reserve(_, let fencing) = self { return fencing }
        return []
    }

    /// The key whose registrations a GOOD takeover removed.
    var preemptedKey: PRKey? {
        if case .takeover(let holder, _) = self { return holder }
        return nil
    }
}
