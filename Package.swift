// swift-tools-version:6.0
import PackageDescription

// The package in the order of its architecture: the C ABI, the host
// library, the plugins (per plugin: protocol, transports, driver, export),
// the tools, then what only tests, benchmarks and fuzzers use. Each layer
// is one group below; add a target to the group of its layer.

// MARK: - Linker settings

// Release builds (what `make install` and `make deb` ship) resolve every
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

// Installed programs carry their own Swift runtime, and the Foundation that
// swift-argument-parser brings, as the plugins do: hypervisor hosts have no
// Swift toolchain, and `lockmgr failure-action` is what sanlock runs when a
// lease is lost. Tests/DeployTests checks every installed file without one.
// A static FoundationEssentials does not name the archives it needs itself.
// Sanitized test builds (make test-asan / test-tsan set LOCKMGR_SANITIZED_BUILD)
// keep the toolchain's shared runtime instead: -static-stdlib links with
// --exclude-libs ALL, which also hides the sanitizer runtime that the
// instrumented plugins a tool loads must find in the tool.
let sanitizedBuild = Context.environment["LOCKMGR_SANITIZED_BUILD"] != nil
let installedProgramLinkerSettings: [LinkerSetting] =
    sanitizedBuild
    ? []
    : [
        .unsafeFlags(["-static-stdlib"]), releaseBindNow,
        .linkedLibrary("_FoundationCollections"), .linkedLibrary("_FoundationCShims"), .linkedLibrary("swiftSynchronization"),
    ]

// Hosts export the sink our plugins report their errors to (error_channel.h).
// In a ThreadSanitizer build they also export the runtime's Swift access
// hooks, which instrumented plugins call and the toolchain's export list
// omits (no effect in other builds: the symbols do not exist there).
let hostLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(
        [
            "lockmgr_host_report_error", "__tsan_external_read", "__tsan_external_write",
            "__tsan_ignore_thread_begin", "__tsan_ignore_thread_end",
        ]
        .flatMap { ["-Xlinker", "--export-dynamic-symbol=\($0)"] })
]

/// A plugin: a Swift driver, a one-line C export table, and a dynamic
/// library product `liblockmgr_<name>.so`, installed as `lock_manager/<name>.so`.
func plugin(_ name: String, module: String, dependencies: [Target.Dependency] = []) -> (Product, [Target]) {
    let product = Product.library(
        name: "lockmgr_\(name)", type: .dynamic,
        targets: ["\(module)Plugin", "\(module)PluginExport"])
    let targets: [Target] = [
        .target(
            name: "\(module)Plugin",
            dependencies: ["LockDriver", "CLockDriver", "PluginEntry"] + dependencies,
            path: "Sources/Plugins/\(name)/Driver",
            linkerSettings: pluginLinkerSettings),
        .target(
            name: "\(module)PluginExport",
            dependencies: ["CLockDriver"],
            path: "Sources/Plugins/\(name)/Export"),
    ]
    return (product, targets)
}

// MARK: - ABI and host library

let coreTargets: [Target] = [
    // The C ABI: virLockDriver and friends, the export macro, the error channel.
    .target(name: "CLockDriver", path: "Sources/CLockDriver", linkerSettings: [.linkedLibrary("dl")]),
    // The host library and the plugin-side bridge (no Foundation: plugins link it).
    .target(name: "LockDriver", dependencies: ["CLockDriver"], path: "Sources/LockDriver"),
    // The C table's eight entry points, linked into every plugin (never into hosts).
    .target(name: "PluginEntry", dependencies: ["LockDriver", "CLockDriver"], path: "Sources/PluginEntry"),
]

// MARK: - Plugin nop

let nop = plugin("nop", module: "Nop")

// MARK: - Plugin sanlock

// CSanlock: libsanlock_client's headers plus a small C helper for
// `struct sanlk_resource` (its flexible disks[] array is not usable from Swift).
// SanlockCore: the pure logic (config, MD5 lease names, state strings, error
// texts, failure helper command), unit-tested without a daemon.
let sanlock = plugin("sanlock", module: "Sanlock", dependencies: ["SanlockCore", "CSanlock"])
let sanlockTargets: [Target] = [
    .target(
        name: "CSanlock", path: "Sources/Plugins/sanlock/CSanlock",
        linkerSettings: [.linkedLibrary("sanlock_client")]),
    .target(name: "SanlockCore", dependencies: ["LockDriver"], path: "Sources/Plugins/sanlock/Core"),
]

// MARK: - Plugin pr (SCSI-3 persistent reservations)

// PRProtocol: the pure protocol (CDB encoder, sense decoder, PR IN parsers,
// keys, state codec, config, decisions); no system calls, imports no transport.
// PRTransport: how commands reach a LU (iSCSI, SG_IO, qemu-pr-helper).
// PRKeeper: the keeper's record, store and launcher, beside its program pr-keeper.
let pr = plugin("pr", module: "PR", dependencies: ["PRProtocol", "PRTransport", "PRKeeper"])
let prTargets: [Target] = [
    .target(name: "PRProtocol", dependencies: ["LockDriver"], path: "Sources/Plugins/pr/Protocol"),
    // libiscsi behind a small C shim with millisecond deadlines.
    .target(name: "CISCSI", path: "Sources/Plugins/pr/CISCSI", linkerSettings: [.linkedLibrary("iscsi")]),
    // The system calls Swift cannot express cleanly: SG_IO ioctls and SCM_RIGHTS sendmsg.
    .target(name: "CPRShim", path: "Sources/Plugins/pr/CShim"),
    .target(
        name: "PRTransport", dependencies: ["PRProtocol", "LockDriver", "CISCSI", "CPRShim"],
        path: "Sources/Plugins/pr/Transport"),
    .target(
        name: "PRKeeper", dependencies: ["PRProtocol", "LockDriver"],
        path: "Sources/Plugins/pr/Keeper/Library"),
    // Started by the plugin, outlives its caller: carries its own Swift runtime like the plugins.
    .executableTarget(
        name: "pr-keeper", dependencies: ["PRKeeper", "PRProtocol", "PRTransport", "LockDriver"],
        path: "Sources/Plugins/pr/Keeper/Program",
        linkerSettings: [.unsafeFlags(["-static-stdlib"]), releaseBindNow]),
    // The per-host service keeping iSCSI sessions logged in (iscsi_session_socket).
    .executableTarget(
        name: "pr-sessiond", dependencies: ["PRProtocol", "PRTransport", "LockDriver"],
        path: "Sources/Plugins/pr/SessionDaemon",
        linkerSettings: [.unsafeFlags(["-static-stdlib"]), releaseBindNow]),
]

// MARK: - Tools

let toolTargets: [Target] = [
    .executableTarget(
        name: "lockmgr",
        dependencies: ["LockDriver", .product(name: "ArgumentParser", package: "swift-argument-parser")],
        path: "Sources/Tools/lockmgr",
        linkerSettings: hostLinkerSettings + installedProgramLinkerSettings),
    // Raw PR commands over iSCSI, and clear-host for a dead host's reservations.
    .executableTarget(
        name: "pr-tool",
        dependencies: [
            "PRProtocol", "PRTransport", "PRKeeper", "LockDriver",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ],
        path: "Sources/Tools/pr-tool",
        linkerSettings: installedProgramLinkerSettings),
]

// MARK: - Support shared by tests and benchmarks

// Harness: build products, temp dirs, commands, and the real daemons and
// targets (sanlock, tgtd, libvirtd) that tests and benchmarks start.
// CSanitizerSupport: runtime options and suppression files for sanitized
// runs, linked into everything that uses Harness (see Harness/Sanitizer.swift).
// libtirpc: the ASan runtime binds its XDR interceptors at start-up, and
// libvirt's RPC (lockd.so → virtlockd, loaded by the tests) calls them; with
// libtirpc only dlopen()ed later they would call NULL. Linked in plain
// builds too: it is libvirt0's own dependency, so always present here.
let supportTargets: [Target] = [
    .target(
        name: "CSanitizerSupport", path: "Support/SanitizerSupport", exclude: ["lsan.supp", "tsan.supp"],
        cSettings: [.define("LOCKMGR_SANITIZER_DIR", to: "\"\(Context.packageDirectory)/Support/SanitizerSupport\"")],
        linkerSettings: [.linkedLibrary("tirpc")]),
    .target(name: "Harness", dependencies: ["LockDriver", "CSanitizerSupport"], path: "Support/Harness"),
    // Test doubles for PR: a model LU (FakePRDevice), a fake SG_IO driver,
    // an in-process qemu-pr-helper, and a runner for the real one.
    .target(
        name: "PRTestSupport", dependencies: ["PRProtocol", "PRTransport", "CPRShim", "LockDriver", "Harness"],
        path: "Tests/PRTestSupport"),
    // Samples, percentiles, the section and scale-table writers of `make bench`.
    .target(name: "BenchSupport", path: "Benchmarks/BenchSupport"),
]

// MARK: - Tests

let testTargets: [Target] = [
    .testTarget(
        name: "LockDriverTests", dependencies: ["LockDriver", "CLockDriver", "Harness"],
        linkerSettings: hostLinkerSettings),
    .testTarget(name: "LockmgrToolTests", dependencies: ["Harness"]),
    // Every installed file without the Swift toolchain (a mount namespace hides it).
    .testTarget(name: "DeployTests", dependencies: ["LockDriver", "Harness"]),
    // C fixtures in Tests/InteropTests/C are compiled by the tests with gcc.
    .testTarget(
        name: "InteropTests", dependencies: ["LockDriver", "CLockDriver", "Harness"],
        exclude: ["C"], linkerSettings: hostLinkerSettings),
    .testTarget(
        name: "SanlockTests", dependencies: ["SanlockCore", "LockDriver", "Harness"],
        linkerSettings: hostLinkerSettings),
    // libvirtd + QEMU + a private sanlock daemon; uses the machine's one libvirtd.
    .testTarget(name: "LibvirtTests", dependencies: ["Harness"]),
    .testTarget(
        name: "PRCoreTests", dependencies: ["PRProtocol", "PRTransport", "PRKeeper", "LockDriver"],
        path: "Tests/PRCoreTests"),
    .testTarget(
        name: "PRTransportTests",
        dependencies: ["PRProtocol", "PRTransport", "CPRShim", "LockDriver", "PRTestSupport", "Harness"]),
    .testTarget(
        name: "PRTargetTests", dependencies: ["PRProtocol", "PRTransport", "PRKeeper", "LockDriver", "Harness"],
        path: "Tests/PRTargetTests", linkerSettings: hostLinkerSettings),
    // Every fuzz seed and every crash found, through the fuzzers' own bodies.
    .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzTargets", "LockDriver"]),
]

// MARK: - Benchmarks (`make bench`: one report, bench-results/report.md)

let benchmarkTargets: [Target] = [
    // Acquire/release/handover of our sanlock plugin, libvirt's, the raw calls and nop.
    .executableTarget(
        name: "sanlock-bench",
        dependencies: ["BenchSupport", "LockDriver", "SanlockCore", "CSanlock", "Harness"],
        path: "Benchmarks/sanlock-bench", linkerSettings: hostLinkerSettings),
    // Plugin load + init time and resident memory, ours against libvirt's.
    .executableTarget(name: "load-bench", dependencies: ["BenchSupport", "Harness"], path: "Benchmarks/load-bench"),
    // One load sample in a fresh C process, the same for every plugin.
    .executableTarget(
        name: "plugin-load-probe", path: "Benchmarks/plugin-load-probe",
        cSettings: [.headerSearchPath("../../Sources/CLockDriver/include")]),
    // libvirtd start and domain create/suspend/resume/destroy latency per plugin.
    .executableTarget(name: "libvirt-bench", dependencies: ["Harness", "BenchSupport"], path: "Benchmarks/libvirt-bench"),
    // The pr plugin .so through our host library against the raw PR command floor.
    .executableTarget(
        name: "pr-bench", dependencies: ["PRProtocol", "PRTransport", "PRKeeper", "LockDriver", "BenchSupport", "Harness"],
        path: "Benchmarks/pr-bench", linkerSettings: hostLinkerSettings),
]

// MARK: - Fuzzing (`make fuzz`, scripts/fuzz.sh)

// FuzzTargets: one body per parser of outside input, with the promises it
// checks. lockmgr-fuzz: libFuzzer's entry points when built by scripts/fuzz.sh
// (--sanitize=fuzzer -DLOCKMGR_FUZZING), a file replayer otherwise.
let fuzzTargets: [Target] = [
    .target(
        name: "FuzzTargets", dependencies: ["LockDriver", "SanlockCore", "PRProtocol", "PRTransport", "PRKeeper"],
        path: "Fuzz/Targets"),
    .executableTarget(name: "lockmgr-fuzz", dependencies: ["FuzzTargets", "LockDriver"], path: "Fuzz/Driver"),
]

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
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: coreTargets
        + nop.1
        + sanlock.1 + sanlockTargets
        + pr.1 + prTargets
        + toolTargets
        + supportTargets
        + testTargets
        + benchmarkTargets
        + fuzzTargets
)
