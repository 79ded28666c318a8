import LockDriver

/// Whether devices report a unit attention to the first command of a new
/// I_T nexus, by `SCSITransport.family`, for the life of the process
/// (libvirtd keeps the plugin loaded, pr-sessiond runs for long). tgt
/// does, on every LU of every login: without pr-sessiond every plugin
/// call is a new login, and its first read would be answered with 29/00
/// and sent again, a round trip of its own. Where the family is known to
/// do so, a TEST UNIT READY goes first in the same batch and takes the
/// attention; the reads behind it are answered at once. Learned from the
/// answers to a new nexus's first commands, both ways; a stale answer only
/// costs that round trip, or one TEST UNIT READY too many.
final class NewNexusAttention: @unchecked Sendable {
    static let shared = NewNexusAttention()
    private let lock = Mutex()
    private var known: [String: Bool] = [:]

    func expected(_ family: String) -> Bool { lock.withLock { known[family] ?? false } }
    func record(_ family: String, _ reported: Bool) { lock.withLock { known[family] = reported } }
}

extension PRDevice {
    /// The devices of `items` whose nexus has sent them nothing yet (and
    /// that may be probed), once each, in order of first appearance.
    static func newNexusDevices(_ items: [(device: PRDevice, command: SCSICommand)]) -> [PRDevice] {
        var seen: Set<ObjectIdentifier> = []
        return items.map(\.device).filter {
            $0.probesNewNexus && $0.transport.nexusIsNew && seen.insert(ObjectIdentifier($0)).inserted
        }
    }

    /// What the first round's answers say of each new nexus's device: a
    /// power-on or nexus-loss attention (29/xx) on any of its commands, or
    /// none on all of them (a command that got no answer says nothing).
    static func learnNewNexusAttention(
        _ devices: [PRDevice], round: [(device: PRDevice, command: SCSICommand)],
        answers: [Result<SCSIResponse, LockError>]
    ) {
        let knowledge = NewNexusAttention.shared
        for device in devices {
            var reported = false
            var answered = true
            for (item, answer) in zip(round, answers) where item.device === device {
                switch answer {
                case .failure: answered = false
                case .success(let response):
                    if case .unitAttention(let ua) = SCSIOutcome(response), ua.asc == 0x29 { reported = true }
                }
            }
            if reported || answered { knowledge.record(device.transport.family, reported) }
        }
    }
}
