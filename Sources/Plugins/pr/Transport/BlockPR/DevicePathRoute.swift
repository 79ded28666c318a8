import Glibc
import LockDriver
import PRProtocol

/// How PR commands reach a device path (/dev/sdX, /dev/mapper/*, /dev/sgN,
/// /dev/nvmeXnY), decided once per device when it is opened, i.e. at acquire:
///
/// - an NVMe namespace (it answers NVME_IOCTL_ID): NVMeTransport, whatever
///   `block_pr` says (SG_IO cannot reach it): the PR ioctls for PR OUT, the
///   read ioctls or an NVMe Reservation Report for PR IN;
/// - an sg character node: SG_IO (the block-layer ioctls need a block device);
/// - a block device, `block_pr = never`: SG_IO;
/// - a block device, `block_pr = always`: the kernel's PR ioctls for PR OUT;
/// - a block device, `block_pr = auto`: the PR ioctls when REPORT
///   CAPABILITIES says PTPL_C (Linux's sd sets APTPL on every REGISTER it
///   sends for the ioctls, and a device without PTPL_C refuses it: tgt
///   does), else SG_IO.
///
/// With the PR ioctls, READ KEYS and READ RESERVATION go through Linux
/// 6.19's read ioctls when the kernel answers them, else through SG_IO.
/// `reason` says which was chosen and why: the command log prints it.
public struct DevicePathRoute {
    public let transport: SCSITransport
    public let reason: String

    public init(
        path: String, setting: BlockPRSetting, timeoutMilliseconds: UInt32,
        sgDriver: SGIODriver = KernelSGIO(), blockDriver: BlockPRDriver = KernelBlockPR(),
        nvmeDriver: NVMeDriver = KernelNVMe(), isBlockDevice: ((String) -> Bool)? = nil
    ) throws(LockError) {
        let block = (isBlockDevice ?? Self.isBlockDevice)(path)
        if block, let (nvme, why) = try NVMeTransport.open(path: path, blockDriver: blockDriver, nvmeDriver: nvmeDriver) {
            let reads =
                why.map { "NVMe Reservation Report through the passthrough ioctl for PR IN (the kernel's read ioctls: \($0))" }
                ?? "the kernel's read ioctls for PR IN (IOC_PR_READ_KEYS, IOC_PR_READ_RESERVATION)"
            (transport, reason) = (
                nvme, "NVMe namespace \(nvme.namespaceID): block PR ioctls for PR OUT (unregister: NVMe passthrough), \(reads)"
            )
            return
        }
        let sgio = try SGIOTransport(path: path, driver: sgDriver)
        func blockPR(_ why: String) -> (SCSITransport, String) {
            let unavailable = KernelPRReads.unavailable(driver: blockDriver, fd: sgio.fd)
            let reads = unavailable.map { "SG_IO for PR IN (\($0))" } ?? "the kernel's read ioctls for PR IN"
            return (
                BlockPRTransport(sgio: sgio, driver: blockDriver, kernelReads: unavailable == nil),
                "block PR ioctls for PR OUT, \(reads) (\(why))"
            )
        }
        switch (block, setting) {
        case (false, _):
            (transport, reason) = (sgio, "SG_IO (not a block device)")
        case (true, .never):
            (transport, reason) = (sgio, "SG_IO (block_pr = never)")
        case (true, .always):
            (transport, reason) = blockPR("block_pr = always")
        case (true, .auto):
            let capabilities: PRCapabilities
            do {
                capabilities = try PRDevice(transport: sgio, timeoutMilliseconds: timeoutMilliseconds).reportCapabilities()
            } catch {
                (transport, reason) = (sgio, "SG_IO (REPORT CAPABILITIES failed: \(error.message))")
                return
            }
            if capabilities.persistThroughPowerLossCapable {
                (transport, reason) = blockPR("block_pr = auto, device reports PTPL_C")
            } else {
                (transport, reason) = (
                    sgio,
                    "SG_IO (block_pr = auto: the device does not report PTPL_C, so it would refuse the APTPL the kernel sets on REGISTER)"
                )
            }
        }
    }

    public static func isBlockDevice(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFBLK
    }
}
