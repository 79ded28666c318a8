/// One reservation type, three numberings: SPC's type codes (the
/// ReservationType raw values, what the state string and READ RESERVATION
/// carry), and the one <linux/pr.h>'s enum pr_type and NVMe's reservation
/// type (RTYPE) share: the kernel's numbers are NVMe's, so the block-layer
/// ioctls, the 6.19 read ioctls and an NVMe Reservation Report all speak
/// the same numbers, and one decision layer serves SCSI and NVMe.
extension ReservationType {
    /// <linux/pr.h> enum pr_type, which is NVMe's RTYPE.
    public var prTypeCode: UInt8 {
        switch self {
        case .writeExclusive: return 1
        case .exclusiveAccess: return 2
        case .writeExclusiveRegistrantsOnly: return 3
        case .exclusiveAccessRegistrantsOnly: return 4
        case .writeExclusiveAllRegistrants: return 5
        case .exclusiveAccessAllRegistrants: return 6
        }
    }

    /// The type with this pr_type / NVMe RTYPE code; nil for 0 (no
    /// reservation) and for codes neither defines.
    public init?(prTypeCode code: UInt8) {
        guard let type = Self.allCases.first(where: { $0.prTypeCode == code }) else { return nil }
        self = type
    }
}
