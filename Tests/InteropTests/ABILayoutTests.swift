import CLockDriver
import Foundation
import Harness
import Testing

@testable import LockDriver

/// The C structs as Swift imports them from lock_driver.h have exactly the
/// layout of libvirt's virLockDriver ABI 1.0.0 (x86_64), and every constant
/// has libvirt's value. The expected numbers are the ones measured on
/// libvirt 9.0 (its src/locking/lock_driver.h), written out here, not
/// derived from the header under test.
@Suite struct ABILayoutTests {
    @Test func driverTableIs72BytesWithTenFieldsEveryEightBytes() {
        #expect(MemoryLayout<virLockDriver>.size == 72)
        #expect(MemoryLayout<virLockDriver>.alignment == 8)
        let offsets: [(String, Int?, Int)] = [
            ("version", MemoryLayout<virLockDriver>.offset(of: \.version), 0),
            ("flags", MemoryLayout<virLockDriver>.offset(of: \.flags), 4),
            ("drvInit", MemoryLayout<virLockDriver>.offset(of: \.drvInit), 8),
            ("drvDeinit", MemoryLayout<virLockDriver>.offset(of: \.drvDeinit), 16),
            ("drvNew", MemoryLayout<virLockDriver>.offset(of: \.drvNew), 24),
            ("drvFree", MemoryLayout<virLockDriver>.offset(of: \.drvFree), 32),
            ("drvAddResource", MemoryLayout<virLockDriver>.offset(of: \.drvAddResource), 40),
            ("drvAcquire", MemoryLayout<virLockDriver>.offset(of: \.drvAcquire), 48),
            ("drvRelease", MemoryLayout<virLockDriver>.offset(of: \.drvRelease), 56),
            ("drvInquire", MemoryLayout<virLockDriver>.offset(of: \.drvInquire), 64),
        ]
        for (field, actual, expected) in offsets {
            #expect(actual == expected, "virLockDriver.\(field)")
        }
        #expect(MemoryLayout<UInt32>.size == MemoryLayout.size(ofValue: virLockDriver().version))
    }

    @Test func managerIsTwoPointers() {
        #expect(MemoryLayout<virLockManager>.size == 16)
        #expect(MemoryLayout<virLockManager>.offset(of: \.driver) == 0)
        #expect(MemoryLayout<virLockManager>.offset(of: \.privateData) == 8)
    }

    @Test func paramIs32BytesWithKeyAt8AndA16ByteValueAt16() {
        let param = virLockManagerParam()
        #expect(MemoryLayout<virLockManagerParam>.size == 32)
        #expect(MemoryLayout<virLockManagerParam>.stride == 32)
        #expect(MemoryLayout<virLockManagerParam>.offset(of: \.type) == 0)
        #expect(MemoryLayout<virLockManagerParam>.offset(of: \.key) == 8)
        #expect(MemoryLayout<virLockManagerParam>.offset(of: \.value) == 16)
        #expect(MemoryLayout.size(ofValue: param.value) == 16)
        #expect(MemoryLayout.size(ofValue: param.value.uuid) == 16)
        #expect(MemoryLayout.size(ofValue: param.type) == 4)
    }

    @Test func versionAndEnumValuesAreLibvirts() {
        let values: [(String, Int64, Int64)] = [
            ("VIR_LOCK_MANAGER_VERSION", Int64(VIR_LOCK_MANAGER_VERSION), 1_000_000),
            ("USES_STATE", Int64(VIR_LOCK_MANAGER_USES_STATE.rawValue), 1),
            ("OBJECT_TYPE_DOMAIN", Int64(VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN.rawValue), 0),
            ("RESOURCE_TYPE_DISK", Int64(VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK.rawValue), 0),
            ("RESOURCE_TYPE_LEASE", Int64(VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE.rawValue), 1),
            ("RESOURCE_READONLY", Int64(VIR_LOCK_MANAGER_RESOURCE_READONLY.rawValue), 1),
            ("RESOURCE_SHARED", Int64(VIR_LOCK_MANAGER_RESOURCE_SHARED.rawValue), 2),
            ("ACQUIRE_REGISTER_ONLY", Int64(VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY.rawValue), 1),
            ("ACQUIRE_RESTRICT", Int64(VIR_LOCK_MANAGER_ACQUIRE_RESTRICT.rawValue), 2),
            ("NEW_STARTED", Int64(VIR_LOCK_MANAGER_NEW_STARTED.rawValue), 1),
            ("FAILURE_DEFAULT", Int64(VIR_DOMAIN_LOCK_FAILURE_DEFAULT.rawValue), 0),
            ("FAILURE_POWEROFF", Int64(VIR_DOMAIN_LOCK_FAILURE_POWEROFF.rawValue), 1),
            ("FAILURE_RESTART", Int64(VIR_DOMAIN_LOCK_FAILURE_RESTART.rawValue), 2),
            ("FAILURE_PAUSE", Int64(VIR_DOMAIN_LOCK_FAILURE_PAUSE.rawValue), 3),
            ("FAILURE_IGNORE", Int64(VIR_DOMAIN_LOCK_FAILURE_IGNORE.rawValue), 4),
            ("PARAM_TYPE_STRING", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_STRING.rawValue), 0),
            ("PARAM_TYPE_CSTRING", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_CSTRING.rawValue), 1),
            ("PARAM_TYPE_INT", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_INT.rawValue), 2),
            ("PARAM_TYPE_LONG", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_LONG.rawValue), 3),
            ("PARAM_TYPE_UINT", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_UINT.rawValue), 4),
            ("PARAM_TYPE_ULONG", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_ULONG.rawValue), 5),
            ("PARAM_TYPE_DOUBLE", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_DOUBLE.rawValue), 6),
            ("PARAM_TYPE_UUID", Int64(VIR_LOCK_MANAGER_PARAM_TYPE_UUID.rawValue), 7),
            ("VIR_UUID_BUFLEN", Int64(VIR_UUID_BUFLEN), 16),
        ]
        for (name, actual, expected) in values {
            #expect(actual == expected, "\(name)")
        }
    }

    /// The Swift model the host and plugins use carries the same numbers.
    @Test func swiftModelUsesTheSameNumbers() {
        #expect(ABIVersion.current.rawValue == 1_000_000)
        #expect(ABIVersion.current.description == "1.0.0")
        #expect(DriverFlags.usesState.rawValue == 1)
        #expect(AcquireFlags.registerOnly.rawValue == 1)
        #expect(AcquireFlags.restrict.rawValue == 2)
        #expect(NewFlags.started.rawValue == 1)
        #expect(AccessMode.exclusive.flags == 0)
        #expect(AccessMode.readOnly.flags == 1)
        #expect(AccessMode.shared.flags == 2)
        #expect(LockResource.disk("/d").typeCode == 0)
        #expect(LockResource.lease(key: "k", lockspace: "l", path: "/p").typeCode == 1)
        #expect(FailureAction.allCases.map(\.rawValue) == [0, 1, 2, 3, 4])
        #expect(FailureAction.allCases.map(\.description) == ["default", "poweroff", "restart", "pause", "ignore"])
    }

    /// The five domain params go out with libvirt's key names and types
    /// (uuid UUID, name STRING, id UINT, pid UINT, uri CSTRING).
    @Test func domainParamsHaveLibvirtsKeysAndTypes() throws {
        let uuid = try #require(UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809"))
        let object = LockObject(uuid: uuid, name: "vm1", id: 3, pid: 4242, uri: nil)
        let seen = CParams.withCArray(object.params) { array, count -> [(String, Int32)] in
            guard let array else { return [] }
            return (0..<count).map { (String(cString: array[$0].key), array[$0].type) }
        }
        #expect(seen.map(\.0) == ["uuid", "name", "id", "pid", "uri"])
        #expect(seen.map(\.1) == [7, 0, 4, 4, 1])
    }

    /// A disk carries no params, and libvirt passes them as a NULL array
    /// (lockd.so refuses a disk with a non-NULL one); so must our host.
    @Test func noParamsIsANullArray() {
        let passed = CParams.withCArray([]) { array, count in (array == nil, count) }
        #expect(passed == (true, 0))
    }

    /// libvirt's own plugins, as Debian ships them, export a table of the
    /// same size: the numbers above are libvirt's, not only ours.
    @Test(arguments: ["lockd", "sanlock"])
    func libvirtsPluginsExportA72ByteTable(plugin: String) throws {
        let path = "\(BuildProducts.libvirtPluginDir)/\(plugin).so"
        try #require(
            FileManager.default.fileExists(atPath: path),
            "\(path) is missing: install the Debian packages libvirt-daemon and libvirt-sanlock")
        let table = try ELFFile.dynamicSymbols(path).filter { $0.name == "virLockDriverImpl" && $0.defined }
        #expect(table.map(\.type) == ["OBJECT"])
        #expect(table.map(\.size) == [MemoryLayout<virLockDriver>.size])
    }
}
