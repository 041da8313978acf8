import Foundation
import Postgres
import Testing
import TestSupport

@Suite("Typed encoding and decoding")
struct TypeRoundTripTests {
    /// Sends `value` as a parameter, has the server cast it to `sqlType` and back, and decodes it.
    func roundTrip<T: PostgresEncodable & PostgresDecodable>(_ value: T, as sqlType: String, on pool: PostgresPool) async throws -> T {
        try await pool.withConnection { connection throws in
            let rows = try await connection.query("SELECT $1::\(sqlType)", [value])
            return try rows[0].decode(T.self, at: 0)
        }
    }

    @Test func integersIncludingExtremes() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            for value: Int64 in [.min, -1, 0, 1, .max] { #expect(try await roundTrip(value, as: "int8", on: pool) == value) }
            for value: Int32 in [.min, 0, .max] { #expect(try await roundTrip(value, as: "int4", on: pool) == value) }
            for value: Int16 in [.min, 0, .max] { #expect(try await roundTrip(value, as: "int2", on: pool) == value) }
            #expect(try await roundTrip(Int(42), as: "int8", on: pool) == 42)
            // Narrower columns widen into wider Swift integers.
            let widened = try await pool.withConnection { try await $0.query("SELECT 7::int2, 8::int4") }
            #expect(try widened[0].decode(Int64.self, at: 0) == 7)
            #expect(try widened[0].decode(Int64.self, at: 1) == 8)
        }
    }

    @Test func doublesIncludingSpecialValues() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            for value in [0.0, -0.0, 1.0 / 3, -2.5e300, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .infinity, -.infinity] {
                let back = try await roundTrip(value, as: "float8", on: pool)
                #expect(back == value && back.sign == value.sign, "\(value) came back as \(back)")
            }
            #expect(try await roundTrip(Double.nan, as: "float8", on: pool).isNaN)
        }
    }

    @Test func boolsTextAndUnicode() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            #expect(try await roundTrip(true, as: "bool", on: pool) == true)
            #expect(try await roundTrip(false, as: "bool", on: pool) == false)
            for text in ["", "plain", "技术银行 张江 🚀", "quote ' and \" and \\ and \t tab", String(repeating: "技", count: 350_000)] {
                #expect(try await roundTrip(text, as: "text", on: pool) == text)
            }
            let megabyte = String(repeating: "x", count: 1 << 20)
            #expect(try await roundTrip(megabyte, as: "text", on: pool).count == 1 << 20)
        }
    }

    @Test func uuidsDatesTimestampsBytes() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            let id = UUID()
            #expect(try await roundTrip(id, as: "uuid", on: pool) == id)
            let fromServer = try await pool.withConnection { try await $0.query("SELECT $1::uuid::text", [id]) }
            #expect(try fromServer[0].decode(String.self, at: 0) == id.uuidString.lowercased())

            let instants = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 946_684_800), Date(timeIntervalSince1970: 1_764_372_868.123456),
                            Date(timeIntervalSince1970: -2_208_988_800.5), Date(timeIntervalSince1970: 253_402_300_799)]
            for instant in instants {
                let back = try await roundTrip(instant, as: "timestamptz", on: pool)
                #expect(abs(back.timeIntervalSince1970 - instant.timeIntervalSince1970) < 0.000_001)
            }
            let epoch = try await pool.withConnection { try await $0.query("SELECT extract(epoch FROM $1::timestamptz)::int8", [Date(timeIntervalSince1970: 1_700_000_000)]) }
            #expect(try epoch[0].decode(Int64.self, at: 0) == 1_700_000_000)

            for text in ["2000-01-01", "1999-12-31", "1970-01-01", "2024-02-29", "0001-01-01", "9999-12-31"] {
                let date = try #require(PostgresDate(iso8601: text))
                #expect(date.description == text)
                #expect(try await roundTrip(date, as: "date", on: pool) == date)
                let serverText = try await pool.withConnection { try await $0.query("SELECT to_char($1::date, 'YYYY-MM-DD')", [date]) }
                #expect(try serverText[0].decode(String.self, at: 0) == text)
            }
            #expect(PostgresDate(iso8601: "2023-02-29") == nil)
            #expect(PostgresDate(iso8601: "2023-13-01") == nil)
            #expect(PostgresDate(iso8601: "20230101") == nil)

            let allBytes = Data((0...255).map { UInt8($0) })
            #expect(try await roundTrip(allBytes, as: "bytea", on: pool) == allBytes)
            #expect(try await roundTrip(Data(), as: "bytea", on: pool) == Data())
        }
    }

    @Test func jsonbAndArrays() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            let json = JSONB(#"{"name": "芯片", "n": [1, 2.5, null, true], "nested": {"k": "v"}}"#)
            let back = try await roundTrip(json, as: "jsonb", on: pool)
            // jsonb normalizes key order and spacing; compare as values.
            let equal = try await pool.withConnection { try await $0.query("SELECT $1::jsonb = $2::jsonb", [json, back]) }
            #expect(try equal[0].decode(Bool.self, at: 0))
            #expect(try await roundTrip(JSONB("[]"), as: "jsonb", on: pool).text == "[]")

            let texts = ["a", "", "with,comma", "with \"quotes\"", "{braces}", "NULL", "中文"]
            #expect(try await roundTrip(texts, as: "text[]", on: pool) == texts)
            #expect(try await roundTrip([String](), as: "text[]", on: pool) == [])
            let ids = [UUID(), UUID(), UUID()]
            #expect(try await roundTrip(ids, as: "uuid[]", on: pool) == ids)
            let numbers: [Int64] = [.min, 0, .max]
            #expect(try await roundTrip(numbers, as: "int8[]", on: pool) == numbers)
            let fromServer = try await pool.withConnection { try await $0.query("SELECT ARRAY['x', 'y']::text[], cardinality($1::uuid[])", [ids]) }
            #expect(try fromServer[0].decode([String].self, at: 0) == ["x", "y"])
            #expect(try fromServer[0].decode(Int.self, at: 1) == 3)
        }
    }

    @Test func nullsDecodeAsNilAndEncodeFromNil() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                let rows = try await connection.query(
                    "SELECT $1::int8, $2::text, $3::uuid, $4::timestamptz, $5::date, $6::jsonb, $7::bytea, $8::bool, $9::text[]",
                    [Int64?.none, String?.none, UUID?.none, Date?.none, PostgresDate?.none, JSONB?.none, Data?.none, Bool?.none, [String]?.none])
                let row = rows[0]
                #expect(try row.decode(Int64?.self, at: 0) == nil)
                #expect(try row.decode(String?.self, at: 1) == nil)
                #expect(try row.decode(UUID?.self, at: 2) == nil)
                #expect(try row.decode(Date?.self, at: 3) == nil)
                #expect(try row.decode(PostgresDate?.self, at: 4) == nil)
                #expect(try row.decode(JSONB?.self, at: 5) == nil)
                #expect(try row.decode(Data?.self, at: 6) == nil)
                #expect(try row.decode(Bool?.self, at: 7) == nil)
                #expect(try row.decode([String]?.self, at: 8) == nil)
                // A NULL read as a non-optional is a decoding error, not a crash or a default value.
                #expect(throws: PostgresError.self) { try row.decode(Int64.self, at: 0) }
                // A present value decodes through an optional too.
                let present = try await connection.query("SELECT 5::int8 AS five")
                #expect(try present[0].decode(Int64?.self, "five") == 5)
            }
        }
    }

    @Test func mismatchedTypesAreDecodingErrors() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            let rows = try await pool.withConnection { try await $0.query("SELECT 'text'::text, 300::int4, 5000000000::int8") }
            let error = #expect(throws: PostgresError.self) { try rows[0].decode(Int64.self, at: 0) }
            #expect(error?.code == .decoding)
            #expect(throws: PostgresError.self) { try rows[0].decode(UUID.self, at: 1) }
            // Narrowing that would lose information is refused.
            #expect(throws: PostgresError.self) { try rows[0].decode(Int32.self, at: 2) }
            #expect(throws: PostgresError.self) { try rows[0].decode(Int16.self, "missing_column") }
        }
    }
}

@Suite("Timestamps keep every microsecond")
struct TimestampPrecisionTests {
    @Test func randomMicrosecondInstantsRoundTripExactly() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            var generator = SystemRandomNumberGenerator()
            // Microseconds since the Unix epoch, 1970 to 2100; the server reports them as text.
            let micros = (0..<500).map { _ in Int64.random(in: 0...4_102_444_800_000_000, using: &generator) }
            let dates = micros.map { Date(timeIntervalSinceReferenceDate: Double($0 - 978_307_200_000_000) / 1_000_000) }
            try await pool.withConnection { connection in
                for (expected, date) in zip(micros, dates) {
                    let row = try await connection.query(
                        "SELECT $1::timestamptz, (extract(epoch FROM $1::timestamptz) * 1000000)::int8", [date])[0]
                    #expect(try row.decode(Int64.self, at: 1) == expected, "\(date)")
                    let back = try row.decode(Date.self, at: 0)
                    #expect(back == date, "\(expected)")
                }
            }
        }
    }
}
