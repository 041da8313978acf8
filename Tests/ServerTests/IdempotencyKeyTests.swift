import Foundation
import HTTPTypes
import Postgres
import Testing

@Suite("API: Idempotency-Key")
struct IdempotencyKeyTests {
    /// A transfer body with fixed bytes, so the request hash can be computed in SQL.
    static func rawTransfer(_ id: String, _ debit: String, _ credit: String, _ amount: Int) -> String {
        #"{"amount":\#(amount),"credit_account_id":"\#(credit)","currency":"CNY","debit_account_id":"\#(debit)","id":"\#(id)"}"#
    }

    @Test func aRetriedTransferIsReplayedAndMovesMoneyOnce() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // Funded beyond the payment, so a second application would have gone through.
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            let body = Self.rawTransfer(newID(), a, b, 250)

            let first = try await api.call(.post, "/v1/transfers", key: org.key, raw: body, headers: [.tbIdempotencyKey: "pay-2026-001"])
            #expect(first.status == .created, "\(first)")
            #expect(first.headers[.tbIdempotentReplayed] == nil)
            for _ in 0..<2 {
                let retry = try await api.call(.post, "/v1/transfers", key: org.key, raw: body, headers: [.tbIdempotencyKey: "pay-2026-001"])
                #expect(retry.status == first.status)
                #expect(retry.body == first.body, "a replay must be byte-identical:\n\(first.text)\n\(retry.text)")
                #expect(retry.headers[.tbIdempotentReplayed] == "true")
                #expect(retry.headers[.location] == first.headers[.location] && first.headers[.location] != nil)
                #expect(retry.contentType == first.contentType)
            }
            #expect(try await api.balances(a) == [250, 1_000, 0, 0])
            #expect(try await api.balances(b) == [0, 250, 0, 0])
            let listing = try await api.call(.get, "/v1/accounts/\(a)/transfers", key: org.key)
            #expect(listing.json["data"].array.count == 2, "its funding and the one payment: \(listing)")

            // The same key with another body is refused, and that body is not applied.
            let otherID = newID()
            let reused = try await api.call(.post, "/v1/transfers", key: org.key, raw: Self.rawTransfer(otherID, a, b, 250),
                                            headers: [.tbIdempotencyKey: "pay-2026-001"])
            expectProblem(reused, .unprocessableContent, "idempotency_key_reused")
            let sameBodyOtherSpacing = try await api.call(.post, "/v1/transfers", key: org.key, raw: body + " ", headers: [.tbIdempotencyKey: "pay-2026-001"])
            expectProblem(sameBodyOtherSpacing, .unprocessableContent, "idempotency_key_reused")
            expectProblem(try await api.call(.get, "/v1/transfers/\(otherID)", key: org.key), .notFound, "not_found")
            #expect(try await api.balances(a) == [250, 1_000, 0, 0])

            // Refusals are replayed too: the first answer stands.
            let refusedBody = Self.rawTransfer(newID(), a, a, 1)
            let refused = try await api.call(.post, "/v1/transfers", key: org.key, raw: refusedBody, headers: [.tbIdempotencyKey: "same-account"])
            expectProblem(refused, .unprocessableContent, "accounts_must_be_different")
            let refusedAgain = try await api.call(.post, "/v1/transfers", key: org.key, raw: refusedBody, headers: [.tbIdempotencyKey: "same-account"])
            #expect(refusedAgain.status == refused.status && refusedAgain.body == refused.body && refusedAgain.headers[.tbIdempotentReplayed] == "true")

            // Malformed keys are refused before anything happens.
            for bad in [String(repeating: "k", count: 256), "naïve-key", "tab\tkey"] {
                let response = try await api.call(.post, "/v1/transfers", key: org.key, raw: Self.rawTransfer(newID(), a, b, 1),
                                                  headers: HTTPFields([HTTPField(name: .tbIdempotencyKey, value: bad)]))
                expectProblem(response, .badRequest, "invalid_request", fields: ["Idempotency-Key"])
            }
            #expect(try await api.balances(a) == [250, 1_000, 0, 0])
        }
    }

    @Test func keysAreScopedPerOrganization() async throws {
        try await withAPI { api in
            let alice = try await api.createOrganization("Alice", kind: "enterprise")
            let bob = try await api.createOrganization("Bob", kind: "enterprise")
            let a1 = try await api.createAccount(for: alice, funded: 100)
            let a2 = try await api.createAccount(for: alice)
            let b1 = try await api.createAccount(for: bob, funded: 100)
            let b2 = try await api.createAccount(for: bob)

            let forAlice = try await api.call(.post, "/v1/transfers", key: alice.key, raw: Self.rawTransfer(newID(), a1, a2, 10), headers: [.tbIdempotencyKey: "order-1"])
            let forBob = try await api.call(.post, "/v1/transfers", key: bob.key, raw: Self.rawTransfer(newID(), b1, b2, 20), headers: [.tbIdempotencyKey: "order-1"])
            #expect(forAlice.status == .created && forBob.status == .created, "\(forBob)")
            #expect(forBob.headers[.tbIdempotentReplayed] == nil)
            #expect(forBob.json["amount"].int == 20 && forBob.json["debit_account_id"].string == b1)
            #expect(try await api.balances(a1) == [10, 100, 0, 0])
            #expect(try await api.balances(b1) == [20, 100, 0, 0])

            // Bob replaying Alice's exact request under the same key gets no replay of her response.
            let aliceBody = Self.rawTransfer(newID(), a1, a2, 30)
            let original = try await api.call(.post, "/v1/transfers", key: alice.key, raw: aliceBody, headers: [.tbIdempotencyKey: "order-2"])
            #expect(original.status == .created)
            let copied = try await api.call(.post, "/v1/transfers", key: bob.key, raw: aliceBody, headers: [.tbIdempotencyKey: "order-2"])
            #expect(copied.status == .notFound && copied.headers[.tbIdempotentReplayed] == nil, "\(copied)")
            #expect(!copied.text.contains(a2))
        }
    }

    @Test func accountCreationIsReplayedToo() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // No `id`: without the key, a retry would open a second account.
            let body = #"{"currency":"CNY","owner_id":"\#(org.id)"}"#
            let first = try await api.call(.post, "/v1/accounts", key: org.key, raw: body, headers: [.tbIdempotencyKey: "open-1"])
            #expect(first.status == .created, "\(first)")
            let retry = try await api.call(.post, "/v1/accounts", key: org.key, raw: body, headers: [.tbIdempotencyKey: "open-1"])
            #expect(retry.status == .created && retry.body == first.body && retry.headers[.tbIdempotentReplayed] == "true", "\(retry)")
            let otherBody = #"{"currency":"USD","owner_id":"\#(org.id)"}"#
            expectProblem(try await api.call(.post, "/v1/accounts", key: org.key, raw: otherBody, headers: [.tbIdempotencyKey: "open-1"]),
                          .unprocessableContent, "idempotency_key_reused")
            let count = try await api.pool.withConnection { connection in
                try await connection.query("SELECT count(*)::int8 FROM ledger.accounts WHERE owner_id = $1", [UUID(uuidString: org.id)!])[0].decode(Int64.self, at: 0)
            }
            #expect(count == 1)

            // Organization creation by the operator as well.
            let orgBody = #"{"country":"CN","kind":"broker","name":"Broker"}"#
            let created = try await api.call(.post, "/v1/organizations", raw: orgBody, headers: [.tbIdempotencyKey: "onboard-1"])
            let again = try await api.call(.post, "/v1/organizations", raw: orgBody, headers: [.tbIdempotencyKey: "onboard-1"])
            #expect(created.status == .created && again.body == created.body && again.headers[.tbIdempotentReplayed] == "true")
            #expect(try await api.call(.get, "/v1/organizations?kind=broker").json["data"].array.count == 1)
        }
    }

    @Test func aKeyWhoseFirstRequestIsStillRunningAnswers409() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            let a = try await api.createAccount(for: org, funded: 1_000)
            let b = try await api.createAccount(for: org)
            let body = Self.rawTransfer(newID(), a, b, 75)
            let orgID = UUID(uuidString: org.id)!

            /// Claims `key` as if a request were running, with the hash Idempotency.swift computes:
            /// SHA-256 of "METHOD PATH\n" followed by the body bytes.
            func claim(_ key: String, for requestBody: String, path: String = "/v1/transfers", age: String = "0 seconds") async throws {
                let message = Data("POST \(path)\n".utf8) + Data(requestBody.utf8)
                try await api.pool.withConnection { connection in
                    try await connection.query(
                        "INSERT INTO techbank.idempotency_keys (organization_id, key, request_hash, created_at) VALUES ($1, $2, sha256($3), now() - $4::interval)",
                        [orgID, key, message, age])
                }
            }

            try await claim("running", for: body)
            let sameRequest = try await api.call(.post, "/v1/transfers", key: org.key, raw: body, headers: [.tbIdempotencyKey: "running"])
            expectProblem(sameRequest, .conflict, "idempotency_key_in_progress")
            let otherRequest = try await api.call(.post, "/v1/transfers", key: org.key, raw: Self.rawTransfer(newID(), a, b, 76), headers: [.tbIdempotencyKey: "running"])
            expectProblem(otherRequest, .unprocessableContent, "idempotency_key_reused")
            // The path is part of the request: the same body to the batch route is another request.
            let otherPath = try await api.call(.post, "/v1/transfers/batch", key: org.key, raw: body, headers: [.tbIdempotencyKey: "running"])
            expectProblem(otherPath, .unprocessableContent, "idempotency_key_reused")
            #expect(try await api.balances(a) == [0, 1_000, 0, 0])

            // A claim for another organization does not block this one.
            let other = try await api.createOrganization("Other", kind: "enterprise")
            try await api.pool.withConnection { connection in
                try await connection.query(
                    "INSERT INTO techbank.idempotency_keys (organization_id, key, request_hash) VALUES ($1, 'elsewhere', sha256($2))",
                    [UUID(uuidString: other.id)!, Data("POST /v1/transfers\n".utf8) + Data(body.utf8)])
            }
            let unblocked = try await api.call(.post, "/v1/transfers", key: org.key, raw: body, headers: [.tbIdempotencyKey: "elsewhere"])
            #expect(unblocked.status == .created, "\(unblocked)")
            #expect(try await api.balances(a) == [75, 1_000, 0, 0])

            // A claim abandoned long ago (its request crashed) is taken over by the same request.
            let lateBody = Self.rawTransfer(newID(), a, b, 5)
            try await claim("abandoned", for: lateBody, age: "10 minutes")
            let takenOver = try await api.call(.post, "/v1/transfers", key: org.key, raw: lateBody, headers: [.tbIdempotencyKey: "abandoned"])
            #expect(takenOver.status == .created && takenOver.headers[.tbIdempotentReplayed] == nil, "\(takenOver)")
            let replayed = try await api.call(.post, "/v1/transfers", key: org.key, raw: lateBody, headers: [.tbIdempotencyKey: "abandoned"])
            #expect(replayed.body == takenOver.body && replayed.headers[.tbIdempotentReplayed] == "true")
            #expect(try await api.balances(a) == [80, 1_000, 0, 0])
        }
    }
}
