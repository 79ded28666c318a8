import Glibc
import LockDriver
import PRProtocol

/// The keeper directory: per VM a record (`<uuid>.vm`) and the keeper's pid
/// file (`<uuid>.pid`, flock'ed by the one keeper of that VM for its whole
/// life), plus `keeper.log`, where keepers write what they do.
///
/// The plugin changes a record only while holding the record's flock, and
/// holds it across its own SCSI commands, so a keeper that re-reads the
/// record under the same flock never mistakes the plugin's own work in
/// progress (a release on a migration source, a reclaim) for a lost lock.
public struct KeeperStore: Sendable {
    public let dir: String

    public init(dir: String) { self.dir = dir }

    public func recordPath(_ vm: UUIDBytes) -> String { "\(dir)/\(vm).vm" }
    public func pidPath(_ vm: UUIDBytes) -> String { "\(dir)/\(vm).pid" }
    public var logPath: String { "\(dir)/keeper.log" }

    /// Creates the directory (mode 0700: records name VMs and processes).
    public func prepare() throws(LockError) {
        var path = ""
        for part in dir.splitBytes(at: "/") {
            path += "/" + part
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw .backend("cannot create the keeper directory \(path): \(Errno.current)")
            }
        }
    }

    /// Runs `body` on the VM's record (nil when there is none) under the
    /// record's exclusive flock and writes back what `body` leaves: a nil
    /// record removes the file. `body` may run SCSI commands.
    public func update<R>(_ vm: UUIDBytes, _ body: (inout KeeperRecord?) throws(LockError) -> R) throws(LockError) -> R {
        let path = recordPath(vm)
        while true {
            var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            // The directory is created on first use only: a mkdir per path
            // component on every call was a good part of the keeper's cost
            // per acquire and release.
            if fd < 0 && errno == ENOENT {
                try prepare()
                fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            }
            guard fd >= 0 else { throw .backend("cannot open keeper record \(path): \(Errno.current)") }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { throw .backend("cannot lock keeper record \(path): \(Errno.current)") }
            // Whoever held the lock before may have removed the file: then
            // this fd is an orphan inode and the lock protects nothing.
            var opened = stat(), named = stat()
            guard fstat(fd, &opened) == 0, stat(path, &named) == 0, opened.st_ino == named.st_ino else { continue }
            let text = try Self.readAll(fd, path, expected: Int(opened.st_size))
            var record = text.isEmpty ? nil : try KeeperRecord(decoding: text, origin: path)
            let before = record
            let result: R
            do { result = try body(&record) } catch {
                if before == nil { unlink(path) }  // created by this open: leave nothing behind
                throw error
            }
            if record != before {
                if let record {
                    // A file this open created holds nothing to cut off.
                    try Self.rewrite(fd, record.encoded, path, truncate: opened.st_size > 0)
                } else if unlink(path) != 0 {
                    throw .backend("cannot remove keeper record \(path): \(Errno.current)")
                }
            } else if record == nil {
                unlink(path)  // created by this open: leave nothing behind
            }
            return result
        }
    }

    /// The record as it is now (no lock held after return).
    public func read(_ vm: UUIDBytes) throws(LockError) -> KeeperRecord? {
        let path = recordPath(vm)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .backend("cannot open keeper record \(path): \(Errno.current)")
        }
        defer { close(fd) }
        let text = try Self.readAll(fd, path)
        return text.isEmpty ? nil : try KeeperRecord(decoding: text, origin: path)
    }

    /// Every VM with a record here.
    public func vms() -> [UUIDBytes] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var result: [UUIDBytes] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(".vm"), let vm = UUIDBytes(String(name.dropLast(3))) { result.append(vm) }
        }
        return result
    }

    /// The pid of the keeper of `vm`, if one is running: a keeper holds the
    /// flock of its pid file for as long as it lives.
    public func runningKeeper(_ vm: UUIDBytes) -> Int32? {
        whileKeeperRuns(vm) { fd in
            let text = (try? Self.readAll(fd, pidPath(vm))) ?? ""
            return Int32(text.filter { !$0.isWhitespace })
        }
    }

    /// Whether a keeper of `vm` runs: `runningKeeper` without reading the
    /// pid, for the plugin's every call.
    public func keeperRuns(_ vm: UUIDBytes) -> Bool { whileKeeperRuns(vm) { _ in true } ?? false }

    /// `body` on the open pid file of `vm` if its flock is held (a keeper runs); nil otherwise.
    private func whileKeeperRuns<R>(_ vm: UUIDBytes, _ body: (Int32) -> R?) -> R? {
        let fd = open(pidPath(vm), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) != 0 else {
            flock(fd, LOCK_UN)
            return nil
        }
        return body(fd)
    }

    /// The file's text. `expected`: its size if known (fstat), so that one
    /// read does: asked for a byte more, a short read proves the end.
    static func readAll(_ fd: Int32, _ path: String, expected: Int = 4095) throws(LockError) -> String {
        let chunk = min(max(expected, 0), 1 << 20) + 1
        let read = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buffer -> Result<[UInt8], LockError> in
            var bytes: [UInt8] = []
            while true {
                let n = pread(fd, buffer.baseAddress, chunk, off_t(bytes.count))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { return .failure(.backend("cannot read \(path): \(Errno.current)")) }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<n]))
                guard bytes.count <= 1 << 20 else { return .failure(.backend("\(path) is larger than 1 MiB: not a keeper file")) }
                if n < chunk { return .success(bytes) }
            }
        }
        return String(decoding: try read.get(), as: UTF8.self)
    }

    static func rewrite(_ fd: Int32, _ text: String, _ path: String, truncate: Bool = true) throws(LockError) {
        let bytes = Array(text.utf8)
        guard !truncate || ftruncate(fd, 0) == 0 else { throw .backend("cannot write \(path): \(Errno.current)") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .backend("cannot write \(path): \(Errno.current)") }
            done += n
        }
    }
}
