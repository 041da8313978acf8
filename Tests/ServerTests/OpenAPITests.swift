import Foundation
import Hummingbird
import HummingbirdTesting
import Postgres
import Server
import Testing
import TechBankTestSupport
import TestSupport

/// The OpenAPI document (`Sources/Server/openapi.json`) against the router and the standard validator.
@Suite("OpenAPI document")
struct OpenAPITests {
    /// The document as committed.
    static let documentURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/Server/openapi.json")

    static let httpMethods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    static func document() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: documentURL))
        return try #require(object as? [String: Any], "openapi.json is not a JSON object")
    }

    /// Every operation of the document as `"METHOD /path"`, with its operation object.
    static func operations(_ document: [String: Any]) throws -> [String: [String: Any]] {
        let paths = try #require(document["paths"] as? [String: Any], "openapi.json has no paths")
        var operations: [String: [String: Any]] = [:]
        for (path, item) in paths {
            let item = try #require(item as? [String: Any], "paths.\(path) is not an object")
            for (method, operation) in item where httpMethods.contains(method) {
                operations["\(method.uppercased()) \(path)"] = try #require(operation as? [String: Any])
            }
        }
        return operations
    }

    /// A router path in OpenAPI form: `:name` captures become `{name}`.
    static func normalize(_ path: String) -> String {
        "/" + path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationIsRouted() async throws {
        let documented = Set(try Self.operations(Self.document()).keys)
        let routed = try await TestDatabase.withPool(template: .techbank) { pool throws in
            let router = buildRouter(configuration: ServerConfiguration(), pool: pool)
            return Set(router.routes.map { "\($0.method.rawValue) \(Self.normalize($0.path.description))" })
        }
        #expect(routed.contains("GET /v1/organizations/{id}/api-keys"), "routes render as: \(routed.sorted())")
        #expect(routed.count >= 18, "routes: \(routed.sorted())")
        let undocumented = routed.subtracting(documented).sorted()
        let unrouted = documented.subtracting(routed).sorted()
        #expect(undocumented.isEmpty, "routed but not in openapi.json: \(undocumented)")
        #expect(unrouted.isEmpty, "in openapi.json but not routed: \(unrouted)")
    }

    @Test func operationsHaveIdsSecurityAndProblemResponses() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
        var operationIDs: [String] = []
        for (name, operation) in try Self.operations(document) {
            let operationID = try #require(operation["operationId"] as? String, "\(name) has no operationId")
            operationIDs.append(operationID)
            #expect(operation["summary"] is String, "\(name) has no summary")
            let security = try #require(operation["security"] as? [[String: Any]], "\(name) has no security")
            let responses = try #require(operation["responses"] as? [String: Any], "\(name) has no responses")
            if name.contains(" /v1/") {
                #expect(security.count == 1 && security.first?["bearerAuth"] != nil, "\(name) must require bearerAuth")
                #expect(responses["401"] != nil, "\(name) must document 401")
            } else {
                #expect(security.isEmpty, "\(name) must have security: []")
            }
        }
        #expect(Set(operationIDs).count == operationIDs.count, "operationIds are not unique: \(operationIDs.sorted())")
    }

    @Test func theServerServesTheDocument() async throws {
        let expected = try Data(contentsOf: Self.documentURL)
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let app = buildApplication(configuration: ServerConfiguration(), pool: pool, logger: TestDatabase.logger)
            try await app.test(.router) { client in
                try await client.execute(uri: "/openapi.json", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "application/json")
                    #expect(Data(buffer: response.body) == expected, "GET /openapi.json differs from Sources/Server/openapi.json")
                }
            }
        }
    }

    /// Runs `python3 -m openapi_spec_validator`; a missing python or module fails the test.
    @Test func theDocumentPassesTheStandardValidator() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("openapi.json")
        try Data(contentsOf: Self.documentURL).write(to: file)

        let run = try runPython(["-m", "openapi_spec_validator", file.path])
        #expect(
            run.reason == .exit && run.status == 0,
            "python3 -m openapi_spec_validator exited with \(run.status) (install it with `pip install openapi-spec-validator`):\n\(run.output)")
    }
}
