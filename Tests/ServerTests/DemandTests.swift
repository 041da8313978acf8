import Foundation
import HTTPTypes
import Postgres
import TechBank
import Testing
import TestSupport

@Suite("Market: demands")
struct DemandTests {
    static let demandKeys: Set<String> = [
        "id", "owner_id", "posted_by", "title", "description", "field", "keywords", "trl_min", "budget", "region", "deadline", "status",
        "version", "created_at", "updated_at",
    ]

    // MARK: Posting

    @Test func anEnterprisePostsForItself() async throws {
        try await withAPI { api in
            let enterprise = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let id = newID()
            let deadline = utcDate(120)
            let response = try await api.call(.post, "/v1/demands", key: enterprise.key, json: demandBody(
                "  Lithium battery recycling line \n", description: "Black-mass recovery above 95%.", field: "environmental_technology",
                keywords: [" recycling ", "lithium"], trlMin: 5, budget: ["min": 1_000_000, "max": 5_000_000, "currency": "CNY"],
                region: "CN-SH", deadline: deadline, extra: ["id": id]))
            #expect(response.status == .created, "\(response)")
            #expect(response.headers[.location] == "/v1/demands/\(id)", "\(response.headers)")
            #expect(response.headers[.eTag] == "\"v1\"", "\(response.headers)")
            let d = response.json
            #expect(d.keys == Self.demandKeys, "\(d)")
            #expect(d["id"].string == id && d["owner_id"].string == enterprise.id && d["posted_by"].string == enterprise.id, "\(d)")
            #expect(d["title"].string == "Lithium battery recycling line", "the title is trimmed: \(d)")
            #expect(d["description"].string == "Black-mass recovery above 95%.", "\(d)")
            #expect(d["field"].string == "environmental_technology" && d["trl_min"].int == 5 && d["region"].string == "CN-SH", "\(d)")
            #expect(d["keywords"] == .array([.string("recycling"), .string("lithium")]), "keywords are trimmed: \(d)")
            #expect(d["budget"] == .object(["min": .int(1_000_000), "max": .int(5_000_000), "currency": .string("CNY")]), "\(d)")
            #expect(d["deadline"].string == deadline, "\(d)")
            #expect(d["status"].string == "open" && d["version"].int == 1, "\(d)")
            #expect(d["created_at"].string != nil && d["updated_at"].string != nil, "\(d)")

            // GET answers the same, with the same ETag.
            let read = try await api.demand(id, key: enterprise.key)
            #expect(read.status == .ok && read.json == d && read.headers[.eTag] == "\"v1\"", "\(read)")

            // Naming itself as owner is allowed; the optional fields default.
            let minimal = try await api.call(.post, "/v1/demands", key: enterprise.key, json: [
                "owner_id": enterprise.id, "title": "Heat pump retrofit", "field": "new_energy", "trl_min": 1, "region": "CN", "deadline": utcDate(1),
            ])
            #expect(minimal.status == .created, "\(minimal)")
            let m = minimal.json
            #expect(m["owner_id"].string == enterprise.id && m["posted_by"].string == enterprise.id, "\(m)")
            #expect(m["description"].string == "" && m["keywords"] == .array([]) && m["budget"].isNull && m.keys == Self.demandKeys, "\(m)")
            let minimalID = try #require(m["id"].string)
            #expect(minimal.headers[.location] == "/v1/demands/\(minimalID)")

            // Posting is journalled, naming the actor.
            let journal = try await api.journal(of: id)
            #expect(journal.map(\.event) == ["demand_posted"], "\(journal)")
            #expect(journal.first?.payload["actor_id"].string == enterprise.id && journal.first?.payload["status"].string == "open", "\(journal)")

            // A reused id is a conflict and changes nothing.
            let reused = try await api.call(.post, "/v1/demands", key: enterprise.key, json: demandBody("Another title", extra: ["id": id]))
            expectProblem(reused, .conflict, "conflict", fields: ["id"])
            #expect(try await api.demand(id).json["title"].string == "Lithium battery recycling line")
        }
    }

    @Test func anIdempotentRetryPostsOnce() async throws {
        try await withAPI { api in
            let enterprise = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let body = demandBody()
            let first = try await api.call(.post, "/v1/demands", key: enterprise.key, json: body, headers: [.tbIdempotencyKey: "demand-1"])
            let retry = try await api.call(.post, "/v1/demands", key: enterprise.key, json: body, headers: [.tbIdempotencyKey: "demand-1"])
            #expect(first.status == .created, "\(first)")
            #expect(retry.status == .created && retry.body == first.body && retry.headers[.tbIdempotentReplayed] == "true", "\(retry)")
            #expect(try await api.demandIDs() == [first.json["id"].string ?? "?"])
        }
    }

    @Test func aBrokerOrTheOperatorPostsForAnEnterprise() async throws {
        try await withAPI { api in
            let enterprise = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            let otherBroker = try await api.createOrganization("Other Brokers", kind: "broker")
            let institute = try await api.createOrganization("SJTU Lab", kind: "institute")
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let operatorID = try await api.operatorID()

            let byBroker = try await api.call(.post, "/v1/demands", key: broker.key, json: demandBody(ownerID: enterprise.id))
            #expect(byBroker.status == .created, "\(byBroker)")
            #expect(byBroker.json["owner_id"].string == enterprise.id && byBroker.json["posted_by"].string == broker.id, "\(byBroker)")
            let byOperator = try await api.call(.post, "/v1/demands", json: demandBody(ownerID: enterprise.id))
            #expect(byOperator.status == .created, "\(byOperator)")
            #expect(byOperator.json["owner_id"].string == enterprise.id && byOperator.json["posted_by"].string == operatorID, "\(byOperator)")
            let brokerDemand = try #require(byBroker.json["id"].string)
            #expect(try await api.journal(of: brokerDemand).first?.payload["actor_id"].string == broker.id)

            // The owner is required, and must be an enterprise that exists.
            for key in [broker.key, operatorKey] {
                expectInvalid(try await api.call(.post, "/v1/demands", key: key, json: demandBody()), "owner_id")
                for owner in [institute.id, park.id, committee.id, otherBroker.id, broker.id, operatorID, newID()] {
                    expectInvalid(try await api.call(.post, "/v1/demands", key: key, json: demandBody(ownerID: owner)), "owner_id")
                }
            }
            // A malformed owner id is a validation error too.
            expectInvalid(try await api.call(.post, "/v1/demands", key: broker.key, json: demandBody(ownerID: "not-a-uuid")), "owner_id")

            #expect(Set(try await api.demandIDs()) == [brokerDemand, byOperator.json["id"].string ?? "?"])
        }
    }

    @Test func institutesTheCommitteeAndSubParksDoNotPostAndEnterprisesPostOnlyForThemselves() async throws {
        try await withAPI { api in
            let enterprise = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let rival = try await api.createOrganization("Rival Cells Ltd", kind: "enterprise")
            let institute = try await api.createOrganization("SJTU Lab", kind: "institute")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let member = try await api.createOrganization("Member Co", kind: "enterprise", subParkID: park.id)

            for org in [institute, committee, park] {
                expectProblem(try await api.call(.post, "/v1/demands", key: org.key, json: demandBody()), .forbidden, "forbidden")
                expectProblem(try await api.call(.post, "/v1/demands", key: org.key, json: demandBody(ownerID: enterprise.id)), .forbidden, "forbidden")
            }
            // A sub-park not even for its own member.
            expectProblem(try await api.call(.post, "/v1/demands", key: park.key, json: demandBody(ownerID: member.id)), .forbidden, "forbidden")
            // An enterprise not for another enterprise.
            expectProblem(try await api.call(.post, "/v1/demands", key: rival.key, json: demandBody(ownerID: enterprise.id)), .forbidden, "forbidden")
            expectProblem(try await api.call(.post, "/v1/demands", key: enterprise.key, json: demandBody(ownerID: member.id)), .forbidden, "forbidden")
            #expect(try await api.demandIDs().isEmpty, "a refused post created a demand")
        }
    }

    @Test func invalidDemandsAreRefusedNamingTheField() async throws {
        try await withAPI { api in
            let enterprise = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let budget = { (min: Any, max: Any, currency: Any) -> [String: Any] in ["min": min, "max": max, "currency": currency] }
            let refused: [(String, [String: Any], String)] = [
                ("empty title", demandBody(""), "title"),
                ("blank title", demandBody("  \n "), "title"),
                ("301 code points", demandBody(String(repeating: "锂", count: 301)), "title"),
                ("no title", demandBody().filter { $0.key != "title" }, "title"),
                ("trl_min 0", demandBody(trlMin: 0), "trl_min"),
                ("trl_min 10", demandBody(trlMin: 10), "trl_min"),
                ("trl_min -1", demandBody(trlMin: -1), "trl_min"),
                ("trl_min a string", demandBody(extra: ["trl_min": "5"]), "trl_min"),
                ("region china", demandBody(region: "china"), "region"),
                ("region C1", demandBody(region: "C1"), "region"),
                ("region cn", demandBody(region: "cn"), "region"),
                ("region CN-", demandBody(region: "CN-"), "region"),
                ("region CN-SHAN", demandBody(region: "CN-SHAN"), "region"),
                ("region CHN", demandBody(region: "CHN"), "region"),
                ("deadline yesterday", demandBody(deadline: utcDate(-1)), "deadline"),
                ("deadline last year", demandBody(deadline: utcDate(-365)), "deadline"),
                ("deadline 30 February", demandBody(deadline: "2030-02-30"), "deadline"),
                ("deadline month 13", demandBody(deadline: "2030-13-01"), "deadline"),
                ("deadline without padding", demandBody(deadline: "2030-6-30"), "deadline"),
                ("deadline with a time", demandBody(deadline: "2030-06-30T00:00:00Z"), "deadline"),
                ("deadline in words", demandBody(deadline: "next month"), "deadline"),
                ("deadline 3661 days ahead", demandBody(deadline: utcDate(3_661)), "deadline"),
                ("deadline in 2999", demandBody(deadline: "2999-01-01"), "deadline"),
                ("budget min above max", demandBody(budget: budget(5_000, 4_999, "CNY")), "budget.max"),
                ("budget lower-case currency", demandBody(budget: budget(1, 2, "cny")), "budget.currency"),
                ("budget currency of four letters", demandBody(budget: budget(1, 2, "YUAN")), "budget.currency"),
                ("budget currency with a digit", demandBody(budget: budget(1, 2, "C1Y")), "budget.currency"),
                ("budget empty currency", demandBody(budget: budget(1, 2, "")), "budget.currency"),
                ("budget negative min", demandBody(budget: budget(-1, 2, "CNY")), "budget.min"),
                ("budget negative max", demandBody(budget: budget(0, -5, "CNY")), "budget.max"),
                ("budget max above 2^53", demandBody(budget: budget(0, (1 << 53) + 1, "CNY")), "budget.max"),
                ("budget without currency", demandBody(budget: ["min": 1, "max": 2]), "budget.currency"),
                ("description of 20001", demandBody(description: String(repeating: "d", count: 20_001)), "description"),
                ("31 keywords", demandBody(keywords: (0...30).map { "k\($0)" }), "keywords"),
                ("an empty keyword", demandBody(keywords: ["ok", " "]), "keywords[1]"),
                ("a field outside the taxonomy", demandBody(field: "space_mining"), "field"),
                ("an empty field", demandBody(field: ""), "field"),
                ("a malformed id", demandBody(extra: ["id": "42"]), "id"),
            ]
            for (label, body, field) in refused {
                let response = try await api.call(.post, "/v1/demands", key: enterprise.key, json: body)
                expectInvalid(response, field)
                if response.errorFields != [field] { Issue.record("\(label)") }
            }
            for (label, body, fields) in [
                ("an unknown field", demandBody(extra: ["price": 10]), ["price"]),
                ("an unknown budget field", demandBody(budget: ["min": 1, "max": 2, "currency": "CNY", "vat": true]), ["budget.vat"]),
                ("status is not posted", demandBody(extra: ["status": "matched"]), ["status"]),
                ("posted_by is not posted", demandBody(extra: ["posted_by": newID()]), ["posted_by"]),
            ] {
                let response = try await api.call(.post, "/v1/demands", key: enterprise.key, json: body)
                expectProblem(response, .unprocessableContent, "unknown_field", fields: fields)
                if response.code != "unknown_field" { Issue.record("\(label)") }
            }
            #expect(try await api.demandIDs().isEmpty, "a refused post created a demand")

            // The limits themselves are accepted.
            let accepted: [(String, [String: Any])] = [
                ("300 code points", demandBody(String(repeating: "锂", count: 300))),
                ("trl_min 1", demandBody(trlMin: 1)),
                ("trl_min 9", demandBody(trlMin: 9)),
                ("a subdivision", demandBody(region: "CN-SH")),
                ("a three-character subdivision", demandBody(region: "CN-GD1")),
                ("another country", demandBody(region: "DE")),
                ("deadline today", demandBody(deadline: utcDate(0))),
                ("deadline 3660 days ahead", demandBody(deadline: utcDate(3_660))),
                ("budget min equal to max", demandBody(budget: budget(0, 0, "USD"))),
                ("budget up to 2^53", demandBody(budget: budget(1 << 53, 1 << 53, "EUR"))),
                ("30 keywords", demandBody(keywords: (0..<30).map { "k\($0)" })),
                ("a description of 20000", demandBody(description: String(repeating: "d", count: 20_000))),
            ]
            for (label, body) in accepted {
                let response = try await api.call(.post, "/v1/demands", key: enterprise.key, json: body)
                #expect(response.status == .created, "\(label): \(response)")
            }
            let regions = try await api.listAll("/v1/demands").compactMap { $0["region"].string }
            #expect(regions.count == accepted.count && regions.contains("CN-SH") && regions.contains("CN-GD1"))
        }
    }

    // MARK: Visibility

    @Test func anOpenDemandIsPublicAClosedOneOnlyForThoseInvolved() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let owner = try await api.createOrganization("Green Cells Ltd", kind: "enterprise", subParkID: park.id)
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let rival = try await api.createOrganization("Rival Cells Ltd", kind: "enterprise")
            let neighbour = try await api.createOrganization("Neighbour Co", kind: "enterprise", subParkID: park.id)
            let institute = try await api.createOrganization("SJTU Lab", kind: "institute")
            let otherBroker = try await api.createOrganization("Other Brokers", kind: "broker")
            let otherPark = try await api.createOrganization("Other Park", kind: "sub_park")

            let byBroker = try await api.postDemandID(as: broker, demandBody("Posted by the broker", ownerID: owner.id))
            let byOwner = try await api.postDemandID(as: owner, demandBody("Posted by the owner"))
            let everyone: [(String, String)] = [
                ("owner", owner.key), ("broker", broker.key), ("committee", committee.key), ("operator", operatorKey), ("park", park.key),
                ("rival", rival.key), ("neighbour", neighbour.key), ("institute", institute.key), ("other broker", otherBroker.key),
                ("other park", otherPark.key),
            ]

            // Open: everyone reads and finds both.
            for (label, key) in everyone {
                for id in [byBroker, byOwner] {
                    let response = try await api.demand(id, key: key)
                    #expect(response.status == .ok && response.json["id"].string == id, "\(label): \(response)")
                }
                #expect(Set(try await api.demandIDs(key: key)) == [byBroker, byOwner], "\(label)")
            }

            // Closed: the owner, the poster, the owner's sub-park, the committee and the operator only.
            #expect(try await api.closeDemand(byBroker, key: owner.key).status == .ok)
            #expect(try await api.closeDemand(byOwner, key: owner.key).status == .ok)
            let readers: [String: Set<String>] = [
                owner.key: [byBroker, byOwner], broker.key: [byBroker], park.key: [byBroker, byOwner], committee.key: [byBroker, byOwner],
                operatorKey: [byBroker, byOwner],
            ]
            let missing = newID()
            for (label, key) in everyone {
                let sees = readers[key] ?? []
                for id in [byBroker, byOwner] {
                    let response = try await api.demand(id, key: key)
                    if sees.contains(id) {
                        #expect(response.status == .ok && response.json["status"].string == "closed", "\(label): \(response)")
                    } else {
                        expectProblem(response, .notFound, "not_found")
                        #expect(response.problemShape == (try await api.demand(missing, key: key)).problemShape, "\(label): differs from a missing demand")
                    }
                }
                #expect(Set(try await api.demandIDs(key: key)) == sees, "\(label)")
                // Filters cannot reveal what is hidden.
                #expect(Set(try await api.demandIDs([("status", "closed")], key: key)) == sees, "\(label)")
                #expect(Set(try await api.demandIDs([("owner_id", owner.id)], key: key)) == sees, "\(label)")
                #expect(Set(try await api.demandIDs([("q", "Posted")], key: key)) == sees, "\(label)")
            }

            // Every route with a demand id answers an outsider as if the demand did not exist.
            struct Probe {
                let label: String
                let method: HTTPRequest.Method
                let suffix: String
                var json: [String: Any]? = nil
                var headers: HTTPFields = [:]
            }
            let probes = [
                Probe(label: "GET", method: .get, suffix: ""),
                Probe(label: "PATCH", method: .patch, suffix: "", json: ["title": "Mine now"], headers: [.ifMatch: "\"v2\""]),
                Probe(label: "PATCH without If-Match", method: .patch, suffix: "", json: ["title": "Mine now"]),
                Probe(label: "PATCH with a bad body", method: .patch, suffix: "", json: ["trl_min": 99], headers: [.ifMatch: "\"v2\""]),
                Probe(label: "POST close", method: .post, suffix: "/close"),
                Probe(label: "GET candidates", method: .get, suffix: "/candidates"),
            ]
            for org in [rival, institute, otherBroker, otherPark] {
                for probe in probes {
                    let hidden = try await api.call(probe.method, "/v1/demands/\(byBroker)\(probe.suffix)", key: org.key, json: probe.json, headers: probe.headers)
                    let absent = try await api.call(probe.method, "/v1/demands/\(missing)\(probe.suffix)", key: org.key, json: probe.json, headers: probe.headers)
                    expectProblem(hidden, .notFound, "not_found")
                    #expect(hidden.problemShape == absent.problemShape, "\(probe.label): \(hidden.problemShape) vs \(absent.problemShape)")
                }
            }
            #expect(try await api.demand(byBroker).json["version"].int == 2, "an outsider's probe changed the demand")
            // Ids that are not UUIDs name nothing.
            expectProblem(try await api.demand("not-a-uuid", key: owner.key), .notFound, "not_found")
            // Without a key: 401.
            expectProblem(try await api.call(.get, "/v1/demands", key: nil), .unauthorized, "unauthorized")
            expectProblem(try await api.call(.get, "/v1/demands/\(byOwner)", key: nil), .unauthorized, "unauthorized")
            expectProblem(try await api.call(.post, "/v1/demands", key: nil, json: demandBody()), .unauthorized, "unauthorized")
        }
    }

    // MARK: Search

    @Test func searchFindsEnglishAndChineseTextAndFilters() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let member = try await api.createOrganization("Green Cells Ltd", kind: "enterprise", subParkID: park.id)
            let other = try await api.createOrganization("Blue Water Co", kind: "enterprise")
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            let chinese = try await api.postDemandID(as: member, demandBody("锂电池回收技术需求", keywords: ["recycling"]))
            let battery = try await api.postDemandID(as: member, demandBody("Solid-state battery separator", field: "new_energy", keywords: ["ceramic"]))
            let membrane = try await api.postDemandID(as: other, demandBody("Wastewater treatment membrane", keywords: ["desalination"]))
            let closed = try await api.postDemandID(as: other, demandBody("Closed battery pack tender", field: "new_energy", keywords: []))
            let byBroker = try await api.postDemandID(as: broker, demandBody("Sodium-ion cathode supply", field: "new_energy", keywords: ["sodium"], ownerID: other.id))
            #expect(try await api.closeDemand(closed, key: other.key).status == .ok)

            // Text in the title or keywords, Chinese or English, any case; the description is not searched.
            #expect(try await api.demandIDs([("q", "锂电池")], key: broker.key) == [chinese])
            #expect(try await api.demandIDs([("q", "回收技术")], key: broker.key) == [chinese])
            #expect(try await api.demandIDs([("q", "recycling")], key: broker.key) == [chinese], "keywords are searched")
            #expect(try await api.demandIDs([("q", "separator")], key: broker.key) == [battery])
            #expect(try await api.demandIDs([("q", "MEMBRANE")], key: broker.key) == [membrane])
            #expect(try await api.demandIDs([("q", "desalination")], key: broker.key) == [membrane])
            #expect(try await api.demandIDs([("q", "black-mass")], key: broker.key).isEmpty, "the description is not searched")
            #expect(try await api.demandIDs([("q", "钠离子")], key: broker.key).isEmpty)
            // LIKE metacharacters are literal.
            #expect(try await api.demandIDs([("q", "%")], key: broker.key).isEmpty)
            #expect(try await api.demandIDs([("q", "_")], key: broker.key).isEmpty)
            // "battery" finds the open one for outsiders, both for the owner of the closed one.
            #expect(try await api.demandIDs([("q", "battery")], key: broker.key) == [battery])
            #expect(Set(try await api.demandIDs([("q", "battery")], key: other.key)) == [battery, closed])

            // Filters.
            #expect(Set(try await api.demandIDs([("field", "new_energy")], key: broker.key)) == [battery, byBroker])
            #expect(Set(try await api.demandIDs([("field", "new_energy")], key: other.key)) == [battery, closed, byBroker])
            #expect(try await api.demandIDs([("field", "agriculture")], key: other.key).isEmpty)
            #expect(try await api.demandIDs([("status", "closed")], key: other.key) == [closed])
            #expect(Set(try await api.demandIDs([("status", "open")], key: other.key)) == [chinese, battery, membrane, byBroker])
            #expect(try await api.demandIDs([("status", "matched")]).isEmpty)
            #expect(Set(try await api.demandIDs([("owner_id", other.id)])) == [membrane, closed, byBroker])
            #expect(Set(try await api.demandIDs([("owner_id", other.id)], key: member.key)) == [membrane, byBroker])
            #expect(Set(try await api.demandIDs([("owner_id", member.id)], key: other.key)) == [chinese, battery])
            #expect(Set(try await api.demandIDs([("sub_park_id", park.id)], key: broker.key)) == [chinese, battery])
            #expect(try await api.demandIDs([("sub_park_id", newID())]).isEmpty)
            #expect(try await api.demandIDs([("owner_id", other.id), ("field", "new_energy"), ("status", "open")]) == [byBroker])
            #expect(try await api.demandIDs([("q", "battery"), ("owner_id", member.id)]) == [battery])
            #expect(try await api.demandIDs([("q", "battery"), ("sub_park_id", park.id)], key: park.key) == [battery])
            // Newest first without text.
            #expect(try await api.demandIDs(key: operatorKey) == [byBroker, closed, membrane, battery, chinese])

            // Bad parameters.
            expectInvalid(try await api.call(.get, "/v1/demands?status=pending"), "status")
            expectInvalid(try await api.call(.get, "/v1/demands?owner_id=acme"), "owner_id")
            expectInvalid(try await api.call(.get, "/v1/demands?sub_park_id=1"), "sub_park_id")
            expectInvalid(try await api.call(.get, marketURI("/v1/demands", [("q", String(repeating: "q", count: 201))])), "q")
            expectInvalid(try await api.call(.get, "/v1/demands?limit=0"), "limit")
            expectInvalid(try await api.call(.get, "/v1/demands?limit=201"), "limit")
            expectInvalid(try await api.call(.get, "/v1/demands?cursor=%21%21"), "cursor")
            expectInvalid(try await api.call(.get, marketURI("/v1/demands", [("cursor", Data("-1".utf8).base64EncodedString())])), "cursor")
        }
    }

    @Test func pagingReturnsEveryVisibleDemandExactlyOnce() async throws {
        try await withAPI { api in
            let owner = try await api.createOrganization("Green Cells Ltd", kind: "enterprise")
            let other = try await api.createOrganization("Blue Water Co", kind: "enterprise")
            var visible: [String] = []
            for n in 0..<7 {
                visible.append(try await api.postDemandID(as: owner, demandBody("Heat pump \(n)", keywords: ["pump"])))
            }
            // Closed demands of another enterprise are never listed, not even as padding of a page.
            for n in 0..<3 {
                let id = try await api.postDemandID(as: other, demandBody("Heat pump hidden \(n)", keywords: ["pump"]))
                #expect(try await api.closeDemand(id, key: other.key).status == .ok)
            }
            let all = try await api.demandIDs(key: owner.key)
            #expect(all == visible.reversed(), "newest first")
            for limit in [1, 2, 3, 7, 8] {
                for parameters in [[], [("q", "pump")], [("field", "environmental_technology")]] as [[(String, String)]] {
                    let paged = try await api.demandIDs(parameters, key: owner.key, limit: limit)
                    #expect(paged.count == 7 && Set(paged) == Set(visible), "limit \(limit) \(parameters): \(paged)")
                }
            }
            #expect(try await api.demandIDs(key: owner.key, limit: 3) == all, "paging keeps the order")
            // The first page of two holds a cursor; the page it names continues after it.
            let first = try await api.call(.get, "/v1/demands?limit=2", key: owner.key)
            let cursor = try #require(first.json["next_cursor"].string)
            let second = try await api.call(.get, marketURI("/v1/demands", [("limit", "2"), ("cursor", cursor)]), key: owner.key)
            #expect(first.json["data"].array.compactMap { $0["id"].string } == Array(all[0..<2]))
            #expect(second.json["data"].array.compactMap { $0["id"].string } == Array(all[2..<4]))
            // The operator sees all ten, each once.
            let everything = try await api.demandIDs(limit: 3)
            #expect(everything.count == 10 && Set(everything).count == 10)
        }
    }

    // MARK: Changing

    @Test func patchNeedsTheCurrentETagAndOnlyTheOwnerThePosterOrTheOperator() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Lingang Park", kind: "sub_park")
            let owner = try await api.createOrganization("Green Cells Ltd", kind: "enterprise", subParkID: park.id)
            let broker = try await api.createOrganization("Bridge Brokers", kind: "broker")
            let otherBroker = try await api.createOrganization("Other Brokers", kind: "broker")
            let rival = try await api.createOrganization("Rival Cells Ltd", kind: "enterprise")
            let institute = try await api.createOrganization("SJTU Lab", kind: "institute")
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let id = try await api.postDemandID(as: broker, demandBody("Battery recycling", ownerID: owner.id))
            let uri = "/v1/demands/\(id)"
            let read = try await api.demand(id, key: owner.key)
            #expect(read.headers[.eTag] == "\"v1\"")

            // Those who see it but may not change it: 403, even with the right ETag.
            for org in [otherBroker, rival, institute, committee, park] {
                expectProblem(try await api.call(.patch, uri, key: org.key, json: ["title": "Hijacked"], headers: [.ifMatch: "\"v1\""]), .forbidden, "forbidden")
                expectProblem(try await api.call(.post, "\(uri)/close", key: org.key), .forbidden, "forbidden")
            }
            // The precondition.
            expectProblem(try await api.call(.patch, uri, key: owner.key, json: ["title": "X"]), .preconditionRequired, "precondition_required")
            for stale in ["\"v2\"", "\"v0\"", "W/\"v1\""] {
                expectProblem(try await api.call(.patch, uri, key: owner.key, json: ["title": "X"], headers: [.ifMatch: stale]),
                              .preconditionFailed, "precondition_failed")
            }
            // Not an entity-tag at all: 400.
            expectProblem(try await api.call(.patch, uri, key: owner.key, json: ["title": "X"], headers: [.ifMatch: "v1"]),
                          .badRequest, "invalid_request", fields: ["If-Match"])
            // Bad bodies change nothing.
            expectInvalid(try await api.call(.patch, uri, key: owner.key, json: ["trl_min": 0], headers: [.ifMatch: "\"v1\""]), "trl_min")
            expectInvalid(try await api.call(.patch, uri, key: owner.key, json: ["title": " "], headers: [.ifMatch: "\"v1\""]), "title")
            expectInvalid(try await api.call(.patch, uri, key: owner.key, json: ["deadline": utcDate(-1)], headers: [.ifMatch: "\"v1\""]), "deadline")
            expectInvalid(try await api.call(.patch, uri, key: owner.key, json: ["budget": ["min": 9, "max": 1, "currency": "CNY"]],
                                             headers: [.ifMatch: "\"v1\""]), "budget.max")
            for field in ["field", "region", "owner_id", "status", "version", "posted_by"] {
                expectProblem(try await api.call(.patch, uri, key: owner.key, json: [field: "x"], headers: [.ifMatch: "\"v1\""]),
                              .unprocessableContent, "unknown_field", fields: [field])
            }
            #expect(try await api.demand(id, key: owner.key).json == read.json, "a refused PATCH changed the demand")

            // The owner changes it: the version and the ETag move on.
            let deadline = utcDate(200)
            let patched = try await api.call(.patch, uri, key: owner.key, json: [
                "title": "  Cathode recycling  ", "description": "Direct regeneration preferred.", "keywords": ["cathode", "regeneration"],
                "trl_min": 6, "budget": ["min": 2_000_000, "max": 8_000_000, "currency": "USD"], "deadline": deadline,
            ], headers: [.ifMatch: "\"v1\""])
            #expect(patched.status == .ok && patched.headers[.eTag] == "\"v2\"", "\(patched)")
            let d = patched.json
            #expect(d["title"].string == "Cathode recycling" && d["description"].string == "Direct regeneration preferred." && d["trl_min"].int == 6, "\(d)")
            #expect(d["keywords"] == .array([.string("cathode"), .string("regeneration")]) && d["deadline"].string == deadline, "\(d)")
            #expect(d["budget"] == .object(["min": .int(2_000_000), "max": .int(8_000_000), "currency": .string("USD")]), "\(d)")
            #expect(d["version"].int == 2 && d["status"].string == "open", "\(d)")
            for unchanged in ["id", "owner_id", "posted_by", "field", "region", "created_at"] {
                #expect(d[unchanged] == read.json[unchanged], "\(unchanged) changed: \(d)")
            }
            #expect(try await api.demand(id, key: rival.key).json == d)
            // Search follows the new text.
            #expect(try await api.demandIDs([("q", "regeneration")], key: rival.key) == [id])
            #expect(try await api.demandIDs([("q", "Battery recycling")], key: rival.key).isEmpty)

            // The old ETag is stale; the poster and the operator change it too.
            expectProblem(try await api.call(.patch, uri, key: owner.key, json: ["trl_min": 7], headers: [.ifMatch: "\"v1\""]),
                          .preconditionFailed, "precondition_failed")
            let byPoster = try await api.call(.patch, uri, key: broker.key, json: ["trl_min": 7], headers: [.ifMatch: "\"v2\""])
            #expect(byPoster.status == .ok && byPoster.json["trl_min"].int == 7 && byPoster.headers[.eTag] == "\"v3\"", "\(byPoster)")
            #expect(byPoster.json["title"].string == "Cathode recycling", "a partial PATCH changed other fields: \(byPoster)")
            let byOperator = try await api.call(.patch, uri, json: ["description": "Edited by the operator."], headers: [.ifMatch: "*"])
            #expect(byOperator.status == .ok && byOperator.json["version"].int == 4 && byOperator.json["trl_min"].int == 7, "\(byOperator)")

            let journal = try await api.journal(of: id)
            #expect(journal.map(\.event) == ["demand_posted", "demand_updated", "demand_updated", "demand_updated"], "\(journal)")
            let operatorID = try await api.operatorID()
            #expect(journal.compactMap { $0.payload["actor_id"].string } == [broker.id, owner.id, broker.id, operatorID], "\(journal)")

            // Closed, it no longer changes: 409 naming the state, whoever asks and whatever the body.
            #expect(try await api.closeDemand(id, key: owner.key).status == .ok)
            let closedRead = try await api.demand(id, key: owner.key)
            #expect(closedRead.headers[.eTag] == "\"v5\"", "\(closedRead)")
            for key in [owner.key, broker.key, operatorKey] {
                expectIllegalTransition(try await api.call(.patch, uri, key: key, json: ["trl_min": 8], headers: [.ifMatch: "\"v5\""]), state: "closed")
            }
            #expect(try await api.demand(id, key: owner.key).json == closedRead.json)
            // Someone who no longer sees it: 404.
            expectProblem(try await api.call(.patch, uri, key: rival.key, json: ["trl_min": 8], headers: [.ifMatch: "\"v5\""]), .notFound, "not_found")
        }
    }

    @Test func closingMovesOpenAndMatchedDemandsToClosedOnce() async throws {
        try await withAPI { api in
            let market = try await api.market()
            let rival = try await api.createOrganization("Rival Cells Ltd", kind: "enterprise")

            // open → closed, by the owner.
            let open = try await api.postDemandID(as: market.buyer, demandBody("Open then closed"))
            expectProblem(try await api.closeDemand(open, key: rival.key), .forbidden, "forbidden")
            let closed = try await api.closeDemand(open, key: market.buyer.key)
            #expect(closed.status == .ok && closed.json["status"].string == "closed" && closed.json["version"].int == 2, "\(closed)")
            #expect(closed.headers[.eTag] == "\"v2\"", "\(closed.headers)")
            #expect(try await api.demand(open, key: market.buyer.key).json == closed.json)
            // Closing twice: 409 naming "closed", nothing changes.
            let again = try await api.closeDemand(open, key: market.buyer.key)
            expectIllegalTransition(again, state: "closed")
            #expect(again.json["detail"].string == "cannot close a demand that is closed", "\(again)")
            #expect(try await api.demand(open, key: market.buyer.key).json["version"].int == 2)
            let journal = try await api.journal(of: open)
            #expect(journal.map(\.event) == ["demand_posted", "demand_closed"], "\(journal)")
            #expect(journal.last?.payload["actor_id"].string == market.buyer.id && journal.last?.payload["status"].string == "closed", "\(journal)")

            // matched → closed.
            let match = try await api.proposeMatchID(as: market.broker, technologyID: market.technologyID, demandID: market.demandID)
            try await api.decideOK(match, "accept", key: market.seller.key)
            try await api.decideOK(match, "accept", key: market.buyer.key)
            #expect(try await api.demandStatus(market.demandID) == "matched")
            let closedMatched = try await api.closeDemand(market.demandID, key: market.buyer.key)
            #expect(closedMatched.status == .ok && closedMatched.json["status"].string == "closed", "\(closedMatched)")
            expectIllegalTransition(try await api.closeDemand(market.demandID, key: market.buyer.key), state: "closed")
            #expect(try await api.journalEvents(of: market.demandID) == ["demand_posted", "demand_matched", "demand_closed"])

            // The poster and the operator close too.
            let posted = try await api.postDemandID(as: market.broker, demandBody("Posted by the broker", ownerID: market.buyer.id))
            #expect(try await api.closeDemand(posted, key: market.broker.key).json["status"].string == "closed")
            let forOperator = try await api.postDemandID(as: market.buyer, demandBody("Closed by the operator"))
            #expect(try await api.closeDemand(forOperator).json["status"].string == "closed")
            let operatorID = try await api.operatorID()
            #expect(try await api.journal(of: forOperator).last?.payload["actor_id"].string == operatorID)
        }
    }

    // MARK: Expiry

    @Test func housekeepingExpiresOpenAndMatchedDemandsPastTheirDeadline() async throws {
        try await withAPI { api in
            let market = try await api.market()
            let rival = try await api.createOrganization("Rival Cells Ltd", kind: "enterprise")
            let deadline = utcDate(10)
            let open = try await api.postDemandID(as: market.buyer, demandBody("Open", deadline: deadline))
            let matched = try await api.postDemandID(as: market.buyer, demandBody("Matched", deadline: deadline))
            let closed = try await api.postDemandID(as: market.buyer, demandBody("Closed", deadline: deadline))
            let later = try await api.postDemandID(as: market.buyer, demandBody("Later", deadline: utcDate(11)))
            let match = try await api.proposeMatchID(as: market.broker, technologyID: market.technologyID, demandID: matched)
            try await api.decideOK(match, "accept", key: market.seller.key)
            try await api.decideOK(match, "accept", key: market.buyer.key)
            #expect(try await api.closeDemand(closed, key: market.buyer.key).status == .ok)
            let before = try await api.demand(matched, key: market.buyer.key).json["version"].int

            let housekeeping = Housekeeping(pool: api.pool, logger: TestDatabase.logger)
            let today = PostgresDate.today()
            // On the deadline itself nothing expires.
            await housekeeping.runOnce(today: PostgresDate(daysSince2000: today.daysSince2000 + 10))
            for id in [open, market.demandID, later] { #expect(try await api.demandStatus(id) == "open") }
            #expect(try await api.demandStatus(matched) == "matched")

            // The day after, the open and the matched one expire; the closed one stays closed.
            await housekeeping.runOnce(today: PostgresDate(daysSince2000: today.daysSince2000 + 11))
            #expect(try await api.demandStatus(open) == "expired")
            #expect(try await api.demandStatus(matched) == "expired")
            #expect(try await api.demandStatus(closed) == "closed")
            #expect(try await api.demandStatus(later) == "open")
            #expect(try await api.demandStatus(market.demandID) == "open")
            let expired = try await api.demand(matched, key: market.buyer.key)
            #expect(expired.json["version"].int == (before ?? 0) + 1 && expired.headers[.eTag] == "\"v\((before ?? 0) + 1)\"", "\(expired)")

            // The journal records each expiry once, with the demand's own deadline.
            for id in [open, matched] {
                let journal = try await api.journal(of: id)
                #expect(journal.filter { $0.event == "demand_expired" }.count == 1, "\(journal)")
                #expect(journal.last?.event == "demand_expired" && journal.last?.payload["deadline"].string == deadline, "\(journal)")
            }
            #expect(try await api.journalEvents(of: closed) == ["demand_posted", "demand_closed"])
            #expect(try await api.journalEvents(of: later) == ["demand_posted"])
            // Running again changes nothing.
            await housekeeping.runOnce(today: PostgresDate(daysSince2000: today.daysSince2000 + 11))
            #expect(try await api.journal(of: open).filter { $0.event == "demand_expired" }.count == 1)

            // Expired is final and private.
            expectIllegalTransition(try await api.closeDemand(open, key: market.buyer.key), state: "expired")
            expectIllegalTransition(try await api.call(.patch, "/v1/demands/\(open)", key: market.buyer.key, json: ["trl_min": 2], headers: [.ifMatch: "*"]),
                                    state: "expired")
            expectProblem(try await api.demand(open, key: rival.key), .notFound, "not_found")
            #expect(try await api.demandIDs([("status", "expired")], key: market.buyer.key).count == 2)
            #expect(try await api.demandIDs([("status", "expired")], key: rival.key).isEmpty)
            expectInvalid(try await api.proposeMatch(as: market.broker, technologyID: market.technologyID, demandID: open), "demand_id")

            // The library call reports how many it expired.
            #expect(try await Demands(pool: api.pool).expire(before: PostgresDate(daysSince2000: today.daysSince2000 + 12)) == 1)
            #expect(try await api.demandStatus(later) == "expired")
        }
    }
}
