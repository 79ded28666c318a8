import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

// pr-tool: raw persistent reservation commands over one iSCSI session, for
// the demo, for poking at a target by hand, and as the independent checker
// a person can run. It shares PRProtocol's encoder/decoder and PRTransport's iSCSI transport
// but none of the plugin's algorithm.
//
//   pr-tool --initiator IQN [--isid N] [--timeout MS] iscsi://HOST:PORT/IQN/LUN COMMAND...
//   pr-tool --initiator IQN key VM-UUID     (the pr plugin's key of that VM on that host)
//   pr-tool clear-host --config FILE (--dead-host IQN | --dead-host-id N) [--host-is-dead] [--log FILE] URL...
//                                            (drop a dead host's reservations: ClearHost.swift)
//
// Commands run in order on one session (one I_T nexus):
//   keys | reservation | rai KEY | register OLDKEY NEWKEY | reserve KEY TYPE
//   release KEY TYPE | preempt KEY SAKEY TYPE | clear KEY | write | sleep SECONDS
// Keys are hex; TYPE is 1..8. `write` prints GOOD or RESERVATION CONFLICT.

/// Unbuffered output: the demo interleaves this tool's lines with others'.
func say(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    let line = Array("pr-tool: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
if args.first == "clear-host" { exit(ClearHost.run(Array(args.dropFirst()))) }
var initiator = "iqn.2026-01.lockmgr:pr-tool"
var isid: UInt16 = 0
var timeout: UInt32 = 5000
while let first = args.first, first.hasPrefix("--") {
    args.removeFirst()
    guard let value = args.first else { fail("\(first) needs a value") }
    args.removeFirst()
    switch first {
    case "--initiator": initiator = value
    case "--isid": isid = UInt16(value) ?? 0
    case "--timeout": timeout = UInt32(value) ?? 5000
    default: fail("unknown option \(first)")
    }
}
guard !args.isEmpty else { fail("usage: pr-tool [--initiator IQN] [--isid N] [--timeout MS] URL COMMAND...") }
if args.first == "key" {
    guard args.count == 2, let uuid = UUIDBytes(args[1]) else { fail("usage: pr-tool --initiator IQN key VM-UUID") }
    say(PRKey.exclusive(vm: uuid, host: PRKey.hostPart(ofIdentity: initiator)).description)
    exit(0)
}
let url: ISCSIURL
do { url = try ISCSIURL(parsing: args.removeFirst()) } catch { fail(error.message) }
let pool = ISCSISessionPool(initiator: initiator, isidQualifier: isid)
let device = PRDevice(transport: ISCSITransport(url: url, pool: pool), timeoutMilliseconds: timeout)

@MainActor func next() -> String {
    guard !args.isEmpty else { fail("missing argument") }
    return args.removeFirst()
}
@MainActor func key() -> UInt64 {
    let s = next()
    guard let k = UInt64(s, radix: 16) else { fail("'\(s)' is not a hex key") }
    return k
}
@MainActor func type() -> ReservationType {
    let s = next()
    guard let v = UInt8(s), let t = ReservationType(rawValue: v) else { fail("'\(s)' is not a reservation type") }
    return t
}
func show(_ ok: Bool) { say(ok ? "GOOD" : "RESERVATION CONFLICT") }

do {
    while !args.isEmpty {
        switch next() {
        case "keys":
            let k = try device.readKeys()
            say("generation \(k.generation) keys [\(k.keys.map { PRKey(rawValue: $0).description }.joined(separator: " "))]")
        case "reservation":
            if let r = try device.readReservation().reservation {
                say("reserved by \(PRKey(rawValue: r.key)) type \(r.type.rawValue) (\(r.type))")
            } else {
                say("no reservation")
            }
        case "rai": show(try device.prOut(.registerAndIgnore, key: 0, serviceActionKey: key()))
        case "register": let old = key(); show(try device.prOut(.register, key: old, serviceActionKey: key()))
        case "reserve": let k = key(); show(try device.prOut(.reserve, type: type(), key: k))
        case "release": let k = key(); show(try device.prOut(.release, type: type(), key: k))
        case "preempt":
            let k = key(), sa = key()
            show(try device.prOut(.preempt, type: type(), key: k, serviceActionKey: sa))
        case "clear": show(try device.prOut(.clear, key: key()))
        case "write":
            let block = [UInt8](repeating: 0x5A, count: 512)
            switch try device.execute(.write10(lba: 0, blocks: 1, data: block)) {
            case .good: say("GOOD")
            case .reservationConflict: say("RESERVATION CONFLICT")
            case let other: say("\(other)")
            }
        case "sleep":
            let s = next()
            sleep(UInt32(s) ?? 1)
        case let other: fail("unknown command '\(other)'")
        }
    }
} catch {
    fail(error.message)
}
pool.closeAll()
