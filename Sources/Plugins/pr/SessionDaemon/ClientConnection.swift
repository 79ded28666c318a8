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
            let reply = SessionWire.encode(OperationRunner.run(request, table: table))
            try connection.writeAll(reply, deadline: Deadline(millisecondsFromNow: max(request.config.timeoutMilliseconds, 1000)))
        } catch let violation as SessionWire.Violation {
            log.log("refused a request: \(violation)", priority: .warning)
        } catch SocketFailure.closed(received: 0, _) {
            // Connected and left without asking (a liveness probe).
        } catch {
            log.log("client connection lost: \(error)", priority: .notice)
        }
    }
}

/// Threads that each accept a connection and serve it, started once: no
/// thread start per plugin call (a start costs more than a PR command on a
/// loaded host). As many operations run at once as there are workers; a
/// target that hangs holds at most its operations' workers, each for its
/// timeouts.
enum Workers {
    static let count = 16

    final class Context {
        let listener: Int32
        let table: SessionTable
        let log: Logger
        init(listener: Int32, table: SessionTable, log: Logger) {
            self.listener = listener
            self.table = table
            self.log = log
        }
    }

    /// Starts `count - 1` threads and makes the calling thread the last worker.
    static func run(listener: Int32, table: SessionTable, log: Logger) -> Never {
        let context = Context(listener: listener, table: table, log: log)
        for _ in 1..<count {
            let raw = Unmanaged.passRetained(context).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(
                &thread, nil,
                { raw in
                    guard let raw else { return nil }
                    Workers.acceptLoop(Unmanaged<Context>.fromOpaque(raw).takeRetainedValue())
                }, raw)
            if rc == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<Context>.fromOpaque(raw).release()
                log.log("cannot start a worker thread: \(Errno(rc)); serving with fewer", priority: .error)
            }
        }
        acceptLoop(context)
    }

    static func acceptLoop(_ c: Context) -> Never {
        while true {
            // We start no programs: close-on-exec right after accept is in time.
            let fd = accept(c.listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                ClientConnection(fd: fd, table: c.table, log: c.log).serve()
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
                c.log.log("accept: \(e); stopping", priority: .error)
                exit(ExitStatus.software)
            }
        }
    }
}
