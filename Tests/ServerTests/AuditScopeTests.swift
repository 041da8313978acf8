import Foundation
import HTTPTypes
import Testing

@Suite("Audit: whose events an organization sees")
struct AuditScopeTests {
    /// The subjects of every event `key` may list.
    static func subjects(_ api: API, key: String) async throws -> Set<String> {
        var subjects: Set<String> = []
        var cursor: String?
        for _ in 0..<50 {
            let response = try await api.call(.get, "/v1/audit/events?limit=200" + (cursor.map { "&cursor=\($0)" } ?? ""), key: key)
            try #require(response.status == .ok, "\(response)")
            subjects.formUnion(response.json["data"].array.compactMap { $0["subject_id"].string })
            guard let next = response.json["next_cursor"].string else { return subjects }
            cursor = next
        }
        Issue.record("paging did not end")
        return subjects
    }

    @Test func anOrganizationSeesItsKeysAccountsAndTransfersAndASubParkItsMembers() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zizhu Hi-Tech Park", kind: "sub_park")
            let member = try await api.createOrganization("Zizhu Lab", kind: "institute", subParkID: park.id)
            let outsider = try await api.createOrganization("Outside Lab", kind: "institute")
            let technology = try await api.registerTechnologyID(as: member)
            // The member opens two accounts and pays from one to the other.
            var accounts: [String] = []
            for _ in 0..<2 {
                let account = try await api.call(.post, "/v1/accounts", key: member.key, json: ["owner_id": member.id, "currency": "CNY"])
                try #require(account.status == .created, "\(account)")
                accounts.append(try #require(account.json["id"].string))
            }
            let deposit = try await api.call(.post, "/v1/deposits", json: [
                "organization_id": member.id, "amount": 1_000, "currency": "CNY", "external_ref": "SCOPE-1",
            ])
            try #require(deposit.status == .created, "\(deposit)")
            // The deposit reaches the member's operating account; the member moves it into its first.
            let operating = try #require(deposit.json["credit_account_id"].string)
            let funded = try await api.transfer(operating, accounts[0], 1_000, key: member.key)
            try #require(funded.status == .created, "\(funded)")
            let transferID = newID()
            let transfer = try await api.call(.post, "/v1/transfers", key: member.key, json: [
                "id": transferID, "debit_account_id": accounts[1], "credit_account_id": accounts[0], "amount": 0, "currency": "CNY",
            ])
            #expect(transfer.status.code >= 400, "a zero transfer is refused: \(transfer)")
            let hold = try await api.call(.post, "/v1/transfers", key: member.key, json: [
                "id": transferID, "debit_account_id": accounts[0], "credit_account_id": accounts[1], "amount": 10, "currency": "CNY",
            ])
            try #require(hold.status == .created, "\(hold)")

            let mine = try await Self.subjects(api, key: member.key)
            for subject in [member.id, member.keyID, technology, accounts[0], accounts[1], transferID] {
                #expect(mine.contains(subject), "the member must see events about \(subject)")
            }
            let parks = try await Self.subjects(api, key: park.key)
            #expect(mine.isSubset(of: parks), "the sub-park sees its member's events")
            let outside = try await Self.subjects(api, key: outsider.key)
            #expect(outside.isDisjoint(with: mine), "an outsider sees none of them")
            let event = try await api.call(.get, "/v1/audit/events?subject_id=\(technology)", key: member.key)
            let seq = try #require(event.json["data"][0]["seq"].int)
            #expect(try await api.call(.get, "/v1/audit/events/\(seq)", key: outsider.key).status == .notFound)
            #expect(try await api.call(.get, "/v1/audit/events/\(seq)", key: park.key).status == .ok)
        }
    }

    @Test func theCheckpointIsJSONOnlyWhenPreferred() async throws {
        try await withAPI { api in
            for (accept, json) in [("application/json", true), ("APPLICATION/JSON", true), ("text/plain, application/json;q=0.5", false),
                                   ("application/json;q=0", false), ("application/json;q=0.9, text/plain;q=0.1", true), ("*/*", false)] {
                var headers = HTTPFields()
                headers[.accept] = accept
                let response = try await api.call(.get, "/v1/audit/checkpoint", headers: headers)
                #expect(response.status == .ok)
                #expect(response.contentType?.hasPrefix(json ? "application/json" : "text/plain") == true, "Accept: \(accept) → \(response.contentType ?? "")")
            }
        }
    }

    @Test func anEventTypeWithNULIsAValidationError() async throws {
        try await withAPI { api in
            expectProblem(try await api.call(.get, "/v1/audit/events?type=%00"), .unprocessableContent, "validation_failed", fields: ["type"])
        }
    }
}
