import LockDriver

/// `iscsi://host[:port]/target-iqn/lun`, strictly: no credentials, no
/// query, a numeric LUN. Parsed here (not by libiscsi) so a bad name is
/// rejected with a clear message before any context or socket exists.
public struct ISCSIURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var target: String
    public var lun: Int32

    public static let scheme = "iscsi://"

    public init(host: String, port: UInt16 = 3260, target: String, lun: Int32) {
        self.host = host
        self.port = port
        self.target = target
        self.lun = lun
    }

    public init(parsing text: String) throws(LockError) {
        func bad(_ why: String) -> LockError {
            .invalid("resource '\(text)': not a valid iscsi://host[:port]/target-iqn/lun URL: \(why)")
        }
        guard text.hasPrefix(Self.scheme) else { throw bad("it must start with iscsi://") }
        let parts = text.dropFirst(Self.scheme.count).splitBytes(at: "/", omittingEmpty: false)
        guard parts.count == 3 else { throw bad("expected host, target and LUN separated by '/'") }
        let authority = parts[0]
        guard !authority.containsByte("@") else { throw bad("credentials in the URL are not supported") }
        var host = authority
        var port: UInt16 = 3260
        if let colon = authority.lastIndex(ofByte: ":") {
            host = String(authority[..<colon])
            guard let p = UInt16(authority[authority.utf8.index(after: colon)...]), p > 0 else { throw bad("bad port") }
            port = p
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "[") }) else {
            throw bad("bad host")
        }
        let target = parts[1]
        guard !target.isEmpty, target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") }) else {
            throw bad("bad target name")
        }
        guard let lun = Int32(parts[2]), (0...16383).contains(lun) else { throw bad("LUN must be 0..16383") }
        self.init(host: host, port: port, target: target, lun: lun)
    }

    /// The LUN as the iSCSI PDU carries it (SAM single-level LUN, first two
    /// bytes). libiscsi copies the number as is, which is peripheral
    /// addressing: only right below 256. From 256 a plain number would name
    /// another LU (tgt reads LUN 300 as LUN 44), so those use the flat space
    /// method (01b in the top bits), as the Linux initiator does.
    public var addressedLUN: Int32 { lun < 256 ? lun : 0x4000 | lun }

    public var portal: String { "\(host):\(port)" }
    public var description: String { "\(Self.scheme)\(portal)/\(target)/\(lun)" }
}
