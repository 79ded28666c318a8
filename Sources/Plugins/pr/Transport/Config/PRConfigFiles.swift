import LockDriver
import PRProtocol

/// Reading the pr plugin's settings and this host's identity files is I/O,
/// so it lives here, beside the transports the settings pick, and PRProtocol
/// only parses what was read.
extension PRConfig {
    public static let systemInitiatorFile = "/etc/iscsi/initiatorname.iscsi"
    public static let machineIDFile = "/etc/machine-id"

    /// Reads the settings; `nil` or a missing file means defaults.
    public static func load(
        path: String?, systemInitiatorFile: String = systemInitiatorFile,
        machineIDFile: String = machineIDFile
    ) throws(LockError) -> PRConfig {
        let conf =
            try path.map { p throws(LockError) in try ConfFile.load(path: p, missingIsEmpty: true) }
            ?? .empty(origin: "defaults")
        return try PRConfig(conf, systemInitiatorFile: systemInitiatorFile, machineIDFile: machineIDFile)
    }

    /// The settings of `conf`, with this host's identities read from the given files.
    public init(
        _ conf: ConfFile, systemInitiatorFile: String = systemInitiatorFile,
        machineIDFile: String = machineIDFile
    ) throws(LockError) {
        try self.init(
            conf, systemInitiator: try? FileText.read(systemInitiatorFile).get(),
            machineID: try? FileText.read(machineIDFile).get())
    }
}
