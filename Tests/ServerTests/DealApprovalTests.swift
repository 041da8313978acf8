import Foundation
import HTTPTypes
import Postgres
import Testing

/// The committee's approval. The app under test runs with the default rules: deals whose total
/// exceeds 100_000_000 minor units need approval, as do assignments and cross-border deals.
@Suite("Deals: committee approval")
struct DealApprovalTests {
    static let threshold = 100_000_000

    /// The committee decisions recorded for a deal, oldest first: (version, committee, decision, rule, reason).
    static func approvals(_ api: API, _ dealID: String) async throws -> [(Int, String, String, String, String)] {
        let id = try #require(UUID(uuidString: dealID))
        let rows = try await api.pool.withConnection { connection in
            try await connection.query(
                "SELECT deal_version, committee_id::text, decision, rule, reason FROM techbank.deal_approvals WHERE deal_id = $1 ORDER BY created_at, id", [id])
        }
        return try rows.map {
            (try $0.decode(Int.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(String.self, at: 2), try $0.decode(String.self, at: 3),
             try $0.decode(String.self, at: 4))
        }
    }

    // MARK: The rules

    @Test func aTotalAboveTheThresholdNeedsApproval() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            // Exactly the threshold (upfront plus milestones): no approval.
            let atThreshold = try await api.sellerDealID(f, dealBody(upfront: Self.threshold - 5_000_000))
            #expect(try await api.dealJSON(atThreshold)["total_amount"].int == Int64(Self.threshold))
            let proposed = try await api.proposeDeal(atThreshold, f)
            #expect(proposed["status"].string == "proposed" && proposed["approval_rule"].isNull, "\(proposed)")

            // One fen above, whether in the upfront fee or in the milestones.
            let above = try await api.sellerDealID(f, dealBody(upfront: Self.threshold - 5_000_000 + 1))
            let pending = try await api.proposeDeal(above, f)
            #expect(pending["status"].string == "approval_required" && pending["approval_rule"].string == "amount_above_threshold", "\(pending)")
            let inMilestones = try await api.sellerDealID(f, dealBody(upfront: 0, milestones: [
                dealMilestone("Half", Self.threshold / 2), dealMilestone("Rest", Self.threshold / 2 + 1),
            ]))
            let milestonePending = try await api.proposeDeal(inMilestones, f, by: f.buyer)
            #expect(milestonePending["status"].string == "approval_required" && milestonePending["approval_rule"].string == "amount_above_threshold",
                    "\(milestonePending)")
            // The journal records the rule.
            let journal = try await api.journal(of: above)
            #expect(journal.map(\.event) == ["deal_created", "deal_proposed"], "\(journal)")
            #expect(journal.last?.payload["approval_rule"].string == "amount_above_threshold" && journal.last?.payload["status"].string == "approval_required",
                    "\(journal)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func anAssignmentNeedsApproval() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.sellerDealID(f, dealBody(kind: "assignment", upfront: 10_000, milestones: [], contractCategory: "transfer"))
            let pending = try await api.proposeDeal(id, f)
            #expect(pending["status"].string == "approval_required" && pending["approval_rule"].string == "assignment", "\(pending)")
            try await api.approveDeal(id, f)
            let signed = try await api.signBoth(id, f)
            #expect(signed["status"].string == "signed", "\(signed)")
            #expect(try await api.technology(f.technologyID).json["status"].string == "assigned")
            let registration = try await api.call(.get, "/v1/deals/\(id)/registration", key: f.seller.key)
            #expect(registration.json["contract_category"].string == "transfer" && registration.json["filing_due_on"].isNull, "\(registration)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aCrossBorderDealNeedsApproval() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            // A buyer in another country than the seller.
            let german = try await api.createOrganization("Berlin Batteries GmbH", kind: "enterprise", country: "DE")
            let abroad = try await api.sellerDealID(f, buyer: german)
            let pending = try await api.proposeDeal(abroad, f)
            #expect(pending["status"].string == "approval_required" && pending["approval_rule"].string == "cross_border", "\(pending)")

            // A broker abroad with a domestic buyer.
            let hkBroker = try await api.createOrganization("Hong Kong Brokers", kind: "broker", country: "HK")
            let viaBroker = try await api.createDealOK(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: f.buyer.id, brokerID: hkBroker.id))
            let brokerPending = try await api.proposeDeal(try #require(viaBroker["id"].string), f)
            #expect(brokerPending["status"].string == "approval_required" && brokerPending["approval_rule"].string == "cross_border", "\(brokerPending)")

            // Another domestic institute buying: no approval.
            let domestic = try await api.sellerDealID(f, buyer: f.outsider)
            let proposed = try await api.proposeDeal(domestic, f)
            #expect(proposed["status"].string == "proposed" && proposed["approval_rule"].isNull, "\(proposed)")

            // A foreign seller selling to a CN buyer is cross-border as well.
            let foreignLab = try await api.createOrganization("Tokyo Lab", kind: "institute", country: "JP")
            let technology = try await api.listedDealTechnology(as: foreignLab, "Japanese technology")
            let imported = try await api.createDealOK(as: foreignLab, dealBody(technologyID: technology, buyerID: f.buyer.id))
            let importedID = try #require(imported["id"].string)
            let importPending = try await api.dealActionOK(importedID, "propose", key: foreignLab.key)
            #expect(importPending["approval_rule"].string == "cross_border", "\(importPending)")

            // The approved cross-border deal signs and registers both countries.
            try await api.approveDeal(abroad, f)
            try await api.signBoth(abroad, f, buyer: german)
            let registration = try await api.call(.get, "/v1/deals/\(abroad)/registration", key: german.key)
            #expect(registration.json["parties"].array.map { $0["country"].string } == ["CN", "DE"], "\(registration)")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aDomesticLicenceUnderTheThresholdNeedsNoApproval() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            for kind in ["exclusive_licence", "sole_licence", "non_exclusive_licence"] {
                let technology = try await api.listedDealTechnology(as: f.seller, "Technology for \(kind)")
                let id = try await api.sellerDealID(f, technologyID: technology, dealBody(kind: kind))
                let proposed = try await api.proposeDeal(id, f)
                #expect(proposed["status"].string == "proposed" && proposed["approval_rule"].isNull, "\(proposed)")
                expectIllegalTransition(try await api.decideDeal(id, "approve", key: f.committee.key), state: "proposed")
                expectIllegalTransition(try await api.decideDeal(id, "reject", key: f.committee.key), state: "proposed")
                #expect(try await Self.approvals(api, id).isEmpty)
            }
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Decisions

    @Test func anApprovalIsRecordedAndLetsThePartiesSign() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.sellerDealID(f, dealBody(upfront: Self.threshold))
            try await api.proposeDeal(id, f)
            let response = try await api.decideDeal(id, "approve", reason: "  Strategic for the park.  ", key: f.committee.key)
            try #require(response.status == .ok, "\(response)")
            #expect(response.json["status"].string == "approved" && response.json["approval_rule"].string == "amount_above_threshold", "\(response)")
            let records = try await Self.approvals(api, id)
            #expect(records.count == 1, "\(records)")
            if let record = records.first {
                #expect(record.0 == 1 && record.1 == f.committee.id && record.2 == "approve" && record.3 == "amount_above_threshold", "\(record)")
                #expect(record.4 == "Strategic for the park.", "the reason is trimmed: \(record)")
            }
            let events = try await api.journal(of: id)
            #expect(events.last?.event == "deal_approved" && events.last?.payload["actor_id"].string == f.committee.id, "\(events)")

            // No second decision.
            expectIllegalTransition(try await api.decideDeal(id, "approve", key: f.committee.key), state: "approved")
            expectIllegalTransition(try await api.decideDeal(id, "reject", key: f.committee.key), state: "approved")
            expectIllegalTransition(try await api.dealAction(id, "propose", key: f.seller.key), state: "approved")
            // The terms approved are final: no amendment.
            expectIllegalTransition(try await api.call(.patch, "/v1/deals/\(id)", key: f.seller.key, json: ["upfront": 500_000_000], headers: ifMatch(1)),
                                    state: "approved")
            #expect(try await Self.approvals(api, id).count == 1)

            // approved → signed; one signature leaves it approved.
            let half = try await api.dealActionOK(id, "sign", key: f.buyer.key)
            #expect(half["status"].string == "approved", "\(half)")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.buyer.key), state: "approved")
            #expect(try await api.dealActionOK(id, "sign", key: f.seller.key)["status"].string == "signed")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aRejectionReturnsTheDealToDraft() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.brokerDealID(f, dealBody(upfront: Self.threshold, brokerFeeBP: 300))
            #expect(try await api.proposeDeal(id, f, by: f.broker)["status"].string == "approval_required")
            let rejected = try await api.decideDeal(id, "reject", reason: "Too expensive for a pilot.", key: f.committee.key)
            try #require(rejected.status == .ok, "\(rejected)")
            #expect(rejected.json["status"].string == "draft", "\(rejected)")
            expectIllegalTransition(try await api.decideDeal(id, "reject", key: f.committee.key), state: "draft")
            expectIllegalTransition(try await api.dealAction(id, "sign", key: f.seller.key), state: "draft")

            // Proposed again unchanged, it needs approval again; rejected again.
            #expect(try await api.proposeDeal(id, f)["status"].string == "approval_required")
            #expect(try await api.decideDeal(id, "reject", reason: "Still too expensive.", key: f.committee.key).json["status"].string == "draft")

            // Amended below the threshold and proposed again: no approval needed.
            let amended = try await api.call(.patch, "/v1/deals/\(id)", key: f.buyer.key, json: ["upfront": 10_000_000], headers: ifMatch(1))
            try #require(amended.status == .ok, "\(amended)")
            let proposed = try await api.proposeDeal(id, f, by: f.buyer)
            #expect(proposed["status"].string == "proposed" && proposed["approval_rule"].isNull, "\(proposed)")
            #expect(proposed["version"].int == 2, "\(proposed)")
            let records = try await Self.approvals(api, id)
            #expect(records.map(\.2) == ["reject", "reject"] && records.map(\.0) == [1, 1], "\(records)")
            #expect(records.map(\.4) == ["Too expensive for a pilot.", "Still too expensive."], "\(records)")
            let events = try await api.journalEvents(of: id)
            #expect(events == ["deal_created", "deal_proposed", "deal_rejected", "deal_proposed", "deal_rejected", "deal_amended", "deal_proposed"], "\(events)")
            #expect(try await api.signBoth(id, f)["status"].string == "signed")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func decisionsAreValidated() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.sellerDealID(f, dealBody(kind: "assignment"))
            try await api.proposeDeal(id, f)
            let uri = "/v1/deals/\(id)/approvals"
            expectInvalid(try await api.call(.post, uri, key: f.committee.key, json: ["decision": "maybe", "reason": "Unsure."]), "decision")
            expectInvalid(try await api.call(.post, uri, key: f.committee.key, json: ["decision": "approve", "reason": "   "]), "reason")
            expectInvalid(try await api.call(.post, uri, key: f.committee.key, json: ["decision": "approve", "reason": String(repeating: "x", count: 2_001)]),
                          "reason")
            expectInvalid(try await api.call(.post, uri, key: f.committee.key, json: ["decision": "approve"]), "reason")
            expectInvalid(try await api.call(.post, uri, key: f.committee.key, json: ["reason": "No decision."]), "decision")
            expectProblem(try await api.call(.post, uri, key: f.committee.key, json: ["decision": "approve", "reason": "ok", "rule": "none"]),
                          .unprocessableContent, "unknown_field", fields: ["rule"])
            // Only the committee decides; the operator neither.
            for key in [f.seller.key, f.buyer.key, f.park.key, operatorKey] {
                expectProblem(try await api.call(.post, uri, key: key, json: ["decision": "approve", "reason": "Self-approved."]), .forbidden, "forbidden")
            }
            let deal = try await api.dealJSON(id)
            #expect(deal["status"].string == "approval_required" && deal["approval_rule"].string == "assignment", "\(deal)")
            #expect(try await Self.approvals(api, id).isEmpty)
            try await api.expectLedgerInvariants()
        }
    }
}
