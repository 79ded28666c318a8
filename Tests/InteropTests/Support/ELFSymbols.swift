import Harness
import Testing

/// A dynamic symbol as `readelf --dyn-syms -W` prints it.
struct DynamicSymbol: Equatable, CustomStringConvertible {
    var name: String
    var type: String
    var binding: String
    var size: Int
    var defined: Bool

    var description: String { "\(name) \(type) \(binding) size \(size)\(defined ? "" : " UND")" }
}

/// The parts of an ELF file's dynamic section the symbol tests read,
/// taken from binutils so the check does not trust our own parsing of ELF.
enum ELFFile {
    static func dynamicSymbols(_ path: String) throws -> [DynamicSymbol] {
        let text = try readelf(["--dyn-syms", "-W", path])
        // "   254: 000000000055ab48    72 OBJECT  GLOBAL DEFAULT   41 virLockDriverImpl"
        return text.split(separator: "\n").compactMap { line -> DynamicSymbol? in
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 8, f[0].hasSuffix(":"), Int(f[0].dropLast()) != nil else { return nil }
            let size = f[2].hasPrefix("0x") ? Int(f[2].dropFirst(2), radix: 16) : Int(f[2])
            // Versioned names read "name@VERSION (n)"; keep the bare name.
            let name = f[7].split(separator: "@").first.map(String.init) ?? f[7]
            return DynamicSymbol(name: name, type: f[3], binding: f[4], size: size ?? -1, defined: f[6] != "UND")
        }
    }

    /// The DT_NEEDED entries: the shared libraries the file loads with it.
    static func needed(_ path: String) throws -> [String] {
        let text = try readelf(["-d", "-W", path])
        return text.split(separator: "\n").compactMap { line in
            guard line.contains("(NEEDED)"), let open = line.firstIndex(of: "["),
                let close = line.lastIndex(of: "]")
            else { return nil }
            return String(line[line.index(after: open)..<close])
        }
    }

    private static func readelf(_ args: [String]) throws -> String {
        try #require(Command.exists("readelf"), "readelf is missing: install the Debian package binutils")
        let result = Command.run(["readelf"] + args, timeout: 60)
        try #require(result.status == 0, "readelf \(args.joined(separator: " ")) failed: \(result)")
        return result.stdout
    }
}
