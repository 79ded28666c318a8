import LockDriver
import PRProtocol
import PRTransport
import Testing

/// pr-sessiond's wire: what is encoded decodes to the same, and every
/// malformed frame is refused with a reason, never a trap.
@Suite struct SessionWireTests {
    let url = try! ISCSIURL(parsing: "iscsi://127.0.0.1:3260/iqn.2026-01.test:t/3")

    func body(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(SessionWire.headerSize)) }

    @Test func aRequestRoundTrips() throws {
        let request = SessionWire.Request(
            initiator: "iqn.2026-01.test:host", timeoutMilliseconds: 5000,
            items: [
                (url, .prIn(.readKeys, allocationLength: 8192)),
                (url, .prOut(.preempt, type: .writeExclusiveRegistrantsOnly, key: 0x1122_3344_5566_7788, serviceActionKey: 42)),
                (url, .prOut(.registerAndIgnore, key: 0, serviceActionKey: 7)),
            ])
        let frame = SessionWire.encode(request)
        #expect(try SessionWire.bodyLength(header: Array(frame.prefix(8)), magic: SessionWire.requestMagic) == frame.count - 8)
        #expect(try SessionWire.decodeRequest(body: body(frame)) == request)
    }

    @Test func aReplyRoundTripsAnswersAndFailures() throws {
        let results: [Result<SCSIResponse, LockError>] = [
            .success(SCSIResponse(status: 0, data: [0, 0, 0, 1, 0, 0, 0, 0])),
            .success(SCSIResponse(status: 2, sense: SenseData(key: 6, asc: 0x29, ascq: 0))),
            .failure(.backend("iscsi://x: login failed")),
        ]
        let frame = SessionWire.encodeReply(results)
        let decoded = try SessionWire.decodeReply(body: body(frame), allocationLengths: [8192, 8192, 0])
        #expect(decoded.count == 3)
        #expect(try decoded[0].get() == SCSIResponse(status: 0, data: [0, 0, 0, 1, 0, 0, 0, 0]))
        #expect(try decoded[1].get().sense == SenseData(key: 6, asc: 0x29, ascq: 0))
        #expect(throws: LockError.backend("iscsi://x: login failed")) { try decoded[2].get() }
    }

    @Test func malformedFramesAreRefusedWithTheReason() throws {
        let good = body(SessionWire.encode(.init(initiator: "iqn.x", timeoutMilliseconds: 1, items: [(url, .prIn(.readKeys))])))
        // Every truncation of a good request is refused.
        for n in 0..<good.count {
            #expect(throws: SessionWire.Violation.self) { try SessionWire.decodeRequest(body: Array(good.prefix(n))) }
        }
        #expect(throws: SessionWire.Violation.self) { try SessionWire.decodeRequest(body: good + [0]) }
        var otherVersion = good
        otherVersion[0] = 9
        #expect(throws: SessionWire.Violation("protocol version 9, this service speaks 1")) {
            try SessionWire.decodeRequest(body: otherVersion)
        }
        // A WRITE (or anything but PR IN / PR OUT) is not carried.
        var write = good
        let kind = good.count - 4  // kind, action, allocation length (2)
        write[kind] = 3
        #expect(throws: SessionWire.Violation("item 0: command kind 3 is not PR IN (1) or PR OUT (2)")) {
            try SessionWire.decodeRequest(body: write)
        }
        #expect(throws: SessionWire.Violation.self) {
            try SessionWire.bodyLength(header: Array("LMSQ".utf8) + [0xFF, 0xFF, 0xFF, 0xFF], magic: SessionWire.requestMagic)
        }
        #expect(throws: SessionWire.Violation("not a pr-sessiond frame (bad magic)")) {
            try SessionWire.bodyLength(header: Array("LMSA".utf8) + [0, 0, 0, 0], magic: SessionWire.requestMagic)
        }
        // More data than the command asked for.
        let long = body(SessionWire.encodeReply([.success(SCSIResponse(status: 0, data: [1, 2, 3]))]))
        #expect(throws: SessionWire.Violation("answer 0: 3 bytes of data for an allocation length of 2")) {
            try SessionWire.decodeReply(body: long, allocationLengths: [2])
        }
        #expect(throws: SessionWire.Violation("1 answers to 2 commands")) {
            try SessionWire.decodeReply(body: long, allocationLengths: [8, 8])
        }
    }
}
