import Glibc

/// Starts a pthread running a Swift closure: the one place that boxes the
/// closure for pthread_create's C callback (no Foundation Thread, which
/// plugins linking statically lack).
public enum ThreadStart {
    /// The started thread (join or detach it), or why none started.
    public static func run(_ body: @escaping () -> Void) -> Result<pthread_t, Errno> {
        let raw = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
                return nil
            }, raw)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(raw).release()
            return .failure(Errno(rc))
        }
        return .success(thread)
    }

    private final class Box: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
}
