import LockDriver
import PRTransport

/// A pr-sessiond request body, as the service reads it from a client: it
/// decodes, or is refused with a violation (the connection is then
/// dropped, the service goes on); what decodes names only iSCSI LUNs and
/// re-encodes to a body that decodes to the same request.
enum SessionRequestTarget {
    static func run(_ bytes: [UInt8]) throws(FuzzFailure) {
        let request: SessionWire.Request
        do {
            request = try SessionWire.decodeRequest(body: bytes)
        } catch {
            try expect(!error.description.isEmpty, "a refused request gave no reason")
            return
        }
        try expect(
            request.resources.allSatisfy { if case .iscsi = $0.address { true } else { false } },
            "a request naming a non-iSCSI resource was accepted: \(request.resources.map(\.name))")
        let frame = SessionWire.encode(request)
        let again: SessionWire.Request
        do {
            again = try SessionWire.decodeRequest(body: Array(frame.dropFirst(SessionWire.headerSize)))
        } catch {
            throw FuzzFailure(message: "a decoded request re-encodes to a body that is refused: \(error)")
        }
        try expect(again == request, "a decoded request re-encodes to another: \(again) != \(request)")
    }
}
