/// The object locks are taken for: a virtual machine, identified by the five
/// parameters libvirt passes to `drvNew` (uuid, name, id, pid, uri).
public struct LockObject: Sendable, Equatable {
    public var uuid: UUIDBytes
    public var name: String
    public var id: UInt32
    public var pid: UInt32
    public var uri: String?

    public init(uuid: UUIDBytes, name: String, id: UInt32 = 0, pid: UInt32, uri: String? = nil) {
        self.uuid = uuid
        self.name = name
        self.id = id
        self.pid = pid
        self.uri = uri
    }
}

/// A 16-byte UUID, parsed from and printed as the canonical 8-4-4-4-12 form.
public struct UUIDBytes: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Accepts the canonical form, with or without dashes, any case.
    public init?(_ text: String) {
        var out: [UInt8] = []
        var high: UInt8? = nil
        for c in text.utf8 {
            if c == UInt8(ascii: "-") { continue }
            guard let nibble = Hex.value(of: c) else { return nil }
            if let h = high {
                out.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        guard high == nil, out.count == 16 else { return nil }
        bytes = out
    }

    /// Made for every keeper path and record on every plugin call: one
    /// buffer, not a string per byte.
    public var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { text.append(UInt8(ascii: "-")) }
            Hex.append(b, to: &text)
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Lower-case hex helpers shared by UUIDs, keys and state strings.
public enum Hex {
    public static func value(of c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    public static func byte(_ b: UInt8) -> String { string(CollectionOfOne(b)) }

    public static func string(_ bytes: some Sequence<UInt8>) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes { append(b, to: &text) }
        return String(decoding: text, as: UTF8.self)
    }

    /// The two lower-case digits of `b`, at the end of `text`.
    @inline(__always) public static func append(_ b: UInt8, to text: inout [UInt8]) {
        text.append(digit(b >> 4))
        text.append(digit(b & 0xF))
    }

    @inline(__always) static func digit(_ n: UInt8) -> UInt8 {
        n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "a") + n - 10
    }

    /// "0x5f": how errors name opcodes and status codes.
    public static func literal(_ b: UInt8) -> String { "0x" + byte(b) }
}
