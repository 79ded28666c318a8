import LockDriver

/// "0x5f": how transport errors name opcodes and status codes.
func hexByte(_ value: UInt8) -> String { "0x" + Hex.byte(value) }
