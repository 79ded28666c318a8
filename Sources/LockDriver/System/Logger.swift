import Glibc

/// The one logger of our programs (the pr keeper, `lockmgr
/// failure-action`, `pr-tool clear-host`): each message goes, as one line
/// each, to stderr (which the pr plugin points at keeper.log), to an
/// optional log file, and to syslog.
///
/// Syslog is spoken directly (one datagram per message, in the format
/// glibc's syslog() writes) to a Unix datagram socket, `/dev/log` unless
/// `$LOCKMGR_SYSLOG_SOCKET` or `syslogSocket` names another: glibc's
/// openlog() cannot be pointed anywhere else, so it could not be tested
/// without a syslog daemon, and its state is process-wide. Without a
/// listener (no syslog daemon) the datagram is dropped and the other
/// destinations still get the line.
public struct Logger: Sendable {
    /// syslog priorities used here (<syslog.h>).
    public enum Priority: Int32, Sendable {
        case error = 3
        case warning = 4
        case notice = 5
        case info = 6
    }

    /// syslog facilities used here (<syslog.h>, already shifted).
    public enum Facility: Int32, Sendable {
        case user = 8
        case daemon = 24
        /// Changes of who may write a disk (`pr-tool clear-host`).
        case auth = 32
    }

    public var ident: String
    public var facility: Facility
    public var stderr: Bool
    public var file: String?
    public var syslogSocket: String

    public static let defaultSyslogSocket = "/dev/log"

    public init(
        ident: String, facility: Facility = .daemon, stderr: Bool = true, file: String? = nil,
        syslogSocket: String? = nil
    ) {
        self.ident = ident
        self.facility = facility
        self.stderr = stderr
        self.file = file
        self.syslogSocket = syslogSocket ?? Self.environmentSocket ?? Self.defaultSyslogSocket
    }

    private static var environmentSocket: String? {
        guard let value = getenv("LOCKMGR_SYSLOG_SOCKET") else { return nil }
        let path = String(cString: value)
        return path.isEmpty ? nil : path
    }

    public func log(_ message: String, priority: Priority = .warning) {
        let line = "\(Self.timestamp()) \(ident)[\(getpid())]: \(message)\n"
        if stderr { Self.write(line, to: 2) }
        if let file {
            let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 {
                Self.write(line, to: fd)
                close(fd)
            }
        }
        sendToSyslog(message, priority: priority)
    }

    /// `<PRI>Mmm dd hh:mm:ss ident[pid]: message`, as glibc's syslog() sends it.
    func syslogDatagram(_ message: String, priority: Priority) -> [UInt8] {
        let header = "<\(facility.rawValue | priority.rawValue)>\(Self.timestamp(format: "%b %e %H:%M:%S", utc: false)) "
        return Array("\(header)\(ident)[\(getpid())]: \(message)".utf8)
    }

    private func sendToSyslog(_ message: String, priority: Priority) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(syslogSocket.utf8)
        guard !path.isEmpty, path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let datagram = syslogDatagram(message, priority: priority)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                datagram.withUnsafeBytes {
                    sendto(
                        fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), sa,
                        socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
    }

    /// One line on `fd`, in one write (appends from several processes do not interleave).
    public static func write(_ line: String, to fd: Int32) {
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    /// Now, as `2026-01-31T12:00:00Z` (UTC) by default.
    public static func timestamp(format: String = "%Y-%m-%dT%H:%M:%SZ", utc: Bool = true) -> String {
        var now = time(nil)
        var parts = tm()
        if utc { gmtime_r(&now, &parts) } else { localtime_r(&now, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
