/// A test fixture (daemon, target, configuration) could not be set up or
/// did not behave: the message names what failed and carries the tool's
/// own output, so a CI log explains itself.
public struct FixtureError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(_ message: String) { self.message = message }
}
