import CISCSI
import LockDriver
import PRProtocol

/// Command queueing on the pool's sessions: every command of a batch is
/// queued on its LUN's session at once and libiscsi keeps them in flight
/// together (as many as the target's command window allows: tgt's is
/// 128), all sessions polled in one loop; the batch is bounded by one
/// timeout. One session per target stays enough: a second login with the
/// same initiator name and ISID would reinstate (end) the first.
extension ISCSISessionPool: SCSIBatchSender {
    public func send(
        _ batch: [(transport: SCSITransport, command: SCSICommand)], timeoutMilliseconds: UInt32
    )
        -> [Result<SCSIResponse, LockError>]
    {
        var results = [Result<SCSIResponse, LockError>](
            repeating: .failure(.internalError("no answer recorded")), count: batch.count)
        var items: [lockmgr_iscsi_batch_item] = []
        var owners: [(index: Int, url: ISCSIURL, readLength: Int)] = []
        var loginFailures: [String: LockError] = [:]
        for (i, entry) in batch.enumerated() {
            guard let t = entry.transport as? ISCSITransport, t.pool === self else {
                results[i] = .failure(.internalError("\(entry.transport.deviceDescription): not a LUN of this iSCSI session pool"))
                continue
            }
            // A login that failed is not tried again for every LUN of the target.
            if let failed = loginFailures[t.sessionID] {
                results[i] = .failure(LockError(failed.kind, "\(t.url): \(failed.message)"))
                continue
            }
            let session: OpaquePointer
            do {
                session = try self.session(for: t, timeoutMilliseconds: timeoutMilliseconds)
            } catch {
                let prefix = "\(t.url): "
                let reason = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
                loginFailures[t.sessionID] = LockError(error.kind, reason)
                results[i] = .failure(error)
                continue
            }
            guard let item = Self.item(entry.command, session: session, lun: t.lun) else {
                results[i] = .failure(.internalError("\(t.url): \(entry.command.name) does not fit an iSCSI command"))
                continue
            }
            items.append(item)
            markUsed(t)
            if case .fromDevice(let n) = entry.command.direction {
                owners.append((i, t.url, max(0, n)))
            } else {
                owners.append((i, t.url, 0))
            }
        }
        guard !items.isEmpty else { return results }
        largestBatch = max(largestBatch, items.count)
        _ = items.withUnsafeMutableBufferPointer { b in
            lockmgr_iscsi_batch(b.baseAddress, b.count, Int32(clamping: timeoutMilliseconds))
        }
        var broken: Set<String> = []
        for (item, owner) in zip(items, owners) {
            defer { item.data?.deallocate() }
            guard item.rc == 0 else {
                if broken.insert(owner.url.sessionID).inserted { discard(owner.url) }
                results[owner.index] = .failure(.backend("\(owner.url): \(Self.errorText(item))"))
                continue
            }
            let r = item.result
            let sense = r.has_sense != 0 ? SenseData(key: r.sense_key, asc: r.asc, ascq: r.ascq) : nil
            var data: [UInt8] = []
            if owner.readLength > 0, let p = item.data {
                data = Array(UnsafeBufferPointer(start: p, count: min(r.data_len, owner.readLength)))
            }
            results[owner.index] = .success(SCSIResponse(status: UInt8(truncatingIfNeeded: r.status), sense: sense, data: data))
        }
        return results
    }

    /// The C item for `command`, with a buffer of its own (freed by `send`).
    static func item(_ command: SCSICommand, session: OpaquePointer, lun: Int32) -> lockmgr_iscsi_batch_item? {
        let cdb = command.cdb
        guard !cdb.isEmpty, cdb.count <= 16 else { return nil }
        var item = lockmgr_iscsi_batch_item()
        item.session = session
        item.lun = lun
        item.cdb_len = cdb.count
        withUnsafeMutableBytes(of: &item.cdb) { raw in
            for (k, byte) in cdb.enumerated() { raw[k] = byte }
        }
        switch command.direction {
        case .none:
            item.direction = Int32(LOCKMGR_ISCSI_NONE.rawValue)
        case .fromDevice(let n):
            item.direction = Int32(LOCKMGR_ISCSI_READ.rawValue)
            let count = max(0, n)
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, count))
            p.initialize(repeating: 0, count: max(1, count))
            item.data = p
            item.data_len = count
        case .toDevice(let bytes):
            item.direction = Int32(LOCKMGR_ISCSI_WRITE.rawValue)
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
            p.initialize(repeating: 0, count: max(1, bytes.count))
            for (k, byte) in bytes.enumerated() { p[k] = byte }
            item.data = p
            item.data_len = bytes.count
        }
        return item
    }

    static func errorText(_ item: lockmgr_iscsi_batch_item) -> String {
        withUnsafeBytes(of: item.err) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

extension ISCSIURL {
    /// The pool's key for the session this LUN is reached through.
    var sessionID: String { "\(portal)/\(target)" }
}
