import Foundation
import HTTPTypes
import Testing

/// Deposits and withdrawals (the operator records money arriving at or leaving the bank) and
/// organizations' balances.
@Suite("Deposits, withdrawals and balances")
struct DepositTests {
    /// A sub-park with an institute in it, an enterprise, a broker, the committee and a second sub-park.
    struct Orgs {
        let park: Org
        let institute: Org
        let enterprise: Org
        let broker: Org
        let committee: Org
        let otherPark: Org
    }

    static func orgs(_ api: API) async throws -> Orgs {
        let park = try await api.createOrganization("Caohejing Park", kind: "sub_park")
        return Orgs(park: park,
                    institute: try await api.createOrganization("Tongji Acoustics Lab", kind: "institute", subParkID: park.id),
                    enterprise: try await api.createOrganization("Minhang Motors", kind: "enterprise"),
                    broker: try await api.createOrganization("Xuhui Brokers", kind: "broker"),
                    committee: try await api.createOrganization("Money Committee", kind: "committee"),
                    otherPark: try await api.createOrganization("Songjiang Park", kind: "sub_park"))
    }

    @Test func onlyTheOperatorMovesMoney() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            let before = try await api.moneyLedgerSnapshot()
            for org in [o.institute, o.enterprise, o.broker, o.committee, o.park] {
                for direction in ["deposits", "withdrawals"] {
                    let response = try await api.moneyPayment(direction, organizationID: org.id, amount: 1_000, key: org.key)
                    expectProblem(response, .forbidden, "forbidden")
                }
            }
            expectProblem(try await api.moneyPayment("deposits", organizationID: o.institute.id, amount: 1_000, key: nil), .unauthorized, "unauthorized")
            #expect(try await api.moneyLedgerSnapshot() == before)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func depositsAndWithdrawalsMoveExactAmounts() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            let deposit = try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 1_000_001, externalRef: "ICBC-2026-0001")
            #expect(deposit["amount"].int == 1_000_001 && deposit["currency"].string == "CNY" && deposit["code"].string == "deposit"
                    && deposit["kind"].string == "posted" && deposit["metadata"]["external_ref"].string == "ICBC-2026-0001", "\(deposit)")
            let accounts = try #require(try await api.moneyBalancesByCurrency(o.institute.id)["CNY"])
            try #require(accounts.count == 1, "\(accounts)")
            #expect(accounts[0]["code"].string == "operating" && accounts[0]["debits_must_not_exceed_credits"].bool == true, "\(accounts)")
            #expect(deposit["credit_account_id"] == accounts[0]["id"], "the deposit credits the operating account: \(deposit)")
            #expect(MoneyBalance(accounts[0]) == MoneyBalance(0, 1_000_001, 0, 0))

            let withdrawal = try await api.moneyPaymentOK("withdrawals", organizationID: o.institute.id, amount: 400_000, externalRef: "ICBC-2026-0002")
            #expect(withdrawal["debit_account_id"] == accounts[0]["id"] && withdrawal["credit_account_id"] == deposit["debit_account_id"]
                    && withdrawal["code"].string == "withdrawal", "\(withdrawal)")
            #expect(try await api.moneyOperating(o.institute.id) == MoneyBalance(400_000, 1_000_001, 0, 0))

            // Everything that is left can be withdrawn, not a fen more.
            let before = try await api.moneyLedgerSnapshot()
            let refused = try await api.moneyPayment("withdrawals", organizationID: o.institute.id, amount: 600_002, externalRef: "ICBC-2026-0003")
            expectProblem(refused, .unprocessableContent, "exceeds_credits")
            #expect(try await api.moneyLedgerSnapshot() == before, "a refused withdrawal changes nothing")
            // The refused withdrawal's reference was not used up.
            try await api.moneyPaymentOK("withdrawals", organizationID: o.institute.id, amount: 600_001, externalRef: "ICBC-2026-0003")
            #expect(try await api.moneyOperating(o.institute.id) == MoneyBalance(1_000_001, 1_000_001, 0, 0))
            expectProblem(try await api.moneyPayment("withdrawals", organizationID: o.institute.id, amount: 1), .unprocessableContent, "exceeds_credits")

            // An organization that never had money cannot withdraw any.
            let empty = try await api.moneyLedgerSnapshot()
            expectProblem(try await api.moneyPayment("withdrawals", organizationID: o.enterprise.id, amount: 1), .unprocessableContent, "exceeds_credits")
            #expect(try await api.moneyLedgerSnapshot() == empty)
            #expect(try await api.moneyBalancesByCurrency(o.enterprise.id).isEmpty)

            // The bank's settlement account mirrors it all.
            let bank = try await api.operatorID()
            let settlement = try #require(try await api.moneyBalancesByCurrency(bank)["CNY"]?.first { $0["code"].string == "settlement" })
            #expect(MoneyBalance(settlement) == MoneyBalance(1_000_001, 1_000_001, 0, 0))
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aPaymentReferenceIsUsedOnce() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 5_000, externalRef: "BOC-77")
            let before = try await api.moneyLedgerSnapshot()
            // Reused: the same deposit again, another amount, another organization, a withdrawal.
            for (direction, organization, amount) in [("deposits", o.institute.id, 5_000), ("deposits", o.institute.id, 6_000),
                                                      ("deposits", o.enterprise.id, 5_000), ("withdrawals", o.institute.id, 1_000)] {
                let response = try await api.moneyPayment(direction, organizationID: organization, amount: amount, externalRef: "BOC-77")
                expectProblem(response, .conflict, "conflict", fields: ["external_ref"])
            }
            // Surrounding blanks are trimmed, so this is the same reference.
            expectProblem(try await api.moneyPayment("deposits", organizationID: o.institute.id, amount: 5_000, externalRef: "  BOC-77 "),
                          .conflict, "conflict", fields: ["external_ref"])
            #expect(try await api.moneyLedgerSnapshot() == before)

            // With an Idempotency-Key, a retry is the first answer replayed.
            let key: HTTPFields = [.tbIdempotencyKey: "deposit-BOC-78"]
            let first = try await api.moneyPayment("deposits", organizationID: o.institute.id, amount: 7_000, externalRef: "BOC-78", headers: key)
            try #require(first.status == .created, "\(first)")
            let replay = try await api.moneyPayment("deposits", organizationID: o.institute.id, amount: 7_000, externalRef: "BOC-78", headers: key)
            #expect(replay.status == .created && replay.headers[.tbIdempotentReplayed] == "true" && replay.body == first.body, "\(replay)")
            #expect(try await api.moneyOperating(o.institute.id) == MoneyBalance(0, 12_000, 0, 0))
            try await api.expectLedgerInvariants()
        }
    }

    @Test func invalidPaymentsAreRefusedWithNothingChanged() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 10_000)
            let bank = try await api.operatorID()
            let before = try await api.moneyLedgerSnapshot()
            for direction in ["deposits", "withdrawals"] {
                for amount: Any in [0, -1, Int64.min, (1 << 53) + 1, Int64.max] {
                    expectInvalid(try await api.moneyPayment(direction, organizationID: o.institute.id, amount: amount), "amount")
                }
                for currency in ["cny", "CN", "CNYY", "", "C1Y", "ZZZ", "XAU"] {
                    expectInvalid(try await api.moneyPayment(direction, organizationID: o.institute.id, amount: 100, currency: currency), "currency")
                }
                for organization in [newID(), bank] {
                    expectInvalid(try await api.moneyPayment(direction, organizationID: organization, amount: 100), "organization_id")
                }
                for reference in ["", "   ", String(repeating: "R", count: 101)] {
                    expectInvalid(try await api.moneyPayment(direction, organizationID: o.institute.id, amount: 100, externalRef: reference), "external_ref")
                }
                // Not a whole number of fen, not a number, an unknown field.
                for raw in [#"{"organization_id":"\#(o.institute.id)","amount":1.5,"currency":"CNY","external_ref":"X-1"}"#,
                            #"{"organization_id":"\#(o.institute.id)","amount":"100","currency":"CNY","external_ref":"X-2"}"#,
                            #"{"organization_id":"\#(o.institute.id)","amount":100,"currency":"CNY","external_ref":"X-3","fee":1}"#,
                            #"{"organization_id":"not-a-uuid","amount":100,"currency":"CNY","external_ref":"X-4"}"#] {
                    let response = try await api.call(.post, "/v1/\(direction)", raw: raw)
                    #expect([400, 422].contains(response.status.code), "\(response)")
                }
            }
            #expect(try await api.moneyLedgerSnapshot() == before)

            // The largest amount accepted is 2^53 minor units.
            try await api.moneyPaymentOK("deposits", organizationID: o.enterprise.id, amount: 1 << 53)
            try await api.moneyPaymentOK("withdrawals", organizationID: o.enterprise.id, amount: 1 << 53)
            #expect(try await api.moneyOperating(o.enterprise.id) == MoneyBalance(1 << 53, 1 << 53, 0, 0))
            try await api.expectLedgerInvariants()
        }
    }

    @Test func balancesAreGroupedByCurrencyWithTotals() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 250_000, currency: "USD")
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 1_000_000)
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 3, currency: "JPY")
            try await api.moneyPaymentOK("withdrawals", organizationID: o.institute.id, amount: 1, currency: "USD")

            let response = try await api.moneyBalances(o.institute.id)
            try #require(response.status == .ok, "\(response)")
            let data = response.json["data"].array
            #expect(data.compactMap { $0["currency"].string } == ["CNY", "JPY", "USD"], "\(response)")
            let byCurrency = try await api.moneyBalancesByCurrency(o.institute.id)  // checks that totals are the sums
            #expect(byCurrency["CNY"].map { $0.map(MoneyBalance.init) } == [MoneyBalance(0, 1_000_000, 0, 0)])
            #expect(byCurrency["JPY"].map { $0.map(MoneyBalance.init) } == [MoneyBalance(0, 3, 0, 0)])
            #expect(byCurrency["USD"].map { $0.map(MoneyBalance.init) } == [MoneyBalance(1, 250_000, 0, 0)])
            let usd = try #require(data.first { $0["currency"].string == "USD" })
            #expect(usd["total"] == .object(["debits_posted": .int(1), "credits_posted": .int(250_000), "debits_pending": .int(0), "credits_pending": .int(0)]),
                    "\(usd)")
            // An organization without accounts has no balances.
            let none = try await api.moneyBalances(o.broker.id)
            #expect(none.status == .ok && none.json["data"] == .array([]), "\(none)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func balancesAreVisibleToTheOrganizationItsSubParkTheCommitteeAndTheOperator() async throws {
        try await withAPI { api in
            let o = try await Self.orgs(api)
            try await api.moneyPaymentOK("deposits", organizationID: o.institute.id, amount: 42)
            let expected = try await api.moneyBalances(o.institute.id).json["data"]
            #expect(expected.array.count == 1, "\(expected)")
            for reader in [o.institute.key, o.park.key, o.committee.key, operatorKey] {
                let response = try await api.moneyBalances(o.institute.id, key: reader)
                #expect(response.status == .ok && response.json["data"] == expected, "\(response)")
            }
            let missing = try await api.moneyBalances(newID())
            for reader in [o.enterprise.key, o.broker.key, o.otherPark.key] {
                let response = try await api.moneyBalances(o.institute.id, key: reader)
                expectProblem(response, .notFound, "not_found")
                #expect(response.problemShape == missing.problemShape, "another's balances must look like a missing organization: \(response)")
            }
            expectProblem(try await api.moneyBalances(o.institute.id, key: nil), .unauthorized, "unauthorized")
            // A sub-park sees its own; an enterprise its own, not the sub-park's.
            #expect(try await api.moneyBalances(o.park.id, key: o.park.key).status == .ok)
            #expect(try await api.moneyBalances(o.enterprise.id, key: o.enterprise.key).status == .ok)
            expectProblem(try await api.moneyBalances(o.park.id, key: o.institute.key), .notFound, "not_found")
            expectProblem(try await api.moneyBalances("not-a-uuid"), .notFound, "not_found")
            try await api.expectLedgerInvariants()
        }
    }
}
