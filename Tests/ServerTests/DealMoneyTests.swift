import Foundation
import HTTPTypes
import TechBank
import Testing

/// The money side of deals over HTTP: escrow funding, milestone releases with the fee splits and
/// the inventors' distribution, disputes, termination and retried releases, every balance exact
/// to the fen (minor unit). The technology has three inventors (3333 / 3333 / 3334 bp); the
/// institute keeps 5000 bp of the seller's share (the default DealRules).
@Suite("Deal money")
struct DealMoneyTests {
    // MARK: Split tables, worked out by hand

    /// A brokered deal: 1000 bp broker fee, 200 bp sub-park fee.
    static let brokered = [
        MoneyPart(amount: 1_000_001, broker: 100_000, park: 20_000, institute: 440_001, inventors: [146_652, 146_652, 146_696]),
        MoneyPart(amount: 2_000_003, broker: 200_000, park: 40_000, institute: 880_003, inventors: [293_304, 293_304, 293_392]),
        MoneyPart(amount: 3_333_333, broker: 333_333, park: 66_666, institute: 1_466_668, inventors: [488_840, 488_840, 488_986]),
        // 7 fen: no fee reaches a whole fen; the institute keeps 3, each inventor gets 1 of the pool of 4, the last fen stays with the institute.
        MoneyPart(amount: 7, broker: 0, park: 0, institute: 4, inventors: [1, 1, 1]),
    ]

    /// The seller's own deals (no broker): 200 bp sub-park fee.
    static let disputed = [
        MoneyPart(amount: 500_000, broker: 0, park: 10_000, institute: 245_001, inventors: [81_658, 81_658, 81_683]),
        MoneyPart(amount: 1_000_000, broker: 0, park: 20_000, institute: 490_000, inventors: [163_317, 163_317, 163_366]),
        MoneyPart(amount: 2_000_001, broker: 0, park: 40_000, institute: 980_001, inventors: [326_634, 326_634, 326_732]),
        MoneyPart(amount: 300_003, broker: 0, park: 6_000, institute: 147_003, inventors: [48_995, 48_995, 49_010]),
    ]
    static let cancelled = [
        MoneyPart(amount: 100_000, broker: 0, park: 2_000, institute: 49_002, inventors: [16_331, 16_331, 16_336]),
        MoneyPart(amount: 200_000, broker: 0, park: 4_000, institute: 98_001, inventors: [32_663, 32_663, 32_673]),
        MoneyPart(amount: 300_000, broker: 0, park: 6_000, institute: 147_001, inventors: [48_995, 48_995, 49_009]),
        MoneyPart(amount: 400_000, broker: 0, park: 8_000, institute: 196_002, inventors: [65_326, 65_326, 65_346]),
    ]
    static let retried = [
        MoneyPart(amount: 1_234_567, broker: 0, park: 24_691, institute: 604_940, inventors: [201_625, 201_625, 201_686]),
        MoneyPart(amount: 7_654_321, broker: 0, park: 153_086, institute: 3_750_619, inventors: [1_250_080, 1_250_080, 1_250_456]),
    ]

    @Test func theSplitTablesAddUp() {
        for part in Self.brokered + Self.disputed + Self.cancelled + Self.retried { part.expectConsistent() }
    }

    /// Terms of the seller's own deal: upfront and milestones as given, 200 bp to the sub-park.
    static func sellerTerms(upfront: Int, milestones: [Int]) -> [String: Any] {
        dealBody(upfront: upfront, milestones: milestones.enumerated().map { dealMilestone("Milestone \($0 + 1)", $1, dueOn: utcDate(60 * ($0 + 1))) },
                 subParkFeeBP: 200)
    }

    // MARK: A whole deal

    @Test func aBrokeredDealPaysEveryoneToTheFenThroughEveryMilestone() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.brokered
            let body = dealBody(upfront: 1_000_001,
                                milestones: [dealMilestone("Pilot plant", 2_000_003, dueOn: utcDate(90)), dealMilestone("Scale-up", 3_333_333, dueOn: utcDate(180)),
                                             dealMilestone("Handover", 7, dueOn: utcDate(270))],
                                brokerFeeBP: 1_000, subParkFeeBP: 200)
            let id = try await api.moneyBrokerSignedDealID(f, body)
            let signed = try await api.dealJSON(id)
            #expect(signed["total_amount"].int == 6_333_344 && signed["broker_id"].string == f.broker.id && signed["status"].string == "signed", "\(signed)")

            // 56 fen more than the deal needs.
            let deposit: Int64 = 6_333_400
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: deposit)
            try await api.expectMoney(f, .expected(deposit: deposit, released: [], held: 0), "before funding")

            // Funding: the upfront fee goes straight through escrow to the seller's side; each milestone is a hold.
            let funded = try await api.escrow(id, key: f.buyer.key)
            try #require(funded.status == .ok, "\(funded)")
            #expect(funded.json["status"].string == "active" && funded.json["funded_at"].string != nil, "\(funded)")
            #expect(funded.json["milestones"].array.map { $0["status"].string } == ["funded", "funded", "funded"], "\(funded)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0]], held: 5_333_343), "after funding")
            #expect(try await api.moneyOperating(f.buyer.id).available == 56)

            // Escrowed money cannot be withdrawn: 57 fen is one too many.
            let before = try await api.moneyLedgerSnapshot()
            let greedy = try await api.moneyPayment("withdrawals", organizationID: f.buyer.id, amount: 57)
            expectProblem(greedy, .unprocessableContent, "exceeds_credits")
            #expect(try await api.moneyLedgerSnapshot() == before)

            // Each release posts its own hold and splits it; the holds on the buyer shrink accordingly.
            let held: [Int64] = [3_333_340, 7, 0]
            for number in 1...3 {
                let released = try await api.releaseOK(id, milestone: number, key: f.buyer.key)
                #expect(released["status"].string == (number < 3 ? "active" : "completed"), "after milestone \(number): \(released)")
                #expect(released["milestones"].array.compactMap { $0["status"].string } == (1...3).map { $0 <= number ? "released" : "funded" }, "\(released)")
                try await api.expectMoney(f, .expected(deposit: deposit, released: Array(parts[0...number]), held: held[number - 1]),
                                          "after milestone \(number)")
            }
            #expect(try await api.dealStatus(id) == "completed")

            // The final balances, spelled out.
            let final = try await api.moneyState(f)
            #expect(final.buyer == MoneyBalance(6_333_344, 6_333_400, 0, 0))
            #expect(final.broker == MoneyBalance(0, 633_333, 0, 0))
            #expect(final.park == MoneyBalance(0, 126_666, 0, 0))
            #expect(final.seller == MoneyBalance(2_786_669, 5_573_345, 0, 0) && final.seller.available == 2_786_676)
            #expect(final.inventors == [MoneyBalance(0, 928_797), MoneyBalance(0, 928_797), MoneyBalance(0, 929_075)])
            #expect(final.escrow == MoneyBalance(6_333_344, 6_333_344, 0, 0))

            // The institute's balances: its operating account and one inventor account per inventor, named.
            let institute = try #require(try await api.moneyBalancesByCurrency(f.seller.id)["CNY"])
            #expect(institute.filter { $0["code"].string == "operating" }.count == 1)
            let inventorAccounts = institute.filter { $0["code"].string == "inventor" }
            #expect(Set(inventorAccounts.compactMap { $0["metadata"]["inventor"].string }) == Set(moneyInventorNames), "\(inventorAccounts)")
            #expect(inventorAccounts.allSatisfy { $0["metadata"]["technology_id"].string == f.technologyID && $0["debits_must_not_exceed_credits"].bool == true })
            #expect(institute.count == 4, "\(institute)")

            // The buyer takes its 56 fen back.
            try await api.moneyPaymentOK("withdrawals", organizationID: f.buyer.id, amount: 56)
            #expect(try await api.moneyOperating(f.buyer.id) == MoneyBalance(6_333_400, 6_333_400, 0, 0))
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Funding

    @Test func fundingWithoutEnoughMoneyIsRefusedAndChangesNothing() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.disputed
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 1_000_000, milestones: [2_000_001, 300_003]))
            let total: Int64 = 3_300_004

            // No money at all, then one fen short.
            for deposit: Int64 in [0, total - 1] {
                if deposit > 0 { try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: deposit) }
                let before = try await api.moneyLedgerSnapshot()
                let refused = try await api.escrow(id, key: f.buyer.key)
                expectProblem(refused, .unprocessableContent, "exceeds_credits")
                #expect(try await api.moneyLedgerSnapshot() == before, "a refused funding must not change any balance")
                let deal = try await api.dealJSON(id)
                #expect(deal["status"].string == "signed" && deal["funded_at"].isNull, "\(deal)")
                #expect(deal["milestones"].array.map { $0["status"].string } == ["scheduled", "scheduled"], "\(deal)")
                #expect(try await api.moneyDealTransferCount(id) == 0, "no hold may be left behind")
                #expect(try await api.moneyOperating(f.buyer.id) == MoneyBalance(0, deposit, 0, 0))
            }

            // One more fen, and it goes through: the buyer has nothing left over.
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 1)
            let funded = try await api.escrow(id, key: f.buyer.key)
            try #require(funded.status == .ok, "\(funded)")
            #expect(funded.json["status"].string == "active", "\(funded)")
            // The upfront fee of 1_000_000 splits like the disputed deal's first milestone.
            try await api.expectMoney(f, .expected(deposit: total, released: [parts[1]], held: 2_300_004), "after funding")
            #expect(try await api.moneyOperating(f.buyer.id).available == 0)

            // Funding twice is an illegal transition and moves nothing.
            let before = try await api.moneyLedgerSnapshot()
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "active")
            #expect(try await api.moneyLedgerSnapshot() == before)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Disputes

    @Test func aDisputedMilestoneIsFrozenUntilTheCommitteeRefundsOrReleasesIt() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.disputed
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 500_000, milestones: [1_000_000, 2_000_001, 300_003]))
            let deposit: Int64 = 3_800_004
            try await api.fundDeal(id, f)
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0]], held: 3_300_004), "after funding")
            let funded = try await api.moneyLedgerSnapshot()

            // The buyer disputes milestone 1: it and the deal are disputed, and the buyer can no longer release it.
            let disputed = try await api.dealActionOK(id, "milestones/1/dispute", key: f.buyer.key, json: ["reason": "The prototype fails the acceptance test."])
            #expect(disputed["status"].string == "disputed", "\(disputed)")
            #expect(disputed["milestones"].array.map { $0["status"].string } == ["disputed", "funded", "funded"], "\(disputed)")
            let blocked = try await api.release(id, milestone: 1, key: f.buyer.key)
            expectProblem(blocked, .conflict, "illegal_transition", fields: ["status"])
            // The seller disputes milestone 2.
            let both = try await api.dealActionOK(id, "milestones/2/dispute", key: f.seller.key, json: ["reason": "The buyer withholds site access."])
            #expect(both["status"].string == "disputed" && both["milestones"].array.map { $0["status"].string } == ["disputed", "disputed", "funded"], "\(both)")
            expectProblem(try await api.release(id, milestone: 2, key: f.buyer.key), .conflict, "illegal_transition", fields: ["status"])

            // Only the parties dispute, only the committee resolves.
            expectProblem(try await api.dealAction(id, "milestones/3/dispute", key: f.committee.key, json: ["reason": "x"]), .forbidden, "forbidden")
            expectProblem(try await api.dealAction(id, "milestones/3/dispute", key: f.outsider.key, json: ["reason": "x"]), .notFound, "not_found")
            for key in [f.buyer.key, f.seller.key, operatorKey] {
                expectProblem(try await api.dealAction(id, "milestones/1/resolve", key: key, json: ["decision": "refund", "reason": "x"]), .forbidden, "forbidden")
            }
            expectInvalid(try await api.dealAction(id, "milestones/1/resolve", key: f.committee.key, json: ["decision": "split", "reason": "x"]), "decision")
            #expect(try await api.moneyLedgerSnapshot() == funded, "disputes and refused requests move no money")

            // Refund: the hold is voided, the buyer has its money back; the deal stays disputed over milestone 2.
            let refunded = try await api.dealActionOK(id, "milestones/1/resolve", key: f.committee.key,
                                                      json: ["decision": "refund", "reason": "The acceptance test failed twice."])
            #expect(refunded["status"].string == "disputed", "\(refunded)")
            #expect(refunded["milestones"].array.map { $0["status"].string } == ["refunded", "disputed", "funded"], "\(refunded)")
            #expect(refunded["milestones"][0]["resolution_reason"].string == "The acceptance test failed twice.", "\(refunded)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0]], held: 2_300_004), "after the refund")
            #expect(try await api.moneyOperating(f.buyer.id).available == 1_000_000)
            expectProblem(try await api.dealAction(id, "milestones/1/resolve", key: f.committee.key, json: ["decision": "release", "reason": "again"]),
                          .conflict, "illegal_transition", fields: ["status"])

            // Release: milestone 2 is paid to the seller with the splits; the deal is active again.
            let released = try await api.dealActionOK(id, "milestones/2/resolve", key: f.committee.key,
                                                      json: ["decision": "release", "reason": "Site access was granted on time."])
            #expect(released["status"].string == "active", "\(released)")
            #expect(released["milestones"].array.map { $0["status"].string } == ["refunded", "released", "funded"], "\(released)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[2]], held: 300_003), "after the release")

            // The last milestone, released by the buyer, completes the deal.
            let completed = try await api.releaseOK(id, milestone: 3, key: f.buyer.key)
            #expect(completed["status"].string == "completed", "\(completed)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[2], parts[3]], held: 0), "at the end")
            #expect(try await api.moneyOperating(f.buyer.id).available == 1_000_000)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anotherMilestoneCanBeReleasedDuringADisputeAndTheLastResolutionCompletesTheDeal() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.disputed
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 500_000, milestones: [1_000_000, 2_000_001]))
            let deposit: Int64 = 3_500_001
            try await api.fundDeal(id, f)
            try await api.dealActionOK(id, "milestones/1/dispute", key: f.seller.key, json: ["reason": "Unpaid for months."])
            // Milestone 2 is not in dispute: the buyer may release it; the deal stays disputed.
            let released = try await api.releaseOK(id, milestone: 2, key: f.buyer.key)
            #expect(released["status"].string == "disputed", "\(released)")
            #expect(released["milestones"].array.map { $0["status"].string } == ["disputed", "released"], "\(released)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[2]], held: 1_000_000), "after releasing milestone 2")
            // Refunding the last open milestone settles everything: the deal is completed.
            let resolved = try await api.dealActionOK(id, "milestones/1/resolve", key: f.committee.key, json: ["decision": "refund", "reason": "Not delivered."])
            #expect(resolved["status"].string == "completed", "\(resolved)")
            #expect(resolved["milestones"].array.map { $0["status"].string } == ["refunded", "released"], "\(resolved)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[2]], held: 0), "after the refund")
            #expect(try await api.moneyOperating(f.buyer.id).available == 1_000_000)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anUpfrontOnlyDealIsPaidAndCompletedAtFunding() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.disputed
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 2_000_001, milestones: []))
            let funded = try await api.fundDeal(id, f)
            #expect(funded["status"].string == "completed" && funded["milestones"].array.isEmpty, "\(funded)")
            try await api.expectMoney(f, .expected(deposit: 2_000_001, released: [parts[2]], held: 0), "after funding")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Termination

    @Test func terminationRefundsEveryUnreleasedHoldAndKeepsWhatWasReleased() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.cancelled
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 100_000, milestones: [200_000, 300_000, 400_000]))
            let deposit: Int64 = 1_000_000
            try await api.fundDeal(id, f)
            try await api.releaseOK(id, milestone: 1, key: f.buyer.key)
            try await api.dealActionOK(id, "milestones/3/dispute", key: f.seller.key, json: ["reason": "Delayed without notice."])
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[1]], held: 700_000), "before termination")

            // The parties cannot end a signed deal on their own.
            let before = try await api.moneyLedgerSnapshot()
            for party in [f.seller, f.buyer] {
                expectIllegalTransition(try await api.dealAction(id, "cancel", key: party.key), state: "disputed")
            }
            #expect(try await api.moneyLedgerSnapshot() == before)

            // The committee terminates: milestones 2 (funded) and 3 (disputed) are refunded, milestone 1 stays paid.
            let terminated = try await api.dealActionOK(id, "cancel", key: f.committee.key)
            #expect(terminated["status"].string == "terminated", "\(terminated)")
            #expect(terminated["milestones"].array.map { $0["status"].string } == ["released", "refunded", "refunded"], "\(terminated)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0], parts[1]], held: 0), "after termination")
            #expect(try await api.moneyOperating(f.buyer.id).available == 700_000)

            // Nothing moves any more.
            let after = try await api.moneyLedgerSnapshot()
            expectIllegalTransition(try await api.release(id, milestone: 2, key: f.buyer.key), state: "terminated")
            expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.committee.key), state: "terminated")
            expectProblem(try await api.dealAction(id, "milestones/3/resolve", key: f.committee.key, json: ["decision": "release", "reason": "late"]),
                          .conflict, "illegal_transition", fields: ["status"])
            #expect(try await api.moneyLedgerSnapshot() == after)

            // The refund is the buyer's to withdraw.
            try await api.moneyPaymentOK("withdrawals", organizationID: f.buyer.id, amount: 700_000)
            #expect(try await api.moneyOperating(f.buyer.id) == MoneyBalance(1_000_000, 1_000_000, 0, 0))
            try await api.expectLedgerInvariants()
        }
    }

    @Test func terminatingASignedUnfundedDealMovesNoMoney() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 100_000, milestones: [200_000]))
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: 300_000)
            let before = try await api.moneyLedgerSnapshot()
            let terminated = try await api.dealActionOK(id, "cancel", key: f.committee.key)
            #expect(terminated["status"].string == "terminated", "\(terminated)")
            #expect(try await api.moneyLedgerSnapshot() == before)
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "terminated")
            #expect(try await api.moneyLedgerSnapshot() == before)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Retries

    @Test func aRetriedReleasePaysOnce() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.retried
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 0, milestones: [1_234_567, 7_654_321]))
            let deposit: Int64 = 8_888_888
            try await api.moneyPaymentOK("deposits", organizationID: f.buyer.id, amount: deposit)

            // Funding retried with the same Idempotency-Key is replayed; without one it is an illegal transition.
            let fundKey: HTTPFields = [.tbIdempotencyKey: "fund-\(id)"]
            let funded = try await api.escrow(id, key: f.buyer.key, headers: fundKey)
            try #require(funded.status == .ok, "\(funded)")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [], held: deposit), "after funding (no upfront fee)")
            let fundedState = try await api.moneyLedgerSnapshot()
            let fundReplay = try await api.escrow(id, key: f.buyer.key, headers: fundKey)
            #expect(fundReplay.status == .ok && fundReplay.headers[.tbIdempotentReplayed] == "true" && fundReplay.body == funded.body, "\(fundReplay)")
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "active")
            #expect(try await api.moneyLedgerSnapshot() == fundedState)

            // Release with a key, then the same again: the second is the first's answer, replayed.
            let releaseKey: HTTPFields = [.tbIdempotencyKey: "release-1-\(id)"]
            let first = try await api.release(id, milestone: 1, key: f.buyer.key, headers: releaseKey)
            try #require(first.status == .ok, "\(first)")
            #expect(first.headers[.tbIdempotentReplayed] == nil)
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0]], held: 7_654_321), "after the release")
            let released = try await api.moneyLedgerSnapshot()
            let replay = try await api.release(id, milestone: 1, key: f.buyer.key, headers: releaseKey)
            #expect(replay.status == .ok && replay.headers[.tbIdempotentReplayed] == "true" && replay.body == first.body, "\(replay)")
            #expect(try await api.moneyLedgerSnapshot() == released, "a replay moves no money")
            // Without a key (or with another one) the retry is refused: the milestone is released already.
            expectProblem(try await api.release(id, milestone: 1, key: f.buyer.key), .conflict, "illegal_transition", fields: ["status"])
            expectProblem(try await api.release(id, milestone: 1, key: f.buyer.key, headers: [.tbIdempotencyKey: "another-\(id)"]),
                          .conflict, "illegal_transition", fields: ["status"])
            #expect(try await api.moneyLedgerSnapshot() == released, "a refused retry moves no money")
            try await api.expectMoney(f, .expected(deposit: deposit, released: [parts[0]], held: 7_654_321), "after the retries")
            // Two holds, and five payments for the released milestone: the sub-park, the seller and three inventors.
            #expect(try await api.moneyDealTransferCount(id) == 2 + 5)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func concurrentReleasesOfOneMilestonePayOnce() async throws {
        try await withAPI { api in
            let f = try await api.moneyFixture()
            let parts = Self.retried
            let id = try await api.signedDealID(f, Self.sellerTerms(upfront: 0, milestones: [1_234_567, 7_654_321]))
            let deposit: Int64 = 8_888_888
            try await api.fundDeal(id, f)
            let deals = Deals(pool: api.pool)
            let dealID = try #require(UUID(uuidString: id))
            let buyerID = try #require(UUID(uuidString: f.buyer.id))

            for (number, released) in [(1, [parts[0]]), (2, parts)] {
                // Several releases of the same milestone at once: exactly one pays, the others find it released.
                let outcomes = await withTaskGroup(of: Result<DealStatus, any Error>.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            do { return .success(try await deals.release(dealID, milestone: number, evidence: "delivered", actor: buyerID).status) } catch { return .failure(error) }
                        }
                    }
                    var outcomes: [Result<DealStatus, any Error>] = []
                    for await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
                let successes = outcomes.compactMap { try? $0.get() }
                #expect(successes.count == 1, "milestone \(number): \(outcomes)")
                for case .failure(let error) in outcomes {
                    #expect((error as? TechBankError)?.code == .illegalTransition, "milestone \(number): \(error)")
                }
                let held: Int64 = number == 1 ? 7_654_321 : 0
                try await api.expectMoney(f, .expected(deposit: deposit, released: released, held: held), "after the releases of milestone \(number)")
            }
            #expect(try await api.dealStatus(id) == "completed")
            #expect(try await api.moneyDealTransferCount(id) == 2 + 5 + 5)
            try await api.expectLedgerInvariants()
        }
    }
}
