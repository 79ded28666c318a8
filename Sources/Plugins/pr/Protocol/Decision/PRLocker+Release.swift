import LockDriver

// MARK: release and inquire

extension PRLocker {
    /// Gives up the reservations and registrations of ours; returns the
    /// state describing what was held. Never touches another key's
    /// reservation: a host only preempts its own key here.
    public func release(_ resources: [PRResource]) throws(LockError) -> PRState {
        let (entries, errors) = releaseAll(resources.filter { $0.mode != .readOnly })
        guard errors.isEmpty else { throw .backend(errors.joined(separator: "; ")) }
        return PRState(vm: vm, entries: entries)
    }

    /// Releases every resource, all LUs in flight together; returns the
    /// state entries of those we held and the errors of those that failed
    /// (the others are released all the same).
    func releaseAll(_ resources: [PRResource]) -> (entries: [PRState.Entry], errors: [String]) {
        var errors: [Int: String] = [:]
        var opened: [(index: Int, resource: PRResource, device: PRDevice)] = []
        for (i, r) in resources.enumerated() {
            do { opened.append((i, r, try device(r))) } catch { errors[i] = error.message }
        }
        var entries: [PRState.Entry] = []
        var drops: [(index: Int, key: PRKey, type: ReservationType, device: PRDevice)] = []
        for (o, read) in zip(opened, releaseViews(opened.map { ($0.device, $0.resource.mode) })) {
            let me = key(for: o.resource.mode)
            let v: PRView
            do { v = try read.get() } catch {
                errors[o.index] = error.message
                continue
            }
            let held = holds(v, key: me, mode: o.resource.mode)
            // Holding, our key is registered (on the holder's nexus at least).
            guard held || v.keys.contains(me.rawValue) else { continue }
            if held, let h = v.reservation {
                entries.append(PRState.Entry(resource: o.resource.name, key: me, type: h.type))
            }
            // Our registrations may belong to nexuses that no longer exist
            // (tgt: every login is a new nexus): see dropKeys.
            let type = v.reservation?.type ?? (o.resource.mode == .shared ? config.sharedType : config.exclusiveType)
            drops.append((o.index, me, type, o.device))
        }
        for (drop, result) in zip(drops, Self.dropKeys(drops.map { ($0.key, $0.type, $0.device) })) {
            if case .failure(let e) = result { errors[drop.index] = e.message }
        }
        return (entries, errors.sorted { $0.key < $1.key }.map(\.value))
    }

    /// What a release must know of each device: who holds it, and whether
    /// our key is registered. For an exclusive disk the holder alone (READ
    /// RESERVATION) settles the usual case: when our key holds, it is
    /// registered, and READ KEYS would add nothing. The keys are read too
    /// where they decide: shared disks (all registrants hold), and an
    /// exclusive disk we turn out not to hold (our key may still be
    /// registered there), which costs that disk a second read (not where
    /// READ FULL STATUS already gave the keys with the holder).
    func releaseViews(_ devices: [(device: PRDevice, mode: AccessMode)]) -> [Result<PRView, LockError>] {
        var views = PRDevice.readHolders(devices.map(\.device), keysNeeded: devices.map { $0.mode == .shared })
        let undecided = devices.indices.filter { i in
            guard devices[i].mode != .shared, case .success(let v) = views[i],
                FullStatusSupport.shared.supports(devices[i].device.transport.family) != true
            else { return false }
            return !holds(v, key: key(for: devices[i].mode), mode: devices[i].mode) && v.keys.isEmpty
        }
        for (i, read) in zip(undecided, PRDevice.readViews(undecided.map { devices[$0].device })) { views[i] = read }
        return views
    }

    /// Removes every registration of `key` (and the reservation, if `key`
    /// holds it), whichever nexuses they belong to. Never touches another
    /// key's reservation.
    public static func dropKey(_ key: PRKey, type: ReservationType, on d: PRDevice) throws(LockError) {
        try dropKeys([(key, type, d)])[0].get()
    }

    /// `dropKey` on many devices, each step on all of them in flight
    /// together: REGISTER AND IGNORE `key` on this nexus, PREEMPT(`key`,
    /// `key`) (moving a reservation held by `key` here, type kept, and
    /// dropping the other registrations of `key`), then unregister (which
    /// releases a reservation this nexus holds; SPC-4). Where one GOOD may
    /// stand for several nexuses, READ KEYS then proves the key gone:
    /// through the kernel's PR ioctls a dm-multipath map sends the
    /// unregister down every path and answers for them as one, so a GOOD
    /// there does not show that no path kept the key, and a release must
    /// not report a key as gone that can still write. On a transport whose
    /// answer is one nexus's (`answersForOneNexus`: iSCSI) the two GOODs
    /// are that proof, and the read is not sent.
    ///
    /// On a nexus that outlives the call (pr-sessiond's sessions) the key
    /// is usually still registered from the acquire: the PREEMPT goes
    /// first, the unregister right behind it in the same batch, and only a
    /// device that answers the PREEMPT with RESERVATION CONFLICT (this
    /// nexus holds no registration of `key`, or the target ran the
    /// unregister first: SAM lets it reorder SIMPLE tasks) is registered,
    /// preempted and unregistered again, one step per batch. Either way
    /// the same commands act, minus one, in one round trip.
    public static func dropKeys(_ drops: [(key: PRKey, type: ReservationType, device: PRDevice)]) -> [Result<Void, LockError>] {
        var results = [Result<Void, LockError>](repeating: .success(()), count: drops.count)
        /// One step on `indices`: those that succeeded, and those that met a
        /// conflict (failed unless `conflictsReturned`).
        func phase(
            _ indices: [Int], _ what: (PRKey) -> String, conflictsReturned: Bool = false, _ command: (Int) -> SCSICommand
        ) -> (done: [Int], conflicts: [Int]) {
            let answers = PRDevice.execute(indices.map { (drops[$0].device, command($0)) })
            var done: [Int] = []
            var conflicts: [Int] = []
            for (i, answer) in zip(indices, answers) {
                let d = drops[i].device
                do throws(LockError) {
                    if try d.prOutResult(command(i), answer) {
                        done.append(i)
                    } else if conflictsReturned {
                        conflicts.append(i)
                    } else {
                        throw .conflict("\(d.name): RESERVATION CONFLICT while \(what(drops[i].key))")
                    }
                } catch {
                    results[i] = .failure(error)
                }
            }
            return (done, conflicts)
        }
        let preemptWhat = { (k: PRKey) in "dropping the other registrations of key \(k)" }
        let preempt = { (i: Int) in
            SCSICommand.prOut(.preempt, type: drops[i].type, key: drops[i].key.rawValue, serviceActionKey: drops[i].key.rawValue)
        }
        // REGISTER AND IGNORE with key 0: unregisters this nexus whatever it
        // holds, and does nothing on a nexus that holds nothing. Through the
        // kernel's PR ioctls a dm-multipath map sends it down every path,
        // and the PREEMPT before it has just dropped the other paths' keys.
        let unregister = SCSICommand.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0)
        let unregisterWhat = { (k: PRKey) in "unregistering key \(k)" }
        let kept = drops.indices.filter { drops[$0].device.transport.nexusOutlivesCall }
        var first: (done: [Int], conflicts: [Int]) = ([], [])
        let keptAnswers = PRDevice.execute(kept.flatMap { [(drops[$0].device, preempt($0)), (drops[$0].device, unregister)] })
        for (k, i) in kept.enumerated() {
            let d = drops[i].device
            do throws(LockError) {
                guard try d.prOutResult(preempt(i), keptAnswers[2 * k]) else {
                    first.conflicts.append(i)
                    continue
                }
                guard try d.prOutResult(unregister, keptAnswers[2 * k + 1]) else {
                    throw .conflict("\(d.name): RESERVATION CONFLICT while \(unregisterWhat(drops[i].key))")
                }
                first.done.append(i)
            } catch {
                results[i] = .failure(error)
            }
        }
        let keptSet = Set(kept)
        let unregistered = (drops.indices.filter { !keptSet.contains($0) } + first.conflicts).sorted()
        let registered = phase(
            unregistered, { "registering key \($0) to drop it" },
            { .prOut(.registerAndIgnore, key: 0, serviceActionKey: drops[$0].key.rawValue) }
        ).done
        let preempted = phase(registered, preemptWhat, preempt).done
        let running = (first.done + phase(preempted, unregisterWhat, { _ in unregister }).done).sorted()
        let command = SCSICommand.prIn(.readKeys, allocationLength: 8192)
        let unproven = running.filter { !drops[$0].device.transport.answersForOneNexus }
        for (i, answer) in zip(unproven, PRDevice.execute(unproven.map { (drops[$0].device, command) })) {
            let d = drops[i].device
            results[i] = Result { () throws(LockError) in
                var data = try d.good(command, answer)
                if RegisteredKeys.announcedLength(data) > data.count { data = try d.readKeysData() }
                guard try !RegisteredKeys(parsing: data).keys.contains(drops[i].key.rawValue) else {
                    throw .backend("\(d.name): key \(drops[i].key) is still registered after dropping it")
                }
            }
        }
        return results
    }

    /// The state of what this host holds for this VM, read from the devices.
    public func inquire(_ resources: [PRResource]) throws(LockError) -> PRState {
        let wanted = resources.filter { $0.mode != .readOnly }
        let devs = try wanted.map { r throws(LockError) in try device(r) }
        var entries: [PRState.Entry] = []
        for (r, read) in zip(wanted, PRDevice.readViews(devs)) {
            let me = key(for: r.mode)
            let v = try read.get()
            if holds(v, key: me, mode: r.mode), let h = v.reservation {
                entries.append(PRState.Entry(resource: r.name, key: me, type: h.type))
            }
        }
        return PRState(vm: vm, entries: entries)
    }
}
