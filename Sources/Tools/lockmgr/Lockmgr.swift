import ArgumentParser

@main
struct Lockmgr: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockmgr",
        abstract: "Take, release and inspect VM resource locks through libvirt-compatible lock plugins.",
        discussion: """
            The plugin comes from the host config (lockManager = "NAME"), or --plugin.
            Plugins are <plugin dir>/<NAME>.so; each reads <config dir>/<driver>-<NAME>.conf.

            Exit status: 0 success; 64 usage error or unsupported request; 65 invalid
            state string or parameters; 69 lock backend failure, or a plugin call that did
            not return within the call timeout (--timeout, LOCKMGR_CALL_TIMEOUT, call_timeout
            in lockmgr.conf; default 60 s, 0 for none); 70 internal error;
            75 lock conflict (held by someone else); 78 configuration error (host or
            plugin config, unknown plugin). `run` exits with the command's own status.
            """,
        subcommands: [Info.self, Acquire.self, Release.self, Inquire.self, Run.self, FailureActionCommand.self])
}
