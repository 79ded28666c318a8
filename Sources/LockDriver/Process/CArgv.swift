/// A NULL-terminated `char *argv[]` for exec and posix_spawn, owned by
/// Swift. The copies come from Swift's allocator rather than strdup():
/// in a `-static-stdlib` program built with ThreadSanitizer the sanitizer's
/// interceptors are local, so glibc's strdup() allocates with glibc's
/// malloc while free() goes to the sanitizer's, which aborts.
public struct CArgv {
    public private(set) var pointers: [UnsafeMutablePointer<CChar>?]

    public init(_ strings: [String]) {
        pointers =
            strings.map { s in
                let bytes = s.utf8CString
                let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
                for (i, b) in bytes.enumerated() { (copy + i).initialize(to: b) }
                return copy
            } + [nil]
    }

    /// Frees the copies; the pointers must not be used afterwards.
    public func deallocate() {
        pointers.forEach { $0?.deallocate() }
    }
}
