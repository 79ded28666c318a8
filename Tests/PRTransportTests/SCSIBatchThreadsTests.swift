import Foundation
import LockDriver
import PRProtocol
import Testing

/// FAKE: a device that takes one command at a time (no batch sender, as
/// SG_IO, the kernel's PR ioctls and qemu-pr-helper) and, on its first
/// command, waits until every device of the test has started one: the
/// rendezvous is met only if the devices run side by side. Each answer's
/// data names the device and the command's place in its own order.
final class RendezvousDevice: SCSITransport, @unchecked Sendable {
    var runsBesideOthers: Bool { true }
    final class Meeting: @unchecked Sendable {
        let expected: Int
        let lock = NSCondition()
        var arrived = 0
        init(expected: Int) { self.expected = expected }

        /// Whether all `expected` devices arrived within two seconds.
        func arriveAndWait() -> Bool {
            lock.lock()
            defer { lock.unlock() }
            arrived += 1
            lock.broadcast()
            let deadline = Date(timeIntervalSinceNow: 2)
            while arrived < expected {
                guard lock.wait(until: deadline) else { return arrived >= expected }
            }
            return true
        }
    }

    let index: UInt8
    let meeting: Meeting
    private(set) var received: [UInt8] = []
    private(set) var met: Bool?

    init(_ index: UInt8, _ meeting: Meeting) {
        self.index = index
        self.meeting = meeting
    }

    var deviceDescription: String { "/dev/fake/rendezvous\(index)" }

    func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        if met == nil { met = meeting.arriveAndWait() }
        received.append(command.cdb[1])
        return SCSIResponse(status: 0, data: [index, UInt8(received.count - 1)])
    }
}

@Suite struct SCSIBatchThreadsTests {
    /// Devices that take one command at a time run side by side, each
    /// device's commands in the order given, every answer in its slot.
    @Test func devicesWithoutABatchSenderRunSideBySideEachInOrder() {
        let meeting = RendezvousDevice.Meeting(expected: 4)
        let devices = (0..<4).map { RendezvousDevice(UInt8($0), meeting) }
        let actions: [PRInAction] = [.readKeys, .readReservation, .reportCapabilities]
        var batch: [(transport: SCSITransport, command: SCSICommand)] = []
        for action in actions {
            for d in devices { batch.append((d, .prIn(action))) }
        }
        let answers = SCSIBatch.send(batch, timeoutMilliseconds: 1000)
        for d in devices {
            #expect(d.met == true, "\(d.deviceDescription) waited alone: the devices ran one after the other")
            #expect(d.received == actions.map { SCSICommand.prIn($0).cdb[1] }, "\(d.deviceDescription)")
        }
        for (k, answer) in answers.enumerated() {
            let expected: [UInt8] = [UInt8(k % devices.count), UInt8(k / devices.count)]
            #expect((try? answer.get().data) == expected, "answer \(k)")
        }
    }

    /// More pieces than threads: every one runs, once.
    @Test func parallelForEachRunsEveryPieceOnce() {
        let count = Parallel.maxThreads * 3 + 1
        let lock = Mutex()
        var seen = [Int](repeating: 0, count: count)
        Parallel.forEach(count) { i in lock.withLock { seen[i] += 1 } }
        #expect(seen == [Int](repeating: 1, count: count))
        var none = 0
        Parallel.forEach(0) { _ in lock.withLock { none += 1 } }
        #expect(none == 0)
    }
}
