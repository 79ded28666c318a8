import Foundation

/// What every benchmark takes: `--out DIR` (where its section goes) and
/// `--cycles N`; anything else is the benchmark's own.
public struct BenchOptions {
    public var outDir: String?
    public var cycles: Int
    public var rest: [String] = []

    public init(_ arguments: [String] = Array(CommandLine.arguments.dropFirst()), defaultCycles: Int) throws {
        cycles = defaultCycles
        var args = arguments[...]
        while let arg = args.popFirst() {
            switch arg {
            case "--out":
                guard let dir = args.popFirst() else { throw BenchError("--out needs a directory") }
                outDir = dir
            case "--cycles":
                guard let value = args.popFirst(), let n = Int(value), n > 0 else {
                    throw BenchError("--cycles needs a positive number")
                }
                cycles = n
            default:
                rest.append(arg)
            }
        }
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One row of `<name>-scale.tsv`, the data the report plots.
public struct ScalePoint {
    public var plugin: String
    public var operation: String
    public var resources: Int
    public var samples: Samples

    public init(plugin: String, operation: String, resources: Int, samples: Samples) {
        self.plugin = plugin
        self.operation = operation
        self.resources = resources
        self.samples = samples
    }
}

/// A benchmark's part of the report: `DIR/<name>.md` (a `## ...` section)
/// and, for scale data, `DIR/<name>-scale.tsv`. Without `--out` the
/// section goes to standard output only.
public enum Section {
    public static let scaleHeader = "plugin\toperation\tresources\tmedian_us\tp99_us"

    public static func write(name: String, markdown: String, scale: [ScalePoint] = [], to outDir: String?) throws {
        print(markdown)
        guard let outDir else { return }
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        try markdown.write(toFile: "\(outDir)/\(name).md", atomically: true, encoding: .utf8)
        guard !scale.isEmpty else { return }
        let rows = scale.map {
            "\($0.plugin)\t\($0.operation)\t\($0.resources)\t\(format($0.samples.median, decimals: 1))\t\(format($0.samples.p99, decimals: 1))"
        }
        try ([scaleHeader] + rows).joined(separator: "\n").appending("\n")
            .write(toFile: "\(outDir)/\(name)-scale.tsv", atomically: true, encoding: .utf8)
    }
}

/// Number formatting for the tables.
public func format(_ value: Double, decimals: Int) -> String {
    value.isFinite ? String(format: "%.\(decimals)f", value) : "n/a"
}

/// Microseconds, with as many decimals as the magnitude deserves.
public func micros(_ value: Double) -> String {
    format(value, decimals: value >= 100 ? 0 : value >= 10 ? 1 : 2)
}

/// A ratio of medians, e.g. "1.07x".
public func ratio(_ a: Double, _ b: Double) -> String {
    b > 0 && a.isFinite && b.isFinite ? String(format: "%.2fx", a / b) : "n/a"
}

/// The machine's load average when a benchmark starts, for its notes.
public func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
        .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
}
