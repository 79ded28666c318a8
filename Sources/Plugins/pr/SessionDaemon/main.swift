import Glibc
import LockDriver

// pr-sessiond: keeps this host's iSCSI sessions to its PR targets logged
// in, so that a pr plugin call (one per libvirt lock operation, each with
// a fresh manager) pays no login. It holds no lock state: reservations
// live on the LUs and their owners in the keepers' records, so a restart
// loses nothing, and a plugin that cannot reach it logs in itself.
//
//   pr-sessiond --socket PATH   listen on PATH
//   pr-sessiond                 listen on the socket systemd passes
//                               (lockmgr-pr-sessiond.socket)

let usage = "usage: pr-sessiond [--socket PATH]"
let args = Array(CommandLine.arguments.dropFirst())
let log = Logger(ident: "lockmgr-pr-sessiond")
if args == ["--version"] { print(LockmgrVersion.string); exit(0) }
if args == ["--help"] {
    print("\(usage)\n(the pr lock plugin's iSCSI session service; see lockmgr-pr.conf(5), iscsi_session_socket)")
    exit(0)
}

let listener: Int32
switch args.count {
case 0:
    guard let fd = Listener.fromSystemd() else {
        Logger.write("pr-sessiond: no socket: pass --socket PATH, or start it from lockmgr-pr-sessiond.socket\n", to: 2)
        exit(ExitStatus.usage)
    }
    listener = fd
case 2 where args[0] == "--socket" && args[1].hasPrefix("/"):
    do {
        listener = try Listener.bind(path: args[1])
    } catch {
        Logger.write("pr-sessiond: \(error)\n", to: 2)
        exit(ExitStatus.unavailable)
    }
default:
    Logger.write("\(usage)\n", to: 2)
    exit(ExitStatus.usage)
}

// A plugin that hangs up early must not kill us with SIGPIPE.
signal(SIGPIPE, SIG_IGN)
let table = SessionTable(log: log)
log.log("serving the pr plugin's iSCSI sessions (\(LockmgrVersion.string))", priority: .info)
Workers.run(listener: listener, table: table, log: log)
