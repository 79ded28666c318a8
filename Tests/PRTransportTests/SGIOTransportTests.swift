import CPRShim
import Glibc
import Harness
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// SGIOTransport at the ioctl boundary: the device is really opened
/// (/dev/null stands in for a SCSI node: a character device), the two
/// ioctls are answered by FakeSGDevice from a FakePRDevice.
@Suite("SG_IO transport")
struct SGIOTransportTests {
    let device = FakePRDevice()

    func transport(_ nexus: String = "host-a") throws -> (SGIOTransport, FakeSGDevice) {
        let fake = FakeSGDevice(device: device, nexus: nexus)
        return (try SGIOTransport(path: "/dev/null", driver: fake), fake)
    }

    // MARK: Marshalling into sg_io_hdr

    @Test func persistentReserveInFillsTheHeaderForDataIn() throws {
        let (sg, fake) = try transport()
        _ = try sg.send(
            cdb: PRIn.readKeys.cdb(allocationLength: 200), direction: .fromDevice(allocationLength: 200),
            timeoutMilliseconds: 1234)
        let request = try #require(fake.requests.last)
        #expect(request.interfaceID == Int32(UInt8(ascii: "S")))
        #expect(request.direction == SG_DXFER_FROM_DEV)
        #expect(request.cdb == PRIn.readKeys.cdb(allocationLength: 200))
        #expect(request.dataLength == 200 && request.hasDataBuffer)
        #expect(request.senseCapacity == 96)
        #expect(request.timeoutMilliseconds == 1234)
        #expect(FileIdentity(fd: request.fd) == FileIdentity(path: "/dev/null"))
        // Opened read-write (PR OUT needs it), non-blocking, close-on-exec.
        let status = fcntl(request.fd, F_GETFL)
        #expect(status & O_ACCMODE == O_RDWR && status & O_NONBLOCK != 0)
        #expect(fcntl(request.fd, F_GETFD) & FD_CLOEXEC != 0)
        withExtendedLifetime(sg) {}
    }

    @Test func persistentReserveOutSendsTheParameterList() throws {
        let (sg, fake) = try transport()
        let list = parameters(key: 0, serviceActionKey: 0x1122334455667788, flags: 0x01)
        let response = try sg.send(cdb: PROut.register.cdb(), direction: .toDevice(list), timeoutMilliseconds: 5000)
        let request = try #require(fake.requests.last)
        #expect(request.direction == SG_DXFER_TO_DEV)
        #expect(request.cdb == PROut.register.cdb())
        #expect(request.dataLength == 24 && request.dataOut == list)
        #expect(request.timeoutMilliseconds == 5000)
        #expect(response == SCSIResponse(status: Status.good))
        #expect(device.key(of: "host-a") == 0x1122334455667788)
    }

    @Test func aCommandWithoutDataHasNoBuffer() throws {
        let (sg, fake) = try transport()
        let response = try sg.send(cdb: [0, 0, 0, 0, 0, 0], direction: .none, timeoutMilliseconds: 10)
        let request = try #require(fake.requests.last)
        #expect(request.direction == SG_DXFER_NONE)
        #expect(request.dataLength == 0 && !request.hasDataBuffer)
        #expect(request.cdb.count == 6)
        #expect(response.status == Status.good && response.data.isEmpty)
    }

    // MARK: Decoding the reply

    @Test func dataIsTrimmedByResid() throws {
        let (sg, _) = try transport()
        _ = try Initiator(transport: sg).prOut(.register, key: 0, serviceActionKey: 0xABC)
        let response = try sg.send(
            cdb: PRIn.readKeys.cdb(allocationLength: 4096), direction: .fromDevice(allocationLength: 4096),
            timeoutMilliseconds: 100)
        #expect(response.data.count == 16)  // 8-byte header + one key, not 4096
        #expect(readBE64(response.data, at: 8) == 0xABC)
    }

    @Test func senseIsDecodedFromWhatTheDriverWrote() throws {
        let (sg, _) = try transport()
        _ = try Initiator(transport: sg).prOut(.register, key: 0, serviceActionKey: 0xA)
        let response = try Initiator(transport: sg).prOut(.reserve, key: 0xA, type: 9)
        #expect(response.status == Status.checkCondition)
        #expect(senseTriple(response) == [0x05, 0x24, 0x00])
    }

    @Test func reservationConflictIsAStatusNotAnError() throws {
        let (sg, _) = try transport()
        let response = try Initiator(transport: sg).prOut(.reserve, key: 0xA, type: PRType.writeExclusive)
        #expect(response == SCSIResponse(status: Status.reservationConflict))
    }

    @Test func aResidBeyondTheBufferIsADriverError() throws {
        let (sg, fake) = try transport()
        fake.nextFault = .bogusResid
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: sg).prIn(.readKeys, allocationLength: 64) }
        #expect(error == .backend("/dev/null: SG_IO reported resid 164 for a 64-byte buffer (command 0x5e)"))
    }

    // MARK: Delivery failures

    @Test(arguments: [
        (UInt16(0x07), UInt16(0), "host status 0x07 (DID_ERROR)"),
        (UInt16(0x01), UInt16(0), "host status 0x01 (DID_NO_CONNECT)"),
        (UInt16(0x0e), UInt16(0), "DID_TRANSPORT_DISRUPTED"),
        (UInt16(0x03), UInt16(0), "timed out after 750 ms"),
        (UInt16(0), UInt16(0x06), "timed out after 750 ms"),
        (UInt16(0), UInt16(0x04), "driver status 0x04 (DRIVER_ERROR)"),
    ])
    func transportFailuresThrowNamingTheDevice(host: UInt16, driver: UInt16, expected: String) throws {
        let (sg, fake) = try transport()
        fake.nextFault = .transport(hostStatus: host, driverStatus: driver)
        let error = lockError { () throws(LockError) in
            _ = try sg.send(
                cdb: PROut.register.cdb(), direction: .toDevice(parameters(key: 0, serviceActionKey: 1)),
                timeoutMilliseconds: 750)
        }
        #expect(error?.kind == .backend)
        #expect(error?.message.hasPrefix("/dev/null: command 0x5f") == true)
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        #expect(device.key(of: "host-a") == nil)
    }

    @Test(arguments: [
        (EPERM, "CAP_SYS_RAWIO"),
        (EINTR, "outcome on the device is unknown"),
        (EIO, "SG_IO failed for command 0x5e: Input/output error"),
    ])
    func ioctlFailuresThrowNamingTheDevice(code: Int32, expected: String) throws {
        let (sg, fake) = try transport()
        fake.nextFault = .ioctlFails(code)
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: sg).prIn(.readKeys) }
        #expect(error?.kind == .backend)
        #expect(error?.message.hasPrefix("/dev/null: ") == true)
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
    }

    @Test func badRequestsAreRefusedBeforeTheIoctl() throws {
        let (sg, fake) = try transport()
        let tooLong = lockError { () throws(LockError) in
            _ = try sg.send(cdb: [UInt8](repeating: 0, count: 17), direction: .none, timeoutMilliseconds: 10)
        }
        #expect(tooLong?.kind == .invalid && tooLong?.message.contains("17 bytes") == true)
        let noTimeout = lockError { () throws(LockError) in
            _ = try sg.send(
                cdb: PRIn.readKeys.cdb(allocationLength: 8), direction: .fromDevice(allocationLength: 8), timeoutMilliseconds: 0)
        }
        #expect(noTimeout?.kind == .invalid)
        let negative = lockError { () throws(LockError) in
            _ = try sg.send(
                cdb: PRIn.readKeys.cdb(allocationLength: 8), direction: .fromDevice(allocationLength: -1), timeoutMilliseconds: 10)
        }
        #expect(negative?.kind == .invalid)
        #expect(fake.requests.isEmpty)
    }

    // MARK: What is not a SCSI device

    @Test func aRegularFileIsRefused() throws {
        let path = TempDir.make("sgio") + "/disk.img"
        TempDir.write("not a disk", to: path)
        let error = lockError { () throws(LockError) in _ = try SGIOTransport(path: path, driver: FakeSGDevice(device: device, nexus: "x"))
        }
        #expect(error == .config("\(path) is not a SCSI device: it is a regular file; expected a block device or an sg character device"))
    }

    @Test func aDirectoryAndAMissingPathAreRefused() throws {
        let dir = TempDir.make("sgio")
        let directory = lockError { () throws(LockError) in _ = try SGIOTransport(path: dir) }
        #expect(directory?.message.hasPrefix("\(dir) is not a SCSI device: it is a directory") == true)
        let missing = lockError { () throws(LockError) in _ = try SGIOTransport(path: dir + "/nope") }
        #expect(missing?.kind == .config)
        #expect(missing?.message.contains("\(dir)/nope") == true && missing?.message.contains("No such file") == true)
    }

    /// The real kernel: /dev/null is a character device that knows no SG ioctls.
    @Test func devNullDoesNotAnswerTheRealSGVersionIoctl() throws {
        let error = lockError { () throws(LockError) in _ = try SGIOTransport(path: "/dev/null") }
        #expect(error?.kind == .config)
        #expect(
            error?.message.hasPrefix("/dev/null is not a SCSI device: it does not answer SG_GET_VERSION_NUM") == true,
            "\(String(describing: error))")
    }

    @Test func aDeviceRefusingTheVersionIoctlIsRefused() throws {
        let fake = FakeSGDevice(device: device, nexus: "x")
        fake.versionAnswer = .failure(Errno(EINVAL))
        let error = lockError { () throws(LockError) in _ = try SGIOTransport(path: "/dev/null", driver: fake) }
        #expect(error?.message == "/dev/null is not a SCSI device: it does not answer SG_GET_VERSION_NUM (Invalid argument)")
    }

    // MARK: A PR flow over SG_IO

    /// QEMU migrate-pr's handover: the destination registers and preempts
    /// the source; the source is fenced (UNIT ATTENTION, then conflicts).
    @Test func handoverByPreemptFencesTheSource() throws {
        let (sgA, _) = try transport("host-a")
        let (sgB, _) = try transport("host-b")
        let source = Initiator(transport: sgA), destination = Initiator(transport: sgB)
        #expect(try source.prOut(.register, key: 0, serviceActionKey: 0xA1).status == Status.good)
        #expect(try source.prOut(.reserve, key: 0xA1, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try writeStatus(sgB) == Status.reservationConflict)
        #expect(try destination.prOut(.register, key: 0, serviceActionKey: 0xB2).status == Status.good)
        #expect(try writeStatus(sgB) == Status.good)  // registrants-only: registered may write
        #expect(
            try destination.prOut(.preempt, key: 0xB2, serviceActionKey: 0xA1, type: PRType.writeExclusiveRegistrantsOnly).status
                == Status.good)
        let held = try #require(try destination.reservation())
        #expect(held.key == 0xB2)
        #expect(try destination.keys().keys == [0xB2])
        #expect(senseTriple(try source.prIn(.readKeys)) == [0x06, 0x2A, 0x05])
        #expect(try writeStatus(sgA) == Status.reservationConflict)
    }

    private func writeStatus(_ sg: SGIOTransport) throws -> UInt8 {
        try sg.send(
            cdb: [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0], direction: .toDevice([UInt8](repeating: 0x5A, count: 512)),
            timeoutMilliseconds: 100
        ).status
    }
}
