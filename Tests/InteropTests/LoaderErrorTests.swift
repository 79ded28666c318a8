import Foundation
import Harness
import LockDriver
import Testing

/// Everything the host's loader refuses, refused with a configuration
/// error that names the plugin, the file and the reason. The broken
/// plugins are real shared objects built from C/bad_plugin.c, each with
/// exactly one defect.
@Suite struct LoaderErrorTests {
    private func load(_ path: String) -> LockError? {
        #expect(throws: LockError.self) { _ = try LockPlugin(path: path, configFile: nil) }
    }

    private func badPlugin(_ defect: String, named name: String) throws -> String {
        let dir = TempDir.make("bad-plugin")
        return try CFixtures.sharedObject(
            [CFixtures.source("bad_plugin.c"), CFixtures.errorChannelSource],
            named: "\(name).so", in: dir, defines: ["DEFECT_\(defect)"])
    }

    @Test func missingFile() throws {
        let path = "\(TempDir.make("loader"))/absent.so"
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'absent' not found: \(path): No such file or directory")
    }

    @Test func directoryInsteadOfFile() throws {
        let path = "\(TempDir.make("loader"))/dir.so"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'dir': \(path) is not a regular file")
    }

    @Test func fileThatIsNotASharedObject() throws {
        let path = "\(TempDir.make("loader"))/text.so"
        TempDir.write("this is a text file, not an ELF shared object\n", to: path)
        let error = load(path)
        #expect(error?.kind == .config)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("lock plugin 'text': cannot load \(path): "))
        // dlerror()'s own words follow, so the user sees why.
        #expect(message.contains("invalid ELF header") || message.contains("file too short"))
    }

    @Test func libraryWithoutTheDriverSymbol() throws {
        let path = try badPlugin("NO_SYMBOL", named: "nosymbol")
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'nosymbol': \(path) does not export virLockDriverImpl (not a lock driver plugin)")
    }

    @Test func wrongMajorVersion() throws {
        let path = try badPlugin("WRONG_MAJOR", named: "major2")
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'major2': ABI version 2.0.0 is not supported (this host speaks 1.0.0)")
    }

    @Test func nullCallback() throws {
        let path = try badPlugin("NULL_CALLBACK", named: "noacquire")
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'noacquire': callback 'drvAcquire' is NULL")
    }

    /// drvInit's -1 carries the plugin's own message (sent through the
    /// project's C error channel) and its kind.
    @Test func initFailureShowsThePluginsMessage() throws {
        let path = try badPlugin("INIT_FAILS", named: "badinit")
        let error = load(path)
        #expect(error?.kind == .config)
        #expect(error?.message == "lock plugin 'badinit' failed to initialise: bad-init: cannot read /nonexistent/bad.conf: no such file")
    }

    /// Names that could leave the plugin directory are refused before any
    /// path is built — even when the file they point at exists and is a
    /// good plugin.
    @Test(arguments: [
        ("../nop", "lock plugin name '../nop' may not start with '.'"),
        ("..", "lock plugin name '..' may not start with '.'"),
        (".nop", "lock plugin name '.nop' may not start with '.'"),
        ("inner/../../nop", "lock plugin name 'inner/../../nop' contains '/': names may use letters, digits, '_', '-' and '.' only"),
        ("/abs/nop", "lock plugin name '/abs/nop' contains '/': names may use letters, digits, '_', '-' and '.' only"),
        ("", "lock plugin name is empty"),
    ])
    func unsafeNames(name: String, message: String) throws {
        let root = TempDir.make("names")
        let pluginDir = "\(root)/plugins"
        try FileManager.default.createDirectory(atPath: "\(pluginDir)/inner", withIntermediateDirectories: true)
        // A real plugin one level up: "../nop" from pluginDir would reach it.
        try FileManager.default.createSymbolicLink(atPath: "\(root)/nop.so", withDestinationPath: BuildProducts.library("nop"))
        let error = #expect(throws: LockError.self) {
            _ = try LockPlugin.load(name: name, pluginDir: pluginDir, configFile: nil)
        }
        #expect(error?.kind == .config)
        #expect(error?.message == message)
    }
}
