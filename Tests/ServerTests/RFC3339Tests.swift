import Foundation
@testable import Server
import Testing

@Suite("RFC 3339 times")
struct RFC3339Tests {
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
}
