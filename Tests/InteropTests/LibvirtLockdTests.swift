import Foundation
import Glibc
import LockDriver
import Testing
import TestSupport

/// libvirt's own lockd.so (Debian libvirt-daemon) loaded by our host and
/// driven against a REAL virtlockd that the test starts privately (see
/// PrivateRunDir for why a mount namespace is needed) and stops.
/// lockd.so is configured for indirect file leases: each disk gets a lease
/// file named by the SHA-256 of its path in `file_lockspace_dir`, held
/// with an fcntl lock by virtlockd.
@Suite struct LibvirtLockdTests {
    static let lockdPlugin = "\(BuildProducts.libvirtPluginDir)/lockd.so"

    /// What happened inside the private namespace, checked afterwards.
    struct Observations {
        var threadNamespace: String?
        var daemonNamespace: String?
        var daemonPid: Int32 = 0
        var version = ABIVersion(rawValue: 0)
        var flags = DriverFlags()
        var fdA: Int32?
        var leaseExistsWhileHeld = false
        var leaseLockedBy: Int32?
        var inquireA: Result<String?, LockError> = .success("not called")
        var acquireB: Result<Int32?, LockError> = .success(nil)
        var releaseA: Result<String?, LockError> = .success("not called")
        var leaseExistsAfterRelease = true
        var acquireBAfterRelease: Result<Int32?, LockError> = .success(nil)
        var releaseB: Result<String?, LockError> = .success("not called")
        var daemonExit: Int32?
        var daemonLog = ""
    }

    @Test func exclusionThroughARealVirtlockd() throws {
        try #require(FileManager.default.fileExists(atPath: Self.lockdPlugin),
                     "\(Self.lockdPlugin) is missing: install the Debian package libvirt-daemon")
        let dir = TempDir.make("lockd")
        let runDir = "\(dir)/run", lockspace = "\(dir)/lockspace", disk = "\(dir)/disk.img"
        for d in [runDir, lockspace] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        TempDir.write("", to: disk)
        let config = "\(dir)/qemu-lockd.conf"
        TempDir.write("""
            auto_disk_leases = 1
            file_lockspace_dir = "\(lockspace)"
            require_lease_for_disks = 1

            """, to: config)
        let leaseFile = "\(lockspace)/\(try sha256(disk))"

        // Stand-ins for the two VMs' QEMU processes: lockd registers the
        // lock owner by pid. They are not this process, so virtlockd never
        // treats the test itself as a lock holder to kill.
        let vmA = try SpawnedProcess(["/bin/sleep", "60"]), vmB = try SpawnedProcess(["/bin/sleep", "60"])
        defer { vmA.stop(); vmB.stop() }
        let objectA = LockObject(uuid: try #require(UUIDBytes("3f2b9a10-0c1d-4e5f-8a9b-0c1d2e3f4a5b")), name: "vm-a", id: 1,
                                 pid: UInt32(vmA.pid))
        let objectB = LockObject(uuid: try #require(UUIDBytes("7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9")), name: "vm-b", id: 2,
                                 pid: UInt32(vmB.pid))

        let seen = try PrivateRunDir.run(runDir) { () throws -> Observations in
            var o = Observations()
            o.threadNamespace = PrivateRunDir.currentThreadNamespace
            let daemon = try PrivateVirtlockd(runDir: runDir, workDir: dir)
            o.daemonPid = daemon.pid
            o.daemonNamespace = PrivateRunDir.namespace(ofPid: daemon.pid)
            do {
                // drvInit connects to virtlockd to create the file lockspace.
                let plugin = try LockPlugin(path: Self.lockdPlugin, configFile: config)
                o.version = plugin.version
                o.flags = plugin.flags
                do {
                    let a = try plugin.makeManager(for: objectA, flags: .started)
                    try a.addResource(.disk(disk))
                    o.fdA = try a.acquire()
                    if let fd = o.fdA { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }   // keep it out of other tests' children
                    o.leaseExistsWhileHeld = FileManager.default.fileExists(atPath: leaseFile)
                    o.leaseLockedBy = lockHolder(leaseFile)
                    o.inquireA = Result { () throws(LockError) in try a.inquire() }

                    let b = try plugin.makeManager(for: objectB, flags: .started)
                    try b.addResource(.disk(disk))
                    o.acquireB = Result { () throws(LockError) in try b.acquire() }

                    o.releaseA = Result { () throws(LockError) in try a.release() }
                    o.leaseExistsAfterRelease = FileManager.default.fileExists(atPath: leaseFile)
                    if let fd = o.fdA { close(fd) }

                    let b2 = try plugin.makeManager(for: objectB)
                    try b2.addResource(.disk(disk))
                    o.acquireBAfterRelease = Result { () throws(LockError) in try b2.acquire() }
                    if case .success(let fd?) = o.acquireBAfterRelease { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                    o.releaseB = Result { () throws(LockError) in try b2.release() }
                    if case .success(let fd?) = o.acquireBAfterRelease { close(fd) }
                }
                try plugin.unload()
            } catch {
                daemon.stop()
                throw error
            }
            o.daemonExit = daemon.stop()
            o.daemonLog = daemon.log
            return o
        }

        // The daemon really was private: in this thread's namespace, not the process's.
        #expect(seen.daemonNamespace != nil && seen.daemonNamespace == seen.threadNamespace)
        #expect(seen.daemonNamespace != PrivateRunDir.processNamespace)

        #expect(seen.version == ABIVersion.current)
        #expect(seen.flags == [])                       // lockd keeps no state strings
        #expect(seen.fdA != nil)                        // the registration socket, to leak into the VM
        #expect(seen.leaseExistsWhileHeld, "no lease file \(leaseFile) while vm-a holds the disk")
        #expect(seen.leaseLockedBy == seen.daemonPid, "lease file not fcntl-locked by virtlockd (pid \(seen.daemonPid))")
        #expect(try seen.inquireA.get() == nil)

        // The second VM is refused with libvirt's own words, read through
        // virGetLastErrorMessage by our host.
        let conflict = #expect(throws: LockError.self) { try seen.acquireB.get() }
        #expect(conflict?.kind == .conflict, "\(String(describing: conflict))")
        #expect(conflict?.message.contains("Lockspace resource '\(try sha256(disk))' is locked") == true,
                "\(String(describing: conflict))")

        #expect(try seen.releaseA.get() == nil)
        #expect(!seen.leaseExistsAfterRelease, "lease file still present after release")
        #expect(try seen.acquireBAfterRelease.get() != nil)   // really released: vm-b gets it now
        #expect(try seen.releaseB.get() == nil)
        #expect(seen.daemonExit == 0, "virtlockd did not stop cleanly; log: \(seen.daemonLog)")
    }

    private func sha256(_ text: String) throws -> String {
        let result = Command.run(["sha256sum"], timeout: 10, input: text)
        let hash = try #require(result.stdout.split(separator: " ").first.map(String.init), "\(result)")
        try #require(hash.count == 64, "\(result)")
        return hash
    }

    /// The pid holding a conflicting fcntl lock on `path`, or nil if none.
    private func lockHolder(_ path: String) -> Int32? {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var query = flock()
        query.l_type = Int16(F_WRLCK)
        query.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &query) == 0, query.l_type != Int16(F_UNLCK) else { return nil }
        return query.l_pid
    }
}
