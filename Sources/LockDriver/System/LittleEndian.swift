/// Little-endian fields, as NVMe lays them out: BigEndian's reads and
/// writes on the bytes in the other order. Reads never trap either: bytes
/// beyond the end read as 0.
public enum LittleEndian {
    public static func uint16(_ bytes: [UInt8], at offset: Int) -> UInt16 { BigEndian.uint16(field(bytes, offset, 2), at: 0) }
    public static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 { BigEndian.uint32(field(bytes, offset, 4), at: 0) }
    public static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 { BigEndian.uint64(field(bytes, offset, 8), at: 0) }

    public static func bytes(_ value: UInt16) -> [UInt8] { BigEndian.bytes(value).reversed() }
    public static func bytes(_ value: UInt32) -> [UInt8] { BigEndian.bytes(value).reversed() }
    public static func bytes(_ value: UInt64) -> [UInt8] { BigEndian.bytes(value).reversed() }

    /// The field's bytes, most significant first; missing ones are 0.
    private static func field(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> [UInt8] {
        (0..<count).reversed().map { i in
            let index = offset &+ i
            return index >= 0 && index < bytes.count ? bytes[index] : 0
        }
    }
}
