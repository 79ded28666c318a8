import Foundation
import Harness
import LockDriver
import PRProtocol
import PRTestSupport
import PRTransport
import Testing

/// PRHelperTransport against the REAL qemu-pr-helper (Debian
/// qemu-system-common), started privately per test. There is no SCSI LU on
/// this machine, so the helper's own SG_IO fails; what is tested is the
/// client side of the protocol against the real peer.
///
/// Observed with qemu-pr-helper 7.2 on a regular file and on /dev/null:
/// every PR IN/OUT is answered with a well-formed 104-byte reply — SCSI
/// status CHECK CONDITION, payload size 0, and 96 sense bytes holding
/// fixed-format sense 70h, ABORTED COMMAND (0Bh), ASC/ASCQ 00h/06h
/// (I/O PROCESS TERMINATED: how the helper reports a failed SG_IO). The
/// connection stays open for further commands.
@Suite("qemu-pr-helper transport (real qemu-pr-helper)")
struct QemuPRHelperTests {
    let dir = TempDir.make("qemu-pr-helper")

    func lun() -> String {
        let path = "\(dir)/lun.img"
        TempDir.write(String(repeating: "x", count: 4096), to: path)
        return path
    }

    @Test(arguments: ["file", "/dev/null"])
    func everySCSICommandGetsAWellFormedCheckConditionForANonSCSIDescriptor(device: String) throws {
        let helper = try QemuPRHelperProcess(directory: dir)
        defer { helper.stop() }
        let path = device == "file" ? lun() : device
        let client = try PRHelperTransport(socketPath: helper.socketPath, devicePath: path, timeoutMilliseconds: 5000)
        #expect(client.helperFeatures == 0)
        let initiator = Initiator(transport: client, timeout: 5000)
        let replies = [
            try initiator.prIn(.readKeys, allocationLength: 8192),
            try initiator.prIn(.readReservation, allocationLength: 24),
            try initiator.prIn(.reportCapabilities, allocationLength: 8),
            try initiator.prOut(.register, key: 0, serviceActionKey: 0xABCD),
            try initiator.prOut(.reserve, key: 0xABCD, type: PRType.writeExclusive),
        ]
        for reply in replies {
            #expect(reply.status == Status.checkCondition)
            #expect(reply.data.isEmpty)
            #expect(senseTriple(reply) == [0x0B, 0x00, 0x06])
        }
        #expect(!helper.logText().contains("closing socket"), "\(helper.logText())")
        if device == "file" {
            #expect(try String(contentsOfFile: path, encoding: .utf8) == String(repeating: "x", count: 4096))
        }
    }

    @Test func aCrashedHelperIsAnErrorNamingTheSocketAndDevice() throws {
        let helper = try QemuPRHelperProcess(directory: dir)
        let path = lun()
        let client = try PRHelperTransport(socketPath: helper.socketPath, devicePath: path, timeoutMilliseconds: 5000)
        #expect(try Initiator(transport: client).prIn(.readKeys).status == Status.checkCondition)
        helper.crash()
        let error = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys) }
        #expect(error?.kind == .backend)
        #expect(error?.message.hasPrefix("qemu-pr-helper at \(helper.socketPath)") == true, "\(String(describing: error))")
        #expect(error?.message.contains("for \(path)") == true)
        // Reconnecting finds nobody listening either.
        let again = lockError { () throws(LockError) in _ = try Initiator(transport: client).prIn(.readKeys) }
        #expect(again?.message.contains("connect failed") == true, "\(String(describing: again))")
    }

    @Test func separateConnectionsAreServedIndependently() throws {
        let helper = try QemuPRHelperProcess(directory: dir)
        defer { helper.stop() }
        let path = lun()
        let clients = try (0..<3).map { _ in
            try PRHelperTransport(socketPath: helper.socketPath, devicePath: path, timeoutMilliseconds: 5000)
        }
        for client in clients.reversed() {
            #expect(try Initiator(transport: client, timeout: 5000).prIn(.readKeys).status == Status.checkCondition)
        }
    }
}
