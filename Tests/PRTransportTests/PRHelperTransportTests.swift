import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// PRHelperTransport against the in-process FakePRHelper: framing, fd
/// passing, negotiation, protocol violations, timeouts, and PR flows.
@Suite("qemu-pr-helper transport (in-process helper)")
struct PRHelperTransportTests {
    let device = FakePRDevice()
    let dir = TempDir.make("prhelper")
    /// The file whose descriptor is passed: the helper does the SG_IO, so a regular file will do here.
    var lun: String { "\(dir)/lun.img" }

    init() {
        TempDir.write(String(repeating: "\0", count: 4096), to: "\(dir)/lun.img")
    }

    func helper(
        _ behaviour: FakePRHelper.Behaviour = .faithful, nexus: String = "host-a", features: UInt32 = 0,
        in subdirectory: String = "a"
    ) throws -> FakePRHelper {
        let path = "\(dir)/\(subdirectory)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return try FakePRHelper(device: device, nexus: nexus, behaviour: behaviour, supportedFeatures: features, directory: path)
    }

    // MARK: Negotiation and framing

    @Test func negotiationReadsTheHelpersFeaturesAndRequestsNone() throws {
        let server = try helper(features: 0x0000_0005)
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        #expect(client.helperFeatures == 5)
        _ = try Initiator(transport: client).prIn(.readKeys)  // the exchange completed, so the helper has the features
        #expect(server.requestedFeatures == [0])
    }

    @Test func aRequestIsThePaddedCDBWithTheDeviceFdThenTheParameterList() throws {
        let server = try helper()
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let list = parameters(key: 0, serviceActionKey: 0xFEED, flags: 0)
        _ = try client.send(cdb: PROut.register.cdb(), direction: .toDevice(list), timeoutMilliseconds: 2000)
        _ = try Initiator(transport: client).prIn(.readKeys, allocationLength: 300)
        let received = server.received
        #expect(received.count == 2)
        #expect(received[0].cdb == PROut.register.cdb() + [0, 0, 0, 0, 0, 0])
        #expect(received[0].parameterList == list)
        #expect(received[1].cdb == PRIn.readKeys.cdb(allocationLength: 300) + [0, 0, 0, 0, 0, 0])
        #expect(received[1].parameterList.isEmpty)
        for request in received {
            #expect(request.passedFile != nil && request.passedFile == FileIdentity(path: lun))
        }
        #expect(device.key(of: "host-a") == 0xFEED)
    }

    @Test func replyCarriesStatusSenseAndPayload() throws {
        let server = try helper()
        defer { server.stop() }
        let a = Initiator(transport: try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000))
        _ = try a.prOut(.register, key: 0, serviceActionKey: 0x77)
        let keys = try a.prIn(.readKeys, allocationLength: 4096)
        #expect(keys.status == Status.good && keys.sense == nil)
        #expect(keys.data.count == 16 && readBE64(keys.data, at: 8) == 0x77)
        let bad = try a.prOut(.reserve, key: 0x77, type: 4)
        #expect(bad.status == Status.checkCondition)
        #expect(senseTriple(bad) == [0x05, 0x24, 0x00])
        #expect(bad.data.isEmpty)
        #expect(try a.prOut(.reserve, key: 0x1, type: 1) == SCSIResponse(status: Status.reservationConflict))
    }

    // MARK: PR flows, two hosts (two helpers, one LU)

    @Test func registerReservePreemptAcrossTwoHosts() throws {
        let helperA = try helper(nexus: "host-a", in: "a"), helperB = try helper(nexus: "host-b", in: "b")
        defer { helperA.stop(); helperB.stop() }
        let a = Initiator(transport: try PRHelperTransport(socketPath: helperA.socketPath, devicePath: lun, timeoutMilliseconds: 2000))
        let b = Initiator(transport: try PRHelperTransport(socketPath: helperB.socketPath, devicePath: lun, timeoutMilliseconds: 2000))
        #expect(try a.prOut(.register, key: 0, serviceActionKey: 0xA).status == Status.good)
        #expect(try a.prOut(.reserve, key: 0xA, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try b.prOut(.reserve, key: 0xB, type: PRType.writeExclusiveRegistrantsOnly).status == Status.reservationConflict)
        #expect(try b.prOut(.register, key: 0, serviceActionKey: 0xB).status == Status.good)
        #expect(try b.keys() == (generation: 2, keys: [0xA, 0xB]))
        #expect(try b.prOut(.preempt, key: 0xB, serviceActionKey: 0xA, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try b.reservation()?.key == 0xB)
        #expect(senseTriple(try a.prIn(.readReservation)) == [0x06, 0x2A, 0x05])
        #expect(try a.prOut(.register, key: 0xA, serviceActionKey: 0xA).status == Status.reservationConflict)
        // Failed migration: the source takes the LU back the same way.
        #expect(try a.prOut(.register, key: 0, serviceActionKey: 0xA).status == Status.good)
        #expect(try a.prOut(.preempt, key: 0xA, serviceActionKey: 0xB, type: PRType.writeExclusiveRegistrantsOnly).status == Status.good)
        #expect(try a.reservation()?.key == 0xA)
    }

    @Test func concurrentCallersAreSerialisedOnOneConnection() throws {
        let server = try helper()
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        _ = try Initiator(transport: client).prOut(.register, key: 0, serviceActionKey: 0x1234)
        let failures = NSLock()
        nonisolated(unsafe) var wrong: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<25 {
                // Each caller asks for a different length: an interleaved reply would show up as a wrong length or key.
                let length = 9 + (worker * 25 + round) % 8
                do {
                    let response = try Initiator(transport: client).prIn(.readKeys, allocationLength: length)
                    if response.data.count != length || response.data[8] != 0 {
                        failures.withLock { wrong.append("worker \(worker) round \(round): \(response)") }
                    }
                } catch {
                    failures.withLock { wrong.append("worker \(worker) round \(round): \(error)") }
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(3))")
        #expect(server.connectionCount == 1)
    }

    // MARK: Protocol violations and failures

    @Test func helperClosingTheSocketIsAnErrorAndTheNextCommandReconnects() throws {
        let server = try helper(.closeAfterRequest)
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys) }
        #expect(
            error
                == .backend(
                    "qemu-pr-helper at \(server.socketPath) closed the connection during command 0x5e for \(lun) (after 0 of 104 bytes)"))
        _ = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys) }
        #expect(server.connectionCount == 2)
        #expect(server.received.count == 2)
    }

    @Test func aShortReplyIsAnError() throws {
        let server = try helper(.shortReply(bytes: 50))
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: client).prOut(.register, key: 0, serviceActionKey: 1) }
        #expect(error?.kind == .backend)
        #expect(
            error?.message.contains("closed the connection during command 0x5f for \(lun) (after 50 of 104 bytes)") == true,
            "\(String(describing: error))")
    }

    @Test func aPayloadLargerThanTheAllocationLengthIsRefused() throws {
        let server = try helper(.oversizedPayload(extra: 1))
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys, allocationLength: 40) }
        #expect(
            error
                == .backend(
                    "qemu-pr-helper at \(server.socketPath) announced a 41-byte payload for \(lun), more than the allocation length 40 of command 0x5e"
                ))
    }

    @Test(arguments: [
        // status 0x100: not a SCSI status byte
        (be32(0x100) + be32(0) + [UInt8](repeating: 0, count: 96), "sent an invalid SCSI status 256"),
        // CHECK CONDITION with a payload: the protocol sends payloads only with GOOD
        (be32(2) + be32(8) + [UInt8](repeating: 0, count: 96) + [UInt8](repeating: 0, count: 8), "sent a payload with SCSI status 0x02"),
    ])
    func repliesThatBreakTheProtocolAreRefused(reply: [UInt8], expected: String) throws {
        let server = try helper(.rawReply(reply))
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys, allocationLength: 64) }
        #expect(error?.kind == .backend)
        #expect(error?.message == "qemu-pr-helper at \(server.socketPath) \(expected) for \(lun)")
        // The stream is out of step: the next command uses a new connection.
        _ = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys, allocationLength: 64) }
        #expect(server.connectionCount == 2)
    }

    @Test func aSocketPathTooLongForAUnixAddressIsAConfigError() throws {
        let path = dir + "/" + String(repeating: "s", count: 120) + ".sock"
        let error = lockError { () throws(LockError) in
            _ = try PRHelperTransport(socketPath: path, devicePath: lun, timeoutMilliseconds: 100)
        }
        #expect(error?.kind == .config)
        #expect(error?.message.contains(path) == true)
    }

    @Test func aHelperThatNeverAnswersFailsWithinTheTimeout() throws {
        let server = try helper(.neverAnswer)
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        let start = Date()
        let error = lockError { () throws(LockError) in
            _ = try client.send(
                cdb: PRIn.readKeys.cdb(allocationLength: 8), direction: .fromDevice(allocationLength: 8), timeoutMilliseconds: 200)
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(error == .backend("qemu-pr-helper at \(server.socketPath) did not answer command 0x5e for \(lun) within 200 ms"))
        #expect(elapsed >= 0.2 && elapsed < Sanitizer.slackSeconds, "gave up after \(elapsed) s")
    }

    @Test func aHelperThatNeverNegotiatesFailsWithinTheTimeout() throws {
        let server = try helper(.neverNegotiate)
        defer { server.stop() }
        let start = Date()
        let error = lockError { () throws(LockError) in
            _ = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 150)
        }
        #expect(
            error
                == .backend(
                    "qemu-pr-helper at \(server.socketPath) did not answer connecting and negotiating features for \(lun) within 150 ms"))
        #expect(Date().timeIntervalSince(start) < 2.0)
    }

    @Test func noHelperListeningIsAnErrorNamingTheSocket() throws {
        let error = lockError { () throws(LockError) in
            _ = try PRHelperTransport(socketPath: "\(dir)/absent.sock", devicePath: lun, timeoutMilliseconds: 500)
        }
        #expect(
            error
                == .backend(
                    "qemu-pr-helper at \(dir)/absent.sock: connect failed during connecting and negotiating features for \(lun): No such file or directory"
                ))
    }

    @Test func requestsTheHelperWouldRejectAreRefusedLocally() throws {
        let server = try helper()
        defer { server.stop() }
        let client = try PRHelperTransport(socketPath: server.socketPath, devicePath: lun, timeoutMilliseconds: 2000)
        // A command it does not forward, and more data-in than it takes.
        let cases: [(command: SCSICommand, kind: LockErrorKind)] = [
            (.write10(lba: 0, blocks: 1, data: [UInt8](repeating: 0, count: 512)), .unsupported),
            (.prIn(.readKeys, allocationLength: 8193), .invalid),
        ]
        for example in cases {
            let error = lockError { () throws(LockError) in
                _ = try client.send(example.command, timeoutMilliseconds: 100)
            }
            #expect(error?.kind == example.kind, "\(example.command): \(String(describing: error))")
            #expect(error?.message.hasPrefix(lun) == true)
        }
        #expect(server.received.isEmpty)
        // The connection is still good for a valid command.
        #expect(try Initiator(transport: client).prIn(.readKeys).status == Status.good)
        #expect(server.connectionCount == 1)
    }

    @Test func theDeviceMustBeAFileOrDevice() throws {
        let server = try helper()
        defer { server.stop() }
        let error = lockError { () throws(LockError) in
            _ = try PRHelperTransport(socketPath: server.socketPath, devicePath: dir, timeoutMilliseconds: 500)
        }
        #expect(error?.message.hasPrefix("\(dir) is not a SCSI device: it is a directory") == true)
        #expect(server.connectionCount == 0)
    }
}
