import Foundation
import HTTPTypes
import Postgres
import Testing

@Suite("Deals: lifecycle, amendments, roles and creation rules")
struct DealLifecycleTests {
    static let dealKeys: Set<String> = [
        "id", "technology_id", "seller_id", "buyer_id", "broker_id", "match_id", "created_by", "status", "version", "approval_rule", "milestones",
        "seller_signed_at", "buyer_signed_at", "signed_at", "funded_at", "created_at", "updated_at",
        "kind", "field_of_use", "territories", "term", "currency", "upfront", "royalty_bp", "minimum_annual_royalty", "sublicensing_allowed",
        "broker_fee_bp", "sub_park_fee_bp", "contract_category", "total_amount",
    ]

    // MARK: The whole way

    @Test func aSellerDealGoesFromDraftToCompleted() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = newID()
            let created = try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, overrides: ["id": id]))
            try #require(created.status == .created, "\(created)")
            #expect(created.headers[.location] == "/v1/deals/\(id)", "\(created.headers)")
            #expect(created.headers[.eTag] == "\"v1\"", "\(created.headers)")
            let draft = created.json
            #expect(draft.keys == Self.dealKeys, "\(draft)")
            #expect(draft["id"].string == id && draft["status"].string == "draft" && draft["version"].int == 1, "\(draft)")
            #expect(draft["seller_id"].string == f.seller.id && draft["buyer_id"].string == f.buyer.id && draft["broker_id"].isNull, "\(draft)")
            #expect(draft["created_by"].string == f.seller.id && draft["match_id"].isNull && draft["approval_rule"].isNull, "\(draft)")
            #expect(draft["total_amount"].int == 6_000_000 && draft["upfront"].int == 1_000_000, "\(draft)")
            #expect(draft["milestones"].array.map { $0["status"].string } == ["scheduled", "scheduled"], "\(draft)")
            #expect(draft["milestones"].array.map { $0["number"].int } == [1, 2], "\(draft)")
            #expect(draft["seller_signed_at"].isNull && draft["buyer_signed_at"].isNull && draft["signed_at"].isNull && draft["funded_at"].isNull, "\(draft)")

            // draft → proposed (domestic, under the threshold, a licence: no rule).
            let proposed = try await api.proposeDeal(id, f)
            #expect(proposed["status"].string == "proposed" && proposed["approval_rule"].isNull, "\(proposed)")
            expectIllegalTransition(try await api.dealAction(id, "propose", key: f.buyer.key), state: "proposed")
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "proposed")
            expectIllegalTransition(try await api.release(id, milestone: 1, key: f.buyer.key), state: "scheduled")

            // One signature leaves it proposed; signing twice is refused.
            let half = try await api.dealActionOK(id, "sign", key: f.seller.key)
            #expect(half["status"].string == "proposed" && half["seller_signed_at"].string != nil && half["buyer_signed_at"].isNull, "\(half)")
            #expect(half["signed_at"].isNull, "\(half)")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.seller.key), state: "proposed")
            #expect(try await api.technology(f.technologyID).json["status"].string == "listed", "one signature licenses nothing")

            // proposed → signed.
            let signed = try await api.dealActionOK(id, "sign", key: f.buyer.key)
            #expect(signed["status"].string == "signed" && signed["signed_at"].string != nil && signed["buyer_signed_at"].string != nil, "\(signed)")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.buyer.key), state: "signed")
            expectIllegalTransition(try await api.dealAction(id, "propose", key: f.seller.key), state: "signed")
            #expect(try await api.technology(f.technologyID).json["status"].string == "licensed")
            expectIllegalTransition(try await api.release(id, milestone: 1, key: f.buyer.key), state: "scheduled")

            // signed → active: the upfront fee is paid at once, the milestones are held.
            let active = try await api.fundDeal(id, f)
            #expect(active["status"].string == "active" && active["funded_at"].string != nil, "\(active)")
            #expect(active["milestones"].array.map { $0["status"].string } == ["funded", "funded"], "\(active)")
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "active")

            // active → completed once every milestone is released (no royalty).
            let one = try await api.releaseOK(id, milestone: 1, key: f.buyer.key)
            #expect(one["status"].string == "active", "\(one)")
            expectIllegalTransition(try await api.release(id, milestone: 1, key: f.buyer.key), state: "released")
            let done = try await api.releaseOK(id, milestone: 2, key: f.buyer.key)
            #expect(done["status"].string == "completed", "\(done)")
            #expect(done["milestones"].array.map { $0["status"].string } == ["released", "released"], "\(done)")
            expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.committee.key), state: "completed")
            expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "completed")

            let events = try await api.journalEvents(of: id)
            #expect(Array(events.prefix(4)) == ["deal_created", "deal_proposed", "deal_signed", "deal_signed"], "\(events)")
            #expect(events.contains("deal_funded") && events.filter { $0 == "deal_milestone_released" }.count == 2, "\(events)")
            let journal = try await api.journal(of: id)
            #expect(journal.first?.payload["actor_id"].string == f.seller.id && journal.first?.payload["status"].string == "draft", "\(journal)")
            #expect(journal.last?.payload["status"].string == "completed", "\(journal)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aBrokerDealFromAnAcceptedMatch() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let matchID = try await api.acceptedMatchID(f)
            let created = try await api.createDealOK(as: f.broker, dealBody(matchID: matchID, brokerFeeBP: 500))
            let id = try #require(created["id"].string)
            #expect(created["broker_id"].string == f.broker.id && created["match_id"].string == matchID && created["created_by"].string == f.broker.id,
                    "\(created)")
            #expect(created["technology_id"].string == f.technologyID && created["seller_id"].string == f.seller.id && created["buyer_id"].string == f.buyer.id,
                    "\(created)")
            // The broker proposes but does not sign.
            let proposed = try await api.proposeDeal(id, f, by: f.broker)
            #expect(proposed["status"].string == "proposed", "\(proposed)")
            expectProblem(try await api.dealAction(id, "sign", key: f.broker.key), .forbidden, "forbidden")
            let signed = try await api.signBoth(id, f)
            #expect(signed["status"].string == "signed", "\(signed)")
            // The broker appears in the registration record.
            let registration = try await api.call(.get, "/v1/deals/\(id)/registration", key: f.broker.key)
            #expect(registration.json["parties"].array.map { $0["role"].string } == ["seller", "buyer", "broker"], "\(registration)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aDealWithRoyaltiesStaysActiveAfterItsMilestones() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.signedDealID(f, dealBody(royaltyBP: 300))
            try await api.fundDeal(id, f)
            try await api.releaseOK(id, milestone: 1, key: f.buyer.key)
            let last = try await api.releaseOK(id, milestone: 2, key: f.buyer.key)
            #expect(last["status"].string == "active", "a deal earning royalties is not complete: \(last)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aDealWithoutMilestonesCompletesWhenFunded() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.signedDealID(f, dealBody(upfront: 4_000_000, milestones: []))
            let funded = try await api.fundDeal(id, f)
            #expect(funded["status"].string == "completed", "\(funded)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func signingNeedsAProposedOrApprovedDeal() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let draft = try await api.sellerDealID(f)
            expectIllegalTransition(try await api.dealAction(draft, "sign", key: f.seller.key), state: "draft")
            expectIllegalTransition(try await api.dealAction(draft, "sign", key: f.buyer.key), state: "draft")
            expectIllegalTransition(try await api.escrow(draft, key: f.buyer.key), state: "draft")
            expectIllegalTransition(try await api.decideDeal(draft, "approve", key: f.committee.key), state: "draft")
            #expect(try await api.dealJSON(draft)["seller_signed_at"].isNull)

            let pending = try await api.sellerDealID(f, dealBody(upfront: 100_000_001, milestones: []))
            #expect(try await api.proposeDeal(pending, f)["status"].string == "approval_required")
            expectIllegalTransition(try await api.dealAction(pending, "sign", key: f.seller.key), state: "approval_required")
            expectIllegalTransition(try await api.dealAction(pending, "sign", key: f.buyer.key), state: "approval_required")
            expectIllegalTransition(try await api.dealAction(pending, "propose", key: f.seller.key), state: "approval_required")
            let read = try await api.dealJSON(pending)
            #expect(read["seller_signed_at"].isNull && read["buyer_signed_at"].isNull, "\(read)")

            // approved → signed.
            try await api.approveDeal(pending, f)
            let signed = try await api.signBoth(pending, f)
            #expect(signed["status"].string == "signed", "\(signed)")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Cancelling and terminating

    @Test func anyPartyCancelsBeforeSigning() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            // The seller cancels a draft, the buyer a proposed deal, the broker an approved one, the
            // committee one awaiting approval; the buyer cancels one the seller signed.
            let draft = try await api.sellerDealID(f)
            let proposed = try await api.sellerDealID(f)
            try await api.proposeDeal(proposed, f)
            let approved = try await api.brokerDealID(f, dealBody(kind: "assignment", brokerFeeBP: 500))
            #expect(try await api.proposeDeal(approved, f)["status"].string == "approval_required")
            try await api.approveDeal(approved, f)
            let pending = try await api.sellerDealID(f, dealBody(kind: "assignment"))
            try await api.proposeDeal(pending, f)
            let halfSigned = try await api.sellerDealID(f)
            try await api.proposeDeal(halfSigned, f)
            try await api.dealActionOK(halfSigned, "sign", key: f.seller.key)

            for (id, canceller) in [(draft, f.seller), (proposed, f.buyer), (approved, f.broker), (pending, f.committee), (halfSigned, f.buyer)] {
                let cancelled = try await api.dealActionOK(id, "cancel", key: canceller.key)
                #expect(cancelled["status"].string == "cancelled", "\(cancelled)")
                #expect(try await api.journalEvents(of: id).last == "deal_cancelled")
                // Nothing happens to a cancelled deal any more.
                expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.seller.key), state: "cancelled")
                expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.committee.key), state: "cancelled")
                expectIllegalTransition(try await api.dealAction(id, "propose", key: f.seller.key), state: "cancelled")
                expectIllegalTransition(try await api.dealAction(id, "sign", key: f.seller.key), state: "cancelled")
                expectIllegalTransition(try await api.dealAction(id, "sign", key: f.buyer.key), state: "cancelled")
                expectIllegalTransition(try await api.decideDeal(id, "approve", key: f.committee.key), state: "cancelled")
                expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "cancelled")
                let version = try #require(cancelled["version"].int)
                expectIllegalTransition(try await api.call(.patch, "/v1/deals/\(id)", key: f.seller.key, json: ["upfront": 5], headers: ifMatch(version)),
                                        state: "cancelled")
                #expect(try await api.dealStatus(id) == "cancelled")
            }
            // Cancelling grants nothing: the technology stays listed.
            #expect(try await api.technology(f.technologyID).json["status"].string == "listed")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func afterSigningOnlyTheCommitteeTerminates() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let signed = try await api.brokerDealID(f)
            try await api.proposeAndSign(signed, f)
            for party in [f.seller, f.buyer, f.broker] {
                expectIllegalTransition(try await api.dealAction(signed, "cancel", key: party.key), state: "signed")
            }
            #expect(try await api.dealStatus(signed) == "signed")
            let terminated = try await api.dealActionOK(signed, "cancel", key: f.committee.key)
            #expect(terminated["status"].string == "terminated", "\(terminated)")

            // An active deal: the committee's termination refunds the unreleased holds.
            let active = try await api.signedDealID(f, dealBody(kind: "non_exclusive_licence"))
            try await api.fundDeal(active, f)
            try await api.releaseOK(active, milestone: 1, key: f.buyer.key)
            expectIllegalTransition(try await api.dealAction(active, "cancel", key: f.buyer.key), state: "active")
            let ended = try await api.dealActionOK(active, "cancel", key: f.committee.key)
            #expect(ended["status"].string == "terminated", "\(ended)")
            #expect(ended["milestones"].array.map { $0["status"].string } == ["released", "refunded"], "\(ended)")
            // The buyer got the unreleased milestone back: 3_000_000 available, nothing pending.
            let balances = try await api.call(.get, "/v1/organizations/\(f.buyer.id)/balances", key: f.buyer.key)
            let totals = balances.json["data"][0]["total"]
            #expect(totals["credits_posted"].int.map { $0 - (totals["debits_posted"].int ?? 0) } == 3_000_000, "\(balances)")
            #expect(totals["debits_pending"].int == 0, "\(balances)")

            // Nothing happens to a terminated deal any more.
            for id in [signed, active] {
                expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.committee.key), state: "terminated")
                expectIllegalTransition(try await api.dealAction(id, "cancel", key: f.seller.key), state: "terminated")
                expectIllegalTransition(try await api.dealAction(id, "sign", key: f.buyer.key), state: "terminated")
                expectIllegalTransition(try await api.dealAction(id, "propose", key: f.seller.key), state: "terminated")
                expectIllegalTransition(try await api.escrow(id, key: f.buyer.key), state: "terminated")
                expectIllegalTransition(try await api.decideDeal(id, "approve", key: f.committee.key), state: "terminated")
                let version = try #require(try await api.dealJSON(id)["version"].int)
                expectIllegalTransition(try await api.call(.patch, "/v1/deals/\(id)", key: f.seller.key, json: ["upfront": 5], headers: ifMatch(version)),
                                        state: "terminated")
            }
            expectIllegalTransition(try await api.release(active, milestone: 2, key: f.buyer.key), state: "refunded")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Amendments

    @Test func amendmentsNeedIfMatchAndKeepEveryVersion() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.brokerDealID(f)
            let uri = "/v1/deals/\(id)"
            expectProblem(try await api.call(.patch, uri, key: f.seller.key, json: ["upfront": 2_000_000]), .preconditionRequired, "precondition_required")
            expectProblem(try await api.call(.patch, uri, key: f.seller.key, json: ["upfront": 2_000_000], headers: ifMatch(2)),
                          .preconditionFailed, "precondition_failed")
            #expect(try await api.dealJSON(id)["version"].int == 1, "a refused amendment changed the deal")

            // The seller amends the draft: version 2 with only the upfront fee changed.
            let second = try await api.call(.patch, uri, key: f.seller.key, json: ["upfront": 2_000_000], headers: ifMatch(1))
            try #require(second.status == .ok, "\(second)")
            #expect(second.headers[.eTag] == "\"v2\"", "\(second.headers)")
            #expect(second.json["version"].int == 2 && second.json["upfront"].int == 2_000_000 && second.json["total_amount"].int == 7_000_000, "\(second)")
            #expect(second.json["territories"] == .array([.string("CN")]) && second.json["broker_fee_bp"].int == 500, "\(second)")
            // A stale ETag is refused.
            expectProblem(try await api.call(.patch, uri, key: f.buyer.key, json: ["royalty_bp": 100], headers: ifMatch(1)), .preconditionFailed, "precondition_failed")
            // The broker amends the milestones, the buyer the territories of the proposed deal.
            let third = try await api.call(.patch, uri, key: f.broker.key, json: ["milestones": [dealMilestone("Only one", 4_000_000)]], headers: ifMatch(2))
            try #require(third.status == .ok, "\(third)")
            #expect(third.json["milestones"].array.map { $0["name"].string } == ["Only one"] && third.json["total_amount"].int == 6_000_000, "\(third)")
            try await api.proposeDeal(id, f)
            let fourth = try await api.call(.patch, uri, key: f.buyer.key, json: ["territories": ["CN", "HK"]], headers: ifMatch(3))
            try #require(fourth.status == .ok, "\(fourth)")
            #expect(fourth.json["version"].int == 4, "\(fourth)")
            // Invalid amendments are refused without a new version.
            expectInvalid(try await api.call(.patch, uri, key: f.buyer.key, json: ["royalty_bp": 10_001], headers: ifMatch(4)), "royalty_bp")
            expectProblem(try await api.call(.patch, uri, key: f.buyer.key, json: ["technology_id": f.technologyID], headers: ifMatch(4)),
                          .unprocessableContent, "unknown_field", fields: ["technology_id"])

            let versions = try await api.call(.get, "\(uri)/versions", key: f.buyer.key)
            try #require(versions.status == .ok, "\(versions)")
            let list = versions.json["data"].array
            #expect(list.map { $0["version"].int } == [1, 2, 3, 4], "\(versions)")
            #expect(list.map { $0["actor_id"].string } == [f.broker.id, f.seller.id, f.broker.id, f.buyer.id], "\(versions)")
            #expect(list.map { $0["terms"]["upfront"].int } == [1_000_000, 2_000_000, 2_000_000, 2_000_000], "\(versions)")
            #expect(list.map { $0["terms"]["total_amount"].int } == [6_000_000, 7_000_000, 6_000_000, 6_000_000], "\(versions)")
            #expect(list.map { $0["terms"]["royalty_bp"].int } == [0, 0, 0, 0], "\(versions)")
            #expect(list.map { $0["terms"]["milestones"].array.count } == [2, 2, 1, 1], "\(versions)")
            #expect(list[2]["terms"]["milestones"][0]["name"].string == "Only one" && list[2]["terms"]["milestones"][0]["amount"].int == 4_000_000, "\(versions)")
            #expect(list[0]["terms"]["milestones"].array.map { $0["amount"].int } == [2_000_000, 3_000_000], "\(versions)")
            // The stored versions keep every term, milestones included.
            let stored = try await api.pool.withConnection { connection in
                try await connection.query(
                    "SELECT jsonb_array_length(terms->'milestones') FROM techbank.deal_versions WHERE deal_id = $1 ORDER BY version", [try #require(UUID(uuidString: id))])
            }
            #expect(try stored.map { try $0.decode(Int.self, at: 0) } == [2, 2, 1, 1])
            #expect(list[3]["terms"]["territories"] == .array([.string("CN"), .string("HK")]), "\(versions)")
            #expect(list[0]["terms"]["territories"] == .array([.string("CN")]), "\(versions)")
            #expect(versions.json["next_cursor"].isNull, "\(versions)")

            // Once signed the terms are fixed.
            #expect(try await api.dealStatus(id) == "proposed", "a domestic amendment under the threshold keeps the deal proposed")
            try await api.signBoth(id, f)
            let version = try #require(try await api.dealJSON(id)["version"].int)
            expectIllegalTransition(try await api.call(.patch, uri, key: f.seller.key, json: ["upfront": 1], headers: ifMatch(version)), state: "signed")
            #expect(try await api.call(.get, "\(uri)/versions").json["data"].array.count == Int(version))
            let events = try await api.journalEvents(of: id)
            #expect(events.filter { $0 == "deal_amended" }.count == 3, "\(events)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anAmendmentVoidsSignaturesOnEarlierTerms() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.sellerDealID(f)
            try await api.proposeDeal(id, f)
            // The seller signs version 1; the buyer then cuts the price and signs alone.
            let half = try await api.dealActionOK(id, "sign", key: f.seller.key)
            #expect(half["seller_signed_at"].string != nil)
            let version = try #require(half["version"].int)
            let amended = try await api.call(.patch, "/v1/deals/\(id)", key: f.buyer.key, json: ["upfront": 1], headers: ifMatch(version))
            try #require(amended.status == .ok, "\(amended)")
            #expect(amended.json["seller_signed_at"].isNull, "the seller's signature on earlier terms must not carry over: \(amended)")
            let buyerSigned = try await api.dealActionOK(id, "sign", key: f.buyer.key)
            #expect(buyerSigned["status"].string == "proposed", "a deal became signed on terms the seller never signed: \(buyerSigned)")
            // The seller signs the new terms: now it is signed, at the amended price.
            let signed = try await api.dealActionOK(id, "sign", key: f.seller.key)
            #expect(signed["status"].string == "signed" && signed["upfront"].int == 1 && signed["version"].int == 2, "\(signed)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anAmendmentCannotSkipTheCommittee() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.sellerDealID(f)
            #expect(try await api.proposeDeal(id, f)["status"].string == "proposed")
            // Proposed without a rule, then amended into an assignment above the threshold.
            let amended = try await api.call(.patch, "/v1/deals/\(id)", key: f.seller.key, json: ["kind": "assignment", "upfront": 200_000_000],
                                             headers: ifMatch(1))
            try #require(amended.status == .ok, "\(amended)")
            #expect(amended.json["status"].string == "approval_required" && amended.json["approval_rule"].string == "amount_above_threshold", "\(amended)")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.seller.key), state: "approval_required")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.buyer.key), state: "approval_required")
            #expect(try await api.dealStatus(id) != "signed", "an amended deal needing approval was signed without the committee")
            #expect(try await api.technology(f.technologyID).json["status"].string == "listed")
            // An assignment alone, or a foreign buyer, needs the committee too.
            let assignment = try await api.sellerDealID(f)
            try await api.proposeDeal(assignment, f)
            let assigned = try await api.call(.patch, "/v1/deals/\(assignment)", key: f.buyer.key, json: ["kind": "assignment"], headers: ifMatch(1))
            #expect(assigned.json["status"].string == "approval_required" && assigned.json["approval_rule"].string == "assignment", "\(assigned)")
            // The committee approves the amended terms; then the parties sign.
            try await api.approveDeal(id, f)
            #expect(try await api.signBoth(id, f)["status"].string == "signed")
            #expect(try await api.technology(f.technologyID).json["status"].string == "assigned")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Who may do what

    @Test func rolesDecideWhoMayActOnADeal() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.brokerDealID(f)
            let uri = "/v1/deals/\(id)"
            // Everyone who sees the deal reads it.
            for key in [f.seller.key, f.buyer.key, f.broker.key, f.park.key, f.committee.key, operatorKey] {
                let read = try await api.deal(id, key: key)
                #expect(read.status == .ok && read.json["id"].string == id, "\(read)")
                #expect(try await api.call(.get, "\(uri)/versions", key: key).status == .ok)
            }
            // propose / amend: seller, buyer, broker only.
            for org in [f.committee, f.park] {
                expectProblem(try await api.dealAction(id, "propose", key: org.key), .forbidden, "forbidden")
                expectProblem(try await api.call(.patch, uri, key: org.key, json: ["upfront": 5], headers: ifMatch(1)), .forbidden, "forbidden")
            }
            expectProblem(try await api.dealAction(id, "propose", key: operatorKey), .forbidden, "forbidden")
            // approvals: the committee only.
            for key in [f.seller.key, f.buyer.key, f.broker.key, f.park.key, operatorKey] {
                expectProblem(try await api.decideDeal(id, "approve", key: key), .forbidden, "forbidden")
            }
            // cancel: parties or the committee.
            for key in [f.park.key, operatorKey] {
                expectProblem(try await api.dealAction(id, "cancel", key: key), .forbidden, "forbidden")
            }
            #expect(try await api.dealStatus(id) == "draft")
            try await api.proposeDeal(id, f, by: f.buyer)
            // sign: seller and buyer only.
            for key in [f.broker.key, f.committee.key, f.park.key, operatorKey] {
                expectProblem(try await api.dealAction(id, "sign", key: key), .forbidden, "forbidden")
            }
            let read = try await api.dealJSON(id)
            #expect(read["seller_signed_at"].isNull && read["buyer_signed_at"].isNull, "\(read)")
            try await api.signBoth(id, f)
            // escrow, release, royalties: the buyer only.
            for key in [f.seller.key, f.broker.key, f.committee.key, f.park.key, operatorKey] {
                expectProblem(try await api.escrow(id, key: key), .forbidden, "forbidden")
            }
            try await api.fundDeal(id, f)
            for key in [f.seller.key, f.broker.key, f.committee.key, f.park.key, operatorKey] {
                expectProblem(try await api.release(id, milestone: 1, key: key), .forbidden, "forbidden")
                expectProblem(try await api.dealAction(id, "royalty-reports", key: key, json: [
                    "period": ["from": utcDate(-1), "to": utcDate(-1)], "net_sales": 1_000, "currency": "CNY",
                ]), .forbidden, "forbidden")
            }
            // dispute: seller and buyer; resolve: the committee.
            for key in [f.broker.key, f.committee.key, f.park.key, operatorKey] {
                expectProblem(try await api.dealAction(id, "milestones/1/dispute", key: key, json: ["reason": "late"]), .forbidden, "forbidden")
            }
            for key in [f.seller.key, f.buyer.key, f.broker.key, operatorKey] {
                expectProblem(try await api.dealAction(id, "milestones/1/resolve", key: key, json: ["decision": "release", "reason": "fine"]),
                              .forbidden, "forbidden")
            }
            let after = try await api.dealJSON(id)
            #expect(after["status"].string == "active" && after["milestones"].array.map { $0["status"].string } == ["funded", "funded"], "\(after)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anUnrelatedInstituteFindsNoDeal() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture(patent: true)
            let id = try await api.brokerDealID(f)
            try await api.proposeAndSign(id, f)
            try await api.fundDeal(id, f)
            let missing = try await api.deal(newID(), key: f.outsider.key)
            expectProblem(missing, .notFound, "not_found")
            let uri = "/v1/deals/\(id)"
            let requests: [(HTTPRequest.Method, String, [String: Any]?, HTTPFields)] = [
                (.get, uri, nil, [:]),
                (.patch, uri, ["upfront": 5], ifMatch(1)),
                (.get, "\(uri)/versions", nil, [:]),
                (.post, "\(uri)/propose", nil, [:]),
                (.post, "\(uri)/approvals", ["decision": "approve", "reason": "ok"], [:]),
                (.post, "\(uri)/sign", nil, [:]),
                (.post, "\(uri)/escrow", nil, [:]),
                (.post, "\(uri)/cancel", nil, [:]),
                (.post, "\(uri)/milestones/1/release", nil, [:]),
                (.post, "\(uri)/milestones/1/dispute", ["reason": "late"], [:]),
                (.post, "\(uri)/milestones/1/resolve", ["decision": "refund", "reason": "late"], [:]),
                (.post, "\(uri)/royalty-reports", ["period": ["from": utcDate(-1), "to": utcDate(-1)], "net_sales": 1, "currency": "CNY"], [:]),
                (.get, "\(uri)/royalty-reports", nil, [:]),
                (.get, "\(uri)/registration", nil, [:]),
            ]
            for (method, path, json, headers) in requests {
                let response = try await api.call(method, path, key: f.outsider.key, json: json, headers: headers)
                expectProblem(response, .notFound, "not_found")
                // Indistinguishable from a deal that does not exist.
                let absent = try await api.call(method, path.replacingOccurrences(of: id, with: newID()), key: f.outsider.key, json: json, headers: headers)
                #expect(response.problemShape == absent.problemShape, "\(response) vs \(absent)")
            }
            #expect(try await api.listAll("/v1/deals", key: f.outsider.key).isEmpty)
            #expect(try await api.listAll("/v1/deals", key: f.buyer.key).map { $0["id"].string } == [id])
            let due = try await api.call(.get, marketURI("/v1/filings/due", [("before", utcDate(3_650))]), key: f.outsider.key)
            #expect(due.status == .ok && due.json["data"].array.isEmpty, "\(due)")
            let after = try await api.dealJSON(id)
            #expect(after["status"].string == "active" && after["version"].int == 1, "\(after)")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Creation rules

    @Test func aBrokerNeedsAnAcceptedMatchOfItsOwn() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let terms = dealBody(brokerFeeBP: 500)
            expectInvalid(try await api.createDeal(as: f.broker, terms), "match_id")
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": newID()]) { $1 }), "match_id")
            // A match still proposed, or declined.
            let proposedMatch = try await api.proposeMatchID(as: f.broker, technologyID: f.technologyID, demandID: f.demandID)
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": proposedMatch]) { $1 }), "match_id")
            try await api.decideOK(proposedMatch, "accept", key: f.seller.key)
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": proposedMatch]) { $1 }), "match_id")
            let otherDemand = try await api.postDemandID(as: f.buyer, demandBody("Declined", field: "environmental_technology"))
            let declined = try await api.proposeMatchID(as: f.broker, technologyID: f.technologyID, demandID: otherDemand)
            try await api.decideOK(declined, "decline", key: f.buyer.key)
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": declined]) { $1 }), "match_id")
            // Another broker's accepted match.
            let accepted = try await api.acceptedMatchID(f)
            let rival = try await api.createOrganization("Rival Brokers", kind: "broker")
            expectInvalid(try await api.createDeal(as: rival, terms.merging(["match_id": accepted]) { $1 }), "match_id")
            // The match's parties cannot be swapped.
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": accepted, "buyer_id": f.outsider.id]) { $1 }), "buyer_id")
            let otherTechnology = try await api.listedDealTechnology(as: f.seller, "Another technology")
            expectInvalid(try await api.createDeal(as: f.broker, terms.merging(["match_id": accepted, "technology_id": otherTechnology]) { $1 }),
                          "technology_id")
            #expect(try await api.listAll("/v1/deals").isEmpty, "a refused creation made a deal")
            // Naming the match's own parties is fine.
            let created = try await api.createDeal(as: f.broker, terms.merging([
                "match_id": accepted, "technology_id": f.technologyID, "seller_id": f.seller.id, "buyer_id": f.buyer.id, "broker_id": f.broker.id,
            ]) { $1 })
            #expect(created.status == .created, "\(created)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anInstituteSellsOnlyItsOwnListedTechnologyToAnEnterpriseOrInstitute() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            // Someone else's technology, an unlisted one, one that does not exist.
            let foreign = try await api.listedDealTechnology(as: f.outsider, "The outsider's technology")
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: foreign, buyerID: f.buyer.id)), "technology_id")
            let unlisted = try await api.registerTechnologyID(as: f.seller, technologyBody("Not yet listed", inventors: DealFixture.inventors))
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: unlisted, buyerID: f.buyer.id)), "technology_id")
            try await api.moveAll(unlisted, ["custody"], key: f.seller.key)
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: unlisted, buyerID: f.buyer.id)), "technology_id")
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: newID(), buyerID: f.buyer.id)), "technology_id")
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(buyerID: f.buyer.id)), "technology_id")
            // Buyers: an enterprise or another institute, not a broker, a committee, the seller itself, nobody.
            for buyer in [f.broker.id, f.committee.id, f.park.id, f.seller.id, newID()] {
                expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: buyer)), "buyer_id")
            }
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID)), "buyer_id")
            // Creating as someone else's seller.
            expectProblem(try await api.createDeal(as: f.outsider, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, overrides: ["seller_id": f.seller.id])),
                          .forbidden, "forbidden")
            // Others do not create deals.
            for org in [f.buyer, f.committee, f.park] {
                expectProblem(try await api.createDeal(as: org, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id)), .forbidden, "forbidden")
            }
            #expect(try await api.listAll("/v1/deals").isEmpty, "a refused creation made a deal")
            // An institute may buy; a licensed technology may be licensed again.
            let toInstitute = try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.outsider.id))
            #expect(toInstitute.status == .created, "\(toInstitute)")
            try await api.signedDealID(f, dealBody())
            #expect(try await api.technology(f.technologyID).json["status"].string == "licensed")
            let again = try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.outsider.id))
            #expect(again.status == .created, "\(again)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func feesNeedSomeoneToReceiveThem() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, brokerFeeBP: 100)), "broker_fee_bp")
            // With a broker named, the fee is fine.
            let withBroker = try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, brokerID: f.broker.id, brokerFeeBP: 100))
            #expect(withBroker.status == .created && withBroker.json["broker_id"].string == f.broker.id, "\(withBroker)")
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, brokerID: f.buyer.id)), "broker_id")
            // The seller is in a sub-park: a sub-park fee is fine; the outsider is in none.
            let parked = try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, subParkFeeBP: 100))
            #expect(parked.status == .created, "\(parked)")
            let loose = try await api.listedDealTechnology(as: f.outsider, "No park")
            expectInvalid(try await api.createDeal(as: f.outsider, dealBody(technologyID: loose, buyerID: f.buyer.id, subParkFeeBP: 100)), "sub_park_fee_bp")
            #expect(try await api.createDeal(as: f.outsider, dealBody(technologyID: loose, buyerID: f.buyer.id)).status == .created)
            // Amendments follow the same rules.
            let draftID = try #require(parked.json["id"].string)
            expectInvalid(try await api.call(.patch, "/v1/deals/\(draftID)", key: f.seller.key, json: ["broker_fee_bp": 100], headers: ifMatch(1)), "broker_fee_bp")
            // Fees together at most 10000.
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, brokerID: f.broker.id,
                                                                          brokerFeeBP: 6_000, subParkFeeBP: 5_000)), "sub_park_fee_bp")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func termsAreValidatedFieldByField() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            func create(_ body: [String: Any]) async throws -> APIResponse {
                try await api.createDeal(as: f.seller, body.merging(["technology_id": f.technologyID, "buyer_id": f.buyer.id]) { $1 })
            }
            let cases: [(String, [String: Any])] = [
                ("territories[0]", dealBody(territories: ["cn"])),
                ("territories[1]", dealBody(territories: ["CN", "CHN"])),
                ("territories[0]", dealBody(territories: ["EU1"])),
                ("territories", dealBody(territories: ["CN", "CN"])),
                ("territories", dealBody(territories: ["WORLD", "CN"])),
                ("territories", dealBody(territories: ["CN", "WORLD"])),
                ("territories", dealBody(territories: [])),
                ("term.ends_on", dealBody(startsOn: "2027-06-01", endsOn: "2027-05-31")),
                ("term.starts_on", dealBody(startsOn: "2027-02-30")),
                ("term.ends_on", dealBody(endsOn: "soon")),
                ("term.starts_on", dealBody(without: ["term"])),
                ("milestones[0].amount", dealBody(milestones: [dealMilestone("Free", 0)])),
                ("milestones[1].amount", dealBody(milestones: [dealMilestone("A", 1), dealMilestone("B", -5)])),
                ("milestones[1].due_on", dealBody(milestones: [dealMilestone("A", 1), dealMilestone("B", 1, dueOn: "2027-13-01")])),
                ("milestones[0].name", dealBody(milestones: [dealMilestone("   ", 1)])),
                ("milestones", dealBody(milestones: (0...50).map { dealMilestone("M\($0)", 1) })),
                ("royalty_bp", dealBody(royaltyBP: 10_001)),
                ("royalty_bp", dealBody(royaltyBP: -1)),
                ("broker_fee_bp", dealBody(brokerFeeBP: 10_001)),
                ("sub_park_fee_bp", dealBody(subParkFeeBP: 10_001)),
                ("upfront", dealBody(upfront: -1)),
                ("kind", dealBody(kind: "lease")),
                ("kind", dealBody(without: ["kind"])),
                ("field_of_use", dealBody(fieldOfUse: "  ")),
                ("currency", dealBody(currency: "yuan")),
                ("contract_category", dealBody(contractCategory: "gift")),
                ("minimum_annual_royalty", dealBody(overrides: ["minimum_annual_royalty": 1_000])),
            ]
            for (field, body) in cases {
                expectInvalid(try await create(body), field)
            }
            #expect(try await api.listAll("/v1/deals").isEmpty, "an invalid deal was created")
            // Limits themselves are fine: 10000 bp, WORLD alone, 50 milestones, an open-ended term.
            for body in [dealBody(royaltyBP: 10_000), dealBody(territories: ["WORLD"]), dealBody(milestones: (1...50).map { dealMilestone("M\($0)", 1) }),
                         dealBody(endsOn: nil), dealBody(startsOn: "2027-06-01", endsOn: "2027-06-01")] {
                let response = try await create(body)
                #expect(response.status == .created, "\(response)")
            }
            // An assignment covers the world, forever, whatever was sent.
            let assignment = try await create(dealBody(kind: "assignment", territories: ["CN"]))
            #expect(assignment.status == .created, "\(assignment)")
            #expect(assignment.json["territories"] == .array([.string("WORLD")]) && assignment.json["term"]["ends_on"].isNull, "\(assignment)")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: What signing produces

    @Test func signingRegistersTheContract() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture(patent: true)
            let licence = try await api.signedDealID(f, dealBody(kind: "exclusive_licence", startsOn: "2029-11-30", endsOn: "2031-11-29", upfront: 1_500_000))
            let registration = try await api.call(.get, "/v1/deals/\(licence)/registration", key: f.seller.key)
            try #require(registration.status == .ok, "\(registration)")
            let record = registration.json
            let number = try #require(record["number"].string)
            #expect(number.wholeMatch(of: /[0-9]{4}SH[0-9]{10}/) != nil, "\(record)")
            #expect(record["deal_id"].string == licence && record["contract_category"].string == "licence" && record["currency"].string == "CNY", "\(record)")
            #expect(record["certified_technology_income"].int == 6_500_000, "upfront + milestones: \(record)")
            #expect(record["signed_on"].string == utcDate(0), "\(record)")
            #expect(record["filing_due_on"].string == "2030-02-28", "three months after 2029-11-30: \(record)")
            let parties = record["parties"].array
            #expect(parties.map { $0["role"].string } == ["seller", "buyer"], "\(record)")
            #expect(parties.map { $0["organization_id"].string } == [f.seller.id, f.buyer.id], "\(record)")
            #expect(parties.map { $0["kind"].string } == ["institute", "enterprise"] && parties.map { $0["country"].string } == ["CN", "CN"], "\(record)")
            #expect(try await api.technology(f.technologyID).json["status"].string == "licensed")

            // Every party, the sub-park and the committee read it; unsigned deals have none.
            for key in [f.buyer.key, f.park.key, f.committee.key, operatorKey] {
                #expect(try await api.call(.get, "/v1/deals/\(licence)/registration", key: key).json == record)
            }
            let unsigned = try await api.sellerDealID(f)
            expectProblem(try await api.call(.get, "/v1/deals/\(unsigned)/registration", key: f.seller.key), .notFound, "not_found")

            // A second deal gets the next number; without a patent there is no filing deadline.
            let plainTechnology = try await api.listedDealTechnology(as: f.seller, "Unpatented know-how")
            let plain = try await api.signedDealID(f, dealBody(technologyID: plainTechnology, contractCategory: "transfer"))
            let second = try await api.call(.get, "/v1/deals/\(plain)/registration", key: f.buyer.key).json
            let secondNumber = try #require(second["number"].string)
            #expect(secondNumber.wholeMatch(of: /[0-9]{4}SH[0-9]{10}/) != nil && secondNumber != number, "\(second)")
            #expect(second["filing_due_on"].isNull && second["certified_technology_income"].int == 6_000_000 && second["contract_category"].string == "transfer",
                    "\(second)")
            #expect(try await api.technology(plainTechnology).json["status"].string == "licensed")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func filingsDueAreListedToThoseWhoSeeTheDeal() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture(patent: true)
            let id = try await api.signedDealID(f, dealBody(startsOn: utcDate(10), endsOn: utcDate(400)))
            let registration = try await api.call(.get, "/v1/deals/\(id)/registration", key: f.seller.key).json
            let due = try #require(registration["filing_due_on"].string)
            let expected = try await api.pool.withConnection { connection in
                try await connection.query("SELECT (($1::date) + interval '3 months')::date::text", [utcDate(10)])
            }[0].decode(String.self, at: 0)
            #expect(due == expected, "\(registration)")
            for key in [f.seller.key, f.buyer.key, f.park.key, f.committee.key, operatorKey] {
                let listed = try await api.call(.get, marketURI("/v1/filings/due", [("before", utcDate(365))]), key: key)
                #expect(listed.status == .ok && listed.json["data"].array.map { $0["deal_id"].string } == [id], "\(listed)")
                // Not yet due before the deadline.
                let early = try await api.call(.get, marketURI("/v1/filings/due", [("before", utcDate(5))]), key: key)
                #expect(early.status == .ok && early.json["data"].array.isEmpty, "\(early)")
            }
            let stranger = try await api.createOrganization("Another Buyer", kind: "enterprise")
            for key in [f.outsider.key, stranger.key, f.broker.key] {
                let listed = try await api.call(.get, marketURI("/v1/filings/due", [("before", utcDate(365))]), key: key)
                #expect(listed.status == .ok && listed.json["data"].array.isEmpty, "\(listed)")
            }
            expectInvalid(try await api.call(.get, marketURI("/v1/filings/due", [("before", "tomorrow")]), key: f.seller.key), "before")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func theBuyerReadsTheConfidentialDescriptionOnceADealIsProposed() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let secret = "Confidential: leaching temperatures and reagent ratios."
            #expect(try await api.technology(f.technologyID, key: f.seller.key).json["description"].string == secret)
            let id = try await api.sellerDealID(f)
            // A draft shows nothing yet.
            #expect(try await api.technology(f.technologyID, key: f.buyer.key).json["description"].string == nil)
            try await api.proposeDeal(id, f)
            #expect(try await api.technology(f.technologyID, key: f.buyer.key).json["description"].string == secret)
            for key in [f.outsider.key, f.broker.key] {
                let read = try await api.technology(f.technologyID, key: key)
                #expect(read.status == .ok && read.json["description"].string == nil, "\(read)")
            }
            try await api.expectLedgerInvariants()
        }
    }
}
