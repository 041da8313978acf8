import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOEmbedded
import Postgres
@testable import Server
import TechBank
import Testing
import TestSupport

/// Every parser of client text, fed 100,000 random and adversarial inputs each (seeded, see
/// `Fuzz`): none may trap, each answers a value or a 4xx problem, and valid inputs round-trip.
@Suite("Parsers of client text are total")
struct ParserFuzzTests {
    static let inputs = 100_000

    /// A request for `path` with `fields`, as the router hands it to a handler.
    static func request(_ path: String, _ fields: HTTPFields = [:], method: HTTPRequest.Method = .get, body: String = "") -> Request {
        Request(head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: path, headerFields: fields),
                body: RequestBody(buffer: ByteBuffer(string: body)))
    }

    /// Runs `parse`; a thrown error must be a 4xx problem.
    static func expectValueOr4xx<T>(_ fuzz: Fuzz, _ input: String, _ parse: () throws -> T) {
        do {
            _ = try parse()
        } catch {
            expect4xx(error, fuzz, input)
        }
    }

    static func expect4xx(_ error: any Error, _ fuzz: Fuzz, _ input: String) {
        if let error = error as? APIError {
            #expect((400..<500).contains(error.status.code), "\(fuzz.label(input)): \(error.status.code)")
        } else {
            Issue.record("\(fuzz.label(input)): \(error)")
        }
    }

    static func validTimeCursor(_ fuzz: inout Fuzz) -> String {
        let micros = Int64.random(in: -3_155_760_000_000_000...3_155_760_000_000_000, using: &fuzz.random)  // 1901 to 2100
        return "\(RFC3339.format(Date(timeIntervalSinceReferenceDate: Double(micros) / 1_000_000)))|\(UUID().uuidString)"
    }

    @Test("forged cursors of every kind cannot trap the server: a position or a 422 naming the cursor")
    func cursors() async throws {
        var fuzz = Fuzz("cursors")
        for _ in 0..<Self.inputs {
            let plain = fuzz.input { fuzz in fuzz.chance(2) ? Self.validTimeCursor(&fuzz) : String(fuzz.int(0...20_000)) }
            let cursor = fuzz.chance(4) ? plain : Cursor.encode(plain)
            for decode in [{ _ = try Cursor.decode(cursor) }, { _ = try Cursor.offset(cursor, max: 10_000) }, { _ = try TimeCursor.decode(cursor) }] {
                do {
                    try decode()
                } catch let error as APIError {
                    #expect(error.status == .unprocessableContent && error.errors.map(\.field) == ["cursor"], "\(fuzz.label(cursor))")
                }
            }
        }
        for _ in 0..<1_000 {
            let date = Date(timeIntervalSinceReferenceDate: Double(Int64.random(in: -3_155_760_000_000_000...3_155_760_000_000_000, using: &fuzz.random)) / 1_000_000)
            let id = UUID()
            let position = try TimeCursor.decode(TimeCursor.encode((date, id)))
            #expect(position.0 == date && position.1 == id, "seed \(fuzz.seed), \(date)")
            let offset = fuzz.int(0...10_000)
            #expect(try Cursor.offset(Cursor.next(offset: offset, max: 10_000), max: 10_000) == offset)
        }
    }

    @Test func contentTypes() {
        var fuzz = Fuzz("Content-Type")
        let valid = ["application/json", "application/json; charset=utf-8", "application/merge-patch+json", "Application/JSON;Charset=\"UTF-8\""]
        for _ in 0..<Self.inputs {
            let contentType = fuzz.input { $0.pick(valid) }
            if MediaType.isJSON(contentType) {
                let essence = contentType.split(separator: ";", omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces).lowercased()
                #expect(essence.hasPrefix("application/") && essence.hasSuffix("json"), "\(fuzz.label(contentType))")
            }
        }
        #expect(valid.allSatisfy(MediaType.isJSON))
        #expect(!["", "json", "text/json", "application/jsonp", "application/+json", "application/x+json; charset=latin1", "application/a b+json"]
            .contains(where: MediaType.isJSON))
    }

    @Test func calendarDates() {
        var fuzz = Fuzz("PostgresDate(iso8601:)")
        for _ in 0..<Self.inputs {
            let text = fuzz.input { fuzz in PostgresDate(daysSince2000: Int32(fuzz.int(-730_485...2_921_939))).description }  // 0000 to 9999
            if let date = PostgresDate(iso8601: text) {
                #expect(date.description == text, "\(fuzz.label(text)) reads as \(date)")
            }
        }
    }

    @Test func acceptHeadersAndRequestIDs() {
        var fuzz = Fuzz("Accept, Request-Id")
        let valid = ["application/json", "text/csv;q=0.5, application/json", "text/plain, application/json;q=0.9", "*/*"]
        for _ in 0..<Self.inputs {
            let text = fuzz.input { $0.pick(valid) }
            _ = AuditController.prefersJSON(text)
            _ = RequestMiddleware.isAcceptable(text)
            _ = ReportController.wantsCSV(Self.request("/v1/reports/deals", HTTPFields([HTTPField(name: .accept, value: text)])))
        }
    }

    /// 100,000 requests to `/v1/x` with random and adversarial query parameters (and `If-Match`).
    static func requests(_ fuzz: inout Fuzz) -> [(input: String, request: Request)] {
        let names = ["limit", "cursor", "status", "from", "to", "at", "q", "x", "sub_park_id", "field", "group_by", "drill", ""]
        let valid = ["50", "2026-01-31", "2026-01-31T12:00:00.5%2B08:00", "open", UUID().uuidString, "%E7%A7%91", "a+b", "\"v1\"", "*",
                     "integrated_circuits", "sub_park,field", "field:biomedicine,year:2026", "kind:%CC%81,month:"]
        return (0..<inputs).map { _ in
            let query = (0..<fuzz.int(1...2)).map { _ in fuzz.pick(names) + "=" + fuzz.input { $0.pick(valid) } }.joined(separator: "&")
            let ifMatch = fuzz.input { $0.pick(valid) }
            return (query + " If-Match: " + ifMatch, request("/v1/x?" + query, HTTPFields([HTTPField(name: .ifMatch, value: ifMatch)])))
        }
    }

    @Test func pagesUUIDsAndEnums() {
        var fuzz = Fuzz("limit, cursor, UUID and enum parameters")
        for (input, request) in Self.requests(&fuzz) {
            Self.expectValueOr4xx(fuzz, input) { try request.page() }
            Self.expectValueOr4xx(fuzz, input) { try request.uuidQuery("sub_park_id") }
            Self.expectValueOr4xx(fuzz, input) { try request.enumQuery(DemandStatus.self, "status") }
        }
    }

    @Test("field codes and the reports' group_by and drill keys: a value or a 422 naming the parameter")
    func codesAndReportKeys() {
        var fuzz = Fuzz("field, group_by and drill parameters")
        for (input, request) in Self.requests(&fuzz) {
            Self.expectValueOr4xx(fuzz, input) { try request.codeQuery("field") }
            Self.expectValueOr4xx(fuzz, input) { try ReportController.dimensions(request, from: ReportDimension.deal) }
            Self.expectValueOr4xx(fuzz, input) { try ReportController.drill(request, from: ReportDimension.transfer) }
        }
    }

    @Test func datesAndTimes() {
        var fuzz = Fuzz("date and time parameters")
        for (input, request) in Self.requests(&fuzz) {
            Self.expectValueOr4xx(fuzz, input) { try request.period(maxDays: 3_660) }
            Self.expectValueOr4xx(fuzz, input) { try request.timeQuery("at") }
        }
    }

    @Test func searchTextAndIfMatch() {
        var fuzz = Fuzz("q and If-Match")
        for (input, request) in Self.requests(&fuzz) {
            Self.expectValueOr4xx(fuzz, input) { try request.searchText() }
            Self.expectValueOr4xx(fuzz, input) { try request.requireIfMatch("\"v1\"") }
        }
    }

    @Test func bodies() async {
        var fuzz = Fuzz("request bodies")
        let valid = [
            #"{"name":"Lab","kind":"institute","country":"CN","sub_park_id":null}"#,
            #"{"name":"研究所","kind":"enterprise","country":"CN","id":"0b9e6a3c-0000-4000-8000-000000000001"}"#,
            #"{"name":"A\u0041\n","kind":"broker","country":"CN","sub_park_id":"0b9e6a3c-0000-4000-8000-000000000002"}"#,
        ]
        for _ in 0..<Self.inputs {
            let body = fuzz.input { $0.pick(valid) }
            var request = Self.request("/v1/organizations", [.contentType: "application/json"], method: .post, body: body)
            do {
                _ = try await request.decode(OrganizationController.CreateOrganization.self, maxBytes: 1 << 20)
            } catch {
                Self.expect4xx(error, fuzz, body)
            }
        }
    }

    @Test("the 405 table answers for exactly the paths and methods the router does not")
    func routeMethodsAgreeWithTheRouter() async throws {
        // Building the router connects to nothing: the pool opens connections when asked for one.
        var configuration = PostgresConfiguration(conninfo: "host=/nonexistent")
        configuration.maxConnections = 1
        let routes = buildRouter(configuration: ServerConfiguration(), pool: PostgresPool(configuration: configuration, logger: TestDatabase.logger)).routes
        let stub = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
        for route in routes { stub.on(route.path, method: route.method) { _, _ in HTTPResponse.Status.ok } }
        let table = RouteMethods(routes)
        let responder = stub.buildResponder()
        let context = AppRequestContext(source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: TestDatabase.logger))
        let literals = Set(routes.flatMap { $0.path.map(\.description) }.filter { !$0.hasPrefix("{") })
        var fuzz = Fuzz("routes")
        for _ in 0..<Self.inputs {
            var segments = fuzz.pick(routes).path.map { element -> String in
                guard element.description.hasPrefix("{") else { return element.description }
                return fuzz.chance(3) ? fuzz.pick(Array(literals)) : fuzz.chance(2) ? UUID().uuidString : fuzz.mutate("1")
            }
            if fuzz.chance(5) { segments = Array(segments.prefix(fuzz.int(0...segments.count))) }
            if fuzz.chance(5) { segments.insert(fuzz.pick(Array(literals)), at: fuzz.int(0...segments.count)) }
            let path = "/" + segments.joined(separator: "/")
            let method = fuzz.pick([HTTPRequest.Method.get, .head, .post, .put, .patch, .delete, .options, .trace])
            let request = Self.request(path, method: method)
            let routed = (try? await responder.respond(to: request, context: context).status) == .ok
            let allowed = table.allowed(at: request.uri.path) ?? []
            #expect(routed == allowed.contains(method), "\(fuzz.label(path)) \(method): router \(routed), table \(allowed)")
        }
    }
}
