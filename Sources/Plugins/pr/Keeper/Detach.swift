import Glibc
import LockDriver
import PRCore

/// `pr-keeper start`: the intermediate process between the plugin and the
/// keeper. The keeper gets a new session and, once this process exits, a
/// new parent (init or a subreaper), so neither libvirtd nor the VM ever
/// has to reap it and a libvirtd restart does not touch it.
enum Detach {
    static func start(store: KeeperStore, vm: UUIDBytes) -> Int32 {
        var fds: [Int32] = [0, 0]
        // No other thread runs here: plain pipe() is enough (the spawn closes the rest).
        guard pipe(&fds) == 0 else {
            KeeperLog.stderr("pr-keeper: pipe: \(Errno.current)")
            return 1
        }
        let argv = [selfPath(), "watch", store.dir, vm.description]
        guard case .success = Spawn.start(argv, output: store.logPath, passFD: fds[1], newSession: true) else {
            KeeperLog.stderr("pr-keeper: cannot start \(argv[0]): \(Errno.current)")
            return 1
        }
        close(fds[1])
        // The keeper writes one byte once it holds its pid file (or saw
        // another keeper of this VM holding it); EOF without it is a failure.
        var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 10_000) == 1 else { return 1 }
        var byte: UInt8 = 0
        return read(fds[0], &byte, 1) == 1 ? 0 : 1
    }

    static func selfPath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
