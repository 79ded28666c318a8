/// Text that C peers also read (libvirt's and sanlock's state strings,
/// config files, /proc, iSCSI URLs) is split and searched by byte here, as
/// they do. Swift's own `split(separator:)`, `contains(_:)` and
/// `lastIndex(of:)` on a String compare Characters: a separator followed
/// by a combining mark, or "\r\n", forms another Character and is not
/// matched, so the same bytes would read differently here and in C (and a
/// check such as "contains no '/'" would pass a string that has one).
/// Separators are ASCII. Inlinable: unspecialized across modules, these
/// generic helpers cost metadata lookups on every call (in `perf`, most of
/// what parsing an iscsi:// URL cost in pr-sessiond).
extension StringProtocol {
    @inlinable public func splitBytes(at separator: Unicode.Scalar, omittingEmpty: Bool = true) -> [String] {
        utf8.split(separator: Self.byte(separator), omittingEmptySubsequences: omittingEmpty).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    @inlinable public func containsByte(_ c: Unicode.Scalar) -> Bool { utf8.contains(Self.byte(c)) }

    @inlinable public func firstIndex(ofByte c: Unicode.Scalar) -> Index? { utf8.firstIndex(of: Self.byte(c)) }

    @usableFromInline static func byte(_ c: Unicode.Scalar) -> UInt8 { UInt8(truncatingIfNeeded: c.value) }
}

// String's and Substring's byte views run both ways; StringProtocol's need not.
extension StringProtocol where UTF8View: BidirectionalCollection {
    @inlinable public func lastIndex(ofByte c: Unicode.Scalar) -> Index? { utf8.lastIndex(of: Self.byte(c)) }
}
