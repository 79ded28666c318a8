import LockDriver

/// The pr plugin's settings, from `<driver>-pr.conf` (all optional):
///
///     iscsi_initiator = "iqn.2026-01.example:host1"  # one name = one host
///     host_id = 17                     # host part of every key, 1..4294967295
///     exclusive_type = "write-exclusive-registrants-only"
///     shared_type = "write-exclusive-all-registrants"
///     timeout_ms = 5000                # per SCSI command, and per login
///     pr_helper_socket = "/run/qemu-pr-helper.sock"   # path disks via qemu-pr-helper
///     iscsi_session_socket = "/run/lockmgr/pr-sessiond.sock"  # iSCSI through pr-sessiond's kept sessions
///     block_pr = "auto"                # PR OUT through the kernel's PR ioctls: auto, always, never
///     command_log = "/var/log/lockmgr-pr.log"  # append every SCSI command sent (debugging)
///     keeper = 1                       # 0: reservations outlive their VM (unsafe)
///     keeper_dir = "/run/lockmgr/pr"   # the keepers' records, pid files and log
///     keeper_path = "/usr/local/libexec/lockmgr/pr-keeper"  # default: beside the plugin
///     keeper_interval_ms = 1000        # how often a keeper looks at its VM and LUs
///     guest_reservations = [ "/dev/disk/by-id/..." ]  # disks whose reservations the guest owns
///
/// Without a file: the initiator name comes from open-iscsi's
/// /etc/iscsi/initiatorname.iscsi, the host part from that name or from
/// /etc/machine-id, types are those of fence_scsi (exclusive) and LVM
/// (shared), and path disks use SG_IO.
public struct PRConfig: Sendable, Equatable {
    public var iscsiInitiator: String?
    public var hostPart: UInt32?
    public var exclusiveType: ReservationType = .writeExclusiveRegistrantsOnly
    public var sharedType: ReservationType = .writeExclusiveAllRegistrants
    public var timeoutMilliseconds: UInt32 = 5000
    public var helperSocket: String?
    /// pr-sessiond's socket: iSCSI commands go through the sessions it
    /// keeps logged in; without it (or when it does not answer) each
    /// operation logs in itself.
    public var sessionSocket: String?
    /// Whether PR OUT on a block device goes through the kernel's PR
    /// ioctls (BlockPRTransport) or SG_IO; see TransportFactory.
    public var blockPR: BlockPRSetting = .auto
    /// Appends one line per SCSI command sent: debugging, and how the
    /// tests count what a plugin process really sent.
    public var commandLog: String?
    /// Whether a keeper process watches each VM (see Keeper/).
    public var keeper = true
    public var keeperDir = "/run/lockmgr/pr"
    /// nil: found beside the installed plugin.
    public var keeperPath: String?
    public var keeperIntervalMilliseconds: UInt32 = 1000
    /// Disks whose SCSI reservations belong to the guest (libvirt's
    /// `<reservations managed=...>`, QEMU's pr-manager): the plugin sends
    /// them nothing. libvirt does not tell a lock manager which disks those
    /// are, and a host reservation would break the guest's own PR cluster.
    public var guestReservations: Set<String> = []
    /// Where the settings came from, for error messages.
    public var origin: String = "defaults"

    public init(iscsiInitiator: String? = nil, hostPart: UInt32? = nil) {
        self.iscsiInitiator = iscsiInitiator
        self.hostPart = hostPart ?? iscsiInitiator.map(PRKey.hostPart(ofIdentity:))
    }

    static let known: Set<String> = [
        "iscsi_initiator", "host_id", "exclusive_type", "shared_type",
        "timeout_ms", "pr_helper_socket", "iscsi_session_socket", "block_pr", "command_log",
        "keeper", "keeper_dir", "keeper_path", "keeper_interval_ms",
        "guest_reservations",
    ]

    /// The settings of `conf`; `systemInitiator` (open-iscsi's name) and
    /// `machineID` are this host's identities, read by the caller
    /// (PRTransport's `PRConfig.load`), used when `conf` names none.
    public init(_ conf: ConfFile, systemInitiator: String?, machineID: String?) throws(LockError) {
        try conf.rejectUnknown(Self.known)
        origin = conf.origin
        if let name = try conf.string("iscsi_initiator") {
            guard Self.isValidInitiator(name) else {
                throw .config(
                    "\(conf.location(of: "iscsi_initiator")): 'iscsi_initiator' must be an iqn. or eui. name without spaces, not '\(name)'")
            }
            iscsiInitiator = name
        } else {
            iscsiInitiator = systemInitiator.flatMap(Self.initiatorName(inInitiatorFile:))
        }
        if let id = try conf.integer("host_id", in: 1...Int64(UInt32.max)) {
            hostPart = UInt32(truncatingIfNeeded: id)
        } else if let name = iscsiInitiator {
            hostPart = PRKey.hostPart(ofIdentity: name)
        } else if let id = machineID?.filter({ !$0.isWhitespace }), !id.isEmpty {
            hostPart = PRKey.hostPart(ofIdentity: "machine-id:" + id)
        }
        if let t = try Self.type(conf, "exclusive_type") {
            guard !t.isAllRegistrants else {
                throw .config(
                    "\(conf.location(of: "exclusive_type")): 'exclusive_type' cannot be the all-registrants type '\(t)': it would not fence other hosts"
                )
            }
            exclusiveType = t
        }
        if let t = try Self.type(conf, "shared_type") {
            guard t.isAllRegistrants else {
                throw .config(
                    "\(conf.location(of: "shared_type")): 'shared_type' must be an all-registrants type (write-exclusive-all-registrants or exclusive-access-all-registrants), not '\(t)'"
                )
            }
            sharedType = t
        }
        if let ms = try conf.integer("timeout_ms", in: 100...600_000) { timeoutMilliseconds = UInt32(ms) }
        helperSocket = try conf.absolutePath("pr_helper_socket")
        sessionSocket = try conf.absolutePath("iscsi_session_socket")
        if let text = try conf.string("block_pr") {
            guard let setting = BlockPRSetting(rawValue: text) else {
                throw .config("\(conf.location(of: "block_pr")): 'block_pr' must be auto, always or never, not '\(text)'")
            }
            blockPR = setting
        }
        commandLog = try conf.absolutePath("command_log")
        if let on = try conf.integer("keeper", in: 0...1) { keeper = on == 1 }
        if let dir = try conf.absolutePath("keeper_dir") { keeperDir = dir }
        keeperPath = try conf.absolutePath("keeper_path")
        if let ms = try conf.integer("keeper_interval_ms", in: 20...60_000) { keeperIntervalMilliseconds = UInt32(ms) }
        for disk in try conf.stringList("guest_reservations") ?? [] {
            guard disk.hasPrefix("/") || disk.hasPrefix(ISCSIURL.scheme) else {
                throw .config(
                    "\(conf.location(of: "guest_reservations")): 'guest_reservations' lists disks as libvirt names them (absolute paths or iscsi:// URLs), not '\(disk)'"
                )
            }
            guestReservations.insert(disk)
        }
    }

    /// The host part of our keys, or a configuration error saying how to set it.
    public func requireHostPart() throws(LockError) -> UInt32 {
        guard let hostPart else {
            throw .config(
                "\(origin): no host identity: set 'host_id' or 'iscsi_initiator' (no /etc/iscsi/initiatorname.iscsi or /etc/machine-id found)"
            )
        }
        return hostPart
    }

    static func type(_ conf: ConfFile, _ name: String) throws(LockError) -> ReservationType? {
        guard let text = try conf.string(name) else { return nil }
        guard let t = ReservationType.allCases.first(where: { $0.configName == text }) else {
            let names = ReservationType.allCases.map(\.configName).joined(separator: ", ")
            throw .config("\(conf.location(of: name)): '\(name)' must be one of \(names), not '\(text)'")
        }
        return t
    }

    public static func isValidInitiator(_ s: String) -> Bool {
        (s.hasPrefix("iqn.") || s.hasPrefix("eui.") || s.hasPrefix("naa.")) && s.utf8.count <= 223
            && s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// The name in open-iscsi's initiatorname.iscsi (`InitiatorName=iqn...`), if valid.
    static func initiatorName(inInitiatorFile text: String) -> String? {
        for line in text.splitBytes(at: "\n") where line.hasPrefix("InitiatorName=") {
            let name = String(line.dropFirst("InitiatorName=".count)).filter { !$0.isWhitespace }
            if isValidInitiator(name) { return name }
        }
        return nil
    }
}
