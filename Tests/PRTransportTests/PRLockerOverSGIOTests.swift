import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// The pr plugin's own algorithm (PRLocker) over the SG_IO transport, at
/// the ioctl boundary: a FAKE kernel (FakeSGDevice) in front of a model LU
/// (FakePRDevice), since this machine has no sg driver. With SG_IO every
/// process of a host shares the host's I_T nexus, unlike tgt's
/// login-per-call, so this is the production shape of the protocol.
@Suite struct PRLockerOverSGIOTests {
    let lu = FakePRDevice()
    let path = "/dev/null"  // opened for real; every ioctl goes to the fake
    let vm = UUIDBytes("0d9e4c3a-5b6f-4a1e-9c2d-7e8f9a0b1c2d")!
    let other = UUIDBytes("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")!

    func locker(host: UInt32, vm: UUIDBytes, exclusiveType: ReservationType? = nil) throws -> PRLocker {
        var config = PRConfig(hostPart: host)
        if let exclusiveType { config.exclusiveType = exclusiveType }
        let lu = self.lu
        return try PRLocker(config: config, vm: vm) { _ throws(LockError) in
            try SGIOTransport(path: "/dev/null", driver: FakeSGDevice(device: lu, nexus: "host-\(host)"))
        }
    }

    @Test func acquireRefuseHandOverAndReleaseOnAPersistentNexus() throws {
        let disk = [try PRResource(path)]
        let a = try locker(host: 1, vm: vm, exclusiveType: .exclusiveAccessRegistrantsOnly)
        try a.acquire(disk, state: nil)
        let keyA = PRKey.exclusive(vm: vm, host: 1).rawValue
        #expect(lu.reservation?.holder == "host-1")
        #expect(lu.key(of: "host-1") == keyA)

        // Another VM on host 2 is refused, naming the holder; the LU is unchanged.
        let generation = lu.generation
        let intruder = try locker(host: 2, vm: other)
        let refused = #expect(throws: LockError.self) { try intruder.acquire(disk, state: nil) }
        #expect(refused?.kind == .conflict)
        #expect(refused?.message.contains(PRKey(rawValue: keyA).description) == true, "\(refused?.message ?? "")")
        #expect(lu.generation == generation)
        #expect(lu.registeredKeys == [keyA])

        // Migration: host 2 takes the same VM's reservation over with the state.
        let state = try a.inquire(disk)
        let b = try locker(host: 2, vm: vm)
        try b.acquire(disk, state: state)
        let keyB = PRKey.exclusive(vm: vm, host: 2).rawValue
        #expect(lu.reservation?.holder == "host-2")
        #expect(lu.reservation?.type == ReservationType.exclusiveAccessRegistrantsOnly.rawValue, "type preserved")
        #expect(lu.registeredKeys == [keyB], "the source's key is gone: it is fenced")
        let prOut = (b.commandsSent[path] ?? []).filter { $0.hasPrefix("PR OUT") }
        #expect(prOut.count <= 2, "\(prOut)")

        // A clean-up on the source afterwards leaves the destination alone.
        _ = try a.release(disk)
        #expect(lu.reservation?.holder == "host-2")
        #expect(lu.registeredKeys == [keyB])

        // The destination releases: nothing reserved, nothing registered.
        _ = try b.release(disk)
        #expect(lu.reservation == nil)
        #expect(lu.registeredKeys.isEmpty)
    }
}
