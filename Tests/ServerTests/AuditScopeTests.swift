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

    @Test("a party with more objects than the old 20,000-subject cap still sees its newest events, and no one else's")
    func visibilityIsExactAtAnySize() async throws {
        try await withAPI { api in
            let party = try await api.createOrganization("Big Buyer", kind: "enterprise")
            let other = try await api.createOrganization("Other Buyer", kind: "enterprise")
            // 25,000 demands of the party, written straight to the table (they journal nothing).
            let partyID = try #require(UUID(uuidString: party.id))
            try await api.pool.withConnection { connection in
                _ = try await connection.query(
                    """
                    INSERT INTO techbank.demands (id, owner_id, posted_by, title, description, field, keywords, trl_min, region, deadline, search_text)
                    SELECT gen_random_uuid(), $1, $1, 'bulk ' || n, '', 'biomedicine', '{}', 1, 'CN', current_date + 30, 'bulk ' || n
                      FROM generate_series(1, 25000) AS n
                    """, [partyID])
            }
            let newest = try await api.postDemandID(as: party)
            let others = try await api.postDemandID(as: other)

            let seen = try await AuditAPITests.events(api, key: party.key)
            let subjects = Set(AuditAPITests.subjects(seen).compactMap { $0 })
            #expect(subjects.contains(newest), "the party's newest demand, past 20,000 objects, is in its view")
            #expect(subjects == [party.id, party.keyID, newest], "exactly the party's own events: \(subjects.sorted())")
            let filtered = try await AuditAPITests.events(api, [("subject_id", newest)], key: party.key)
            let event = try #require(filtered.last?["seq"].int)
            #expect(try await api.call(.get, "/v1/audit/events/\(event)", key: party.key).status == .ok)
            let foreign = try #require(try await AuditAPITests.events(api, [("subject_id", others)]).last?["seq"].int)
            expectProblem(try await api.call(.get, "/v1/audit/events/\(foreign)", key: party.key), .notFound, "not_found")
            #expect(try await AuditAPITests.events(api, [("subject_id", others)], key: party.key).isEmpty)
        }
    }

    @Test("every filter means for a party what it means for the committee, cut to the party's own subjects")
    func filtersAgreeWithTheCommitteesView() async throws {
        try await withAPI { api in
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let lab = try await api.createOrganization("Lab A", kind: "institute")
            let rival = try await api.createOrganization("Lab B", kind: "institute")
            // Money enters through deposits (accounts never go below zero): the lab's deposit and
            // operating account are its subjects too.
            var deposits: [String] = []
            for org in [lab, rival] {
                let deposit = try await api.deposit(org, 100)
                try #require(deposit.status == .created, "\(deposit)")
                deposits.append(try #require(deposit.json["id"].string))
                deposits.append(try #require(deposit.json["credit_account_id"].string))
            }
            let labAccounts = [deposits[1], try await api.createAccount(for: lab)]
            let rivalAccount = deposits[3]
            let ownTransfer = newID()
            try #require(try await api.transfer(labAccounts[0], labAccounts[1], 5, key: lab.key, id: ownTransfer).status == .created)
            let sharedTransfer = newID()
            try #require(try await api.transfer(rivalAccount, labAccounts[0], 7, key: rival.key, id: sharedTransfer).status == .created)
            let technology = try await api.registerTechnologyID(as: lab)
            let rivalTechnology = try await api.registerTechnologyID(as: rival)
            let labSubjects: Set<String> = Set([lab.id, lab.keyID, technology, ownTransfer, sharedTransfer, deposits[0]] + labAccounts)

            let everything = try await AuditAPITests.events(api, key: committee.key)
            let middle = try #require(everything[everything.count / 2]["created_at"].string)
            let types = Set(everything.compactMap { $0["type"].string })
            var filters: [[(String, String)]] = [[], [("from", middle)], [("to", middle)], [("from", middle), ("to", "2100-01-01T00:00:00Z")]]
            for subject in [lab.id, technology, sharedTransfer, rivalAccount, rivalTechnology, labAccounts[1]] { filters.append([("subject_id", subject)]) }
            for actor in [lab.id, rival.id, committee.id] { filters.append([("actor_id", actor)]) }
            for type in types { filters.append([("type", type)]) }
            filters.append([("actor_id", rival.id), ("type", "transfer_created"), ("from", middle)])
            for filter in filters {
                let committeeView = try await AuditAPITests.events(api, filter, key: committee.key)
                    .filter { labSubjects.contains($0["subject_id"].string ?? "") }
                for limit in [1, 3, 200] {
                    let labView = try await AuditAPITests.events(api, filter, key: lab.key, limit: limit)
                    #expect(AuditAPITests.seqs(labView) == AuditAPITests.seqs(committeeView), "\(filter), pages of \(limit)")
                }
            }
        }
    }
}
