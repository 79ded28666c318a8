import FuzzTargets
import Glibc
import LockDriver

// Built two ways (scripts/fuzz.sh, Makefile `fuzz`):
// - with `--sanitize=fuzzer -DLOCKMGR_FUZZING`: libFuzzer supplies main()
//   and calls the entry points below; LOCKMGR_FUZZ_TARGET names the target.
// - plainly: `lockmgr-fuzz TARGET FILE...` runs files through a target once,
//   to reproduce a crash under the debugger or with a full backtrace.
// No top-level code: SwiftPM compiles fuzzer executables as a library.

#if LOCKMGR_FUZZING
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<Int32>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> Int32 {
    let name = getenv("LOCKMGR_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.name).joined(separator: ", ")
        report("lockmgr-fuzz: set LOCKMGR_FUZZ_TARGET to one of: \(names) (not '\(name)')")
        exit(64)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = selected else { return 0 }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try target.run(bytes)
    } catch {
        // A broken promise is a crash to libFuzzer: it saves the input.
        report("lockmgr-fuzz: \(target.name): \(error)")
        abort()
    }
    return 0
}

/// Straight to fd 2: abort() follows, and stdio buffers would be lost.
private func report(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
#else
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3, let target = FuzzTarget(rawValue: args[1]) else {
            let names = FuzzTarget.allCases.map(\.name).joined(separator: "|")
            print("usage: lockmgr-fuzz \(names) FILE...")
            exit(64)
        }
        var failed = false
        for path in args.dropFirst(2) {
            guard case .success(let bytes) = FileText.bytes(path) else {
                print("\(path): cannot read")
                exit(66)
            }
            do {
                try target.run(bytes)
                print("\(path): ok")
            } catch {
                print("\(path): \(error)")
                failed = true
            }
        }
        exit(failed ? 1 : 0)
    }
}
#endif
