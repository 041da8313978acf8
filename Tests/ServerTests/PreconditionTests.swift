import Foundation
import HTTPTypes
import Testing

@Suite("API: ETag and If-Match")
struct PreconditionTests {
    @Test func renamingAnOrganizationRequiresTheCurrentETag() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let read = try await api.call(.get, "/v1/organizations/\(org.id)")
            let etag = try #require(read.headers[.eTag], "GET returns no ETag: \(read)")
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\""), "an ETag is a quoted string: \(etag)")

            let unconditional = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 2"])
            expectProblem(unconditional, .preconditionRequired, "precondition_required")

            let renamed = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 2"], headers: [.ifMatch: etag])
            #expect(renamed.status == .ok && renamed.json["name"].string == "Acme 2", "\(renamed)")
            let newETag = try #require(renamed.headers[.eTag], "PATCH returns no ETag: \(renamed)")
            #expect(newETag != etag)

            // The old ETag is stale now: 412, and nothing changes.
            let stale = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 3"], headers: [.ifMatch: etag])
            expectProblem(stale, .preconditionFailed, "precondition_failed")
            for other in ["\"v999\"", "W/\(newETag)", "\"v999\", W/\(newETag)"] {
                let response = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 3"], headers: HTTPFields([HTTPField(name: .ifMatch, value: other)]))
                #expect(response.status == .preconditionFailed, "If-Match \(other): \(response)")
            }
            // Not `*` nor entity-tags (the document's If-Match pattern): 400 naming the header.
            for malformed in ["v2", "", "\"v2", "\"v1\",", "\"v1\" \"v2\"", "\"v 1\"", "**"] {
                let response = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 3"], headers: HTTPFields([HTTPField(name: .ifMatch, value: malformed)]))
                expectProblem(response, .badRequest, "invalid_request", fields: ["If-Match"])
            }

            let after = try await api.call(.get, "/v1/organizations/\(org.id)")
            #expect(after.json["name"].string == "Acme 2" && after.headers[.eTag] == newETag, "\(after)")

            // The new ETag works once more; a body that fails validation leaves the version alone.
            let invalid = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": ""], headers: [.ifMatch: newETag])
            expectProblem(invalid, .unprocessableContent, "validation_failed", fields: ["name"])
            let again = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "  Acme 4  "], headers: [.ifMatch: newETag])
            #expect(again.status == .ok && again.json["name"].string == "Acme 4" && again.headers[.eTag] != newETag, "\(again)")

            // The body is checked before the precondition (RFC 9110 §13.2.1): invalid and stale is 422.
            let invalidAndStale = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": true], headers: [.ifMatch: etag])
            expectProblem(invalidAndStale, .unprocessableContent, "validation_failed", fields: ["name"])
            // A list naming the current tag among others matches.
            let listed = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 5"],
                                            headers: HTTPFields([HTTPField(name: .ifMatch, value: "\"v999\",\t\(try #require(again.headers[.eTag]))")]))
            #expect(listed.status == .ok && listed.json["name"].string == "Acme 5", "\(listed)")

            // A missing organization is a 404 whatever the If-Match.
            expectProblem(try await api.call(.patch, "/v1/organizations/\(newID())", json: ["name": "X"], headers: [.ifMatch: etag]), .notFound, "not_found")
        }
    }
}
