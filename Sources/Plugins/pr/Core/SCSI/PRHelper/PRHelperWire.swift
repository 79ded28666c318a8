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

    static let persistentReserveIn: UInt8 = 0x5E
    static let persistentReserveOut: UInt8 = 0x5F
    static let statusGood: UInt32 = 0x00

    /// No feature is defined yet: we ask for none.
    static let requestedFeatures: [UInt8] = [0, 0, 0, 0]

    /// PR IN allocation length, CDB bytes 7-8.
    static func allocationLength(ofPRIn cdb: [UInt8]) -> Int {
        Int(cdb[7]) << 8 | Int(cdb[8])
    }

    /// PR OUT parameter list length, CDB bytes 5-8.
    static func parameterListLength(ofPROut cdb: [UInt8]) -> Int {
        Int(cdb[5]) << 24 | Int(cdb[6]) << 16 | Int(cdb[7]) << 8 | Int(cdb[8])
    }

    static func paddedCDB(_ cdb: [UInt8]) -> [UInt8] {
        cdb + [UInt8](repeating: 0, count: max(0, cdbSize - cdb.count))
    }

    struct ReplyHeader: Equatable {
        var status: UInt32
        var payloadSize: UInt32
        var sense: [UInt8]

        init(_ bytes: [UInt8]) {
            status = PRHelperWire.bigEndian32(bytes, at: 0)
            payloadSize = PRHelperWire.bigEndian32(bytes, at: 4)
            sense = bytes.count > 8 ? Array(bytes[8..<min(bytes.count, PRHelperWire.replyHeaderSize)]) : []
        }
    }

    static func bigEndian32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        guard offset >= 0, offset + 4 <= bytes.count else { return 0 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}
