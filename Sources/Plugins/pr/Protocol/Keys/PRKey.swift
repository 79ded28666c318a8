import LockDriver

/// A reservation key: 32 bits naming the VM, 32 bits naming the host.
///
///     key = vmPart << 32 | hostPart
///
/// - vmPart: FNV-1a-64 of the VM's 16 uuid bytes, folded to 32 bits. For a
///   SHARED disk it is 0: one I_T nexus carries one registration per LU, so
///   every VM of a host shares the host's registration on a shared disk.
/// - hostPart: the configured `host_id`, or FNV-1a-64 of the host identity
///   (the iSCSI initiator name, else /etc/machine-id), folded to 32 bits.
///
/// Neither part is ever 0 (a folded hash of 0 becomes 1), so a key is never
/// 0, which SPC reserves for "no key". Anyone can compute any key from
/// public inputs, and READ KEYS tells which VM on which host is registered.
///
/// Why not one key per VM (QEMU's choice): on a target where every login
/// is a new I_T nexus (tgt), a host cannot tell its own orphaned
/// registration from the migration destination's if both carry the same
/// key, so a clean-up on the source could PREEMPT the running destination.
/// With a host part, a host only ever preempts its own key, or, holding a
/// state string of the same VM, the migration peer's.
public struct PRKey: Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(vmPart: UInt32, hostPart: UInt32) {
        rawValue = UInt64(vmPart) << 32 | UInt64(hostPart)
    }

    public static func exclusive(vm: UUIDBytes, host: UInt32) -> PRKey {
        PRKey(vmPart: vmPart(of: vm), hostPart: host)
    }

    public static func shared(host: UInt32) -> PRKey {
        PRKey(vmPart: 0, hostPart: host)
    }

    /// The key a VM holds a resource of `mode` with on a host.
    public static func holder(mode: AccessMode, vm: UUIDBytes, host: UInt32) -> PRKey {
        mode == .shared ? .shared(host: host) : .exclusive(vm: vm, host: host)
    }

    public var vmPart: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
    public var hostPart: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    public var isShared: Bool { vmPart == 0 }

    /// The 16 lower-case hex digits used in messages and state strings.
    public var description: String {
        Hex.string((0..<8).map { UInt8(truncatingIfNeeded: rawValue >> (56 - 8 * UInt64($0))) })
    }

    public static func vmPart(of uuid: UUIDBytes) -> UInt32 { fold(FNV.hash64(uuid.bytes)) }

    public static func hostPart(ofIdentity identity: String) -> UInt32 { fold(FNV.hash64(Array(identity.utf8))) }

    static func fold(_ h: UInt64) -> UInt32 {
        let v = UInt32(truncatingIfNeeded: h >> 32) ^ UInt32(truncatingIfNeeded: h)
        return v == 0 ? 1 : v
    }
}

/// FNV-1a, 64 and 32 bits: small, dependency-free, stable across
/// processes and versions (Swift's Hasher is seeded per process).
public enum FNV {
    public static func hash64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    public static func hash32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5
        for b in bytes {
            h ^= UInt32(b)
            h = h &* 0x0100_0193
        }
        return h
    }
}
