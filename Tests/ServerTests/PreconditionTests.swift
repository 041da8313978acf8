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
            for bogus in ["\"v999\"", "W/\(newETag)", "v2", ""] where bogus != newETag {
                let response = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "Acme 3"], headers: HTTPFields([HTTPField(name: .ifMatch, value: bogus)]))
                #expect(response.status == .preconditionFailed, "If-Match \(bogus): \(response)")
            }

            let after = try await api.call(.get, "/v1/organizations/\(org.id)")
            #expect(after.json["name"].string == "Acme 2" && after.headers[.eTag] == newETag, "\(after)")

            // The new ETag works once more; a body that fails validation leaves the version alone.
            let invalid = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": ""], headers: [.ifMatch: newETag])
            expectProblem(invalid, .unprocessableContent, "validation_failed", fields: ["name"])
            let again = try await api.call(.patch, "/v1/organizations/\(org.id)", json: ["name": "  Acme 4  "], headers: [.ifMatch: newETag])
            #expect(again.status == .ok && again.json["name"].string == "Acme 4" && again.headers[.eTag] != newETag, "\(again)")

            // A missing organization is a 404 whatever the If-Match.
            expectProblem(try await api.call(.patch, "/v1/organizations/\(newID())", json: ["name": "X"], headers: [.ifMatch: etag]), .notFound, "not_found")
        }
    }
}
