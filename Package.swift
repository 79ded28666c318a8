// swift-tools-version:6.0
import PackageDescription

// (issue 13) Release builds (what `make install` and `make deb` ship) resolve every
// symbol at load, as Debian's hardened builds (libvirt's plugins) do.
let releaseBindNow: LinkerSetting = .unsafeFlags(["-Xlinker", "-z", "-Xlinker", "now"], .when(configuration: .release))

// Plugins are loaded into C hosts (libvirtd) as well as ours: they carry
// their own Swift runtime and export nothing but virLockDriverImpl.
let pluginLinkerSettings: [LinkerSetting] = [
    .unsafeFlags([
        "-static-stdlib",
        "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/Plugins/exports.map",
    ]),
    releaseBindNow,
]

// Hosts export the sink our plugins report their errors to (error_channel.h).
// In a ThreadSanitizer build they also export the runtime's Swift access
// hooks, which instrumented plugins call and the toolchain's export list
// omits (no effect in other builds: the symbols do not exist there).
let hostLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["lockmgr_host_report_error", "__tsan_external_read", "__tsan_external_write",
                  "__tsan_ignore_thread_begin", "__tsan_ignore_thread_end"]
        .flatMap { ["-Xlinker", "--export-dynamic-symbol=\($0)"] }),
]

/// A plugin: a Swift driver, a one-line C export table, and a dynamic
/// library product `liblockmgr_<name>.so`, installed as `lock_manager/<name>.so`.
func plugin(_ name: String, module: String, dependencies: [Target.Dependency] = []) -> (Product, [Target]) {
    let product = Product.library(name: "lockmgr_\(name)", type: .dynamic,
                                  targets: ["\(module)Plugin", "\(module)PluginExport"])
    let targets: [Target] = [
        .target(name: "\(module)Plugin",
                dependencies: ["LockDriver", "CLockDriver", "PluginEntry"] + dependencies,
                path: "Sources/Plugins/\(name)/Driver",
                linkerSettings: pluginLinkerSettings),
        .target(name: "\(module)PluginExport",
                dependencies: ["CLockDriver"],
                path: "Sources/Plugins/\(name)/Export"),
    ]
    return (product, targets)
}

let nop = plugin("nop", module: "Nop")

// ---- deployable programs (issue 13) -----------------------------------------
// Installed programs carry their own Swift runtime, and the Foundation that
// swift-argument-parser brings, as the plugins do: hypervisor hosts have no
// Swift toolchain, and `lockmgr failure-action` is what sanlock runs when a
// lease is lost. Tests/DeployTests checks every installed file without one.
// A static FoundationEssentials does not name the archives it needs itself.
let installedProgramLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib"]), releaseBindNow,
    .linkedLibrary("_FoundationCollections"), .linkedLibrary("_FoundationCShims"), .linkedLibrary("swiftSynchronization"),
]
let deployTargets: [Target] = [
    .testTarget(name: "DeployTests", dependencies: ["LockDriver", "TestSupport"]),
]
// ---- end deployable programs -------------------------------------------------

// ---- sanlock plugin (issue 4) --------------------------------------------
// CSanlock: libsanlock_client's headers plus a small C helper for
// `struct sanlk_resource` (its flexible disks[] array is not usable from Swift).
// SanlockCore: the pure logic (config, MD5 lease names, state strings, error
// texts, failure helper command), unit-tested without a daemon.
let sanlock = plugin("sanlock", module: "Sanlock", dependencies: ["SanlockCore", "CSanlock"])
let sanlockTargets: [Target] = [
    .target(name: "CSanlock", path: "Sources/Plugins/sanlock/CSanlock",
            linkerSettings: [.linkedLibrary("sanlock_client")]),
    .target(name: "SanlockCore", dependencies: ["LockDriver"], path: "Sources/Plugins/sanlock/Core"),
    .testTarget(name: "SanlockTests", dependencies: ["SanlockCore", "LockDriver", "TestSupport"],
                linkerSettings: hostLinkerSettings),
    // sanlock-bench: in the benchmark report block below.
]
// ---- end sanlock plugin ---------------------------------------------------

// ---- interop: binary compatibility and loader tests (branch interop) ----
// C fixtures in Tests/InteropTests/C are compiled by the tests with gcc.
let interopTargets: [Target] = [
    .testTarget(name: "InteropTests", dependencies: ["LockDriver", "CLockDriver", "TestSupport"],
                exclude: ["C"], linkerSettings: hostLinkerSettings),
]
// ---- end interop ----

// ---- real libvirt end to end (issue 5) ------------------------------------
// libvirtd + QEMU + a private sanlock daemon, with libvirt's sanlock.so and
// ours. Uses the machine's one libvirtd: its suite runs serialized.
let libvirtTargets: [Target] = [
    .testTarget(name: "LibvirtTests", dependencies: ["TestSupport"]),
    // Not a test: libvirtd start and domain create/suspend/resume/destroy latency per plugin.
    .executableTarget(name: "libvirt-bench", dependencies: ["TestSupport", "BenchSupport"], path: "Benchmarks/libvirt-bench"),
]
// ---- end real libvirt -----------------------------------------------------

// MARK: pr plugin (SCSI-3 persistent reservations)
let pr = plugin("pr", module: "PR", dependencies: ["PRCore"])
let prTargets: [Target] = [
    // libiscsi behind a small C shim with millisecond deadlines.
    .target(name: "CISCSI", path: "Sources/Plugins/pr/CISCSI",
            linkerSettings: [.linkedLibrary("iscsi")]),
    // Not a test: the pr plugin .so through our host library against the raw PR command floor (issue 6).
    .executableTarget(name: "pr-bench", dependencies: ["PRCore", "LockDriver", "BenchSupport"], path: "Benchmarks/pr-bench",
                      linkerSettings: hostLinkerSettings),
    .executableTarget(name: "pr-tool", dependencies: ["PRCore", "LockDriver", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                      path: "Sources/Tools/pr-tool",
                      linkerSettings: installedProgramLinkerSettings),
    .testTarget(name: "PRCoreTests", dependencies: ["PRCore"], path: "Tests/PRCoreTests"),
    .testTarget(name: "PRTargetTests", dependencies: ["PRCore", "LockDriver", "TestSupport"],
                path: "Tests/PRTargetTests", linkerSettings: hostLinkerSettings),
]

// MARK: pr plugin lifecycle (issue 5): the keeper that ties reservations to the VM's process
// (its tests: Tests/PRTargetTests/PRLifecycleTests.swift)
let prLifecycleTargets: [Target] = [
    // Started by the plugin, outlives its caller: carries its own Swift runtime like the plugins.
    .executableTarget(name: "pr-keeper", dependencies: ["PRCore", "LockDriver"], path: "Sources/Plugins/pr/Keeper",
                      linkerSettings: [.unsafeFlags(["-static-stdlib"]), releaseBindNow]),
]

// MARK: pr plugin transports (SG_IO, qemu-pr-helper) and their tests
let prTransportTargets: [Target] = [
    // The pr plugin's system calls: SG_IO ioctls and SCM_RIGHTS sendmsg.
    .target(name: "CPRShim", path: "Sources/Plugins/pr/Shim"),
    // Test doubles for PR: a model LU (FakePRDevice), a fake SG_IO driver,
    // an in-process qemu-pr-helper, and a runner for the real one.
    .target(name: "PRTestSupport", dependencies: ["PRCore", "CPRShim", "LockDriver", "TestSupport"],
            path: "Tests/PRTestSupport"),
    .testTarget(name: "PRTransportTests",
                dependencies: ["PRCore", "CPRShim", "LockDriver", "PRTestSupport", "TestSupport"]),
]

// ---- sanitizers (issue 6): `make test-asan`, `make test-tsan` ------------
// Runtime options and suppression files for sanitized test runs, linked
// into everything that uses TestSupport (see Tests/TestSupport/Sanitizer.swift).
// libtirpc: the ASan runtime binds its XDR interceptors at start-up, and
// libvirt's RPC (lockd.so → virtlockd, loaded by the tests) calls them; with
// libtirpc only dlopen()ed later they would call NULL. Linked in plain
// builds too: it is libvirt0's own dependency, so always present here.
let sanitizerTargets: [Target] = [
    .target(name: "CSanitizerSupport", path: "Tests/SanitizerSupport", exclude: ["lsan.supp", "tsan.supp"],
            cSettings: [.define("LOCKMGR_SANITIZER_DIR", to: "\"\(Context.packageDirectory)/Tests/SanitizerSupport\"")],
            linkerSettings: [.linkedLibrary("tirpc")]),
]
// ---- end sanitizers -------------------------------------------------------

// ---- benchmark report (issue 6, branch benchreport) ----------------------
// `make bench`: every benchmark writes its section (--out DIR) and
// scripts/bench-report.sh assembles bench-results/report.md.
let benchReportTargets: [Target] = [
    // Samples, percentiles, the section and scale-table writers.
    .target(name: "BenchSupport", path: "Benchmarks/BenchSupport"),
    // Not a test: acquire/release/handover of our sanlock plugin, libvirt's, the raw calls and nop.
    .executableTarget(name: "sanlock-bench",
                      dependencies: ["BenchSupport", "LockDriver", "SanlockCore", "CSanlock", "TestSupport"],
                      path: "Benchmarks/sanlock-bench", linkerSettings: hostLinkerSettings),
    // Not a test: plugin load + init time and resident memory, ours against libvirt's.
    .executableTarget(name: "load-bench", dependencies: ["BenchSupport", "TestSupport"], path: "Benchmarks/load-bench"),
    // One load sample in a fresh C process, the same for every plugin.
    .executableTarget(name: "plugin-load-probe", path: "Benchmarks/plugin-load-probe",
                      cSettings: [.headerSearchPath("../../Sources/CLockDriver/include")]),
]
// ---- end benchmark report ---------------------------------------------------

// ---- fuzzing (issue 6) ------------------------------------------------------
// FuzzTargets: one body per parser of outside input, with the promises it
// checks. lockmgr-fuzz: libFuzzer's entry points when built by scripts/fuzz.sh
// (--sanitize=fuzzer -DLOCKMGR_FUZZING), a file replayer otherwise.
// FuzzReplayTests: every seed and every crash found, through the same bodies.
let fuzzTargets: [Target] = [
    .target(name: "FuzzTargets", dependencies: ["LockDriver", "SanlockCore", "PRCore"], path: "Fuzz/Targets"),
    .executableTarget(name: "lockmgr-fuzz", dependencies: ["FuzzTargets", "LockDriver"], path: "Fuzz/Driver"),
    .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzTargets", "LockDriver"]),
]
// ---- end fuzzing ------------------------------------------------------------

let package = Package(
    name: "lockmgr",
    products: [
        .executable(name: "lockmgr", targets: ["lockmgr"]),
        .library(name: "LockDriver", targets: ["LockDriver"]),
        nop.0,
        sanlock.0,
        pr.0,
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The C ABI: virLockDriver and friends, the export macro, the error channel.
        .target(name: "CLockDriver", path: "Sources/CLockDriver", linkerSettings: [.linkedLibrary("dl")]),
        // The host library and the plugin-side bridge (no Foundation: plugins link it).
        .target(name: "LockDriver", dependencies: ["CLockDriver"], path: "Sources/LockDriver"),
        // The C table's eight entry points, linked into every plugin (never into hosts).
        .target(name: "PluginEntry", dependencies: ["LockDriver", "CLockDriver"], path: "Sources/PluginEntry"),
        .executableTarget(
            name: "lockmgr",
            dependencies: ["LockDriver", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/lockmgr",
            linkerSettings: hostLinkerSettings + installedProgramLinkerSettings),
        // Helpers shared by the test targets: build products, temp dirs, commands, daemons.
        .target(name: "TestSupport", dependencies: ["LockDriver", "CSanitizerSupport"], path: "Tests/TestSupport"),
        // The pr plugin's testable core: SCSI transports, PR commands, keys, state.
        .target(name: "PRCore", dependencies: ["LockDriver", "CPRShim", "CISCSI"], path: "Sources/Plugins/pr/Core"),
        .testTarget(name: "LockDriverTests", dependencies: ["LockDriver", "CLockDriver", "TestSupport"],
                    linkerSettings: hostLinkerSettings),
        .testTarget(name: "LockmgrToolTests", dependencies: ["TestSupport"]),
    ] + nop.1 + sanlock.1 + sanlockTargets + interopTargets + libvirtTargets + pr.1 + prTargets + prTransportTargets
        + prLifecycleTargets + sanitizerTargets + benchReportTargets + fuzzTargets + deployTargets
)
