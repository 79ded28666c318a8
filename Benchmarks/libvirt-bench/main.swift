// libvirt-bench: what a real libvirtd + QEMU costs with each sanlock lock
// plugin, libvirt's sanlock.so and ours, measured the same way in one run:
// libvirtd's start until `virsh list` answers (the plugin creates and joins
// the lockspace, io_timeout 1), then for one tiny domain the latency of
// `virsh create`, `suspend`, `resume` and `destroy` (each a full virsh round
// trip; start/resume take the lease, suspend releases it, destroy frees it
// with the QEMU process), and the teardown.
//
// Usage: libvirt-bench [--cycles N] [--out DIR]   (default 10; root; no other libvirtd running;
//        the report section goes to DIR/libvirt.md)
import BenchSupport
import Foundation
import Harness

let options: BenchOptions
do { options = try BenchOptions(defaultCycles: 10) } catch {
    FileHandle.standardError.write(Data("libvirt-bench: \(error)\n".utf8))
    exit(64)
}
let cycles = options.cycles

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("libvirt-bench: \(message)\n".utf8))
    exit(1)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func ms(_ value: Double) -> String { format(value * 1000, decimals: 1) }

struct Row {
    var plugin: String
    var ready = Samples()
    var steps: [String: Samples] = [:]
    var teardown = Samples()
}

let steps = ["create", "suspend", "resume", "destroy"]
let plugins = [("libvirt's sanlock.so", BuildProducts.libvirtPluginDir), ("lockmgr's sanlock.so", BuildProducts.pluginDir)]
var rows = plugins.map { Row(plugin: $0.0) }
// One libvirtd at a time: the plugins take turns in passes of a few cycles
// each, so a change in the shared machine's load hits both.
let passes = min(cycles, 2)
for pass in 0..<passes {
    for (index, (label, dir)) in plugins.enumerated() {
        var host: LibvirtHost?
        let ready: Double
        do { ready = try seconds { host = try LibvirtHost.start(pluginDir: dir) } } catch { fail("\(label): \(error)") }
        guard let host else { fail("\(label): no host") }
        rows[index].ready.add(ready)
        do {
            let disk = try host.createDisk("bench")
            for cycle in stride(from: pass, to: cycles, by: passes) {
                let vm = host.domain("bench-\(getpid())-\(cycle)", disks: [disk])
                for step in steps {
                    var result: CommandResult?
                    let time = try seconds {
                        result = step == "create" ? try host.start(vm) : host.virsh([step, vm.name])
                    }
                    guard let result, result.status == 0 else {
                        throw FixtureError("virsh \(step) \(vm.name) failed: \(result.map { "\($0)" } ?? "")\n\(host.libvirtdLog)")
                    }
                    rows[index].steps[step, default: Samples()].add(time)
                }
            }
        } catch {
            host.stop()
            fail("\(label): \(error)")
        }
        rows[index].teardown.add(seconds { host.stop() })
    }
}

var lines = [
    "## libvirtd + QEMU with each sanlock plugin",
    "",
    "A real libvirtd and QEMU, \(cycles) cycles of one tiny domain per plugin, milliseconds, median / max of the",
    "cycles (too few for a p99), the plugins taking turns in \(passes) passes (ready and teardown: the lower of the passes).",
    "ready: libvirtd's start until `virsh list` answers (the plugin creates and joins",
    "the lockspace, io_timeout 1); each step is a full `virsh` round trip: create and resume take the lease,",
    "suspend releases it, destroy frees it with the QEMU process.",
    "",
    "| plugin | ready | " + steps.joined(separator: " | ") + " | teardown |",
    "|---|---:|" + steps.map { _ in "---:|" }.joined() + "---:|",
]
for row in rows {
    let cells = steps.map { step in
        let s = row.steps[step] ?? Samples()
        return "\(ms(s.median)) / \(ms(s.percentile(1)))"
    }
    lines.append("| \(row.plugin) | \(ms(row.ready.median)) | " + cells.joined(separator: " | ") + " | \(ms(row.teardown.median)) |")
}
lines.append("")
do { try Section.write(name: "libvirt", markdown: lines.joined(separator: "\n"), to: options.outDir) } catch {
    fail("cannot write the section: \(error)")
}
