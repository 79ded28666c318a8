import LockDriver
import PRProtocol
import PRTestSupport

@testable import PRTransport

// Tests only: CDBs and PR data written out byte by byte, so these tests do
// not depend on (or duplicate) PRProtocol's CDB encoder. Layouts: SPC-4 6.16 and 6.17 (PERSISTENT RESERVE IN/OUT).

enum PRIn: UInt8 {
    case readKeys = 0, readReservation = 1, reportCapabilities = 2, readFullStatus = 3

    func cdb(allocationLength: Int) -> [UInt8] {
        [0x5E, rawValue, 0, 0, 0, 0, 0, UInt8(allocationLength >> 8 & 0xFF), UInt8(allocationLength & 0xFF), 0]
    }
}

enum PROut: UInt8 {
    case register = 0, reserve = 1, release = 2, clear = 3, preempt = 4, preemptAndAbort = 5
    case registerAndIgnore = 6, registerAndMove = 7

    func cdb(type: UInt8 = 0, scope: UInt8 = 0, listLength: Int = 24) -> [UInt8] {
        [0x5F, rawValue, scope << 4 | type, 0, 0] + be32(UInt32(listLength)) + [0]
    }
}

enum PRType {
    static let writeExclusive: UInt8 = 1
    static let exclusiveAccess: UInt8 = 3
    static let writeExclusiveRegistrantsOnly: UInt8 = 5
    static let exclusiveAccessRegistrantsOnly: UInt8 = 6
    static let writeExclusiveAllRegistrants: UInt8 = 7
    static let exclusiveAccessAllRegistrants: UInt8 = 8
}

/// The 24-byte PR OUT parameter list.
func parameters(key: UInt64, serviceActionKey: UInt64 = 0, flags: UInt8 = 0) -> [UInt8] {
    be64(key) + be64(serviceActionKey) + [0, 0, 0, 0, flags, 0, 0, 0]
}

enum Status {
    static let good: UInt8 = 0x00
    static let checkCondition: UInt8 = 0x02
    static let reservationConflict: UInt8 = 0x18
}

/// Sense key, ASC, ASCQ of a response ([] without sense).
func senseTriple(_ response: SCSIResponse) -> [UInt8] {
    guard let sense = response.sense else { return [] }
    return [sense.key, sense.asc, sense.ascq]
}

/// Sends a CDB spelled out byte by byte: the transports' marshalling below
/// their typed `send` (reached with @testable), and the fake LU directly.
protocol RawCDBSender {
    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse
}

extension SGIOTransport: RawCDBSender {}

extension PRHelperTransport: RawCDBSender {
    func send(cdb: [UInt8], direction: DataDirection, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        let request: Request
        switch direction {
        case .none: request = Request(parameterList: [], allocationLength: 0)
        case .fromDevice(let length): request = Request(parameterList: [], allocationLength: length)
        case .toDevice(let list): request = Request(parameterList: list, allocationLength: 0)
        }
        return try send(cdb: cdb, request: request, timeoutMilliseconds: timeoutMilliseconds)
    }
}

/// A transport plus the PR commands the flows use, spelled out.
struct Initiator {
    let transport: any RawCDBSender
    var timeout: UInt32 = 2_000

    func prOut(
        _ action: PROut, key: UInt64, serviceActionKey: UInt64 = 0, type: UInt8 = 0, flags: UInt8 = 0
    ) throws(LockError) -> SCSIResponse {
        try transport.send(
            cdb: action.cdb(type: type),
            direction: .toDevice(parameters(key: key, serviceActionKey: serviceActionKey, flags: flags)),
            timeoutMilliseconds: timeout)
    }

    func prIn(_ action: PRIn, allocationLength: Int = 256) throws(LockError) -> SCSIResponse {
        try transport.send(
            cdb: action.cdb(allocationLength: allocationLength),
            direction: .fromDevice(allocationLength: allocationLength), timeoutMilliseconds: timeout)
    }

    /// READ KEYS decoded: generation and keys.
    func keys() throws(LockError) -> (generation: UInt32, keys: [UInt64]) {
        let data = try prIn(.readKeys).data
        let count = Int(readBE32(data, at: 4)) / 8
        return (readBE32(data, at: 0), (0..<count).map { readBE64(data, at: 8 + 8 * $0) })
    }

    /// READ RESERVATION decoded: nil, or holder key and type.
    func reservation() throws(LockError) -> (key: UInt64, type: UInt8)? {
        let data = try prIn(.readReservation).data
        guard readBE32(data, at: 4) >= 16 else { return nil }
        return (readBE64(data, at: 8), data[21] & 0x0F)
    }
}

/// The LockError a throwing body threw, or nil.
func lockError(_ body: () throws(LockError) -> Void) -> LockError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
