import Foundation

/// RFC 3339 times in UTC with microseconds, PostgreSQL's resolution, so a time read from the API
/// can be sent back (e.g. as `balance?at=`) without losing precision.
enum RFC3339 {
    static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        var seconds = time_t(micros.quotientAndRemainder(dividingBy: 1_000_000).quotient)
        var fraction = micros.quotientAndRemainder(dividingBy: 1_000_000).remainder
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(fraction))
    }

    /// Parses `2026-01-31T12:00:00Z`, with optional fractional seconds and any UTC offset.
    static func parse(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: text) { return date }
        // ISO8601DateFormatter keeps only milliseconds; read microseconds exactly.
        guard let dot = text.firstIndex(of: "."), let base = plain.date(from: String(text[..<dot]) + "Z"), text.hasSuffix("Z") else { return nil }
        let digits = text[text.index(after: dot)..<text.index(before: text.endIndex)]
        guard (1...9).contains(digits.count), digits.allSatisfy(\.isASCII), let value = Int(digits) else { return nil }
        return base.addingTimeInterval(Double(value) / pow(10, Double(digits.count)))
    }
}

extension KeyedEncodingContainer {
    /// UUIDs in their canonical lower-case form.
    mutating func encode(_ value: UUID, forKey key: Key) throws {
        try encode(value.uuidString.lowercased(), forKey: key)
    }

    /// UUIDs in their canonical lower-case form, or null.
    mutating func encode(_ value: UUID?, forKey key: Key) throws {
        try encode(value?.uuidString.lowercased(), forKey: key)
    }

    mutating func encodeIfPresent(_ value: UUID?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) }
    }
}
