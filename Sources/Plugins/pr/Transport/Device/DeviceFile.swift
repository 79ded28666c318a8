import Glibc
import LockDriver
import PRProtocol

/// The open logical unit a transport sends commands to. The descriptor is
/// opened once, checked for the right kind of file, and closed on deinit.
final class DeviceFile {
    /// Which files a transport accepts.
    enum Accepts {
        /// Block devices (/dev/sdX, /dev/mapper/*) and character devices (/dev/sgN).
        case scsiDevices
        /// Also regular files: the qemu-pr-helper does the SG_IO itself and
        /// judges the descriptor, so a transport that only passes the fd on
        /// can be exercised with a plain file in tests.
        case scsiDevicesOrRegularFiles
    }

    let path: String
    let fd: Int32

    /// Opens `path` read-write, non-blocking (SG_IO must not wait for media)
    /// and close-on-exec (the fd must not leak into payloads we exec).
    init(path: String, accepts: Accepts) throws(LockError) {
        var before = stat()
        if stat(path, &before) != 0 {
            throw .config("cannot use \(path) as a SCSI device: \(Errno.current)")
        }
        // Checked before open(): opening a FIFO or a directory read-write has effects or fails obscurely.
        try Self.check(mode: before.st_mode, path: path, accepts: accepts)
        let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            throw .backend("cannot open SCSI device \(path): \(Errno.current)")
        }
        // Checked again on the descriptor: the path may have been replaced in between.
        var after = stat()
        if fstat(fd, &after) != 0 {
            let error = Errno.current
            close(fd)
            throw .backend("cannot stat SCSI device \(path): \(error)")
        }
        do {
            try Self.check(mode: after.st_mode, path: path, accepts: accepts)
        } catch {
            close(fd)
            throw error
        }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    private static func check(mode: mode_t, path: String, accepts: Accepts) throws(LockError) {
        switch mode & S_IFMT {
        case S_IFBLK, S_IFCHR:
            return
        case S_IFREG where accepts == .scsiDevicesOrRegularFiles:
            return
        default:
            throw .config("\(path) is not a SCSI device: it is \(kindName(mode)); expected a block device or an sg character device")
        }
    }

    private static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "a file of unknown type"
        }
    }
}
