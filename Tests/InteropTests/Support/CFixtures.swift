import Foundation
import Harness
import Testing

/// The C programs and plugins these tests compile with gcc: the sources
/// live in Tests/InteropTests/C and include the project's own ABI header,
/// so they prove the header (not a copy of it) is what C code sees.
enum CFixtures {
    /// The repository root, found from this file's location.
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }  // Support, InteropTests, Tests, file
        return url.path
    }()

    static var includeDir: String { "\(repoRoot)/Sources/CLockDriver/include" }
    static var errorChannelSource: String { "\(repoRoot)/Sources/CLockDriver/error_channel.c" }
    static func source(_ name: String) -> String { "\(repoRoot)/Tests/InteropTests/C/\(name)" }

    /// libvirt's shared library as Debian's libvirt0 ships it (no libvirt.so dev link).
    static let libvirtLibrary = "/usr/lib/x86_64-linux-gnu/libvirt.so.0"

    /// Builds an executable; the test fails with gcc's own output if it cannot.
    /// It loads plugins, so a sanitized build links the runtime in first.
    static func executable(
        _ sources: [String], named name: String, in dir: String,
        libraries: [String] = []
    ) throws -> String {
        try compile(sources + Sanitizer.cHostLinkFlags() + libraries, output: "\(dir)/\(name)", flags: [])
    }

    /// Builds a plugin-style shared object: everything hidden except what
    /// the source marks visible, as the project's version script does.
    static func sharedObject(
        _ sources: [String], named name: String, in dir: String,
        defines: [String] = []
    ) throws -> String {
        try compile(
            sources, output: "\(dir)/\(name)",
            flags: ["-shared", "-fPIC", "-fvisibility=hidden"] + defines.map { "-D\($0)" })
    }

    private static func compile(_ inputs: [String], output: String, flags: [String]) throws -> String {
        try #require(Command.exists("gcc"), "gcc is missing: install the Debian package gcc (scripts/debian-packages.txt)")
        let result = Command.run(
            ["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", includeDir]
                + flags + ["-o", output] + inputs, timeout: 120)
        try #require(result.status == 0, "gcc failed building \(output): \(result)")
        return output
    }
}
