import LockDriver
import PRProtocol

/// A key held on a dm-multipath map, registered again on the paths that
/// lost it. The kernel's IOC_PR_REGISTER on the map registers on every
/// path, but only when it is sent: a path that comes back later (a new
/// session, a target port that forgot the nexus) comes back without the
/// key, and under the registrants-only types its writes then fail. The
/// keeper repairs that, path by path, through each path's own disk
/// (/dev/sdX), never through the map: dm-multipath's pr_register stops at
/// the first path that fails and then unregisters the key on every path,
/// which would drop the registrations that hold the reservation.
public enum PathRepair {
    /// What one repair did.
    public struct Outcome: Sendable, Equatable {
        /// Paths (their /dev/sdX) that now carry the key.
        public var registered: [String] = []
        /// Paths that could not be reached or refused, with the reason.
        public var failed: [String] = []
        /// The reservation was no longer this key's after registering (a
        /// handover or a preemption raced the repair): the new
        /// registrations were taken back.
        public var undone = false

        public init(registered: [String] = [], failed: [String] = [], undone: Bool = false) {
            self.registered = registered
            self.failed = failed
            self.undone = undone
        }
    }

    /// The paths to register `key` on now, from READ KEYS (one entry per
    /// registered I_T nexus): none while the key is registered as many
    /// times as the map has paths; else every usable path (REGISTER AND
    /// IGNORE EXISTING KEY with the same key changes nothing on a path
    /// that has it, and the LU does not say which nexus lacks it). A path
    /// that is down keeps whatever the target holds for its nexus and is
    /// counted with the others, so a down path never hides a usable path
    /// without the key; with no key registered at all the reservation is
    /// not ours to repair.
    public static func pathsToRegister(key: UInt64, keysSeen: [UInt64], paths: [MultipathPath]) -> [MultipathPath] {
        let registrations = keysSeen.filter { $0 == key }.count
        guard registrations > 0, registrations < paths.count else { return [] }
        return paths.filter(\.usable)
    }

    /// What a repair is decided on (the key's registrations, the usable
    /// paths): the keeper remembers it, so a state that repairing cannot
    /// change (a target listing a key once for all its nexuses) is repaired
    /// once, not every round, and any change is repaired again.
    public static func state(key: UInt64, keysSeen: [UInt64], toRegister: [MultipathPath]) -> String {
        "\(keysSeen.filter { $0 == key }.count) " + toRegister.map(\.number).joined(separator: ",")
    }

    /// Registers `key` on `paths` (REGISTER AND IGNORE EXISTING KEY through
    /// each path's own device), then asks `stillHeld`; if the reservation
    /// is no longer this key's, unregisters the key on those paths again
    /// (whoever took it preempted the key everywhere; a registration made
    /// after that must not let this host write). `device` opens one path.
    public static func run(
        key: UInt64, paths: [MultipathPath],
        device: (String) throws(LockError) -> PRDevice,
        stillHeld: () throws(LockError) -> Bool
    ) -> Outcome {
        var outcome = Outcome()
        var opened: [(path: String, device: PRDevice)] = []
        for path in paths {
            do {
                let d = try device(path.devicePath)
                if try d.prOut(.registerAndIgnore, key: 0, serviceActionKey: key) {
                    outcome.registered.append(path.devicePath)
                    opened.append((path.devicePath, d))
                } else {
                    outcome.failed.append("\(path.devicePath) (\(path.number)): REGISTER AND IGNORE EXISTING KEY got RESERVATION CONFLICT")
                }
            } catch {
                outcome.failed.append("\(path.devicePath) (\(path.number)): \(error.message)")
            }
        }
        guard !opened.isEmpty else { return outcome }
        let held: Bool
        do { held = try stillHeld() } catch {
            // Unknown: taking the key back could drop a reservation that is
            // still ours (a holder that unregisters releases it). The next
            // round reads again.
            outcome.failed.append("cannot read the reservation after registering: \(error.message)")
            return outcome
        }
        guard !held else { return outcome }
        outcome.undone = true
        for (path, d) in opened {
            do { try d.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0) } catch {
                outcome.failed.append("\(path): taking the key back failed: \(error.message)")
            }
        }
        return outcome
    }
}
