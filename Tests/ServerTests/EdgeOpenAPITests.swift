import Foundation
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
}
