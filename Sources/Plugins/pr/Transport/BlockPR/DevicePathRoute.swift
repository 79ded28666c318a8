import Glibc
import LockDriver
import PRProtocol

/// How PR commands reach a device path (/dev/sdX, /dev/mapper/*, /dev/sgN),
/// decided once per device when it is opened, i.e. at acquire:
///
/// - an sg character node: SG_IO (the block-layer ioctls need a block device);
/// - a block device, `block_pr = never`: SG_IO;
/// - a block device, `block_pr = always`: the kernel's PR ioctls for PR OUT;
/// - a block device, `block_pr = auto`: the PR ioctls when REPORT
///   CAPABILITIES says PTPL_C (Linux's sd sets APTPL on every REGISTER it
///   sends for the ioctls, and a device without PTPL_C refuses it: tgt
///   does), else SG_IO.
///
/// PR IN goes through SG_IO either way (the read ioctls are Linux 6.19's).
/// `reason` says which was chosen and why: the command log prints it.
public struct DevicePathRoute {
    public let transport: SCSITransport
    public let reason: String

    public init(
        path: String, setting: BlockPRSetting, timeoutMilliseconds: UInt32,
        sgDriver: SGIODriver = KernelSGIO(), blockDriver: BlockPRDriver = KernelBlockPR(),
        isBlockDevice: ((String) -> Bool)? = nil
    ) throws(LockError) {
        let sgio = try SGIOTransport(path: path, driver: sgDriver)
        let block = (isBlockDevice ?? Self.isBlockDevice)(path)
        switch (block, setting) {
        case (false, _):
            (transport, reason) = (sgio, "SG_IO (not a block device)")
        case (true, .never):
            (transport, reason) = (sgio, "SG_IO (block_pr = never)")
        case (true, .always):
            (transport, reason) = (
                BlockPRTransport(sgio: sgio, driver: blockDriver),
                "block PR ioctls for PR OUT, SG_IO for PR IN (block_pr = always)"
            )
        case (true, .auto):
            let capabilities: PRCapabilities
            do {
                capabilities = try PRDevice(transport: sgio, timeoutMilliseconds: timeoutMilliseconds).reportCapabilities()
            } catch {
                (transport, reason) = (sgio, "SG_IO (REPORT CAPABILITIES failed: \(error.message))")
                return
            }
            if capabilities.persistThroughPowerLossCapable {
                (transport, reason) = (
                    BlockPRTransport(sgio: sgio, driver: blockDriver),
                    "block PR ioctls for PR OUT, SG_IO for PR IN (block_pr = auto, device reports PTPL_C)"
                )
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
