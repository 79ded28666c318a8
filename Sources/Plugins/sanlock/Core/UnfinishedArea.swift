import Glibc

/// A lockspace or lease file that another process or host created may not
/// be initialised yet: libvirt's plugin creates the file, fills it with
/// zeros, then has the daemon write it, so for a moment it holds no sanlock
/// record (ours builds its files privately and links them into place, so it
/// is never seen this way). Reading such a file is waited for, bounded by
/// a limit derived from io_timeout, and never answered by initialising the
/// file ourselves: its creator's write would land on top of ours.
public struct UnfinishedArea: Sendable, Equatable {
    /// How long a file may stay unfinished before we give up, in ms.
    public let limitMs: Int
    /// The io_timeout the limit was derived from (seconds; sanlock's 10 for 0).
    public let ioTimeout: Int

    /// The creator has a zero-fill and one write of the area left, each of
    /// which sanlock allows io_timeout; a second more covers its own
    /// scheduling on a busy host.
    public init(ioTimeout configured: UInt32) {
        ioTimeout = configured == 0 ? 10 : Int(configured)
        limitMs = (2 * ioTimeout + 1) * 1000
    }

    /// sanlock's answers for an area that holds no record yet: zeros
    /// (SANLK_LEADER_MAGIC) or a file shorter than one read (EMSGSIZE,
    /// still being filled).
    public static func isUnfinished(_ rv: Int32) -> Bool {
        rv == -223 || rv == -EMSGSIZE
    }

    /// Pause before look number `look` (1, 2, ...): the creator usually
    /// finishes within milliseconds, so look again soon, then every 100 ms.
    public static func pauseMs(beforeLook look: Int) -> Int {
        min(5 << min(max(look - 1, 0), 5), 100)
    }

    /// Why we gave up, for the error message.
    public func gaveUp(_ what: String) -> String {
        "\(what) exists but was still not initialised after \(limitMs) ms (2 x io_timeout \(ioTimeout) s + 1 s): "
            + "whoever created it has not finished or died half-way; initialise it with `sanlock client init` "
            + "or remove it if nothing uses it"
    }
}
