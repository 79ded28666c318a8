import LockDriver
import Testing

/// The lower-case hex that UUIDs, keys and state strings are printed in:
/// keeper paths and records name VMs by it, so a changed digit is a lost VM.
@Suite struct HexTests {
    @Test func printsEveryNibbleInLowerCase() {
        #expect(Hex.string([0x00, 0x0F, 0xA5, 0xFF, 0x90]) == "000fa5ff90")
        #expect(Hex.string([UInt8]()) == "")
        #expect(Hex.byte(0x5F) == "5f")
        #expect(Hex.literal(0x0A) == "0x0a")
        #expect(Hex.string(0...255).count == 512)
    }

    @Test func uuidPrintsInTheCanonicalFormWhateverItWasParsedFrom() throws {
        let canonical = "5a1e0c4e-1111-4a4a-8b8b-0000000000aa"
        let upper = try #require(UUIDBytes("5A1E0C4E11114A4A8B8B0000000000AA"))
        #expect(upper.description == canonical)
        #expect(UUIDBytes(upper.description) == upper)
        let all = try #require(UUIDBytes(bytes: Array(0xF0...0xFF)))
        #expect(all.description == "f0f1f2f3-f4f5-f6f7-f8f9-fafbfcfdfeff")
    }
}
