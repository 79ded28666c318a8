/// A domain that needs no OS image: SeaBIOS finds nothing to boot and idles,
/// which is all a lock manager test needs from a guest. 64 MiB, one vCPU, no
/// balloon; a lock failure powers it off.
public struct TinyDomain: Sendable {
    public var name: String
    /// "kvm" when /dev/kvm is usable, else "qemu" (TCG).
    public var type: String
    public var disks: [String]
    public var leases: [Lease] = []

    /// An explicit `<lease>`: a sanlock resource the domain must hold.
    public struct Lease: Sendable {
        public var lockspace: String
        public var key: String
        public var path: String
        public var offset: UInt64

        public init(lockspace: String, key: String, path: String, offset: UInt64 = 0) {
            self.lockspace = lockspace
            self.key = key
            self.path = path
            self.offset = offset
        }
    }

    public init(name: String, type: String, disks: [String]) {
        self.name = name
        self.type = type
        self.disks = disks
    }

    public var xml: String {
        let leaseXML = leases.map { lease in
            "<lease><lockspace>\(lease.lockspace)</lockspace><key>\(lease.key)</key>"
                + "<target path='\(lease.path)' offset='\(lease.offset)'/></lease>"
        }
        let diskXML = disks.enumerated().map { index, path in
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='\(path)'/>"
                + "<target dev='vd\(Character(UnicodeScalar(UInt8(97 + index))))' bus='virtio'/></disk>"
        }
        return """
            <domain type='\(type)'>
              <name>\(name)</name>
              <memory unit='MiB'>64</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type></os>
              <on_lockfailure>poweroff</on_lockfailure>
              <devices>
                \((leaseXML + diskXML).joined(separator: "\n    "))
                <memballoon model='none'/>
              </devices>
            </domain>

            """
    }
}
