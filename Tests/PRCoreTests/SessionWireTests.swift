import LockDriver
import PRProtocol
import PRTransport
import Testing

/// pr-sessiond's wire: what is encoded decodes to the same, and every
/// malformed frame is refused with a reason, never a trap.
@Suite struct SessionWireTests {
    let vm = UUIDBytes("5a1e0c4e-1111-4a4a-8b8b-000000000001")!

    func body(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(SessionWire.headerSize)) }

    func request(_ state: String? = nil) throws -> SessionWire.Request {
        var config = PRConfig(iscsiInitiator: "iqn.2026-01.test:host", hostPart: 0x1234)
        config.origin = "/etc/libvirt/qemu-lockmgr-pr.conf"
        config.exclusiveType = .exclusiveAccessRegistrantsOnly
        config.timeoutMilliseconds = 3000
        return SessionWire.Request(
            operation: .acquire, config: config, vm: vm,
            resources: [
                try PRResource("iscsi://127.0.0.1:3260/iqn.2026-01.test:t/1"),
                try PRResource("iscsi://127.0.0.1:3260/iqn.2026-01.test:t/2", mode: .shared),
                try PRResource("iscsi://127.0.0.1:3260/iqn.2026-01.test:t/3", mode: .readOnly),
            ], state: state)
    }

    @Test func aRequestRoundTrips() throws {
        for state in [nil, "pr:1:..."] {
            let r = try request(state)
            let frame = SessionWire.encode(r)
            #expect(try SessionWire.bodyLength(header: Array(frame.prefix(8)), magic: SessionWire.requestMagic) == frame.count - 8)
            #expect(try SessionWire.decodeRequest(body: body(frame)) == r)
        }
    }

    @Test func aReplyRoundTripsDoneAndFailed() throws {
        let sent = ["iscsi://127.0.0.1:3260/iqn.2026-01.test:t/1": ["PR IN READ KEYS", "PR OUT RESERVE"]]
        for outcome: Result<String?, LockError> in [.success(nil), .success("pr:1:state"), .failure(.conflict("held by key 0x1"))] {
            let reply = SessionWire.Reply(outcome: outcome, commandsSent: sent)
            #expect(try SessionWire.decodeReply(body: body(SessionWire.encode(reply))) == reply)
        }
    }

    /// A plugin without command_log reads the outcome and passes over the
    /// commands sent; a reply cut inside them is still refused.
    @Test func aReplyReadWithoutItsCommandsKeepsTheOutcomeAndItsFraming() throws {
        let sent = ["iscsi://127.0.0.1:3260/iqn.2026-01.test:t/1": ["PR IN READ RESERVATION", "PR OUT PREEMPT"]]
        let reply = SessionWire.Reply(outcome: .success("pr:1:state"), commandsSent: sent)
        let encoded = body(SessionWire.encode(reply))
        let read = try SessionWire.decodeReply(body: encoded, keepingCommands: false)
        #expect(read == SessionWire.Reply(outcome: .success("pr:1:state"), commandsSent: [:]))
        #expect(throws: SessionWire.Violation.self) {
            try SessionWire.decodeReply(body: Array(encoded.dropLast(3)), keepingCommands: false)
        }
        #expect(throws: SessionWire.Violation.self) {
            try SessionWire.decodeReply(body: encoded + [0], keepingCommands: false)
        }
    }

    @Test func malformedFramesAreRefusedWithTheReason() throws {
        let good = body(SessionWire.encode(try request("pr:1:state")))
        // Every truncation of a good request is refused.
        for n in 0..<good.count {
            #expect(throws: SessionWire.Violation.self) { try SessionWire.decodeRequest(body: Array(good.prefix(n))) }
        }
        #expect(throws: SessionWire.Violation.self) { try SessionWire.decodeRequest(body: good + [0]) }
        var otherVersion = good
        otherVersion[0] = 9
        #expect(throws: SessionWire.Violation("protocol version 9, this service speaks 2")) {
            try SessionWire.decodeRequest(body: otherVersion)
        }
        var badOperation = good
        badOperation[1] = 7
        #expect(throws: SessionWire.Violation("unknown operation 7")) { try SessionWire.decodeRequest(body: badOperation) }
        // A path disk is not the service's: it only keeps iSCSI sessions.
        var pathRequest = try request()
        pathRequest.resources = [try PRResource("/dev/sdb")]
        #expect(throws: SessionWire.Violation("resource 0: '/dev/sdb' is not an iscsi:// LUN")) {
            try SessionWire.decodeRequest(body: body(SessionWire.encode(pathRequest)))
        }
        // An all-registrants type as the exclusive one would not fence anyone.
        var shared = try request()
        shared.config.exclusiveType = .writeExclusiveAllRegistrants
        #expect(throws: SessionWire.Violation.self) { try SessionWire.decodeRequest(body: body(SessionWire.encode(shared))) }
        #expect(throws: SessionWire.Violation.self) {
            try SessionWire.bodyLength(header: Array("LMSQ".utf8) + [0xFF, 0xFF, 0xFF, 0xFF], magic: SessionWire.requestMagic)
        }
        #expect(throws: SessionWire.Violation("not a pr-sessiond frame (bad magic)")) {
            try SessionWire.bodyLength(header: Array("LMSA".utf8) + [0, 0, 0, 0], magic: SessionWire.requestMagic)
        }
        #expect(throws: SessionWire.Violation("outcome 5 is neither done (0) nor failed (1)")) {
            try SessionWire.decodeReply(body: [5])
        }
    }
}
