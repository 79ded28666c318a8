import Glibc
import LockDriver
import PRKeeper
import PRProtocol
import PRTransport

/// `pr-keeper start`: the intermediate process between the plugin and the
/// keeper. The keeper gets a new session and, once this process exits, a
/// new parent (init or a subreaper), so neither libvirtd nor the VM ever
/// has to reap it and a libvirtd restart does not touch it.
enum Detach {
    static func start(store: KeeperStore, vm: UUIDBytes) -> Int32 {
        var fds: [Int32] = [0, 0]
        // No other thread runs here: plain pipe() is enough.
        guard pipe(&fds) == 0 else {
            Logger.write("pr-keeper: pipe: \(Errno.current)\n", to: 2)
            return 1
        }
        // The keeper is a fork of this process, not a second program start:
        // a static Swift binary's exec was half of what a keeper start cost
        // the plugin's caller. A fork is safe here: nothing has started a
        // thread yet, and the signal mask, dispositions, stdin and output
        // are already the clean ones Spawn gave this process.
        let child = fork()
        if child < 0 {
            Logger.write("pr-keeper: fork: \(Errno.current)\n", to: 2)
            return 1
        }
        if child == 0 {
            close(fds[0])
            _ = setsid()
            Keeper(store: store, vm: vm, readyFD: fds[1]).run()
        }
        close(fds[1])
        // The keeper writes one byte once it holds its pid file (or saw
        // another keeper of this VM holding it); EOF without it is a failure.
        var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 10_000) == 1 else { return 1 }
        var byte: UInt8 = 0
        return read(fds[0], &byte, 1) == 1 ? 0 : 1
    }
}
