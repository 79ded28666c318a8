// sanlock-bench: latency of one acquire+release cycle, side by side, in one
// run against one private daemon: our plugin, libvirt's sanlock.so (both
// through our host library, a fresh manager per operation as libvirt does),
// and the raw client API (the floor). The VM is a registered helper
// process; every call acts on its behalf, like libvirtd resuming and
// pausing a domain.
//
// Usage: sanlock-bench [cycles]            (default 200)
//        sanlock-bench --hold              (internal: the registered "VM")
import CSanlock
import Foundation
import LockDriver
import SanlockCore
import TestSupport

if CommandLine.arguments.dropFirst().first == "--hold" {
    // The "VM": register, say so, keep the registration until stdin closes.
    let fd = sanlock_register()
    guard fd >= 0 else {
        FileHandle.standardError.write(Data("sanlock_register failed: \(fd)\n".utf8))
        exit(1)
    }
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    _ = FileHandle.standardInput.readDataToEndOfFile()
    exit(0)
}

let cycles = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 200
let warmup = 10

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sanlock-bench: \(message)\n".utf8))
    exit(1)
}

let dir = TempDir.make("sanlock-bench")
let leaseDir = "\(dir)/leases"
try FileManager.default.createDirectory(atPath: leaseDir, withIntermediateDirectories: true)
let config = "\(dir)/qemu-sanlock.conf"
TempDir.write("auto_disk_leases = 1\ndisk_lease_dir = \"\(leaseDir)\"\nhost_id = 1\nio_timeout = 1\n", to: config)

let daemon: SanlockDaemon
do { daemon = try SanlockDaemon(name: "lockmgr-bench-\(getpid())") } catch { fail("\(error)") }
defer { daemon.stop() }
setenv("SANLOCK_RUN_DIR", daemon.runDir, 1)

let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let binDir = (selfPath as NSString).deletingLastPathComponent
let ours: LockPlugin
let libvirts: LockPlugin
do {
    ours = try LockPlugin(path: "\(binDir)/liblockmgr_sanlock.so", configFile: config)   // creates and joins the lockspace
    libvirts = try LockPlugin.load(name: "sanlock", pluginDir: BuildProducts.libvirtPluginDir, configFile: config)
} catch { fail("\(error)") }

let holder = Process()
holder.executableURL = URL(fileURLWithPath: selfPath)
holder.arguments = ["--hold"]
let holderOut = Pipe(), holderIn = Pipe()
holder.standardOutput = holderOut
holder.standardInput = holderIn
try holder.run()
defer { try? holderIn.fileHandleForWriting.close(); holder.waitUntilExit() }
guard String(decoding: holderOut.fileHandleForReading.readData(ofLength: 6), as: UTF8.self) == "ready\n" else {
    fail("the registered helper process did not start")
}
let vm = LockObject(uuid: UUIDBytes("6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")!, name: "bench-vm",
                    pid: UInt32(holder.processIdentifier))
let disk = LockResource.disk("/bench/disk.img")

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Runs the cycles interleaved (one of each in turn, after a warm-up), so
/// drift in the shared machine's load hits all of them alike; returns the
/// sorted milliseconds per cycle of each.
func measure(_ cycles: [() throws -> Void], rounds: Int) throws -> [[Double]] {
    for _ in 0..<warmup { for cycle in cycles { try cycle() } }
    var samples = [[Double]](repeating: [], count: cycles.count)
    for _ in 0..<rounds {
        for (i, cycle) in cycles.enumerated() {
            let start = now()
            try cycle()
            samples[i].append(Double(now() - start) / 1e6)
        }
    }
    return samples.map { $0.sorted() }
}

func pluginCycle(_ plugin: LockPlugin) throws {
    let acquiring = try plugin.makeManager(for: vm)
    try acquiring.addResource(disk)
    try acquiring.acquire()
    let releasing = try plugin.makeManager(for: vm)
    try releasing.addResource(disk)
    _ = try releasing.release()
}

// The raw floor: the same lease, acquire and release on behalf of the VM.
let leaseName = MD5.hex(disk.name)
guard let rawResource = csanlock_resource_new("__LIBVIRT__DISKS__", leaseName, "\(leaseDir)/\(leaseName)", 0, 0, 0) else {
    fail("cannot build the raw resource")
}
defer { free(rawResource) }
func rawCycle() throws {
    var res: [UnsafeMutablePointer<sanlk_resource>?] = [rawResource]
    let pid = Int32(vm.pid)
    var rv = sanlock_acquire(-1, pid, 0, 1, &res, nil)
    guard rv == 0 else { throw LockError.backend("raw acquire: \(rv)") }
    rv = sanlock_release(-1, pid, 0, 1, &res)
    guard rv == 0 else { throw LockError.backend("raw release: \(rv)") }
}

let names = ["lockmgr sanlock plugin", "libvirt sanlock.so", "raw client API"]
let results: [(String, [Double])]
do {
    let samples = try measure([{ try pluginCycle(ours) }, { try pluginCycle(libvirts) }, rawCycle], rounds: cycles)
    results = Array(zip(names, samples))
} catch { fail("\(error)") }

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}
func ms(_ v: Double) -> String { String(format: "%8.3f", v) }

print("acquire+release cycle, \(cycles) cycles (+\(warmup) warm-up), lease files on \(leaseDir)")
print("implementation              median ms    p90 ms   mean ms")
for (name, samples) in results {
    let mean = samples.reduce(0, +) / Double(max(samples.count, 1))
    print(name.padding(toLength: 26, withPad: " ", startingAt: 0), ms(percentile(samples, 0.5)), "",
          ms(percentile(samples, 0.9)), ms(mean))
}
let median = results.map { percentile($0.1, 0.5) }
print(String(format: "ratio of medians: ours / libvirt = %.2f, ours / raw = %.2f, libvirt / raw = %.2f",
             median[0] / median[1], median[0] / median[2], median[1] / median[2]))
