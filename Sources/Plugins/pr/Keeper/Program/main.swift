import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

// pr-keeper: one per VM holding pr reservations on this host. Started by
// the pr plugin after an acquire; see Keeper.swift for what it does.
//
//   pr-keeper start DIR UUID   fork a keeper into its own session and return
//                              once one holds DIR/UUID.pid (what the plugin runs)
//   pr-keeper watch DIR UUID   be the keeper, in the foreground

let args = Array(CommandLine.arguments.dropFirst())
let usage = "usage: pr-keeper start|watch KEEPER_DIR VM_UUID"
if args == ["--version"] { print(LockmgrVersion.string); exit(0) }
if args == ["--help"] { print("\(usage)\n(started by the pr lock plugin; see lockmgr-pr.conf(5))"); exit(0) }
guard args.count == 3, let vm = UUIDBytes(args[2]), args[1].hasPrefix("/") else {
    Logger.write(usage + "\n", to: 2)
    exit(2)
}
let store = KeeperStore(dir: args[1])
switch args[0] {
case "start": exit(Detach.start(store: store, vm: vm))
case "watch": Keeper(store: store, vm: vm).run()
default:
    Logger.write("pr-keeper: unknown mode '\(args[0])' (start or watch)\n", to: 2)
    exit(2)
}
