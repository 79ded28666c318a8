import ArgumentParser
import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// `pr-tool run URL COMMAND...`: raw PR commands in order on one session
/// (one I_T nexus). Every command is parsed before the first is sent: a
/// typo changes nothing on the disk.
struct RunCommands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Send raw PR commands, in order, over one iSCSI session.",
        discussion: """
            Commands: keys | reservation | rai KEY | register OLDKEY NEWKEY | reserve KEY TYPE
            | release KEY TYPE | preempt KEY SAKEY TYPE | clear KEY | write | sleep SECONDS.
            Keys are hex; TYPE is 1, 3, 5, 6, 7 or 8. PR OUT commands and `write` print
            GOOD or RESERVATION CONFLICT (a conflict is a result, not a failure).
            """)

    @OptionGroup var initiator: InitiatorOptions

    @Option(help: ArgumentHelp("ISID qualifier: another I_T nexus from the same initiator name.", valueName: "n"))
    var isid: UInt16 = 0

    @Option(help: ArgumentHelp("Deadline of each SCSI command, in milliseconds.", valueName: "ms"))
    var timeout: UInt32 = 5000

    @Flag(help: "Print one JSON object per command (and errors as JSON).")
    var json = false

    @Argument(help: ArgumentHelp("The LUN: iscsi://host[:port]/target-iqn/lun.", valueName: "url"))
    var url: String

    @Argument(parsing: .remaining, help: ArgumentHelp("Commands, run in order.", valueName: "command"))
    var words: [String] = []

    func validate() throws {
        if ["key", "clear-host"].contains(url) {
            throw ValidationError("options go after the subcommand: pr-tool \(url) --initiator IQN ...")
        }
        do throws(LockError) { _ = try ISCSIURL(parsing: url) } catch { throw ValidationError(error.message) }
        guard !words.isEmpty else { throw ValidationError("name at least one command") }
        _ = try RawCommand.parse(words)
    }

    func run() throws {
        let commands = try RawCommand.parse(words)
        do throws(LockError) {
            let pool = ISCSISessionPool(initiator: initiator.initiator, isidQualifier: isid)
            defer { pool.closeAll() }
            let device = PRDevice(
                transport: ISCSITransport(url: try ISCSIURL(parsing: url), pool: pool),
                timeoutMilliseconds: timeout)
            for command in commands {
                let fields = try command.send(to: device)
                if json {
                    say(JSON.object([("command", .string(command.name))] + fields.json).text)
                } else if let text = fields.text {
                    say(text)
                }
            }
        } catch {
            throw failure(error, json: json)
        }
    }
}

/// One raw command, parsed.
enum RawCommand {
    case keys, reservation, write
    case rai(UInt64)
    case register(UInt64, UInt64)
    case reserve(UInt64, ReservationType)
    case release(UInt64, ReservationType)
    case preempt(UInt64, UInt64, ReservationType)
    case clear(UInt64)
    case sleep(UInt32)

    var name: String {
        switch self {
        case .keys: "keys"
        case .reservation: "reservation"
        case .write: "write"
        case .rai: "rai"
        case .register: "register"
        case .reserve: "reserve"
        case .release: "release"
        case .preempt: "preempt"
        case .clear: "clear"
        case .sleep: "sleep"
        }
    }

    static func parse(_ words: [String]) throws(ValidationError) -> [RawCommand] {
        var rest = words[...]
        func next(_ what: String, of command: String) throws(ValidationError) -> String {
            guard let w = rest.popFirst() else { throw ValidationError("'\(command)' needs \(what)") }
            return w
        }
        func key(_ command: String) throws(ValidationError) -> UInt64 {
            let s = try next("a hex key", of: command)
            guard let k = UInt64(s, radix: 16) else { throw ValidationError("\(command): '\(s)' is not a hex key") }
            return k
        }
        func type(_ command: String) throws(ValidationError) -> ReservationType {
            let s = try next("a reservation type", of: command)
            guard let v = UInt8(s), let t = ReservationType(rawValue: v) else {
                throw ValidationError("\(command): '\(s)' is not a reservation type (1, 3, 5, 6, 7 or 8)")
            }
            return t
        }
        var commands: [RawCommand] = []
        while let word = rest.popFirst() {
            switch word {
            case "keys": commands.append(.keys)
            case "reservation": commands.append(.reservation)
            case "write": commands.append(.write)
            case "rai": commands.append(.rai(try key(word)))
            case "register": let old = try key(word); commands.append(.register(old, try key(word)))
            case "reserve": let k = try key(word); commands.append(.reserve(k, try type(word)))
            case "release": let k = try key(word); commands.append(.release(k, try type(word)))
            case "preempt":
                let k = try key(word), sa = try key(word)
                commands.append(.preempt(k, sa, try type(word)))
            case "clear": commands.append(.clear(try key(word)))
            case "sleep":
                let s = try next("seconds", of: word)
                guard let seconds = UInt32(s) else { throw ValidationError("sleep: '\(s)' is not a number of seconds") }
                commands.append(.sleep(seconds))
            default: throw ValidationError("unknown command '\(word)'")
            }
        }
        return commands
    }

    /// Sends the command; its result as text and as JSON fields.
    func send(to device: PRDevice) throws(LockError) -> Result {
        switch self {
        case .keys:
            let k = try device.readKeys()
            let keys = k.keys.map { PRKey(rawValue: $0).description }
            return Result(
                text: "generation \(k.generation) keys [\(keys.joined(separator: " "))]",
                json: [("generation", .number(Int64(k.generation))), ("keys", .array(keys.map { .string($0) }))])
        case .reservation:
            guard let r = try device.readReservation().reservation else {
                return Result(text: "no reservation", json: [("reservation", .string(nil))])
            }
            let key = PRKey(rawValue: r.key).description
            return Result(
                text: "reserved by \(key) type \(r.type.rawValue) (\(r.type))",
                json: [
                    (
                        "reservation",
                        .object([
                            ("key", .string(key)), ("type", .number(Int64(r.type.rawValue))),
                            ("name", .string(r.type.description)),
                        ])
                    )
                ])
        case .rai(let k): return .status(try device.prOut(.registerAndIgnore, key: 0, serviceActionKey: k))
        case .register(let old, let new): return .status(try device.prOut(.register, key: old, serviceActionKey: new))
        case .reserve(let k, let t): return .status(try device.prOut(.reserve, type: t, key: k))
        case .release(let k, let t): return .status(try device.prOut(.release, type: t, key: k))
        case .preempt(let k, let sa, let t): return .status(try device.prOut(.preempt, type: t, key: k, serviceActionKey: sa))
        case .clear(let k): return .status(try device.prOut(.clear, key: k))
        case .write:
            let block = [UInt8](repeating: 0x5A, count: 512)
            switch try device.execute(.write10(lba: 0, blocks: 1, data: block)) {
            case .good: return .status(true)
            case .reservationConflict: return .status(false)
            case let other: return Result(text: "\(other)", json: [("status", .string("\(other)"))])
            }
        case .sleep(let seconds):
            Glibc.sleep(seconds)
            return Result(text: nil, json: [("slept", .number(Int64(seconds)))])
        }
    }

    struct Result {
        var text: String?  // nil: nothing to say (sleep)
        var json: [(String, JSON)]

        static func status(_ good: Bool) -> Result {
            let s = good ? "GOOD" : "RESERVATION CONFLICT"
            return Result(text: s, json: [("status", .string(s))])
        }
    }
}
