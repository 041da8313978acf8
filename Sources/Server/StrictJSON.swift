/// A strict RFC 8259 syntax check. Foundation's decoder on Linux also accepts some non-JSON
/// (trailing commas, for one); a request body must be exactly JSON before it is decoded.
enum StrictJSON {
    /// The deepest nesting accepted; deeper documents are refused rather than recursed into.
    static let maxDepth = 64

    static func isValid(_ bytes: [UInt8]) -> Bool {
        var index = 0
        guard value(bytes, &index, depth: 0) else { return false }
        skipWhitespace(bytes, &index)
        return index == bytes.count
    }

    private static func skipWhitespace(_ b: [UInt8], _ i: inout Int) {
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
    }

    private static func value(_ b: [UInt8], _ i: inout Int, depth: Int) -> Bool {
        guard depth <= maxDepth else { return false }
        skipWhitespace(b, &i)
        guard i < b.count else { return false }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            skipWhitespace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return true }
            while true {
                skipWhitespace(b, &i)
                guard string(b, &i) else { return false }
                skipWhitespace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                i += 1
                guard value(b, &i, depth: depth + 1) else { return false }
                skipWhitespace(b, &i)
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: "}") { i += 1; return true }
                guard b[i] == UInt8(ascii: ",") else { return false }
                i += 1
            }
        case UInt8(ascii: "["):
            i += 1
            skipWhitespace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return true }
            while true {
                guard value(b, &i, depth: depth + 1) else { return false }
                skipWhitespace(b, &i)
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: "]") { i += 1; return true }
                guard b[i] == UInt8(ascii: ",") else { return false }
                i += 1
            }
        case UInt8(ascii: "\""):
            return string(b, &i)
        case UInt8(ascii: "t"): return literal(b, &i, "true")
        case UInt8(ascii: "f"): return literal(b, &i, "false")
        case UInt8(ascii: "n"): return literal(b, &i, "null")
        default:
            return number(b, &i)
        }
    }

    private static func literal(_ b: [UInt8], _ i: inout Int, _ word: String) -> Bool {
        let expected = Array(word.utf8)
        guard i + expected.count <= b.count, Array(b[i..<i + expected.count]) == expected else { return false }
        i += expected.count
        return true
    }

    private static func string(_ b: [UInt8], _ i: inout Int) -> Bool {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
        i += 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return true }
            if c < 0x20 { return false }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { return false }
                switch b[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard i + 4 < b.count, b[i + 1...i + 4].allSatisfy(isHexDigit) else { return false }
                    i += 5
                default:
                    return false
                }
                continue
            }
            i += 1
        }
        return false
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    private static func digits(_ b: [UInt8], _ i: inout Int) -> Int {
        let start = i
        while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
        return i - start
    }

    private static func number(_ b: [UInt8], _ i: inout Int) -> Bool {
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count else { return false }
        if b[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            guard digits(b, &i) > 0 else { return false }
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(b, &i) > 0 else { return false }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(b, &i) > 0 else { return false }
        }
        return true
    }
}
