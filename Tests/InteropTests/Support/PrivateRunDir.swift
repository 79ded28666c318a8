import Foundation
import Glibc

/// Runs code on a dedicated thread that has its own mount namespace, in
/// which `/run` is a private directory.
///
/// libvirt's lockd.so, when running as root, always talks to virtlockd at
/// `/run/libvirt/virtlockd-sock` (neither its config nor the environment
/// can move it), and virtlockd as root always listens there. Binding a test
/// directory over `/run` for one thread — and for the daemon it spawns,
/// which inherits the thread's namespace — keeps the test's virtlockd
/// private without touching the machine's `/run`. The namespace dies with
/// the thread and the daemon.
enum PrivateRunDir {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `body` on a new thread whose `/run` is `runDir`; returns its
    /// result or rethrows its error. Do not call Swift Testing's
    /// expectations inside `body`: return observations and check them in
    /// the test itself.
    static func run<T>(_ runDir: String, _ body: @escaping () throws -> T) throws -> T {
        let outcome = Outcome(body)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            do {
                try enterPrivateNamespace(bindingRunTo: runDir)
                outcome.result = .success(try outcome.body())
            } catch {
                outcome.result = .failure(error)
            }
        }
        thread.start()
        done.wait()
        guard let result = outcome.result else { throw SetupError(description: "private namespace thread ended without a result") }
        return try result.get()
    }

    /// Hands the body to the thread and its result back; the semaphore
    /// orders the accesses.
    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, Error>?
        let body: () throws -> T
        init(_ body: @escaping () throws -> T) { self.body = body }
    }

    /// The mount namespace of the calling thread, as the kernel names it.
    static var currentThreadNamespace: String? { link("/proc/thread-self/ns/mnt") }
    /// The mount namespace of the process's main thread.
    static var processNamespace: String? { link("/proc/self/ns/mnt") }
    static func namespace(ofPid pid: Int32) -> String? { link("/proc/\(pid)/ns/mnt") }

    // MARK: syscalls (looked up at run time: Glibc's module map does not
    // export unshare/mount without _GNU_SOURCE)

    private typealias Unshare = @convention(c) (Int32) -> Int32
    private typealias Mount =
        @convention(c) (
            UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
            UInt, UnsafeRawPointer?
        ) -> Int32
    private static let cloneNewNS: Int32 = 0x0002_0000  // CLONE_NEWNS
    private static let msBind: UInt = 4096  // MS_BIND
    private static let msRec: UInt = 16384  // MS_REC
    private static let msPrivate: UInt = 1 << 18  // MS_PRIVATE

    private static func enterPrivateNamespace(bindingRunTo runDir: String) throws {
        guard let libc = dlopen(nil, RTLD_NOW), let u = dlsym(libc, "unshare"), let m = dlsym(libc, "mount") else {
            throw SetupError(description: "cannot find unshare/mount in libc")
        }
        let unshare = unsafeBitCast(u, to: Unshare.self)
        let mount = unsafeBitCast(m, to: Mount.self)
        // unshare(CLONE_NEWNS) is per thread: it also unshares this thread's fs_struct.
        guard unshare(cloneNewNS) == 0 else {
            throw SetupError(
                description: "unshare(CLONE_NEWNS) failed: \(String(cString: strerror(errno))) (needs root with CAP_SYS_ADMIN)")
        }
        // Without this, a bind mount below a shared mount would propagate back to the host.
        guard mount(nil, "/", nil, msRec | msPrivate, nil) == 0 else {
            throw SetupError(description: "making / private failed: \(String(cString: strerror(errno)))")
        }
        guard mount(runDir, "/run", nil, msBind, nil) == 0 else {
            throw SetupError(description: "bind-mounting \(runDir) on /run failed: \(String(cString: strerror(errno)))")
        }
    }

    private static func link(_ path: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: path)
    }
}
