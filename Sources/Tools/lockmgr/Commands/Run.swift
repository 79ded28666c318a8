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
            locks are released and lockmgr exits 127 (not found) or 126 (not executable).
            The call timeout applies to lockmgr's plugin calls only: a stuck acquire ends
            lockmgr (and the locks bound to its process) before the command starts; no
            timer outlives the exec.

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
        let object = object.object(defaultPid: UInt32(getpid()))
        let resources = resources.resources
        var plugin: LockPlugin?
        var fd: Int32?
        try reportingErrors(json: host.json) { () throws(LockError) in
            // As libvirt does in its child: a manager for the acquire only,
            // freed before exec so nothing of it outlives into the command.
            let m = try openManager(host, object: object, resources: resources, flags: .started)
            fd = try m.acquire(state: acquire.state, flags: acquire.flags, action: acquire.failureAction)
            plugin = m.plugin
        }
        if let fd {
            // The lock fd must survive exec: the command, not lockmgr, holds it.
            if case .failure(let error) = CloseOnExec.clear(fd) {
                releaseForFailedStart(plugin, object, resources)
                printError(.internalError("cannot keep the lock fd \(fd) open across exec: \(error)"), json: host.json)
                throw ExitCode(ExitStatus.code(for: .internalError))
            }
            setenv("LOCKMGR_LOCK_FD", String(fd), 1)
        } else {
            unsetenv("LOCKMGR_LOCK_FD")
        }
        setenv("LOCKMGR_PLUGIN", plugin?.name ?? "", 1)

        let argv = CArgv(command)
        execvp(command[0], argv.pointers)
        let error = Errno.current
        argv.deallocate()
        releaseForFailedStart(plugin, object, resources)
        writeStderr("lockmgr: cannot run '\(command[0])': \(error)")
        throw ExitCode(error.code == ENOENT ? 127 : 126)
    }

    /// The command never started: give back what was taken on its behalf,
    /// through a fresh manager (libvirt's pattern), and say so if that fails.
    private func releaseForFailedStart(_ plugin: LockPlugin?, _ object: LockObject, _ resources: [LockResource]) {
        guard let plugin, !acquire.flags.contains(.registerOnly) else { return }
        do {
            let m = try plugin.makeManager(for: object)
            for r in resources { try m.addResource(r) }
            _ = try m.release()
        } catch {
            writeStderr("lockmgr: releasing the locks taken for the command failed; they may still be held: \(error.message)")
        }
    }
}
