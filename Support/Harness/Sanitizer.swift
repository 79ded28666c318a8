import CSanitizerSupport
import Foundation

/// The sanitizer the tests were built with (`swift test --sanitize=address`
/// or `thread`, see `make test-asan`/`test-tsan`), and what the programs the
/// tests start need because of it.
///
/// Everything `swift build` produces is then instrumented: the plugins
/// reference the sanitizer's runtime without carrying it, and our
/// executables (lockmgr, pr-keeper, pr-tool, the test runner) link it in.
/// A program that is not ours (a C host built by the tests, libvirtd) can
/// load our plugins only if the runtime is the first library in the
/// process: such hosts link it (`cHostLinkFlags`) or have it preloaded
/// (`preloadEnvironment`). Runtime options and suppressions for every child
/// come from Support/SanitizerSupport (exported into the environment).
public enum Sanitizer: String, Sendable {
    case address, thread

    /// nil in a normal build.
    public static let current: Sanitizer? = {
        switch lockmgr_test_sanitizer() {
        case LOCKMGR_TEST_SANITIZER_ADDRESS: return .address
        case LOCKMGR_TEST_SANITIZER_THREAD: return .thread
        default: return nil
        }
    }()

    /// Seconds a test allows over a configured time limit before it calls
    /// a give-up too slow: sanitized programs start and run several times
    /// slower, and CI runs them on 2 shared cores.
    public static let slackSeconds: Double = current == nil ? 2 : 6

    /// The toolchain's shared runtime (libclang_rt.asan-x86_64.so or
    /// libclang_rt.tsan-x86_64.so), found next to the `swift` on PATH (the
    /// one that built the tests) unless LOCKMGR_SANITIZER_RUNTIME names it.
    public static func runtimeLibrary() throws -> String {
        guard let current else { throw FixtureError("not a sanitized build: no sanitizer runtime to load") }
        let file = "libclang_rt.\(current == .address ? "asan" : "tsan")-x86_64.so"
        if let path = ProcessInfo.processInfo.environment["LOCKMGR_SANITIZER_RUNTIME"] {
            guard FileManager.default.fileExists(atPath: path) else {
                throw FixtureError("LOCKMGR_SANITIZER_RUNTIME=\(path) does not exist")
            }
            return path
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/swift") {
            let swift = URL(fileURLWithPath: "\(dir)/swift").resolvingSymlinksInPath()
            let usr = swift.deletingLastPathComponent().deletingLastPathComponent()  // …/usr/bin/swift → …/usr
            let candidate = usr.appendingPathComponent("lib/swift/clang/lib/linux/\(file)").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        throw FixtureError(
            "cannot find \(file) next to a `swift` on PATH (\(path)): "
                + "set LOCKMGR_SANITIZER_RUNTIME to the toolchain's \(file)")
    }

    /// The shared runtime and the libraries it needs without naming them:
    /// Swift's TSan runtime intercepts libdispatch, so it refers to
    /// libdispatch's and the blocks runtime's symbols.
    public static func runtimeLibraries() throws -> [String] {
        let runtime = try runtimeLibrary()
        guard current == .thread else { return [runtime] }
        let swiftLibs = URL(fileURLWithPath: runtime).deletingLastPathComponent()  // …/clang/lib/linux
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()  // …/lib/swift
            .appendingPathComponent("linux").path
        return [runtime, "\(swiftLibs)/libdispatch.so", "\(swiftLibs)/libBlocksRuntime.so"]
    }

    /// gcc arguments for a C program that loads our plugins: in a sanitized
    /// build, the shared runtime as its first library; nothing otherwise.
    public static func cHostLinkFlags() throws -> [String] {
        guard current != nil else { return [] }
        let libraries = try runtimeLibraries()
        let dirs = Set(libraries.map { ($0 as NSString).deletingLastPathComponent }).sorted()
        // gcc links --as-needed here: keep the runtime though nothing names it.
        return ["-Wl,--push-state,--no-as-needed"] + libraries + ["-Wl,--pop-state"] + dirs.map { "-Wl,-rpath,\($0)" }
    }

    /// The environment for a program we did not build (libvirtd) that
    /// loads our plugins: in a sanitized build, the runtime preloaded.
    public static func preloadEnvironment() throws -> [String: String] {
        guard current != nil else { return [:] }
        return ["LD_PRELOAD": try runtimeLibraries().joined(separator: " ")]
    }
}
