import Foundation

/// RFC 3339 times in UTC with microseconds, PostgreSQL's resolution, so a time read from the API
/// can be sent back (e.g. as `balance?at=`) without losing precision.
enum RFC3339 {
    /// Microseconds from the Unix epoch to Foundation's reference date (2001-01-01).
    private static let referenceDateMicros: Int64 = 978_307_200_000_000

    static func format(_ date: Date) -> String {
        // From the reference date, `Date`'s own representation: one rounding step, exact to the microsecond.
        let micros = Int64((date.timeIntervalSinceReferenceDate * 1_000_000).rounded()) + referenceDateMicros
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

    /// Parses `2026-01-31T12:00:00Z`, with optional fractional seconds (kept to the microsecond)
    /// and any UTC offset.
    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        guard let dot = text.firstIndex(of: ".") else { return formatter.date(from: text) }
        // ISO8601DateFormatter keeps only milliseconds: parse the rest without the fraction and
        // add the fraction exactly.
        let digitsEnd = text[text.index(after: dot)...].firstIndex(where: { !$0.isASCII || !$0.isNumber }) ?? text.endIndex
        let digits = text[text.index(after: dot)..<digitsEnd]
        guard (1...9).contains(digits.count), let value = Int(digits),
              let whole = formatter.date(from: String(text[..<dot]) + String(text[digitsEnd...]))
        else { return nil }
        // Whole microseconds in integers (digits past the sixth are dropped), so no float rounding
        // can move the instant to the neighbouring microsecond.
        var micros = value
        for _ in digits.count..<6 { micros *= 10 }
        for _ in 6..<max(6, digits.count) { micros /= 10 }
        let wholeMicros = Int64(whole.timeIntervalSinceReferenceDate.rounded()) * 1_000_000
        return Date(timeIntervalSinceReferenceDate: Double(wholeMicros + Int64(micros)) / 1_000_000)
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
