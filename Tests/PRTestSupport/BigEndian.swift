import LockDriver

/// Short names for LockDriver's BigEndian, as the test doubles and the
/// tests spell out CDBs and PR data field by field.
public func be32(_ value: UInt32) -> [UInt8] { BigEndian.bytes(value) }

public func be64(_ value: UInt64) -> [UInt8] { BigEndian.bytes(value) }

public func readBE32(_ bytes: [UInt8], at offset: Int) -> UInt32 { BigEndian.uint32(bytes, at: offset) }

public func readBE64(_ bytes: [UInt8], at offset: Int) -> UInt64 { BigEndian.uint64(bytes, at: offset) }
