import ArgumentParser
import Glibc
import LockDriver

// pr-tool: raw persistent reservation commands over one iSCSI session, for
// the demo, for poking at a target by hand, and as the independent checker
// a person can run; the pr plugin's key of a VM; and the explicit removal
// of a dead host's reservations. It shares PRProtocol's encoder/decoder and PRTransport's
// iSCSI transport but none of the plugin's algorithm.
@main
struct PRTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pr-tool",
        abstract: "SCSI-3 persistent reservation commands over iSCSI, and the pr plugin's administration.",
        discussion: """
            Without a subcommand, the arguments are those of `pr-tool run`.

            \(ExitStatus.summary)
            """,
        version: LockmgrVersion.string,
        subcommands: [RunCommands.self, KeyCommand.self, ClearHost.self],
        defaultSubcommand: RunCommands.self)
}

/// Options of the subcommands that open an iSCSI session.
struct InitiatorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("iSCSI initiator name (the I in the I_T nexus).", valueName: "iqn"))
    var initiator = "iqn.2026-01.lockmgr:pr-tool"
}

/// Writes a line to fd 1 unbuffered: the demo interleaves this tool's lines with others'.
func say(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

/// Writes a line to stderr.
func complain(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Reports a LockError (and, with --json, an error object on stdout) and
/// exits with the status of its kind.
func failure(_ error: LockError, json: Bool) -> ExitCode {
    complain("pr-tool: \(error.message)")
    if json {
        say(
            JSON.error(error).text)
    }
    return ExitCode(ExitStatus.code(for: error.kind))
}
