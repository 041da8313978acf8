import Foundation
import HTTPTypes
import Postgres
import TechBank
import Testing

@Suite("Market: broker matches")
struct MatchTests {
    static let matchKeys: Set<String> = [
        "id", "broker_id", "technology_id", "demand_id", "seller_id", "buyer_id", "note", "seller_decision", "buyer_decision", "status", "version",
        "created_at", "updated_at",
    ]

    // MARK: Proposing

    @Test func onlyBrokersProposeMatches() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let others: [(String, String)] = [
                ("seller", m.seller.key), ("buyer", m.buyer.key), ("park", m.park.key), ("committee", m.committee.key),
                ("outsider", m.outsider.key), ("operator", operatorKey),
            ]
            for (label, key) in others {
                let response = try await api.call(.post, "/v1/matches", key: key, json: ["technology_id": m.technologyID, "demand_id": m.demandID])
                expectProblem(response, .forbidden, "forbidden")
                if response.status != .forbidden { Issue.record("\(label)") }
            }
            #expect(try await api.matchIDs().isEmpty, "a refused proposal created a match")

            let id = newID()
            let created = try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: m.demandID, note: "  Both work on LFP cells.  ",
                                                     extra: ["id": id])
            #expect(created.status == .created, "\(created)")
            #expect(created.headers[.location] == "/v1/matches/\(id)", "\(created.headers)")
            let match = created.json
            #expect(match.keys == Self.matchKeys, "\(match)")
            #expect(match["id"].string == id && match["broker_id"].string == m.broker.id, "\(match)")
            #expect(match["technology_id"].string == m.technologyID && match["demand_id"].string == m.demandID, "\(match)")
            #expect(match["seller_id"].string == m.seller.id && match["buyer_id"].string == m.buyer.id, "\(match)")
            #expect(match["note"].string == "Both work on LFP cells.", "the note is trimmed: \(match)")
            #expect(match["seller_decision"].isNull && match["buyer_decision"].isNull, "\(match)")
            #expect(match["status"].string == "proposed" && match["version"].int == 1, "\(match)")
            #expect(match["created_at"].string != nil && match["updated_at"].string != nil, "\(match)")
            let read = try await api.call(.get, "/v1/matches/\(id)", key: m.broker.key)
            #expect(read.status == .ok && read.json == match, "\(read)")

            let journal = try await api.journal(of: id)
            #expect(journal.map(\.event) == ["match_proposed"], "\(journal)")
            #expect(journal.first?.payload["actor_id"].string == m.broker.id && journal.first?.payload["status"].string == "proposed", "\(journal)")

            // Without a note the note is empty.
            let secondDemand = try await api.postDemandID(as: m.buyer, demandBody("Second demand"))
            let plain = try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: secondDemand)
            #expect(plain.status == .created && plain.json["note"].string == "", "\(plain)")

            // A reused id is a conflict, even for another pair.
            let thirdDemand = try await api.postDemandID(as: m.buyer, demandBody("Third demand"))
            expectProblem(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: thirdDemand, extra: ["id": id]),
                          .conflict, "conflict", fields: ["id"])
            #expect(try await api.matchIDs([("demand_id", thirdDemand)]).isEmpty)
        }
    }

    @Test func anIdempotentRetryProposesOnce() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let body: [String: Any] = ["technology_id": m.technologyID, "demand_id": m.demandID]
            let first = try await api.call(.post, "/v1/matches", key: m.broker.key, json: body, headers: [.tbIdempotencyKey: "match-1"])
            let retry = try await api.call(.post, "/v1/matches", key: m.broker.key, json: body, headers: [.tbIdempotencyKey: "match-1"])
            #expect(first.status == .created, "\(first)")
            #expect(retry.status == .created && retry.body == first.body && retry.headers[.tbIdempotentReplayed] == "true", "\(retry)")
            #expect(try await api.matchIDs() == [first.json["id"].string ?? "?"])
        }
    }

    @Test func theTechnologyMustBeListedAndTheDemandOpen() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let otherBroker = try await api.createOrganization("Other Brokers", kind: "broker")

            // Technologies that are not listed, and one that does not exist, all answer alike.
            var unlisted: [(String, String)] = []
            for (state, moves) in [("registered", []), ("in_custody", ["custody"]), ("withdrawn", ["custody", "listing", "withdraw"])] {
                let id = try await api.registerTechnologyID(as: m.seller, technologyBody("Technology \(state)"))
                try await api.moveAll(id, moves, key: m.seller.key)
                unlisted.append((state, id))
            }
            let missingTechnology = try await api.proposeMatch(as: m.broker, technologyID: newID(), demandID: m.demandID)
            expectInvalid(missingTechnology, "technology_id")
            for (state, id) in unlisted {
                let response = try await api.proposeMatch(as: m.broker, technologyID: id, demandID: m.demandID)
                expectInvalid(response, "technology_id")
                #expect(response.problemShape == missingTechnology.problemShape, "\(state): \(response.problemShape) vs \(missingTechnology.problemShape)")
            }

            // Demands that are not open, and one that does not exist, all answer alike.
            let closed = try await api.postDemandID(as: m.buyer, demandBody("Closed"))
            #expect(try await api.closeDemand(closed, key: m.buyer.key).status == .ok)
            let matched = try await api.postDemandID(as: m.buyer, demandBody("Matched"))
            let otherTechnology = try await api.listedTechnologyID(as: m.seller, "Direct cathode regeneration")
            let accepted = try await api.proposeMatchID(as: m.broker, technologyID: otherTechnology, demandID: matched)
            try await api.decideOK(accepted, "accept", key: m.buyer.key)
            try await api.decideOK(accepted, "accept", key: m.seller.key)
            #expect(try await api.demandStatus(matched) == "matched")
            let expired = try await api.postDemandID(as: m.buyer, demandBody("Expired", deadline: utcDate(0)))
            #expect(try await Demands(pool: api.pool).expire(before: PostgresDate(daysSince2000: PostgresDate.today().daysSince2000 + 1)) == 1)
            #expect(try await api.demandStatus(expired) == "expired")

            let missingDemand = try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: newID())
            expectInvalid(missingDemand, "demand_id")
            for (state, id) in [("closed", closed), ("matched", matched), ("expired", expired)] {
                let response = try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: id)
                expectInvalid(response, "demand_id")
                #expect(response.problemShape == missingDemand.problemShape, "\(state): \(response.problemShape) vs \(missingDemand.problemShape)")
            }
            // Another broker's hidden objects do not leak either.
            let hidden = try await api.proposeMatch(as: otherBroker, technologyID: unlisted[0].1, demandID: m.demandID)
            #expect(hidden.problemShape == (try await api.proposeMatch(as: otherBroker, technologyID: newID(), demandID: m.demandID)).problemShape)

            // Bad bodies.
            expectInvalid(try await api.proposeMatch(as: m.broker, technologyID: "tech-1", demandID: m.demandID), "technology_id")
            expectInvalid(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: "42"), "demand_id")
            expectInvalid(try await api.call(.post, "/v1/matches", key: m.broker.key, json: ["technology_id": m.technologyID]), "demand_id")
            expectInvalid(try await api.call(.post, "/v1/matches", key: m.broker.key, json: ["demand_id": m.demandID]), "technology_id")
            expectInvalid(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: m.demandID,
                                                     note: String(repeating: "n", count: 2_001)), "note")
            expectProblem(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: m.demandID, extra: ["status": "accepted"]),
                          .unprocessableContent, "unknown_field", fields: ["status"])
            expectProblem(try await api.call(.post, "/v1/matches", key: m.broker.key, raw: "{"), .badRequest, "invalid_request", fields: ["body"])

            #expect(try await api.matchIDs() == [accepted], "a refused proposal created a match")
            // A note of 2000 is fine.
            let long = try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: m.demandID, note: String(repeating: "n", count: 2_000))
            #expect(long.status == .created, "\(long)")
        }
    }

    @Test func onePairHasOneLiveMatchAndMayBeProposedAgainAfterADecline() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let otherBroker = try await api.createOrganization("Other Brokers", kind: "broker")
            let first = try await api.proposeMatchID(as: m.broker, technologyID: m.technologyID, demandID: m.demandID)
            for broker in [m.broker, otherBroker] {
                let duplicate = try await api.proposeMatch(as: broker, technologyID: m.technologyID, demandID: m.demandID)
                expectProblem(duplicate, .conflict, "conflict", fields: ["technology_id"])
            }
            // Still live after one side accepted.
            try await api.decideOK(first, "accept", key: m.seller.key)
            expectProblem(try await api.proposeMatch(as: otherBroker, technologyID: m.technologyID, demandID: m.demandID), .conflict, "conflict")
            #expect(try await api.matchIDs() == [first])

            // Declined, the pair may be proposed again (by anyone), once.
            try await api.decideOK(first, "decline", key: m.buyer.key)
            let second = try await api.proposeMatch(as: otherBroker, technologyID: m.technologyID, demandID: m.demandID)
            #expect(second.status == .created && second.json["status"].string == "proposed" && second.json["id"].string != first, "\(second)")
            expectProblem(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: m.demandID), .conflict, "conflict")
            #expect(Set(try await api.matchIDs()) == [first, second.json["id"].string ?? "?"])

            // The same technology with another demand, or another technology with the same demand, is another pair.
            let otherDemand = try await api.postDemandID(as: m.buyer, demandBody("Another demand"))
            let otherTechnology = try await api.listedTechnologyID(as: m.seller, "Another technology")
            #expect(try await api.proposeMatch(as: m.broker, technologyID: m.technologyID, demandID: otherDemand).status == .created)
            #expect(try await api.proposeMatch(as: m.broker, technologyID: otherTechnology, demandID: m.demandID).status == .created)
        }
    }

    // MARK: Deciding

    @Test func bothPartiesAcceptingMatchesTheDemand() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let id = try await api.proposeMatchID(as: m.broker, technologyID: m.technologyID, demandID: m.demandID)
            let missing = newID()

            // Those who see the match but are no party: 403. Those who do not see it: 404, as for a missing match.
            for org in [m.broker, m.committee, m.park] {
                #expect(try await api.call(.get, "/v1/matches/\(id)", key: org.key).status == .ok)
                for decision in ["accept", "decline"] {
                    expectProblem(try await api.decide(id, decision, key: org.key), .forbidden, "forbidden")
                }
            }
            for decision in ["accept", "decline"] {
                expectProblem(try await api.decide(id, decision, key: operatorKey), .forbidden, "forbidden")
            }
            for (label, suffix) in [("GET", ""), ("accept", "/accept"), ("decline", "/decline")] {
                let method: HTTPRequest.Method = suffix.isEmpty ? .get : .post
                let hidden = try await api.call(method, "/v1/matches/\(id)\(suffix)", key: m.outsider.key)
                let absent = try await api.call(method, "/v1/matches/\(missing)\(suffix)", key: m.outsider.key)
                expectProblem(hidden, .notFound, "not_found")
                #expect(hidden.problemShape == absent.problemShape, "\(label): \(hidden.problemShape) vs \(absent.problemShape)")
            }
            expectProblem(try await api.decide(id, "approve", key: m.seller.key), .notFound, "not_found")
            expectProblem(try await api.call(.get, "/v1/matches/not-a-uuid", key: m.broker.key), .notFound, "not_found")
            #expect(try await api.call(.get, "/v1/matches/\(id)").json["version"].int == 1, "a refused decision changed the match")

            // The seller accepts: still proposed; deciding again is refused.
            let sellerAccepted = try await api.decide(id, "accept", key: m.seller.key)
            #expect(sellerAccepted.status == .ok, "\(sellerAccepted)")
            #expect(sellerAccepted.json["seller_decision"].string == "accepted" && sellerAccepted.json["buyer_decision"].isNull, "\(sellerAccepted)")
            #expect(sellerAccepted.json["status"].string == "proposed" && sellerAccepted.json["version"].int == 2, "\(sellerAccepted)")
            expectIllegalTransition(try await api.decide(id, "accept", key: m.seller.key), state: "proposed")
            expectIllegalTransition(try await api.decide(id, "decline", key: m.seller.key), state: "proposed")
            #expect(try await api.demandStatus(m.demandID) == "open")

            // The buyer accepts: accepted, and the demand is matched.
            let accepted = try await api.decide(id, "accept", key: m.buyer.key)
            #expect(accepted.status == .ok, "\(accepted)")
            #expect(accepted.json["seller_decision"].string == "accepted" && accepted.json["buyer_decision"].string == "accepted", "\(accepted)")
            #expect(accepted.json["status"].string == "accepted" && accepted.json["version"].int == 3, "\(accepted)")
            #expect(try await api.call(.get, "/v1/matches/\(id)", key: m.seller.key).json == accepted.json)
            let demand = try await api.demand(m.demandID, key: m.buyer.key)
            #expect(demand.json["status"].string == "matched" && demand.json["version"].int == 2 && demand.headers[.eTag] == "\"v2\"", "\(demand)")
            for (key, decision) in [(m.buyer.key, "accept"), (m.buyer.key, "decline"), (m.seller.key, "accept"), (m.seller.key, "decline")] {
                expectIllegalTransition(try await api.decide(id, decision, key: key), state: "accepted")
            }
            // Matched, the demand is no longer public.
            expectProblem(try await api.demand(m.demandID, key: m.outsider.key), .notFound, "not_found")
            #expect(try await api.demand(m.demandID, key: m.committee.key).status == .ok)

            let journal = try await api.journal(of: id)
            #expect(journal.map(\.event) == ["match_proposed", "match_accepted", "match_accepted"], "\(journal)")
            #expect(journal.compactMap { $0.payload["actor_id"].string } == [m.broker.id, m.seller.id, m.buyer.id], "\(journal)")
            #expect(journal.last?.payload["status"].string == "accepted", "\(journal)")
            let demandJournal = try await api.journal(of: m.demandID)
            #expect(demandJournal.map(\.event) == ["demand_posted", "demand_matched"], "\(demandJournal)")
            #expect(demandJournal.last?.payload["actor_id"].string == m.buyer.id, "\(demandJournal)")
        }
    }

    @Test func theBuyerMayAcceptFirst() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let id = try await api.proposeMatchID(as: m.broker, technologyID: m.technologyID, demandID: m.demandID)
            let first = try await api.decideOK(id, "accept", key: m.buyer.key)
            #expect(first["buyer_decision"].string == "accepted" && first["seller_decision"].isNull && first["status"].string == "proposed", "\(first)")
            #expect(try await api.demandStatus(m.demandID) == "open")
            let second = try await api.decideOK(id, "accept", key: m.seller.key)
            #expect(second["status"].string == "accepted", "\(second)")
            #expect(try await api.demandStatus(m.demandID) == "matched")
        }
    }

    @Test func eitherDeclineDeclinesTheMatchAndLeavesTheDemandOpen() async throws {
        try await withAPI { api in
            let m = try await api.market()
            let technologies = [m.technologyID] + [
                try await api.listedTechnologyID(as: m.seller, "Second technology"),
                try await api.listedTechnologyID(as: m.seller, "Third technology"),
            ]

            // The buyer declines first: declined; the seller can no longer decide.
            let a = try await api.proposeMatchID(as: m.broker, technologyID: technologies[0], demandID: m.demandID)
            let declined = try await api.decideOK(a, "decline", key: m.buyer.key)
            #expect(declined["status"].string == "declined" && declined["buyer_decision"].string == "declined" && declined["seller_decision"].isNull,
                    "\(declined)")
            let late = try await api.decide(a, "accept", key: m.seller.key)
            expectIllegalTransition(late, state: "declined")
            #expect(late.json["detail"].string == "cannot accept a match that is declined", "\(late)")
            expectIllegalTransition(try await api.decide(a, "decline", key: m.seller.key), state: "declined")
            let twice = try await api.decide(a, "decline", key: m.buyer.key)
            expectIllegalTransition(twice, state: "declined")

            // The seller declines first.
            let b = try await api.proposeMatchID(as: m.broker, technologyID: technologies[1], demandID: m.demandID)
            #expect(try await api.decideOK(b, "decline", key: m.seller.key)["status"].string == "declined")
            expectIllegalTransition(try await api.decide(b, "accept", key: m.buyer.key), state: "declined")

            // One accepts, then the other declines: declined.
            let c = try await api.proposeMatchID(as: m.broker, technologyID: technologies[2], demandID: m.demandID)
            try await api.decideOK(c, "accept", key: m.buyer.key)
            let split = try await api.decideOK(c, "decline", key: m.seller.key)
            #expect(split["status"].string == "declined" && split["buyer_decision"].string == "accepted" && split["seller_decision"].string == "declined",
                    "\(split)")
            expectIllegalTransition(try await api.decide(c, "accept", key: m.seller.key), state: "declined")

            // The demand stays open and untouched.
            let demand = try await api.demand(m.demandID, key: m.outsider.key)
            #expect(demand.json["status"].string == "open" && demand.json["version"].int == 1, "\(demand)")
            #expect(try await api.journalEvents(of: m.demandID) == ["demand_posted"])
            #expect(try await api.journalEvents(of: a) == ["match_proposed", "match_declined"])
            #expect(try await api.journalEvents(of: c) == ["match_proposed", "match_accepted", "match_declined"])
            #expect(Set(try await api.matchIDs([("status", "declined")])) == [a, b, c])
        }
    }

    // MARK: Listing

    @Test func eachSeesItsOwnMatchesFilteredAndPaged() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let otherPark = try await api.createOrganization("Other Park", kind: "sub_park")
            let seller1 = try await api.createOrganization("Lab One", kind: "institute", subParkID: park.id)
            let seller2 = try await api.createOrganization("Lab Two", kind: "institute")
            let buyer1 = try await api.createOrganization("Buyer One", kind: "enterprise")
            let buyer2 = try await api.createOrganization("Buyer Two", kind: "enterprise", subParkID: otherPark.id)
            let broker1 = try await api.createOrganization("Broker One", kind: "broker")
            let broker2 = try await api.createOrganization("Broker Two", kind: "broker")
            let idleBroker = try await api.createOrganization("Idle Broker", kind: "broker")
            let outsider = try await api.createOrganization("Outsider", kind: "enterprise")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let t1 = try await api.listedTechnologyID(as: seller1, "Technology one")
            let t2 = try await api.listedTechnologyID(as: seller2, "Technology two")
            let t3 = try await api.listedTechnologyID(as: seller2, "Technology three")
            let d1 = try await api.postDemandID(as: buyer1, demandBody("Demand one"))
            let d2 = try await api.postDemandID(as: buyer2, demandBody("Demand two"))

            let m1 = try await api.proposeMatchID(as: broker1, technologyID: t1, demandID: d1)
            let m2 = try await api.proposeMatchID(as: broker1, technologyID: t2, demandID: d1)
            let m3 = try await api.proposeMatchID(as: broker2, technologyID: t1, demandID: d2)
            let m4 = try await api.proposeMatchID(as: broker2, technologyID: t2, demandID: d2)
            let m5 = try await api.proposeMatchID(as: broker1, technologyID: t3, demandID: d2)
            try await api.decideOK(m1, "accept", key: seller1.key)
            try await api.decideOK(m1, "accept", key: buyer1.key)
            try await api.decideOK(m2, "decline", key: buyer1.key)

            let all = [m5, m4, m3, m2, m1]
            let sees: [(String, String, Set<String>)] = [
                ("broker1", broker1.key, [m1, m2, m5]), ("broker2", broker2.key, [m3, m4]), ("idle broker", idleBroker.key, []),
                ("seller1", seller1.key, [m1, m3]), ("seller2", seller2.key, [m2, m4, m5]),
                ("buyer1", buyer1.key, [m1, m2]), ("buyer2", buyer2.key, [m3, m4, m5]),
                ("park", park.key, [m1, m3]), ("other park", otherPark.key, [m3, m4, m5]),
                ("outsider", outsider.key, []), ("committee", committee.key, Set(all)), ("operator", operatorKey, Set(all)),
            ]
            for (label, key, expected) in sees {
                let listed = try await api.matchIDs(key: key)
                #expect(listed == all.filter(expected.contains), "\(label): newest first, only its own: \(listed)")
                for id in all {
                    let read = try await api.call(.get, "/v1/matches/\(id)", key: key)
                    #expect((read.status == .ok) == expected.contains(id), "\(label) reading \(id): \(read)")
                }
                // Filters never widen what one sees.
                #expect(Set(try await api.matchIDs([("technology_id", t1)], key: key)) == expected.intersection([m1, m3]), "\(label)")
                #expect(Set(try await api.matchIDs([("demand_id", d2)], key: key)) == expected.intersection([m3, m4, m5]), "\(label)")
                #expect(Set(try await api.matchIDs([("status", "proposed")], key: key)) == expected.intersection([m3, m4, m5]), "\(label)")
            }

            // Filters.
            #expect(try await api.matchIDs([("status", "accepted")]) == [m1])
            #expect(try await api.matchIDs([("status", "declined")]) == [m2])
            #expect(try await api.matchIDs([("status", "proposed")]) == [m5, m4, m3])
            #expect(try await api.matchIDs([("technology_id", t2)]) == [m4, m2])
            #expect(try await api.matchIDs([("demand_id", d1)]) == [m2, m1])
            #expect(try await api.matchIDs([("technology_id", t1), ("demand_id", d2)]) == [m3])
            #expect(try await api.matchIDs([("technology_id", t3), ("status", "accepted")]).isEmpty)
            #expect(try await api.matchIDs([("demand_id", d1)], key: seller1.key) == [m1])
            #expect(try await api.matchIDs([("technology_id", newID())]).isEmpty)

            // Paging: every match exactly once, in order, whatever the page size.
            for limit in [1, 2, 3, 4, 5, 6] {
                #expect(try await api.matchIDs(limit: limit) == all, "limit \(limit)")
                #expect(try await api.matchIDs(key: broker1.key, limit: limit) == [m5, m2, m1], "broker1, limit \(limit)")
                #expect(try await api.matchIDs([("demand_id", d2)], key: buyer2.key, limit: limit) == [m5, m4, m3], "buyer2, limit \(limit)")
            }
            let first = try await api.call(.get, "/v1/matches?limit=2")
            #expect(first.json["data"].array.compactMap { $0["id"].string } == [m5, m4] && first.json["next_cursor"].string != nil, "\(first)")

            // Bad parameters.
            expectInvalid(try await api.call(.get, "/v1/matches?status=open"), "status")
            expectInvalid(try await api.call(.get, "/v1/matches?technology_id=t1"), "technology_id")
            expectInvalid(try await api.call(.get, "/v1/matches?demand_id=d1"), "demand_id")
            expectInvalid(try await api.call(.get, "/v1/matches?limit=0"), "limit")
            expectInvalid(try await api.call(.get, "/v1/matches?cursor=%21%21"), "cursor")
            expectInvalid(try await api.call(.get, marketURI("/v1/matches", [("cursor", Data("yesterday|x".utf8).base64EncodedString())])), "cursor")
            expectProblem(try await api.call(.get, "/v1/matches", key: nil), .unauthorized, "unauthorized")
        }
    }
}
