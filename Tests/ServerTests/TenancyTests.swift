import Foundation
import HTTPTypes
import Testing

@Suite("API: tenancy")
struct TenancyTests {
    /// For every route that takes an id, another tenant's id answers exactly like an id that does
    /// not exist: 404, same code, same detail, same errors; only the request id differs.
    @Test func anotherTenantsIDsLookLikeNonexistentOnes() async throws {
        try await withAPI { api in
            let alice = try await api.createOrganization("Alice Ltd", kind: "enterprise")
            let bob = try await api.createOrganization("Bob Ltd", kind: "enterprise")
            let a1 = try await api.createAccount(for: alice, funded: 1_000)
            let a2 = try await api.createAccount(for: alice)
            let b1 = try await api.createAccount(for: bob)
            let transfer = try await api.transfer(a1, a2, 100, key: alice.key)
            let transferID = try #require(transfer.json["id"].string)
            let hold = try await api.call(.post, "/v1/transfers", key: alice.key, json: [
                "id": newID(), "debit_account_id": a1, "credit_account_id": a2, "amount": 40, "currency": "CNY", "pending": true,
            ])
            #expect(hold.status == .created, "\(hold)")
            let holdID = try #require(hold.json["id"].string)
            let missing = newID()

            /// One request, sent for Alice's resource and for a missing one, both as Bob.
            struct Probe {
                let label: String
                let method: HTTPRequest.Method
                let uri: (String) -> String
                var json: ((String) -> [String: Any])? = nil
                var headers: HTTPFields = [:]
            }
            let probes: [(Probe, other: String)] = [
                (Probe(label: "GET organization", method: .get, uri: { "/v1/organizations/\($0)" }), alice.id),
                (Probe(label: "PATCH organization", method: .patch, uri: { "/v1/organizations/\($0)" }, json: { _ in ["name": "Mallory"] },
                       headers: [.ifMatch: "\"v1\""]), alice.id),
                // The body and If-Match are read only after the lookup: their errors tell nothing either.
                (Probe(label: "PATCH organization, bad body and malformed If-Match", method: .patch, uri: { "/v1/organizations/\($0)" },
                       json: { _ in ["name": ""] }, headers: [.ifMatch: "v1"]), alice.id),
                (Probe(label: "POST api-keys", method: .post, uri: { "/v1/organizations/\($0)/api-keys" }, json: { _ in ["label": "x"] }), alice.id),
                (Probe(label: "GET api-keys", method: .get, uri: { "/v1/organizations/\($0)/api-keys" }), alice.id),
                (Probe(label: "DELETE api-key", method: .delete, uri: { "/v1/organizations/\($0)/api-keys/\(alice.keyID)" }), alice.id),
                (Probe(label: "GET account", method: .get, uri: { "/v1/accounts/\($0)" }), a1),
                (Probe(label: "GET account transfers", method: .get, uri: { "/v1/accounts/\($0)/transfers" }), a1),
                (Probe(label: "GET account balance", method: .get, uri: { "/v1/accounts/\($0)/balance" }), a1),
                (Probe(label: "GET transfer", method: .get, uri: { "/v1/transfers/\($0)" }), transferID),
                (Probe(label: "POST transfer debiting", method: .post, uri: { _ in "/v1/transfers" },
                       json: { API.transferBody($0, b1, 10) }), a1),
                (Probe(label: "POST transfer post_pending_id", method: .post, uri: { _ in "/v1/transfers" },
                       json: { ["id": newID(), "post_pending_id": $0] }), holdID),
                (Probe(label: "POST transfer void_pending_id", method: .post, uri: { _ in "/v1/transfers" },
                       json: { ["id": newID(), "void_pending_id": $0] }), holdID),
                (Probe(label: "POST batch debiting", method: .post, uri: { _ in "/v1/transfers/batch" },
                       json: { ["atomic": true, "transfers": [API.transferBody($0, b1, 10)]] }), a1),
                (Probe(label: "POST batch post_pending_id", method: .post, uri: { _ in "/v1/transfers/batch" },
                       json: { ["atomic": false, "transfers": [["id": newID(), "post_pending_id": $0]]] }), holdID),
                (Probe(label: "POST batch void_pending_id", method: .post, uri: { _ in "/v1/transfers/batch" },
                       json: { ["atomic": false, "transfers": [["id": newID(), "void_pending_id": $0]]] }), holdID),
            ]
            for (probe, other) in probes {
                let forOther = try await api.call(probe.method, probe.uri(other), key: bob.key, json: probe.json?(other), headers: probe.headers)
                let forMissing = try await api.call(probe.method, probe.uri(missing), key: bob.key, json: probe.json?(missing), headers: probe.headers)
                #expect(forOther.status == .notFound, "\(probe.label): \(forOther)")
                #expect(forOther.problemShape == forMissing.problemShape,
                        "\(probe.label): another tenant's id answers differently from a missing one:\n  other:   \(forOther.problemShape)\n  missing: \(forMissing.problemShape)")
            }

            // The operator revoking Alice's key under Bob's organization: also a plain 404.
            let crossRevoke = try await api.call(.delete, "/v1/organizations/\(bob.id)/api-keys/\(alice.keyID)")
            let missingRevoke = try await api.call(.delete, "/v1/organizations/\(bob.id)/api-keys/\(missing)")
            #expect(crossRevoke.status == .notFound && crossRevoke.problemShape == missingRevoke.problemShape, "\(crossRevoke)")

            // Opening an account for another tenant answers like opening one for nobody.
            let forAlice = try await api.call(.post, "/v1/accounts", key: bob.key, json: ["owner_id": alice.id, "currency": "CNY"])
            let forNobody = try await api.call(.post, "/v1/accounts", key: bob.key, json: ["owner_id": missing, "currency": "CNY"])
            #expect(forAlice.status.code >= 400 && forAlice.problemShape == forNobody.problemShape, "\(forAlice) vs \(forNobody)")

            // Bob's listing shows only Bob.
            let listing = try await api.call(.get, "/v1/organizations", key: bob.key)
            #expect(listing.json["data"].array.compactMap { $0["id"].string } == [bob.id], "\(listing)")

            // None of Bob's attempts changed anything of Alice's.
            #expect(try await api.balances(a1) == [100, 1_000, 40, 0])
            #expect(try await api.balances(b1) == [0, 0, 0, 0])
            let org = try await api.call(.get, "/v1/organizations/\(alice.id)")
            #expect(org.json["name"].string == "Alice Ltd" && org.headers[.eTag] == "\"v1\"", "\(org)")
            #expect(try await api.call(.get, "/v1/accounts/\(a1)", key: alice.key).status == .ok)
        }
    }

    @Test func aSubParkSeesItsMembersAccountsButMovesNoMoney() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("North Park", kind: "sub_park")
            let member = try await api.createOrganization("Member Lab", kind: "institute", subParkID: park.id)
            let outsider = try await api.createOrganization("Outside Lab", kind: "institute")
            let memberAccount = try await api.createAccount(for: member, funded: 100)
            let memberAccount2 = try await api.createAccount(for: member)
            let outsiderAccount = try await api.createAccount(for: outsider)
            let moved = try await api.transfer(memberAccount, memberAccount2, 25, key: member.key)
            #expect(moved.status == .created)

            let account = try await api.call(.get, "/v1/accounts/\(memberAccount)", key: park.key)
            #expect(account.status == .ok && account.json["debits_posted"].int == 25, "\(account)")
            // Its funding from the member's operating account and the payment.
            #expect(try await api.call(.get, "/v1/accounts/\(memberAccount)/transfers", key: park.key).json["data"].array.count == 2)
            #expect(try await api.call(.get, "/v1/accounts/\(memberAccount)/balance", key: park.key).status == .ok)
            #expect(try await api.call(.get, "/v1/transfers/\(moved.json["id"].string ?? "")", key: park.key).status == .ok)
            #expect(try await api.call(.get, "/v1/organizations/\(member.id)", key: park.key).status == .ok)
            let members = try await api.call(.get, "/v1/organizations", key: park.key)
            #expect(Set(members.json["data"].array.compactMap { $0["id"].string }) == [park.id, member.id], "\(members)")

            expectProblem(try await api.call(.get, "/v1/accounts/\(outsiderAccount)", key: park.key), .notFound, "not_found")
            expectProblem(try await api.call(.get, "/v1/organizations/\(outsider.id)", key: park.key), .notFound, "not_found")
            // The member sees neither its park's siblings nor the park's data beyond its own.
            expectProblem(try await api.call(.get, "/v1/accounts/\(outsiderAccount)", key: member.key), .notFound, "not_found")

            let debit = try await api.transfer(memberAccount, outsiderAccount, 5, key: park.key)
            expectProblem(debit, .forbidden, "forbidden", fields: ["debit_account_id"])
            #expect(try await api.balances(memberAccount) == [25, 100, 0, 0])
        }
    }

    @Test func theCommitteeReadsEverythingButMovesNoMoney() async throws {
        try await withAPI { api in
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let alice = try await api.createOrganization("Alice Ltd", kind: "enterprise")
            let a1 = try await api.createAccount(for: alice, funded: 100)
            let a2 = try await api.createAccount(for: alice)
            let moved = try await api.transfer(a1, a2, 70, key: alice.key)
            let hold = try await api.call(.post, "/v1/transfers", key: alice.key, json: [
                "id": newID(), "debit_account_id": a1, "credit_account_id": a2, "amount": 30, "currency": "CNY", "pending": true,
            ])
            let holdID = try #require(hold.json["id"].string)

            #expect(try await api.call(.get, "/v1/accounts/\(a1)", key: committee.key).status == .ok)
            // Its funding, the payment and the hold.
            #expect(try await api.call(.get, "/v1/accounts/\(a1)/transfers", key: committee.key).json["data"].array.count == 3)
            #expect(try await api.call(.get, "/v1/accounts/\(a1)/balance", key: committee.key).json["debits_posted"].int == 70)
            #expect(try await api.call(.get, "/v1/transfers/\(moved.json["id"].string ?? "")", key: committee.key).status == .ok)
            #expect(try await api.call(.get, "/v1/organizations/\(alice.id)", key: committee.key).status == .ok)

            expectProblem(try await api.transfer(a1, a2, 1, key: committee.key), .forbidden, "forbidden", fields: ["debit_account_id"])
            expectProblem(try await api.call(.post, "/v1/transfers", key: committee.key, json: ["id": newID(), "post_pending_id": holdID]),
                          .forbidden, "forbidden", fields: ["post_pending_id"])
            expectProblem(try await api.call(.post, "/v1/transfers", key: committee.key, json: ["id": newID(), "void_pending_id": holdID]),
                          .forbidden, "forbidden", fields: ["void_pending_id"])
            expectProblem(try await api.call(.post, "/v1/transfers/batch", key: committee.key, json: ["atomic": false, "transfers": [API.transferBody(a1, a2, 1)]]),
                          .forbidden, "forbidden", fields: ["transfers[0].debit_account_id"])
            expectProblem(try await api.call(.post, "/v1/accounts", key: committee.key, json: ["owner_id": committee.id, "currency": "CNY"]), .forbidden, "forbidden")
            expectProblem(try await api.call(.post, "/v1/accounts", key: committee.key, json: ["owner_id": alice.id, "currency": "CNY"]), .forbidden, "forbidden")
            expectProblem(try await api.call(.patch, "/v1/organizations/\(alice.id)", key: committee.key, json: ["name": "X"], headers: [.ifMatch: "\"v1\""]),
                          .forbidden, "forbidden")
            #expect(try await api.balances(a1) == [70, 100, 30, 0])
        }
    }

    @Test func anEnterpriseMayCreditAnotherOrganizationsAccountButNotSeeIt() async throws {
        try await withAPI { api in
            let payer = try await api.createOrganization("Payer", kind: "enterprise")
            let payee = try await api.createOrganization("Payee", kind: "institute")
            let payerAccount = try await api.createAccount(for: payer, funded: 300)
            let payeeAccount = try await api.createAccount(for: payee)

            let paid = try await api.transfer(payerAccount, payeeAccount, 300, key: payer.key)
            #expect(paid.status == .created, "\(paid)")
            let paymentID = try #require(paid.json["id"].string)

            // The payer sees its own side of the payment, never the payee's account.
            #expect(try await api.call(.get, "/v1/transfers/\(paymentID)", key: payer.key).status == .ok)
            let missing = try await api.call(.get, "/v1/accounts/\(newID())", key: payer.key)
            for uri in ["/v1/accounts/\(payeeAccount)", "/v1/accounts/\(payeeAccount)/transfers", "/v1/accounts/\(payeeAccount)/balance"] {
                let response = try await api.call(.get, uri, key: payer.key)
                #expect(response.status == .notFound && response.problemShape == missing.problemShape, "\(response)")
            }
            // Nor may it take the money back.
            expectProblem(try await api.transfer(payeeAccount, payerAccount, 300, key: payer.key), .notFound, "not_found", fields: ["debit_account_id"])

            // The payee sees the payment and its balance.
            #expect(try await api.call(.get, "/v1/transfers/\(paymentID)", key: payee.key).status == .ok)
            let account = try await api.call(.get, "/v1/accounts/\(payeeAccount)", key: payee.key)
            #expect(account.json["credits_posted"].int == 300, "\(account)")
        }
    }

    /// Transfer and account ids are global, so a tenant reusing another tenant's id must be refused,
    /// but the refusal must not depend on the other tenant's data: otherwise it is an oracle for
    /// the other tenant's amounts, currencies and counterparties.
    @Test func reusingAnotherTenantsIDRevealsNothingAboutIt() async throws {
        try await withAPI { api in
            let alice = try await api.createOrganization("Alice Ltd", kind: "enterprise")
            let bob = try await api.createOrganization("Bob Ltd", kind: "enterprise")
            let a1 = try await api.createAccount(for: alice, funded: 12_345)
            let a2 = try await api.createAccount(for: alice, currency: "CNY")
            // Bob could pay either guess, so only the id can be why his transfer is refused.
            let b1 = try await api.createAccount(for: bob, funded: 100_000)
            let b2 = try await api.createAccount(for: bob)
            let secret = try await api.transfer(a1, a2, 12_345, key: alice.key)
            let secretID = try #require(secret.json["id"].string)

            let rightGuess = try await api.transfer(b1, b2, 12_345, key: bob.key, id: secretID)
            let wrongGuess = try await api.transfer(b1, b2, 99_999, key: bob.key, id: secretID)
            #expect(rightGuess.status.code >= 400 && wrongGuess.status.code >= 400)
            #expect(rightGuess.problemShape == wrongGuess.problemShape,
                    "the answer reveals Alice's amount:\n  right guess: \(rightGuess.problemShape)\n  wrong guess: \(wrongGuess.problemShape)")

            let accountRight = try await api.call(.post, "/v1/accounts", key: bob.key, json: ["id": a1, "owner_id": bob.id, "currency": "CNY"])
            let accountWrong = try await api.call(.post, "/v1/accounts", key: bob.key, json: ["id": a1, "owner_id": bob.id, "currency": "USD"])
            #expect(accountRight.status.code >= 400 && accountWrong.status.code >= 400)
            #expect(accountRight.problemShape == accountWrong.problemShape,
                    "the answer reveals Alice's currency:\n  right guess: \(accountRight.problemShape)\n  wrong guess: \(accountWrong.problemShape)")
            #expect(!accountRight.text.contains(a2) && !rightGuess.text.contains(a2))
        }
    }
}
