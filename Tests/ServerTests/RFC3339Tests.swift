import Foundation
@testable import Server
import Testing

@Suite("RFC 3339 times")
struct RFC3339Tests {
    /// Where `Date` holds every microsecond, so round trips are exact (see `RFC3339`).
    static let exactRange = RFC3339.parse("1900-01-01T00:00:00Z")! ..< RFC3339.parse("2100-01-01T00:00:00Z")!

    /// A time the API returned, sent back (e.g. as `balance?at=`), names the same microsecond.
    @Test func formattedTimesParseBackToTheSameMicrosecond() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let micros = Int64.random(in: 0...4_102_444_800_000_000, using: &generator)  // 1970 to 2100
            let text = RFC3339.format(Date(timeIntervalSince1970: Double(micros) / 1_000_000))
            let parsed = try #require(RFC3339.parse(text), "\(text)")
            #expect(RFC3339.format(parsed) == text, "\(micros)")
        }
        #expect(RFC3339.format(try #require(RFC3339.parse("2026-11-29T01:36:01.504647Z"))) == "2026-11-29T01:36:01.504647Z")
        #expect(RFC3339.format(try #require(RFC3339.parse("2026-01-31T12:00:00Z"))) == "2026-01-31T12:00:00.000000Z")
        #expect(RFC3339.format(try #require(RFC3339.parse("2026-01-31T20:00:00.5+08:00"))) == "2026-01-31T12:00:00.500000Z")
        #expect(RFC3339.parse("2026-01-31") == nil)
        #expect(RFC3339.parse("2026-01-31T12:00:00.Z") == nil)
    }

    @Test("a time with more than six fractional digits is refused, not rounded or trapped on")
    func sevenFractionalDigitsAreRefused() throws {
        for digits in [7, 8, 9, 10, 30, 1_000] {
            let text = "2026-01-01T00:00:00." + String(repeating: "1", count: digits) + "Z"
            #expect(throws: RFC3339.Invalid.tooPrecise, "\(digits) digits") { try RFC3339.date(from: text) }
        }
        #expect(try RFC3339.format(RFC3339.date(from: "2026-01-01T00:00:00.123456Z")) == "2026-01-01T00:00:00.123456Z")
        #expect(try RFC3339.format(RFC3339.date(from: "2026-01-01T00:00:00.000001+00:00")) == "2026-01-01T00:00:00.000001Z")
    }

    @Test func rangesAreChecked() {
        let cases: [(String, RFC3339.Invalid?)] = [
            ("2024-02-29T00:00:00Z", nil), ("2000-02-29T00:00:00Z", nil), ("2023-02-29T00:00:00Z", .noSuchDate),
            ("1900-02-29T00:00:00Z", .noSuchDate), ("2026-04-31T00:00:00Z", .noSuchDate), ("2026-12-31T00:00:00Z", nil),
            ("2026-00-10T00:00:00Z", .noSuchDate), ("2026-13-10T00:00:00Z", .noSuchDate), ("2026-01-00T00:00:00Z", .noSuchDate),
            ("2026-01-01T23:59:59.999999Z", nil), ("2026-01-01T24:00:00Z", .noSuchTime), ("2026-01-01T12:60:00Z", .noSuchTime),
            ("2016-12-31T23:59:60Z", .noSuchTime), ("2026-01-01T00:00:00+23:59", nil), ("2026-01-01T00:00:00-00:00", nil),
            ("2026-01-01T00:00:00+24:00", .noSuchOffset), ("2026-01-01T00:00:00-01:60", .noSuchOffset),
            ("0000-01-01T00:00:00Z", nil), ("0000-01-01T00:00:00+00:01", .outOfRange),
            ("9999-12-31T23:59:59.999999Z", nil), ("9999-12-31T23:59:59.999999-00:01", .outOfRange),
            ("2026-01-01 00:00:00Z", .malformed), ("2026-01-01t00:00:00z", .malformed), ("2026-01-01T00:00:00", .malformed),
            ("2026-01-01T00:00:00+0800", .malformed), ("2026-01-01T00:00:00 08:00", .malformed), ("+2026-01-01T00:00:00Z", .malformed),
            ("2026-٠١-01T00:00:00Z", .malformed), ("２０２６-01-01T00:00:00Z", .malformed), ("2026-01-01T00:00:00Z\0", .malformed),
            ("20260-01-01T00:00:00Z", .malformed), ("", .malformed), ("2026-01-01T00:00:00.Z", .malformed),
        ]
        for (text, expected) in cases {
            do {
                _ = try RFC3339.date(from: text)
                #expect(expected == nil, "\(text.debugDescription) was accepted")
            } catch {
                #expect(error == expected, "\(text.debugDescription)")
            }
        }
    }

    @Test("no text stops the time parser; accepted times format back stably and exactly")
    func fuzzTheParser() throws {
        var fuzz = Fuzz("RFC3339.date")
        var accepted = 0
        for _ in 0..<120_000 {
            let text = fuzz.input { Self.validTime(&$0).text }
            let date: Date
            do {
                date = try RFC3339.date(from: text)
            } catch {
                #expect(!error.message.isEmpty)
                continue
            }
            accepted += 1
            let formatted = RFC3339.format(date)
            let again = try #require(RFC3339.parse(formatted), "\(fuzz.label(text)) formats as \(formatted)")
            if Self.exactRange.contains(date) {
                #expect(again == date && RFC3339.format(again) == formatted, "\(fuzz.label(text))")
            }
        }
        #expect(accepted > 10_000, "seed \(fuzz.seed): too few valid inputs to mean anything")
    }

    @Test func validTimesMeanWhatTheySay() throws {
        var fuzz = Fuzz("RFC3339 valid times")
        for _ in 0..<100_000 {
            let time = Self.validTime(&fuzz)
            let date = try #require(RFC3339.parse(time.text), "\(fuzz.label(time.text))")
            let utc = try #require(RFC3339.parse(time.utcText), "\(fuzz.label(time.utcText))")
            guard Self.exactRange.contains(utc) else { continue }
            // Six digits in UTC: the text is what `format` writes, field for field (gmtime's calendar).
            #expect(RFC3339.format(utc) == time.utcText, "\(fuzz.label(time.utcText))")
            // An offset is the same instant that many minutes earlier in UTC.
            #expect(RFC3339.format(Date(timeIntervalSinceReferenceDate: utc.timeIntervalSinceReferenceDate - Double(time.offsetMinutes * 60)))
                    == RFC3339.format(date), "\(fuzz.label(time.text))")
        }
    }

    @Test func datesSurviveARoundTripToTheMicrosecond() throws {
        var fuzz = Fuzz("RFC3339 round trip")
        let bounds = Int64(Self.exactRange.lowerBound.timeIntervalSinceReferenceDate * 1_000_000)
            ... Int64(Self.exactRange.upperBound.timeIntervalSinceReferenceDate * 1_000_000) - 1
        for index in 0..<100_000 {
            let micros = index < 2 ? [bounds.lowerBound, bounds.upperBound][index] : Int64.random(in: bounds, using: &fuzz.random)
            let date = Date(timeIntervalSinceReferenceDate: Double(micros) / 1_000_000)
            #expect(RFC3339.parse(RFC3339.format(date)) == date, "seed \(fuzz.seed), \(micros) µs")
        }
    }

    /// A valid time: fields in range, 0–6 fractional digits, `Z` or an offset; also the same
    /// instant as UTC with six digits when the offset is applied to the fields as written.
    static func validTime(_ fuzz: inout Fuzz) -> (text: String, utcText: String, offsetMinutes: Int) {
        let year = fuzz.chance(10) ? fuzz.int(1...9_998) : fuzz.int(1_901...2_098)
        let month = fuzz.int(1...12)
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let day = fuzz.int(1...[31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
        let (hour, minute, second) = (fuzz.int(0...23), fuzz.int(0...59), fuzz.int(0...59))
        let digits = fuzz.int(0...6)
        let fraction = digits == 0 ? "" : "." + String((0..<digits).map { _ in fuzz.pick(Array("0123456789")) })
        let offsetMinutes = fuzz.chance(2) ? 0 : fuzz.int(-(23 * 60 + 59)...(23 * 60 + 59))
        func pad(_ value: Int, _ width: Int = 2) -> String { String(repeating: "0", count: width - String(value).count) + String(value) }
        let offset = offsetMinutes == 0 && fuzz.chance(2) ? "Z" : (offsetMinutes < 0 ? "-" : "+") + pad(abs(offsetMinutes) / 60) + ":" + pad(abs(offsetMinutes) % 60)
        let fields = "\(pad(year, 4))-\(pad(month))-\(pad(day))T\(pad(hour)):\(pad(minute)):\(pad(second))"
        let sixDigits = String((fraction.dropFirst() + "000000").prefix(6))
        return (fields + fraction + offset, fields + "." + sixDigits + "Z", offsetMinutes)
    }
}
