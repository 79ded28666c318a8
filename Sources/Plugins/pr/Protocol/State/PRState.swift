import LockDriver

/// The opaque state string of the pr plugin: for one VM, per resource, the
/// reservation key that held it and the reservation type.
///
///     lockmgr-pr-v1;vm=<uuid, 32 hex>;r=<key, 16 hex>,<type 1..8>,<name>;...;sum=<8 hex>
///
/// - Names are percent-encoded outside `A-Z a-z 0-9 - . _ ~ / : @ +`, so the
///   string never contains `<>&'"`, spaces, `;`, `,` or `=` unescaped: it
///   can go unescaped into libvirt's XML and migration cookie.
/// - `sum` is FNV-1a-32 over everything before `;sum=`. It catches
///   truncation, corruption and hand edits; it is no defence against a
///   deliberate forger (there is no shared secret). That is acceptable
///   because the state is never trusted alone: the device is re-read and a
///   takeover only happens when the device shows the same VM holding.
/// - Decoding is strict and canonical: one state has exactly one string
///   (lower-case hex for `vm`, keys and `sum`, upper-case in %-escapes).
///   Unknown version or field, bad hex, a key whose VM
///   part does not match `vm`, a type that contradicts the key, duplicate
///   resources, or more than `maxLength` bytes are all rejected before any
///   SCSI command is sent.
public struct PRState: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var resource: String
        public var key: PRKey
        public var type: ReservationType

        public init(resource: String, key: PRKey, type: ReservationType) {
            self.resource = resource
            self.key = key
            self.type = type
        }
    }

    public let vm: UUIDBytes
    public let entries: [Entry]
    /// Where each resource's (first) entry is: an acquire looks up every
    /// resource, and a scan per lookup cost 32k name compares at 256 LUNs.
    private let positions: [String: Int]

    public init(vm: UUIDBytes, entries: [Entry]) {
        self.vm = vm
        self.entries = entries
        var positions: [String: Int] = [:]
        positions.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() where positions[e.resource] == nil { positions[e.resource] = i }
        self.positions = positions
    }

    public static let magic = "lockmgr-pr-v1"
    /// Room for `maxEntries` entries of about 230-byte resource names
    /// (a typical iscsi:// name takes 60-80 bytes per entry): 16 KiB held
    /// only about 200 of them.
    public static let maxLength = 65536
    public static let maxEntries = 256

    public func entry(for resource: String) -> Entry? { positions[resource].map { entries[$0] } }

    // MARK: encoding

    public var encoded: String {
        var body = "\(Self.magic);vm=\(Hex.string(vm.bytes))"
        for e in entries {
            body += ";r=\(e.key),\(e.type.rawValue),\(Self.escape(e.resource))"
        }
        return body + ";sum=" + Self.checksum(body)
    }

    /// FNV-1a-32 of the body, 8 lower-case hex digits: the `sum` field.
    public static func checksum(_ body: String) -> String {
        let h = FNV.hash32(body.utf8)
        return Hex.string([UInt8(h >> 24), UInt8((h >> 16) & 0xFF), UInt8((h >> 8) & 0xFF), UInt8(h & 0xFF)])
    }

    static func isPlain(_ c: UInt8) -> Bool {
        // A switch, not a lookup in an array of the punctuation: this runs
        // for every byte of every state string, inside a migration's pause.
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "+"):
            return true
        default:
            return false
        }
    }

    public static func escape(_ s: String) -> String {
        // Names are nearly always plain (iscsi:// URLs, /dev paths): then
        // the string is its own escape, with no byte-by-byte rebuild.
        if s.utf8.allSatisfy(isPlain) { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count * 3)
        for c in s.utf8 {
            if isPlain(c) {
                out.append(c)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(contentsOf: Hex.byte(c).uppercased().utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: decoding

    /// Parses and validates `text`; every error names what is wrong.
    public init(decoding text: String) throws(LockError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw Self.bad("it is empty") }
        guard bytes.count <= Self.maxLength else {
            throw Self.bad("it is \(bytes.count) bytes long, more than the limit of \(Self.maxLength)")
        }
        for (i, c) in bytes.enumerated()
        where
            !(Self.isPlain(c) || c == UInt8(ascii: "%") || c == UInt8(ascii: ";")
            || c == UInt8(ascii: ",") || c == UInt8(ascii: "="))
        {
            throw Self.bad("byte \(i) (0x\(Hex.byte(c))) is not allowed in a state string")
        }
        let fields = text.splitBytes(at: ";", omittingEmpty: false)
        guard let first = fields.first, first.hasPrefix("lockmgr-pr-") else {
            throw Self.bad("it does not start with '\(Self.magic)' (not a pr plugin state)")
        }
        guard first == Self.magic else { throw Self.bad("version '\(first)' is not supported (expected '\(Self.magic)')") }
        guard fields.count >= 3, let last = fields.last, last.hasPrefix("sum=") else {
            throw Self.bad("it is truncated (no checksum field at the end)")
        }
        let body = fields.dropLast().joined(separator: ";")
        guard String(last.dropFirst(4)) == Self.checksum(body) else {
            throw Self.bad("the checksum does not match its contents (corrupted, truncated or edited)")
        }
        guard fields[1].hasPrefix("vm="), let vm = UUIDBytes.fromHex32(String(fields[1].dropFirst(3))) else {
            throw Self.bad("field 2 must be vm=<32 lower-case hex digits>")
        }
        var entries: [Entry] = []
        var names: Set<String> = []
        for (i, field) in fields.dropFirst(2).dropLast().enumerated() {
            guard field.hasPrefix("r=") else { throw Self.bad("field \(i + 3) '\(field.prefix(20))' is unknown") }
            let parts = field.dropFirst(2).splitBytes(at: ",", omittingEmpty: false)
            guard parts.count == 3 else { throw Self.bad("resource field \(i + 1) must be key,type,name") }
            guard parts[0].utf8.count == 16, parts[0].utf8.allSatisfy(Self.isLowerHex),
                let raw = UInt64(parts[0], radix: 16), raw != 0
            else {
                throw Self.bad("resource field \(i + 1): key '\(parts[0])' is not 16 lower-case hex digits, non-zero")
            }
            guard let t = UInt8(parts[1]), let type = ReservationType(rawValue: t), parts[1].utf8.count == 1 else {
                throw Self.bad("resource field \(i + 1): '\(parts[1])' is not a reservation type")
            }
            let name = try Self.unescape(parts[2], field: i + 1)
            let key = PRKey(rawValue: raw)
            guard key.isShared == type.isAllRegistrants else {
                throw Self.bad("resource field \(i + 1): key \(key) and type \(type) disagree about sharing")
            }
            guard key.isShared || key.vmPart == PRKey.vmPart(of: vm) else {
                throw Self.bad("resource field \(i + 1): key \(key) does not belong to VM \(vm)")
            }
            guard names.insert(name).inserted else { throw Self.bad("resource '\(name)' appears twice") }
            entries.append(Entry(resource: name, key: key, type: type))
            guard entries.count <= Self.maxEntries else { throw Self.bad("more than \(Self.maxEntries) resources") }
        }
        self.init(vm: vm, entries: entries)
    }

    public static func unescape(_ s: String, field: Int) throws(LockError) -> String {
        // Plain (no %-escape, nothing to refuse): the name as it is.
        if !s.utf8.isEmpty, s.utf8.allSatisfy(isPlain) { return s }
        var out: [UInt8] = []
        var it = Array(s.utf8).makeIterator()
        while let c = it.next() {
            if c == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), isUpperHex(h), isUpperHex(l),
                    let hv = Hex.value(of: h), let lv = Hex.value(of: l)
                else {
                    throw bad("resource field \(field): broken %-escape in the name (two upper-case hex digits after %)")
                }
                let v = hv << 4 | lv
                guard !isPlain(v), v != 0 else { throw bad("resource field \(field): needless or NUL %-escape in the name") }
                out.append(v)
            } else if isPlain(c) {
                out.append(c)
            } else {
                throw bad("resource field \(field): character 0x\(Hex.byte(c)) must be %-escaped in the name")
            }
        }
        guard !out.isEmpty else { throw bad("resource field \(field): empty resource name") }
        guard let name = String(validating: out, as: UTF8.self) else {
            throw bad("resource field \(field): the name is not valid UTF-8")
        }
        return name
    }

    static func isLowerHex(_ c: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(c)
    }

    static func isUpperHex(_ c: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(c)
    }

    static func bad(_ why: String) -> LockError { .invalid("invalid pr state string: \(why)") }
}

extension UUIDBytes {
    /// Exactly 32 lower-case hex digits, nothing else (the state's strict form).
    static func fromHex32(_ s: String) -> UUIDBytes? {
        guard s.utf8.count == 32, s.utf8.allSatisfy(PRState.isLowerHex) else { return nil }
        return UUIDBytes(s)
    }
}
