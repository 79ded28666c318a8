import Glibc

/// What a keeper reports goes to its stderr (the plugin points it at
/// `<keeper_dir>/keeper.log`) and to syslog (daemon facility).
enum KeeperLog {
    nonisolated(unsafe) static var opened = false

    static func report(_ message: String, priority: Int32 = LOG_WARNING) {
        if !opened {
            openlog("pr-keeper", LOG_PID, LOG_DAEMON)
            opened = true
        }
        message.withCString { text in withVaList([text]) { vsyslog(priority, "%s", $0) } }
        stderr("\(timestamp()) pr-keeper[\(getpid())]: \(message)")
    }

    static func stderr(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
