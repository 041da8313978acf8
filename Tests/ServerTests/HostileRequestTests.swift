import Foundation
import HTTPTypes
import NIOCore
import Testing

/// A tenant with an ordinary API key sends what no client should: none of it may stop the server
/// or get a 5xx; each is a 4xx problem naming what is wrong.
@Suite("API: a hostile tenant")
struct HostileRequestTests {
    /// A cursor as the API would make it, around a forged position.
    static func forgedCursor(_ position: String) -> String {
        Data(position.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static let sevenDigits = "2026-01-01T00:00:00.1234567Z"

    @Test("a time with seven fractional digits cannot stop the server")
    func sevenFractionalDigits() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let account = try await api.createAccount(for: tenant)
            let forged = Self.forgedCursor("\(Self.sevenDigits)|\(newID())")
            let requests: [(String, String, String)] = [
                ("/v1/audit/events?from=\(Self.sevenDigits)", "from", tenant.key),
                ("/v1/audit/events?to=2026-01-01T00:00:00.123456789%2B08:00", "to", tenant.key),
                ("/v1/deals?cursor=\(forged)", "cursor", tenant.key),
                ("/v1/matches?cursor=\(forged)", "cursor", tenant.key),
                ("/v1/organizations/\(tenant.id)/api-keys?cursor=\(forged)", "cursor", operatorKey),
            ]
            for (uri, field, key) in requests {
                let response = try await api.call(.get, uri, key: key)
                expectInvalid(response, field)
                #expect(response.json["errors"][0]["message"].string?.contains("at most six fractional digits") == true, "\(response)")
            }
            // The ledger's own parameter is refused too (its message is the ledger controller's).
            expectInvalid(try await api.call(.get, "/v1/accounts/\(account)/balance?at=\(Self.sevenDigits)", key: tenant.key), "at")
            #expect(try await api.call(.get, "/healthz", key: nil).status == .ok, "the server still answers")
        }
    }

    @Test("a forged cursor with an impossible time or id cannot trap the server: it is a 422")
    func forgedCursors() async throws {
        try await withAPI { api in
            let tenant = try await api.createOrganization("Tenant Lab", kind: "institute")
            let positions = ["2026-02-30T00:00:00Z|\(newID())", "2026-01-01T24:00:00Z|\(newID())", "٢٠٢٦-01-01T00:00:00Z|\(newID())",
                             "2026-01-01T00:00:00Z|not-a-uuid", "2026-01-01T00:00:00Z", "|", "", "2026-01-01T00:00:00Z||\(newID())",
                             "99999-01-01T00:00:00Z|\(newID())", "2026-01-01T00:00:00Z|\(newID())|extra"]
            for position in positions {
                for path in ["/v1/deals", "/v1/matches"] {
                    expectInvalid(try await api.call(.get, "\(path)?cursor=\(Self.forgedCursor(position))", key: tenant.key), "cursor")
                }
            }
            #expect(try await api.call(.get, "/v1/deals?cursor=\(Self.forgedCursor("2026-01-01T00:00:00Z|\(newID())"))", key: tenant.key).status == .ok)
        }
    }
}
