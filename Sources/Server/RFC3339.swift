import Foundation
import Postgres

/// RFC 3339 times in UTC with microseconds, PostgreSQL's resolution, so a time read from the API
/// can be sent back (e.g. as `balance?at=`) without losing precision.
///
/// `parse` accepts exactly `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)` naming an instant from
/// 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z, and nothing else: no seventh fractional
/// digit (PostgreSQL keeps microseconds, so a finer time would silently be another one), no leap
/// second (second 60: neither `Date` nor PostgreSQL can hold it), and ASCII digits only. The
/// instant is computed in whole microseconds; `Date` (a `Double` of seconds since 2001) holds each
/// of them from about 1865 to 2137 and rounds to its own resolution beyond.
enum RFC3339 {
    /// Why a text is not a time this API accepts, in words for the client.
    struct Invalid: Error, Equatable {
        /// What the client is told, after the name of the parameter that held the text.
        let message: String

        static let malformed = Invalid(message: "must be an RFC 3339 time such as 2026-01-31T12:00:00Z or 2026-01-31T20:00:00+08:00")
        static let tooPrecise = Invalid(message: "must have at most six fractional digits (microseconds)")
        static let noSuchDate = Invalid(message: "names no such date (months 01 to 12, days that the month has)")
        static let noSuchTime = Invalid(message: "names no such time of day (hours 00 to 23, minutes and seconds 00 to 59; leap seconds are not accepted)")
        static let noSuchOffset = Invalid(message: "has an offset beyond ±23:59")
        static let outOfRange = Invalid(message: "must lie from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z")
    }

    /// Microseconds from the Unix epoch to Foundation's reference date, 2001-01-01.
    private static let referenceDateSinceUnixEpochMicros: Int64 = 978_307_200_000_000
    /// Microseconds from 2000-01-01 (PostgreSQL's epoch, `PostgresDate`'s day 0) to the reference date.
    private static let referenceDateSince2000Micros: Int64 = 366 * 86_400_000_000
    /// The instants `parse` accepts, in microseconds from 2000-01-01T00:00:00Z.
    private static let acceptedMicros: ClosedRange<Int64> =
        Int64(PostgresDate(year: 0, month: 1, day: 1)!.daysSince2000) * 86_400_000_000
        ... Int64(PostgresDate(year: 10_000, month: 1, day: 1)!.daysSince2000) * 86_400_000_000 - 1

    /// `date` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, rounded to the microsecond.
    static func format(_ date: Date) -> String {
        // From the reference date, `Date`'s own representation: one rounding step, exact to the microsecond.
        let micros = Int64((date.timeIntervalSinceReferenceDate * 1_000_000).rounded()) + referenceDateSinceUnixEpochMicros
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

    /// The instant `text` names, or nil if it is not one `date(from:)` accepts.
    static func parse(_ text: some StringProtocol) -> Date? {
        try? date(from: text)
    }

    /// The instant `text` names; `Invalid` says what is wrong with it otherwise.
    static func date(from text: some StringProtocol) throws(Invalid) -> Date {
        var reader = Reader(bytes: Array(text.utf8))
        let year = try reader.number(digits: 4)
        try reader.expect("-")
        let month = try reader.number(digits: 2)
        try reader.expect("-")
        let day = try reader.number(digits: 2)
        try reader.expect("T")
        let hour = try reader.number(digits: 2)
        try reader.expect(":")
        let minute = try reader.number(digits: 2)
        try reader.expect(":")
        let second = try reader.number(digits: 2)
        let fraction = reader.skip(".") ? try reader.microseconds() : 0
        let offsetMinutes = try reader.offsetMinutes()
        guard reader.isAtEnd else { throw .malformed }
        guard let date = PostgresDate(year: year, month: month, day: day) else { throw .noSuchDate }
        guard hour < 24, minute < 60, second < 60 else { throw .noSuchTime }
        // At most 10^4 years of seconds: far from overflowing Int64 microseconds.
        let seconds = Int64(date.daysSince2000) * 86_400 + Int64(hour * 3_600 + minute * 60 + second - offsetMinutes * 60)
        let micros = seconds * 1_000_000 + Int64(fraction)
        guard acceptedMicros.contains(micros) else { throw .outOfRange }
        return Date(timeIntervalSinceReferenceDate: Double(micros - referenceDateSince2000Micros) / 1_000_000)
    }

    /// Reads the ASCII bytes of a time from the left; every read either succeeds or throws.
    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        var isAtEnd: Bool { position == bytes.count }

        private var digit: Int? {
            guard position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) else { return nil }
            return Int(bytes[position] - UInt8(ascii: "0"))
        }

        /// Exactly `digits` ASCII digits, as a number.
        mutating func number(digits: Int) throws(Invalid) -> Int {
            var value = 0
            for _ in 0..<digits {
                guard let digit else { throw .malformed }
                value = value * 10 + digit
                position += 1
            }
            return value
        }

        /// Consumes `character` if it comes next.
        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard position < bytes.count, bytes[position] == UInt8(ascii: character) else { return false }
            position += 1
            return true
        }

        mutating func expect(_ character: Unicode.Scalar) throws(Invalid) {
            guard skip(character) else { throw .malformed }
        }

        /// The fraction's digits (one to six) in microseconds; a seventh digit is an error, not rounded away.
        mutating func microseconds() throws(Invalid) -> Int {
            var value = 0
            var count = 0
            while let digit {
                if count < 6 { value = value * 10 + digit }
                count += 1
                position += 1
            }
            guard count >= 1 else { throw .malformed }
            guard count <= 6 else { throw .tooPrecise }
            let scale = [100_000, 10_000, 1_000, 100, 10, 1]
            return value * scale[count - 1]
        }

        /// `Z` or `±HH:MM`, in minutes east of UTC.
        mutating func offsetMinutes() throws(Invalid) -> Int {
            if skip("Z") { return 0 }
            let sign: Int
            if skip("+") {
                sign = 1
            } else if skip("-") {
                sign = -1
            } else {
                throw .malformed
            }
            let hours = try number(digits: 2)
            try expect(":")
            let minutes = try number(digits: 2)
            guard hours < 24, minutes < 60 else { throw .noSuchOffset }
            return sign * (hours * 60 + minutes)
        }
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
