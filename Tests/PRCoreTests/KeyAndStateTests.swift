import LockDriver
import PRProtocol
import PRTransport
import Testing

/// Keys are deterministic and never zero; the state codec round-trips and
/// rejects malformed, truncated, oversized, tampered and foreign input.
@Suite struct KeyAndStateTests {
    let vm = UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809")!
    let otherVM = UUIDBytes("00000000-0000-0000-0000-000000000001")!

    @Test func keysAreDeterministicAndSplitIntoVMAndHost() {
        let host = PRKey.hostPart(ofIdentity: "iqn.2026-01.test:host-a")
        let k = PRKey.exclusive(vm: vm, host: host)
        #expect(k == PRKey.exclusive(vm: vm, host: PRKey.hostPart(ofIdentity: "iqn.2026-01.test:host-a")))
        #expect(k.vmPart == PRKey.vmPart(of: vm))
        #expect(k.hostPart == host)
        #expect(k != PRKey.exclusive(vm: otherVM, host: host))
        #expect(k != PRKey.exclusive(vm: vm, host: PRKey.hostPart(ofIdentity: "iqn.2026-01.test:host-b")))
        #expect(PRKey.shared(host: host).isShared && !k.isShared)
        // Known value: FNV-1a over the inputs, so other tools can compute it.
        #expect(PRKey.exclusive(vm: vm, host: 1).description.hasSuffix("00000001"))
        #expect(FNV.hash64(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
    }

    @Test func keyPartsAreNeverZero() {
        #expect(PRKey.exclusive(vm: vm, host: 7).rawValue != 0)
        #expect(PRKey.shared(host: 1).rawValue != 0)
        // A hash folding to zero still gives a non-zero part.
        for i in 0..<5000 {
            #expect(PRKey.hostPart(ofIdentity: "h\(i)") != 0)
        }
    }

    func sample() -> PRState {
        PRState(
            vm: vm,
            entries: [
                .init(
                    resource: "iscsi://127.0.0.1:3260/iqn.2026-01.test:disk/1",
                    key: .exclusive(vm: vm, host: 0xA), type: .writeExclusiveRegistrantsOnly),
                .init(
                    resource: "/dev/disk/by-id/wwn-0x5000 weird;name,=%<&>'\"", key: .shared(host: 0xA),
                    type: .writeExclusiveAllRegistrants),
            ])
    }

    @Test func roundTripsAndIsSafeInXML() throws {
        let s = sample()
        let text = s.encoded
        #expect(try PRState(decoding: text) == s)
        #expect(text.hasPrefix("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r="))
        for bad in "<>&'\" \n".unicodeScalars { #expect(!text.unicodeScalars.contains(bad)) }
        #expect(try PRState(decoding: PRState(vm: vm, entries: []).encoded).entries.isEmpty)
    }

    @Test func entriesAreFoundByResourceName() throws {
        let s = sample()
        for state in [s, try PRState(decoding: s.encoded)] {
            for e in s.entries { #expect(state.entry(for: e.resource) == e) }
            #expect(state.entry(for: "iscsi://127.0.0.1:3260/iqn.2026-01.test:disk/2") == nil)
        }
        // Built from entries naming a resource twice (decoding refuses those): the first one counts.
        let first = s.entries[0]
        let again = PRState.Entry(resource: first.resource, key: first.key, type: .exclusiveAccessRegistrantsOnly)
        let twice = PRState(vm: vm, entries: [first, again])
        #expect(twice.entry(for: first.resource) == first)
    }

    func rejects(_ text: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: LockError.self, sourceLocation: sourceLocation) { try PRState(decoding: text) }
        #expect(error?.kind == .invalid, sourceLocation: sourceLocation)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
    }

    /// Re-seals a hand-made body with a valid checksum, to reach the checks
    /// behind the checksum.
    func sealed(_ body: String) -> String { body + ";sum=" + PRState.checksum(body) }

    @Test func rejectsMalformedTruncatedOversizedAndTampered() {
        let good = sample().encoded
        rejects("", "empty")
        rejects("hello", "not a pr plugin state")
        rejects("lockmgr-pr-v2;vm=00;sum=00000000", "version")
        rejects(String(good.dropLast(12)), "truncated")
        rejects(String(good.dropLast(1)), "checksum")
        rejects(good.replacingFirst("iqn.2026", with: "iqn.2027"), "checksum")
        rejects(good + "<x>", "not allowed")
        rejects(String(repeating: "a", count: PRState.maxLength + 1), "limit")
        let key = PRKey.exclusive(vm: vm, host: 1)
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db180"), "vm=")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;x=1"), "unknown")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5"), "key,type,name")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=0000000000000000,5,/d"), "non-zero")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),2,/d"), "reservation type")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),7,/d"), "disagree")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5,/d%2"), "escape")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5,/d%41"), "needless")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5,/d;r=\(key),5,/d"), "twice")
        // A key of another VM inside this VM's state: tampered.
        let foreign = PRKey.exclusive(vm: otherVM, host: 1)
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(foreign),5,/d"), "does not belong")
    }

    /// Found by the pr-state fuzzer (Fuzz/Regressions/pr-state): the
    /// decoder took upper-case hex in `vm`, a `+` before a key and lower-case
    /// %-escapes, so one state had several strings. Each state now has one.
    @Test func oneStateHasExactlyOneString() throws {
        let key = PRKey.exclusive(vm: vm, host: 1)
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65C16db1809"), "vm=")
        // Was read as shared key 0000000000000001.
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=+000000000000001,7,/d"), "16 lower-case hex")
        rejects(sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5,/d%c3%a9"), "escape")
        let canonical = sealed("lockmgr-pr-v1;vm=c7a5fdbdcdaf9455926ad65c16db1809;r=\(key),5,/d%C3%A9")
        #expect(try PRState(decoding: canonical).encoded == canonical)
        #expect(try PRState(decoding: canonical).entries.first?.resource == "/d\u{E9}")
    }

    /// Every truncation and every single-character edit of a valid state
    /// is rejected (and nothing traps on the way).
    @Test func everyTruncationAndSingleEditIsRejected() {
        let good = Array(sample().encoded.utf8)
        for n in 0..<good.count {
            #expect(throws: LockError.self) { try PRState(decoding: String(decoding: good.prefix(n), as: UTF8.self)) }
        }
        for i in good.indices {
            for replacement in Array("0aZ;,=%<".utf8) where replacement != good[i] {
                var edited = good
                edited[i] = replacement
                #expect(throws: LockError.self, "position \(i)") {
                    try PRState(decoding: String(decoding: edited, as: UTF8.self))
                }
            }
        }
    }

    @Test func tooManyResources() {
        let many = PRState(
            vm: vm,
            entries: (0...PRState.maxEntries).map {
                .init(resource: "/d\($0)", key: .exclusive(vm: vm, host: 1), type: .writeExclusive)
            })
        rejects(many.encoded, "more than")
    }

    /// The most resources a state may carry, with names as long as the
    /// benchmark's iscsi:// URLs, still fit (16 KiB held about 200).
    @Test func theMostResourcesWithTypicalISCSINamesFit() throws {
        let full = PRState(
            vm: vm,
            entries: (1...PRState.maxEntries).map {
                .init(
                    resource: "iscsi://127.0.0.1:40000/iqn.2026-01.lockmgr.bench:disks/\($0)",
                    key: .exclusive(vm: vm, host: 1), type: .writeExclusiveRegistrantsOnly)
            })
        #expect(full.encoded.utf8.count > 16384)
        #expect(try PRState(decoding: full.encoded) == full)
    }
}

extension String {
    func replacingFirst(_ a: String, with b: String) -> String {
        guard let r = firstRange(of: a) else { return self }
        var copy = self
        copy.replaceSubrange(r, with: b)
        return copy
    }
}
