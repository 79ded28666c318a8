import ArgumentParser
import LockDriver

@main
struct Lockmgr: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockmgr",
        abstract: "Take, release and inspect VM resource locks through libvirt-compatible lock plugins.",
        discussion: """
            The plugin comes from the host config (lockManager = "NAME"), or --plugin.
            Plugins are <plugin dir>/<NAME>.so; each reads <config dir>/<driver>-<NAME>.conf.

            A plugin call that does not return within the call timeout (--timeout,
            LOCKMGR_CALL_TIMEOUT, call_timeout in lockmgr.conf; default 60 s, 0 for none)
            ends lockmgr with status 69.

            \(ExitStatus.summary) `run` exits with the command's own status.
            """,
        version: LockmgrVersion.string,
        subcommands: [Info.self, Acquire.self, Release.self, Inquire.self, Run.self, FailureActionCommand.self])
}
