import LockDriver
import Testing

/// libvirt's config syntax: a table of valid inputs with the values they
/// mean, and invalid ones with the line the error must name.
@Suite struct ConfParserTests {
    struct Valid: CustomTestStringConvertible, Sendable {
        var text: String
        var expected: [String: ConfValue]
        var testDescription: String { text.debugDescription }
    }

    static let valid: [Valid] = [
        Valid(text: "", expected: [:]),
        Valid(text: "# only a comment\n\n", expected: [:]),
        Valid(text: "a = \"double\"", expected: ["a": .string("double")]),
        Valid(text: "a = 'single'", expected: ["a": .string("single")]),
        Valid(text: "a = \"\"\"triple\nline two\"\"\"", expected: ["a": .string("triple\nline two")]),
        Valid(text: "a = \"no \\escapes\"", expected: ["a": .string("no \\escapes")]),
        Valid(text: "n = 42", expected: ["n": .integer(42)]),
        Valid(text: "n = -7", expected: ["n": .integer(-7)]),
        Valid(text: "n = +7", expected: ["n": .integer(7)]),
        Valid(text: "b = 1\nc = 0", expected: ["b": .integer(1), "c": .integer(0)]),
        Valid(text: "l = [\"x\", 'y',]", expected: ["l": .list([.string("x"), .string("y")])]),
        Valid(text: "l = [\n  \"x\",  # first\n  \"y\"\n]", expected: ["l": .list([.string("x"), .string("y")])]),
        Valid(text: "l = []", expected: ["l": .list([])]),
        Valid(text: "a = 1; b = 'two'", expected: ["a": .integer(1), "b": .string("two")]),
        Valid(text: "a = 1 # trailing comment", expected: ["a": .integer(1)]),
        Valid(text: "a = 'first'\na = 'second'", expected: ["a": .string("first")]),
        Valid(text: "  indented_name2 = 'v'\t", expected: ["indented_name2": .string("v")]),
        Valid(text: "_private = 3", expected: ["_private": .integer(3)]),
        Valid(text: "a = 9223372036854775807", expected: ["a": .integer(Int64.max)]),
        Valid(text: "a = -9223372036854775808", expected: ["a": .integer(Int64.min)]),
        Valid(text: "a=1\r\nb=2\r\n", expected: ["a": .integer(1), "b": .integer(2)]),
    ]

    @Test(arguments: valid)
    func parsesValidInput(_ c: Valid) throws {
        let conf = try ConfFile(parsing: c.text, origin: "test.conf")
        var seen: [String: ConfValue] = [:]
        for e in conf.entries where seen[e.name] == nil { seen[e.name] = e.value }
        #expect(seen == c.expected)
        for (name, value) in c.expected { #expect(conf.entry(name)?.value == value) }
    }

    struct Invalid: CustomTestStringConvertible, Sendable {
        var text: String
        var location: String
        var message: String
        var testDescription: String { text.debugDescription }
    }

    static let invalid: [Invalid] = [
        Invalid(text: "a = unquoted", location: "x.conf:1", message: "unquoted words are not allowed"),
        Invalid(text: "ok = 1\n\nb 'x'", location: "x.conf:3", message: "expected '=' after 'b'"),
        Invalid(text: "a = ", location: "x.conf:1", message: "missing value for 'a'"),
        Invalid(text: "a = 1\nb = 'open", location: "x.conf:2", message: "unterminated string"),
        Invalid(text: "a = \"\"\"never\nclosed", location: "x.conf:1", message: "unterminated triple-quoted string"),
        Invalid(text: "a = 1\nl = [1, 2", location: "x.conf:2", message: "unterminated list for 'l'"),
        Invalid(text: "l = [1 2]", location: "x.conf:1", message: "expected ',' or ']'"),
        Invalid(text: "l = [[1]]", location: "x.conf:1", message: "nested lists are not allowed"),
        Invalid(text: "a = 12abc", location: "x.conf:1", message: "malformed number"),
        Invalid(text: "a = 1.5", location: "x.conf:1", message: "malformed number"),
        Invalid(text: "a = 99999999999999999999", location: "x.conf:1", message: "number out of range"),
        Invalid(text: "a = 1 b = 2", location: "x.conf:1", message: "unexpected text after the value of 'a'"),
        Invalid(text: "1a = 2", location: "x.conf:1", message: "expected a setting name"),
        Invalid(text: "\n\n\n= 2", location: "x.conf:4", message: "expected a setting name"),
        Invalid(text: "a-b = 2", location: "x.conf:1", message: "expected '=' after 'a'"),
    ]

    @Test(arguments: invalid)
    func rejectsInvalidInputNamingTheLine(_ c: Invalid) {
        let error = #expect(throws: LockError.self) { try ConfFile(parsing: c.text, origin: "x.conf") }
        #expect(error?.kind == .config)
        #expect(error?.message.hasPrefix(c.location + ": ") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(c.message) == true, "\(error?.message ?? "")")
    }

    @Test func typedAccessorsNameFileAndLine() throws {
        let conf = try ConfFile(parsing: "s = 'x'\nn = 5\nb = 2\nl = ['a', 3]\n", origin: "/etc/t.conf")
        #expect(try conf.string("s") == "x")
        #expect(try conf.integer("n", in: 1...10) == 5)
        #expect(try conf.string("missing") == nil)
        #expect(throws: LockError.config("/etc/t.conf:2: 'n' must be a string, not an integer")) { try conf.string("n") }
        #expect(throws: LockError.config("/etc/t.conf:2: 'n' must be between 6 and 9, not 5")) { try conf.integer("n", in: 6...9) }
        #expect(throws: LockError.config("/etc/t.conf:3: 'b' must be 0 or 1")) { try conf.bool("b") }
        #expect(throws: LockError.config("/etc/t.conf:4: 'l' must contain only strings")) { try conf.stringList("l") }
        #expect(throws: LockError.config("/etc/t.conf:1: unknown setting 's'")) { try conf.rejectUnknown(["n", "b", "l"]) }
    }

    @Test func missingFileIsEmptyOnlyWhenAllowed() throws {
        #expect(try ConfFile.load(path: "/nonexistent/qemu-x.conf", missingIsEmpty: true).entries.isEmpty)
        let error = #expect(throws: LockError.self) { try ConfFile.load(path: "/nonexistent/lockmgr.conf") }
        #expect(error?.message == "cannot read config file /nonexistent/lockmgr.conf: No such file or directory")
    }
}
