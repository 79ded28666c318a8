import Foundation
import Glibc
import Harness
import LockDriver
import Testing

/// libvirt's own lockd.so (Debian libvirt-daemon) loaded by our host and
/// driven against a REAL virtlockd that each test starts privately (see
/// PrivateRunDir for why a mount namespace is needed) and stops.
/// Serialized: lockd.so keeps its configuration in a process-wide static.
@Suite(.serialized) struct LibvirtLockdTests {
    /// Stand-ins for the VMs' QEMU processes: lockd registers the lock owner
    /// by pid. They are not this process, so virtlockd never treats the
    /// test itself as a lock holder to kill when a connection closes.
    private func vm(_ name: String, _ uuid: String, id: UInt32, process: SpawnedProcess) throws -> LockObject {
        LockObject(uuid: try #require(UUIDBytes(uuid)), name: name, id: id, pid: UInt32(process.pid))
    }

    @Test func exclusionThroughARealVirtlockd() throws {
        let session = try LockdSession()
        let disk = session.disk("disk.img")
        let leaseFile = try session.leaseFile(for: disk)
        let qemuA = try SpawnedProcess(["/bin/sleep", "60"]), qemuB = try SpawnedProcess(["/bin/sleep", "60"])
        defer { qemuA.stop(); qemuB.stop() }
        let vmA = try vm("vm-a", "3f2b9a10-0c1d-4e5f-8a9b-0c1d2e3f4a5b", id: 1, process: qemuA)
        let vmB = try vm("vm-b", "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9", id: 2, process: qemuB)

        struct Seen {
            var version = ABIVersion(rawValue: 0), flags = DriverFlags()
            var fdA: Int32?
            var leaseExistsWhileHeld = false
            var leaseLockedBy: Int32?
            var inquireA: Result<String?, LockError> = .success("not called")
            var acquireB: Result<Int32?, LockError> = .success(nil)
            var releaseA: Result<String?, LockError> = .success("not called")
            var leaseExistsAfterRelease = true
            var acquireBAfterRelease: Result<Int32?, LockError> = .success(nil)
            var releaseB: Result<String?, LockError> = .success("not called")
        }
        let (seen, daemon) = try session.run { plugin in
            var o = Seen(version: plugin.version, flags: plugin.flags)
            let a = try plugin.makeManager(for: vmA, flags: .started)
            try a.addResource(.disk(disk))
            o.fdA = try a.acquire()
            LockdSession.keepPrivate(o.fdA)
            o.leaseExistsWhileHeld = FileManager.default.fileExists(atPath: leaseFile)
            o.leaseLockedBy = LockdSession.lockHolder(leaseFile)
            o.inquireA = Result { () throws(LockError) in try a.inquire() }

            let b = try plugin.makeManager(for: vmB, flags: .started)
            try b.addResource(.disk(disk))
            o.acquireB = Result { () throws(LockError) in try b.acquire() }

            o.releaseA = Result { () throws(LockError) in try a.release() }
            o.leaseExistsAfterRelease = FileManager.default.fileExists(atPath: leaseFile)
            if let fd = o.fdA { close(fd) }

            let b2 = try plugin.makeManager(for: vmB)
            try b2.addResource(.disk(disk))
            o.acquireBAfterRelease = Result { () throws(LockError) in try b2.acquire() }
            LockdSession.keepPrivate(try? o.acquireBAfterRelease.get())
            o.releaseB = Result { () throws(LockError) in try b2.release() }
            if case .success(let fd?) = o.acquireBAfterRelease { close(fd) }
            return o
        }

        // The daemon really was private: in the test thread's own namespace.
        #expect(daemon.namespace != nil && daemon.namespace == daemon.threadNamespace)
        #expect(daemon.namespace != PrivateRunDir.processNamespace)

        #expect(seen.version == ABIVersion.current)
        #expect(seen.flags == [])  // lockd keeps no state strings
        #expect(seen.fdA != nil)  // the registration socket, to leak into the VM
        #expect(seen.leaseExistsWhileHeld, "no lease file \(leaseFile) while vm-a holds the disk")
        #expect(seen.leaseLockedBy == daemon.pid, "lease file not fcntl-locked by virtlockd (pid \(daemon.pid))")
        #expect(try seen.inquireA.get() == nil)

        // The second VM is refused with libvirt's own words, read through
        // virGetLastErrorMessage by our host, and classed as a conflict
        // (VIR_ERR_RESOURCE_BUSY).
        let conflict = #expect(throws: LockError.self) { try seen.acquireB.get() }
        #expect(conflict?.kind == .conflict, "\(String(describing: conflict))")
        #expect(
            conflict?.message == "resource busy: Lockspace resource '\(try LockdSession.sha256(disk))' is locked",
            "\(String(describing: conflict))")

        #expect(try seen.releaseA.get() == nil)
        #expect(!seen.leaseExistsAfterRelease, "lease file still present after release")
        #expect(try seen.acquireBAfterRelease.get() != nil)  // really released: vm-b gets it now
        #expect(try seen.releaseB.get() == nil)
        #expect(daemon.exitStatus == 0, "virtlockd did not stop cleanly; log: \(daemon.log)")
    }

    /// Our host's access-mode flags mean to a real C plugin what libvirt's
    /// mean: SHARED disks are shared with other SHARED users but exclude
    /// an exclusive one; READONLY disks take no lease at all.
    @Test func sharedAndReadOnlyDisksKeepLibvirtsMeaning() throws {
        let session = try LockdSession()
        let disk = session.disk("shared.img")
        let leaseFile = try session.leaseFile(for: disk)
        let qemus = try (0..<4).map { _ in try SpawnedProcess(["/bin/sleep", "60"]) }
        defer { qemus.forEach { $0.stop() } }
        let vms = try [
            vm("vm-s1", "a0000000-0000-4000-8000-000000000001", id: 1, process: qemus[0]),
            vm("vm-s2", "a0000000-0000-4000-8000-000000000002", id: 2, process: qemus[1]),
            vm("vm-x", "a0000000-0000-4000-8000-000000000003", id: 3, process: qemus[2]),
            vm("vm-ro", "a0000000-0000-4000-8000-000000000004", id: 4, process: qemus[3]),
        ]

        struct Seen {
            var shared: [Result<Int32?, LockError>] = []
            var exclusive: Result<Int32?, LockError> = .success(nil)
            var readOnly: Result<Int32?, LockError> = .success(nil)
            var leaseLockedBy: Int32?
            var released: [Result<String?, LockError>] = []
        }
        let (seen, daemon) = try session.run { plugin in
            var o = Seen()
            var holders: [LockManager] = []
            for vm in vms[0..<2] {
                let m = try plugin.makeManager(for: vm, flags: .started)
                try m.addResource(.disk(disk, mode: .shared))
                let r = Result { () throws(LockError) in try m.acquire() }
                LockdSession.keepPrivate(try? r.get())
                o.shared.append(r)
                holders.append(m)
            }
            o.leaseLockedBy = LockdSession.lockHolder(leaseFile)

            let x = try plugin.makeManager(for: vms[2], flags: .started)
            try x.addResource(.disk(disk))
            o.exclusive = Result { () throws(LockError) in try x.acquire() }

            let ro = try plugin.makeManager(for: vms[3], flags: .started)
            try ro.addResource(.disk(disk, mode: .readOnly))
            o.readOnly = Result { () throws(LockError) in try ro.acquire() }
            LockdSession.keepPrivate(try? o.readOnly.get())

            o.released = holders.map { m in Result { () throws(LockError) in try m.release() } }
            for case .success(let fd?) in o.shared + [o.readOnly] { close(fd) }
            return o
        }

        #expect(seen.shared.count == 2)
        for r in seen.shared { #expect(try r.get() != nil) }
        // A shared lease is still a lock on the lease file (a read lock) held by virtlockd.
        #expect(seen.leaseLockedBy == daemon.pid)
        let refused = #expect(throws: LockError.self) { try seen.exclusive.get() }
        #expect(refused?.kind == .conflict)
        #expect(
            refused?.message.contains("Lockspace resource '\(try LockdSession.sha256(disk))' is locked") == true,
            "\(String(describing: refused))")
        #expect(try seen.readOnly.get() != nil)
        for r in seen.released { #expect(try r.get() == nil) }
        #expect(daemon.exitStatus == 0, "virtlockd did not stop cleanly; log: \(daemon.log)")
    }
}
