import Glibc
import LockDriver
import PRProtocol
import PRTransport

/// One plugin operation: a connection, its one request, the answer. A
/// frame that breaks the protocol ends the connection (the stream is at an
/// unknown place); it never ends the service.
struct ClientConnection {
    /// The plugin sends its request as soon as it is connected.
    static let requestMilliseconds: UInt32 = 10_000

    let connection: UnixSocketConnection
    let table: SessionTable
    let log: Logger

    init(fd: Int32, table: SessionTable, log: Logger) {
        connection = UnixSocketConnection.adopt(fd: fd)
        self.table = table
        self.log = log
    }

    func serve() {
        do {
            let deadline = Deadline(millisecondsFromNow: Self.requestMilliseconds)
            let header = try connection.readExactly(SessionWire.headerSize, deadline: deadline)
            let length = try SessionWire.bodyLength(header: header, magic: SessionWire.requestMagic)
            let request = try SessionWire.decodeRequest(body: try connection.readExactly(length, deadline: deadline))
            let connection = self.connection
            guard let reply = OperationRunner.run(request, table: table, log: log, pluginGone: { connection.peerHasHungUp })
            else { return }
            try connection.writeAll(
                SessionWire.encode(reply), deadline: Deadline(millisecondsFromNow: max(request.config.timeoutMilliseconds, 1000)))
        } catch let violation as SessionWire.Violation {
            log.log("refused a request: \(violation)", priority: .warning)
        } catch SocketFailure.closed(received: 0, _) {
            // Connected and left without asking (a liveness probe).
        } catch {
            log.log("client connection lost: \(error)", priority: .notice)
        }
    }
}

/// Threads that each accept a connection and serve it: no thread start
/// per plugin call (a start costs more than a PR command on a loaded host).
/// The pool grows when a worker takes a connection while none other waits
/// in accept, so operations stuck on a hung target never hold up others.
enum Workers {
    static let initial = 4

    final class Pool: @unchecked Sendable {
        let listener: Int32
        let table: SessionTable
        let log: Logger
        let lock = Mutex()
        var idle = 0
        init(listener: Int32, table: SessionTable, log: Logger) {
            self.listener = listener
            self.table = table
            self.log = log
        }
    }

    /// Starts the first workers and makes the calling thread one of them.
    static func run(listener: Int32, table: SessionTable, log: Logger) -> Never {
        let pool = Pool(listener: listener, table: table, log: log)
        for _ in 1..<initial { spawn(pool) }
        acceptLoop(pool)
    }

    static func spawn(_ pool: Pool) {
        switch ThreadStart.run({ acceptLoop(pool) }) {
        case .success(let thread): pthread_detach(thread)
        case .failure(let e): pool.log.log("cannot start a worker thread: \(e)", priority: .error)
        }
    }

    static func acceptLoop(_ pool: Pool) -> Never {
        while true {
            pool.lock.withLock { pool.idle += 1 }
            // We start no programs: close-on-exec right after accept is in time.
            let fd = accept(pool.listener, nil, nil)
            let grow = pool.lock.withLock { () -> Bool in
                pool.idle -= 1
                return fd >= 0 && pool.idle == 0
            }
            if grow { spawn(pool) }
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                ClientConnection(fd: fd, table: pool.table, log: pool.log).serve()
                continue
            }
            let e = Errno.current
            switch e.code {
            case EINTR, ECONNABORTED:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory for a moment: let clients finish.
                usleep(100_000)
            default:
                pool.log.log("accept: \(e); stopping", priority: .error)
                exit(ExitStatus.software)
            }
        }
    }
}
