import LockDriver
import SanlockCore
import Testing

/// The sanlock plugin's pure logic, without a daemon.
@Suite struct SanlockCoreTests {
    // RFC 1321 appendix A.5 test suite.
    @Test(arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a"
        ),
    ])
    func md5MatchesRFC1321(input: String, digest: String) {
        #expect(MD5.hex(input) == digest)
    }

    // 55, 56 and 64 bytes pad into one or two blocks; digests from md5sum.
    @Test(arguments: [
        (55, "04364420e25c512fd958a70738aa8f72"),
        (56, "668a72d5ba17f08e62dabcafad6db14b"),
        (64, "c1bb4f81d892b2d57947682aeb252456"),
    ])
    func md5HandlesBlockBoundaries(length: Int, digest: String) {
        #expect(MD5.hex(String(repeating: "x", count: length)) == digest)
    }

    @Test func automaticLeaseIsNamedByTheMD5OfTheDiskPath() throws {
        let lease = try SanlockLease.automatic(disk: "/images/a.img", leaseDir: "/var/lib/libvirt/sanlock", shared: false)
        // echo -n /images/a.img | md5sum
        #expect(lease.name == "0699977675d399887ed22353bd80c4d2")
        #expect(lease.lockspace == "__LIBVIRT__DISKS__")
        #expect(lease.path == "/var/lib/libvirt/sanlock/0699977675d399887ed22353bd80c4d2")
        #expect(lease.offset == 0)
    }

    @Test func leaseFieldsMustFitSanlock() {
        #expect(throws: LockError.self) { try SanlockLease(lockspace: "ls", name: String(repeating: "n", count: 48), path: "/l") }
        #expect(throws: LockError.self) { try SanlockLease(lockspace: "ls", name: "n", path: "relative") }
        #expect(throws: LockError.self) { try SanlockLease(lockspace: "ls", name: "n", path: "/with space") }
        // A space followed by a combining mark is still a space to sanlock (and one Character to Swift).
        #expect(throws: LockError.self) { try SanlockLease(lockspace: "ls", name: "n", path: "/with \u{301}accent") }
        #expect((try? SanlockLease(lockspace: "ls", name: String(repeating: "n", count: 47), path: "/l")) != nil)
    }

    // MARK: state strings

    /// sanlock separates leases at every space byte, whatever follows it.
    @Test func splitsStateStringsAtEverySpaceByte() throws {
        let state = try LeaseState(parsing: "LS:a:/l/a:0:7 \u{301}LS:b:/l/b:0:8")
        #expect(state.entries.map(\.name) == ["a", "b"])
        #expect(state.entries[1].lockspace == "\u{301}LS")
    }

    @Test func parsesSanlockStateStrings() throws {
        let state = try LeaseState(parsing: "__LIBVIRT__DISKS__:abc:/l/abc:0:7 LS:k:/a\\:b:1048576:SH")
        #expect(state.entries.count == 2)
        #expect(
            state.entries[0]
                == LeaseState.Entry(
                    lockspace: "__LIBVIRT__DISKS__", name: "abc",
                    disks: [.init(path: "/l/abc", offset: 0)], version: 7, shared: false))
        #expect(
            state.entries[1]
                == LeaseState.Entry(
                    lockspace: "LS", name: "k",
                    disks: [.init(path: "/a:b", offset: 1_048_576)], version: nil, shared: true))
    }

    @Test(arguments: ["garbage", "ls:name", "ls:name:/p:notanumber:1", "ls:name:/p:0:v1"])
    func rejectsMalformedStates(_ text: String) {
        let error = #expect(throws: LockError.self) { try LeaseState(parsing: text) }
        #expect(error?.kind == .invalid)
        #expect(error?.message.contains(text) == true)
    }

    // MARK: config

    @Test func defaultsAreLibvirts() throws {
        let c = try SanlockConfig(ConfFile(parsing: "", origin: "t.conf"))
        #expect(c.autoDiskLeases == false)
        #expect(c.diskLeaseDir == "/var/lib/libvirt/sanlock")
        #expect(c.hostID == 0)
        #expect(c.requireLeaseForDisks == true)
        #expect(c.ioTimeout == 0)
        #expect(c.user == nil && c.group == nil)
    }

    @Test func readsLibvirtsKeys() throws {
        let text = """
            auto_disk_leases = 1
            disk_lease_dir = "/srv/leases"
            host_id = 17
            io_timeout = 5
            user = "root"
            group = "+0"
            """
        let c = try SanlockConfig(ConfFile(parsing: text, origin: "qemu-sanlock.conf"))
        #expect(c.autoDiskLeases && c.hostID == 17 && c.ioTimeout == 5)
        #expect(c.diskLeaseDir == "/srv/leases")
        #expect(c.requireLeaseForDisks == false)  // libvirt: defaults to !auto_disk_leases
        #expect(c.user == 0 && c.group == 0)
    }

    @Test(arguments: [
        ("auto_disk_leases = 1\n", "qemu-sanlock.conf:1: auto_disk_leases = 1 needs host_id"),
        ("host_id = 2001\n", "qemu-sanlock.conf:1: 'host_id' must be between 1 and 2000"),
        ("auto_disk_lease = 1\n", "qemu-sanlock.conf:1: unknown setting 'auto_disk_lease'"),
        ("# leases\ndisk_lease_dir = \"leases\"\n", "qemu-sanlock.conf:2: 'disk_lease_dir' must be an absolute path"),
        ("\nuser = \"no-such-user-here\"\n", "qemu-sanlock.conf:2: user 'no-such-user-here' does not exist"),
        ("\n\ngroup = \"no-such-group-here\"\n", "qemu-sanlock.conf:3: group 'no-such-group-here' does not exist"),
        ("failure_helper = \"lockmgr\"\n", "qemu-sanlock.conf:1: 'failure_helper' must be an absolute path"),
    ])
    func badConfigNamesFileAndLine(text: String, message: String) {
        let error = #expect(throws: LockError.self) {
            try SanlockConfig(ConfFile(parsing: text, origin: "qemu-sanlock.conf"))
        }
        #expect(error?.kind == .config)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    // MARK: errors

    @Test func translatesCodesSanlockStrerrorLeavesUnknown() {
        let stale = SanlockStatus.error(-240, .acquire, "cannot acquire lease 'x'")
        #expect(stale.kind == .conflict)
        #expect(
            stale.message
                == "cannot acquire lease 'x': the lease was acquired by someone else since the state was saved (lease version changed): the state is stale (sanlock error -240)"
        )
        #expect(SanlockStatus.reason(-243, .acquire) == "held by another host that is alive")
        #expect(SanlockStatus.reason(-223, .acquire).contains("not initialised"))
        #expect(SanlockStatus.kind(-17, .acquire) == .conflict)
        #expect(SanlockStatus.reason(-28, .acquire).contains("has not joined"))
        #expect(SanlockStatus.kind(-5, .acquire) == .backend)
        // Seen in the race tests: two processes on one host acquiring at once.
        #expect(SanlockStatus.kind(-16, .acquire) == .conflict)
        #expect(SanlockStatus.reason(-16, .acquire) == "another process on this host is acquiring it right now")
    }

    // MARK: failure helper

    let object = LockObject(uuid: UUIDBytes("c7a5fdbd-cdaf-9455-926a-d65c16db1809")!, name: "my vm", pid: 4242)

    @Test func failureHelperWithoutLibvirtIsLockmgr() throws {
        let helper = try FailureHelper.make(action: .poweroff, object: object, lockmgr: "/opt/lm/bin/lockmgr")
        #expect(
            helper
                == FailureHelper(
                    path: "/opt/lm/bin/lockmgr",
                    args: "failure-action --action=poweroff --pid=4242 --name=my\\ vm"))
        #expect(try FailureHelper.make(action: .default, object: object, lockmgr: nil) == nil)
    }

    /// A pause names the plugin: the helper releases the stopped process's leases through it.
    @Test func pauseHelperNamesThePluginThatReleases() throws {
        let helper = try FailureHelper.make(action: .pause, object: object, lockmgr: "/opt/lm/bin/lockmgr", plugin: "sanlock")
        #expect(helper?.args == "failure-action --action=pause --pid=4242 --plugin=sanlock --name=my\\ vm")
        #expect(FailureHelper.pluginName(path: "/opt/lm/lib/lock_manager/sanlock.so") == "sanlock")
        #expect(FailureHelper.pluginName(path: "/opt/lm/lib/lock_manager/.so") == nil)
        #expect(FailureHelper.pluginName(path: "/opt/lm/lib/lock_manager/sanlock") == nil)
    }

    @Test func failureHelperUnderLibvirtIsLibvirts() throws {
        var vm = object
        vm.uri = "qemu:///system"
        let helper = try FailureHelper.make(action: .pause, object: vm, lockmgr: "/opt/lm/bin/lockmgr")
        #expect(
            helper
                == FailureHelper(
                    path: "/usr/lib/libvirt/libvirt_sanlock_helper",
                    args: "qemu:///system c7a5fdbd-cdaf-9455-926a-d65c16db1809 pause"))
    }

    @Test(arguments: [FailureAction.restart, .ignore])
    func unsupportedActionsAreRefused(_ action: FailureAction) {
        let error = #expect(throws: LockError.self) { try FailureHelper.make(action: action, object: object, lockmgr: "/x") }
        #expect(error?.kind == .unsupported)
        #expect(error?.message.contains("'\(action)' is not supported") == true)
    }

    @Test func lockmgrIsFoundBesideTheInstalledPlugin() {
        #expect(FailureHelper.lockmgr(besidePlugin: "/opt/lm/lib/lock_manager/sanlock.so") == "/opt/lm/bin/lockmgr")
        #expect(FailureHelper.lockmgr(besidePlugin: "/work/.build/debug/liblockmgr_sanlock.so") == nil)
    }

    /// How long an area someone else is still creating is waited for:
    /// twice io_timeout (its zero-fill and its one write) plus a second,
    /// with sanlock's default of 10 s when io_timeout is 0.
    @Test(arguments: [(UInt32(1), 3000), (0, 21000), (10, 21000), (60, 121000)])
    func unfinishedAreasAreWaitedForBoundedByIOTimeout(ioTimeout: UInt32, limitMs: Int) {
        #expect(UnfinishedArea(ioTimeout: ioTimeout).limitMs == limitMs)
    }

    /// Zeros (no leader record) and a file too short for one read are
    /// unfinished; anything else (another lockspace, a checksum error, no
    /// daemon) is an answer the caller reports as it is.
    @Test func onlyUnfinishedAreasAreWaitedFor() {
        #expect(UnfinishedArea.isUnfinished(-223))
        #expect(UnfinishedArea.isUnfinished(-90))
        for rv: Int32 in [0, -226, -229, -2, -111, -243] { #expect(!UnfinishedArea.isUnfinished(rv), "\(rv)") }
        let pauses = (1...12).map(UnfinishedArea.pauseMs(beforeLook:))
        #expect(pauses.prefix(6) == [5, 10, 20, 40, 80, 100] && pauses.dropFirst(5).allSatisfy { $0 == 100 }, "\(pauses)")
        #expect(
            UnfinishedArea(ioTimeout: 1).gaveUp("lockspace X file /d/X").hasPrefix(
                "lockspace X file /d/X exists but was still not initialised after 3000 ms"))
    }
}
