import Foundation
import HTTPTypes
import Testing

/// What the edge of the API answers to any request, as the OpenAPI document states it.
@Suite("OpenAPI document: answers at the edge")
struct EdgeOpenAPITests {
    @Test func everyV1OperationDocuments422ForNULInAQueryParameter() throws {
        let document = try OpenAPITests.document()
        for (name, operation) in try OpenAPITests.operations(document) where name.contains(" /v1/") {
            let responses = try #require(operation["responses"] as? [String: Any])
            #expect(responses["422"] != nil, "\(name) must document 422: QueryNULMiddleware refuses U+0000 in any query parameter")
        }
        let description = try #require((document["info"] as? [String: Any])?["description"] as? String)
        #expect(description.contains("U+0000 anywhere in a query parameter"))
    }

    @Test func everyOperationTakingABodyDocuments415() throws {
        let document = try OpenAPITests.document()
        var bodies = 0
        for (name, operation) in try OpenAPITests.operations(document) where operation["requestBody"] != nil {
            bodies += 1
            let responses = try #require(operation["responses"] as? [String: Any])
            #expect((responses["415"] as? [String: Any])?["$ref"] as? String == "#/components/responses/UnsupportedMediaType",
                    "\(name) takes a body, so it must document 415 (Request.requireJSONBody)")
        }
        #expect(bodies >= 20)
        let description = try #require((document["info"] as? [String: Any])?["description"] as? String)
        #expect(description.contains("415 `unsupported_media_type`"))
    }

    @Test("each documented path answers an undeclared method with 405 and exactly its documented methods in Allow")
    func allowListsTheDocumentedMethods() async throws {
        let document = try OpenAPITests.document()
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let documented = paths.mapValues { item in
            let methods = Set(item.keys.filter(OpenAPITests.httpMethods.contains).map { $0.uppercased() })
            return methods.contains("GET") ? methods.union(["HEAD"]) : methods
        }
        try await withAPI { api in
            for (path, methods) in documented {
                let uri = path.replacingOccurrences(of: "{number}", with: "1").replacingOccurrences(of: "{seq}", with: "0")
                    .replacingOccurrences(of: #"\{[a-z_]+\}"#, with: newID(), options: .regularExpression)
                let response = try await api.call(.trace, uri, key: nil)
                #expect(response.status == .methodNotAllowed, "\(response)")
                let allow = Set((response.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                #expect(allow == methods, "\(path): Allow \(allow.sorted()), documented \(methods.sorted())")
            }
        }
        let description = try #require((document["info"] as? [String: Any])?["description"] as? String)
        #expect(description.contains("405 `method_not_allowed` with `Allow`") && description.contains("`HEAD` is answered wherever `GET` is"))
    }
}
