import Glibc
import LockDriver

/// What sanlock runs when a process's lease is lost (its "killpath"):
/// libvirt's own helper when libvirt manages the object, else
/// `lockmgr failure-action`, which applies the action to the process.
public struct FailureHelper: Sendable, Equatable {
    public var path: String
    /// One string; sanlock splits it at unescaped spaces.
    public var args: String

    public init(path: String, args: String) {
        self.path = path
        self.args = args
    }

    /// sanlock's field sizes (SANLK_HELPER_PATH_LEN, SANLK_HELPER_ARGS_LEN).
    /// sanlock_killpath copies them with snprintf(buf, LEN - 1, ...), so at
    /// most 126 bytes arrive; anything longer is cut off silently.
    public static let maxLength = 128
    static let usableLength = maxLength - 2

    /// libvirt's helper: pauses or destroys the domain through libvirtd.
    /// libvirt installs it in its LIBEXECDIR: /usr/lib/libvirt on Debian,
    /// /usr/libexec on Fedora and RHEL.
    public static let libvirtHelperCandidates = [
        "/usr/lib/libvirt/libvirt_sanlock_helper",
        "/usr/libexec/libvirt_sanlock_helper",
    ]
    public static var libvirtHelper: String {
        libvirtHelperCandidates.first { access($0, X_OK) == 0 } ?? libvirtHelperCandidates[0]
    }

    /// The helper for `action` on `object`, nil when sanlock's default
    /// (terminate the process) applies. `lockmgr` is the tool to use
    /// without libvirt, nil when unknown; `plugin` is the name it loads
    /// this plugin by: a pause releases the stopped process's leases
    /// through it, as libvirt does when it pauses a domain.
    public static func make(
        action: FailureAction, object: LockObject, lockmgr: String?,
        plugin: String = "sanlock"
    ) throws(LockError) -> FailureHelper? {
        try checkSupported(action)
        guard action != .default else { return nil }
        let helper: FailureHelper
        if let uri = object.uri {
            // libvirt's helper takes: URI UUID ACTION.
            helper = FailureHelper(
                path: libvirtHelper,
                args: [uri, object.uuid.description, action.description].map(escape).joined(separator: " "))
        } else {
            guard let lockmgr else {
                throw .config("failure action '\(action)' needs the lockmgr tool: set failure_helper in the plugin config")
            }
            // `--option=value`: sanlock's helper passes at most 7 words
            // (MAX_AV_COUNT 8 with the path) and silently drops the rest.
            var args = "failure-action --action=\(action) --pid=\(object.pid)"
            if action == .pause { args += " --plugin=\(escape(plugin))" }
            let named = "\(args) --name=\(escape(object.name))"
            // The name only decorates the helper's message: drop it rather than fail.
            helper = FailureHelper(path: lockmgr, args: named.utf8.count <= usableLength ? named : args)
        }
        guard helper.path.utf8.count <= usableLength else {
            throw .config("failure helper path '\(helper.path)' is longer than sanlock passes on (\(usableLength) bytes)")
        }
        guard helper.args.utf8.count <= usableLength else {
            throw .invalid("failure helper arguments '\(helper.args)' are longer than sanlock passes on (\(usableLength) bytes)")
        }
        return helper
    }

    /// sanlock can only kill or run a helper: restart and ignore have no
    /// faithful implementation, and pretending would leave a VM running
    /// without its lease.
    public static func checkSupported(_ action: FailureAction) throws(LockError) {
        switch action {
        case .default, .poweroff, .pause: return
        case .restart, .ignore:
            throw .unsupported("failure action '\(action)' is not supported with sanlock (supported: default, poweroff, pause)")
        }
    }

    /// The default helper next to an installed plugin:
    /// `<prefix>/lib/lock_manager/sanlock.so` → `<prefix>/bin/lockmgr`.
    public static func lockmgr(besidePlugin pluginPath: String) -> String? {
        InstallLayout(pluginPath: pluginPath).map { "\($0.binDir)/lockmgr" }
    }

    /// The name lockmgr loads a plugin file by: `<dir>/NAME.so` → NAME.
    public static func pluginName(path: String) -> String? {
        let name = LockPlugin.name(ofFile: path)
        return path.hasSuffix(".so") && !name.isEmpty ? name : nil
    }

    /// sanlock unescapes backslash-escaped characters in the args.
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            if c == " " || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
