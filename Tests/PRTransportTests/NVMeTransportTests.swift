import Glibc
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// NVMeTransport at the ioctl boundary, in front of a FAKE namespace that
/// keeps reservations as Linux's nvmet does (FakeNVMeNamespace; each host
/// a FakeNVMeHost playing its kernel). /dev/null stands in for the device
/// node. The lab (Tests/Lab, scenarios nvme_*) runs the real nvmet.
@Suite("NVMe transport")
struct NVMeTransportTests {
    let path = "/dev/null"
    let vm = UUIDBytes("0d9e4c3a-5b6f-4a1e-9c2d-7e8f9a0b1c2d")!
    let other = UUIDBytes("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")!

    func transport(_ host: FakeNVMeHost, path: String = "/dev/null") throws(LockError) -> NVMeTransport {
        guard let (t, _) = try NVMeTransport.open(path: path, blockDriver: host, nvmeDriver: host) else {
            throw .internalError("the fake answers NVME_IOCTL_ID")
        }
        return t
    }

    func locker(_ host: FakeNVMeHost, part: UInt32, vm: UUIDBytes) throws -> PRLocker {
        try PRLocker(config: PRConfig(hostPart: part), vm: vm) { _ throws(LockError) in try transport(host) }
    }

    static let kernels: [(readIoctls: Bool, linux6_1: Bool)] = [(false, true), (false, false), (true, false)]

    // MARK: The route

    @Test func anNVMeNamespaceTakesTheNVMeRouteAndSaysHowItReads() throws {
        let ns = FakeNVMeNamespace()
        for (ioctls, expected) in [(false, "NVMe Reservation Report through the passthrough ioctl"), (true, "the kernel's read ioctls")] {
            let route = try DevicePathRoute(
                path: path, setting: .never, timeoutMilliseconds: 1000, blockDriver: ns.host(1, readIoctls: ioctls),
                nvmeDriver: ns.host(1, readIoctls: ioctls), isBlockDevice: { _ in true })
            #expect(route.transport is NVMeTransport)
            #expect(route.reason.hasPrefix("NVMe namespace 1: block PR ioctls for PR OUT"), "\(route.reason)")
            #expect(route.reason.contains(expected), "\(route.reason)")
        }
    }

    @Test func aSCSIDeviceIsNoNamespaceAndKeepsItsRoute() throws {
        let lu = FakePRDevice()
        let route = try DevicePathRoute(
            path: path, setting: .always, timeoutMilliseconds: 1000, sgDriver: FakeSGDevice(device: lu, nexus: "h1"),
            blockDriver: FakeBlockPR(device: lu, paths: ["h1"]), nvmeDriver: NoNVMeNamespace(), isBlockDevice: { _ in true })
        #expect(route.transport is BlockPRTransport)
        #expect(
            route.reason == "block PR ioctls for PR OUT, SG_IO for PR IN (IOC_PR_READ_RESERVATION: \(Errno(ENOTTY))) (block_pr = always)")
    }

    // MARK: The decision layer on NVMe

    @Test(arguments: kernels)
    func acquireRefusalNamingTheHolderAndReleaseLeaveNothing(_ kernel: (readIoctls: Bool, linux6_1: Bool)) throws {
        let ns = FakeNVMeNamespace()
        let hostA = ns.host(0xA, readIoctls: kernel.readIoctls, linux6_1Status: kernel.linux6_1)
        let hostB = ns.host(0xB, readIoctls: kernel.readIoctls, linux6_1Status: kernel.linux6_1)
        let a = try locker(hostA, part: 1, vm: vm)
        try a.acquire([try PRResource(path)], state: nil)
        let key = PRKey.exclusive(vm: vm, host: 1).rawValue
        #expect(ns.reservation?.key == key && ns.reservation?.type == 3, "write-exclusive-registrants-only is NVMe type 3")
        #expect(ns.registrants.map(\.key) == [key])
        #expect(ns.canWrite(host: hostA.hostID) && !ns.canWrite(host: hostB.hostID))

        let b = try locker(hostB, part: 2, vm: other)
        let refused = #expect(throws: LockError.self) { try b.acquire([try PRResource(path)], state: nil) }
        #expect(refused?.kind == .conflict)
        #expect(refused?.message.contains(PRKey(rawValue: key).description) == true, "\(refused?.message ?? "")")
        #expect(ns.registrants.map(\.key) == [key], "the refused host left nothing registered")

        _ = try a.release([try PRResource(path)])
        #expect(ns.registrants.isEmpty && ns.reservation == nil, "no key left, not even key 0: \(ns.registrants)")
        #expect(!hostA.requests.contains("IOC_PR_READ_KEYS") || kernel.readIoctls)
    }

    @Test func handoverWithTheStateStringFencesTheSourceHost() throws {
        let ns = FakeNVMeNamespace()
        let hostA = ns.host(0xA), hostB = ns.host(0xB, readIoctls: true)
        let a = try locker(hostA, part: 1, vm: vm)
        try a.acquire([try PRResource(path)], state: nil)
        let state = try a.inquire([try PRResource(path)])
        let b = try locker(hostB, part: 2, vm: vm)
        try b.acquire([try PRResource(path)], state: state)
        let keyB = PRKey.exclusive(vm: vm, host: 2).rawValue
        #expect(ns.reservation?.key == keyB)
        #expect(ns.registrants.map(\.key) == [keyB], "the source host is unregistered")
        #expect(!ns.canWrite(host: hostA.hostID) && ns.canWrite(host: hostB.hostID))
        // The source's release after the handover touches nothing of b's.
        _ = try a.release([try PRResource(path)])
        #expect(ns.reservation?.key == keyB)
    }

    @Test func registerAndIgnoreReplacesAnotherKeyOfTheSameHost() throws {
        let ns = FakeNVMeNamespace()
        let host = ns.host(0xA)
        // NVMe keeps one key per host: "register" with another key is refused.
        #expect(host.call(fd: -1, .register(oldKey: 0, newKey: 0x5151, ignoreExistingKey: true)) == 0)
        #expect(host.call(fd: -1, .register(oldKey: 0, newKey: 0x6262, ignoreExistingKey: true)) == 0x18)
        let t = try transport(host)
        let response = try t.send(.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0x6262), timeoutMilliseconds: 100)
        #expect(response.status == 0)
        #expect(ns.registrants.map(\.key) == [0x6262], "sent again as replace")
        // Unregistering goes through the passthrough ioctl (the kernel's would leave key 0).
        #expect(try t.send(.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0), timeoutMilliseconds: 100).status == 0)
        #expect(ns.registrants.isEmpty)
        #expect(host.requests.last == "NVMe opcode 0x0D")
        // Once more, on a host that is not registered: nothing to drop, GOOD as in SCSI.
        #expect(try t.send(.prOut(.registerAndIgnore, key: 0, serviceActionKey: 0), timeoutMilliseconds: 100).status == 0)
        // A plain REGISTER with a key stays a register/replace ioctl.
        #expect(try t.send(.prOut(.register, key: 0, serviceActionKey: 0x7373), timeoutMilliseconds: 100).status == 0)
        #expect(try t.send(.prOut(.register, key: 0x7373, serviceActionKey: 0x8484), timeoutMilliseconds: 100).status == 0)
        #expect(ns.registrants.map(\.key) == [0x8484])
    }

    @Test func oneUnreachableNamespaceAcquiresNothing() throws {
        let first = FakeNVMeNamespace(), second = FakeNVMeNamespace()
        let hostA1 = first.host(0xA), hostA2 = second.host(0xA)
        let names = ["/dev/null", "/dev/zero"]
        let a = try PRLocker(config: PRConfig(hostPart: 1), vm: vm) { r throws(LockError) in
            try transport(r.name == names[0] ? hostA1 : hostA2, path: r.name)
        }
        hostA2.unreachable = -EIO
        let failed = #expect(throws: LockError.self) { try a.acquire(names.map { try PRResource($0) }, state: nil) }
        #expect(failed?.message.contains("/dev/zero") == true, "\(failed?.message ?? "")")
        #expect(first.registrants.isEmpty && first.reservation == nil, "nothing half-acquired")
        hostA2.unreachable = nil
        try a.acquire(names.map { try PRResource($0) }, state: nil)
        #expect(first.reservation != nil && second.reservation != nil)
    }

    @Test func aNamespaceWithNoLivePathIsNamedAsSuchNotAsANonSCSIDevice() throws {
        let host = FakeNVMeNamespace().host(0xA)
        host.unreachable = -EWOULDBLOCK  // Linux's multipath head while the controller reconnects
        let refused = #expect(throws: LockError.self) {
            try DevicePathRoute(
                path: path, setting: .auto, timeoutMilliseconds: 100, blockDriver: host, nvmeDriver: host,
                isBlockDevice: { _ in true })
        }
        #expect(
            refused?.message.hasPrefix("/dev/null: an NVMe namespace with no live path to its target") == true, "\(refused?.message ?? "")")
    }

    // MARK: Statuses

    @Test func conflictIsReadFromEveryKernelsStatusAndPathFailuresAreErrors() throws {
        #expect(try NVMeTransport.response(0x18, command: "c", device: "d").status == 0x18)
        #expect(try NVMeTransport.response(0x4083, command: "c", device: "d").status == 0x18)
        #expect(try NVMeTransport.response(0x83, command: "c", device: "d", passthrough: true).status == 0x18)
        let path = #expect(throws: LockError.self) { try NVMeTransport.response(0x10000, command: "IOC_PR_RESERVE", device: "d") }
        #expect(path?.message.contains("was not delivered") == true)
        let old = #expect(throws: LockError.self) { try NVMeTransport.response(-ENOTTY, command: "IOC_PR_RESERVE", device: "d") }
        #expect(old?.message.contains("not supported here") == true)
        let invalid = #expect(throws: LockError.self) {
            try NVMeTransport.response(0x4002, command: "Reservation Report", device: "d", passthrough: true)
        }
        #expect(invalid?.message == "d: Reservation Report failed with NVMe status 0x4002 (invalid field)")
    }

    @Test func reportCapabilitiesAndWritesAreRefusedClearly() throws {
        let t = try transport(FakeNVMeNamespace().host(1))
        #expect(throws: LockError.self) { try t.send(.prIn(.reportCapabilities), timeoutMilliseconds: 100) }
        #expect(throws: LockError.self) { try t.send(.write10(lba: 0, blocks: 1, data: []), timeoutMilliseconds: 100) }
    }
}

/// Not an NVMe namespace: NVME_IOCTL_ID answers ENOTTY, as sd does.
final class NoNVMeNamespace: NVMeDriver, @unchecked Sendable {
    func namespaceID(fd: Int32) -> Int32 { -ENOTTY }
    func ioCommand(fd: Int32, _ command: NVMeIOCommand, data: inout [UInt8]) -> Int32 { -ENOTTY }
}
