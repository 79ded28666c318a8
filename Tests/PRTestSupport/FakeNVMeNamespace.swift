import Foundation
import Glibc
import LockDriver
import PRProtocol
import PRTransport

/// FAKE: one NVMe namespace with reservations, for NVMeTransport's unit
/// tests (this machine has no NVMe). It keeps them as Linux's nvmet does
/// (drivers/nvme/target/pr.c, read for this): the registrant is the host
/// (its 128-bit host ID), one key per host; Register refuses a host
/// already registered with another key; a Preempt by the holder only
/// changes the type; only the extended Reservation Report is answered.
/// Each host reaches it through a `FakeNVMeHost`, which plays the
/// kernel's host side. The lab (Tests/Lab, scenario nvme_*) runs the real
/// nvmet and nvme-tcp.
public final class FakeNVMeNamespace: @unchecked Sendable {
    public struct Registrant: Equatable, Sendable {
        public var hostID: [UInt8]
        public var key: UInt64
    }

    private let lock = NSLock()
    private var registrantList: [Registrant] = []
    private var holderID: [UInt8]?
    private var rtype: UInt8 = 0
    private var generationValue: UInt32 = 0

    public init() {}

    public var registrants: [Registrant] { lock.withLock { registrantList } }
    /// The holder's key and the NVMe type, nil without a reservation.
    public var reservation: (key: UInt64, type: UInt8)? {
        lock.withLock {
            guard let id = holderID, let r = registrantList.first(where: { $0.hostID == id }) else { return nil }
            return (r.key, rtype)
        }
    }

    public static let conflict: UInt16 = 0x4083  // RESERVATION CONFLICT | DNR
    static let invalidField: UInt16 = 0x4002
    static let hostIDInconsistent: UInt16 = 0x4018

    /// Reservation Register: action 0 register, 1 unregister, 2 replace.
    func register(host: [UInt8], action: UInt32, ignoreKey: Bool, currentKey: UInt64, newKey: UInt64) -> UInt16 {
        lock.withLock {
            let index = registrantList.firstIndex { $0.hostID == host }
            var status: UInt16 = 0
            switch action {
            case 0:
                if let index {
                    status = registrantList[index].key == newKey ? 0 : Self.conflict
                } else {
                    registrantList.append(Registrant(hostID: host, key: newKey))
                }
            case 1, 2:
                guard let index, ignoreKey || registrantList[index].key == currentKey else { return Self.conflict }
                if action == 1 { unregister(at: index) } else { registrantList[index].key = newKey }
            default:
                status = Self.invalidField
            }
            if status == 0 { generationValue &+= 1 }
            return status
        }
    }

    private func unregister(at index: Int) {
        let gone = registrantList.remove(at: index)
        guard holderID == gone.hostID else { return }
        if rtype == 5 || rtype == 6, let next = registrantList.first {
            holderID = next.hostID
        } else {
            holderID = nil
            rtype = 0
        }
    }

    /// Reservation Acquire: action 0 acquire, 1 preempt, 2 preempt and abort.
    func acquire(host: [UInt8], action: UInt32, type: UInt8, ignoreKey: Bool, currentKey: UInt64, preemptKey: UInt64) -> UInt16 {
        lock.withLock {
            guard !ignoreKey, (1...6).contains(type) else { return Self.invalidField }
            guard registrantList.contains(where: { $0.hostID == host && $0.key == currentKey }) else { return Self.conflict }
            if action == 0 {
                if let holderID { return holderID == host && rtype == type ? 0 : Self.conflict }
                (holderID, rtype) = (host, type)
                return 0
            }
            defer { generationValue &+= 1 }
            guard let holder = holderID else { return dropAll(withKey: preemptKey, except: nil) }
            if rtype == 5 || rtype == 6 {
                if preemptKey == 0 {
                    (holderID, rtype) = (host, type)
                    registrantList.removeAll { $0.hostID != host }
                    return 0
                }
                return dropAll(withKey: preemptKey, except: nil)
            }
            if holder == host {
                rtype = type  // nvmet: the holder preempting only changes the type
                return 0
            }
            if registrantList.first(where: { $0.hostID == holder })?.key == preemptKey {
                (holderID, rtype) = (host, type)
                _ = dropAll(withKey: preemptKey, except: host)
                return 0
            }
            return preemptKey != 0 ? dropAll(withKey: preemptKey, except: nil) : Self.invalidField
        }
    }

    private func dropAll(withKey key: UInt64, except host: [UInt8]?) -> UInt16 {
        var found = false
        while let i = registrantList.firstIndex(where: { $0.key == key && $0.hostID != host }) {
            found = true
            unregister(at: i)
        }
        return found || host != nil ? 0 : Self.conflict
    }

    /// Reservation Release: action 0 release, 1 clear.
    func release(host: [UInt8], action: UInt32, type: UInt8, currentKey: UInt64) -> UInt16 {
        lock.withLock {
            guard registrantList.contains(where: { $0.hostID == host && $0.key == currentKey }) else { return Self.conflict }
            if action == 1 {
                registrantList.removeAll()
                (holderID, rtype) = (nil, 0)
                generationValue &+= 1
                return 0
            }
            guard holderID == host else { return 0 }
            guard rtype == type else { return Self.conflict }
            (holderID, rtype) = (nil, 0)
            return 0
        }
    }

    /// The extended Reservation Report, as nvmet fills it.
    public var report: NVMeReservationReport {
        lock.withLock {
            let all = rtype == 5 || rtype == 6
            return NVMeReservationReport(
                extended: true, generation: generationValue, type: holderID == nil ? 0 : rtype,
                registrants: registrantList.map {
                    .init(controllerID: 0xFFFF, holdsReservation: all || $0.hostID == holderID, hostID: $0.hostID, key: $0.key)
                })
        }
    }

    /// Whether a write from `host` gets through (nvmet_pr_check_cmd_access).
    public func canWrite(host: [UInt8]) -> Bool {
        lock.withLock {
            guard let holderID, holderID != host else { return true }
            switch rtype {
            case 1, 2: return false
            default: return registrantList.contains { $0.hostID == host }
            }
        }
    }

    public func host(_ id: UInt8, readIoctls: Bool = false, linux6_1Status: Bool = false) -> FakeNVMeHost {
        FakeNVMeHost(namespace: self, hostID: [UInt8](repeating: id, count: 16), readIoctls: readIoctls, linux6_1Status: linux6_1Status)
    }
}

/// FAKE: one host's kernel in front of a FakeNVMeNamespace: the block
/// layer's PR ioctls as drivers/nvme/host/pr.c turns them into NVMe
/// commands (register: "replace" when an old key is given, else
/// "register"; never "unregister"), their status as Linux 6.5+ returns it
/// (PR_STS_*) or as 6.1 does (the NVMe status); the read ioctls if
/// `readIoctls` (Linux 6.19+), else ENOTTY; NVME_IOCTL_ID and the
/// passthrough ioctl.
public final class FakeNVMeHost: BlockPRDriver, NVMeDriver, @unchecked Sendable {
    public let namespace: FakeNVMeNamespace
    public let hostID: [UInt8]
    let readIoctls: Bool
    let linux6_1Status: Bool
    private let lock = NSLock()
    private var recorded: [String] = []
    /// Answers every call with this (a -errno): the target is gone.
    public var unreachable: Int32?

    init(namespace: FakeNVMeNamespace, hostID: [UInt8], readIoctls: Bool, linux6_1Status: Bool) {
        self.namespace = namespace
        self.hostID = hostID
        self.readIoctls = readIoctls
        self.linux6_1Status = linux6_1Status
    }

    /// What reached the kernel, in order: ioctl names and passthrough opcodes.
    public var requests: [String] { lock.withLock { recorded } }
    private func record(_ s: String) { lock.withLock { recorded.append(s) } }

    public func namespaceID(fd: Int32) -> Int32 { unreachable == -EWOULDBLOCK ? -EWOULDBLOCK : 1 }

    private func status(_ nvme: UInt16) -> Int32 {
        if linux6_1Status || nvme == 0 { return Int32(nvme) }
        switch nvme & 0x7FF {
        case 0x083: return 0x18  // PR_STS_RESERVATION_CONFLICT
        case 0x002: return -EINVAL
        default: return 0x02  // PR_STS_IOERR
        }
    }

    public func call(fd: Int32, _ request: BlockPRRequest) -> Int32 {
        record(request.ioctlName)
        if let unreachable { return unreachable }
        let ns = namespace, me = hostID
        switch request {
        case let .register(old, new, ignore):
            return status(ns.register(host: me, action: old != 0 ? 2 : 0, ignoreKey: ignore, currentKey: old, newKey: new))
        case let .reserve(key, type):
            return status(ns.acquire(host: me, action: 0, type: UInt8(type.rawValue), ignoreKey: false, currentKey: key, preemptKey: 0))
        case let .release(key, type):
            return status(ns.release(host: me, action: 0, type: UInt8(type.rawValue), currentKey: key))
        case let .preempt(key, victim, type, abort):
            return status(
                ns.acquire(
                    host: me, action: abort ? 2 : 1, type: UInt8(type.rawValue), ignoreKey: false, currentKey: key, preemptKey: victim))
        case let .clear(key):
            return status(ns.release(host: me, action: 1, type: 0, currentKey: key))
        }
    }

    public func readKeys(fd: Int32, capacity: Int) -> Result<KernelPRKeys, BlockPRFailure> {
        record("IOC_PR_READ_KEYS")
        guard readIoctls else { return .failure(BlockPRFailure(-ENOTTY)) }
        if let unreachable { return .failure(BlockPRFailure(unreachable)) }
        let keys = namespace.report.registrants.map(\.key)
        return .success(KernelPRKeys(generation: namespace.report.generation, keys: Array(keys.prefix(capacity)), available: keys.count))
    }

    public func readReservation(fd: Int32) -> Result<KernelPRReservation, BlockPRFailure> {
        record("IOC_PR_READ_RESERVATION")
        guard readIoctls else { return .failure(BlockPRFailure(-ENOTTY)) }
        if let unreachable { return .failure(BlockPRFailure(unreachable)) }
        let r = namespace.reservation
        return .success(KernelPRReservation(generation: namespace.report.generation, key: r?.key ?? 0, type: UInt32(r?.type ?? 0)))
    }

    public func ioCommand(fd: Int32, _ command: NVMeIOCommand, data: inout [UInt8]) -> Int32 {
        record(String(format: "NVMe opcode 0x%02X", command.opcode))
        if let unreachable { return unreachable }
        switch command.opcode {
        case NVMeIOCommand.reservationRegister:
            return Int32(
                namespace.register(
                    host: hostID, action: command.cdw10 & 0x7, ignoreKey: command.cdw10 & 0x8 != 0,
                    currentKey: LittleEndian.uint64(data, at: 0), newKey: LittleEndian.uint64(data, at: 8)))
        case NVMeIOCommand.reservationReport:
            guard command.cdw11 & 1 != 0 else { return Int32(FakeNVMeNamespace.hostIDInconsistent) }
            let bytes = namespace.report.encoded
            let size = min(data.count, Int(command.cdw10 + 1) * 4)
            guard size >= 64 else { return Int32(FakeNVMeNamespace.invalidField) }
            for i in 0..<min(size, bytes.count) { data[i] = bytes[i] }
            return 0
        default:
            return Int32(FakeNVMeNamespace.invalidField)
        }
    }
}
