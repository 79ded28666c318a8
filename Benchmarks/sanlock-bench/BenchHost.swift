import BenchSupport
import CSanlock
import Foundation
import LockDriver

/// One simulated host in one process: every implementation, loaded with
/// this host's config (its daemon is found through SANLOCK_RUN_DIR), and a
/// registered helper process standing for the VM.
final class BenchHost {
    /// The cases with a backend, measured interleaved; nop runs apart.
    static let backends = ["ours", "libvirt", "floor"]

    let vm: LockObject
    private let ops: [String: LeaseOps]
    private let raw: RawOps
    private let holder: Process
    private let holderIn = Pipe()

    init(config: String, leaseDir: String, binDir: String, libvirtPluginDir: String) throws {
        // Our plugin first: it creates the lockspace and joins it.
        let ours = try LockPlugin(path: "\(binDir)/liblockmgr_sanlock.so", configFile: config)
        let libvirts = try LockPlugin.load(name: "sanlock", pluginDir: libvirtPluginDir, configFile: config)
        let nop = try LockPlugin(path: "\(binDir)/liblockmgr_nop.so", configFile: nil)
        raw = RawOps(leaseDir: leaseDir)
        ops = [
            "ours": PluginOps(plugin: ours), "libvirt": PluginOps(plugin: libvirts),
            "floor": raw, "nop": PluginOps(plugin: nop),
        ]

        holder = Process()
        holder.executableURL = URL(fileURLWithPath: selfPath)
        holder.arguments = ["--hold"]
        let holderOut = Pipe()
        holder.standardOutput = holderOut
        holder.standardInput = holderIn
        try holder.run()
        guard String(decoding: holderOut.fileHandleForReading.readData(ofLength: 6), as: UTF8.self) == "ready\n" else {
            throw BenchFailure("the registered helper process (the VM) did not start")
        }
        vm = LockObject(
            uuid: UUIDBytes("6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")!, name: "bench-vm",
            pid: UInt32(holder.processIdentifier))
    }

    func stop() {
        try? holderIn.fileHandleForWriting.close()
        holder.waitUntilExit()
    }

    private func impl(_ name: String) throws -> LeaseOps {
        guard let impl = ops[name] else { throw BenchFailure("unknown implementation \(name)") }
        return impl
    }

    func acquire(_ name: String, disks: [String], state: String?) throws -> Double {
        let impl = try impl(name)
        try raw.prepare(disks)
        return try Clock.time { try impl.acquire(vm: vm, disks: disks, state: state) }
    }

    /// A manager with the disks added and dropped: drvNew, drvAddResource
    /// per disk, drvFree; no daemon call.
    func prepare(_ name: String, disks: [String]) throws -> Double {
        guard let plugin = (ops[name] as? PluginOps)?.plugin else { throw BenchFailure("\(name) is not a plugin") }
        return try Clock.time {
            let manager = try plugin.makeManager(for: vm)
            for disk in disks { try manager.addResource(.disk(disk)) }
        }
    }

    func release(_ name: String, disks: [String]) throws -> (micros: Double, state: String?, preparation: Double?) {
        let impl = try impl(name)
        try raw.prepare(disks)
        var state: String?
        let micros = try Clock.time { state = try impl.release(vm: vm, disks: disks) }
        return (micros, state, impl.preparation)
    }
}

/// The VM: registers with the daemon, says so, and keeps the registration
/// until its stdin closes.
func holdMain() -> Never {
    let fd = sanlock_register()
    guard fd >= 0 else {
        FileHandle.standardError.write(Data("sanlock_register failed: \(fd)\n".utf8))
        exit(1)
    }
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    _ = FileHandle.standardInput.readDataToEndOfFile()
    exit(0)
}

let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let binDir = (selfPath as NSString).deletingLastPathComponent

func disks(_ count: Int) -> [String] { (0..<count).map { "/bench/disk-\($0).img" } }
