import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import Postgres
import Server
import TechBank
import Testing
import TechBankTestSupport
import TestSupport

// Shared helpers of the HTTP API tests: an app on a fresh database with a known operator key,
// organizations created through the API, and JSON bodies read without Foundation bridging.

/// The operator's admin key in every API test.
let operatorKey = "tbk_test_operator_key_0123456789"

extension HTTPField.Name {
    static let tbRequestID = Self("Request-Id")!
    static let tbIdempotencyKey = Self("Idempotency-Key")!
    static let tbIdempotentReplayed = Self("Idempotent-Replayed")!
}

/// A fresh lower-case UUID string.
func newID() -> String { UUID().uuidString.lowercased() }

// MARK: JSON

/// A decoded JSON document. Integers stay exact; absent keys read as `.missing`.
enum JSON: Decodable, Sendable, Equatable, CustomStringConvertible {
    case missing
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSON].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSON].self)) }
    }

    static func parse(_ data: Data) -> JSON {
        (try? JSONDecoder().decode(JSON.self, from: data)) ?? .missing
    }

    subscript(key: String) -> JSON {
        if case .object(let object) = self { return object[key] ?? .missing }
        return .missing
    }

    subscript(index: Int) -> JSON {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return .missing
    }

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var int: Int64? { if case .int(let value) = self { value } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    var array: [JSON] { if case .array(let value) = self { value } else { [] } }
    var isNull: Bool { self == .null }
    var keys: Set<String> { if case .object(let object) = self { Set(object.keys) } else { [] } }

    var description: String {
        switch self {
        case .missing: "<missing>"
        case .null: "null"
        case .bool(let value): "\(value)"
        case .int(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let value): "[" + value.map(\.description).joined(separator: ",") + "]"
        case .object(let value): "{" + value.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}

// MARK: Responses

/// One HTTP response.
struct APIResponse: Sendable, CustomStringConvertible {
    let method: HTTPRequest.Method
    let uri: String
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSON { JSON.parse(body) }
    /// The problem `code`.
    var code: String? { json["code"].string }
    /// The `field`s of the problem's `errors`.
    var errorFields: [String] { json["errors"].array.compactMap { $0["field"].string } }
    var contentType: String? { headers[.contentType] }
    var requestID: String? { headers[.tbRequestID] }

    var description: String { "\(method) \(uri) → \(status.code) \(text.prefix(600))" }

    /// What must not tell one missing resource from another tenant's: everything but the request id.
    var problemShape: String {
        guard case .object(var object) = json else { return "\(status.code) \(text)" }
        object["request_id"] = nil
        return "\(status.code) \(JSON.object(object))"
    }
}

/// Strings no response to bad input may contain: SQL, schema names, source paths, Swift error dumps.
let leakMarkers = [
    "SELECT", "INSERT", "UPDATE ", "ledger.", "techbank.organizations", "techbank.api_keys", "techbank.idempotency", ".swift",
    "PostgresError", "LedgerError", "DecodingError", "sqlState", "SQLSTATE", "Fatal error", "Stack trace", "0x0000",
]

/// Records that a response to bad input is a proper client error.
func expectSafe(_ response: APIResponse, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(response.status.code != 500 && (400..<500).contains(response.status.code), "\(response)", sourceLocation: sourceLocation)
    for marker in leakMarkers {
        #expect(!response.text.contains(marker), "leaks \(marker): \(response)", sourceLocation: sourceLocation)
    }
    #expect(response.contentType == "application/problem+json", "\(response)", sourceLocation: sourceLocation)
}

// MARK: The API under test

/// An organization created through the API, with one key of its own.
struct Org: Sendable {
    let id: String
    let key: String
    let keyID: String
}

/// The app under test, one fresh database per instance.
struct API: Sendable {
    let client: any TestClientProtocol
    let pool: PostgresPool

    /// Sends a request as `key` (nil: no Authorization header). `json` is serialized with sorted
    /// keys; `raw` is sent byte for byte. Every response is checked: never a 500, always a
    /// Request-Id, and errors are problem+json without internals.
    @discardableResult
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String? = operatorKey, json: [String: Any]? = nil, raw: String? = nil,
        headers: HTTPFields = [:], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> APIResponse {
        var headers = headers
        if let key { headers[.authorization] = "Bearer \(key)" }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
        } else if let raw {
            body = ByteBuffer(string: raw)
        }
        if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
        let result = APIResponse(method: method, uri: uri, status: response.status, headers: response.headers, body: Data(buffer: response.body))
        #expect(result.status.code != 500, "\(result)", sourceLocation: sourceLocation)
        #expect(result.requestID?.isEmpty == false, "no Request-Id: \(result)", sourceLocation: sourceLocation)
        // 503 is the database's absence, not the request's fault; the outage tests check it.
        if result.status.code >= 400, result.status != .serviceUnavailable { expectSafe(result, sourceLocation: sourceLocation) }
        return result
    }

    /// Creates an organization as the operator and issues it a key.
    func createOrganization(_ name: String, kind: String, subParkID: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Org {
        var body: [String: Any] = ["name": name, "kind": kind, "country": "CN"]
        if let subParkID { body["sub_park_id"] = subParkID }
        let created = try await call(.post, "/v1/organizations", json: body, sourceLocation: sourceLocation)
        try #require(created.status == .created, "\(created)", sourceLocation: sourceLocation)
        let id = try #require(created.json["id"].string, sourceLocation: sourceLocation)
        let key = try await call(.post, "/v1/organizations/\(id)/api-keys", json: ["label": "\(name) key"], sourceLocation: sourceLocation)
        try #require(key.status == .created, "\(key)", sourceLocation: sourceLocation)
        return Org(id: id, key: try #require(key.json["key"].string), keyID: try #require(key.json["id"].string))
    }

    /// Opens an account for `owner` as the owner itself; returns its id. It never goes below zero
    /// (the money model); `funded` minor units are deposited by the operator into the owner's
    /// operating account and moved into it by the owner, so its credits start at `funded`.
    func createAccount(
        for owner: Org, currency: String = "CNY", id: String = newID(), funded: Int = 0,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> String {
        let response = try await call(.post, "/v1/accounts", key: owner.key, json: [
            "id": id, "owner_id": owner.id, "currency": currency,
        ], sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        if funded > 0 {
            let operating = try await operatingAccount(of: owner, holding: funded, currency: currency, sourceLocation: sourceLocation)
            let moved = try await transfer(operating, id, funded, key: owner.key, currency: currency, sourceLocation: sourceLocation)
            try #require(moved.status == .created, "\(moved)", sourceLocation: sourceLocation)
        }
        return id
    }

    /// Deposits `amount` for `owner` as the operator (money from outside the bank, through the
    /// bank's settlement account) and returns the owner's operating account, which receives it.
    func operatingAccount(of owner: Org, holding amount: Int, currency: String = "CNY", sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let deposit = try await call(.post, "/v1/deposits", json: [
            "organization_id": owner.id, "amount": amount, "currency": currency, "external_ref": "BANK-\(newID())",
        ], sourceLocation: sourceLocation)
        try #require(deposit.status == .created, "\(deposit)", sourceLocation: sourceLocation)
        return try #require(deposit.json["credit_account_id"].string, sourceLocation: sourceLocation)
    }

    /// The body of a posted transfer.
    static func transferBody(_ debit: String, _ credit: String, _ amount: Int, currency: String = "CNY", id: String = newID()) -> [String: Any] {
        ["id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount, "currency": currency]
    }

    /// Posts a transfer as `key`.
    @discardableResult
    func transfer(
        _ debit: String, _ credit: String, _ amount: Int, key: String, currency: String = "CNY", id: String = newID(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> APIResponse {
        try await call(.post, "/v1/transfers", key: key, json: Self.transferBody(debit, credit, amount, currency: currency, id: id), sourceLocation: sourceLocation)
    }

    /// An account as the operator reads it.
    func account(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await call(.get, "/v1/accounts/\(id)", sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// The four balances of an account: debits/credits posted, debits/credits pending.
    func balances(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Int64] {
        let account = try await account(id, sourceLocation: sourceLocation)
        return ["debits_posted", "credits_posted", "debits_pending", "credits_pending"].map { account[$0].int ?? -1 }
    }
}

/// Boots the app on a fresh database whose operator has `operatorKey`, and runs `body` against it.
func withAPI(maxBodyBytes: Int? = nil, configure: (inout ServerConfiguration) -> Void = { _ in },
             _ body: @escaping @Sendable (API) async throws -> Void) async throws {
    try await TestDatabase.withPool(template: .techbank) { pool in
        try await withAPI(on: pool, maxBodyBytes: maxBodyBytes, configure: configure, body)
    }
}

/// Boots the app on the database of `pool`, which holds the schema, and runs `body` against it.
/// The app has a pool of its own, configured like `pool` but working as `Schema.applicationRole`.
/// `live`: on a real local port (the client's `port`), for clients other than the test's own.
/// `readConninfo`: a hot standby of that database, for the app's read pool.
func withAPI(on pool: PostgresPool, maxBodyBytes: Int? = nil, live: Bool = false, readConninfo: String? = nil,
             configure: (inout ServerConfiguration) -> Void = { _ in },
             _ body: @escaping @Sendable (API) async throws -> Void) async throws {
    _ = try await Organizations(pool: pool).bootstrapOperator(adminKey: operatorKey)
    var configuration = ServerConfiguration()
    if let maxBodyBytes { configuration.maxBodyBytes = maxBodyBytes; configuration.maxBatchBodyBytes = maxBodyBytes }
    configure(&configuration)
    // The app works as the server does, with least privilege; the test's own SQL uses `pool`.
    var application = pool.configuration
    application.role = Schema.applicationRole
    let applicationPool = PostgresPool(configuration: application, logger: TestDatabase.logger)
    let readPool = readConninfo.map { conninfo in
        var reads = application
        reads.conninfo = conninfo
        return PostgresPool(configuration: reads, logger: TestDatabase.logger)
    }
    let app = buildApplication(configuration: configuration, pool: applicationPool, readPool: readPool, logger: TestDatabase.logger)
    do {
        try await app.test(live ? .live : .router) { client in
            try await body(API(client: client, pool: pool))
        }
        await applicationPool.close()
        await readPool?.close()
    } catch {
        await applicationPool.close()
        await readPool?.close()
        throw error
    }
}

// MARK: Requests the test client cannot make

/// Sends a request straight to the router with a streamed body and no Content-Length (as a
/// chunked upload arrives), which HummingbirdTesting's clients cannot do.
func sendStreamed(
    router: Router<AppRequestContext>, method: HTTPRequest.Method, path: String, key: String, chunks: [ByteBuffer]
) async throws -> APIResponse {
    let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
    for chunk in chunks { continuation.yield(chunk) }
    continuation.finish()
    var fields = HTTPFields()
    fields[.authorization] = "Bearer \(key)"
    fields[.contentType] = "application/json"
    fields[.transferEncoding] = "chunked"
    let request = Request(
        head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: path, headerFields: fields),
        body: RequestBody(asyncSequence: stream))
    let context = AppRequestContext(source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: TestDatabase.logger))
    let response = try await router.buildResponder().respond(to: request, context: context)
    let collector = BodyCollector()
    try await response.body.write(collector)
    return APIResponse(method: method, uri: path, status: response.status, headers: response.headers, body: collector.data)
}

private final class BodyCollector: ResponseBodyWriter, @unchecked Sendable {
    var data = Data()
    func write(_ buffer: ByteBuffer) async throws { data.append(contentsOf: buffer.readableBytesView) }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

// MARK: Assertions

/// Expects a problem+json response with this status and code (and, if given, exactly these `errors[].field`s).
func expectProblem(
    _ response: APIResponse, _ status: HTTPResponse.Status, _ code: String, fields: [String]? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard response.status == status, response.code == code else {
        // One issue for a wrong answer, not one per problem field.
        Issue.record("expected \(status.code) \(code), got \(response)", sourceLocation: sourceLocation)
        return
    }
    if let fields {
        #expect(response.errorFields == fields, "\(response)", sourceLocation: sourceLocation)
    }
    #expect(response.contentType == "application/problem+json", "\(response)", sourceLocation: sourceLocation)
    let body = response.json
    #expect(body["status"].int == Int64(status.code), "\(response)", sourceLocation: sourceLocation)
    #expect(body["type"].string == "https://techbank.example/problems/" + code.replacingOccurrences(of: "_", with: "-"), "\(response)", sourceLocation: sourceLocation)
    #expect(body["title"].string?.isEmpty == false, "\(response)", sourceLocation: sourceLocation)
    #expect(body["detail"].string?.isEmpty == false, "\(response)", sourceLocation: sourceLocation)
    #expect(body["request_id"].string != nil && body["request_id"].string == response.requestID, "\(response)", sourceLocation: sourceLocation)
}

/// Expects 422 `validation_failed` naming exactly `field`.
func expectInvalid(_ response: APIResponse, _ field: String, sourceLocation: SourceLocation = #_sourceLocation) {
    expectProblem(response, .unprocessableContent, "validation_failed", fields: [field], sourceLocation: sourceLocation)
}
