import Foundation
import FuzzTargets
import LockDriver
import Testing

/// Every seed input and every input the fuzzer ever crashed on, run
/// through the same target bodies libFuzzer runs (Fuzz/Corpus/<target>/,
/// Fuzz/Regressions/<target>/): a crash found once stays a failing test
/// until fixed, and the seeds keep each body's promises checked on
/// meaningful input in every `swift test`.
@Suite struct FuzzReplayTests {
    static let fuzzDir = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz").path

    static func files(_ kind: String, _ target: FuzzTarget) -> [String] {
        let dir = "\(fuzzDir)/\(kind)/\(target.name)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(dir)/\($0)" }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedCorpusKeepsEveryPromise(_ target: FuzzTarget) throws {
        let seeds = Self.files("Corpus", target)
        #expect(!seeds.isEmpty, "no seeds in Fuzz/Corpus/\(target.name)")
        try replay(target, seeds)
    }

    @Test(arguments: FuzzTarget.allCases)
    func everyCrashFoundStaysFixed(_ target: FuzzTarget) throws {
        try replay(target, Self.files("Regressions", target))
    }

    /// A directory named after no target would never be replayed.
    @Test func everyInputDirectoryNamesATarget() throws {
        for kind in ["Corpus", "Regressions"] {
            let dirs = try FileManager.default.contentsOfDirectory(atPath: "\(Self.fuzzDir)/\(kind)")
            for dir in dirs where !dir.hasPrefix(".") {
                #expect(FuzzTarget(rawValue: dir) != nil, "Fuzz/\(kind)/\(dir) names no fuzz target")
            }
        }
    }

    private func replay(_ target: FuzzTarget, _ paths: [String]) throws {
        for path in paths {
            let bytes = try FileText.bytes(path).get()
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(path): \(error)")
            }
        }
    }
}
