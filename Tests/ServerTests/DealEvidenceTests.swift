import Foundation
import HTTPTypes
import Testing

@Suite("Deals: milestones released against evidence, disputes with reasons")
struct DealEvidenceTests {
    @Test func aMilestoneThatRequiresEvidenceIsReleasedOnlyWithIt() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let body = dealBody(milestones: [dealMilestone("Pilot line accepted", 2_000_000, evidenceRequired: true),
                                             dealMilestone("Licence fee", 1_000_000)])
            let id = try await api.signedDealID(f, body)
            try await api.fundDeal(id, f)
            let before = try await api.dealJSON(id)

            // Without evidence (no body, or a body without it, or a blank one): 422 naming evidence, nothing moves.
            expectProblem(try await api.release(id, milestone: 1, key: f.buyer.key), .unprocessableContent, "validation_failed", fields: ["evidence"])
            expectProblem(try await api.dealAction(id, "milestones/1/release", key: f.buyer.key, json: [:]),
                          .unprocessableContent, "validation_failed", fields: ["evidence"])
            expectProblem(try await api.dealAction(id, "milestones/1/release", key: f.buyer.key, json: ["evidence": "  "]),
                          .unprocessableContent, "validation_failed", fields: ["evidence"])
            expectProblem(try await api.dealAction(id, "milestones/1/release", key: f.buyer.key, json: ["proof": "x"]),
                          .unprocessableContent, "unknown_field", fields: ["proof"])
            #expect(try await api.dealJSON(id) == before, "a refused release changes nothing")

            let released = try await api.dealActionOK(id, "milestones/1/release", key: f.buyer.key, json: ["evidence": " Acceptance report AR-7 "])
            #expect(released["milestones"][0]["status"].string == "released")
            #expect(released["milestones"][0]["evidence"].string == "Acceptance report AR-7")
            // A milestone that needs none is released without a body; its evidence stays null.
            let second = try await api.releaseOK(id, milestone: 2, key: f.buyer.key)
            #expect(second["milestones"][1]["status"].string == "released")
            #expect(second["milestones"][1]["evidence"].isNull)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aDisputeKeepsItsReasonApartFromTheResolution() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let id = try await api.signedDealID(f)
            try await api.fundDeal(id, f)
            let disputed = try await api.dealActionOK(id, "milestones/1/dispute", key: f.seller.key, json: ["reason": "Delivered but not accepted"])
            #expect(disputed["milestones"][0]["dispute_reason"].string == "Delivered but not accepted")
            #expect(disputed["milestones"][0]["resolution_reason"].isNull)
            let resolved = try await api.dealActionOK(id, "milestones/1/resolve", key: f.committee.key, json: ["decision": "release", "reason": "Accepted on review"])
            #expect(resolved["milestones"][0]["dispute_reason"].string == "Delivered but not accepted")
            #expect(resolved["milestones"][0]["resolution_reason"].string == "Accepted on review")
            #expect(resolved["milestones"][0]["status"].string == "released")
            try await api.expectLedgerInvariants()
        }
    }
}
