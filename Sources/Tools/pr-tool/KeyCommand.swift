import ArgumentParser
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// `pr-tool key`: the key the pr plugin registers for a VM on a host.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the pr plugin's reservation key of a VM on the host with this initiator name.")

    @OptionGroup var initiator: InitiatorOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Argument(help: ArgumentHelp("The VM's UUID.", valueName: "vm-uuid"))
    var uuid: String

    func validate() throws {
        guard UUIDBytes(uuid) != nil else { throw ValidationError("'\(uuid)' is not a UUID") }
    }

    func run() throws {
        guard let vm = UUIDBytes(uuid) else { throw ValidationError("'\(uuid)' is not a UUID") }
        let key = PRKey.exclusive(vm: vm, host: PRKey.hostPart(ofIdentity: initiator.initiator)).description
        say(json ? JSON.object([("key", .string(key))]).text : key)
    }
}
