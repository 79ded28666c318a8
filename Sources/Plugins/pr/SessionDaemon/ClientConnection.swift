import Glibc
import LockDriver
import PRProtocol
import PRTransport

/// One plugin call's connection, served on a thread of its own until the
/// plugin hangs up. A frame that breaks the protocol ends the connection
/// (the stream is at an unknown place); it never ends the service.
final class ClientConnection {
    /// A plugin operation lasts seconds; a connection idle this long is abandoned.
    static let idleMilliseconds: UInt32 = 600_000

    let connection: UnixSocketConnection
    let table: SessionTable
    let log: Logger

    init(fd: Int32, table: SessionTable, log: Logger) {
        connection = UnixSocketConnection.adopt(fd: fd)
        self.table = table
        self.log = log
    }

    /// Serves the connection on a detached thread.
    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                guard let raw else { return nil }
                Unmanaged<ClientConnection>.fromOpaque(raw).takeRetainedValue().serve()
                return nil
            }, context)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<ClientConnection>.fromOpaque(context).release()
            log.log("cannot start a thread for a client: \(Errno(rc))", priority: .error)
        }
    }

    private func serve() {
        while true {
            let header: [UInt8]
            do {
                header = try connection.readExactly(SessionWire.headerSize, deadline: Deadline(millisecondsFromNow: Self.idleMilliseconds))
            } catch .closed(received: 0, _) {
                return  // the plugin's operation is over
            } catch {
                log.log("client connection dropped while idle: \(error)", priority: .notice)
                return
            }
            do {
                let length = try SessionWire.bodyLength(header: header, magic: SessionWire.requestMagic)
                // The body follows its header at once.
                let body = try connection.readExactly(length, deadline: Deadline(millisecondsFromNow: 10_000))
                let request = try SessionWire.decodeRequest(body: body)
                let reply = SessionWire.encodeReply(table.run(request))
                let timeout = request.timeoutMilliseconds
                try connection.writeAll(reply, deadline: Deadline(millisecondsFromNow: max(timeout, 1000)))
            } catch let violation as SessionWire.Violation {
                log.log("refused a request: \(violation); connection closed", priority: .warning)
                return
            } catch {
                log.log("client connection lost: \(error)", priority: .notice)
                return
            }
        }
    }
}
