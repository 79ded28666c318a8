import Foundation
import Harness
import Testing

/// The real-libvirt flow, written once and run by each plugin's suite
/// (LibvirtdSanlockTests): the same assertions for libvirt's sanlock.so and
/// ours. Each scenario uses its own disks and domain names, so they share
/// one libvirtd.
enum LibvirtdScenario: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case leaseFollowsTheDomain
    case lockManagerRefusesConflicts
    case anotherHostsLeaseRefusesStart

    var testDescription: String {
        switch self {
        case .leaseFollowsTheDomain:
            "start takes the disk lease for the QEMU process, suspend releases it, resume retakes it, destroy frees it"
        case .lockManagerRefusesConflicts:
            "the lock manager refuses a disk or a lease another running domain holds"
        case .anotherHostsLeaseRefusesStart:
            "a disk lease another host holds keeps the domain from starting until that host lets go"
        }
    }

    func run(on scenarios: LibvirtdScenarios) throws {
        switch self {
        case .leaseFollowsTheDomain: try scenarios.leaseFollowsTheDomain()
        case .lockManagerRefusesConflicts: try scenarios.lockManagerRefusesConflicts()
        case .anotherHostsLeaseRefusesStart: try scenarios.anotherHostsLeaseRefusesStart()
        }
    }
}

struct LibvirtdScenarios {
    let host: LibvirtHost
    let plugin: SanlockPluginUnderTest

    func leaseFollowsTheDomain() throws {
        let disk = try host.createDisk("life")
        let lease = try diskLeaseName(disk)
        let vm = host.domain("lm-life-\(getpid())", disks: [disk])

        let started = try host.start(vm)
        try #require(started.status == 0, "virsh create: \(started)\nlibvirtd: \(host.libvirtdLog)")
        let pid = try host.qemuPid(vm.name)
        var status = try host.sanlock.parsedStatus()
        let held = try #require(status.resource(named: lease), "no lease for \(disk) after start:\n\(status)")
        #expect(held.ownerPid == pid, "lease owner vs QEMU pid:\n\(status)")
        #expect(held.lockspace == LibvirtHost.diskLockspace)
        #expect(held.path == "\(host.leaseDir)/\(lease)")
        #expect(status.processes[pid] == vm.name, "QEMU registered under the domain's name:\n\(status)")

        let suspended = host.virsh(["suspend", vm.name])
        try #require(suspended.status == 0, "virsh suspend: \(suspended)")
        status = try host.sanlock.parsedStatus()
        #expect(status.resource(named: lease) == nil, "lease still held while paused:\n\(status)")
        #expect(status.processes[pid] == vm.name, "paused QEMU no longer registered:\n\(status)")

        let resumed = host.virsh(["resume", vm.name])
        try #require(resumed.status == 0, "virsh resume: \(resumed)\nlibvirtd: \(host.libvirtdLog)")
        status = try host.sanlock.parsedStatus()
        let retaken = try #require(status.resource(named: lease), "no lease after resume:\n\(status)")
        #expect(retaken.ownerPid == pid)
        // sanlock bumps the version on every acquisition: this is a new one.
        #expect((retaken.version ?? 0) > (held.version ?? 0), "lease version \(retaken) after \(held)")

        let destroyed = host.virsh(["destroy", vm.name])
        try #require(destroyed.status == 0, "virsh destroy: \(destroyed)")
        #expect(!LibvirtHost.isQEMU(pid, guest: vm.name))
        // The lease goes with QEMU's registered socket; sanlock notices the close.
        let freed = try eventually(within: 5) {
            try host.sanlock.parsedStatus()
        } until: {
            $0.resource(named: lease) == nil && $0.processes[pid] == nil
        }
        #expect(freed.resource(named: lease) == nil, "lease outlived its domain:\n\(freed)")
        #expect(freed.processes[pid] == nil, "QEMU still registered after destroy:\n\(freed)")
    }

    /// QEMU's own image lock would refuse a plain second start on the same
    /// disk before libvirt asks the lock manager (leases are taken when the
    /// CPUs start), so the lock manager's refusal is shown where it decides:
    /// a hot-plugged disk, and an explicit <lease> two domains share.
    func lockManagerRefusesConflicts() throws {
        let diskA = try host.createDisk("hot-a"), diskB = try host.createDisk("hot-b")
        let leaseA = try diskLeaseName(diskA), leaseB = try diskLeaseName(diskB)
        let vmA = host.domain("lm-hot-a-\(getpid())", disks: [diskA])
        let vmB = host.domain("lm-hot-b-\(getpid())", disks: [diskB])
        for vm in [vmA, vmB] {
            let started = try host.start(vm)
            try #require(started.status == 0, "virsh create \(vm.name): \(started)\nlibvirtd: \(host.libvirtdLog)")
        }
        let pidA = try host.qemuPid(vmA.name), pidB = try host.qemuPid(vmB.name)

        // Hot-plug A's disk into B.
        let attach = host.virsh(["attach-disk", vmB.name, diskA, "vdb", "--targetbus", "virtio"])
        #expect(attach.status != 0, "attach-disk of a disk A holds succeeded: \(attach)")
        #expect(attach.stderr.contains(plugin.conflictText), "not the lock manager's refusal: \(attach)")
        #expect(!attach.stderr.contains("Failed to get"), "QEMU's image lock fired, not the lock manager: \(attach)")
        let disksOfB = host.virsh(["domblklist", vmB.name])
        #expect(disksOfB.status == 0 && !disksOfB.stdout.contains(diskA), "B got A's disk anyway: \(disksOfB)")
        var status = try host.sanlock.parsedStatus()
        #expect(status.resource(named: leaseA)?.ownerPid == pidA, "A lost its lease:\n\(status)")
        #expect(status.resource(named: leaseB)?.ownerPid == pidB, "B lost its own lease:\n\(status)")
        #expect(status.resources.filter { $0.ownerPid == pidB }.count == 1, "B holds more than its disk:\n\(status)")

        // Two domains (own disks) sharing one explicit lease.
        let shared = try sharedLease(key: "lm-shared")
        var vmC = host.domain("lm-lease-c-\(getpid())", disks: [try host.createDisk("lease-c")])
        let diskD = try host.createDisk("lease-d")
        var vmD = host.domain("lm-lease-d-\(getpid())", disks: [diskD])
        vmC.leases = [shared]
        vmD.leases = [shared]
        let startedC = try host.start(vmC)
        try #require(startedC.status == 0, "virsh create \(vmC.name): \(startedC)\nlibvirtd: \(host.libvirtdLog)")
        let pidC = try host.qemuPid(vmC.name)
        status = try host.sanlock.parsedStatus()
        #expect(status.resource(named: shared.key)?.ownerPid == pidC, "C does not hold the shared lease:\n\(status)")

        let startedD = try host.start(vmD)
        #expect(startedD.status != 0, "D started although C holds the lease: \(startedD)")
        #expect(startedD.stderr.contains(plugin.conflictText), "not the lock manager's refusal: \(startedD)")
        #expect(host.virsh(["domstate", vmD.name]).status != 0, "D exists after its refused start")
        status = try host.sanlock.parsedStatus()
        #expect(status.resource(named: shared.key)?.ownerPid == pidC, "C lost the shared lease:\n\(status)")
        #expect(status.resource(named: try diskLeaseName(diskD)) == nil, "refused D kept its disk lease:\n\(status)")
        #expect(!status.processes.values.contains(vmD.name), "refused D still registered:\n\(status)")
    }

    /// The shared-storage case the lock manager exists for: a second sanlock
    /// daemon (host_id 2, its own run dir) joined to the same lockspace file
    /// plays another host that holds the disk's lease.
    func anotherHostsLeaseRefusesStart() throws {
        let disk = try host.createDisk("remote")
        let lease = try diskLeaseName(disk)
        let leasePath = "\(host.leaseDir)/\(lease)"
        let hostB = try SanlockDaemon(name: "lockmgr-libvirt-b-\(getpid())")
        defer { hostB.stop() }
        try hostB.join(LibvirtHost.diskLockspace, hostID: 2, path: "\(host.leaseDir)/\(LibvirtHost.diskLockspace)")
        // The lease file libvirt's convention names; both plugins reuse an existing one.
        try hostB.initLease(lockspace: LibvirtHost.diskLockspace, name: lease, path: leasePath)
        // `sanlock client command` registers, acquires, then execs the command (same pid).
        let holder = try SpawnedProcess([
            "/usr/bin/env", "SANLOCK_RUN_DIR=\(hostB.runDir)", "/usr/sbin/sanlock",
            "client", "command", "-r", "\(LibvirtHost.diskLockspace):\(lease):\(leasePath):0",
            "-c", "/bin/sleep", "600",
        ])
        defer { holder.stop(SIGKILL) }
        let onB = try eventually(within: 10) {
            try hostB.parsedStatus()
        } until: {
            $0.resource(named: lease) != nil
        }
        try #require(onB.resource(named: lease)?.ownerPid == holder.pid, "host B does not hold the lease:\n\(onB)")

        let vm = host.domain("lm-remote-\(getpid())", disks: [disk])
        let refused = try host.start(vm)
        #expect(refused.status != 0, "started although host B holds the disk's lease: \(refused)")
        #expect(refused.stderr.contains(plugin.otherHostText), "not the lock manager's refusal: \(refused)")
        #expect(host.virsh(["domstate", vm.name]).status != 0, "the refused domain exists")
        var onA = try host.sanlock.parsedStatus()
        #expect(onA.resource(named: lease) == nil, "host A holds the lease host B has:\n\(onA)")
        #expect(!onA.processes.values.contains(vm.name), "the refused QEMU is still registered:\n\(onA)")

        // Host B lets go (its holder dies); the same domain now starts.
        holder.stop(SIGKILL)
        let freed = try eventually(within: 10) {
            try hostB.parsedStatus()
        } until: {
            $0.resource(named: lease) == nil
        }
        try #require(freed.resource(named: lease) == nil, "host B kept the lease after its holder died:\n\(freed)")
        let started = try host.start(vm)
        try #require(started.status == 0, "virsh create after host B let go: \(started)\nlibvirtd: \(host.libvirtdLog)")
        onA = try host.sanlock.parsedStatus()
        #expect(onA.resource(named: lease)?.ownerPid == (try host.qemuPid(vm.name)), "lease not taken for QEMU:\n\(onA)")
    }

    // MARK: - Helpers

    /// The resource name both plugins give a disk's automatic lease: the
    /// lower-case hex MD5 of its path (libvirt's on-disk convention).
    func diskLeaseName(_ path: String) throws -> String {
        let result = Command.run(["md5sum"], timeout: 10, input: path)
        guard result.status == 0, let hash = result.stdout.split(separator: " ").first else {
            throw FixtureError("md5sum failed: \(result)")
        }
        return String(hash)
    }

    /// A 1 MiB lease file initialised as a sanlock resource in libvirt's disk lockspace.
    func sharedLease(key: String) throws -> TinyDomain.Lease {
        let lease = TinyDomain.Lease(lockspace: LibvirtHost.diskLockspace, key: key, path: "\(host.leaseDir)/\(key).lease")
        try host.sanlock.initLease(lockspace: lease.lockspace, name: key, path: lease.path)
        return lease
    }

    /// Polls `read` every 50 ms until `done` holds or `seconds` pass; returns the last value.
    func eventually<T>(within seconds: TimeInterval, _ read: () throws -> T, until done: (T) -> Bool) throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        var value = try read()
        while !done(value) && Date() < deadline {
            usleep(50_000)
            value = try read()
        }
        return value
    }
}
