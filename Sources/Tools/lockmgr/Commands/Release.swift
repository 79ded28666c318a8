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
        try printingState(host, object, resources) { manager throws(LockError) in try manager.release() }
    }
}

struct Inquire: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the state string of the locks an object's --pid currently holds.")

    @OptionGroup var host: HostOptions
    @OptionGroup var object: ObjectOptions
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        try printingState(host, object, resources) { manager throws(LockError) in try manager.inquire() }
    }
}

/// Runs a state-returning operation on a fresh manager and prints the state
/// alone on stdout (nothing when there is none), so `state=$(lockmgr release ...)` works.
func printingState(
    _ host: HostOptions, _ object: ObjectOptions, _ resources: ResourceOptions,
    _ operation: (LockManager) throws(LockError) -> String?
) throws {
    try reportingErrors(json: host.json) { () throws(LockError) in
        let manager = try openManager(
            host, object: object.object(defaultPid: UInt32(getpid())),
            resources: resources.resources)
        let state = try operation(manager)
        if host.json {
            print(JSON.object([("state", .string(state))]).text)
        } else if let state {
            print(state)
        }
    }
}
