import Glibc
import LockDriver
import PRProtocol
import PRTransport
import Testing

/// Config errors name file:line; decisions never preempt a key that is
/// neither ours nor, with a state, the same VM's migration peer.
@Suite struct ConfigTests {
    func conf(_ text: String) throws -> PRConfig {
        try PRConfig(
            ConfFile(parsing: text, origin: "/etc/lockmgr/qemu-pr.conf"),
            systemInitiatorFile: "/nonexistent", machineIDFile: "/nonexistent")
    }

    @Test func defaultsWithoutAFile() throws {
        let c = try PRConfig.load(
            path: "/nonexistent/qemu-pr.conf", systemInitiatorFile: "/nonexistent",
            machineIDFile: "/nonexistent")
        #expect(c.exclusiveType == .writeExclusiveRegistrantsOnly)
        #expect(c.sharedType == .writeExclusiveAllRegistrants)
        #expect(c.timeoutMilliseconds == 5000)
        #expect(c.iscsiInitiator == nil)
        #expect(throws: LockError.self) { try c.requireHostPart() }
    }

    @Test func readsEverySetting() throws {
        let c = try conf(
            """
            iscsi_initiator = "iqn.2026-01.test:a"
            host_id = 42
            exclusive_type = "exclusive-access-registrants-only"
            shared_type = "exclusive-access-all-registrants"
            timeout_ms = 250
            pr_helper_socket = "/run/pr.sock"
            guest_reservations = [ "/dev/disk/by-id/wwn-0x1", "iscsi://san/iqn.2026-01.test:t/2" ]
            """)
        #expect(c.iscsiInitiator == "iqn.2026-01.test:a")
        #expect(c.hostPart == 42)
        #expect(c.exclusiveType == .exclusiveAccessRegistrantsOnly)
        #expect(c.sharedType == .exclusiveAccessAllRegistrants)
        #expect(c.timeoutMilliseconds == 250)
        #expect(c.helperSocket == "/run/pr.sock")
        #expect(c.guestReservations == ["/dev/disk/by-id/wwn-0x1", "iscsi://san/iqn.2026-01.test:t/2"])
        // Without host_id the host part comes from the initiator name.
        #expect(try conf("iscsi_initiator = \"iqn.2026-01.test:a\"").hostPart == PRKey.hostPart(ofIdentity: "iqn.2026-01.test:a"))
    }

    @Test(arguments: [
        ("\n\nexclusive_type = \"write-exclusive-all-registrants\"", ":3: 'exclusive_type' cannot be"),
        ("shared_type = \"write-exclusive\"", ":1: 'shared_type' must be an all-registrants"),
        ("exclusive_type = \"we\"", ":1: 'exclusive_type' must be one of"),
        ("timeout_ms = 5", ":1: 'timeout_ms' must be between"),
        ("host_id = 0", ":1: 'host_id' must be between"),
        ("iscsi_initiator = \"my host\"", ":1: 'iscsi_initiator' must be"),
        ("pr_helper_socket = \"pr.sock\"", ":1: 'pr_helper_socket' must be an absolute path"),
        ("\nhostid = 3", ":2: unknown setting 'hostid'"),
        ("guest_reservations = [ \"sda\" ]", ":1: 'guest_reservations' lists disks as libvirt names them"),
        ("timeout_ms = \"5\"", ":1: 'timeout_ms' must be an integer"),
    ])
    func badConfigsNameFileAndLine(text: String, fragment: String) {
        let error = #expect(throws: LockError.self) { try conf(text) }
        #expect(error?.kind == .config)
        #expect(error?.message.contains("/etc/lockmgr/qemu-pr.conf" + fragment) == true, "\(error?.message ?? "")")
    }

    /// Also with DOS line ends ("\r\n" is one Character in Swift, which a
    /// split at "\n" would not split at).
    @Test(arguments: ["\n", "\r\n"]) func readsOpenISCSIsInitiatorFile(lineEnd: String) throws {
        let path = "/tmp/lockmgr-pr-initiatorname-\(getpid())-\(lineEnd.utf8.count)"
        let text = ["## comment", "InitiatorName=iqn.1993-08.org.debian:01:abc", "#InitiatorName=iqn.other:x", ""]
            .joined(separator: lineEnd)
        _ = text.withCString { p in
            let f = fopen(path, "w")
            defer { fclose(f) }
            return fputs(p, f)
        }
        defer { unlink(path) }
        let c = try PRConfig(ConfFile.empty(origin: "x"), systemInitiatorFile: path, machineIDFile: "/nonexistent")
        #expect(c.iscsiInitiator == "iqn.1993-08.org.debian:01:abc")
    }
}

@Suite struct DecisionTests {
    let vm = UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809")!
    var a: PRKey { .exclusive(vm: vm, host: 0xA) }
    var b: PRKey { .exclusive(vm: vm, host: 0xB) }
    var c: PRKey { .exclusive(vm: vm, host: 0xC) }
    var other: PRKey { .exclusive(vm: UUIDBytes("00000000-0000-0000-0000-000000000001")!, host: 0xC) }
    let we5 = ReservationType.writeExclusiveRegistrantsOnly

    func decide(
        _ me: PRKey, holder: PRKey?, type: ReservationType = .writeExclusiveRegistrantsOnly, keys: [PRKey]? = nil,
        mode: AccessMode = .exclusive, state: PRState.Entry? = nil, hasState: Bool = false
    ) throws(LockError) -> PRStep {
        let view = PRView(
            reservation: holder.map { .init(key: type.isAllRegistrants ? 0 : $0.rawValue, type: type) },
            keys: (keys ?? holder.map { [$0] } ?? []).map(\.rawValue))
        return try PRDecision.acquire(
            resource: "lun", mode: mode, myKey: me, view: view,
            exclusiveType: we5, sharedType: .writeExclusiveAllRegistrants,
            stateEntry: state, hasState: hasState || state != nil)
    }

    func entry(_ k: PRKey, _ t: ReservationType = .writeExclusiveRegistrantsOnly) -> PRState.Entry {
        .init(resource: "lun", key: k, type: t)
    }

    @Test func freshAcquire() throws {
        #expect(try decide(a, holder: nil) == .reserve(we5))
        #expect(try decide(a, holder: nil, keys: [a, a]) == .reserve(we5))  // our orphans
        #expect(try decide(a, holder: nil, state: entry(b, .exclusiveAccess)) == .reserve(.exclusiveAccess))
        // Registrations the same VM left on other hosts are fenced after reserving.
        #expect(try decide(a, holder: nil, keys: [b, a, b], state: entry(b)) == .reserve(we5, fencing: [b]))
        #expect(try decide(a, holder: a, type: .exclusiveAccess) == .reclaim(.exclusiveAccess))
    }

    @Test func conflictsNameTheHolder() {
        let e = #expect(throws: LockError.self) { try decide(a, holder: other) }
        #expect(e?.kind == .conflict && e?.message.contains(other.description) == true)
        let d = #expect(throws: LockError.self) { try decide(a, holder: b) }
        #expect(d?.message.contains("double start") == true)
        #expect(d?.message.contains("clear-host") == true)
        // A key none of our VMs uses (VM part 0) holding an exclusive type:
        // someone else's reservation, such as a guest's own PR cluster.
        let foreign = PRKey(rawValue: 0xc1c1)
        let g = #expect(throws: LockError.self) { try decide(a, holder: foreign) }
        #expect(g?.kind == .conflict && g?.message.contains("\(foreign), which no VM of this plugin uses") == true)
        #expect(g?.message.contains("guest_reservations") == true)
        let r = #expect(throws: LockError.self) { try decide(a, holder: nil, keys: [other]) }
        #expect(r?.message.contains("another host may be acquiring") == true)
    }

    @Test func takeoverOnlyFromTheStatesKeyOrAsRollback() throws {
        // Destination B with A's state: A holds → take over, type preserved.
        #expect(try decide(b, holder: a, type: .exclusiveAccess, state: entry(a)) == .takeover(from: a, .exclusiveAccess))
        // Rollback: A with its own state, B (the peer) holds.
        #expect(try decide(a, holder: b, state: entry(a)) == .takeover(from: b, we5))
        // Stale: C (same VM, third host) holds while B brings A's state.
        #expect(throws: LockError.self) { try decide(b, holder: c, state: entry(a)) }
        // Stale: another VM holds.
        let e = #expect(throws: LockError.self) { try decide(b, holder: other, state: entry(a)) }
        #expect(e?.message.contains("stale") == true)
        // State without an entry for this resource: no takeover.
        #expect(throws: LockError.self) { try decide(b, holder: a, hasState: true) }
    }

    @Test func sharedModes() throws {
        let sa = PRKey.shared(host: 0xA), sb = PRKey.shared(host: 0xB)
        #expect(try decide(sa, holder: nil, mode: .shared) == .reserve(.writeExclusiveAllRegistrants))
        #expect(try decide(sa, holder: sb, type: .writeExclusiveAllRegistrants, keys: [sb], mode: .shared) == .joinShared)
        #expect(try decide(sa, holder: sb, type: .writeExclusiveAllRegistrants, keys: [sb, sa], mode: .shared) == .alreadyShared)
        let x = #expect(throws: LockError.self) { try decide(a, holder: sb, type: .writeExclusiveAllRegistrants, keys: [sb]) }
        #expect(x?.message.contains("held shared") == true)
        #expect(throws: LockError.self) { try decide(sa, holder: a, mode: .shared) }
    }
}
