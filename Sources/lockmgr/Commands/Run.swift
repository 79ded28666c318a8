import ArgumentParser
import Glibc
import LockDriver

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acquire the locks for a command, then exec it: the command owns the locks (same pid).",
        discussion: """
            lockmgr acquires in its own process with pid = its own pid, keeps any fd the
            plugin returns open across exec, and replaces itself with the command, so the
            process that runs is the process that holds the locks (libvirt's "between fork
            and exec"). The command sees LOCKMGR_LOCK_FD (when the plugin returned an fd)
            and LOCKMGR_PLUGIN in its environment. If the command cannot be started, the
            locks are released and lockmgr exits 127.

            Example: lockmgr run --uuid U --name vm1 --disk /dev/sdb -- qemu-system-x86_64 ...
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var object: ObjectOptions
    @OptionGroup var resources: ResourceOptions
    @OptionGroup var acquire: AcquireOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("missing command: lockmgr run [options] -- command [args...]") }
        if object.pid != nil { throw ValidationError("--pid is not allowed with run: the command's pid is lockmgr's own") }
    }

    func run() throws {
        var manager: LockManager?
        var fd: Int32?
        try reportingErrors(json: host.json) { () throws(LockError) in
            let m = try openManager(host, object: object.object(defaultPid: UInt32(getpid())),
                                    resources: resources.resources, flags: .started)
            fd = try m.acquire(state: acquire.state, flags: acquire.flags, action: acquire.failureAction)
            manager = m
        }
        if let fd {
            // The lock fd must survive exec: the command, not lockmgr, holds it.
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) }
            setenv("LOCKMGR_LOCK_FD", String(fd), 1)
        }
        setenv("LOCKMGR_PLUGIN", manager?.plugin.name ?? "", 1)

        let argv = command.map { strdup($0) } + [nil]
        execvp(command[0], argv)
        let error = Errno.current
        // Not started: give back what was taken on its behalf.
        if let manager, !acquire.flags.contains(.registerOnly) { _ = try? manager.release() }
        printError(.invalid("cannot run '\(command[0])': \(error)"), json: host.json)
        throw ExitCode(error.code == ENOENT ? 127 : 126)
    }
}
