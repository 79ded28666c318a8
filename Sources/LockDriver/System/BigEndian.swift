/// Big-endian fields, as SCSI and the qemu-pr-helper protocol lay them out.
/// Reads never trap: bytes beyond the end read as 0, so callers check
/// lengths first when a short buffer is an error.
public enum BigEndian {
    public static func uint16(_ bytes: [UInt8], at offset: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: read(bytes, at: offset, count: 2))
    }

    public static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: read(bytes, at: offset, count: 4))
    }

    public static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        read(bytes, at: offset, count: 8)
    }

    public static func bytes(_ value: UInt16) -> [UInt8] { write(UInt64(value), count: 2) }
    public static func bytes(_ value: UInt32) -> [UInt8] { write(UInt64(value), count: 4) }
    public static func bytes(_ value: UInt64) -> [UInt8] { write(value, count: 8) }

    private static func read(_ bytes: [UInt8], at offset: Int, count: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<count {
            let index = offset &+ i
            value = value << 8 | UInt64(index >= 0 && index < bytes.count ? bytes[index] : 0)
        }
        return value
    }

    private static func write(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(count - 1 - $0))) }
    }
}
