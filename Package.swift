// swift-tools-version:6.0
import PackageDescription

// Plugins are loaded into C hosts (libvirtd) as well as ours: they carry
// their own Swift runtime and export nothing but virLockDriverImpl.
let pluginLinkerSettings: [LinkerSetting] = [
    .unsafeFlags([
        "-static-stdlib",
        "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/Plugins/exports.map",
    ]),
]

// Hosts export the sink our plugins report their errors to (error_channel.h).
let hostLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=lockmgr_host_report_error"]),
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
    // Not a test: acquire+release latency of our plugin, libvirt's and the raw API.
    .executableTarget(name: "sanlock-bench", dependencies: ["LockDriver", "SanlockCore", "CSanlock", "TestSupport"],
                      path: "Benchmarks/sanlock-bench", linkerSettings: hostLinkerSettings),
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
    .executableTarget(name: "libvirt-bench", dependencies: ["TestSupport"], path: "Benchmarks/libvirt-bench"),
]
// ---- end real libvirt -----------------------------------------------------

// MARK: pr plugin (SCSI-3 persistent reservations)
let pr = plugin("pr", module: "PR", dependencies: ["PRCore"])
let prTargets: [Target] = [
    // libiscsi behind a small C shim with millisecond deadlines.
    .target(name: "CISCSI", path: "Sources/Plugins/pr/CISCSI",
            linkerSettings: [.linkedLibrary("iscsi")]),
    .executableTarget(name: "pr-bench", dependencies: ["PRCore"], path: "Benchmarks/pr-bench"),
    .executableTarget(name: "pr-tool", dependencies: ["PRCore"], path: "Sources/Tools/pr-tool"),
    .testTarget(name: "PRCoreTests", dependencies: ["PRCore"], path: "Tests/PRCoreTests"),
    .testTarget(name: "PRTargetTests", dependencies: ["PRCore", "LockDriver", "TestSupport"],
                path: "Tests/PRTargetTests", linkerSettings: hostLinkerSettings),
]

// MARK: pr plugin lifecycle (issue 5): the keeper that ties reservations to the VM's process
// (its tests: Tests/PRTargetTests/PRLifecycleTests.swift)
let prLifecycleTargets: [Target] = [
    // Started by the plugin, outlives its caller: carries its own Swift runtime like the plugins.
    .executableTarget(name: "pr-keeper", dependencies: ["PRCore", "LockDriver"], path: "Sources/Plugins/pr/Keeper",
                      linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
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
            linkerSettings: hostLinkerSettings),
        // Helpers shared by the test targets: build products, temp dirs, commands, daemons.
        .target(name: "TestSupport", dependencies: ["LockDriver"], path: "Tests/TestSupport"),
        // The pr plugin's testable core: SCSI transports, PR commands, keys, state.
        .target(name: "PRCore", dependencies: ["LockDriver", "CPRShim", "CISCSI"], path: "Sources/Plugins/pr/Core"),
        .testTarget(name: "LockDriverTests", dependencies: ["LockDriver", "CLockDriver", "TestSupport"],
                    linkerSettings: hostLinkerSettings),
        .testTarget(name: "LockmgrToolTests", dependencies: ["TestSupport"]),
    ] + nop.1 + sanlock.1 + sanlockTargets + interopTargets + libvirtTargets + pr.1 + prTargets + prTransportTargets
        + prLifecycleTargets + fuzzTargets
)
