import Foundation
import TestSupport

/// Random and adversarial text for fuzzing parsers of client input. The seed is fixed unless
/// `TECHBANK_FUZZ_SEED` sets another; it is printed, and `label` carries it into failure messages.
struct Fuzz {
    static let defaultSeed: UInt64 = 0x7EC4_BA4C_2026_0001

    let seed: UInt64
    var random: SeededGenerator

    init(_ name: String) {
        seed = SeededGenerator.seed(from: "TECHBANK_FUZZ_SEED", fallback: Self.defaultSeed)
        random = SeededGenerator(seed: seed)
        print("fuzz \(name): seed \(seed) (TECHBANK_FUZZ_SEED=\(seed) repeats this run)")
    }

    /// `input` described for a failure message, with the seed that produced it.
    func label(_ input: String) -> String {
        "seed \(seed), input \(input.debugDescription.prefix(300))"
    }

    /// Pieces that break parsers: separators, signs, non-ASCII digits (Arabic-Indic three,
    /// fullwidth and mathematical nine), NUL, a BOM, a right-to-left override, huge numbers.
    static let hostileTokens = [
        "0", "9", "00", "1234567", "-", "+", ":", ".", ",", "T", "Z", "t", "z", " ", "\t", "\n", "\0", "٣", "９", "𝟗", "\u{FEFF}",
        "\u{202E}", "é", "e", "E", "|", "/", "//", "..", "%", "%00", "%zz", "=", ";", "&", "?", "#", "\"", "\\", "{", "}", "[", "]",
        "99999999999999999999", "-9223372036854775808", "9223372036854775808", "1e308", "NaN", "inf", "null", "true", "0x10", "+-0",
    ]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    mutating func chance(_ oneIn: Int) -> Bool { int(1...oneIn) == 1 }

    mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }

    /// Up to `maxLength` random bytes, read as UTF-8 (invalid sequences become U+FFFD).
    mutating func bytes(maxLength: Int = 40) -> String {
        String(decoding: (0..<int(0...maxLength)).map { _ in UInt8.random(in: 0...255, using: &random) }, as: UTF8.self)
    }

    /// Up to `maxLength` random ASCII characters, control characters included.
    mutating func ascii(maxLength: Int = 40) -> String {
        String(decoding: (0..<int(0...maxLength)).map { _ in UInt8.random(in: 0...127, using: &random) }, as: UTF8.self)
    }

    /// `valid` with one to three edits: hostile tokens or extra digits inserted, characters
    /// replaced or deleted, a tail cut off, a part repeated; now and then made very long.
    mutating func mutate(_ valid: String) -> String {
        var characters = Array(valid)
        for _ in 0..<int(1...3) {
            let at = int(0...characters.count)
            switch int(0...6) {
            case 0: characters.insert(contentsOf: pick(Self.hostileTokens), at: at)
            case 1: characters.insert(contentsOf: String(repeating: "7", count: int(1...30)), at: at)
            case 2 where at < characters.count: characters[at] = pick(Array(pick(Self.hostileTokens)) + ["x"])
            case 3 where at < characters.count: characters.removeSubrange(at..<min(characters.count, at + int(1...4)))
            case 4: characters = Array(characters.prefix(at))
            case 5 where at < characters.count: characters.insert(contentsOf: characters[at..<min(characters.count, at + int(1...8))], at: at)
            default: characters.insert(contentsOf: pick(Self.hostileTokens), at: characters.count)
            }
        }
        if chance(500) { characters += Array(repeating: pick(Array("0Z.-:٣")), count: 10_000) }
        return String(characters)
    }

    /// A random input for a parser whose valid inputs `valid` makes: random bytes, random ASCII,
    /// a valid input, or a mutated one.
    mutating func input(_ valid: (inout Fuzz) -> String) -> String {
        switch int(0...9) {
        case 0: return bytes()
        case 1: return ascii()
        case 2: return valid(&self)
        case 3: return chance(10) ? "" : pick(Self.hostileTokens)
        default: return mutate(valid(&self))
        }
    }
}
