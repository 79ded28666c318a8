import Foundation
import Harness
import Testing

/// The nop plugin built by `swift build`, driven by a plain C host
/// (C/abi_host.c) that loads it the way libvirt does: no Swift on the host
/// side, no shared headers beyond the ABI, no error sink exported.
@Suite struct CHostTests {
    private func host() throws -> (program: String, plugin: String) {
        let plugin = BuildProducts.library("nop")
        try #require(FileManager.default.fileExists(atPath: plugin), "\(plugin) is missing: run `swift build` before `swift test`")
        let program = try CFixtures.executable([CFixtures.source("abi_host.c")], named: "abi_host", in: TempDir.make("abi-host"))
        return (program, plugin)
    }

    @Test func everyCallbackThroughTheCTable() throws {
        let (program, plugin) = try host()
        let result = Command.run([program, plugin, "cycle"], timeout: 30)
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.split(separator: "\n").map(String.init) == [
                "version 1000000",
                "flags 0",
                "init 0",
                "new 0",
                "privateData set",
                "add disk 0",
                "add lease 0",
                "acquire 0 fd -1",
                "inquire 0 state NULL",
                "release 0 state NULL",
                "free privateData null",
                "deinit 0",
                "dlclose 0",
            ])
        #expect(result.stderr == "")
    }

    /// With no host sink and no libvirt in the process, the plugin's error
    /// message still reaches the user: error_channel.c falls back to stderr.
    @Test func unknownFlagsFailWithTheMessageOnStderr() throws {
        let (program, plugin) = try host()
        let result = Command.run([program, plugin, "badflags"], timeout: 30)
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // -1, and the fd left untouched: nothing half-done.
        #expect(lines.contains("acquire -1 fd -2"))
        #expect(lines.suffix(3) == ["free privateData null", "deinit 0", "dlclose 0"])
        #expect(result.stderr == "lock driver error: nop: drvAcquire: unsupported flags 0x80\n")
    }
}
