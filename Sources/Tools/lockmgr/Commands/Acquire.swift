import ArgumentParser
import Glibc
import LockDriver

struct Acquire: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acquire locks for an object on behalf of --pid (default: this process), then print the state.",
        discussion: """
            Locks a backend ties to a process (sanlock) are held for --pid; without
            --pid they belong to this short-lived command. To start a program holding
            its locks, use `lockmgr run`.
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var object: ObjectOptions
    @OptionGroup var resources: ResourceOptions
    @OptionGroup var acquire: AcquireOptions

    func run() throws {
        try reportingErrors(json: host.json) { () throws(LockError) in
            let manager = try openManager(
                host, object: object.object(defaultPid: UInt32(getpid())),
                resources: resources.resources)
            let fd = try manager.acquire(state: acquire.state, flags: acquire.flags, action: acquire.failureAction)
            // The state of what is now held, for a later migration or resume.
            let state = acquire.flags.contains(.registerOnly) ? nil : try manager.inquire()
            if host.json {
                print(
                    JSON.object([
                        ("acquired", .array(manager.resources.map(\.json))),
                        ("fd", .number(fd.map(Int64.init))), ("state", .string(state)),
                    ]).text)
            } else if let state {
                print(state)
            }
        }
    }
}
