// libvirt-bench: what a real libvirtd + QEMU costs with each sanlock lock
// plugin, libvirt's sanlock.so and ours, measured the same way in one run:
// libvirtd's start until `virsh list` answers (the plugin creates and joins
// the lockspace, io_timeout 1), then for one tiny domain the latency of
// `virsh create`, `suspend`, `resume` and `destroy` (each a full virsh round
// trip; start/resume take the lease, suspend releases it, destroy frees it
// with the QEMU process), and the teardown.
//
// Usage: libvirt-bench [cycles]      (default 10; root; no other libvirtd running)
import Foundation
import TestSupport

let cycles = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 10

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("libvirt-bench: \(message)\n".utf8))
    exit(1)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2]
        : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func ms(_ value: Double) -> String { String(format: "%8.1f", value * 1000) }

struct Row {
    var plugin: String
    var ready: Double
    var steps: [String: [Double]] = [:]
    var teardown: Double = 0
}

let steps = ["create", "suspend", "resume", "destroy"]
var rows: [Row] = []
for (label, dir) in [("libvirt's sanlock.so", BuildProducts.libvirtPluginDir), ("lockmgr's sanlock.so", BuildProducts.pluginDir)] {
    var host: LibvirtHost?
    let ready: Double
    do { ready = try seconds { host = try LibvirtHost.start(pluginDir: dir) } } catch { fail("\(label): \(error)") }
    guard let host else { fail("\(label): no host") }
    var row = Row(plugin: label, ready: ready)
    do {
        let disk = try host.createDisk("bench")
        for cycle in 0..<cycles {
            let vm = host.domain("bench-\(getpid())-\(cycle)", disks: [disk])
            for step in steps {
                var result: CommandResult?
                let time = try seconds {
                    result = step == "create" ? try host.start(vm) : host.virsh([step, vm.name])
                }
                guard let result, result.status == 0 else {
                    throw FixtureError("virsh \(step) \(vm.name) failed: \(result.map { "\($0)" } ?? "")\n\(host.libvirtdLog)")
                }
                row.steps[step, default: []].append(time)
            }
        }
    } catch {
        host.stop()
        fail("\(label): \(error)")
    }
    row.teardown = seconds { host.stop() }
    rows.append(row)
}

print("libvirtd + QEMU (\(cycles) cycles of one tiny domain), milliseconds; steps are medians")
print("plugin                  ready   create  suspend   resume  destroy teardown")
for row in rows {
    let cells = steps.map { ms(median(row.steps[$0] ?? [])) }.joined(separator: " ")
    print(row.plugin.padding(toLength: 20, withPad: " ", startingAt: 0) + ms(row.ready) + " " + cells + " " + ms(row.teardown))
}
