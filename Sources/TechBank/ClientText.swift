import Foundation

/// The one rule for the free text a client names things with (titles, names, reasons, references,
/// keywords): surrounding whitespace (Unicode White_Space and line ends) is trimmed and not stored,
/// and what remains must hold 1 to `max` characters, counted as PostgreSQL's `char_length` counts
/// them (code points), so the database's CHECKs agree. The OpenAPI document states it as
/// `minLength: 1`, the `maxLength` and the pattern `\S` (some character that is not whitespace).
public enum ClientText {
    /// `value` trimmed, or `.validation` naming `field`.
    public static func trimmed(_ value: String, field: String, max: Int) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...max).contains(trimmed.unicodeScalars.count) else {
            throw TechBankError(.validation, field: field, "must be 1 to \(max) characters, not counting surrounding whitespace")
        }
        return trimmed
    }

    /// A keyword list: at most 30 keywords, each trimmed to 1 to 100 characters.
    public static func keywords(_ values: [String]) throws -> [String] {
        guard values.count <= 30 else { throw TechBankError(.validation, field: "keywords", "list at most 30 keywords") }
        return try values.enumerated().map { try trimmed($1, field: "keywords[\($0)]", max: 100) }
    }
}
