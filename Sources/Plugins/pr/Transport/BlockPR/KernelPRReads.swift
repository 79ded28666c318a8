import Glibc
import LockDriver
import PRProtocol

/// PR IN through Linux 6.19's read ioctls (IOC_PR_READ_KEYS,
/// IOC_PR_READ_RESERVATION), which sd, nvme and dm-multipath implement:
/// the answers come back as SPC's READ KEYS / READ RESERVATION data, so
/// the one decoder and the one decision layer read them as from any
/// other transport.
struct KernelPRReads {
    let driver: BlockPRDriver
    let fd: Int32
    let device: String

    /// Whether this kernel and device answer the read ioctls, asked once
    /// per device when it is opened: nil if they do, else why not (for the
    /// route's reason). ENOTTY: a kernel before 6.19; EOPNOTSUPP: a driver
    /// without them; EINVAL: refused as unknown.
    static func unavailable(driver: BlockPRDriver, fd: Int32) -> String? {
        switch driver.readReservation(fd: fd) {
        case .success: return nil
        case .failure(let failure) where failure.result < 0: return "IOC_PR_READ_RESERVATION: \(Errno(-failure.result))"
        case .failure(let failure): return "IOC_PR_READ_RESERVATION returned status \(failure.result)"
        }
    }

    /// The most keys asked for (the kernel's PR_KEYS_MAX).
    static let maxKeys = 1 << 16

    func send(_ action: PRInAction) throws(LockError) -> SCSIResponse {
        switch action {
        case .readKeys:
            var capacity = 256
            while true {
                let answer: KernelPRKeys
                switch driver.readKeys(fd: fd, capacity: capacity) {
                case .success(let a): answer = a
                case .failure(let f): throw Self.error(f.result, ioctl: "IOC_PR_READ_KEYS", device: device)
                }
                if answer.available > answer.keys.count && capacity < Self.maxKeys {
                    capacity = min(answer.available, Self.maxKeys)
                    continue
                }
                guard answer.available <= answer.keys.count else {
                    throw .backend(
                        "\(device): IOC_PR_READ_KEYS announces \(answer.available) keys, more than the \(Self.maxKeys) the kernel hands out"
                    )
                }
                return SCSIResponse(status: 0, data: RegisteredKeys(generation: answer.generation, keys: answer.keys).encoded)
            }
        case .readReservation:
            let answer: KernelPRReservation
            switch driver.readReservation(fd: fd) {
            case .success(let a): answer = a
            case .failure(let f): throw Self.error(f.result, ioctl: "IOC_PR_READ_RESERVATION", device: device)
            }
            guard answer.type != 0 else {
                return SCSIResponse(status: 0, data: ReservationStatus(generation: answer.generation, reservation: nil).encoded)
            }
            guard answer.type <= UInt32(UInt8.max), let type = ReservationType(prTypeCode: UInt8(answer.type)) else {
                throw .backend("\(device): IOC_PR_READ_RESERVATION reports unknown reservation type \(answer.type)")
            }
            // SPC's convention, which the decision layer reads: no holder key under the all-registrants types.
            let holder = ReservationStatus.Holder(key: type.isAllRegistrants ? 0 : answer.key, type: type)
            return SCSIResponse(status: 0, data: ReservationStatus(generation: answer.generation, reservation: holder).encoded)
        case .reportCapabilities:
            throw .internalError("\(device): REPORT CAPABILITIES has no block-layer ioctl")
        case .readFullStatus:
            // No read ioctl gives it: answered as by a device without it.
            return .invalidFieldInCDB
        }
    }

    static func error(_ result: Int32, ioctl: String, device: String) -> LockError {
        if result < 0 { return .backend("\(device): \(ioctl) failed: \(Errno(-result))") }
        if result >> 16 != 0 { return .backend("\(device): \(ioctl) was not delivered: path status \("0x" + String(result, radix: 16))") }
        return .backend("\(device): \(ioctl) failed with status \("0x" + String(result, radix: 16))")
    }
}
