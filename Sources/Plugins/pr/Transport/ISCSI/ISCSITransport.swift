import CISCSI
import LockDriver
import PRProtocol

/// iSCSI logins shared by the transports of one operation. A target sees
/// one initiator port per IQN + ISID; a second login with the same pair
/// would reinstate (kill) the first, so every LUN of one target behind one
/// pool shares one session. `closeAll` logs out; sessions also close when
/// the pool is freed.
public final class ISCSISessionPool {
    public let initiator: String
    public let isidQualifier: UInt16
    private var sessions: [String: OpaquePointer] = [:]
    /// The LUs each session has sent a command to (by session key): the
    /// others have yet to see the session's first command.
    private var usedLUNs: [String: Set<Int32>] = [:]
    /// How many logins were made: on tgt each is a new I_T nexus.
    public private(set) var logins = 0
    /// The most commands sent together in one batch so far.
    public internal(set) var largestBatch = 0
    /// Its sessions outlive the operation (pr-sessiond keeps them logged
    /// in): a registration an earlier call made is still on the nexus.
    public let kept: Bool

    public init(initiator: String, isidQualifier: UInt16 = 0, kept: Bool = false) {
        self.initiator = initiator
        self.isidQualifier = isidQualifier
        self.kept = kept
    }

    deinit { closeAll() }

    func session(for transport: ISCSITransport, timeoutMilliseconds: UInt32) throws(LockError) -> OpaquePointer {
        let (url, id) = (transport.url, transport.sessionID)
        if let s = sessions[id] { return s }
        var err = [CChar](repeating: 0, count: 256)
        let opened = err.withUnsafeMutableBufferPointer { buf in
            lockmgr_iscsi_open(
                initiator, url.portal, url.target, isidQualifier,
                Int32(clamping: timeoutMilliseconds), buf.baseAddress, buf.count)
        }
        guard let opened else {
            throw .backend("\(url): iSCSI login to \(url.target) at \(url.portal) as \(initiator) failed: \(Self.text(err))")
        }
        logins += 1
        sessions[id] = opened
        return opened
    }

    /// Drops a session after a transport failure: the next command logs in anew.
    func discard(_ url: ISCSIURL) {
        usedLUNs[url.sessionID] = nil
        if let s = sessions.removeValue(forKey: url.sessionID) { lockmgr_iscsi_close(s, 0) }
    }

    func isNew(_ transport: ISCSITransport) -> Bool {
        !(usedLUNs[transport.sessionID]?.contains(transport.lun) ?? false)
    }

    func markUsed(_ transport: ISCSITransport) {
        usedLUNs[transport.sessionID, default: []].insert(transport.lun)
    }

    /// For sessions kept between operations (pr-sessiond): drops those
    /// the target closed or broke while nobody used them, so the next
    /// command logs in anew instead of failing. Returns what was dropped.
    public func dropDeadSessions() -> [String] {
        let dead = sessions.filter { lockmgr_iscsi_check_idle($0.value) != 0 }
        for (id, s) in dead {
            lockmgr_iscsi_close(s, 0)
            sessions.removeValue(forKey: id)
            usedLUNs[id] = nil
        }
        return dead.map(\.key)
    }

    public func closeAll(timeoutMilliseconds: UInt32 = 1000) {
        for (_, s) in sessions { lockmgr_iscsi_close(s, Int32(clamping: timeoutMilliseconds)) }
        sessions.removeAll()
        usedLUNs.removeAll()
    }

    static func text(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// One LUN reached through libiscsi in user space.
public final class ISCSITransport: SCSITransport {
    public let url: ISCSIURL
    let pool: ISCSISessionPool
    /// Its session's key in the pool, and its family: made once, not for
    /// every command (with 256 LUs a window sends some 1800).
    let sessionID: String
    let lun: Int32
    public let family: String

    public init(url: ISCSIURL, pool: ISCSISessionPool) {
        self.url = url
        self.pool = pool
        sessionID = url.sessionID
        lun = url.addressedLUN
        family = "iscsi://\(sessionID)"
    }

    public var deviceDescription: String { url.description }

    public var batchSender: SCSIBatchSender? { pool }

    public var nexusOutlivesCall: Bool { pool.kept }

    /// A session is one nexus, and libiscsi hands back its own status.
    public var answersForOneNexus: Bool { true }

    /// tgt makes every login a new I_T nexus.
    public var nexusIsNew: Bool { pool.isNew(self) }

    public func send(_ command: SCSICommand, timeoutMilliseconds: UInt32) throws(LockError) -> SCSIResponse {
        try pool.send([(self, command)], timeoutMilliseconds: timeoutMilliseconds)[0].get()
    }
}
