import Glibc

/// Ends the process when a plugin call outlives its CallTimeout.
///
/// A thread, not alarm()/setitimer(): those timers survive execve, so a
/// timer still pending when `lockmgr run` execs its command would kill the
/// command with SIGALRM. A thread cannot outlive exec, and a call is
/// disarmed when it returns, before anything else runs. Expiry happens
/// under the lock disarm takes, so once disarm returns the call can no
/// longer be declared late.
final class CallWatchdog: @unchecked Sendable {
    static let shared = CallWatchdog()

    private struct Armed {
        var deadline: timespec
        var message: [UInt8]
        var exitStatus: Int32
    }

    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var armed: [UInt64: Armed] = [:]
    private var nextToken: UInt64 = 0
    private var started = false

    private init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Deadlines on the monotonic clock: a clock step must not fire them.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&wake, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Starts the watching thread once per process; a host calls this when
    /// it loads a plugin with a limit, so arming later cannot fail.
    func start() throws(LockError) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !started else { return }
        switch ThreadStart.run({ CallWatchdog.shared.watch() }) {
        case .success(let thread): pthread_detach(thread)
        case .failure(let e): throw .internalError("cannot start the plugin call timer thread: \(e)")
        }
        started = true
    }

    /// Runs `body` (one plugin call) under `limit`.
    func guarding<R>(_ limit: CallTimeout?, plugin: String, operation: String, _ body: () -> R) -> R {
        guard let limit, !limit.isUnlimited else { return body() }
        let message = Array(limit.expiryMessage(plugin: plugin, operation: operation).utf8)
        let token = arm(after: limit.seconds, message: message, exitStatus: limit.exitStatus)
        defer { disarm(token) }
        return body()
    }

    private func arm(after seconds: UInt32, message: [UInt8], exitStatus: Int32) -> UInt64 {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += Int(seconds)
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        nextToken &+= 1
        armed[nextToken] = Armed(deadline: deadline, message: message, exitStatus: exitStatus)
        pthread_cond_signal(&wake)
        return nextToken
    }

    private func disarm(_ token: UInt64) {
        pthread_mutex_lock(&mutex)
        armed[token] = nil
        pthread_mutex_unlock(&mutex)
    }

    private func watch() -> Never {
        pthread_mutex_lock(&mutex)
        while true {
            guard let first = armed.values.min(by: { Self.isEarlier($0.deadline, $1.deadline) }) else {
                pthread_cond_wait(&wake, &mutex)
                continue
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if !Self.isEarlier(now, first.deadline) {
                // Still holding the lock: no disarm can slip in between.
                first.message.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
                _exit(first.exitStatus)
            }
            var deadline = first.deadline
            pthread_cond_timedwait(&wake, &mutex, &deadline)
        }
    }

    private static func isEarlier(_ a: timespec, _ b: timespec) -> Bool {
        a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec
    }
}
