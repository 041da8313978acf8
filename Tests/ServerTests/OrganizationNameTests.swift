import Foundation
import HTTPTypes
import Testing

@Suite("API: organization names")
struct OrganizationNameTests {
    /// Limits count code points, as PostgreSQL's CHECK does: 200 flags are 200 characters to Swift
    /// but 400 to the database, so they are refused with 422, not passed on to fail as a 500.
    @Test func namesAreLimitedInCodePoints() async throws {
        try await withAPI { api in
            let flags = String(repeating: "🇨🇳", count: 200)
            expectProblem(try await api.call(.post, "/v1/organizations", json: ["name": flags, "kind": "broker", "country": "CN"]),
                          .unprocessableContent, "validation_failed", fields: ["name"])
            let fits = String(repeating: "🇨🇳", count: 100)
            let created = try await api.call(.post, "/v1/organizations", json: ["name": fits, "kind": "broker", "country": "CN"])
            #expect(created.status == .created && created.json["name"].string == fits, "\(created)")
            let id = try #require(created.json["id"].string)
            expectProblem(try await api.call(.patch, "/v1/organizations/\(id)", json: ["name": flags], headers: [.ifMatch: "\"v1\""]),
                          .unprocessableContent, "validation_failed", fields: ["name"])
            let labelled = try await api.call(.post, "/v1/organizations/\(id)/api-keys", json: ["label": String(repeating: "🇨🇳", count: 101)])
            expectProblem(labelled, .unprocessableContent, "validation_failed", fields: ["label"])
        }
    }
}
