import CLockDriver
import Glibc

/// posix_spawn with a clean signal mask and default dispositions (hosts
/// like libvirtd block signals in their threads; a keeper must not inherit
/// that), stdin from /dev/null, stdout and stderr appended to `output`.
public enum Spawn {
    public static func start(_ argv: [String], output: String) -> Result<pid_t, Errno> {
        guard let program = argv.first else { return .failure(Errno(EINVAL)) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of the caller's (libvirtd's, QEMU's) open files.
        lockmgr_spawn_closefrom(&actions, 3)

        let cArgs = CArgv(argv)
        defer { cArgs.deallocate() }
        var child: pid_t = 0
        var pointers = cArgs.pointers
        let rc = posix_spawn(&child, program, &actions, &attributes, &pointers, environ)
        guard rc == 0 else { return .failure(Errno(rc)) }
        return .success(child)
    }

    /// Waits for our own child `pid` (never any other) for up to `timeoutMilliseconds`;
    /// its exit status, 128+signal, or nil when it timed out (the child is
    /// then killed) or its status cannot be known (e.g. the host reaps
    /// children itself).
    public static func wait(_ pid: pid_t, timeoutMilliseconds: Int) -> Int32? {
        // A blocking waitpid has no deadline, so the wait is a poll: on a
        // pidfd, which wakes us the moment the child exits (a keeper start
        // is waited for inside a VM's start); where the kernel or a seccomp
        // filter refuses pidfd_open, in sleeps.
        let deadline = Deadline(millisecondsFromNow: UInt32(clamping: timeoutMilliseconds))
        // Opened before the first waitpid: if that finds `pid` still our
        // unreaped child, the pidfd cannot name a process that reused its number.
        let pidfd = lockmgr_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        while true {
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            if rc < 0 && errno == EINTR { continue }
            // ECHILD: the host reaps its children itself; the status is unknown.
            if rc < 0 { return nil }
            let left = deadline.remainingMilliseconds
            if left == 0 {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return nil
            }
            if pidfd >= 0 {
                var exited = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&exited, 1, left)
            } else {
                // Fine steps at first (a keeper is ready within milliseconds), coarser later.
                usleep(timeoutMilliseconds - Int(left) < 50 ? 250 : 5_000)
            }
        }
    }
}
