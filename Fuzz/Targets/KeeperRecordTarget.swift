import LockDriver
import PRKeeper

/// A pr keeper's record file (`<keeper_dir>/<uuid>.vm`), written by the
/// plugin and read by the keeper, which trusts nothing it reads: it parses,
/// or fails with a corrupt-record error naming the file and line; what
/// parses has a real pid and re-encodes to text that parses to the same
/// record and encodes to itself (so a keeper rewriting a record it trimmed
/// never changes what the next reader sees).
enum KeeperRecordTarget {
    static let origin = "fuzz.vm"

    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        let record: KeeperRecord
        do {
            record = try KeeperRecord(decoding: String(decoding: bytes, as: UTF8.self), origin: origin)
        } catch {
            try expect(
                error.kind == .internalError && error.message.hasPrefix(origin + ":")
                    && error.message.contains("corrupt keeper record"),
                "a bad keeper record failed as \(error.kind) without naming \(origin): \(error.message)")
            return
        }
        try expect(record.pid > 0, "pid \(record.pid) decoded")
        try expect(
            record.releasing.allSatisfy { name in record.resources.contains { $0.name == name } },
            "'releasing' \(record.releasing) names a disk the record does not list")
        let encoded = record.encoded
        let again: KeeperRecord
        do {
            again = try KeeperRecord(decoding: encoded, origin: origin)
        } catch {
            throw FuzzFailure(message: "'\(encoded)', encoded from \(record), does not decode: \(error)")
        }
        try expect(again == record, "'\(encoded)' decodes to \(again), not \(record)")
        try expect(again.encoded == encoded, "'\(encoded)' re-encodes as '\(again.encoded)'")
    }
}
