import LockDriver
import PRProtocol

/// The pr-sessiond socket protocol: the plugin sends one lock operation
/// (acquire, release or inquire of a VM's iSCSI LUNs, with the settings
/// the PR algorithm needs), the service runs the algorithm on the sessions
/// it keeps logged in and answers once, with the outcome and the commands
/// it sent. One round trip per operation: on a loaded host a hop between
/// processes costs more than a PR command on loopback. Frames are a 4-byte
/// magic, a big-endian body length and the body.
///
///     request body: version u8, operation u8 (1 acquire, 2 release, 3 inquire),
///                   origin str16, initiator str16, host part u32,
///                   exclusive type u8, shared type u8, timeout_ms u32,
///                   vm 16 bytes, count u16, count × (name str16, mode u8),
///                   has state u8, [state str32]
///     mode:         0 exclusive, 1 shared, 2 read-only
///     reply body:   outcome u8: 0 done, has state u8, [state str32]
///                               1 failed, error kind u8, message str16
///                   count u16, count × (resource str16, n u16, n × command str16)
public enum SessionWire {
    public static let requestMagic: [UInt8] = Array("LMSQ".utf8)
    public static let replyMagic: [UInt8] = Array("LMSA".utf8)
    public static let version: UInt8 = 2
    public static let headerSize = 8
    /// A 256-LUN state string and 256 resource names fit well below this.
    public static let maxBodySize = 8 << 20

    /// A frame that breaks the protocol: the stream is at an unknown place
    /// and the connection is dropped.
    public struct Violation: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public enum Operation: UInt8, Sendable, CustomStringConvertible {
        case acquire = 1
        case release = 2
        case inquire = 3
        public var description: String {
            switch self {
            case .acquire: return "acquire"
            case .release: return "release"
            case .inquire: return "inquire"
            }
        }
    }

    public struct Request: Sendable, Equatable {
        public var operation: Operation
        /// The settings the algorithm reads; `origin` names the plugin's config in messages.
        public var config: PRConfig
        public var vm: UUIDBytes
        public var resources: [PRResource]
        /// Acquire: the state string libvirt passed (a migration's).
        public var state: String?

        public init(operation: Operation, config: PRConfig, vm: UUIDBytes, resources: [PRResource], state: String? = nil) {
            self.operation = operation
            self.config = config
            self.vm = vm
            self.resources = resources
            self.state = state
        }
    }

    public struct Reply: Sendable, Equatable {
        /// Release and inquire: the state string; acquire: nil.
        public var outcome: Result<String?, LockError>
        /// What the service sent, per resource (for the plugin's command_log).
        public var commandsSent: [String: [String]]

        public init(outcome: Result<String?, LockError>, commandsSent: [String: [String]]) {
            self.outcome = outcome
            self.commandsSent = commandsSent
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

    static func frame(_ magic: [UInt8], _ body: [UInt8]) -> [UInt8] {
        magic + BigEndian.bytes(UInt32(truncatingIfNeeded: body.count)) + body
    }

    static let modes: [AccessMode] = [.exclusive, .shared, .readOnly]

    // MARK: Request

    public static func encode(_ r: Request) -> [UInt8] {
        var w = WireWriter()
        w.u8(version)
        w.u8(r.operation.rawValue)
        w.str16(r.config.origin)
        w.str16(r.config.iscsiInitiator ?? "")
        w.u32(r.config.hostPart ?? 0)
        w.u8(r.config.exclusiveType.rawValue)
        w.u8(r.config.sharedType.rawValue)
        w.u32(r.config.timeoutMilliseconds)
        w.bytes += r.vm.bytes
        w.u16(UInt16(truncatingIfNeeded: r.resources.count))
        for resource in r.resources {
            w.str16(resource.name)
            w.u8(UInt8(modes.firstIndex(of: resource.mode) ?? 0))
        }
        w.optionalStr32(r.state)
        return frame(requestMagic, w.bytes)
    }

    public static func decodeRequest(body: [UInt8]) throws(Violation) -> Request {
        var r = WireReader(body)
        let v = try r.u8()
        guard v == version else { throw Violation("protocol version \(v), this service speaks \(version)") }
        let rawOperation = try r.u8()
        guard let operation = Operation(rawValue: rawOperation) else { throw Violation("unknown operation \(rawOperation)") }
        let origin = try r.str16()
        let initiator = try r.str16()
        guard PRConfig.isValidInitiator(initiator) else { throw Violation("'\(initiator)' is not an iSCSI initiator name") }
        let hostPart = try r.u32()
        guard hostPart != 0 else { throw Violation("host part 0 (no host identity)") }
        var config = PRConfig(iscsiInitiator: initiator, hostPart: hostPart)
        config.origin = origin
        config.exclusiveType = try type(&r, allRegistrants: false)
        config.sharedType = try type(&r, allRegistrants: true)
        config.timeoutMilliseconds = try r.u32()
        guard (100...600_000).contains(config.timeoutMilliseconds) else {
            throw Violation("timeout_ms \(config.timeoutMilliseconds) is outside 100...600000")
        }
        guard let vm = UUIDBytes(bytes: try r.take(16)) else { throw Violation("no VM uuid") }
        let count = Int(try r.u16())
        var resources: [PRResource] = []
        for i in 0..<count {
            let name = try r.str16()
            let rawMode = Int(try r.u8())
            guard rawMode < modes.count else { throw Violation("resource \(i): unknown mode \(rawMode)") }
            let resource: PRResource
            do { resource = try PRResource(name, mode: modes[rawMode]) } catch { throw Violation("resource \(i): \(error.message)") }
            guard case .iscsi = resource.address else { throw Violation("resource \(i): '\(name)' is not an iscsi:// LUN") }
            resources.append(resource)
        }
        let state = try r.optionalStr32()
        guard r.atEnd else { throw Violation("\(r.remaining) bytes after the request") }
        return Request(operation: operation, config: config, vm: vm, resources: resources, state: state)
    }

    private static func type(_ r: inout WireReader, allRegistrants: Bool) throws(Violation) -> ReservationType {
        let raw = try r.u8()
        guard let t = ReservationType(rawValue: raw), t.isAllRegistrants == allRegistrants else {
            throw Violation("reservation type \(raw) cannot be the \(allRegistrants ? "shared" : "exclusive") type")
        }
        return t
    }

    // MARK: Reply

    public static func encode(_ reply: Reply) -> [UInt8] {
        var w = WireWriter()
        switch reply.outcome {
        case .success(let state):
            w.u8(0)
            w.optionalStr32(state)
        case .failure(let error):
            w.u8(1)
            w.u8(UInt8(truncatingIfNeeded: error.kind.rawValue))
            w.str16(error.message)
        }
        let sent = reply.commandsSent.sorted { $0.key < $1.key }
        w.u16(UInt16(truncatingIfNeeded: sent.count))
        for (resource, commands) in sent {
            w.str16(resource)
            w.u16(UInt16(truncatingIfNeeded: commands.count))
            for c in commands { w.str16(c) }
        }
        return frame(replyMagic, w.bytes)
    }

    /// `keepingCommands` false: the commands sent are checked for framing
    /// and left out (a plugin without command_log has no use for them; at
    /// 256 LUs they are some 1800 strings).
    public static func decodeReply(body: [UInt8], keepingCommands: Bool = true) throws(Violation) -> Reply {
        var r = WireReader(body)
        let outcome: Result<String?, LockError>
        switch try r.u8() {
        case 0:
            outcome = .success(try r.optionalStr32())
        case 1:
            let kind = LockErrorKind(rawValue: Int32(try r.u8())) ?? .backend
            outcome = .failure(LockError(kind, try r.str16()))
        case let other:
            throw Violation("outcome \(other) is neither done (0) nor failed (1)")
        }
        var sent: [String: [String]] = [:]
        for _ in 0..<Int(try r.u16()) {
            guard keepingCommands else {
                try r.skipStr16()
                for _ in 0..<Int(try r.u16()) { try r.skipStr16() }
                continue
            }
            let resource = try r.str16()
            var commands: [String] = []
            for _ in 0..<Int(try r.u16()) { commands.append(try r.str16()) }
            sent[resource] = commands
        }
        guard r.atEnd else { throw Violation("\(r.remaining) bytes after the reply") }
        return Reply(outcome: outcome, commandsSent: sent)
    }
}

struct WireWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += BigEndian.bytes(v) }
    mutating func u32(_ v: UInt32) { bytes += BigEndian.bytes(v) }
    /// Strings longer than 65535 bytes are cut: no name or message we send is.
    mutating func str16(_ s: String) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        u16(UInt16(utf8.count))
        bytes += utf8
    }
    mutating func optionalStr32(_ s: String?) {
        guard let s else { return u8(0) }
        u8(1)
        let utf8 = Array(s.utf8)
        u32(UInt32(truncatingIfNeeded: utf8.count))
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

    /// The next `n` bytes' indices, passed over. Fields are read in place:
    /// a copy per field cost an allocation for every byte and number.
    private mutating func advance(_ n: Int) throws(SessionWire.Violation) -> Range<Int> {
        guard n >= 0, n <= remaining else {
            throw SessionWire.Violation("truncated: \(n) bytes wanted at offset \(offset), \(remaining) left")
        }
        defer { offset += n }
        return offset..<offset + n
    }
    mutating func take(_ n: Int) throws(SessionWire.Violation) -> [UInt8] { Array(bytes[try advance(n)]) }
    mutating func u8() throws(SessionWire.Violation) -> UInt8 { bytes[try advance(1).lowerBound] }
    mutating func u16() throws(SessionWire.Violation) -> UInt16 { BigEndian.uint16(bytes, at: try advance(2).lowerBound) }
    mutating func u32() throws(SessionWire.Violation) -> UInt32 { BigEndian.uint32(bytes, at: try advance(4).lowerBound) }
    mutating func str16() throws(SessionWire.Violation) -> String {
        String(decoding: bytes[try advance(Int(try u16()))], as: UTF8.self)
    }
    /// Passes over a str16 field without making a String of it.
    mutating func skipStr16() throws(SessionWire.Violation) { _ = try advance(Int(try u16())) }
    mutating func optionalStr32() throws(SessionWire.Violation) -> String? {
        switch try u8() {
        case 0: return nil
        case 1: return String(decoding: bytes[try advance(Int(try u32()))], as: UTF8.self)
        case let other: throw SessionWire.Violation("optional field marker \(other) is neither 0 nor 1")
        }
    }
}
