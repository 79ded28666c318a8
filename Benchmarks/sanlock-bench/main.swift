// sanlock-bench: acquire, release and handover latency of a VM's disk
// leases, in one run against private daemons: our plugin, libvirt's
// sanlock.so (both through our host library, a fresh manager per
// operation as libvirt does), the raw client calls (the floor) and our nop
// plugin (the host's own cost, no backend). Handover is a migration: host A
// releases and hands its state to host B, whose daemon acquires with it.
// Every case runs interleaved, round after round, at 1 to 8 leases per VM.
//
// Usage: sanlock-bench [--cycles N] [--out DIR]   (sections DIR/sanlock.md and DIR/downtime-sanlock.md, DIR/sanlock-scale.tsv)
//        sanlock-bench --hold                     (internal: the registered "VM")
//        sanlock-bench --host-b CONFIG LEASE_DIR  (internal: host B)
import BenchSupport
import CSanlock
import Foundation
import Harness

let libvirtPluginDir = BuildProducts.libvirtPluginDir

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sanlock-bench: \(message)\n".utf8))
    exit(1)
}

let options: BenchOptions
do { options = try BenchOptions(defaultCycles: 100) } catch { fail("\(error)") }
switch options.rest.first {
case "--hold": holdMain()
case "--host-b": hostBMain(Array(options.rest.dropFirst()))
default: break
}

/// sanlock takes at most SANLK_MAX_RESOURCES leases per process (sanlock.h);
/// libvirt's plugin and ours refuse a ninth.
let maxLeases = Int(SANLK_MAX_RESOURCES)
let scales = [1, 2, 4, 8].filter { $0 <= maxLeases }
let operations = ["acquire", "release", "handover"]
let warmup = 5

// Lease files on tmpfs (O_DIRECT works there since Linux 6.6): the disk's
// latency and noise would hide what the plugins add. --lease-base DIR moves them.
let leaseBase = options.rest.firstIndex(of: "--lease-base").flatMap { options.rest.dropFirst($0 + 1).first } ?? "/dev/shm"
let dir = "\(leaseBase)/lockmgr-sanlock-bench-\(getpid())"
let leaseDir = "\(dir)/leases"
try FileManager.default.createDirectory(atPath: leaseDir, withIntermediateDirectories: true)
func config(hostID: Int) -> String {
    let path = "\(dir)/qemu-sanlock-\(hostID).conf"
    TempDir.write("auto_disk_leases = 1\ndisk_lease_dir = \"\(leaseDir)\"\nhost_id = \(hostID)\nio_timeout = 1\n", to: path)
    return path
}

let loadAtStart = loadAverage()
let daemonA: SanlockDaemon, daemonB: SanlockDaemon
do {
    daemonA = try SanlockDaemon(name: "lockmgr-bench-a-\(getpid())")
    daemonB = try SanlockDaemon(name: "lockmgr-bench-b-\(getpid())")
} catch { fail("\(error)") }
setenv("SANLOCK_RUN_DIR", daemonA.runDir, 1)

// samples[operation][resources][implementation]
var samples: [String: [Int: [String: Samples]]] = [:]
do {
    let hostA = try BenchHost(
        config: config(hostID: 1), leaseDir: leaseDir, binDir: binDir,
        libvirtPluginDir: libvirtPluginDir)  // creates the lockspace, joins as host 1
    defer { hostA.stop() }
    let hostB = try HostBProxy(config: config(hostID: 2), leaseDir: leaseDir, environment: daemonB.environment)
    defer { hostB.stop() }

    for count in scales {
        let vmDisks = disks(count)
        for round in 0..<(warmup + options.cycles) {
            // Rotate the order each round so no implementation always follows another.
            let impls = BenchHost.backends
            for i in impls.indices {
                let impl = impls[(i + round) % impls.count]
                let acquire = try hostA.acquire(impl, disks: vmDisks, state: nil)
                let release = try hostA.release(impl, disks: vmDisks)
                let takeover = try hostB.acquire(impl, count: count, state: release.state)
                try hostB.release(impl, count: count)
                guard round >= warmup else { continue }
                for (op, micros) in zip(operations, [acquire, release.micros, release.micros + takeover]) {
                    samples[op, default: [:]][count, default: [:]][impl, default: Samples()].add(micros)
                }
                samples[SanlockDowntime.destinationAcquire, default: [:]][count, default: [:]][impl, default: Samples()].add(takeover)
                if let preparation = release.preparation {
                    samples[SanlockReport.preparation, default: [:]][count, default: [:]][impl, default: Samples()].add(preparation)
                }
            }
        }
        // nop has no backend: microseconds, which waking up between the
        // other cases' pipe round trips would dominate; it runs hot, alone.
        for round in 0..<(warmup + options.cycles) * 10 {
            let acquire = try hostA.acquire("nop", disks: vmDisks, state: nil)
            let release = try hostA.release("nop", disks: vmDisks)
            guard round >= warmup * 10 else { continue }
            samples["acquire", default: [:]][count, default: [:]]["nop", default: Samples()].add(acquire)
            samples["release", default: [:]][count, default: [:]]["nop", default: Samples()].add(release.micros)
        }
        // The same first part of a release, hot: what it costs in CPU alone.
        for round in 0..<(warmup + options.cycles) * 10 {
            for impl in ["ours", "libvirt"] {
                let micros = try hostA.prepare(impl, disks: vmDisks)
                guard round >= warmup * 10 else { continue }
                samples[SanlockReport.hotPreparation, default: [:]][count, default: [:]][impl, default: Samples()].add(micros)
            }
        }
    }
} catch {
    daemonA.stop(); daemonB.stop()
    try? FileManager.default.removeItem(atPath: dir)
    fail("\(error)")
}
daemonA.stop()
daemonB.stop()

let fsType = Command.run(["stat", "-f", "-c", "%T", leaseDir], timeout: 5).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
try? FileManager.default.removeItem(atPath: dir)
do {
    try Section.write(
        name: "sanlock",
        markdown: SanlockReport.markdown(
            samples, scales: scales, cycles: options.cycles,
            warmup: warmup, fsType: fsType, load: loadAtStart),
        scale: SanlockReport.scalePoints(samples, scales: scales), to: options.outDir)
    try Section.write(
        name: "downtime-sanlock",
        markdown: SanlockDowntime.markdown(samples, scales: scales, cycles: options.cycles, load: loadAtStart), to: options.outDir)
} catch { fail("cannot write the section: \(error)") }
