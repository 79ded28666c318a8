/// The parsers of outside input, one fuzz target each. A target's body
/// feeds the bytes to the parser and checks what the parser promises about
/// its result (round trips, well-formedness, the kind of error); a broken
/// promise is reported as a `FuzzFailure`, a trap crashes. libFuzzer runs
/// the bodies through `lockmgr-fuzz`; `swift test` replays the seed corpus
/// and every crash ever found (Fuzz/Corpus, Fuzz/Regressions) through the
/// same bodies.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The libvirt-syntax config parser, and the plugin configs built on it.
    case config
    /// The sanlock plugin's state strings (sanlock_inquire's format).
    case sanlockState = "sanlock-state"
    /// The pr plugin's state strings.
    case prState = "pr-state"
    /// PERSISTENT RESERVE IN data: READ KEYS.
    case prReadKeys = "pr-read-keys"
    /// PERSISTENT RESERVE IN data: READ RESERVATION.
    case prReadReservation = "pr-read-reservation"
    /// PERSISTENT RESERVE IN data: REPORT CAPABILITIES.
    case prReportCapabilities = "pr-report-capabilities"
    /// An NVMe Reservation Report (first byte: bit 0 set for the extended layout).
    case nvmeReservationReport = "nvme-reservation-report"
    /// PERSISTENT RESERVE IN data: READ FULL STATUS.
    case prReadFullStatus = "pr-read-full-status"
    /// A SCSI status byte and its sense data.
    case scsiSense = "scsi-sense"
    /// qemu-pr-helper's reply header and the payload it announces.
    case prHelperReply = "pr-helper-reply"
    /// The pr keeper's record file (`<keeper_dir>/<uuid>.vm`).
    case keeperRecord = "keeper-record"
    /// The host config with the plugin config it selects, as read together.
    case configPair = "config-pair"
    /// A pr-sessiond request body, as the service reads it from a plugin.
    case sessionRequest = "session-request"

    public var name: String { rawValue }

    /// Runs one input through the target's parser and checks its promises.
    public func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        switch self {
        case .config: try ConfigTarget.run(bytes)
        case .sanlockState: try SanlockStateTarget.run(bytes)
        case .prState: try PRStateTarget.run(bytes)
        case .prReadKeys: try PRDataTargets.readKeys(bytes)
        case .prReadReservation: try PRDataTargets.readReservation(bytes)
        case .prReportCapabilities: try PRDataTargets.reportCapabilities(bytes)
        case .nvmeReservationReport: try NVMeReportTarget.run(bytes)
        case .prReadFullStatus: try PRDataTargets.readFullStatus(bytes)
        case .scsiSense: try PRDataTargets.sense(bytes)
        case .prHelperReply: try PRHelperReplyTarget.run(bytes)
        case .keeperRecord: try KeeperRecordTarget.run(bytes)
        case .configPair: try ConfigPairTarget.run(bytes)
        case .sessionRequest: try SessionRequestTarget.run(bytes)
        }
    }
}

/// A promise of a parser that an input broke.
public struct FuzzFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Checks one promise; the message says what was expected and what came.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(message: message()) }
}
