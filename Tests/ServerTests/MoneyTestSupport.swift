import Foundation
import HTTPTypes
import Postgres
import Testing

// Helpers of the money tests (DealMoneyTests, RoyaltyTests, DepositTests), on top of
// APITestSupport.swift, TechnologySupport.swift, MarketSupport.swift and DealSupport.swift.
// Every name starts with `money` (or `Money`) so as not to clash with other test helpers.

/// The inventors of the money tests' technology: three, 3333 / 3333 / 3334 basis points.
let moneyInventorNames = ["Zhao Lei", "Qian Mei", "Sun Hao"]
var moneyInventors: [[String: Any]] { [inventor("Zhao Lei", 3_333), inventor("Qian Mei", 3_333), inventor("Sun Hao", 3_334)] }

/// The four running balances of one ledger account, in minor units (fen).
struct MoneyBalance: Sendable, Equatable, CustomStringConvertible {
    var debitsPosted: Int64 = 0
    var creditsPosted: Int64 = 0
    var debitsPending: Int64 = 0
    var creditsPending: Int64 = 0

    init(_ debitsPosted: Int64 = 0, _ creditsPosted: Int64 = 0, _ debitsPending: Int64 = 0, _ creditsPending: Int64 = 0) {
        self.debitsPosted = debitsPosted
        self.creditsPosted = creditsPosted
        self.debitsPending = debitsPending
        self.creditsPending = creditsPending
    }

    init(_ account: JSON) {
        self.init(account["debits_posted"].int ?? -1, account["credits_posted"].int ?? -1, account["debits_pending"].int ?? -1,
                  account["credits_pending"].int ?? -1)
    }

    /// What an operating account may still spend.
    var available: Int64 { creditsPosted - debitsPosted - debitsPending }

    var description: String { "dp \(debitsPosted) cp \(creditsPosted) dpend \(debitsPending) cpend \(creditsPending)" }
}

/// One payment the seller side receives (an upfront fee, a milestone, a royalty) and its exact
/// split, worked out by hand: the broker's and sub-park's fees, what the institute keeps of the
/// seller's rest (its half plus the inventors' rounding) and each inventor's part.
struct MoneyPart: Sendable, CustomStringConvertible {
    let amount: Int64
    let broker: Int64
    let park: Int64
    let institute: Int64
    let inventors: [Int64]

    /// What reaches the seller's operating account before the inventors' parts leave it.
    var seller: Int64 { amount - broker - park }
    var description: String { "\(amount) → broker \(broker), park \(park), institute \(institute), inventors \(inventors)" }

    /// The hand-worked numbers must add up, or the table itself is wrong.
    func expectConsistent(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(broker + park + institute + inventors.reduce(0, +) == amount, "the split table does not add up: \(self)", sourceLocation: sourceLocation)
    }
}

/// The balances of everyone a deal pays: the buyer's, seller's, broker's and sub-park's
/// operating accounts, the seller's inventor accounts (in `moneyInventorNames` order) and the
/// bank's escrow account.
struct MoneyState: Sendable, Equatable, CustomStringConvertible {
    var buyer = MoneyBalance()
    var seller = MoneyBalance()
    var broker = MoneyBalance()
    var park = MoneyBalance()
    var inventors = [MoneyBalance(), MoneyBalance(), MoneyBalance()]
    var escrow = MoneyBalance()

    var description: String {
        "buyer [\(buyer)] seller [\(seller)] broker [\(broker)] park [\(park)] inventors \(inventors.map { "[\($0)]" }.joined(separator: " ")) escrow [\(escrow)]"
    }

    /// The state after `deposit` reached the buyer, the parts `released` were paid out through
    /// escrow and `held` is still held in escrow.
    static func expected(deposit: Int64, released: [MoneyPart], held: Int64) -> MoneyState {
        var state = MoneyState()
        let paid = released.reduce(0) { $0 + $1.amount }
        state.buyer = MoneyBalance(paid, deposit, held, 0)
        state.escrow = MoneyBalance(paid, paid, 0, held)
        state.broker = MoneyBalance(0, released.reduce(0) { $0 + $1.broker })
        state.park = MoneyBalance(0, released.reduce(0) { $0 + $1.park })
        state.seller = MoneyBalance(released.reduce(0) { $0 + $1.inventors.reduce(0, +) }, released.reduce(0) { $0 + $1.seller })
        state.inventors = (0..<3).map { index in MoneyBalance(0, released.reduce(0) { $0 + $1.inventors[index] }) }
        return state
    }

    /// This state after the buyer paid `part` straight from its operating account (a royalty).
    func paying(_ part: MoneyPart) -> MoneyState {
        var state = self
        state.buyer.debitsPosted += part.amount
        state.broker.creditsPosted += part.broker
        state.park.creditsPosted += part.park
        state.seller.creditsPosted += part.seller
        state.seller.debitsPosted += part.inventors.reduce(0, +)
        for index in state.inventors.indices { state.inventors[index].creditsPosted += part.inventors[index] }
        return state
    }

    /// This state after `amount` more reached the buyer.
    func depositing(_ amount: Int64) -> MoneyState {
        var state = self
        state.buyer.creditsPosted += amount
        return state
    }
}

extension API {
    // MARK: Fixtures

    /// The deal fixture, with its technology replaced by a listed one of the seller with the three
    /// `moneyInventors`.
    func moneyFixture(sourceLocation: SourceLocation = #_sourceLocation) async throws -> DealFixture {
        let f = try await dealFixture(sourceLocation: sourceLocation)
        let body = technologyBody("Closed-loop cathode relithiation", description: "Confidential: sintering profile.", field: "environmental_technology",
                                  inventors: moneyInventors)
        let technologyID = try await registerTechnologyID(as: f.seller, body, sourceLocation: sourceLocation)
        try await moveAll(technologyID, ["custody", "listing"], key: f.seller.key, sourceLocation: sourceLocation)
        return DealFixture(park: f.park, seller: f.seller, buyer: f.buyer, broker: f.broker, committee: f.committee, outsider: f.outsider,
                           technologyID: technologyID, demandID: f.demandID)
    }

    /// A deal the fixture's broker made for a fresh accepted match on the fixture's technology,
    /// taken to signed; `body` is the terms. Returns its id.
    func moneyBrokerSignedDealID(_ f: DealFixture, _ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let matchID = try await acceptedMatchID(f, technologyID: f.technologyID, sourceLocation: sourceLocation)
        var body = body
        body["match_id"] = matchID
        let id = try #require(try await createDealOK(as: f.broker, body, sourceLocation: sourceLocation)["id"].string, sourceLocation: sourceLocation)
        try await proposeAndSign(id, f, sourceLocation: sourceLocation)
        return id
    }

    // MARK: Payments

    /// `POST /v1/deposits` or `/v1/withdrawals` as `key`; `amount` may be anything JSON can carry.
    @discardableResult
    func moneyPayment(_ direction: String, organizationID: String, amount: Any, currency: String = "CNY", externalRef: String = "REF-\(newID())",
                      key: String? = operatorKey, headers: HTTPFields = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/\(direction)", key: key,
                       json: ["organization_id": organizationID, "amount": amount, "currency": currency, "external_ref": externalRef],
                       headers: headers, sourceLocation: sourceLocation)
    }

    /// A payment that must succeed (201); returns the transfer.
    @discardableResult
    func moneyPaymentOK(_ direction: String, organizationID: String, amount: Int64, currency: String = "CNY", externalRef: String = "REF-\(newID())",
                        sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await moneyPayment(direction, organizationID: organizationID, amount: amount, currency: currency, externalRef: externalRef,
                                              sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    // MARK: Balances

    /// `GET /v1/organizations/{id}/balances` as `key`.
    func moneyBalances(_ organizationID: String, key: String? = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, "/v1/organizations/\(organizationID)/balances", key: key, sourceLocation: sourceLocation)
    }

    /// The balances of `organizationID` as the operator reads them (which must succeed), by
    /// currency. Checks the shape: one entry per currency, sorted, every account of that currency
    /// and owned by the organization, and totals that are the sums of the accounts.
    func moneyBalancesByCurrency(_ organizationID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: [JSON]] {
        let response = try await moneyBalances(organizationID, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        #expect(response.json["next_cursor"].isNull, "\(response)", sourceLocation: sourceLocation)
        var result: [String: [JSON]] = [:]
        let entries = response.json["data"].array
        let currencies = entries.compactMap { $0["currency"].string }
        #expect(currencies == currencies.sorted() && Set(currencies).count == currencies.count, "currencies: \(currencies)", sourceLocation: sourceLocation)
        for entry in entries {
            let currency = try #require(entry["currency"].string, "\(entry)", sourceLocation: sourceLocation)
            let accounts = entry["accounts"].array
            #expect(!accounts.isEmpty, "\(entry)", sourceLocation: sourceLocation)
            for account in accounts {
                #expect(account["currency"].string == currency && account["owner_id"].string == organizationID, "\(account)", sourceLocation: sourceLocation)
            }
            for field in ["debits_posted", "credits_posted", "debits_pending", "credits_pending"] {
                let sum = accounts.reduce(Int64(0)) { $0 + ($1[field].int ?? 0) }
                #expect(entry["total"][field].int == sum, "\(currency) total \(field) \(entry["total"][field]) ≠ sum of the accounts \(sum)",
                        sourceLocation: sourceLocation)
            }
            result[currency] = accounts
        }
        return result
    }

    /// The operating account of `organizationID` in `currency` (zero balances if it has none yet).
    func moneyOperating(_ organizationID: String, currency: String = "CNY", sourceLocation: SourceLocation = #_sourceLocation) async throws -> MoneyBalance {
        let accounts = try await moneyBalancesByCurrency(organizationID, sourceLocation: sourceLocation)[currency] ?? []
        let operating = accounts.filter { $0["code"].string == "operating" }
        #expect(operating.count <= 1, "\(operating)", sourceLocation: sourceLocation)
        return operating.first.map(MoneyBalance.init) ?? MoneyBalance()
    }

    /// The inventor accounts (code `inventor`) the institute `sellerID` holds for `technologyID`,
    /// in `moneyInventorNames` order (zero balances for one not opened yet).
    func moneyInventorBalances(_ sellerID: String, technologyID: String, currency: String = "CNY",
                               sourceLocation: SourceLocation = #_sourceLocation) async throws -> [MoneyBalance] {
        let accounts = try await moneyBalancesByCurrency(sellerID, sourceLocation: sourceLocation)[currency] ?? []
        let inventors = accounts.filter { $0["code"].string == "inventor" && $0["metadata"]["technology_id"].string == technologyID }
        #expect(inventors.count <= moneyInventorNames.count, "\(inventors)", sourceLocation: sourceLocation)
        return moneyInventorNames.map { name in
            let matching = inventors.filter { $0["metadata"]["inventor"].string == name }
            #expect(matching.count <= 1, "\(matching)", sourceLocation: sourceLocation)
            return matching.first.map(MoneyBalance.init) ?? MoneyBalance()
        }
    }

    /// The bank's escrow account in `currency`, read through the operator's balances.
    func moneyEscrow(currency: String = "CNY", sourceLocation: SourceLocation = #_sourceLocation) async throws -> MoneyBalance {
        let bank = try await operatorID(sourceLocation: sourceLocation)
        let accounts = try await moneyBalancesByCurrency(bank, sourceLocation: sourceLocation)[currency] ?? []
        return accounts.first { $0["code"].string == "escrow" }.map(MoneyBalance.init) ?? MoneyBalance()
    }

    /// Everyone's balances in a deal of the fixture.
    func moneyState(_ f: DealFixture, currency: String = "CNY", sourceLocation: SourceLocation = #_sourceLocation) async throws -> MoneyState {
        MoneyState(
            buyer: try await moneyOperating(f.buyer.id, currency: currency, sourceLocation: sourceLocation),
            seller: try await moneyOperating(f.seller.id, currency: currency, sourceLocation: sourceLocation),
            broker: try await moneyOperating(f.broker.id, currency: currency, sourceLocation: sourceLocation),
            park: try await moneyOperating(f.park.id, currency: currency, sourceLocation: sourceLocation),
            inventors: try await moneyInventorBalances(f.seller.id, technologyID: f.technologyID, currency: currency, sourceLocation: sourceLocation),
            escrow: try await moneyEscrow(currency: currency, sourceLocation: sourceLocation))
    }

    /// Expects everyone's balances to be exactly `expected`.
    func expectMoney(_ f: DealFixture, _ expected: MoneyState, _ when: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let state = try await moneyState(f, sourceLocation: sourceLocation)
        #expect(state == expected, "\(when):\n  got      \(state)\n  expected \(expected)", sourceLocation: sourceLocation)
    }

    // MARK: The database behind the API

    /// Every account's balances, the number of transfers, payments, royalty reports and journal
    /// entries: what a refused request must leave exactly as it was.
    func moneyLedgerSnapshot(sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await pool.withConnection { connection in
            let accounts = try await connection.query(
                "SELECT id::text || ' ' || debits_posted || ' ' || credits_posted || ' ' || debits_pending || ' ' || credits_pending FROM ledger.accounts ORDER BY id")
            let counts = try await connection.query(
                """
                SELECT 'transfers ' || (SELECT count(*) FROM ledger.transfers) || ', payments ' || (SELECT count(*) FROM techbank.payments)
                    || ', royalty reports ' || (SELECT count(*) FROM techbank.royalty_reports) || ', open holds ' || (SELECT count(*) FROM ledger.open_holds)
                """)
            return try accounts.map { try $0.decode(String.self, at: 0) } + counts.map { try $0.decode(String.self, at: 0) }
        }
    }

    /// The number of ledger transfers made for deal `dealID` (by their metadata).
    func moneyDealTransferCount(_ dealID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int64 {
        try await pool.withConnection { connection in
            try await connection.query("SELECT count(*)::bigint FROM ledger.transfers WHERE metadata->>'deal_id' = $1", [dealID])
        }[0].decode(Int64.self, at: 0)
    }

    /// The statuses of a deal's milestones, in order.
    func moneyMilestoneStatuses(_ dealID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await dealJSON(dealID, sourceLocation: sourceLocation)["milestones"].array.compactMap { $0["status"].string }
    }
}
