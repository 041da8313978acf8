import Foundation
import HTTPTypes
import Testing

/// Royalty reports over HTTP: the buyer reports net sales for a period and pays
/// floor(net_sales × royalty_bp / 10000) at once, split like any seller income (200 bp to the
/// sub-park, the institute keeps 5000 bp of the rest, three inventors 3333 / 3333 / 3334 share
/// the pool rounded down, the remainder stays with the institute); a report ending on 31 December
/// tops the year up to the minimum annual royalty. Amounts are exact to the fen.
@Suite("Royalty reports")
struct RoyaltyTests {
    /// The royalty deals' upfront fee of 100_000, split.
    static let upfront = MoneyPart(amount: 100_000, broker: 0, park: 2_000, institute: 49_002, inventors: [16_331, 16_331, 16_336])

    /// Terms: 500 bp royalty, 1_000_000 minimum a year, term 2024-01-01 … 2030-12-31, 200 bp to the sub-park.
    static func royaltyTerms(startsOn: String = "2024-01-01", endsOn: String = "2030-12-31", upfront: Int = 100_000, minimum: Int = 1_000_000) -> [String: Any] {
        dealBody(startsOn: startsOn, endsOn: endsOn, upfront: upfront, milestones: [], royaltyBP: 500, subParkFeeBP: 200,
                 overrides: ["minimum_annual_royalty": minimum])
    }

    /// A funded royalty deal of the fixture (the buyer deposited exactly the upfront fee) and the balances after funding.
    static func fundedRoyaltyDeal(_ api: API, _ f: DealFixture) async throws -> (id: String, state: MoneyState) {
        let id = try await api.signedDealID(f, royaltyTerms())
        let funded = try await api.fundDeal(id, f)
        #expect(funded["status"].string == "active" && funded["royalty_bp"].int == 500 && funded["minimum_annual_royalty"].int == 1_000_000, "\(funded)")
        let state = MoneyState.expected(deposit: 100_000, released: [upfront], held: 0)
        try await api.expectMoney(f, state, "after funding")
        return (id, state)
    }

    /// Reports one period, which must succeed, and checks the answer and everyone's balances.
    static func report(
        _ api: API, _ f: DealFixture, _ id: String, _ from: String, _ to: String, netSales: Int64, royalty: Int64, topUp: Int64 = 0,
        paid part: MoneyPart, state: inout MoneyState, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let response = try await api.moneyRoyalty(id, from: from, to: to, netSales: netSales, key: f.buyer.key, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        let body = response.json
        #expect(body["deal_id"].string == id && body["period"]["from"].string == from && body["period"]["to"].string == to
                && body["net_sales"].int == netSales && body["currency"].string == "CNY", "\(response)", sourceLocation: sourceLocation)
        #expect(body["royalty"].int == royalty && body["minimum_top_up"].int == topUp && body["amount_paid"].int == royalty + topUp,
                "\(from)…\(to): expected royalty \(royalty) + top-up \(topUp): \(response)", sourceLocation: sourceLocation)
        #expect(part.amount == royalty + topUp, "the test's split is of the wrong amount", sourceLocation: sourceLocation)
        part.expectConsistent(sourceLocation: sourceLocation)
        state = state.paying(part)
        try await api.expectMoney(f, state, "after the report \(from)…\(to)", sourceLocation: sourceLocation)
    }

    // MARK: Amounts

    @Test func theRoyaltyIsRoundedDownAndSplitToTheFen() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            var (id, state) = try await Self.fundedRoyaltyDeal(api, f)
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 1_000_000)
            state = state.depositing(1_000_000)

            // 3_000_019 × 5 % = 150_000.95 → 150_000.
            try await Self.report(api, f, id, "2024-01-01", "2024-03-31", netSales: 3_000_019, royalty: 150_000,
                                  paid: MoneyPart(amount: 150_000, broker: 0, park: 3_000, institute: 73_502, inventors: [24_497, 24_497, 24_504]), state: &state)
            // 20 × 5 % = 1 fen: no fee, the institute keeps floor(0.5) = 0, the pool of 1 gives each inventor floor(0.33) = 0: the fen stays with the institute.
            try await Self.report(api, f, id, "2024-04-01", "2024-04-30", netSales: 20, royalty: 1,
                                  paid: MoneyPart(amount: 1, broker: 0, park: 0, institute: 1, inventors: [0, 0, 0]), state: &state)
            // 19 × 5 % = 0.95 → 0 fen: the report is stored, nothing is paid.
            try await Self.report(api, f, id, "2024-05-01", "2024-05-31", netSales: 19, royalty: 0,
                                  paid: MoneyPart(amount: 0, broker: 0, park: 0, institute: 0, inventors: [0, 0, 0]), state: &state)
            // 7 fen: the institute keeps 3, the pool of 4 gives each inventor 1, the last fen stays with the institute.
            try await Self.report(api, f, id, "2024-06-01", "2024-06-30", netSales: 140, royalty: 7,
                                  paid: MoneyPart(amount: 7, broker: 0, park: 0, institute: 4, inventors: [1, 1, 1]), state: &state)
            // 3 fen: the institute keeps 1, the pool of 2 is too small for any inventor.
            try await Self.report(api, f, id, "2024-07-01", "2024-07-31", netSales: 60, royalty: 3,
                                  paid: MoneyPart(amount: 3, broker: 0, park: 0, institute: 3, inventors: [0, 0, 0]), state: &state)
            // No sales.
            try await Self.report(api, f, id, "2024-08-01", "2024-08-31", netSales: 0, royalty: 0,
                                  paid: MoneyPart(amount: 0, broker: 0, park: 0, institute: 0, inventors: [0, 0, 0]), state: &state)
            // 50 fen: the sub-park gets its first whole fen.
            try await Self.report(api, f, id, "2024-09-01", "2024-09-30", netSales: 1_000, royalty: 50,
                                  paid: MoneyPart(amount: 50, broker: 0, park: 1, institute: 25, inventors: [8, 8, 8]), state: &state)

            // Every report is listed in period order, to every reader of the deal.
            for key in [f.buyer.key, f.seller.key, f.park.key, f.committee.key, operatorKey] {
                let listed = try await api.moneyRoyaltyReports(id, key: key)
                #expect(listed.map { $0["period"]["from"].string ?? "" } == ["2024-01-01", "2024-04-01", "2024-05-01", "2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01"])
                #expect(listed.map { $0["royalty"].int ?? -1 } == [150_000, 1, 0, 7, 3, 0, 50])
                #expect(listed.allSatisfy { $0["minimum_top_up"].int == 0 && $0["amount_paid"].int == $0["royalty"].int })
            }
            expectProblem(try await api.call(.get, "/v1/deals/\(id)/royalty-reports", key: f.outsider.key), .notFound, "not_found")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func theLastReportOfAYearTopsUpToTheMinimum() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            var (id, state) = try await Self.fundedRoyaltyDeal(api, f)
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 3_000_000)
            state = state.depositing(3_000_000)

            // 2024 is above the minimum by June: the report ending 31 December adds nothing.
            try await Self.report(api, f, id, "2024-01-01", "2024-06-30", netSales: 30_000_000, royalty: 1_500_000,
                                  paid: MoneyPart(amount: 1_500_000, broker: 0, park: 30_000, institute: 735_001, inventors: [244_975, 244_975, 245_049]),
                                  state: &state)
            try await Self.report(api, f, id, "2024-07-01", "2024-12-31", netSales: 1_000, royalty: 50,
                                  paid: MoneyPart(amount: 50, broker: 0, park: 1, institute: 25, inventors: [8, 8, 8]), state: &state)

            // 2025, quarter by quarter: 450_000 by September …
            try await Self.report(api, f, id, "2025-01-01", "2025-03-31", netSales: 4_000_000, royalty: 200_000,
                                  paid: MoneyPart(amount: 200_000, broker: 0, park: 4_000, institute: 98_001, inventors: [32_663, 32_663, 32_673]),
                                  state: &state)
            try await Self.report(api, f, id, "2025-04-01", "2025-06-30", netSales: 3_000_001, royalty: 150_000,
                                  paid: MoneyPart(amount: 150_000, broker: 0, park: 3_000, institute: 73_502, inventors: [24_497, 24_497, 24_504]),
                                  state: &state)
            try await Self.report(api, f, id, "2025-07-01", "2025-09-30", netSales: 2_000_019, royalty: 100_000,
                                  paid: MoneyPart(amount: 100_000, broker: 0, park: 2_000, institute: 49_002, inventors: [16_331, 16_331, 16_336]),
                                  state: &state)
            // … and the fourth quarter's 50_000 leaves 500_000 to the minimum of 1_000_000: paid with it, split the same way.
            try await Self.report(api, f, id, "2025-10-01", "2025-12-31", netSales: 1_000_000, royalty: 50_000, topUp: 500_000,
                                  paid: MoneyPart(amount: 550_000, broker: 0, park: 11_000, institute: 269_501, inventors: [89_824, 89_824, 89_851]),
                                  state: &state)

            let reports = try await api.moneyRoyaltyReports(id)
            let paid2025 = reports.filter { $0["period"]["to"].string?.hasPrefix("2025") == true }.reduce(Int64(0)) { $0 + ($1["amount_paid"].int ?? 0) }
            #expect(paid2025 == 1_000_000, "\(reports)")
            let paid2024 = reports.filter { $0["period"]["to"].string?.hasPrefix("2024") == true }.reduce(Int64(0)) { $0 + ($1["amount_paid"].int ?? 0) }
            #expect(paid2024 == 1_500_050, "\(reports)")
            #expect(try await api.moneyOperating(f.buyer.id).available == 3_000_000 - 1_500_050 - 1_000_000)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Periods and currencies

    @Test func periodsMustFallInTheTermAndNeverOverlap() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            var (id, state) = try await Self.fundedRoyaltyDeal(api, f)
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 1_000_000)
            state = state.depositing(1_000_000)
            let untouched = try await api.moneyLedgerSnapshot()

            // Refused before anything is paid or stored.
            let invalid: [(String, String, Any, String, String)] = [
                ("2023-12-31", "2024-03-31", 1_000, "CNY", "period.from"),  // before the term starts
                (utcDate(-10), utcDate(1), 1_000, "CNY", "period.to"),      // not over yet
                ("2030-10-01", "2030-12-31", 1_000, "CNY", "period.to"),     // in the future
                ("2024-03-31", "2024-01-01", 1_000, "CNY", "period.to"),     // backwards
                ("2024-02-30", "2024-03-31", 1_000, "CNY", "period.from"),   // no such day
                ("2024-01-01", "2024-03-31", 1_000, "USD", "currency"),      // not the deal's currency
                ("2024-01-01", "2024-03-31", 1_000, "cny", "currency"),      // not a currency code
                ("2024-01-01", "2024-03-31", -1, "CNY", "net_sales"),
                ("2024-01-01", "2024-03-31", (1 << 53) + 1, "CNY", "net_sales"),
            ]
            for (from, to, netSales, currency, field) in invalid {
                let response = try await api.moneyRoyalty(id, from: from, to: to, netSales: netSales, currency: currency, key: f.buyer.key)
                expectInvalid(response, field)
            }
            // Only the buyer reports.
            expectProblem(try await api.moneyRoyalty(id, from: "2024-01-01", to: "2024-03-31", netSales: 1_000, key: f.seller.key), .forbidden, "forbidden")
            expectProblem(try await api.moneyRoyalty(id, from: "2024-01-01", to: "2024-03-31", netSales: 1_000, key: f.committee.key), .forbidden, "forbidden")
            expectProblem(try await api.moneyRoyalty(id, from: "2024-01-01", to: "2024-03-31", netSales: 1_000, key: f.outsider.key), .notFound, "not_found")
            #expect(try await api.moneyLedgerSnapshot() == untouched)
            #expect(try await api.moneyRoyaltyReports(id).isEmpty)

            // The first quarter of 2024, the term's first day included.
            try await Self.report(api, f, id, "2024-01-01", "2024-03-31", netSales: 1_000_000, royalty: 50_000,
                                  paid: MoneyPart(amount: 50_000, broker: 0, park: 1_000, institute: 24_502, inventors: [8_165, 8_165, 8_168]), state: &state)
            let afterQ1 = try await api.moneyLedgerSnapshot()

            // Overlapping it by one day, lying inside it, or the same period again: 409, nothing paid.
            for (from, to) in [("2024-03-31", "2024-06-30"), ("2024-02-01", "2024-02-29"), ("2024-01-01", "2024-03-31"), ("2023-12-31", "2024-12-31")] {
                let response = try await api.moneyRoyalty(id, from: from, to: to, netSales: 1_000_000, key: f.buyer.key)
                if from < "2024-01-01" { expectInvalid(response, "period.from") } else { expectProblem(response, .conflict, "conflict", fields: ["period"]) }
            }
            #expect(try await api.moneyLedgerSnapshot() == afterQ1, "an overlapping report must pay nothing")
            #expect(try await api.moneyRoyaltyReports(id).count == 1)

            // The next day starts an adjacent period: fine.
            try await Self.report(api, f, id, "2024-04-01", "2024-06-30", netSales: 2_000_000, royalty: 100_000,
                                  paid: MoneyPart(amount: 100_000, broker: 0, park: 2_000, institute: 49_002, inventors: [16_331, 16_331, 16_336]), state: &state)

            // A retried report with the same Idempotency-Key is replayed, paid once.
            let key: HTTPFields = [.tbIdempotencyKey: "royalty-2024-q3-\(id)"]
            let first = try await api.moneyRoyalty(id, from: "2024-07-01", to: "2024-09-30", netSales: 200, key: f.buyer.key, headers: key)
            try #require(first.status == .created, "\(first)")
            state = state.paying(MoneyPart(amount: 10, broker: 0, park: 0, institute: 7, inventors: [1, 1, 1]))
            try await api.expectMoney(f, state, "after the third quarter")
            let replay = try await api.moneyRoyalty(id, from: "2024-07-01", to: "2024-09-30", netSales: 200, key: f.buyer.key, headers: key)
            #expect(replay.status == .created && replay.headers[.tbIdempotentReplayed] == "true" && replay.body == first.body, "\(replay)")
            expectProblem(try await api.moneyRoyalty(id, from: "2024-07-01", to: "2024-09-30", netSales: 200, key: f.buyer.key), .conflict, "conflict")
            try await api.expectMoney(f, state, "after the retries")
            #expect(try await api.moneyRoyaltyReports(id).count == 3)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aTermThatEndedBoundsThePeriodAndAnUnfundedDealTakesNoReports() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let id = try await api.signedDealID(f, Self.royaltyTerms(startsOn: "2023-01-01", endsOn: "2023-12-31", upfront: 0, minimum: 0))
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 1_000)
            let before = try await api.moneyLedgerSnapshot()
            // Signed but not funded (active) yet.
            expectIllegalTransition(try await api.moneyRoyalty(id, from: "2023-01-01", to: "2023-03-31", netSales: 1_000, key: f.buyer.key), state: "signed")
            #expect(try await api.moneyLedgerSnapshot() == before)

            let funded = try await api.escrow(id, key: f.buyer.key)
            try #require(funded.status == .ok && funded.json["status"].string == "active", "\(funded)")
            let fundedState = try await api.moneyLedgerSnapshot()
            expectInvalid(try await api.moneyRoyalty(id, from: "2023-10-01", to: "2024-01-31", netSales: 1_000, key: f.buyer.key), "period.to")
            expectInvalid(try await api.moneyRoyalty(id, from: "2022-10-01", to: "2023-01-31", netSales: 1_000, key: f.buyer.key), "period.from")
            #expect(try await api.moneyLedgerSnapshot() == fundedState)

            // The whole last quarter of the term: 50 fen, no minimum to top up.
            var state = MoneyState.expected(deposit: 1_000, released: [], held: 0)
            try await Self.report(api, f, id, "2023-10-01", "2023-12-31", netSales: 1_000, royalty: 50,
                                  paid: MoneyPart(amount: 50, broker: 0, park: 1, institute: 25, inventors: [8, 8, 8]), state: &state)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Funds

    @Test func aRoyaltyTheBuyerCannotPayIsRefusedAndNotStored() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            var (id, state) = try await Self.fundedRoyaltyDeal(api, f)
            #expect(state.buyer.available == 0)

            // 1_000_000 × 5 % = 50_000: with nothing, then with one fen short, refused.
            for deposit: Int64 in [0, 49_999] {
                if deposit > 0 {
                    try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: deposit)
                    state = state.depositing(deposit)
                }
                let before = try await api.moneyLedgerSnapshot()
                let refused = try await api.moneyRoyalty(id, from: "2025-01-01", to: "2025-03-31", netSales: 1_000_000, key: f.buyer.key)
                expectProblem(refused, .unprocessableContent, "exceeds_credits")
                #expect(try await api.moneyLedgerSnapshot() == before)
                #expect(try await api.moneyRoyaltyReports(id).isEmpty, "a refused report must not be stored")
            }
            // The last fen, and the same period goes through: nothing of the refusals was left behind.
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 1)
            state = state.depositing(1)
            try await Self.report(api, f, id, "2025-01-01", "2025-03-31", netSales: 1_000_000, royalty: 50_000,
                                  paid: MoneyPart(amount: 50_000, broker: 0, park: 1_000, institute: 24_502, inventors: [8_165, 8_165, 8_168]), state: &state)
            #expect(state.buyer.available == 0)

            // The year's last report owes the top-up of 950_000 even without sales: refused until the buyer can pay it.
            let before = try await api.moneyLedgerSnapshot()
            expectProblem(try await api.moneyRoyalty(id, from: "2025-04-01", to: "2025-12-31", netSales: 0, key: f.buyer.key), .unprocessableContent, "exceeds_credits")
            #expect(try await api.moneyLedgerSnapshot() == before)
            #expect(try await api.moneyRoyaltyReports(id).count == 1)
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 950_000)
            state = state.depositing(950_000)
            try await Self.report(api, f, id, "2025-04-01", "2025-12-31", netSales: 0, royalty: 0, topUp: 950_000,
                                  paid: MoneyPart(amount: 950_000, broker: 0, park: 19_000, institute: 465_501, inventors: [155_151, 155_151, 155_197]),
                                  state: &state)
            #expect(state.buyer.available == 0)
            try await api.expectLedgerInvariants()
        }
    }
}

extension API {
    /// `POST /v1/deals/{id}/royalty-reports` as `key`.
    func moneyRoyalty(_ dealID: String, from: String, to: String, netSales: Any, currency: String = "CNY", key: String, headers: HTTPFields = [:],
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/deals/\(dealID)/royalty-reports", key: key,
                       json: ["period": ["from": from, "to": to], "net_sales": netSales, "currency": currency], headers: headers, sourceLocation: sourceLocation)
    }

    /// A deal's royalty reports as `key` reads them (which must succeed).
    func moneyRoyaltyReports(_ dealID: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        let response = try await call(.get, "/v1/deals/\(dealID)/royalty-reports", key: key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json["data"].array
    }
}
