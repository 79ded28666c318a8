import Glibc

/// Runs independent pieces of work side by side on plain pthreads (no
/// Dispatch, which plugins linking statically lack): what lets a step over
/// several disks that each take one command at a time wait for one
/// device's round trip instead of one per disk.
public enum Parallel {
    /// The most threads one call starts; more pieces queue for them.
    public static let maxThreads = 32

    /// Calls `body(i)` once for every i in 0..<count and returns when all
    /// have returned: the calling thread takes part, up to `maxThreads - 1`
    /// threads are started for the call and joined. If a thread cannot be
    /// started its share runs on the others (slower, never skipped).
    /// `body` must be safe to run on several threads at once for
    /// different i.
    public static func forEach(_ count: Int, _ body: @escaping (Int) -> Void) {
        guard count > 1 else {
            if count == 1 { body(0) }
            return
        }
        let queue = Queue(count: count, body: body)
        var threads: [pthread_t] = []
        for _ in 1..<min(count, maxThreads) {
            guard case .success(let thread) = ThreadStart.run({ queue.drain() }) else { break }
            threads.append(thread)
        }
        queue.drain()
        for thread in threads { pthread_join(thread, nil) }
    }

    /// The pieces not yet taken, handed out one at a time.
    private final class Queue: @unchecked Sendable {
        let count: Int
        let body: (Int) -> Void
        let lock = Mutex()
        var next = 0

        init(count: Int, body: @escaping (Int) -> Void) {
            self.count = count
            self.body = body
        }

        func drain() {
            while true {
                let i = lock.withLock { () -> Int in
                    defer { next += 1 }
                    return next
                }
                guard i < count else { return }
                body(i)
            }
        }
    }
}
