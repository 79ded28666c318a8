import ArgumentParser
import Glibc
import LockDriver

struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Release an object's locks held by --pid and print the state string describing them.")

    @OptionGroup var host: HostOptions
    @OptionGroup var object: ObjectOptions
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        try reportingErrors(json: host.json) { () throws(LockError) in
            let manager = try openManager(host, object: object.object(defaultPid: UInt32(getpid())),
                                          resources: resources.resources)
            printState(try manager.release(), json: host.json)
        }
    }
}

struct Inquire: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the state string of the locks an object's --pid currently holds.")

    @OptionGroup var host: HostOptions
    @OptionGroup var object: ObjectOptions
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        try reportingErrors(json: host.json) { () throws(LockError) in
            let manager = try openManager(host, object: object.object(defaultPid: UInt32(getpid())),
                                          resources: resources.resources)
            printState(try manager.inquire(), json: host.json)
        }
    }
}

/// States go to stdout alone on a line (nothing when there is none), so
/// `state=$(lockmgr release ...)` works.
func printState(_ state: String?, json: Bool) {
    if json {
        print(JSON.object([("state", .string(state))]).text)
    } else if let state {
        print(state)
    }
}
