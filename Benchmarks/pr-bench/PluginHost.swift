import BenchSupport
import Foundation
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// One simulated host running our pr plugin as libvirt does: the release
/// build's liblockmgr_pr.so loaded through our host library
/// (LockPlugin.load), and a fresh manager for every call.
///
/// A process keeps one config per plugin (as libvirtd does), so each host
/// (own initiator name, own keeper directory) loads its own byte-identical
/// copy of the .so: to the dynamic loader, another library.
final class PluginHost {
    let name: String
    let plugin: LockPlugin
    let keeperDir: String
    let commandLog: String?

    init(
        name: String, soPath: String, workDir: String, initiator: String, keeper: Bool,
        keeperPath: String, commandLog: Bool, keeperIntervalMilliseconds: Int? = nil, sessionSocket: String? = nil
    ) throws {
        self.name = name
        let pluginDir = "\(workDir)/plugins"
        try FileManager.default.createDirectory(atPath: pluginDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: soPath, toPath: "\(pluginDir)/\(name).so")
        keeperDir = "\(workDir)/keeper-\(name)"
        self.commandLog = commandLog ? "\(workDir)/\(name).commands" : nil
        var conf = """
            iscsi_initiator = "\(initiator)"
            keeper = \(keeper ? 1 : 0)
            keeper_dir = "\(keeperDir)"
            keeper_path = "\(keeperPath)"

            """
        if let log = self.commandLog { conf += "command_log = \"\(log)\"\n" }
        if let interval = keeperIntervalMilliseconds { conf += "keeper_interval_ms = \(interval)\n" }
        if let socket = sessionSocket { conf += "iscsi_session_socket = \"\(socket)\"\n" }
        let confPath = "\(workDir)/\(name)-pr.conf"
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
        plugin = try LockPlugin.load(name: name, pluginDir: pluginDir, configFile: confPath)
    }

    /// One libvirt call: new manager, the disks, the call, manager freed.
    /// Returns wall and thread-CPU microseconds.
    func call(
        _ vm: LockObject, disks: [String],
        _ body: (LockManager) throws(LockError) -> Void
    ) throws(LockError) -> (wall: Double, cpu: Double) {
        let cpu0 = Clock.threadCPU()
        let t0 = Clock.now()
        do {
            let manager = try plugin.makeManager(for: vm)
            for d in disks { try manager.addResource(.disk(d)) }
            try body(manager)
        }
        return (Clock.now() - t0, Clock.threadCPU() - cpu0)
    }

    /// The commands the plugin logged since the last call (command_log), emptied.
    func takeCommands() -> [String] {
        guard let log = commandLog, let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
        unlink(log)
        // "<resource> <command>": resources are iscsi:// URLs, without spaces.
        return text.split(separator: "\n").compactMap { line in
            line.firstIndex(of: " ").map { String(line[line.index(after: $0)...]) }
        }
    }

    /// Waits until no keeper of this host runs any more (each leaves once
    /// its VM record is empty); throws if one is still there after `seconds`.
    func waitKeepersGone(_ vm: UUIDBytes, seconds: Double = 10) throws {
        let store = KeeperStore(dir: keeperDir)
        let deadline = Clock.now() + seconds * 1e6
        while store.runningKeeper(vm) != nil {
            guard Clock.now() < deadline else {
                throw LockError.internalError("\(name): a keeper still runs after its VM's disks were released")
            }
            usleep(2000)
        }
    }
}
