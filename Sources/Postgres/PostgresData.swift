import Foundation

/// A PostgreSQL type, identified by its OID. Only the types this client encodes or decodes are named.
public struct PostgresType: Hashable, Sendable, CustomStringConvertible {
    public let oid: UInt32
    public init(oid: UInt32) { self.oid = oid }
    public var description: String { "oid \(oid)" }

    public static let bool = PostgresType(oid: 16)
    public static let bytea = PostgresType(oid: 17)
    public static let name = PostgresType(oid: 19)
    public static let int8 = PostgresType(oid: 20)
    public static let int2 = PostgresType(oid: 21)
    public static let int4 = PostgresType(oid: 23)
    public static let float8 = PostgresType(oid: 701)
    public static let text = PostgresType(oid: 25)
    public static let json = PostgresType(oid: 114)
    public static let bpchar = PostgresType(oid: 1042)
    public static let varchar = PostgresType(oid: 1043)
    public static let date = PostgresType(oid: 1082)
    public static let timestamptz = PostgresType(oid: 1184)
    public static let uuid = PostgresType(oid: 2950)
    public static let jsonb = PostgresType(oid: 3802)
    public static let textArray = PostgresType(oid: 1009)
    public static let int8Array = PostgresType(oid: 1016)
    public static let uuidArray = PostgresType(oid: 2951)
}

/// A value that can be sent as a bound parameter, in PostgreSQL's binary format.
public protocol PostgresEncodable: Sendable {
    /// The type the server should read the parameter as.
    static var postgresType: PostgresType { get }
    /// The binary representation, or `nil` for SQL NULL.
    func postgresBinary() -> [UInt8]?
}

/// A value that can be decoded from a result column in PostgreSQL's binary format.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value of column type `type`.
    init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError)
    /// The value for SQL NULL; only optionals have one.
    static func postgresNull() throws(PostgresError) -> Self
}

extension PostgresDecodable {
    public static func postgresNull() throws(PostgresError) -> Self {
        throw PostgresError(code: .decoding, message: "unexpected NULL for \(Self.self)")
    }
}

/// An element type of a one-dimensional PostgreSQL array.
public protocol PostgresArrayElement: PostgresEncodable, PostgresDecodable {
    static var postgresArrayType: PostgresType { get }
}

func typeMismatch<T>(_: T.Type, _ type: PostgresType) -> PostgresError {
    PostgresError(code: .decoding, message: "cannot decode \(type) as \(T.self)")
}

// MARK: - Big-endian helpers

extension UnsafeRawBufferPointer {
    func readBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: self[offset..<offset + MemoryLayout<T>.size])) }
        return T(bigEndian: value)
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}

func decodeInteger<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ type: PostgresType) throws(PostgresError) -> T {
    switch (type, bytes.count) {
    case (.int2, 2): return T(bytes.readBigEndian(Int16.self, at: 0))
    case (.int4, 4):
        let value = bytes.readBigEndian(Int32.self, at: 0)
        guard let exact = T(exactly: value) else { throw typeMismatch(T.self, type) }
        return exact
    case (.int8, 8):
        let value = bytes.readBigEndian(Int64.self, at: 0)
        guard let exact = T(exactly: value) else { throw typeMismatch(T.self, type) }
        return exact
    default: throw typeMismatch(T.self, type)
    }
}

// MARK: - Scalars

extension Bool: PostgresArrayElement {
    public static var postgresType: PostgresType { .bool }
    public static var postgresArrayType: PostgresType { PostgresType(oid: 1000) }
    public func postgresBinary() -> [UInt8]? { [self ? 1 : 0] }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .bool, bytes.count == 1 else { throw typeMismatch(Bool.self, type) }
        self = bytes[0] != 0
    }
}

extension Int16: PostgresArrayElement {
    public static var postgresType: PostgresType { .int2 }
    public static var postgresArrayType: PostgresType { PostgresType(oid: 1005) }
    public func postgresBinary() -> [UInt8]? { var b: [UInt8] = []; b.appendBigEndian(self); return b }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        self = try decodeInteger(Int16.self, bytes, type)
    }
}

extension Int32: PostgresArrayElement {
    public static var postgresType: PostgresType { .int4 }
    public static var postgresArrayType: PostgresType { PostgresType(oid: 1007) }
    public func postgresBinary() -> [UInt8]? { var b: [UInt8] = []; b.appendBigEndian(self); return b }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        self = try decodeInteger(Int32.self, bytes, type)
    }
}

extension Int64: PostgresArrayElement {
    public static var postgresType: PostgresType { .int8 }
    public static var postgresArrayType: PostgresType { .int8Array }
    public func postgresBinary() -> [UInt8]? { var b: [UInt8] = []; b.appendBigEndian(self); return b }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        self = try decodeInteger(Int64.self, bytes, type)
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int8 }
    public func postgresBinary() -> [UInt8]? { Int64(self).postgresBinary() }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        self = try decodeInteger(Int.self, bytes, type)
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .float8 }
    public func postgresBinary() -> [UInt8]? { var b: [UInt8] = []; b.appendBigEndian(bitPattern); return b }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .float8, bytes.count == 8 else { throw typeMismatch(Double.self, type) }
        self = Double(bitPattern: bytes.readBigEndian(UInt64.self, at: 0))
    }
}

extension String: PostgresArrayElement {
    public static var postgresType: PostgresType { .text }
    public static var postgresArrayType: PostgresType { .textArray }
    public func postgresBinary() -> [UInt8]? { Array(utf8) }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        switch type {
        case .text, .varchar, .bpchar, .name, .json: self = String(decoding: bytes, as: UTF8.self)
        case .jsonb where bytes.first == 1: self = String(decoding: bytes.dropFirst(), as: UTF8.self)
        default: throw typeMismatch(String.self, type)
        }
    }
}

extension UUID: PostgresArrayElement {
    public static var postgresType: PostgresType { .uuid }
    public static var postgresArrayType: PostgresType { .uuidArray }
    public func postgresBinary() -> [UInt8]? { withUnsafeBytes(of: uuid) { Array($0) } }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .uuid, bytes.count == 16 else { throw typeMismatch(UUID.self, type) }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: bytes) }
        self = UUID(uuid: raw)
    }
}

/// Microseconds from PostgreSQL's epoch (2000-01-01) to Foundation's reference date (2001-01-01).
/// Conversions go through the reference date, `Date`'s own representation, in one rounding step,
/// so every microsecond survives a round trip.
private let postgresEpochToReferenceDateMicros: Int64 = 31_622_400_000_000

extension Date: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .timestamptz }
    public func postgresBinary() -> [UInt8]? {
        // Round to whole microseconds, PostgreSQL's resolution.
        let micros = Int64((timeIntervalSinceReferenceDate * 1_000_000).rounded()) + postgresEpochToReferenceDateMicros
        return micros.postgresBinary()
    }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .timestamptz, bytes.count == 8 else { throw typeMismatch(Date.self, type) }
        let micros = bytes.readBigEndian(Int64.self, at: 0)
        guard micros != .max, micros != .min else {
            throw PostgresError(code: .decoding, message: "infinite timestamps are not supported")
        }
        self = Date(timeIntervalSinceReferenceDate: Double(micros - postgresEpochToReferenceDateMicros) / 1_000_000)
    }
}

/// Raw bytes, sent and read as `bytea`.
extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bytea }
    public func postgresBinary() -> [UInt8]? { Array(self) }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .bytea else { throw typeMismatch(Data.self, type) }
        self = Data(bytes)
    }
}

/// A `jsonb` value, carried as its JSON text.
public struct JSONB: Hashable, Sendable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// The JSON text, UTF-8.
    public var text: String
    public init(_ text: String) { self.text = text }

    /// Encodes an `Encodable` value with sorted keys.
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Decodes the JSON text as `T`.
    public func decode<T: Decodable>(_: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    public var description: String { text }
    public static var postgresType: PostgresType { .jsonb }
    public func postgresBinary() -> [UInt8]? { [1] + Array(text.utf8) }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        switch type {
        case .jsonb where bytes.first == 1: text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        case .json: text = String(decoding: bytes, as: UTF8.self)
        default: throw typeMismatch(JSONB.self, type)
        }
    }
}

/// A calendar date (PostgreSQL `date`), without time zone. Finite dates only.
public struct PostgresDate: Hashable, Comparable, Sendable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// Days since 2000-01-01, PostgreSQL's epoch.
    public var daysSince2000: Int32

    public init(daysSince2000: Int32) { self.daysSince2000 = daysSince2000 }

    /// A date from its proleptic Gregorian year, month (1–12) and day (1–31); nil if invalid.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), (1...31).contains(day), (-4713...294_276).contains(year) else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day) - Self.daysFromCivil(year: 2000, month: 1, day: 1)
        self.daysSince2000 = Int32(days)
        guard components == (year, month, day) else { return nil }  // rejects 2023-02-30 and the like
    }

    /// The UTC calendar date of `instant`.
    public static func today(_ instant: Date = Date()) -> PostgresDate {
        PostgresDate(daysSince2000: Int32(((instant.timeIntervalSince1970 - 946_684_800) / 86_400).rounded(.down)))
    }

    /// The instant this date starts in UTC.
    public var midnightUTC: Date { Date(timeIntervalSince1970: 946_684_800 + Double(daysSince2000) * 86_400) }

    /// Parses `YYYY-MM-DD`.
    public init?(iso8601 text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2])
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public var components: (year: Int, month: Int, day: Int) {
        Self.civilFromDays(Int(daysSince2000) + Self.daysFromCivil(year: 2000, month: 1, day: 1))
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        let (y, m, d) = components
        let pad = { (v: Int, w: Int) in String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    public static func < (a: Self, b: Self) -> Bool { a.daysSince2000 < b.daysSince2000 }

    public static var postgresType: PostgresType { .date }
    public func postgresBinary() -> [UInt8]? { daysSince2000.postgresBinary() }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == .date, bytes.count == 4 else { throw typeMismatch(PostgresDate.self, type) }
        let days = bytes.readBigEndian(Int32.self, at: 0)
        guard days != .max, days != .min else {
            throw PostgresError(code: .decoding, message: "infinite dates are not supported")
        }
        self.daysSince2000 = days
    }

    // Howard Hinnant's days-from-civil algorithm (days since 1970-01-01).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

// MARK: - Optionals and arrays

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresType { Wrapped.postgresType }
    public func postgresBinary() -> [UInt8]? { self?.postgresBinary() }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        self = .some(try Wrapped(postgresBinary: bytes, type: type))
    }
    public static func postgresNull() throws(PostgresError) -> Self { nil }
}

/// One-dimensional arrays without NULL elements (`text[]`, `uuid[]`, `int8[]` …).
extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresType { Element.postgresArrayType }
    public func postgresBinary() -> [UInt8]? {
        var out: [UInt8] = []
        out.appendBigEndian(Int32(isEmpty ? 0 : 1))  // dimensions
        out.appendBigEndian(Int32(0))  // has-null flag
        out.appendBigEndian(Element.postgresType.oid)
        if !isEmpty {
            out.appendBigEndian(Int32(count))
            out.appendBigEndian(Int32(1))  // lower bound
        }
        for element in self {
            let bytes = element.postgresBinary() ?? []
            out.appendBigEndian(Int32(bytes.count))
            out.append(contentsOf: bytes)
        }
        return out
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws(PostgresError) {
        guard type == Element.postgresArrayType, bytes.count >= 12 else { throw typeMismatch([Element].self, type) }
        let dimensions = bytes.readBigEndian(Int32.self, at: 0)
        let elementType = PostgresType(oid: bytes.readBigEndian(UInt32.self, at: 8))
        if dimensions == 0 { self = []; return }
        guard dimensions == 1, bytes.count >= 20 else {
            throw PostgresError(code: .decoding, message: "only one-dimensional arrays are supported")
        }
        let count = Int(bytes.readBigEndian(Int32.self, at: 12))
        var offset = 20
        var result: [Element] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            guard offset + 4 <= bytes.count else { throw PostgresError(code: .decoding, message: "truncated array") }
            let length = Int(bytes.readBigEndian(Int32.self, at: offset))
            offset += 4
            if length < 0 {
                result.append(try Element.postgresNull())
                continue
            }
            guard offset + length <= bytes.count else { throw PostgresError(code: .decoding, message: "truncated array") }
            result.append(try Element(postgresBinary: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length]), type: elementType))
            offset += length
        }
        self = result
    }
}
