import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// The keeper's part in keeping a held key on every path of a
/// dm-multipath map (PathRepair says why path by path, never through the
/// map). Each round, for each resource still held that is a multipath
/// map: READ KEYS through the map; if the key is registered on fewer
/// I_T nexuses than the map has paths, register it on every usable path,
/// under the record's flock (the plugin's own commands hold it, so a
/// release in progress is never undone by a repair), and check the
/// reservation is still ours afterwards.
extension Keeper {
    func repairPaths(_ held: [PRResource], _ process: VMProcess, config: PRConfig) {
        for r in held {
            guard case .devicePath(let path) = r.address, let paths = MultipathMap.paths(of: path) else { continue }
            guard let me = try? PRKey.holder(mode: r.mode, vm: vm, host: config.requireHostPart()) else { continue }
            guard let keys = try? mapDevice(r, config: config).readKeys().keys else { continue }
            let todo = PathRepair.pathsToRegister(key: me.rawValue, keysSeen: keys, paths: paths)
            let count = keys.filter { $0 == me.rawValue }.count
            let seen = PathRepair.state(key: me.rawValue, keysSeen: keys, toRegister: todo)
            guard !todo.isEmpty else {
                pathRepairs[r.name] = nil
                continue
            }
            guard pathRepairs[r.name] != seen else { continue }
            // Remembered only once a repair went through on every path: a
            // path that failed is tried again next round.
            let found = "\(count) of the map's \(paths.count) paths"
            let done = repair(r, paths: todo, key: me, process: process, config: config, found: found)
            pathRepairs[r.name] = done ? seen : nil
        }
    }

    /// Whether the repair reached every path (false: try again next round).
    func repair(_ r: PRResource, paths: [MultipathPath], key: PRKey, process: VMProcess, config: PRConfig, found: String) -> Bool {
        var done = false
        do {
            _ = try store.update(vm) { (record: inout KeeperRecord?) throws(LockError) -> String? in
                guard let rec = record, rec.pid == process.pid, rec.startTime == process.startTime,
                    rec.resources.contains(r), !rec.releasing.contains(r.name)
                else { return nil }
                let map = try mapDevice(r, config: config)
                let outcome = PathRepair.run(
                    key: key.rawValue, paths: paths,
                    device: { (disk: String) throws(LockError) -> PRDevice in
                        PRDevice(
                            transport: try DevicePathRoute(
                                path: disk, setting: config.blockPR, timeoutMilliseconds: config.timeoutMilliseconds
                            )
                            .transport,
                            timeoutMilliseconds: config.timeoutMilliseconds)
                    },
                    stillHeld: { () throws(LockError) -> Bool in
                        let view = PRView(reservation: try map.readReservation().reservation, keys: try map.readKeys().keys)
                        return KeeperVerdict.judge(r, myKey: key, view: view) == .held
                    })
                done = outcome.failed.isEmpty
                // A failure repeats each round until the path answers: logged once.
                let text = describeRepair(rec, r, key: key, found: found, outcome)
                if done { report(text, priority: .info) } else { note(text) }
                return nil
            }
        } catch {
            note("\(who): \(r.name): cannot repair its paths (will retry): \(error.message)")
        }
        return done
    }

    func describeRepair(_ rec: KeeperRecord, _ r: PRResource, key: PRKey, found: String, _ outcome: PathRepair.Outcome) -> String {
        var text = "\(describe(rec)): \(r.name): key \(key) registered on \(found)"
        if !outcome.registered.isEmpty {
            text += "; registered it through every usable path (one that had it keeps it): \(outcome.registered.joined(separator: ", "))"
        }
        if outcome.undone { text += "; the reservation was no longer ours afterwards, so the key was taken back from those paths" }
        if !outcome.failed.isEmpty { text += "; not registered: \(outcome.failed.joined(separator: "; "))" }
        return text
    }

    /// The map itself, through the keeper's reader (PR IN goes down one path:
    /// the LU answers the same on all).
    func mapDevice(_ r: PRResource, config: PRConfig) throws(LockError) -> PRDevice {
        guard let reader else { throw .internalError("the keeper has no reader") }
        return PRDevice(transport: try reader.factory.transport(for: r), timeoutMilliseconds: config.timeoutMilliseconds)
    }
}
