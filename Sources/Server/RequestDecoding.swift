import Foundation
import Hummingbird
import Postgres

/// A JSON request body. Fields not listed in `knownFields` are refused (a misspelt optional field
/// would otherwise be silently ignored); `nestedKnownFields` does the same for arrays of objects.
protocol RequestBody: Decodable, Sendable {
    static var knownFields: Set<String> { get }
    static var nestedKnownFields: [String: Set<String>] { get }
}

extension RequestBody {
    static var nestedKnownFields: [String: Set<String>] { [:] }
}

extension Request {
    /// Reads at most `maxBytes` of body and decodes it as `T`. A body that is not JSON by its
    /// `Content-Type` → 415; malformed JSON → 400; a wrong type, a missing or unknown field → 422;
    /// each naming the field.
    mutating func decode<T: RequestBody>(_: T.Type, maxBytes: Int) async throws -> T {
        let data = Data(buffer: try await collectBody(upTo: maxBytes))
        try requireJSONBody(isEmpty: data.isEmpty)
        return try Self.decode(T.self, from: data)
    }

    /// As `decode(_:maxBytes:)`, for a body that may be left out: nil for an empty body.
    mutating func decodeIfPresent<T: RequestBody>(_: T.Type, maxBytes: Int) async throws -> T? {
        let data = Data(buffer: try await collectBody(upTo: maxBytes))
        try requireJSONBody(isEmpty: data.isEmpty)
        return data.isEmpty ? nil : try Self.decode(T.self, from: data)
    }

    /// A body, when there is one, must be labelled JSON (`MediaType.isJSON`): 415 otherwise. An
    /// empty body is no body, whatever its label.
    func requireJSONBody(isEmpty: Bool) throws {
        guard isEmpty || headers[.contentType].map(MediaType.isJSON) == true else { throw APIError.unsupportedMediaType }
    }

    private static func decode<T: RequestBody>(_: T.Type, from data: Data) throws -> T {
        guard StrictJSON.isValid(Array(data)) else { throw APIError.badRequest("body", "is not valid JSON") }
        let top: [String: JSONValue]
        do {
            guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: data) else {
                throw APIError.badRequest("body", "must be a JSON object")
            }
            top = object
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("body", "is not valid JSON")
        }
        if let field = Self.fieldWithNUL(in: .object(top), path: "") {
            // PostgreSQL text cannot hold U+0000; refuse it here rather than fail in the database.
            throw APIError.validation(field, "must not contain the NUL character")
        }
        var unknown = top.keys.filter { !T.knownFields.contains($0) }.sorted()
        for (field, allowed) in T.nestedKnownFields {
            switch top[field] {
            case .array(let elements)?:
                for (index, element) in elements.enumerated() {
                    guard case .object(let object) = element else { continue }
                    unknown += object.keys.filter { !allowed.contains($0) }.sorted().map { "\(field)[\(index)].\($0)" }
                }
            case .object(let object)?:
                unknown += object.keys.filter { !allowed.contains($0) }.sorted().map { "\(field).\($0)" }
            default:
                continue
            }
        }
        if !unknown.isEmpty {
            throw APIError(.unprocessableContent, code: "unknown_field", "unknown field(s): \(unknown.joined(separator: ", "))",
                           errors: unknown.map { APIError.FieldError(field: $0, message: "is not a known field") })
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            // Foundation reports a fractional or out-of-range number where an integer belongs as
            // corrupt data without a path; every field of a request that takes a number takes an
            // integer, so name the first non-integer number outside free-form metadata.
            throw APIError.validation(Self.fieldWithNonInteger(in: .object(top), path: "") ?? "body", "must be an integer")
        } catch let error as DecodingError {
            throw Self.apiError(error)
        }
    }

    private static func fieldWithNonInteger(in value: JSONValue, path: String) -> String? {
        switch value {
        case .number:
            return path
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let found = fieldWithNonInteger(in: element, path: "\(path)[\(index)]") { return found }
            }
            return nil
        case .object(let object):
            for (key, element) in object.sorted(by: { $0.key < $1.key }) where key != "metadata" {
                if let found = fieldWithNonInteger(in: element, path: path.isEmpty ? key : "\(path).\(key)") { return found }
            }
            return nil
        default:
            return nil
        }
    }

    /// The path of the first string or key containing U+0000, if any.
    private static func fieldWithNUL(in value: JSONValue, path: String) -> String? {
        switch value {
        case .string(let text):
            return text.utf8.contains(0) ? (path.isEmpty ? "body" : path) : nil
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let found = fieldWithNUL(in: element, path: "\(path)[\(index)]") { return found }
            }
            return nil
        case .object(let object):
            for (key, element) in object.sorted(by: { $0.key < $1.key }) {
                let child = path.isEmpty ? key : "\(path).\(key)"
                if key.utf8.contains(0) { return child }
                if let found = fieldWithNUL(in: element, path: child) { return found }
            }
            return nil
        default:
            return nil
        }
    }

    private static func apiError(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            var text = ""
            for key in codingPath + (last.map { [$0] } ?? []) {
                if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return text.isEmpty ? "body" : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .validation(path(context.codingPath, key), "is required")
        case .valueNotFound(_, let context):
            return .validation(path(context.codingPath), "must not be null")
        case .typeMismatch(let type, let context):
            return .validation(path(context.codingPath), "must be \(describe(type))")
        case .dataCorrupted(let context):
            return .validation(path(context.codingPath), context.debugDescription.contains("UUID") ? "must be a UUID" : "is invalid")
        @unknown default:
            return .validation("body", "is invalid")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int64.Type, is Int.Type, is Int32.Type: "an integer"
        case is Bool.Type: "a boolean"
        case is String.Type: "a string"
        case is UUID.Type: "a UUID string"
        default: "of a different type"
        }
    }

    /// `limit` (1–200, default 50) and the opaque `cursor` of a listing, which is base64url text
    /// (`Cursor.encode`) of at most 200 characters.
    func page() throws -> (limit: Int, cursor: String?) {
        let query = uri.queryParameters
        var limit = 50
        if let text = query["limit"] {
            guard let value = Int(String(text)), (1...200).contains(value) else {
                throw APIError.validation("limit", "must be an integer from 1 to 200")
            }
            limit = value
        }
        let cursor = query["cursor"].map(String.init)
        if let cursor, cursor.utf8.count > 200 || !cursor.utf8.allSatisfy(Cursor.isAlphabet) { throw Cursor.invalid }
        return (limit, cursor)
    }

    /// The query parameter `name` as a UUID; nil when absent, 422 naming it when malformed.
    func uuidQuery(_ name: String) throws -> UUID? {
        guard let text = uri.queryParameters[Substring(name)] else { return nil }
        guard let id = UUID(uuidString: String(text)) else { throw APIError.validation(name, "must be a UUID") }
        return id
    }

    /// The query parameter `name` as one of `E`'s values; nil when absent, 422 listing them otherwise.
    func enumQuery<E: RawRepresentable & CaseIterable>(_: E.Type, _ name: String) throws -> E? where E.RawValue == String {
        guard let text = uri.queryParameters[Substring(name)] else { return nil }
        guard let value = E(rawValue: String(text)) else {
            throw APIError.validation(name, "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    /// The query parameter `name` as a date `YYYY-MM-DD`; nil when absent, 422 naming it when malformed.
    func dateQuery(_ name: String) throws -> PostgresDate? {
        guard let text = uri.queryParameters[Substring(name)] else { return nil }
        guard let date = PostgresDate(iso8601: String(text)) else { throw APIError.validation(name, "must be a date such as 2027-01-31") }
        return date
    }

    /// The query parameter `name` as an RFC 3339 time; nil when absent, 422 naming it and saying
    /// what is wrong when invalid.
    func timeQuery(_ name: String) throws -> Date? {
        guard let text = uri.queryParameters[Substring(name)] else { return nil }
        do {
            return try RFC3339.date(from: text)
        } catch {
            throw APIError.validation(name, error.message)
        }
    }

    /// The period `from`–`to` (whole UTC days, inclusive): by default the 365 days ending today,
    /// at most `maxDays` long.
    func period(maxDays: Int32) throws -> (from: PostgresDate, to: PostgresDate) {
        let to = try dateQuery("to") ?? PostgresDate.today()
        let from = try dateQuery("from") ?? PostgresDate(daysSince2000: to.daysSince2000 - 364)
        guard from <= to else { throw APIError.validation("from", "must not be after to") }
        guard to.daysSince2000 - from.daysSince2000 < maxDays else { throw APIError.validation("from", "the period may span at most \(maxDays) days") }
        return (from, to)
    }

    /// The query parameter `name` as a code (`^[a-z][a-z0-9_]{0,62}$`, as a field's code); nil when
    /// absent, 422 naming it when malformed.
    func codeQuery(_ name: String) throws -> String? {
        guard let text = uri.queryParameters[Substring(name)].map(String.init) else { return nil }
        let bytes = Array(text.utf8)
        let lower = UInt8(ascii: "a")...UInt8(ascii: "z")
        let digit = UInt8(ascii: "0")...UInt8(ascii: "9")
        guard (1...63).contains(bytes.count), lower.contains(bytes[0]),
              bytes.allSatisfy({ lower.contains($0) || digit.contains($0) || $0 == UInt8(ascii: "_") }) else {
            throw APIError.validation(name, "must be a code such as integrated_circuits")
        }
        return text
    }

    /// The search text `q`: at most 200 characters (`QueryNULMiddleware` has refused NUL).
    func searchText() throws -> String? {
        guard let text = uri.queryParameters["q"].map(String.init) else { return nil }
        guard text.unicodeScalars.count <= 200 else { throw APIError.validation("q", "must be at most 200 characters") }
        return text
    }

    /// Updates are conditional: `If-Match` must name the current `etag` (or be `*`): 428 when
    /// missing, 400 when not `IfMatch`'s form, 412 when stale. Called once the body is validated:
    /// a precondition is evaluated only for a request that would otherwise succeed (RFC 9110 §13.2.1).
    func requireIfMatch(_ etag: String) throws {
        guard let header = headers[.ifMatch] else {
            throw APIError(.preconditionRequired, code: "precondition_required", "send If-Match with the ETag you last read")
        }
        guard let ifMatch = IfMatch(header) else {
            throw APIError.badRequest("If-Match", "must be * or entity-tags such as \"v3\", separated by commas")
        }
        guard ifMatch.matches(etag) else {
            throw APIError(.preconditionFailed, code: "precondition_failed", "the resource has changed; fetch it again")
        }
    }

    /// A UUID path parameter; anything else cannot name a resource, so it is a 404.
    func uuidParameter(_ name: String, _ context: AppRequestContext) throws -> UUID {
        guard let text = context.parameters.get(name), let id = UUID(uuidString: text) else { throw APIError.notFound }
        return id
    }
}

/// The strong ETag of a resource at `version`.
func versionETag(_ version: Int) -> String { "\"v\(version)\"" }

/// Media types of request bodies.
enum MediaType {
    /// Whether a `Content-Type` names JSON: `application/json` or `application/<name>+json` (RFC
    /// 6839), in any case, with any parameters, of which a `charset` must be UTF-8 (RFC 8259 §8.1).
    static func isJSON(_ contentType: String) -> Bool {
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false)
        let essence = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
        guard essence.hasPrefix("application/") else { return false }
        let subtype = essence.dropFirst("application/".count)
        guard subtype == "json" || (subtype.hasSuffix("+json") && subtype.count > "+json".count && subtype.allSatisfy(isTokenCharacter)) else {
            return false
        }
        return parts.dropFirst().allSatisfy { parameter in
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "charset" else { return true }
            let value = pair.count == 2 ? pair[1].trimmingCharacters(in: .whitespaces) : ""
            return value.lowercased() == "utf-8" || value.lowercased() == "\"utf-8\""
        }
    }

    /// RFC 9110 §5.6.2 `tchar`.
    private static func isTokenCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || "!#$%&'*+-.^_`|~".contains(character))
    }
}

/// Opaque page cursors: the position encoded as base64url, so clients do not build them.
enum Cursor {
    static func encode(_ position: String) -> String {
        Data(position.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Whether `byte` is a letter of the base64url alphabet (RFC 4648 §5).
    static func isAlphabet(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }

    /// What a client that sends back anything but a `next_cursor` is told.
    static let invalid = APIError.validation("cursor", "is not a cursor this API returned")

    static func decode(_ cursor: String) throws -> String {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard cursor.count <= 200, let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw invalid
        }
        return text
    }

    /// The offset an offset cursor holds (0 without one); offsets above `max` are refused.
    static func offset(_ cursor: String?, max: Int) throws -> Int {
        guard let cursor else { return 0 }
        guard let value = Int(try decode(cursor)), (0...max).contains(value) else { throw invalid }
        return value
    }

    /// The cursor of the page at `offset`, or nil if there is none or it lies beyond `max`.
    static func next(offset: Int?, max: Int) -> String? {
        offset.flatMap { $0 <= max ? encode(String($0)) : nil }
    }
}

/// A page of a listing: `{ "data": [...], "next_cursor": ... }`.
struct PageBody<Item: Encodable & Sendable>: Encodable, Sendable {
    let data: [Item]
    let nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case data
        case nextCursor = "next_cursor"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        try container.encode(nextCursor, forKey: .nextCursor)  // null on the last page, not absent
    }
}
