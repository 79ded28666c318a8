import Glibc

public enum CloseOnExec {
    /// Lets `fd` survive exec: the lock fd `lockmgr run` hands to its
    /// command, the sanlock registration a VM process keeps.
    public static func clear(_ fd: Int32) -> Result<Void, Errno> {
        let flags = fcntl(fd, F_GETFD)
        guard flags >= 0, fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0 else { return .failure(.current) }
        return .success(())
    }
}
