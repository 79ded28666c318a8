import Foundation
import Harness
import Testing

/// Real libvirtd + QEMU with a sanlock lock plugin and a private sanlock
/// daemon, once with libvirt's own sanlock.so and once with ours: the same
/// scenarios (LibvirtdScenarios), the same assertions, so the two are shown
/// to behave the same. One libvirtd per machine, so everything here runs
/// serialized, one libvirtd per plugin suite.
@Suite(.serialized) enum LibvirtdSanlockTests {
    @Suite("libvirt's sanlock.so", .libvirtd(.libvirts)) struct LibvirtsPlugin {
        @Test("scenario", arguments: LibvirtdScenario.allCases)
        func scenario(_ scenario: LibvirtdScenario) throws { try scenario.run(on: scenarios()) }
    }

    @Suite("lockmgr's sanlock.so", .libvirtd(.lockmgrs)) struct LockmgrsPlugin {
        @Test("scenario", arguments: LibvirtdScenario.allCases)
        func scenario(_ scenario: LibvirtdScenario) throws { try scenario.run(on: scenarios()) }
    }

    /// The scenarios, on the libvirtd the enclosing suite's trait started.
    static func scenarios() throws -> LibvirtdScenarios {
        let session = try #require(LibvirtdTrait.current, "no libvirtd: the suite lacks its .libvirtd trait")
        return LibvirtdScenarios(host: session.host, plugin: session.plugin)
    }
}

/// Runs a suite on one libvirtd with `plugin`, started before its first
/// test (and checked to have mapped that very sanlock.so) and torn down
/// after its last, also when a test fails.
struct LibvirtdTrait: SuiteTrait, TestScoping {
    struct Session: Sendable {
        var host: LibvirtHost
        var plugin: SanlockPluginUnderTest
    }

    @TaskLocal static var current: Session?

    let plugin: SanlockPluginUnderTest

    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        let host = try LibvirtHost.start(pluginDir: plugin.pluginDir)
        defer { host.stop() }
        let expected = URL(fileURLWithPath: plugin.pluginFile).resolvingSymlinksInPath().path
        let loaded = try host.loadedLockPlugins()
        guard loaded == [expected] else {
            throw FixtureError("libvirtd maps \(loaded), not \(plugin.label) (\(expected))")
        }
        try await Self.$current.withValue(Session(host: host, plugin: plugin)) { try await function() }
    }
}

extension Trait where Self == LibvirtdTrait {
    static func libvirtd(_ plugin: SanlockPluginUnderTest) -> Self { Self(plugin: plugin) }
}
