import Foundation
import Harness

/// A loopback TCP proxy in front of a real iSCSI portal that plays a
/// network failure at an exact point of the conversation. Once armed with
/// `cut(atPROut:forward:stall:)`, when the n-th PERSISTENT RESERVE OUT
/// command (counted over every connection) comes from the initiator, the
/// connection is cut, and from then on new connections are accepted and
/// closed at once (the path stays down) until `heal()`. With `stall` the
/// connections stay open and nothing more is answered (a target that
/// hangs mid-session). Unarmed it is a healthy path.
///
/// Why a proxy and not tgtadm: a real session loss is the network going
/// away under a command, at whatever point the initiator has reached;
/// `tgtadm --op delete --mode conn` is an administrator's action that a
/// test cannot time against the plugin's commands. The proxy cuts exactly
/// between two commands, or after the target has executed the command but
/// before its answer arrives (`forward`): the initiator cannot know
/// whether it took effect, the worst case of a real failure.
///
/// It reads iSCSI PDUs (48-byte header, AHS and data segment padded to 4
/// bytes; our shim negotiates no digests with tgt) to find SCSI Command
/// PDUs (opcode 0x01) whose CDB starts with 0x5F.
final class FaultProxy: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private var cutAtPROut = 0
    private var forwardTheCut = false
    private var stall = false
    /// Connections accepted while stalled: held open, never answered.
    private var parked: [Int32] = []
    private let lock = NSLock()
    private var prOutSeen = 0
    private var down = false
    private var stopped = false
    private var sockets: Set<Int32> = []
    private let threads = DispatchGroup()

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 16) == 0 else {
            close(fd)
            throw TgtTarget.Failure(description: "fault proxy: cannot listen: errno \(errno)")
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        threads.enter()
        Thread.detachNewThread { [self] in
            acceptLoop(); threads.leave()
        }
    }

    /// LUN 1 of `iqn` reached through this proxy.
    func url(_ iqn: String) -> String { "iscsi://127.0.0.1:\(port)/\(iqn)/1" }

    /// Arms the cut: at the `n`-th PR OUT from now, forwarded to the
    /// target first if `forward`.
    func cut(atPROut n: Int, forward: Bool = false, stall: Bool = false) {
        lock.withLock {
            prOutSeen = 0; cutAtPROut = n; forwardTheCut = forward; self.stall = stall
        }
    }

    /// Whether the cut has happened.
    var isDown: Bool { lock.withLock { down } }

    /// The network is back: new connections are forwarded again (and no
    /// further cut happens).
    func heal() {
        lock.withLock {
            down = false
            cutAtPROut = 0
            parked.forEach { close($0) }
            parked = []
        }
    }

    /// Closes everything and waits for the proxy's threads.
    func stop() {
        let open: Set<Int32> = lock.withLock {
            stopped = true
            return sockets
        }
        shutdown(listener, Int32(SHUT_RDWR))
        open.forEach { shutdown($0, Int32(SHUT_RDWR)) }
        threads.wait()
        close(listener)
        lock.withLock {
            parked.forEach { close($0) }; parked = []
        }
    }

    deinit { if !lock.withLock({ stopped }) { stop() } }

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }

    private func acceptLoop() {
        while let client = BlockingIO.accept(listener) {
            let (isStopped, isDown, isStalled) = lock.withLock { (stopped, down, stall) }
            if isStopped { close(client); return }
            if isDown && isStalled { lock.withLock { parked.append(client) }; continue }
            if isDown { close(client); continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else { close(client); close(upstream); continue }
            lock.withLock { sockets.formUnion([client, upstream]) }
            let link = Link(client: client, upstream: upstream)
            threads.enter()
            Thread.detachNewThread { [self] in
                forwardCommands(link); threads.leave()
            }
            threads.enter()
            Thread.detachNewThread { [self] in
                forwardAnswers(link); threads.leave()
            }
        }
    }

    /// One proxied connection; `cut` is set before the cutting PDU is
    /// forwarded, so no answer to it is passed on.
    private final class Link: @unchecked Sendable {
        let client: Int32
        let upstream: Int32
        let lock = NSLock()
        var cut = false
        var closers = 2
        init(client: Int32, upstream: Int32) { self.client = client; self.upstream = upstream }
    }

    private func finish(_ link: Link) {
        shutdown(link.client, Int32(SHUT_RDWR))
        shutdown(link.upstream, Int32(SHUT_RDWR))
        let last = link.lock.withLock {
            link.closers -= 1; return link.closers == 0
        }
        guard last else { return }
        lock.withLock { sockets.subtract([link.client, link.upstream]) }
        close(link.client)
        close(link.upstream)
    }

    /// Initiator → target, PDU by PDU.
    private func forwardCommands(_ link: Link) {
        defer { finish(link) }
        while let pdu = readPDU(link.client) {
            let isPROut = pdu[0] & 0x3F == 0x01 && pdu.count > 32 && pdu[32] == 0x5F
            var cutHere = false, forward = false, stalled = false
            if isPROut {
                (cutHere, forward, stalled) = lock.withLock {
                    prOutSeen += 1
                    if cutAtPROut > 0 && prOutSeen == cutAtPROut { down = true; return (true, forwardTheCut, stall) }
                    return (false, false, false)
                }
            }
            if cutHere {
                link.lock.withLock { link.cut = true }
                if stalled {
                    // Swallow everything until the initiator gives up.
                    while readPDU(link.client) != nil {}
                    return
                }
                if forward {
                    _ = BlockingIO.writeAll(link.upstream, pdu)
                    // Let the target execute it before the connection goes.
                    usleep(50_000)
                }
                return
            }
            guard BlockingIO.writeAll(link.upstream, pdu) else { return }
        }
    }

    /// Target → initiator, bytes as they come, until the cut.
    private func forwardAnswers(_ link: Link) {
        defer { finish(link) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(link.upstream, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0, !link.lock.withLock({ link.cut }) else { return }
            guard BlockingIO.writeAll(link.client, Array(buffer[0..<n])) else { return }
        }
    }

    private func readPDU(_ fd: Int32) -> [UInt8]? {
        guard let header = BlockingIO.readExactly(fd, 48) else { return nil }
        let ahs = Int(header[4]) * 4
        let data = Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
        let rest = ahs + (data + 3) / 4 * 4
        guard rest > 0 else { return header }
        guard let tail = BlockingIO.readExactly(fd, rest) else { return nil }
        return header + tail
    }
}
