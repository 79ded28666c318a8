import Foundation
import Harness
import Testing

/// What every built plugin exposes to the process that loads it: the
/// driver table and nothing else, and no dependency on a Swift runtime
/// that libvirtd's machine may not have.
@Suite struct SymbolTableTests {
    /// Every `liblockmgr_<name>.so` that `swift build` produced.
    static let plugins: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: BuildProducts.binDir)) ?? []
        return files.filter { $0.hasPrefix("liblockmgr_") && $0.hasSuffix(".so") }.sorted()
            .map { "\(BuildProducts.binDir)/\($0)" }
    }()

    @Test func thePluginsWereBuilt() {
        #expect(
            Self.plugins.contains(BuildProducts.library("nop")),
            "no liblockmgr_nop.so in \(BuildProducts.binDir): run `swift build` before `swift test`")
    }

    @Test(arguments: plugins)
    func exportsOnlyTheDriverTable(plugin: String) throws {
        let symbols = try ELFFile.dynamicSymbols(plugin)
        let exported = symbols.filter { $0.defined && ($0.binding == "GLOBAL" || $0.binding == "WEAK") }
        #expect(
            exported == [
                DynamicSymbol(
                    name: "virLockDriverImpl", type: "OBJECT", binding: "GLOBAL",
                    size: Self.tableSymbolSize, defined: true)
            ],
            "exported: \(exported)")
        let swiftLeaks = exported.filter { $0.name.hasPrefix("swift_") || $0.name.hasPrefix("$s") || $0.name.hasPrefix("_swift") }
        #expect(swiftLeaks.isEmpty, "Swift symbols leak into the host's namespace: \(swiftLeaks)")
    }

    /// sizeof(virLockDriver) is 72; AddressSanitizer pads every global with
    /// a right redzone (to a 32-byte boundary plus at least 32 bytes).
    static let tableSymbolSize = Sanitizer.current == .address ? 72 + 24 + 32 : 72

    @Test(arguments: plugins)
    func carriesItsOwnSwiftRuntime(plugin: String) throws {
        let needed = try ELFFile.needed(plugin)
        #expect(!needed.isEmpty)
        let swiftLibraries = needed.filter { $0.contains("swift") || $0.contains("Foundation") || $0.contains("dispatch") }
        #expect(swiftLibraries.isEmpty, "\(plugin) needs \(swiftLibraries): link it with -static-stdlib")
        // What the dynamic loader really resolves, transitively.
        let ldd = Command.run(["ldd", plugin], timeout: 30)
        #expect(ldd.status == 0, "\(ldd)")
        #expect(!ldd.stdout.contains("libswift"), "ldd: \(ldd.stdout)")
        #expect(!ldd.stdout.contains("libFoundation"), "ldd: \(ldd.stdout)")
        #expect(!ldd.stdout.contains("not found"), "ldd: \(ldd.stdout)")
    }
}
