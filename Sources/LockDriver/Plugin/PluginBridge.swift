import CLockDriver
import Glibc

/// Adapts a `LockPluginDriver` to the eight C entry points of
/// `virLockDriver`. A plugin creates one bridge and returns it from its
/// `lockmgr_plugin_bridge()`. The bridge validates what the C side hands
/// over, turns thrown errors into -1 plus a message on the host's error
/// channel, and never traps: a trap here would take libvirtd down with it.
public final class PluginBridge<Driver: LockPluginDriver>: PluginEntryPoints, @unchecked Sendable {
    private var driver: Driver?
    private let name: String

    /// `name` prefixes error messages so users know which plugin spoke.
    public init(name: String) {
        self.name = name
        super.init()
    }

    /// Holds one manager in `virLockManager.privateData`.
    private final class Box {
        let manager: Driver.Manager
        init(_ m: Driver.Manager) { manager = m }
    }

    override public func initialize(version: UInt32, configFile: UnsafePointer<CChar>?, flags: UInt32) -> Int32 {
        report {
            guard flags == 0 else { throw LockError.invalid("drvInit: unsupported flags 0x\(String(flags, radix: 16))") }
            guard ABIVersion(rawValue: version).major == ABIVersion.current.major else {
                throw LockError.unsupported(
                    "host ABI version \(ABIVersion(rawValue: version)) is not supported (need \(ABIVersion.current.major).x)")
            }
            if driver == nil {
                driver = try Driver(configFile: configFile.map { String(cString: $0) })
            }
        }
    }

    override public func deinitialize() -> Int32 {
        driver = nil
        return 0
    }

    override public func new(
        _ manager: UnsafeMutablePointer<virLockManager>?, type: UInt32, nparams: Int,
        params: UnsafeMutablePointer<virLockManagerParam>?, flags: UInt32
    ) -> Int32 {
        report {
            guard let manager else { throw LockError.invalid("drvNew: NULL manager") }
            guard let driver else { throw LockError.internalError("drvNew called before drvInit") }
            guard type == UInt32(VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN.rawValue) else {
                throw LockError.unsupported("unknown lock object type \(type)")
            }
            let newFlags = NewFlags(rawValue: flags)
            guard NewFlags.all.isSuperset(of: newFlags) else {
                throw LockError.invalid("drvNew: unsupported flags 0x\(String(flags, radix: 16))")
            }
            let object = try LockObject(params: CParams.decode(params, count: nparams))
            let m = try driver.makeManager(for: object, flags: newFlags)
            manager.pointee.privateData = Unmanaged.passRetained(Box(m)).toOpaque()
        }
    }

    override public func free(_ manager: UnsafeMutablePointer<virLockManager>?) {
        guard let manager, let raw = manager.pointee.privateData else { return }
        Unmanaged<Box>.fromOpaque(raw).release()
        manager.pointee.privateData = nil
    }

    override public func addResource(
        _ manager: UnsafeMutablePointer<virLockManager>?, type: UInt32,
        name: UnsafePointer<CChar>?, nparams: Int,
        params: UnsafeMutablePointer<virLockManagerParam>?, flags: UInt32
    ) -> Int32 {
        report {
            let m = try self.manager(manager)
            guard let name else { throw LockError.invalid("drvAddResource: NULL resource name") }
            let resource = try LockResource(
                type: type, name: String(cString: name),
                params: CParams.decode(params, count: nparams), flags: flags)
            try m.addResource(resource)
        }
    }

    override public func acquire(
        _ manager: UnsafeMutablePointer<virLockManager>?, state: UnsafePointer<CChar>?,
        flags: UInt32, action: virDomainLockFailureAction,
        fd: UnsafeMutablePointer<Int32>?
    ) -> Int32 {
        report {
            let m = try self.manager(manager)
            let acquireFlags = AcquireFlags(rawValue: flags)
            guard AcquireFlags.all.isSuperset(of: acquireFlags) else {
                throw LockError.invalid("drvAcquire: unsupported flags 0x\(String(flags, radix: 16))")
            }
            guard let failureAction = FailureAction(rawValue: Int32(bitPattern: action.rawValue)) else {
                throw LockError.invalid("drvAcquire: unknown failure action \(action.rawValue)")
            }
            let text = state.map { String(cString: $0) }
            let leaked = try m.acquire(
                state: text?.isEmpty == true ? nil : text,
                flags: acquireFlags, action: failureAction)
            if let fd {
                fd.pointee = leaked ?? -1
            } else if let leaked {
                // Nowhere to hand it: closing it drops what it holds, so
                // nothing stays held inside the host by accident.
                close(leaked)
                throw LockError.internalError("drvAcquire: the plugin returned a lock fd but the caller passed no fd pointer")
            }
        }
    }

    override public func release(
        _ manager: UnsafeMutablePointer<virLockManager>?,
        state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, flags: UInt32
    ) -> Int32 {
        report {
            let m = try self.manager(manager)
            let releaseFlags = ReleaseFlags(rawValue: flags)
            guard ReleaseFlags.all.isSuperset(of: releaseFlags) else {
                throw LockError.invalid("drvRelease: unsupported flags 0x\(String(flags, radix: 16))")
            }
            try Self.store(releaseFlags.contains(.allHeld) ? m.releaseAllHeld() : m.release(), in: state)
        }
    }

    override public func inquire(
        _ manager: UnsafeMutablePointer<virLockManager>?,
        state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, flags: UInt32
    ) -> Int32 {
        report {
            let m = try self.manager(manager)
            guard flags == 0 else { throw LockError.invalid("drvInquire: unsupported flags 0x\(String(flags, radix: 16))") }
            try Self.store(m.inquire(), in: state)
        }
    }

    // MARK: helpers

    private func manager(_ manager: UnsafeMutablePointer<virLockManager>?) throws(LockError) -> Driver.Manager {
        guard let raw = manager?.pointee.privateData else {
            throw LockError.invalid("lock manager has no private data (drvNew failed or was not called)")
        }
        return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue().manager
    }

    /// States are handed over malloc'ed: the caller frees them.
    private static func store(_ text: String?, in state: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws(LockError) {
        guard let state else { return }
        guard let text, !text.isEmpty else {
            state.pointee = nil
            return
        }
        guard let copy = strdup(text) else { throw LockError.internalError("out of memory copying the state string") }
        state.pointee = copy
    }

    private func report(_ body: () throws -> Void) -> Int32 {
        do {
            try body()
            return 0
        } catch let e as LockError {
            lockmgr_plugin_report_error(e.kind.rawValue, "\(name): \(e.message)")
        } catch {
            lockmgr_plugin_report_error(LockErrorKind.internalError.rawValue, "\(name): \(error)")
        }
        return -1
    }
}
