import BenchSupport
import CSanlock
import Glibc
import LockDriver
import SanlockCore

/// One way of taking and giving back a VM's disk leases, acting on behalf
/// of the VM's registered process as libvirtd does on resume and pause.
protocol LeaseOps {
    /// Microseconds the last operation spent before talking to the daemon
    /// (a plugin's drvNew + drvAddResource), if it has such a part.
    var preparation: Double? { get }
    func acquire(vm: LockObject, disks: [String], state: String?) throws
    /// Releases the disks' leases and returns the state a migration
    /// destination needs (libvirt always asks for it on release).
    func release(vm: LockObject, disks: [String]) throws -> String?
}

/// Through a plugin and our host library, with a fresh manager per
/// operation (libvirt creates one per acquire and per release).
final class PluginOps: LeaseOps {
    let plugin: LockPlugin
    private(set) var preparation: Double?

    init(plugin: LockPlugin) { self.plugin = plugin }

    private func manager(_ vm: LockObject, _ disks: [String]) throws -> LockManager {
        var manager: LockManager?
        preparation = try Clock.time {
            manager = try plugin.makeManager(for: vm)
            for disk in disks { try manager?.addResource(.disk(disk)) }
        }
        guard let manager else { throw BenchFailure("no manager") }
        return manager
    }

    func acquire(vm: LockObject, disks: [String], state: String?) throws {
        try manager(vm, disks).acquire(state: state)
    }

    func release(vm: LockObject, disks: [String]) throws -> String? {
        try manager(vm, disks).release()
    }
}

/// The floor: the fewest sanlock client calls that do the same. Acquire is
/// one sanlock_acquire of every lease (with the state's lease versions when
/// given one); release is sanlock_inquire (the state) plus one
/// sanlock_release. The resource structs are built once, outside the timing.
final class RawOps: LeaseOps {
    private let leaseDir: String
    private var resources: [String: UnsafeMutablePointer<sanlk_resource>] = [:]

    let preparation: Double? = nil

    init(leaseDir: String) { self.leaseDir = leaseDir }

    deinit { for resource in resources.values { free(resource) } }

    /// Builds the resource structs of `disks` (call before timing).
    func prepare(_ disks: [String]) throws {
        for disk in disks where resources[disk] == nil {
            let name = MD5.hex(disk)
            guard let resource = csanlock_resource_new(SanlockLease.autoLockspace, name, "\(leaseDir)/\(name)", 0, 0, 0) else {
                throw BenchFailure("cannot build the sanlock resource of \(disk)")
            }
            resources[disk] = resource
        }
    }

    private func pointers(_ disks: [String]) throws -> [UnsafeMutablePointer<sanlk_resource>?] {
        try disks.map { disk in
            guard let resource = resources[disk] else { throw BenchFailure("raw resource of \(disk) not prepared") }
            return resource
        }
    }

    func acquire(vm: LockObject, disks: [String], state: String?) throws {
        let pid = Int32(truncatingIfNeeded: vm.pid)
        guard let state else {
            var res = try pointers(disks)
            let rv = sanlock_acquire(-1, pid, 0, Int32(res.count), &res, nil)
            guard rv == 0 else { throw BenchFailure("raw sanlock_acquire of \(disks.count) leases: \(rv)") }
            return
        }
        var count: Int32 = 0
        var parsed: UnsafeMutablePointer<UnsafeMutablePointer<sanlk_resource>?>? = nil
        var text = Array(state.utf8CString)
        let prv = text.withUnsafeMutableBufferPointer { sanlock_state_to_args($0.baseAddress, &count, &parsed) }
        guard prv == 0, let parsed else { throw BenchFailure("raw sanlock_state_to_args(\(state)): \(prv)") }
        defer { csanlock_resources_free(parsed, count); free(parsed) }
        let rv = sanlock_acquire(-1, pid, 0, count, parsed, nil)
        guard rv == 0 else { throw BenchFailure("raw sanlock_acquire with state of \(count) leases: \(rv)") }
    }

    func release(vm: LockObject, disks: [String]) throws -> String? {
        let pid = Int32(truncatingIfNeeded: vm.pid)
        var count: Int32 = 0
        var state: UnsafeMutablePointer<CChar>? = nil
        let irv = sanlock_inquire(-1, pid, 0, &count, &state)
        defer { free(state) }
        guard irv == 0 else { throw BenchFailure("raw sanlock_inquire: \(irv)") }
        var res = try pointers(disks)
        let rv = sanlock_release(-1, pid, 0, Int32(res.count), &res)
        guard rv == 0 else { throw BenchFailure("raw sanlock_release of \(disks.count) leases: \(rv)") }
        return state.map { String(cString: $0) }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
