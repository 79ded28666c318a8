import ArgumentParser
import LockDriver

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load and initialise a plugin; print its ABI version and flags.",
        discussion: "PLUGIN is a name looked up in the plugin dir, or a path to any lock driver .so (libvirt's too).")

    @OptionGroup var host: HostOptions

    @Argument(help: ArgumentHelp("Plugin name or .so path (default: the configured plugin).", valueName: "plugin"))
    var plugin: String?

    func run() throws {
        try reportingErrors(json: host.json) { () throws(LockError) in
            let settings = try host.settings(plugin: plugin.flatMap { $0.containsByte("/") ? nil : $0 })
            let loaded: LockPlugin
            if let plugin, plugin.containsByte("/") {
                let name = LockPlugin.name(ofFile: plugin)
                let configFile = "\(settings.configDir)/\(settings.driver)-\(name).conf"
                loaded = try LockPlugin(path: plugin, configFile: configFile, callTimeout: settings.callTimeout)
            } else {
                loaded = try settings.loadPlugin()
            }
            let flagNames = loaded.flags.contains(.usesState) ? ["USES_STATE"] : []
            if host.json {
                print(
                    JSON.object([
                        ("name", .string(loaded.name)), ("path", .string(loaded.path)),
                        ("version", .string(loaded.version.description)), ("versionCode", .number(Int64(loaded.version.rawValue))),
                        ("flags", .array(flagNames.map { .string($0) })), ("config", .string(loaded.configFile)),
                    ]).text)
            } else {
                print("plugin:  \(loaded.name)")
                print("path:    \(loaded.path)")
                print("version: \(loaded.version) (\(loaded.version.rawValue))")
                print("flags:   \(flagNames.isEmpty ? "none" : flagNames.joined(separator: " "))")
                print("config:  \(loaded.configFile ?? "none")")
            }
        }
    }
}
