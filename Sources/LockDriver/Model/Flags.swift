import CLockDriver

/// Flags of `drvAcquire`.
public struct AcquireFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Register the process with the lock backend, take no locks yet.
    public static let registerOnly = AcquireFlags(rawValue: UInt32(VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY.rawValue))
    /// Forbid further lock calls from the registered process.
    public static let restrict = AcquireFlags(rawValue: UInt32(VIR_LOCK_MANAGER_ACQUIRE_RESTRICT.rawValue))

    public static let all: AcquireFlags = [.registerOnly, .restrict]
}

/// Flags of `drvNew`.
public struct NewFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The object has just been started (libvirt's domain start path).
    public static let started = NewFlags(rawValue: UInt32(VIR_LOCK_MANAGER_NEW_STARTED.rawValue))
    public static let all: NewFlags = [.started]
}

/// Flags of `drvRelease`. libvirt defines none and always passes 0.
public struct ReleaseFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// lockmgr's extension: release everything the object's process holds,
    /// whatever resources were added. A failure action that pauses a process
    /// uses it, having no domain definition to list the resources from
    /// (libvirt lists them). Never the meaning of "no resources added":
    /// libvirt releases with none when it unplugs a network disk.
    public static let allHeld = ReleaseFlags(rawValue: 1 << 16)
    public static let all: ReleaseFlags = [.allHeld]
}

/// Flags of the driver table itself.
public struct DriverFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The plugin produces and consumes state strings.
    public static let usesState = DriverFlags(rawValue: UInt32(VIR_LOCK_MANAGER_USES_STATE.rawValue))
}

/// What to do with the object's process when its locks are lost.
public enum FailureAction: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case `default` = 0
    case poweroff = 1
    case restart = 2
    case pause = 3
    case ignore = 4

    public var description: String {
        switch self {
        case .default: return "default"
        case .poweroff: return "poweroff"
        case .restart: return "restart"
        case .pause: return "pause"
        case .ignore: return "ignore"
        }
    }

    public init?(name: String) {
        guard let match = FailureAction.allCases.first(where: { $0.description == name }) else { return nil }
        self = match
    }
}

/// The ABI version of a driver table, major*1e6 + minor*1e3 + micro.
public struct ABIVersion: Sendable, Equatable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let current = ABIVersion(rawValue: UInt32(VIR_LOCK_MANAGER_VERSION))

    public var major: UInt32 { rawValue / 1_000_000 }
    public var minor: UInt32 { rawValue / 1_000 % 1_000 }
    public var micro: UInt32 { rawValue % 1_000 }
    public var description: String { "\(major).\(minor).\(micro)" }
}
