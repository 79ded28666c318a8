import CPRShim
import LockDriver
import PRProtocol

/// The two ioctls SGIOTransport needs. The kernel implementation is the
/// production path; tests install a fake that plays the kernel's part on
/// the same `sg_io_hdr_t`, because the test machine has no sg driver.
public protocol SGIODriver: AnyObject, Sendable {
    /// ioctl(SG_GET_VERSION_NUM): answered by sd, sg and dm devices, not by
    /// anything that is not SCSI.
    func versionNumber(fd: Int32) -> Result<Int32, Errno>

    /// ioctl(SG_IO): reads the request fields of `header` and the buffers it
    /// points at, fills the reply fields (status, host/driver status,
    /// sb_len_wr, resid, duration, info) and the data-in and sense buffers.
    func execute(fd: Int32, header: inout sg_io_hdr_t) -> Result<Void, Errno>
}

/// The real ioctls, through the C shim.
public final class KernelSGIO: SGIODriver, Sendable {
    public init() {}

    public func versionNumber(fd: Int32) -> Result<Int32, Errno> {
        var version: Int32 = 0
        let rc = lockmgr_sg_get_version(fd, &version)
        return rc == 0 ? .success(version) : .failure(Errno(-rc))
    }

    public func execute(fd: Int32, header: inout sg_io_hdr_t) -> Result<Void, Errno> {
        let rc = lockmgr_sg_io(fd, &header)
        return rc == 0 ? .success(()) : .failure(Errno(-rc))
    }
}
