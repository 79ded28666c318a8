/// Recursive-descent parser for libvirt's configuration syntax:
/// `name = value` statements separated by newlines or `;`, `#` comments,
/// strings in '', "" or """""" (no escapes), signed decimal integers, and
/// lists `[v, v,]` that may span lines.
struct ConfParser {
    let text: [UInt8]
    let origin: String
    var pos = 0
    var line = 1

    init(text: [UInt8], origin: String) {
        self.text = text
        self.origin = origin
    }

    mutating func parse() throws(LockError) -> [ConfEntry] {
        var entries: [ConfEntry] = []
        while true {
            skipBlanksAndComments(acrossLines: true)
            guard let c = peek else { return entries }
            if c == UInt8(ascii: ";") { pos += 1; continue }
            entries.append(try statement())
        }
    }

    // MARK: statements

    private mutating func statement() throws(LockError) -> ConfEntry {
        let startLine = line
        let name = try identifier()
        skipSpaces()
        guard peek == UInt8(ascii: "=") else {
            throw fail("expected '=' after '\(name)'")
        }
        pos += 1
        skipSpaces()
        let value = try value(for: name)
        skipSpaces()
        if peek == UInt8(ascii: "#") { skipComment() }
        switch peek {
        case nil: break
        case UInt8(ascii: "\n"): pos += 1; line += 1
        case UInt8(ascii: "\r"): pos += 1
        case UInt8(ascii: ";"): pos += 1
        default: throw fail("unexpected text after the value of '\(name)'")
        }
        return ConfEntry(name: name, value: value, line: startLine)
    }

    private mutating func identifier() throws(LockError) -> String {
        let start = pos
        guard let c = peek, isLetter(c) || c == UInt8(ascii: "_") else {
            throw fail("expected a setting name")
        }
        while let c = peek, isLetter(c) || isDigit(c) || c == UInt8(ascii: "_") { pos += 1 }
        return String(decoding: text[start..<pos], as: UTF8.self)
    }

    private mutating func value(for name: String) throws(LockError) -> ConfValue {
        guard let c = peek, c != UInt8(ascii: "\n"), c != UInt8(ascii: "#"), c != UInt8(ascii: ";") else {
            throw fail("missing value for '\(name)'")
        }
        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") { return .string(try string()) }
        if c == UInt8(ascii: "[") { return try list(for: name) }
        if isDigit(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") { return .integer(try integer()) }
        throw fail("value of '\(name)' must be a quoted string, an integer or a list (unquoted words are not allowed)")
    }

    private mutating func string() throws(LockError) -> String {
        let startLine = line
        let quote = text[pos]
        if quote == UInt8(ascii: "\"") && matches("\"\"\"") {
            pos += 3
            let start = pos
            while pos < text.count {
                if matches("\"\"\"") {
                    let s = String(decoding: text[start..<pos], as: UTF8.self)
                    pos += 3
                    return s
                }
                if text[pos] == UInt8(ascii: "\n") { line += 1 }
                pos += 1
            }
            throw LockError.config("\(origin):\(startLine): unterminated triple-quoted string")
        }
        pos += 1
        let start = pos
        while let c = peek, c != quote {
            if c == UInt8(ascii: "\n") { throw fail("unterminated string") }
            pos += 1
        }
        guard peek == quote else { throw fail("unterminated string") }
        let s = String(decoding: text[start..<pos], as: UTF8.self)
        pos += 1
        return s
    }

    private mutating func integer() throws(LockError) -> Int64 {
        var negative = false
        if peek == UInt8(ascii: "-") || peek == UInt8(ascii: "+") {
            negative = peek == UInt8(ascii: "-")
            pos += 1
        }
        guard let first = peek, isDigit(first) else { throw fail("expected digits in a number") }
        var magnitude: UInt64 = 0
        while let c = peek, isDigit(c) {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 { throw fail("number out of range") }
            magnitude = s
            pos += 1
        }
        if let c = peek, isLetter(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") {
            throw fail("malformed number")
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw fail("number out of range") }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw fail("number out of range") }
        return Int64(magnitude)
    }

    private mutating func list(for name: String) throws(LockError) -> ConfValue {
        let startLine = line
        pos += 1
        var items: [ConfValue] = []
        while true {
            skipBlanksAndComments(acrossLines: true)
            guard let c = peek else {
                throw LockError.config("\(origin):\(startLine): unterminated list for '\(name)'")
            }
            if c == UInt8(ascii: "]") { pos += 1; return .list(items) }
            if c == UInt8(ascii: "[") { throw fail("nested lists are not allowed") }
            items.append(try value(for: name))
            skipBlanksAndComments(acrossLines: true)
            if peek == nil {
                throw LockError.config("\(origin):\(startLine): unterminated list for '\(name)'")
            } else if peek == UInt8(ascii: ",") {
                pos += 1
            } else if peek != UInt8(ascii: "]") {
                throw fail("expected ',' or ']' in the list for '\(name)'")
            }
        }
    }

    // MARK: lexing helpers

    private var peek: UInt8? { pos < text.count ? text[pos] : nil }

    private func matches(_ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard pos + n <= text.count else { return false }
        return s.withUTF8Buffer { Array($0) == Array(text[pos..<pos + n]) }
    }

    private mutating func skipSpaces() {
        while let c = peek, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { pos += 1 }
    }

    private mutating func skipComment() {
        while let c = peek, c != UInt8(ascii: "\n") { pos += 1 }
    }

    private mutating func skipBlanksAndComments(acrossLines: Bool) {
        while let c = peek {
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): pos += 1
            case UInt8(ascii: "\n"): pos += 1; line += 1
            case UInt8(ascii: "#"): skipComment()
            default: return
            }
        }
    }

    private func isLetter(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private func fail(_ message: String) -> LockError {
        .config("\(origin):\(line): \(message)")
    }
}
