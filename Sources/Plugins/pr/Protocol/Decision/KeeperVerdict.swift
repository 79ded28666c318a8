import LockDriver

/// What a keeper concludes about one resource of a running VM from what
/// the device shows (pure logic, unit-tested without a device).
public enum KeeperVerdict: Sendable, Equatable {
    /// Still ours.
    case held
    /// The same VM now holds it from another host: a migration handover
    /// (QEMU's migrate-pr order, or a rollback), not a loss.
    case handedOver(to: PRKey)
    /// Taken away or gone while the VM runs; the text says how.
    case lost(String)

    public static func judge(_ resource: PRResource, myKey: PRKey, view: PRView) -> KeeperVerdict {
        let registered = view.keys.contains(myKey.rawValue)
        guard let holder = view.reservation else {
            return .lost("no reservation on the LU any more\(registered ? "" : ", and key \(myKey) is no longer registered")")
        }
        let holderKey = PRKey(rawValue: holder.key)
        if resource.mode == .shared {
            if holder.type.isAllRegistrants && registered { return .held }
            return .lost(
                registered
                    ? "now reserved by key \(holderKey) (\(holder.type))"
                    : "this host's shared key \(myKey) is no longer registered")
        }
        if holderKey == myKey && !holder.type.isAllRegistrants { return .held }
        if holderKey.vmPart == myKey.vmPart && holderKey.hostPart != myKey.hostPart { return .handedOver(to: holderKey) }
        return .lost("reserved by key \(holderKey) (\(PRDecision.describe(holderKey))) now")
    }
}
