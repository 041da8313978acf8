import Foundation
import HTTPTypes
import Testing

@Suite("API: authentication and API keys")
struct AuthTests {
    @Test func requestsWithoutAValidKeyAre401() async throws {
        try await withAPI { api in
            let transfer = API.transferBody(newID(), newID(), 100)
            let attempts: [APIResponse] = [
                try await api.call(.get, "/v1/organizations", key: nil),
                try await api.call(.get, "/v1/organizations", key: "tbk_not_a_key_of_this_bank_000000000"),
                try await api.call(.get, "/v1/organizations", key: "sk_live_something_else_entirely"),
                try await api.call(.get, "/v1/organizations", key: ""),
                try await api.call(.get, "/v1/organizations", key: nil, headers: [.authorization: "Basic \(operatorKey)"]),
                try await api.call(.get, "/v1/organizations", key: nil, headers: [.authorization: operatorKey]),
                try await api.call(.post, "/v1/transfers", key: nil, json: transfer),
                try await api.call(.post, "/v1/organizations", key: "tbk_wrong_wrong_wrong_wrong_wrong", json: ["name": "X", "kind": "broker", "country": "CN"]),
            ]
            for response in attempts {
                expectProblem(response, .unauthorized, "unauthorized")
                #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(response)")
            }
            // Nothing was created by the refused requests.
            let listing = try await api.call(.get, "/v1/organizations")
            #expect(listing.json["data"].array.count == 1, "\(listing)")  // the operator only
        }
    }

    @Test("a key revoked behind this server's back (by another server) is refused within a second; keys are remembered, not their absence")
    func aKeyRevokedElsewhereIsRefusedWithinASecond() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            #expect(try await api.call(.get, "/v1/organizations/\(org.id)", key: org.key).status == .ok)
            try await api.pool.withConnection { connection in
                try await connection.query("UPDATE techbank.api_keys SET revoked_at = now() WHERE id = $1", [UUID(uuidString: org.keyID)!])
            }
            try await Task.sleep(for: .milliseconds(1_100))
            expectProblem(try await api.call(.get, "/v1/organizations/\(org.id)", key: org.key), .unauthorized, "unauthorized")

            // A key issued elsewhere after this server was refused it once works at once.
            let unknown = "tbk_" + String(repeating: "a", count: 40)
            expectProblem(try await api.call(.get, "/v1/organizations/\(org.id)", key: unknown), .unauthorized, "unauthorized")
            try await api.pool.withConnection { connection in
                try await connection.query(
                    "INSERT INTO techbank.api_keys (id, organization_id, key_hash) VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))",
                    [UUID(), UUID(uuidString: org.id)!, unknown])
            }
            #expect(try await api.call(.get, "/v1/organizations/\(org.id)", key: unknown).status == .ok)
        }
    }

    @Test("GET /v1/me names the key's organization and the key, and nothing without a key")
    func meNamesTheCaller() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "broker")
            let me = try await api.call(.get, "/v1/me", key: org.key)
            #expect(me.status == .ok, "\(me)")
            #expect(me.json["organization"]["id"] == .string(org.id) && me.json["organization"]["kind"] == .string("broker"))
            #expect(me.json["organization"]["name"] == .string("Acme") && me.json["key_id"] == .string(org.keyID))
            expectProblem(try await api.call(.get, "/v1/me", key: nil), .unauthorized, "unauthorized")
        }
    }

    @Test func aRevokedKeyIs401AndOtherKeysKeepWorking() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let second = try await api.call(.post, "/v1/organizations/\(org.id)/api-keys", json: ["label": "second"])
            #expect(second.status == .created, "\(second)")
            let secondKey = try #require(second.json["key"].string)
            #expect(secondKey.hasPrefix("tbk_"))

            #expect(try await api.call(.get, "/v1/organizations/\(org.id)", key: org.key).status == .ok)
            let revoke = try await api.call(.delete, "/v1/organizations/\(org.id)/api-keys/\(org.keyID)")
            #expect(revoke.status == .noContent, "\(revoke)")

            let refused = try await api.call(.get, "/v1/organizations/\(org.id)", key: org.key)
            expectProblem(refused, .unauthorized, "unauthorized")
            let refusedWrite = try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "CNY"])
            expectProblem(refusedWrite, .unauthorized, "unauthorized")
            #expect(try await api.call(.get, "/v1/organizations/\(org.id)", key: secondKey).status == .ok)

            // Revoking an unknown key id is a 404.
            expectProblem(try await api.call(.delete, "/v1/organizations/\(org.id)/api-keys/\(newID())"), .notFound, "not_found")
        }
    }

    @Test func keysAreListedWithoutSecrets() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let second = try await api.call(.post, "/v1/organizations/\(org.id)/api-keys", json: [:])
            #expect(second.status == .created, "\(second)")
            let secondKey = try #require(second.json["key"].string)
            let secondID = try #require(second.json["id"].string)
            #expect(try await api.call(.delete, "/v1/organizations/\(org.id)/api-keys/\(org.keyID)").status == .noContent)

            let listing = try await api.call(.get, "/v1/organizations/\(org.id)/api-keys")
            #expect(listing.status == .ok, "\(listing)")
            let keys = listing.json["data"].array
            #expect(Set(keys.compactMap { $0["id"].string }) == [org.keyID, secondID])
            for key in keys {
                #expect(key["key"] == .missing || key["key"] == .null, "a listed key shows its secret: \(key)")
                #expect(key["organization_id"].string == org.id)
                #expect(key["created_at"].string != nil)
            }
            #expect(keys.first { $0["id"].string == org.keyID }?["revoked_at"].string != nil)
            #expect(keys.first { $0["id"].string == secondID }?["revoked_at"] == .missing)  // absent while active
            #expect(!listing.text.contains(org.key) && !listing.text.contains(secondKey) && !listing.text.contains("tbk_"))
        }
    }

    @Test func onlyTheOperatorCreatesOrganizationsAndKeys() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Park", kind: "sub_park")
            let member = try await api.createOrganization("Lab", kind: "institute", subParkID: park.id)
            let committee = try await api.createOrganization("Committee", kind: "committee")
            for caller in [member, park, committee] {
                let create = try await api.call(.post, "/v1/organizations", key: caller.key, json: ["name": "Rogue", "kind": "broker", "country": "CN"])
                expectProblem(create, .forbidden, "forbidden")
                for target in [caller.id, member.id] {  // its own organization, and one it can see
                    expectProblem(try await api.call(.post, "/v1/organizations/\(target)/api-keys", key: caller.key, json: ["label": "mine"]), .forbidden, "forbidden")
                    expectProblem(try await api.call(.get, "/v1/organizations/\(target)/api-keys", key: caller.key), .forbidden, "forbidden")
                    expectProblem(try await api.call(.delete, "/v1/organizations/\(target)/api-keys/\(member.keyID)", key: caller.key), .forbidden, "forbidden")
                }
            }
            // The refused calls changed nothing: no rogue organization, the member's key still works.
            let listing = try await api.call(.get, "/v1/organizations?kind=broker")
            #expect(listing.json["data"].array.isEmpty, "\(listing)")
            #expect(try await api.call(.get, "/v1/organizations/\(member.id)", key: member.key).status == .ok)
            let keys = try await api.call(.get, "/v1/organizations/\(member.id)/api-keys")
            #expect(keys.json["data"].array.count == 1, "\(keys)")
        }
    }
}
