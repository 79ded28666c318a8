import LockDriver
import PRProtocol
import PRTransport
import Testing

/// A scripted transport (a named test fake): answers from a list.
final class ScriptedTransport: SCSITransport {
    var answers: [SCSIResponse]
    var sent: [[UInt8]] = []
    init(_ answers: [SCSIResponse]) { self.answers = answers }
    var deviceDescription: String { "scripted" }
    /// Its own family: whether it answers READ FULL STATUS is remembered
    /// per family for the process, and each script decides that anew.
    let family = "scripted \(UInt64.random(in: 0...UInt64.max))"
    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        sent.append(command.cdb)
        guard !answers.isEmpty else { throw .backend("scripted: no more answers") }
        return answers.removeFirst()
    }
}

func ua(_ asc: UInt8, _ ascq: UInt8) -> SCSIResponse {
    SCSIResponse(status: 2, sense: SenseData(decoding: [0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0]))
}

@Suite struct DeviceTests {
    @Test func unitAttentionIsRetriedAndRemembered() throws {
        let t = ScriptedTransport([ua(0x29, 0), SCSIResponse(status: 0)])
        let d = PRDevice(transport: t, timeoutMilliseconds: 100)
        #expect(try d.prOut(.registerAndIgnore, key: 0, serviceActionKey: 1))
        #expect(t.sent.count == 2 && t.sent[0] == t.sent[1])
        #expect(d.sawReservationChange)
        #expect(d.prOutCount == 2)
    }

    @Test func endlessUnitAttentionsAreAnErrorNotSuccess() {
        let t = ScriptedTransport(Array(repeating: ua(0x2A, 0x03), count: 10))
        let d = PRDevice(transport: t, timeoutMilliseconds: 100)
        let e = #expect(throws: LockError.self) { try d.readKeys() }
        #expect(e?.kind == .backend && e?.message.contains("reservations preempted") == true)
    }

    @Test func conflictIsFalseOtherErrorsThrowWithTheCommand() throws {
        let d = PRDevice(transport: ScriptedTransport([SCSIResponse(status: 0x18)]), timeoutMilliseconds: 100)
        #expect(try !d.prOut(.reserve, type: .writeExclusive, key: 1))
        let illegal = SCSIResponse(status: 2, sense: SenseData(decoding: [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0]))
        let d2 = PRDevice(transport: ScriptedTransport([illegal]), timeoutMilliseconds: 100)
        let e = #expect(throws: LockError.self) { try d2.prOut(.preempt, type: .writeExclusive, key: 1, serviceActionKey: 2) }
        #expect(
            e?.message
                == "scripted: PR OUT PREEMPT failed: CHECK CONDITION sense key 05 24/00 (invalid field in CDB: not supported by the device)"
        )
    }
}

@Suite struct ISCSIURLTests {
    @Test func parsesStrictly() throws {
        #expect(
            try ISCSIURL(parsing: "iscsi://127.0.0.1:3261/iqn.2026-01.x:disk/3")
                == ISCSIURL(host: "127.0.0.1", port: 3261, target: "iqn.2026-01.x:disk", lun: 3))
        #expect(try ISCSIURL(parsing: "iscsi://san/iqn.x:d/0").port == 3260)
        for bad in [
            "iscsi://h/iqn/x", "iscsi://h/iqn", "iscsi://u%p@h/iqn/1", "iscsi://h:0/iqn/1", "iscsi://h/iqn/1/2",
            "iscsi:///iqn/1", "http://h/iqn/1", "iscsi://h/iqn/99999",
        ] {
            #expect(throws: LockError.self, "\(bad)") { try ISCSIURL(parsing: bad) }
        }
        // '@' followed by a combining mark is one Character, but still an '@'.
        let credentials = #expect(throws: LockError.self) { try ISCSIURL(parsing: "iscsi://u@\u{301}h/iqn.x:d/1") }
        #expect(credentials?.message.contains("credentials") == true, "\(credentials?.message ?? "")")
    }

    /// libiscsi puts the number in the PDU as is (peripheral addressing);
    /// from 256 that would name another LU, so flat space addressing is used.
    @Test func lunsFrom256UseFlatSpaceAddressing() {
        func wire(_ lun: Int32) -> Int32 { ISCSIURL(host: "h", target: "iqn.x:d", lun: lun).addressedLUN }
        #expect(wire(0) == 0)
        #expect(wire(255) == 0xFF)
        #expect(wire(256) == 0x4100)
        #expect(wire(300) == 0x412C)
        #expect(wire(16383) == 0x7FFF)
    }

    @Test func factoryPicksTheTransportByAddress() throws {
        let factory = TransportFactory(config: PRConfig(iscsiInitiator: "iqn.2026-01.test:a"))
        let lun = try PRResource("iscsi://h/iqn.x:d/1")
        #expect(lun.address == .iscsi(ISCSIURL(host: "h", target: "iqn.x:d", lun: 1)))
        #expect(try factory.transport(for: lun) is ISCSITransport)
        let relative = #expect(throws: LockError.self) { try PRResource("disk.img") }
        #expect(relative?.kind == .invalid && relative?.message.contains("absolute device path") == true)
        #expect(try PRResource("/dev/sdb").address == .devicePath("/dev/sdb"))
        let noName = TransportFactory(config: PRConfig())
        let e = #expect(throws: LockError.self) { try noName.transport(for: lun) }
        #expect(e?.kind == .config)
    }
}

@Suite struct ReadKeysLengthTests {
    @Test func asksAgainWhenTheKeysDoNotFit() throws {
        let count = 1100
        var full: [UInt8] = [0, 0, 0, 1] + withUnsafeBytes(of: UInt32(count * 8).bigEndian) { Array($0) }
        for i in 0..<count { full += withUnsafeBytes(of: UInt64(i + 1).bigEndian) { Array($0) } }
        let t = ScriptedTransport([SCSIResponse(status: 0, data: Array(full.prefix(8192))), SCSIResponse(status: 0, data: full)])
        let keys = try PRDevice(transport: t, timeoutMilliseconds: 100).readKeys()
        #expect(keys.keys.count == count)
        #expect(t.sent.count == 2 && t.sent[1][7...8] == [0x22, 0x68])  // 8 + 8800 bytes
    }
}

/// PRLocker over a scripted device: a GOOD PREEMPT is not taken for
/// success when the device then shows someone else holding.
@Suite struct LockerVerificationTests {
    let vm = UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809")!

    func be64(_ v: UInt64) -> [UInt8] { BigEndian.bytes(v) }
    func reservation(_ key: PRKey?, type: UInt8 = 5) -> SCSIResponse {
        guard let key else { return SCSIResponse(status: 0, data: [0, 0, 0, 1, 0, 0, 0, 0]) }
        return SCSIResponse(status: 0, data: [0, 0, 0, 1, 0, 0, 0, 16] + be64(key.rawValue) + [0, 0, 0, 0, 0, type, 0, 0])
    }
    let illegalRequest = SCSIResponse(status: 2, sense: SenseData(key: 5, asc: 0x24, ascq: 0))
    func keys(_ ks: [PRKey]) -> SCSIResponse {
        SCSIResponse(status: 0, data: [0, 0, 0, 1, 0, 0, 0, UInt8(ks.count * 8)] + ks.flatMap { be64($0.rawValue) })
    }

    @Test func preemptThatDidNotWinIsAConflict() throws {
        let a = PRKey.exclusive(vm: vm, host: 0xA), b = PRKey.exclusive(vm: vm, host: 0xB)
        let other = PRKey.exclusive(vm: UUIDBytes("00000000-0000-0000-0000-000000000009")!, host: 0xC)
        let good = SCSIResponse(status: 0)
        let t = ScriptedTransport([
            illegalRequest,  // READ FULL STATUS: not supported
            reservation(a), keys([a]),  // plan: A holds, B brings A's state
            good, good,  // REGISTER AND IGNORE, PREEMPT(A): GOOD
            reservation(other),  // verification: another VM holds now
            reservation(other), keys([other, b]),  // the full view to decide again on
            good,  // our registration is dropped
            reservation(other), keys([other]),  // clean-up finds nothing of ours
        ])
        var config = PRConfig(iscsiInitiator: "iqn.2026-01.test:b", hostPart: 0xB)
        config.timeoutMilliseconds = 100
        let locker = try PRLocker(config: config, vm: vm) { _ throws(LockError) in t }
        let state = PRState(vm: vm, entries: [.init(resource: "/dev/lun", key: a, type: .writeExclusiveRegistrantsOnly)])
        let e = #expect(throws: LockError.self) { try locker.acquire([try PRResource("/dev/lun")], state: state) }
        #expect(e?.kind == .conflict && e?.message.contains("another VM") == true, "\(String(describing: e))")
        #expect(t.answers.isEmpty)
        #expect(t.sent.last?.first == 0x5E)
    }
}
