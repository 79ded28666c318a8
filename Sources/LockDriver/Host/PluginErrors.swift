import CLockDriver
import Glibc

/// Collects the message a plugin left after returning -1: from our own
/// error channel (our plugins), or from libvirt's thread-local last error
/// (libvirt's plugins, which need libvirt.so.0 in the process).
enum PluginErrors {
    /// Forget errors left over from earlier calls on this thread.
    static func reset() {
        _ = lockmgr_host_take_error(nil, nil, 0)
        LibvirtRuntime.shared?.resetLastError()
    }

    static func take(operation: String, plugin: String) -> LockError {
        var kind: Int32 = 0
        var buffer = [CChar](repeating: 0, count: 4096)
        if lockmgr_host_take_error(&kind, &buffer, UInt(buffer.count)) != 0 {
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return LockError(LockErrorKind(rawValue: kind) ?? .internalError, message)
        }
        if let libvirt = LibvirtRuntime.shared, let error = libvirt.lastError() {
            return error
        }
        return .backend("\(plugin): \(operation) failed without an error message")
    }
}

/// libvirt.so.0 as loaded by one of libvirt's own plugins (or by libvirtd).
/// Its plugins abort on their first error unless virInitialize() ran.
final class LibvirtRuntime: @unchecked Sendable {
    private typealias Initialize = @convention(c) () -> Int32
    private typealias LastMessage = @convention(c) () -> UnsafePointer<CChar>?
    private typealias LastCode = @convention(c) () -> Int32
    private typealias Reset = @convention(c) () -> Void

    private let lastMessage: LastMessage
    private let lastCode: LastCode
    private let reset: Reset

    private static let lock = Mutex()
    nonisolated(unsafe) private static var current: LibvirtRuntime?
    nonisolated(unsafe) private static var probed = false

    /// The runtime if libvirt.so.0 was in the process at the last look.
    /// Asked on every plugin call: looking again each time (dlopen with
    /// RTLD_NOLOAD searches the library path and opens the file) cost
    /// every call of a host without libvirt a dozen system calls.
    static var shared: LibvirtRuntime? {
        lock.withLock {
            if !probed { probe() }
            return current
        }
    }

    /// Looks again; called after each plugin load, the one way libvirt.so.0
    /// comes into a host process (libvirt's plugins link it).
    static func refresh() {
        lock.withLock { probe() }
    }

    /// Call with `lock` held.
    private static func probe() {
        if current == nil { current = LibvirtRuntime() }
        probed = true
    }

    private init?() {
        guard let handle = dlopen("libvirt.so.0", RTLD_NOW | RTLD_NOLOAD) else { return nil }
        guard let initialize = dlsym(handle, "virInitialize"),
            let message = dlsym(handle, "virGetLastErrorMessage"),
            let code = dlsym(handle, "virGetLastErrorCode"),
            let reset = dlsym(handle, "virResetLastError")
        else { return nil }
        _ = unsafeBitCast(initialize, to: Initialize.self)()
        lastMessage = unsafeBitCast(message, to: LastMessage.self)
        lastCode = unsafeBitCast(code, to: LastCode.self)
        self.reset = unsafeBitCast(reset, to: Reset.self)
    }

    func resetLastError() { reset() }

    func lastError() -> LockError? {
        let code = lastCode()
        guard code != 0, let text = lastMessage() else { return nil }
        let message = String(cString: text)
        reset()
        return LockError(Self.kind(ofLibvirtCode: code), message)
    }

    /// libvirt's error numbers (virerror.h) in our classification.
    static func kind(ofLibvirtCode code: Int32) -> LockErrorKind {
        switch code {
        case 87: return .conflict  // VIR_ERR_RESOURCE_BUSY
        case 33, 67, 30, 31, 32: return .config  // CONF_SYNTAX, CONFIG_UNSUPPORTED, OPEN/READ/PARSE_FAILED
        case 8: return .invalid  // VIR_ERR_INVALID_ARG
        case 84, 3, 74: return .unsupported  // OPERATION_UNSUPPORTED, NO_SUPPORT, ARGUMENT_UNSUPPORTED
        case 1: return .internalError  // VIR_ERR_INTERNAL_ERROR
        default: return .backend
        }
    }
}
