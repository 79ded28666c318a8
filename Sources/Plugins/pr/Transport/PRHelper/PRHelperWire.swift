import LockDriver
import PRProtocol

/// The qemu-pr-helper socket protocol (QEMU docs/interop/pr-helper.rst):
/// sizes, limits and the layout of requests and replies. Big-endian.
enum PRHelperWire {
    static let featuresSize = 4
    /// Every request starts with a CDB padded to this size.
    static let cdbSize = 16
    static let senseSize = 96
    /// Status (4) + payload size (4) + sense (96), before any payload.
    static let replyHeaderSize = 4 + 4 + senseSize
    /// Largest PR IN allocation length and PR OUT parameter list the helper takes.
    static let maxDataSize = 8192

    static let statusGood: UInt32 = 0x00

    /// No feature is defined yet: we ask for none.
    static let requestedFeatures: [UInt8] = [0, 0, 0, 0]

    static func paddedCDB(_ cdb: [UInt8]) -> [UInt8] {
        cdb + [UInt8](repeating: 0, count: max(0, cdbSize - cdb.count))
    }
}

/// One reply of qemu-pr-helper, read from its fixed-size header and checked
/// against the request it answers. Pure, so the one decoder the transport
/// uses is also what the fuzzer and the unit tests exercise.
public struct PRHelperReply: Sendable, Equatable {
    /// The SCSI status byte.
    public var status: UInt8
    /// How many payload bytes follow the header; at most the allocation length.
    public var payloadSize: Int
    /// The helper always sends 96 sense bytes; they are decoded only with CHECK CONDITION.
    public var sense: SenseData?

    /// A header that breaks the protocol: the stream is then at an unknown
    /// place and the connection must be dropped.
    public enum Violation: Error, Sendable, Equatable {
        case wrongHeaderSize(Int)
        case invalidStatus(UInt32)
        case payloadTooLarge(size: UInt32, allocationLength: Int)
        case payloadWithStatus(UInt8)
    }

    public static let headerSize = PRHelperWire.replyHeaderSize

    /// - Parameter allocationLength: the PR IN allocation length asked for, 0 for PR OUT.
    public init(header: [UInt8], allocationLength: Int) throws(Violation) {
        guard header.count == Self.headerSize else { throw .wrongHeaderSize(header.count) }
        let status = BigEndian.uint32(header, at: 0)
        let size = BigEndian.uint32(header, at: 4)
        guard status <= 0xFF else { throw .invalidStatus(status) }
        guard Int(size) <= allocationLength else { throw .payloadTooLarge(size: size, allocationLength: allocationLength) }
        guard size == 0 || status == UInt32(PRHelperWire.statusGood) else { throw .payloadWithStatus(UInt8(status)) }
        self.status = UInt8(status)
        payloadSize = Int(size)
        sense = self.status == 0x02 ? SenseData(decoding: Array(header[8..<Self.headerSize])) : nil
    }

    /// The command's outcome, once the `payloadSize` bytes that follow have been read.
    public func response(payload: [UInt8]) -> SCSIResponse {
        SCSIResponse(status: status, sense: sense, data: payload)
    }
}
