/// Names for the Linux SCSI midlayer's host_status and driver_status codes
/// (include/scsi/scsi_status.h, scsi/sg.h), so errors say what went wrong
/// between us and the LU rather than printing a bare number.
enum SGIOStatus {
    static let hostTimeout: UInt16 = 0x03
    static let driverTimeout: UInt16 = 0x06
    /// driver_status bit meaning "sense data is present": not an error.
    static let driverSense: UInt16 = 0x08

    static func hostName(_ code: UInt16) -> String {
        switch code {
        case 0x01: return "DID_NO_CONNECT"
        case 0x02: return "DID_BUS_BUSY"
        case 0x03: return "DID_TIME_OUT"
        case 0x04: return "DID_BAD_TARGET"
        case 0x05: return "DID_ABORT"
        case 0x06: return "DID_PARITY"
        case 0x07: return "DID_ERROR"
        case 0x08: return "DID_RESET"
        case 0x09: return "DID_BAD_INTR"
        case 0x0a: return "DID_PASSTHROUGH"
        case 0x0b: return "DID_SOFT_ERROR"
        case 0x0c: return "DID_IMM_RETRY"
        case 0x0d: return "DID_REQUEUE"
        case 0x0e: return "DID_TRANSPORT_DISRUPTED"
        case 0x0f: return "DID_TRANSPORT_FAILFAST"
        case 0x10: return "DID_TARGET_FAILURE"
        case 0x11: return "DID_NEXUS_FAILURE"
        case 0x12: return "DID_ALLOC_FAILURE"
        case 0x13: return "DID_MEDIUM_ERROR"
        case 0x14: return "DID_TRANSPORT_MARGINAL"
        default: return "unknown host status"
        }
    }

    static func driverName(_ code: UInt16) -> String {
        switch code & 0x0f {
        case 0x01: return "DRIVER_BUSY"
        case 0x02: return "DRIVER_SOFT"
        case 0x03: return "DRIVER_MEDIA"
        case 0x04: return "DRIVER_ERROR"
        case 0x05: return "DRIVER_INVALID"
        case 0x06: return "DRIVER_TIMEOUT"
        case 0x07: return "DRIVER_HARD"
        case 0x08: return "DRIVER_SENSE"
        default: return "unknown driver status"
        }
    }
}
