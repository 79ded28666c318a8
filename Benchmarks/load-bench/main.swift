// load-bench: what loading a lock plugin costs its host, ours (nop,
// sanlock, pr) against libvirt's C plugins (lockd.so, sanlock.so). Each
// sample is a fresh process (plugin-load-probe, in C, the same for every
// plugin) timing dlopen + dlsym + drvInit and the resident memory it adds;
// samples of all plugins are interleaved. The sanlock plugins initialise
// against a private daemon whose lockspace is already joined, so drvInit
// is what libvirtd's start-up sees on a host already in the cluster.
//
// Usage: load-bench [--cycles N] [--out DIR]      (section DIR/load.md)
import BenchSupport
import Foundation
import Harness

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("load-bench: \(message)\n".utf8))
    exit(1)
}

let options: BenchOptions
do { options = try BenchOptions(defaultCycles: 100) } catch { fail("\(error)") }
let binDir = BuildProducts.binDir
let probe = "\(binDir)/plugin-load-probe"

struct Candidate {
    var label: String
    var path: String
    var config: String
    var loads = Samples()
    var opens = Samples()
    var resident = Samples()
    var dirty = Samples()
}

let dir = TempDir.make("load-bench")
let leaseDir = "\(dir)/leases"
try FileManager.default.createDirectory(atPath: leaseDir, withIntermediateDirectories: true)
let sanlockConfig = "\(dir)/qemu-sanlock.conf"
TempDir.write("auto_disk_leases = 1\ndisk_lease_dir = \"\(leaseDir)\"\nhost_id = 1\nio_timeout = 1\n", to: sanlockConfig)
let emptyConfig = "\(dir)/empty.conf"
TempDir.write("", to: emptyConfig)

var candidates = [
    Candidate(label: "lockmgr nop", path: "\(binDir)/liblockmgr_nop.so", config: "-"),
    Candidate(label: "lockmgr sanlock", path: "\(binDir)/liblockmgr_sanlock.so", config: sanlockConfig),
    Candidate(label: "lockmgr pr", path: "\(binDir)/liblockmgr_pr.so", config: "-"),
    Candidate(label: "libvirt lockd.so", path: "\(BuildProducts.libvirtPluginDir)/lockd.so", config: emptyConfig),
    Candidate(label: "libvirt sanlock.so", path: "\(BuildProducts.libvirtPluginDir)/sanlock.so", config: sanlockConfig),
]

let loadAtStart = loadAverage()
let daemon: SanlockDaemon
do { daemon = try SanlockDaemon(name: "lockmgr-load-bench-\(getpid())") } catch { fail("\(error)") }

func sample(_ c: Candidate) throws -> (micros: Double, open: Double, rss: Double, dirty: Double) {
    let result = Command.run([probe, c.path, c.config], environment: daemon.environment, timeout: 60)
    let fields = result.stdout.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    guard result.status == 0, fields.count == 4 else { throw BenchError("\(c.label): \(result)") }
    return (fields[0], fields[1], fields[2], fields[3])
}

do {
    // The first load of our sanlock plugin creates the lockspace and joins
    // it (seconds); every later drvInit finds it joined. Then a warm-up.
    for c in candidates { _ = try sample(c) }
    for round in 0..<options.cycles {
        for i in candidates.indices {
            let k = (i + round) % candidates.count
            let s = try sample(candidates[k])
            candidates[k].loads.add(s.micros)
            candidates[k].opens.add(s.open)
            candidates[k].resident.add(s.rss)
            candidates[k].dirty.add(s.dirty)
        }
    }
} catch {
    daemon.stop()
    fail("\(error)")
}
daemon.stop()

func fileSize(_ path: String) -> Double {
    ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.doubleValue ?? .nan) / 1024
}

/// The size after `strip --strip-unneeded` (what an installer could ship).
func strippedSize(_ path: String) -> Double {
    let copy = "\(dir)/stripped.so"
    defer { try? FileManager.default.removeItem(atPath: copy) }
    guard Command.run(["strip", "--strip-unneeded", "-o", copy, path], timeout: 60).status == 0 else { return .nan }
    return fileSize(copy)
}

let reference = candidates.first { $0.label == "libvirt sanlock.so" }
var lines = [
    "## Plugin load and initialisation",
    "",
    "Each sample is a fresh process (`plugin-load-probe`, C) that first loads and initialises libvirt.so.0 (as in libvirtd),",
    "then times `dlopen` + `dlsym(virLockDriverImpl)` + `drvInit` and reads the resident set before and after",
    "(`/proc/self/smaps_rollup`). \(options.cycles) samples per plugin, interleaved; load average at start: \(loadAtStart).",
    "The sanlock plugins initialise against a private daemon that has already joined their lockspace.",
    "",
    "| plugin | file KiB (stripped) | load + init µs, median / p99 | of which dlopen, median | time / libvirt sanlock.so | resident KiB added | of which private dirty KiB |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
for c in candidates {
    lines.append(
        "| \(c.label) | \(format(fileSize(c.path), decimals: 0)) (\(format(strippedSize(c.path), decimals: 0))) | "
            + "\(micros(c.loads.median)) / \(micros(c.loads.p99)) | \(micros(c.opens.median)) | \(ratio(c.loads.median, reference?.loads.median ?? .nan)) | "
            + "\(format(c.resident.median, decimals: 0)) | \(format(c.dirty.median, decimals: 0)) |")
}
lines += [
    "",
    "Resident memory is the median over the samples (it barely varies).",
    "",
    "Why ours cost more. Our plugins carry a static Swift runtime and standard library (~4 MB of code, ~15,600",
    "relative relocations), hence ~9 MB files. dlopen maps and relocates all of it and runs the runtime's",
    "constructors (metadata registration): about a millisecond more than libvirt's 30 KB C plugins, which",
    "reuse the libvirt.so.0 already loaded. perf shows almost no user time in our code: the cost is the",
    "dynamic loader's relocation pass and page faults (~110 more than libvirt's sanlock.so per load). Our",
    "sanlock drvInit then takes a few hundred µs more than libvirt's for the same single add_lockspace round",
    "trip to the daemon: its first calls fault in more runtime code (config parser, strings, generic metadata).",
    "It is paid once per process that loads the plugin (libvirtd's start, each `lockmgr` command), never per",
    "lock operation. Of the resident figure, what a process really adds is the private dirty part (relocated",
    "pointers, data, the runtime's and drvInit's heap); the rest is clean pages of the file, shared through the",
    "page cache with every other process that loads it, reclaimable, and dependent on what the cache already",
    "holds (the kernel maps cached neighbours of each touched page). SwiftPM's release build already links",
    "with --gc-sections; stripping (sizes in brackets) only shrinks the file: symbols and debug information",
    "are never loaded, so neither time nor memory changes (measured: same private dirty KiB).",
    "",
]
do {
    try Section.write(name: "load", markdown: lines.joined(separator: "\n"), to: options.outDir)
} catch { fail("cannot write the section: \(error)") }
try? FileManager.default.removeItem(atPath: dir)
