import Foundation
import HTTPTypes
import Testing

@Suite("API: the ledger over HTTP")
struct LedgerAPITests {
    @Test func accountsAreOpenedOnceAndReplayedByID() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let id = newID()
            let body: [String: Any] = ["id": id, "owner_id": org.id, "currency": "CNY", "code": "project", "metadata": ["project": "p-1", "n": 3]]
            let created = try await api.call(.post, "/v1/accounts", key: org.key, json: body)
            #expect(created.status == .created, "\(created)")
            #expect(created.headers[.location] == "/v1/accounts/\(id)")
            let account = created.json
            #expect(account["id"].string == id && account["owner_id"].string == org.id && account["currency"].string == "CNY" && account["code"].string == "project")
            #expect(account["debits_posted"].int == 0 && account["credits_posted"].int == 0 && account["debits_pending"].int == 0 && account["credits_pending"].int == 0)
            // The money model: an account opened through the API never goes below zero.
            #expect(account["closed"].bool == false && account["debits_must_not_exceed_credits"].bool == true)
            #expect(account["metadata"]["project"].string == "p-1" && account["metadata"]["n"].int == 3)
            #expect(account["created_at"].string != nil)

            let replay = try await api.call(.post, "/v1/accounts", key: org.key, json: body)
            #expect(replay.status == .ok && replay.json == created.json, "\(replay)")
            #expect(try await api.call(.get, "/v1/accounts/\(id)", key: org.key).json == created.json)

            var otherCurrency = body
            otherCurrency["currency"] = "USD"
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: otherCurrency), .conflict, "exists_with_different_fields", fields: ["currency"])
            var otherCode = body
            otherCode["code"] = "fees"
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: otherCode), .conflict, "exists_with_different_fields", fields: ["code"])
            var otherMetadata = body
            otherMetadata["metadata"] = ["project": "p-2", "n": 3]
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, json: otherMetadata), .conflict, "exists_with_different_fields", fields: ["metadata"])
            // Without an id, every request opens a new account.
            let fresh = try await api.call(.post, "/v1/accounts", key: org.key, json: ["owner_id": org.id, "currency": "CNY"])
            #expect(fresh.status == .created && fresh.json["id"].string != id && fresh.json["code"].string == "operating" && fresh.json["metadata"] == .null)
            #expect(fresh.json["debits_must_not_exceed_credits"].bool == true, "\(fresh)")

            // The money model refuses what it used to accept: the bank's account codes (once
            // `escrow` was a tenant's to choose), an account that may go below zero, the opposite
            // balance rule, and ids of UUID version 8 (the bank's). Nothing is opened.
            for code in ["escrow", "settlement", "inventor"] {
                expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["id": newID(), "owner_id": org.id, "currency": "CNY", "code": code]), "code")
            }
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: [
                "id": newID(), "owner_id": org.id, "currency": "CNY", "debits_must_not_exceed_credits": false,
            ]), "debits_must_not_exceed_credits")
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: [
                "id": newID(), "owner_id": org.id, "currency": "CNY", "credits_must_not_exceed_debits": true,
            ]), "credits_must_not_exceed_debits")
            let explicit = try await api.call(.post, "/v1/accounts", key: org.key, json: [
                "id": newID(), "owner_id": org.id, "currency": "CNY", "debits_must_not_exceed_credits": true, "credits_must_not_exceed_debits": false,
            ])
            #expect(explicit.status == .created && explicit.json["debits_must_not_exceed_credits"].bool == true, "\(explicit)")
            var version8 = Array(newID())
            version8[14] = "8"
            expectInvalid(try await api.call(.post, "/v1/accounts", key: org.key, json: ["id": String(version8), "owner_id": org.id, "currency": "CNY"]), "id")
            let owned = try await api.call(.get, "/v1/organizations/\(org.id)/balances", key: org.key)
            #expect(owned.json["data"][0]["accounts"].array.count == 3, "only the three accounts accepted were opened: \(owned)")
        }
    }

    @Test func transfersAreCreatedOnceAndReplayedByID() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            let id = newID()
            var body = API.transferBody(a, b, 1_000, id: id)
            body["code"] = "invoice"
            body["metadata"] = ["invoice": "INV-7"]
            let created = try await api.call(.post, "/v1/transfers", key: org.key, json: body)
            #expect(created.status == .created, "\(created)")
            #expect(created.headers[.location] == "/v1/transfers/\(id)")
            let transfer = created.json
            #expect(transfer["id"].string == id && transfer["kind"].string == "posted" && transfer["amount"].int == 1_000 && transfer["currency"].string == "CNY")
            #expect(transfer["debit_account_id"].string == a && transfer["credit_account_id"].string == b && transfer["code"].string == "invoice")
            #expect(transfer["pending_id"] == .null && transfer["expires_at"] == .null && transfer["metadata"]["invoice"].string == "INV-7")

            let replay = try await api.call(.post, "/v1/transfers", key: org.key, json: body)
            #expect(replay.status == .ok, "\(replay)")
            #expect(replay.body == created.body, "an identical replay returns the stored transfer:\n\(created.text)\n\(replay.text)")
            let fetched = try await api.call(.get, "/v1/transfers/\(id)", key: org.key)
            #expect(fetched.status == .ok && fetched.body == created.body)

            var otherAmount = body
            otherAmount["amount"] = 999
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: otherAmount), .conflict, "exists_with_different_fields", fields: ["amount"])
            var several = otherAmount
            several["code"] = "refund"
            several["metadata"] = NSNull()
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: several), .conflict, "exists_with_different_fields",
                          fields: ["amount", "code", "metadata"])
            #expect(try await api.balances(a) == [1_000, 1_000, 0, 0])
            #expect(try await api.balances(b) == [0, 1_000, 0, 0])
        }
    }

    @Test func refusedTransfersAre422WithTheirOutcome() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let wallet = try await api.createAccount(for: org)
            let funding = try await api.createAccount(for: org, funded: 1_000)
            let shop = try await api.createAccount(for: org)
            let dollars = try await api.createAccount(for: org, currency: "USD")

            expectProblem(try await api.transfer(wallet, shop, 1, key: org.key), .unprocessableContent, "exceeds_credits")
            #expect(try await api.transfer(funding, wallet, 100, key: org.key).status == .created)
            #expect(try await api.transfer(wallet, shop, 100, key: org.key).status == .created)
            expectProblem(try await api.transfer(wallet, shop, 1, key: org.key), .unprocessableContent, "exceeds_credits")

            expectProblem(try await api.transfer(funding, dollars, 5, key: org.key), .unprocessableContent, "currency_mismatch")
            expectProblem(try await api.transfer(funding, dollars, 5, key: org.key, currency: "USD"), .unprocessableContent, "currency_mismatch")
            expectProblem(try await api.transfer(funding, funding, 5, key: org.key), .unprocessableContent, "accounts_must_be_different")
            expectProblem(try await api.transfer(funding, newID(), 5, key: org.key), .unprocessableContent, "account_not_found")
            // A hold that does not exist answers like one the caller may not see.
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": newID()]),
                          .notFound, "not_found")
            #expect(try await api.balances(wallet) == [100, 100, 0, 0])
            #expect(try await api.balances(funding) == [100, 1_000, 0, 0])
            #expect(try await api.balances(dollars) == [0, 0, 0, 0])
        }
    }

    @Test func holdsArePostedInPartOrVoided() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let buyer = try await api.createAccount(for: org, funded: 1_000)
            let seller = try await api.createAccount(for: org)

            // The money model: `escrow_fund` and `escrow_release` are the bank's codes (once a
            // tenant's to use); a tenant's hold and its posting carry codes of its own.
            let holdID = newID()
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: [
                "id": holdID, "debit_account_id": buyer, "credit_account_id": seller, "amount": 100, "currency": "CNY",
                "pending": true, "timeout_seconds": 3600, "code": "escrow_fund",
            ]), "code")
            let hold = try await api.call(.post, "/v1/transfers", key: org.key, json: [
                "id": holdID, "debit_account_id": buyer, "credit_account_id": seller, "amount": 100, "currency": "CNY",
                "pending": true, "timeout_seconds": 3600, "code": "order_hold",
            ])
            #expect(hold.status == .created, "\(hold)")
            #expect(hold.json["kind"].string == "pending" && hold.json["timeout_seconds"].int == 3600 && hold.json["expires_at"].string != nil)
            #expect(try await api.balances(buyer) == [0, 1_000, 100, 0])
            #expect(try await api.balances(seller) == [0, 0, 0, 100])

            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": holdID, "amount": 60, "code": "escrow_release"]),
                          "code")
            let post = try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": holdID, "amount": 60, "code": "order_paid"])
            #expect(post.status == .created, "\(post)")
            #expect(post.json["kind"].string == "post_pending" && post.json["amount"].int == 60 && post.json["pending_id"].string == holdID)
            #expect(post.json["debit_account_id"].string == buyer && post.json["credit_account_id"].string == seller)
            #expect(try await api.balances(buyer) == [60, 1_000, 0, 0])
            #expect(try await api.balances(seller) == [0, 60, 0, 0])
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": holdID]),
                          .unprocessableContent, "pending_transfer_already_posted")
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "void_pending_id": holdID]),
                          .unprocessableContent, "pending_transfer_already_posted")

            let secondID = newID()
            let second = try await api.call(.post, "/v1/transfers", key: org.key, json: [
                "id": secondID, "debit_account_id": buyer, "credit_account_id": seller, "amount": 50, "currency": "CNY", "pending": true,
            ])
            #expect(second.status == .created && second.json["expires_at"] == .null && second.json["timeout_seconds"] == .null)
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": secondID, "amount": 51]),
                          .unprocessableContent, "amount_exceeds_pending")
            let void = try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "void_pending_id": secondID])
            #expect(void.status == .created && void.json["kind"].string == "void_pending" && void.json["pending_id"].string == secondID, "\(void)")
            #expect(try await api.balances(buyer) == [60, 1_000, 0, 0])
            expectProblem(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "void_pending_id": secondID]),
                          .unprocessableContent, "pending_transfer_already_voided")

            // Fields the hold decides may not be sent with post/void; timeout only on holds.
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": holdID, "currency": "CNY"]), "currency")
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "void_pending_id": holdID, "amount": 1]), "amount")
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: ["id": newID(), "post_pending_id": holdID, "void_pending_id": holdID]), "void_pending_id")
            var timed = API.transferBody(buyer, seller, 5)
            timed["timeout_seconds"] = 60
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: timed), "timeout_seconds")
            timed["pending"] = true
            timed["timeout_seconds"] = 0
            expectInvalid(try await api.call(.post, "/v1/transfers", key: org.key, json: timed), "timeout_seconds")

            // Every step is readable by id, as created.
            #expect(try await api.call(.get, "/v1/transfers/\(holdID)", key: org.key).body == hold.body)
            #expect(try await api.call(.get, "/v1/transfers/\(post.json["id"].string ?? "")", key: org.key).body == post.body)
            expectProblem(try await api.call(.get, "/v1/transfers/\(newID())", key: org.key), .notFound, "not_found")
        }
    }

    @Test func balancesAsOfAPastInstant() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            let first = try await api.transfer(a, b, 100, key: org.key)
            let second = try await api.transfer(a, b, 30, key: org.key)
            let firstAt = try #require(first.json["created_at"].string)
            let secondAt = try #require(second.json["created_at"].string)
            #expect(firstAt < secondAt)

            let atFirst = try await api.call(.get, "/v1/accounts/\(a)/balance?at=\(firstAt)", key: org.key)
            #expect(atFirst.status == .ok)
            #expect(atFirst.json["debits_posted"].int == 100, "the balance at a transfer's created_at includes that transfer: \(atFirst)")
            #expect(atFirst.json["at"].string == firstAt, "the instant asked for is echoed exactly: \(atFirst)")
            #expect(atFirst.json["account_id"].string == a && atFirst.json["currency"].string == "CNY" && atFirst.json["credits_posted"].int == 1_000)
            let atSecond = try await api.call(.get, "/v1/accounts/\(a)/balance?at=\(secondAt)", key: org.key)
            #expect(atSecond.json["debits_posted"].int == 130, "\(atSecond)")
            let now = try await api.call(.get, "/v1/accounts/\(a)/balance", key: org.key)
            #expect(now.json["debits_posted"].int == 130 && now.json["at"].string != nil, "\(now)")
            let before = try await api.call(.get, "/v1/accounts/\(b)/balance?at=2000-01-01T00:00:00Z", key: org.key)
            #expect(before.json["credits_posted"].int == 0 && before.json["debits_posted"].int == 0, "\(before)")
            let offset = try await api.call(.get, "/v1/accounts/\(b)/balance?at=2999-01-01T08:00:00%2B08:00", key: org.key)
            #expect(offset.json["credits_posted"].int == 130, "\(offset)")

            for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00", "1700000000", "", "2026-01-01T00:00:00.1234567890Z"] {
                expectInvalid(try await api.call(.get, "/v1/accounts/\(a)/balance?at=\(bad)", key: org.key), "at")
            }
        }
    }

    @Test func batchesAreAtomicOrIndependent() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let wallet = try await api.createAccount(for: org)
            let funding = try await api.createAccount(for: org, funded: 100)
            let shop = try await api.createAccount(for: org)
            #expect(try await api.transfer(funding, wallet, 100, key: org.key).status == .created)

            let ids = [newID(), newID(), newID()]
            let transfers = [API.transferBody(wallet, shop, 50, id: ids[0]), API.transferBody(wallet, shop, 80, id: ids[1]), API.transferBody(wallet, shop, 10, id: ids[2])]
            let atomic = try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": transfers])
            #expect(atomic.status == .ok, "\(atomic)")
            #expect(atomic.json["atomic"].bool == true)
            let atomicResults = atomic.json["results"].array
            #expect(atomicResults.map { $0["outcome"].string ?? "" } == ["linked_event_failed", "exceeds_credits", "linked_event_failed"], "\(atomic)")
            #expect(atomicResults.map { $0["index"].int ?? -1 } == [0, 1, 2] && atomicResults.map { $0["id"].string ?? "" } == ids)
            #expect(atomicResults.allSatisfy { $0["transfer"] == .null || $0["transfer"] == .missing })
            #expect(try await api.balances(wallet) == [0, 100, 0, 0])
            #expect(try await api.balances(shop) == [0, 0, 0, 0])
            for id in ids { expectProblem(try await api.call(.get, "/v1/transfers/\(id)", key: org.key), .notFound, "not_found") }

            let independent = try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": false, "transfers": transfers])
            #expect(independent.status == .ok, "\(independent)")
            let results = independent.json["results"].array
            #expect(results.map { $0["outcome"].string ?? "" } == ["ok", "exceeds_credits", "ok"], "\(independent)")
            #expect(results[0]["transfer"]["amount"].int == 50 && results[2]["transfer"]["id"].string == ids[2])
            #expect(try await api.balances(wallet) == [60, 100, 0, 0])
            #expect(try await api.balances(shop) == [0, 60, 0, 0])

            // Replaying the batch: the stored ones exist, the refused one is refused again.
            let again = try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": false, "transfers": transfers])
            #expect(again.json["results"].array.map { $0["outcome"].string ?? "" } == ["exists", "exceeds_credits", "exists"], "\(again)")
            // A hold and its posting in one batch: later transfers see earlier ones.
            let holdID = newID()
            let twoStep = try await api.call(.post, "/v1/transfers/batch", key: org.key, json: ["atomic": true, "transfers": [
                ["id": holdID, "debit_account_id": wallet, "credit_account_id": shop, "amount": 20, "currency": "CNY", "pending": true],
                ["id": newID(), "post_pending_id": holdID, "amount": 15],
            ]])
            #expect(twoStep.json["results"].array.map { $0["outcome"].string ?? "" } == ["ok", "ok"], "\(twoStep)")
            #expect(try await api.balances(wallet) == [75, 100, 0, 0])
        }
    }

    @Test func batchSizeIsLimitedTo8000() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let tooMany = "{\"atomic\":true,\"transfers\":[" + (0..<8_001).map { _ in "{\"id\":\"\(newID())\"}" }.joined(separator: ",") + "]}"
            expectInvalid(try await api.call(.post, "/v1/transfers/batch", key: org.key, raw: tooMany), "transfers")
        }
    }

    /// The ledger takes batches of up to 8,000 transfers; the HTTP body limit must let a full batch through.
    @Test func aFullBatchOf8000TransfersFitsTheDefaultBodyLimit() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org, funded: 8_000 * 8_001 / 2)
            let b = try await api.createAccount(for: org)
            let elements = (0..<8_000).map { index in
                #"{"id":"\#(newID())","debit_account_id":"\#(a)","credit_account_id":"\#(b)","amount":\#(index + 1),"currency":"CNY","code":"payroll"}"#
            }
            let body = "{\"atomic\":false,\"transfers\":[" + elements.joined(separator: ",") + "]}"
            let response = try await api.call(.post, "/v1/transfers/batch", key: org.key, raw: body)
            #expect(response.status == .ok, "a full batch (\(body.utf8.count) bytes) is refused: \(response.status.code) \(response.code ?? "")")
            if response.status == .ok {
                #expect(response.json["results"].array.count == 8_000)
                #expect(try await api.balances(a) == [8_000 * 8_001 / 2, 8_000 * 8_001 / 2, 0, 0], "every transfer moved, down to exactly zero")
            }
        }
    }
}
