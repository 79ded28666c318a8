import Foundation

/// A system configuration file a fixture replaces for the duration of a
/// test: the previous contents (or the file's absence) come back on restore.
public final class ConfigBackup: @unchecked Sendable {
    public let path: String
    private let previous: Data?
    private let previousMode: Int?
    private var restored = false

    /// Saves `path`, then writes `contents` in its place.
    public init(replacing path: String, with contents: String) throws {
        self.path = path
        previous = FileManager.default.contents(atPath: path)
        previousMode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
        guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)) else {
            throw FixtureError("cannot write \(path)")
        }
    }

    public func restore() {
        guard !restored else { return }
        restored = true
        if let previous {
            _ = FileManager.default.createFile(atPath: path, contents: previous)
            if let previousMode { try? FileManager.default.setAttributes([.posixPermissions: previousMode], ofItemAtPath: path) }
        } else {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    deinit { restore() }
}
