import LockDriver
import PRProtocol
import PRTransport
import SanlockCore

/// A sanlock state string: it parses into well-formed leases or fails with
/// an invalid-request error; what parses, written out again in sanlock's
/// escaping, parses to the same leases.
enum SanlockStateTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        let state: LeaseState
        do {
            state = try LeaseState(parsing: String(decoding: bytes, as: UTF8.self))
        } catch {
            try expect(error.kind == .invalid, "a bad sanlock state failed as \(error.kind): \(error.message)")
            return
        }
        for e in state.entries {
            try expect(
                !e.lockspace.isEmpty && !e.name.isEmpty && !e.disks.isEmpty,
                "entry \(e) has an empty lockspace, name or disk list")
            try expect(!(e.shared && e.version != nil), "entry \(e) is shared and has a version")
        }
        let written = state.entries.map(write).joined(separator: " ")
        let again: LeaseState
        do {
            again = try LeaseState(parsing: written)
        } catch {
            throw FuzzFailure(message: "'\(written)', written from \(state), does not parse: \(error)")
        }
        try expect(again == state, "'\(written)' parses to \(again), not \(state)")
    }

    /// One lease as sanlock_inquire writes it: `:` and `\` escaped.
    private static func write(_ e: LeaseState.Entry) -> String {
        var fields = [e.lockspace, e.name]
        for d in e.disks { fields += [d.path, String(d.offset)] }
        if e.shared { fields.append("SH") } else if let v = e.version { fields.append(String(v)) }
        return fields.map(escape).joined(separator: ":")
    }

    private static func escape(_ field: String) -> String {
        var out: [UInt8] = []
        for c in field.utf8 {
            if c == UInt8(ascii: ":") || c == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A pr state string: it decodes into a state that keeps every rule of the
/// format, or fails with an invalid-request error naming the pr state; what
/// decodes encodes back to exactly the same text (the format is canonical).
/// Each input is tried as given and again with a correct checksum, so the
/// fuzzer reaches the fields behind the checksum.
enum PRStateTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        try check(String(decoding: bytes, as: UTF8.self))
        let body = String(decoding: bytes[..<(lastSumField(bytes) ?? bytes.count)], as: UTF8.self)
        try check(body + ";sum=" + PRState.checksum(body))
    }

    /// Where the last `;sum=` starts.
    private static func lastSumField(_ bytes: [UInt8]) -> Int? {
        let marker = Array(";sum=".utf8)
        guard bytes.count >= marker.count else { return nil }
        return (0...(bytes.count - marker.count)).last { bytes[$0..<$0 + marker.count].elementsEqual(marker) }
    }

    private static func check(_ text: String) throws(FuzzFailure) {
        let state: PRState
        do {
            state = try PRState(decoding: text)
        } catch {
            try expect(
                error.kind == .invalid && error.message.hasPrefix("invalid pr state string: "),
                "a bad pr state failed as \(error.kind): \(error.message)")
            return
        }
        try expect(text.utf8.count <= PRState.maxLength, "a \(text.utf8.count)-byte state decoded")
        try expect(state.entries.count <= PRState.maxEntries, "a state with \(state.entries.count) entries decoded")
        try expect(Set(state.entries.map(\.resource)).count == state.entries.count, "duplicate resources decoded")
        for e in state.entries {
            try expect(!e.resource.isEmpty, "an empty resource name decoded")
            try expect(e.key.rawValue != 0, "key 0 decoded")
            try expect(e.key.isShared == e.type.isAllRegistrants, "key \(e.key) disagrees with type \(e.type)")
            try expect(
                e.key.isShared || e.key.vmPart == PRKey.vmPart(of: state.vm),
                "key \(e.key) of another VM decoded")
        }
        let encoded = state.encoded
        try expect(encoded == text, "'\(text)' decodes but encodes as '\(encoded)'")
        let again: PRState
        do {
            again = try PRState(decoding: encoded)
        } catch {
            throw FuzzFailure(message: "'\(encoded)', encoded from '\(text)', does not decode: \(error)")
        }
        try expect(again == state, "'\(encoded)' decodes to \(again), not \(state)")
    }
}
