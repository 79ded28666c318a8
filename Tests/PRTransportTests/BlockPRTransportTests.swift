import Glibc
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// BlockPRTransport at the ioctl boundary: PR OUT goes to a FAKE kernel
/// (FakeBlockPR: sd on one path, dm-multipath on several) and PR IN to
/// FakeSGDevice, both in front of one model LU (FakePRDevice) whose I_T
/// nexuses are the paths. /dev/null stands in for the device node. The
/// lab (Tests/Lab, multipath scenarios) runs the real kernel.
@Suite("Block PR transport")
struct BlockPRTransportTests {
    let path = "/dev/null"
    let vm = UUIDBytes("0d9e4c3a-5b6f-4a1e-9c2d-7e8f9a0b1c2d")!
    let other = UUIDBytes("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")!

    func blockPR(_ lu: FakePRDevice, paths: [String]) throws(LockError) -> (BlockPRTransport, FakeBlockPR) {
        let kernel = FakeBlockPR(device: lu, paths: paths)
        let sgio = try SGIOTransport(path: path, driver: FakeSGDevice(device: lu, nexus: paths[0]))
        return (BlockPRTransport(sgio: sgio, driver: kernel), kernel)
    }

    func locker(host: UInt32, vm: UUIDBytes, _ transport: @escaping () throws(LockError) -> SCSITransport) throws -> PRLocker {
        try PRLocker(config: PRConfig(hostPart: host), vm: vm) { _ throws(LockError) in try transport() }
    }

    /// One WRITE(10) from `nexus`, sent again past unit attentions (a
    /// preempted nexus first hears "registrations preempted"): its status.
    func write(_ lu: FakePRDevice, from nexus: String) -> UInt8 {
        let w = SCSICommand.write10(lba: 0, blocks: 1, data: [UInt8](repeating: 0, count: 512))
        for _ in 0..<3 {
            let status = lu.execute(cdb: w.cdb, dataOut: [UInt8](repeating: 0, count: 512), from: nexus).status
            if status != 0x02 { return status }
        }
        return 0x02
    }

    // MARK: From the typed PR OUT to the ioctl

    @Test func everyPROutActionBecomesItsIoctlWithTheKernelsTypeNumbers() throws {
        func request(_ action: PROutAction, _ type: ReservationType? = nil) throws -> BlockPRRequest {
            try BlockPRRequest(action, type: type, key: 0xA, serviceActionKey: 0xB)
        }
        #expect(try request(.register) == .register(oldKey: 0xA, newKey: 0xB, ignoreExistingKey: false))
        #expect(try request(.registerAndIgnore) == .register(oldKey: 0xA, newKey: 0xB, ignoreExistingKey: true))
        #expect(try request(.clear) == .clear(key: 0xA))
        // SPC type codes 1 3 5 6 7 8 are <linux/pr.h>'s 1 2 3 4 5 6.
        let pairs: [(ReservationType, UInt32)] = [
            (.writeExclusive, 1), (.exclusiveAccess, 2),
            (.writeExclusiveRegistrantsOnly, 3), (.exclusiveAccessRegistrantsOnly, 4),
            (.writeExclusiveAllRegistrants, 5), (.exclusiveAccessAllRegistrants, 6),
        ]
        for (scsi, kernel) in pairs {
            #expect(try request(.reserve, scsi) == .reserve(key: 0xA, type: BlockPRType(scsi)))
            #expect(BlockPRType(scsi).rawValue == kernel, "\(scsi)")
        }
        #expect(try request(.release, .writeExclusive) == .release(key: 0xA, type: BlockPRType(.writeExclusive)))
        #expect(
            try request(.preempt, .exclusiveAccess) == .preempt(key: 0xA, victimKey: 0xB, type: BlockPRType(.exclusiveAccess), abort: false)
        )
        // A reservation command without a type cannot be expressed: refused, not guessed.
        #expect(throws: LockError.self) { try request(.reserve) }
    }

    // MARK: dm-multipath: the key on every path

    @Test func onAMultipathDeviceTheKeyIsRegisteredOnEveryPathAndEveryPathWrites() throws {
        let lu = FakePRDevice()
        let paths = ["host-1/path-1", "host-1/path-2"]
        let (transport, kernel) = try blockPR(lu, paths: paths)
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in transport }
        do { try a.acquire([try PRResource(path)], state: nil) } catch {
            Issue.record("\(error) \(kernel.requests) \(a.commandsSent)"); return
        }
        let key = PRKey.exclusive(vm: vm, host: 1).rawValue
        #expect(lu.key(of: paths[0]) == key && lu.key(of: paths[1]) == key, "\(lu.registeredKeys)")
        #expect(lu.registeredKeys == [key, key])
        #expect(lu.reservation?.type == ReservationType.writeExclusiveRegistrantsOnly.rawValue)
        for p in paths { #expect(write(lu, from: p) == 0x00, "write through \(p)") }
        #expect(write(lu, from: "host-2/path-1") == 0x18, "another host is fenced")

        _ = try a.release([try PRResource(path)])
        #expect(lu.registeredKeys.isEmpty && lu.reservation == nil, "no path left registered")
    }

    @Test func throughSGIOTheSameMapGetsTheKeyOnOnePathOnly() throws {
        let lu = FakePRDevice()
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in
            try SGIOTransport(path: path, driver: FakeSGDevice(device: lu, nexus: "host-1/path-1"))
        }
        try a.acquire([try PRResource(path)], state: nil)
        #expect(lu.registeredKeys.count == 1)
        #expect(write(lu, from: "host-1/path-2") == 0x18, "the other path of the same host cannot write")
    }

    @Test func migrationBetweenMultipathHostsLeavesNoPathOfTheSourceRegistered() throws {
        let lu = FakePRDevice()
        let pathsA = ["host-1/path-1", "host-1/path-2"], pathsB = ["host-2/path-1", "host-2/path-2"]
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in try blockPR(lu, paths: pathsA).0 }
        try a.acquire([try PRResource(path)], state: nil)
        let state = try a.inquire([try PRResource(path)])
        let b = try locker(host: 2, vm: vm) { () throws(LockError) in try blockPR(lu, paths: pathsB).0 }
        try b.acquire([try PRResource(path)], state: state)
        let keyB = PRKey.exclusive(vm: vm, host: 2).rawValue
        #expect(lu.registeredKeys == [keyB, keyB], "\(lu.registeredKeys)")
        for p in pathsA { #expect(lu.key(of: p) == nil && write(lu, from: p) == 0x18, "\(p) fenced") }
        for p in pathsB { #expect(write(lu, from: p) == 0x00, "\(p) writes") }
    }

    // MARK: Linux 6.19's read ioctls on sd

    @Test func onAKernelWithTheReadIoctlsPRInGoesThroughThemAndTheRouteSaysSo() throws {
        let lu = FakePRDevice()
        let kernel = FakeBlockPR(device: lu, paths: ["host-1/path-1"])
        kernel.answersReadIoctls = true
        let route = try DevicePathRoute(
            path: path, setting: .always, timeoutMilliseconds: 1000, sgDriver: FakeSGDevice(device: lu, nexus: "host-1/path-1"),
            blockDriver: kernel, nvmeDriver: NoNVMeNamespace(), isBlockDevice: { _ in true })
        #expect(route.reason == "block PR ioctls for PR OUT, the kernel's read ioctls for PR IN (block_pr = always)")
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in route.transport }
        try a.acquire([try PRResource(path)], state: nil)
        #expect(lu.reservation?.type == ReservationType.writeExclusiveRegistrantsOnly.rawValue)
        let before = kernel.readCalls
        let state = try a.inquire([try PRResource(path)])
        #expect(kernel.readCalls > before, "READ KEYS / READ RESERVATION went through the ioctls")
        #expect(state.entries.map(\.key) == [PRKey.exclusive(vm: vm, host: 1)])
        _ = try a.release([try PRResource(path)])
        #expect(lu.registeredKeys.isEmpty && lu.reservation == nil)
    }

    // MARK: What the kernel answers

    @Test func aConflictIsAConflictNamingTheHolder() throws {
        let lu = FakePRDevice()
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in try blockPR(lu, paths: ["h1"]).0 }
        try a.acquire([try PRResource(path)], state: nil)
        let b = try locker(host: 2, vm: other) { () throws(LockError) in try blockPR(lu, paths: ["h2"]).0 }
        let refused = #expect(throws: LockError.self) { try b.acquire([try PRResource(path)], state: nil) }
        #expect(refused?.kind == .conflict)
        let keyA = PRKey.exclusive(vm: vm, host: 1)
        #expect(refused?.message.contains(keyA.description) == true, "\(refused?.message ?? "")")
        #expect(lu.registeredKeys == [keyA.rawValue], "nothing of b left")
    }

    @Test func aDeviceRefusingAPTPLLeavesNoPathRegisteredAndSaysWhy() throws {
        let lu = FakePRDevice(refusesAPTPL: true)  // tgt
        let (transport, kernel) = try blockPR(lu, paths: ["p1", "p2"])
        let a = try locker(host: 1, vm: vm) { () throws(LockError) in transport }
        let error = #expect(throws: LockError.self) { try a.acquire([try PRResource(path)], state: nil) }
        #expect(
            error?.message.contains("IOC_PR_REGISTER") == true && error?.message.contains("APTPL") == true,
            "\(error?.message ?? "")")
        #expect(lu.registeredKeys.isEmpty && lu.reservation == nil)
        #expect(kernel.requests.contains { if case .register = $0 { return true } else { return false } })
    }

    @Test func ioctlReturnValuesBecomeOutcomesOrErrorsNamingDeviceAndIoctl() throws {
        let request = BlockPRRequest.reserve(key: 1, type: BlockPRType(.writeExclusive))
        #expect(try BlockPRTransport.response(0, request: request, device: "/dev/x").status == 0x00)
        #expect(try BlockPRTransport.response(0x18, request: request, device: "/dev/x").status == 0x18)
        func message(_ r: Int32) -> String {
            (#expect(throws: LockError.self) { _ = try BlockPRTransport.response(r, request: request, device: "/dev/x") })?.message ?? ""
        }
        #expect(message(-EOPNOTSUPP).contains("/dev/x: IOC_PR_RESERVE is not supported"))
        #expect(message(-ENOTTY).contains("no persistent reservation support"))
        #expect(message(-EIO).contains("IOC_PR_RESERVE failed"))
        #expect(message(0x10000).contains("was not delivered: host status"))  // PR_STS_PATH_FAILED / DID_NO_CONNECT
        #expect(message(0x402).contains("CHECK CONDITION"))  // Linux 6.1, tgt's APTPL refusal
        // A REGISTER that a dead path did not take: dm-multipath's rollback explained.
        let register = BlockPRRequest.register(oldKey: 0, newKey: 7, ignoreExistingKey: true)
        let said =
            (#expect(throws: LockError.self) { _ = try BlockPRTransport.response(0x10000, request: register, device: "/dev/mapper/m") })?
            .message ?? ""
        #expect(said.contains("/dev/mapper/m: IOC_PR_REGISTER was not delivered: host status 01 (DID_NO_CONNECT)"), "\(said)")
        #expect(said.contains("a path is down: the kernel registers on every path and, when one fails, unregisters the key on all of them"))
        #expect(!message(0x10000).contains("path is down"))
    }

    // MARK: Which transport, per device

    @Test func theRouteIsChosenPerDeviceAndSaysWhy() throws {
        func route(_ lu: FakePRDevice, _ setting: BlockPRSetting, block: Bool = true) throws -> DevicePathRoute {
            try DevicePathRoute(
                path: path, setting: setting, timeoutMilliseconds: 1000,
                sgDriver: FakeSGDevice(device: lu, nexus: "h"),
                blockDriver: FakeBlockPR(device: lu, paths: ["h"]), isBlockDevice: { _ in block })
        }
        let capable = FakePRDevice(), tgtLike = FakePRDevice(refusesAPTPL: true)
        #expect(try route(capable, .auto).transport is BlockPRTransport)
        #expect(try route(capable, .auto).reason.contains("PTPL_C"))
        #expect(try route(tgtLike, .auto).transport is SGIOTransport)
        #expect(try route(tgtLike, .auto).reason.contains("does not report PTPL_C"))
        #expect(try route(capable, .never).transport is SGIOTransport)
        #expect(try route(tgtLike, .always).transport is BlockPRTransport)
        #expect(try route(capable, .always, block: false).transport is SGIOTransport, "an sg node")
        // /dev/null itself is a character device: the real check says so.
        #expect(!DevicePathRoute.isBlockDevice(path))
    }

    @Test func blockPRIsASetting() throws {
        let conf = try ConfFile(parsing: "block_pr = \"never\"\n", origin: "t.conf")
        #expect(try PRConfig(conf).blockPR == .never)
        let bad = try ConfFile(parsing: "block_pr = \"sometimes\"\n", origin: "t.conf")
        let error = #expect(throws: LockError.self) { try PRConfig(bad) }
        #expect(error?.message.contains("t.conf:1: 'block_pr' must be auto, always or never") == true, "\(error?.message ?? "")")
    }
}
