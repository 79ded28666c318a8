import LockDriver
import PRProtocol

/// The pr-sessiond socket protocol: the plugin sends a batch of PR commands
/// for iSCSI LUNs, the service sends them on the sessions it keeps logged
/// in and answers each. Frames are a 4-byte magic, a big-endian body
/// length and the body. Only PERSISTENT RESERVE IN and OUT travel: the
/// service cannot be asked to write a disk's data.
///
///     request body: version u8, initiator str16, timeout_ms u32, count u16,
///                   count × (url str16, command)
///     command:      1 (PR IN): action u8, allocation length u16
///                   2 (PR OUT): action u8, type u8 (0xFF: none), key u64, service action key u64
///     reply body:   count u16, count × outcome
///     outcome:      0: status u8, has sense u8, key u8, asc u8, ascq u8, data str32
///                   1: error kind u8, message str16
public enum SessionWire {
    public static let requestMagic: [UInt8] = Array("LMSQ".utf8)
    public static let replyMagic: [UInt8] = Array("LMSA".utf8)
    public static let version: UInt8 = 1
    public static let headerSize = 8
    /// 65535 items of a few dozen bytes each fit well below this.
    public static let maxBodySize = 8 << 20
    public static let maxItems = Int(UInt16.max)

    /// A frame that breaks the protocol: the stream is at an unknown place
    /// and the connection is dropped.
    public struct Violation: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Request: Sendable, Equatable {
        public var initiator: String
        public var timeoutMilliseconds: UInt32
        public var items: [(url: ISCSIURL, command: SCSICommand)]

        public init(initiator: String, timeoutMilliseconds: UInt32, items: [(url: ISCSIURL, command: SCSICommand)]) {
            self.initiator = initiator
            self.timeoutMilliseconds = timeoutMilliseconds
            self.items = items
        }

        public static func == (a: Request, b: Request) -> Bool {
            a.initiator == b.initiator && a.timeoutMilliseconds == b.timeoutMilliseconds
                && a.items.map(\.url) == b.items.map(\.url) && a.items.map(\.command) == b.items.map(\.command)
        }
    }

    /// The body length a frame header announces, checked against the magic and the limit.
    public static func bodyLength(header: [UInt8], magic: [UInt8]) throws(Violation) -> Int {
        guard header.count == headerSize, Array(header.prefix(4)) == magic else {
            throw Violation("not a pr-sessiond frame (bad magic)")
        }
        let length = Int(BigEndian.uint32(header, at: 4))
        guard length <= maxBodySize else { throw Violation("frame of \(length) bytes exceeds the \(maxBodySize)-byte limit") }
        return length
    }

    public static func frame(_ magic: [UInt8], _ body: [UInt8]) -> [UInt8] {
        magic + BigEndian.bytes(UInt32(truncatingIfNeeded: body.count)) + body
    }

    // MARK: Request

    public static func encode(_ request: Request) -> [UInt8] {
        var w = WireWriter()
        w.u8(version)
        w.str16(request.initiator)
        w.u32(request.timeoutMilliseconds)
        w.u16(UInt16(truncatingIfNeeded: request.items.count))
        for item in request.items {
            w.str16(item.url.description)
            encode(item.command, into: &w)
        }
        return frame(requestMagic, w.bytes)
    }

    private static func encode(_ command: SCSICommand, into w: inout WireWriter) {
        switch command {
        case .prIn(let action, let length):
            w.u8(1)
            w.u8(action.rawValue)
            w.u16(length)
        case .prOut(let action, let type, let key, let serviceActionKey):
            w.u8(2)
            w.u8(action.rawValue)
            w.u8(type?.rawValue ?? 0xFF)
            w.u64(key)
            w.u64(serviceActionKey)
        case .write10:
            // Never sent: the client refuses it before encoding (see SessionServiceClient).
            w.u8(0)
        }
    }

    public static func decodeRequest(body: [UInt8]) throws(Violation) -> Request {
        var r = WireReader(body)
        let v = try r.u8()
        guard v == version else { throw Violation("protocol version \(v), this service speaks \(version)") }
        let initiator = try r.str16()
        let timeout = try r.u32()
        let count = Int(try r.u16())
        var items: [(url: ISCSIURL, command: SCSICommand)] = []
        items.reserveCapacity(count)
        for i in 0..<count {
            let text = try r.str16()
            let url: ISCSIURL
            do { url = try ISCSIURL(parsing: text) } catch { throw Violation("item \(i): \(error.message)") }
            items.append((url, try decodeCommand(&r, item: i)))
        }
        guard r.atEnd else { throw Violation("\(r.remaining) bytes after the last item") }
        return Request(initiator: initiator, timeoutMilliseconds: timeout, items: items)
    }

    private static func decodeCommand(_ r: inout WireReader, item i: Int) throws(Violation) -> SCSICommand {
        switch try r.u8() {
        case 1:
            let raw = try r.u8()
            guard let action = PRInAction(rawValue: raw) else { throw Violation("item \(i): unknown PR IN action \(raw)") }
            return .prIn(action, allocationLength: try r.u16())
        case 2:
            let raw = try r.u8()
            guard let action = PROutAction(rawValue: raw) else { throw Violation("item \(i): unknown PR OUT action \(raw)") }
            let rawType = try r.u8()
            var type: ReservationType?
            if rawType != 0xFF {
                guard let t = ReservationType(rawValue: rawType) else {
                    throw Violation("item \(i): unknown reservation type \(rawType)")
                }
                type = t
            }
            let key = try r.u64()
            return .prOut(action, type: type, key: key, serviceActionKey: try r.u64())
        case let other:
            throw Violation("item \(i): command kind \(other) is not PR IN (1) or PR OUT (2)")
        }
    }

    // MARK: Reply

    public static func encodeReply(_ results: [Result<SCSIResponse, LockError>]) -> [UInt8] {
        var w = WireWriter()
        w.u16(UInt16(truncatingIfNeeded: results.count))
        for result in results {
            switch result {
            case .success(let response):
                w.u8(0)
                w.u8(response.status)
                w.u8(response.sense == nil ? 0 : 1)
                w.u8(response.sense?.key ?? 0)
                w.u8(response.sense?.asc ?? 0)
                w.u8(response.sense?.ascq ?? 0)
                w.u32(UInt32(truncatingIfNeeded: response.data.count))
                w.bytes += response.data
            case .failure(let error):
                w.u8(1)
                w.u8(UInt8(truncatingIfNeeded: error.kind.rawValue))
                w.str16(error.message)
            }
        }
        return frame(replyMagic, w.bytes)
    }

    /// The answers to a request of `expected` items; a data-in longer than
    /// its command's allocation length is a violation.
    public static func decodeReply(body: [UInt8], allocationLengths: [Int]) throws(Violation) -> [Result<SCSIResponse, LockError>] {
        var r = WireReader(body)
        let count = Int(try r.u16())
        guard count == allocationLengths.count else {
            throw Violation("\(count) answers to \(allocationLengths.count) commands")
        }
        var results: [Result<SCSIResponse, LockError>] = []
        for i in 0..<count {
            switch try r.u8() {
            case 0:
                let status = try r.u8()
                let hasSense = try r.u8()
                let sense = SenseData(key: try r.u8(), asc: try r.u8(), ascq: try r.u8())
                let length = Int(try r.u32())
                guard length <= allocationLengths[i] else {
                    throw Violation("answer \(i): \(length) bytes of data for an allocation length of \(allocationLengths[i])")
                }
                let data = try r.take(length)
                results.append(.success(SCSIResponse(status: status, sense: hasSense != 0 ? sense : nil, data: data)))
            case 1:
                let raw = try r.u8()
                let kind = LockErrorKind(rawValue: Int32(raw)) ?? .backend
                results.append(.failure(LockError(kind, try r.str16())))
            case let other:
                throw Violation("answer \(i): outcome \(other) is neither answered (0) nor failed (1)")
            }
        }
        guard r.atEnd else { throw Violation("\(r.remaining) bytes after the last answer") }
        return results
    }
}

struct WireWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += BigEndian.bytes(v) }
    mutating func u32(_ v: UInt32) { bytes += BigEndian.bytes(v) }
    mutating func u64(_ v: UInt64) { bytes += BigEndian.bytes(v) }
    /// Strings longer than 65535 bytes are cut: no name or message we send is.
    mutating func str16(_ s: String) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        u16(UInt16(utf8.count))
        bytes += utf8
    }
}

/// Reads fields in order; running past the end is a violation, never a trap.
struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }
    var atEnd: Bool { offset == bytes.count }

    mutating func take(_ n: Int) throws(SessionWire.Violation) -> [UInt8] {
        guard n >= 0, n <= remaining else {
            throw SessionWire.Violation("truncated: \(n) bytes wanted at offset \(offset), \(remaining) left")
        }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }
    mutating func u8() throws(SessionWire.Violation) -> UInt8 { try take(1)[0] }
    mutating func u16() throws(SessionWire.Violation) -> UInt16 { BigEndian.uint16(try take(2), at: 0) }
    mutating func u32() throws(SessionWire.Violation) -> UInt32 { BigEndian.uint32(try take(4), at: 0) }
    mutating func u64() throws(SessionWire.Violation) -> UInt64 { BigEndian.uint64(try take(8), at: 0) }
    mutating func str16() throws(SessionWire.Violation) -> String {
        String(decoding: try take(Int(try u16())), as: UTF8.self)
    }
}
