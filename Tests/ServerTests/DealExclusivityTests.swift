import Foundation
import HTTPTypes
import Postgres
import Testing

@Suite("Deals: exclusivity of granted rights")
struct DealExclusivityTests {
    /// Expects 409 `exclusivity_conflict` naming `territories`, with `conflicting_deal_id` equal to `other` (nil: absent and unnamed).
    static func expectConflict(_ response: APIResponse, with other: String?, sourceLocation: SourceLocation = #_sourceLocation) {
        expectProblem(response, .conflict, "exclusivity_conflict", fields: ["territories"], sourceLocation: sourceLocation)
        if let other {
            #expect(response.json["conflicting_deal_id"].string == other, "\(response)", sourceLocation: sourceLocation)
        } else {
            #expect(response.json["conflicting_deal_id"] == .missing || response.json["conflicting_deal_id"].isNull,
                    "the conflicting deal must not be named: \(response)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Exclusive vs exclusive

    @Test func anOverlappingExclusiveLicenceCannotBeSigned() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let second = try await api.createOrganization("Second Buyer", kind: "enterprise")
            let first = try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["CN"], from: 30, to: 395,
                                                  fieldOfUse: "Confidential grid-storage programme")
            #expect(try await api.technology(f.technologyID).json["status"].string == "licensed")

            // The seller signs last: it sees both deals, so the conflict names the first.
            let sellerLast = try await api.proposedDeal(f, buyer: second, kind: "exclusive_licence", territories: ["JP", "CN"], from: 200, to: 600)
            try await api.dealActionOK(sellerLast, "sign", key: second.key)
            let refused = try await api.dealAction(sellerLast, "sign", key: f.seller.key)
            Self.expectConflict(refused, with: first)
            #expect(refused.json["detail"].string?.contains(first) == true, "\(refused)")

            // The second buyer signs last: it cannot see the first deal, which stays unnamed.
            #expect(try await api.deal(first, key: second.key).status == .notFound)
            let buyerLast = try await api.proposedDeal(f, buyer: second, kind: "exclusive_licence", territories: ["CN"], from: 0, to: 30)
            try await api.dealActionOK(buyerLast, "sign", key: f.seller.key)
            let hidden = try await api.dealAction(buyerLast, "sign", key: second.key)
            Self.expectConflict(hidden, with: nil)
            #expect(!hidden.text.contains(first), "the hidden deal's id leaked: \(hidden)")
            #expect(!hidden.text.contains("grid-storage"), "the hidden deal's terms leaked: \(hidden)")

            // Nothing was granted: both stay proposed, without a registration.
            for id in [sellerLast, buyerLast] {
                let deal = try await api.dealJSON(id)
                #expect(deal["status"].string == "proposed" && deal["signed_at"].isNull, "\(deal)")
                expectProblem(try await api.call(.get, "/v1/deals/\(id)/registration", key: f.seller.key), .notFound, "not_found")
            }
            #expect(try await api.grantCount(f.technologyID) == 1)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func exclusiveAndNonExclusiveLicencesExcludeEachOther() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            // An exclusive licence first, then a non-exclusive one.
            let exclusive = try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["CN"], from: 30, to: 395)
            let late = try await api.proposedDeal(f, buyer: other, kind: "non_exclusive_licence", territories: ["CN"], from: 100, to: 200)
            try await api.dealActionOK(late, "sign", key: other.key)
            Self.expectConflict(try await api.dealAction(late, "sign", key: f.seller.key), with: exclusive)

            // A non-exclusive licence first, then an exclusive one, on another technology.
            let technology = try await api.listedDealTechnology(as: f.seller, "Second technology")
            let plain = try await api.grantedDeal(f, buyer: f.buyer, kind: "non_exclusive_licence", territories: ["US"], from: 30, to: 395, technologyID: technology)
            let strong = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["US", "CA"], from: 395, to: 800, technologyID: technology)
            try await api.dealActionOK(strong, "sign", key: f.seller.key)
            Self.expectConflict(try await api.dealAction(strong, "sign", key: other.key), with: nil)
            try await api.dealActionOK(plain, "cancel", key: f.committee.key)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func soleLicencesExcludeEachOtherButNotNonExclusiveOnes() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            let sole = try await api.grantedDeal(f, buyer: f.buyer, kind: "sole_licence", territories: ["CN"], from: 30, to: 395)
            // Sole vs sole and sole vs exclusive: refused.
            let soleAgain = try await api.proposedDeal(f, buyer: other, kind: "sole_licence", territories: ["CN"], from: 30, to: 395)
            try await api.dealActionOK(soleAgain, "sign", key: other.key)
            Self.expectConflict(try await api.dealAction(soleAgain, "sign", key: f.seller.key), with: sole)
            let exclusive = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["CN"], from: 395, to: 500)
            try await api.dealActionOK(exclusive, "sign", key: other.key)
            Self.expectConflict(try await api.dealAction(exclusive, "sign", key: f.seller.key), with: sole)
            // Sole vs non-exclusive: allowed, both ways round.
            let nonExclusive = try await api.proposedDeal(f, buyer: other, kind: "non_exclusive_licence", territories: ["CN"], from: 30, to: 395)
            #expect(try await api.signBoth(nonExclusive, f, buyer: other)["status"].string == "signed")

            let technology = try await api.listedDealTechnology(as: f.seller, "Second technology")
            try await api.grantedDeal(f, buyer: f.buyer, kind: "non_exclusive_licence", territories: ["WORLD"], from: 0, to: nil, technologyID: technology)
            let soleLater = try await api.proposedDeal(f, buyer: other, kind: "sole_licence", territories: ["DE"], from: 30, to: 395, technologyID: technology)
            #expect(try await api.signBoth(soleLater, f, buyer: other)["status"].string == "signed")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func nonExclusiveLicencesCoexist() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let buyers = [f.buyer, try await api.createOrganization("Second Buyer", kind: "enterprise"), try await api.createOrganization("Third Buyer", kind: "enterprise")]
            for buyer in buyers {
                let id = try await api.grantedDeal(f, buyer: buyer, kind: "non_exclusive_licence", territories: buyer.id == f.buyer.id ? ["WORLD"] : ["CN"], from: 0, to: nil)
                #expect(try await api.dealStatus(id) == "signed")
            }
            #expect(try await api.grantCount(f.technologyID) == 3)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Territory × time

    @Test func disjointTerritoriesOrPeriodsDoNotConflict() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["CN", "HK"], from: 30, to: 100)
            // Other countries, the same time.
            try await api.grantedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["JP", "KR", "CO", "BN"], from: 30, to: 100)
            // The same countries, later (the first term ends on day 100, inclusive).
            try await api.grantedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["HK"], from: 101, to: 200)
            // Earlier and open-ended after: the day before and everything after day 200.
            try await api.grantedDeal(f, buyer: other, kind: "sole_licence", territories: ["CN"], from: 0, to: 29)
            try await api.grantedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["CN", "HK"], from: 201, to: nil)
            // The last day of a term overlaps a term starting on it.
            let touching = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["KR"], from: 100, to: 150)
            try await api.dealActionOK(touching, "sign", key: other.key)
            let refused = try await api.dealAction(touching, "sign", key: f.seller.key)
            expectProblem(refused, .conflict, "exclusivity_conflict", fields: ["territories"])
            // An open-ended licence overlaps everything after its start.
            let farFuture = try await api.proposedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["HK"], from: 3_000, to: 3_100)
            try await api.dealActionOK(farFuture, "sign", key: f.buyer.key)
            expectProblem(try await api.dealAction(farFuture, "sign", key: f.seller.key), .conflict, "exclusivity_conflict", fields: ["territories"])
            #expect(try await api.grantCount(f.technologyID) == 2 + 4 + 1 + 1 + 2)
            try await api.expectLedgerInvariants()
        }
    }

    @Test func theWorldOverlapsEveryCountry() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            let world = try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["WORLD"], from: 30, to: 395)
            for territory in ["AA", "CN", "US", "ZZ"] {
                let id = try await api.proposedDeal(f, buyer: other, kind: "sole_licence", territories: [territory], from: 300, to: 400)
                try await api.dealActionOK(id, "sign", key: other.key)
                Self.expectConflict(try await api.dealAction(id, "sign", key: f.seller.key), with: world)
            }
            // And a later WORLD licence conflicts with a single country.
            let technology = try await api.listedDealTechnology(as: f.seller, "Second technology")
            let single = try await api.grantedDeal(f, buyer: f.buyer, kind: "non_exclusive_licence", territories: ["ZZ"], from: 30, to: 395, technologyID: technology)
            let everywhere = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["WORLD"], from: 0, to: 31, technologyID: technology)
            try await api.dealActionOK(everywhere, "sign", key: other.key)
            Self.expectConflict(try await api.dealAction(everywhere, "sign", key: f.seller.key), with: single)
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Assignment and termination

    @Test func anAssignmentBlocksEveryLaterLicence() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            // Licences negotiated before the assignment, starting long after it.
            var waiting: [String] = []
            for kind in ["non_exclusive_licence", "sole_licence", "exclusive_licence"] {
                waiting.append(try await api.proposedDeal(f, buyer: other, kind: kind, territories: ["BR"], from: 3_650, to: 4_000))
            }
            let assignment = try await api.grantedDeal(f, buyer: f.buyer, kind: "assignment", territories: ["CN"], from: 30, to: 60)
            let deal = try await api.dealJSON(assignment)
            #expect(deal["territories"] == .array([.string("WORLD")]) && deal["term"]["ends_on"].isNull, "\(deal)")
            #expect(try await api.technology(f.technologyID).json["status"].string == "assigned")
            for id in waiting {
                try await api.dealActionOK(id, "sign", key: f.seller.key)
                let refused = try await api.dealAction(id, "sign", key: other.key)
                Self.expectConflict(refused, with: nil)
                #expect(try await api.dealStatus(id) == "proposed")
            }
            // No new deal on an assigned technology.
            expectInvalid(try await api.createDeal(as: f.seller, dealBody(technologyID: f.technologyID, buyerID: other.id)), "technology_id")
            #expect(try await api.technology(f.technologyID).json["status"].string == "assigned")
            try await api.expectLedgerInvariants()
        }
    }

    @Test func aTerminationEndsTheRightsThatDay() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            // Running since today: after termination, a licence from tomorrow may sign.
            let running = try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["CN"], from: 0, to: 365)
            let next = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["CN"], from: 1, to: 365)
            try await api.dealActionOK(next, "sign", key: f.seller.key)
            Self.expectConflict(try await api.dealAction(next, "sign", key: other.key), with: nil)
            #expect(try await api.dealActionOK(running, "cancel", key: f.committee.key)["status"].string == "terminated")
            #expect(try await api.dealActionOK(next, "sign", key: other.key)["status"].string == "signed")
            // Today is still the terminated deal's.
            let today = try await api.proposedDeal(f, buyer: other, kind: "sole_licence", territories: ["CN"], from: 0, to: 0)
            try await api.dealActionOK(today, "sign", key: other.key)
            Self.expectConflict(try await api.dealAction(today, "sign", key: f.seller.key), with: running)

            // Not yet started: after termination it grants nothing at all.
            let technology = try await api.listedDealTechnology(as: f.seller, "Second technology")
            let future = try await api.grantedDeal(f, buyer: f.buyer, kind: "exclusive_licence", territories: ["CN"], from: 30, to: 365, technologyID: technology)
            try await api.dealActionOK(future, "cancel", key: f.committee.key)
            let replacement = try await api.proposedDeal(f, buyer: other, kind: "exclusive_licence", territories: ["CN"], from: 30, to: 365, technologyID: technology)
            try await api.dealActionOK(replacement, "sign", key: f.seller.key)
            let signed = try await api.dealAction(replacement, "sign", key: other.key)
            #expect(signed.status == .ok && signed.json["status"].string == "signed", "a terminated deal that never started still holds rights: \(signed)")
            try await api.expectLedgerInvariants()
        }
    }

    // MARK: Racing signatures

    @Test func ofTwoConflictingSignaturesSentTogetherExactlyOneWins() async throws {
        try await withAPI { api in
            let f = try await api.dealFixture()
            let other = try await api.createOrganization("Second Buyer", kind: "enterprise")
            for round in 0..<4 {
                let technology = try await api.listedDealTechnology(as: f.seller, "Raced technology \(round)")
                let kinds = round % 2 == 0 ? ("exclusive_licence", "exclusive_licence") : ("exclusive_licence", "non_exclusive_licence")
                let a = try await api.proposedDeal(f, buyer: f.buyer, kind: kinds.0, territories: ["CN"], from: 30, to: 395, technologyID: technology)
                let b = try await api.proposedDeal(f, buyer: other, kind: kinds.1, territories: ["WORLD"], from: 100, to: 500, technologyID: technology)
                try await api.dealActionOK(a, "sign", key: f.seller.key)
                try await api.dealActionOK(b, "sign", key: f.seller.key)
                async let first = api.dealAction(a, "sign", key: f.buyer.key)
                async let second = api.dealAction(b, "sign", key: other.key)
                let responses = try await [first, second]
                let winners = responses.filter { $0.status == .ok }
                let losers = responses.filter { $0.status != .ok }
                #expect(winners.count == 1 && losers.count == 1, "\(responses)")
                for loser in losers { Self.expectConflict(loser, with: nil) }
                let statuses = [try await api.dealStatus(a), try await api.dealStatus(b)].compactMap { $0 }.sorted()
                #expect(statuses == ["proposed", "signed"], "round \(round): \(statuses)")
                #expect(try await api.grantCount(technology) == 1, "round \(round)")
            }
            try await api.expectLedgerInvariants()
        }
    }
}

private extension API {
    /// A deal of `kind` over `territories` from `from` to `to` days from today (nil: open-ended)
    /// between the fixture's seller and `buyer`, proposed (and approved if a rule needs it); returns its id.
    func proposedDeal(_ f: DealFixture, buyer: Org, kind: String, territories: [String], from: Int, to: Int?, technologyID: String? = nil,
                      fieldOfUse: String = "Battery recycling plants", sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let body = dealBody(kind: kind, fieldOfUse: fieldOfUse, territories: territories, startsOn: utcDate(from), endsOn: to.map { utcDate($0) })
        let id = try await sellerDealID(f, buyer: buyer, technologyID: technologyID, body, sourceLocation: sourceLocation)
        let proposed = try await proposeDeal(id, f, sourceLocation: sourceLocation)
        if proposed["status"].string == "approval_required" { try await approveDeal(id, f, sourceLocation: sourceLocation) }
        return id
    }

    /// Like `proposedDeal`, then signed by both; returns its id.
    @discardableResult
    func grantedDeal(_ f: DealFixture, buyer: Org, kind: String, territories: [String], from: Int, to: Int?, technologyID: String? = nil,
                     fieldOfUse: String = "Battery recycling plants", sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let id = try await proposedDeal(f, buyer: buyer, kind: kind, territories: territories, from: from, to: to, technologyID: technologyID,
                                        fieldOfUse: fieldOfUse, sourceLocation: sourceLocation)
        let signed = try await signBoth(id, f, buyer: buyer, sourceLocation: sourceLocation)
        try #require(signed["status"].string == "signed", "\(signed)", sourceLocation: sourceLocation)
        return id
    }

    /// The rows of `techbank.licence_grants` of a technology.
    func grantCount(_ technologyID: String) async throws -> Int64 {
        let id = try #require(UUID(uuidString: technologyID))
        return try await pool.withConnection { connection in
            try await connection.query("SELECT count(*)::bigint FROM techbank.licence_grants WHERE technology_id = $1", [id])
        }[0].decode(Int64.self, at: 0)
    }
}
