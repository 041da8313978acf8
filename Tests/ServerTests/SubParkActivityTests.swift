import Foundation
import HTTPTypes
import Testing

@Suite("Market: sub-park activity")
struct SubParkActivityTests {
    @Test func onlyTheSubParkTheCommitteeAndTheOperatorReadIt() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let otherPark = try await api.createOrganization("Other Park", kind: "sub_park")
            let member = try await api.createOrganization("Member Lab", kind: "institute", subParkID: park.id)
            let memberCo = try await api.createOrganization("Member Co", kind: "enterprise", subParkID: park.id)
            let institute = try await api.createOrganization("Outside Lab", kind: "institute")
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            let committee = try await api.createOrganization("Committee", kind: "committee")

            for (label, key) in [("park", park.key), ("committee", committee.key), ("operator", operatorKey)] {
                let response = try await api.activity(park.id, key: key)
                #expect(response.status == .ok && response.json["sub_park_id"].string == park.id && response.json["members"].int == 2, "\(label): \(response)")
            }
            let missing = newID()
            for (label, key) in [("other park", otherPark.key), ("member", member.key), ("member enterprise", memberCo.key),
                                 ("institute", institute.key), ("broker", broker.key)] {
                let hidden = try await api.activity(park.id, key: key)
                expectProblem(hidden, .notFound, "not_found")
                #expect(hidden.problemShape == (try await api.activity(missing, key: key)).problemShape, "\(label)")
            }
            // Ids that are not sub-parks, even for those who read everything, and even one's own.
            for key in [committee.key, operatorKey] {
                for id in [member.id, institute.id, committee.id, missing] {
                    expectProblem(try await api.activity(id, key: key), .notFound, "not_found")
                }
            }
            expectProblem(try await api.activity(member.id, key: member.key), .notFound, "not_found")
            expectProblem(try await api.activity(committee.id, key: committee.key), .notFound, "not_found")
            expectProblem(try await api.activity("not-a-uuid"), .notFound, "not_found")
            // The other park reads its own.
            #expect(try await api.activity(otherPark.id, key: otherPark.key).json["members"].int == 0)
            expectProblem(try await api.activity(park.id, key: nil), .unauthorized, "unauthorized")
        }
    }

    @Test func itCountsTheMembersObjectsByFieldAndStatus() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let otherPark = try await api.createOrganization("Other Park", kind: "sub_park")
            let lab = try await api.createOrganization("Member Lab", kind: "institute", subParkID: park.id)
            let company = try await api.createOrganization("Member Co", kind: "enterprise", subParkID: park.id)
            let outsideLab = try await api.createOrganization("Outside Lab", kind: "institute", subParkID: otherPark.id)
            let outsideCompany = try await api.createOrganization("Outside Co", kind: "enterprise")
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")

            // Members' technologies in three states; two outside.
            let tA = try await api.listedTechnologyID(as: lab, "Member listed", field: "new_energy")
            _ = try await api.registerTechnologyID(as: lab, technologyBody("Member registered", field: "biomedicine"))
            let custody = try await api.registerTechnologyID(as: lab, technologyBody("Member in custody", field: "new_energy"))
            try await api.moveAll(custody, ["custody"], key: lab.key)
            let tX = try await api.listedTechnologyID(as: outsideLab, "Outside listed", field: "advanced_materials")
            _ = try await api.registerTechnologyID(as: outsideLab, technologyBody("Outside registered", field: "aerospace"))

            // Members' demands, one posted by a broker for a member; two outside.
            let dA = try await api.postDemandID(as: company, demandBody("Member open", field: "new_energy"))
            let dB = try await api.postDemandID(as: company, demandBody("Member closed", field: "biomedicine"))
            #expect(try await api.closeDemand(dB, key: company.key).status == .ok)
            let dC = try await api.postDemandID(as: broker, demandBody("Member via broker", field: "agriculture", ownerID: company.id))
            let dX = try await api.postDemandID(as: outsideCompany, demandBody("Outside one", field: "new_energy"))
            let dY = try await api.postDemandID(as: outsideCompany, demandBody("Outside two", field: "new_energy"))

            // Matches: a member sells; a member buys; both are members (counted once); neither is.
            let m1 = try await api.proposeMatchID(as: broker, technologyID: tA, demandID: dX)
            try await api.decideOK(m1, "accept", key: lab.key)
            try await api.decideOK(m1, "accept", key: outsideCompany.key)
            let m2 = try await api.proposeMatchID(as: broker, technologyID: tX, demandID: dA)
            try await api.decideOK(m2, "decline", key: company.key)
            _ = try await api.proposeMatchID(as: broker, technologyID: tA, demandID: dC)
            _ = try await api.proposeMatchID(as: broker, technologyID: tX, demandID: dY)

            let today = utcDate(0)
            let expected: JSON = .object([
                "sub_park_id": .string(park.id), "from": .string(utcDate(-364)), "to": .string(today), "members": .int(2),
                "technologies": activityCounts(3, byField: ["new_energy": 2, "biomedicine": 1], byStatus: ["listed": 1, "registered": 1, "in_custody": 1]),
                "demands": activityCounts(3, byField: ["new_energy": 1, "biomedicine": 1, "agriculture": 1], byStatus: ["open": 2, "closed": 1]),
                "matches": activityCounts(3, byField: ["new_energy": 2, "advanced_materials": 1], byStatus: ["accepted": 1, "declined": 1, "proposed": 1]),
            ])
            for key in [park.key, operatorKey] {
                let report = try await api.activity(park.id, key: key)
                #expect(report.status == .ok && report.json == expected, "\(report)")
            }
            // The other park: its member's technologies and the matches about them; no demands.
            let other = try await api.activity(otherPark.id, key: otherPark.key)
            #expect(other.json == .object([
                "sub_park_id": .string(otherPark.id), "from": .string(utcDate(-364)), "to": .string(today), "members": .int(1),
                "technologies": activityCounts(2, byField: ["advanced_materials": 1, "aerospace": 1], byStatus: ["listed": 1, "registered": 1]),
                "demands": activityCounts(0),
                "matches": activityCounts(2, byField: ["advanced_materials": 2], byStatus: ["declined": 1, "proposed": 1]),
            ]), "\(other)")

            // Today alone counts the same; a period in the past or the future counts nothing, members stay.
            let todayOnly = try await api.activity(park.id, [("from", today), ("to", today)])
            #expect(todayOnly.json["technologies"] == expected["technologies"] && todayOnly.json["demands"] == expected["demands"]
                    && todayOnly.json["matches"] == expected["matches"], "\(todayOnly)")
            #expect(todayOnly.json["from"].string == today && todayOnly.json["to"].string == today, "\(todayOnly)")
            for (from, to) in [(utcDate(-30), utcDate(-1)), (utcDate(-1), utcDate(-1)), (utcDate(1), utcDate(1)), (utcDate(1), utcDate(400))] {
                let empty = try await api.activity(park.id, [("from", from), ("to", to)])
                #expect(empty.json == .object([
                    "sub_park_id": .string(park.id), "from": .string(from), "to": .string(to), "members": .int(2),
                    "technologies": activityCounts(0), "demands": activityCounts(0), "matches": activityCounts(0),
                ]), "\(from)…\(to): \(empty)")
            }
            // Only `to` given: the year up to it.
            let upToYesterday = try await api.activity(park.id, [("to", utcDate(-1))])
            #expect(upToYesterday.json["from"].string == utcDate(-365) && upToYesterday.json["technologies"]["total"].int == 0, "\(upToYesterday)")
            // Only `from` given: up to today.
            let sinceYesterday = try await api.activity(park.id, [("from", utcDate(-1))])
            #expect(sinceYesterday.json["to"].string == today && sinceYesterday.json["demands"] == expected["demands"], "\(sinceYesterday)")
        }
    }

    @Test func thePeriodIsValidated() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            for (parameters, field) in [
                ([("from", "2026-13-01")], "from"),
                ([("from", "2026-02-30")], "from"),
                ([("from", "yesterday")], "from"),
                ([("from", "2026-1-1")], "from"),
                ([("to", "2026-01-01T00:00:00Z")], "to"),
                ([("to", "")], "to"),
                ([("from", utcDate(1)), ("to", utcDate(0))], "from"),
                ([("from", utcDate(0)), ("to", utcDate(-1))], "from"),
                ([("from", utcDate(1))], "from"),
                ([("from", utcDate(-3_660)), ("to", utcDate(0))], "from"),
                ([("from", "2000-01-01"), ("to", "2030-01-01")], "from"),
            ] as [([(String, String)], String)] {
                expectInvalid(try await api.activity(park.id, parameters, key: park.key), field)
            }
            // The longest period allowed.
            let longest = try await api.activity(park.id, [("from", utcDate(-3_659)), ("to", utcDate(0))], key: park.key)
            #expect(longest.status == .ok && longest.json["from"].string == utcDate(-3_659), "\(longest)")
            // Validation does not come before visibility.
            let stranger = try await api.createOrganization("Stranger", kind: "enterprise")
            expectProblem(try await api.activity(park.id, [("from", "bad")], key: stranger.key), .notFound, "not_found")
        }
    }
}
