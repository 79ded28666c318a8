import Foundation

/// Builds small C programs and plugins with gcc for tests, against the
/// project's own ABI header.
public enum CProgram {
    /// The repository root, found from this file's location.
    public static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static var abiInclude: String { "\(repoRoot)/Sources/CLockDriver/include" }

    /// Compiles `source` into `<dir>/<name>`; `shared` builds a .so.
    /// Executables may load our plugins, so a sanitized build links its
    /// runtime into them first (`Sanitizer.cHostLinkFlags`).
    /// Returns the output path, or the compiler's complaint as an error.
    public static func build(
        _ source: String, name: String, in dir: String = TempDir.make("cprog"),
        shared: Bool = false, flags: [String] = []
    ) throws -> String {
        let src = "\(dir)/\(name).c"
        let out = "\(dir)/\(name)"
        TempDir.write(source, to: src)
        var argv = ["gcc", "-std=gnu11", "-Wall", "-Werror", "-I", abiInclude, "-o", out, src]
        argv += shared ? ["-shared", "-fPIC"] : try Sanitizer.cHostLinkFlags()
        argv += flags + ["-ldl"]
        let result = Command.run(argv, timeout: 120)
        guard result.status == 0 else { throw CompileError(message: "gcc failed for \(name): \(result.stderr)") }
        return out
    }

    public struct CompileError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}
