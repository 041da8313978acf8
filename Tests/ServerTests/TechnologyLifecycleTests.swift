import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: lifecycle, updates and history")
struct TechnologyLifecycleTests {
    /// Where each move leads from each state reachable over HTTP (nil: 409 `illegal_transition`).
    static let expected: [String: [String: String?]] = [
        "registered": ["custody": "in_custody", "listing": nil, "withdraw": "withdrawn"],
        "in_custody": ["custody": nil, "listing": "listed", "withdraw": "withdrawn"],
        "listed": ["custody": nil, "listing": nil, "withdraw": "withdrawn"],
        "withdrawn": ["custody": nil, "listing": nil, "withdraw": nil],
    ]

    @Test func everyTransitionFromEveryStateIsAllowedOrRefusedNamingTheState() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            for (state, moves) in technologyPaths {
                for transition in ["custody", "listing", "withdraw"] {
                    let label = "\(transition) from \(state)"
                    let id = try await api.registerTechnologyID(as: lab, technologyBody("\(label)"))
                    try await api.moveAll(id, moves, key: lab.key)
                    let before = try await api.technology(id, key: lab.key)
                    #expect(before.json["status"].string == state && before.json["version"].int == Int64(1 + moves.count), "\(label): \(before)")

                    let response = try await api.move(id, transition, key: lab.key)
                    let after = try await api.technology(id, key: lab.key)
                    let history = try await api.technologyHistory(id, key: lab.key)
                    if let target = Self.expected[state]?[transition] ?? nil {
                        #expect(response.status == .ok, "\(label): \(response)")
                        #expect(response.json["status"].string == target && response.json["version"].int == Int64(2 + moves.count), "\(label): \(response)")
                        #expect(response.headers[.eTag] == "\"v\(2 + moves.count)\"" && response.headers[.eTag] != before.headers[.eTag], "\(label): \(response.headers)")
                        #expect(response.json["description"].string == "Confidential: tap weights and calibration procedure.", "\(label): the owner reads it")
                        #expect(after.json == response.json, "\(label): GET after the move differs")
                        #expect(history.count == 2 + moves.count, "\(label): \(history)")
                        #expect(history.last?["event"].string == transition && history.last?["version"].int == Int64(2 + moves.count), "\(label): \(history)")
                        #expect(history.last?["changes"] == .object(["status": .string(target)]), "\(label): \(history)")
                        #expect(history.last?["actor_id"].string == lab.id, "\(label): \(history)")
                    } else {
                        expectIllegalTransition(response, state: state)
                        #expect(after.json == before.json && after.headers[.eTag] == before.headers[.eTag], "\(label): a refused move changed the technology")
                        #expect(history.count == 1 + moves.count, "\(label): a refused move was recorded: \(history)")
                    }
                }
            }
        }
    }

    @Test func theNamedIllegalMovesReadAsTheyShould() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let id = try await api.registerTechnologyID(as: lab)
            let listing = try await api.move(id, "listing", key: lab.key)
            expectIllegalTransition(listing, state: "registered")
            #expect(listing.json["detail"].string == "cannot list a technology that is registered", "\(listing)")
            try await api.moveAll(id, ["custody", "listing"], key: lab.key)
            let custody = try await api.move(id, "custody", key: lab.key)
            expectIllegalTransition(custody, state: "listed")
            #expect(custody.json["detail"].string == "cannot take into custody a technology that is listed", "\(custody)")
            try await api.moveAll(id, ["withdraw"], key: lab.key)
            let withdraw = try await api.move(id, "withdraw", key: lab.key)
            expectIllegalTransition(withdraw, state: "withdrawn")
            #expect(withdraw.json["detail"].string == "cannot withdraw a technology that is withdrawn", "\(withdraw)")

            // The whole walk is in the history, in order, append-only.
            let history = try await api.technologyHistory(id, key: lab.key)
            #expect(history.compactMap { $0["event"].string } == ["registered", "custody", "listing", "withdraw"], "\(history)")
            #expect(history.compactMap { $0["version"].int } == [1, 2, 3, 4], "\(history)")
            let times = history.compactMap { $0["changed_at"].string }
            #expect(times.count == 4 && times == times.sorted(), "\(times)")
            // Unknown moves are unrouted: 404.
            expectProblem(try await api.move(id, "assign", key: lab.key), .notFound, "not_found")
        }
    }

    @Test func onlyTheOwnerOrTheOperatorMovesOrChangesATechnology() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let lab = try await api.createOrganization("SIMM Lab", kind: "institute", subParkID: park.id)
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Acme Ltd", kind: "enterprise", subParkID: park.id)
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let operatorID = try await api.operatorID()
            let id = try await api.registerTechnologyID(as: lab)

            // Unlisted: those who see it (committee, the owner's sub-park) get 403; others 404.
            for org in [park, committee] {
                for transition in ["custody", "listing", "withdraw"] {
                    expectProblem(try await api.move(id, transition, key: org.key), .forbidden, "forbidden")
                }
                expectProblem(try await api.call(.patch, "/v1/technologies/\(id)", key: org.key, json: ["title": "Hijacked"], headers: [.ifMatch: "\"v1\""]),
                              .forbidden, "forbidden")
            }
            for org in [rival, enterprise] {
                for transition in ["custody", "listing", "withdraw"] {
                    expectProblem(try await api.move(id, transition, key: org.key), .notFound, "not_found")
                }
                expectProblem(try await api.call(.patch, "/v1/technologies/\(id)", key: org.key, json: ["title": "Hijacked"], headers: [.ifMatch: "\"v1\""]),
                              .notFound, "not_found")
                // Visibility comes before the precondition: no 428 that would confirm the id.
                expectProblem(try await api.call(.patch, "/v1/technologies/\(id)", key: org.key, json: ["title": "Hijacked"]), .notFound, "not_found")
            }

            // The operator may move it; the history names the operator.
            let custody = try await api.move(id, "custody")
            #expect(custody.status == .ok && custody.json["status"].string == "in_custody", "\(custody)")
            try await api.moveAll(id, ["listing"], key: lab.key)

            // Listed: everyone sees it, so the others get 403 now.
            for org in [park, committee, rival, enterprise] {
                for transition in ["custody", "listing", "withdraw"] {
                    expectProblem(try await api.move(id, transition, key: org.key), .forbidden, "forbidden")
                }
                expectProblem(try await api.call(.patch, "/v1/technologies/\(id)", key: org.key, json: ["title": "Hijacked"], headers: [.ifMatch: "\"v3\""]),
                              .forbidden, "forbidden")
            }
            let renamed = try await api.call(.patch, "/v1/technologies/\(id)", json: ["title": "Renamed by the operator"], headers: [.ifMatch: "\"v3\""])
            #expect(renamed.status == .ok && renamed.json["version"].int == 4, "\(renamed)")
            let history = try await api.technologyHistory(id, key: rival.key)
            #expect(history.compactMap { $0["actor_id"].string } == [lab.id, operatorID, lab.id, operatorID], "\(history)")
            let t = try await api.technology(id, key: rival.key)
            #expect(t.json["title"].string == "Renamed by the operator" && t.json["status"].string == "listed" && t.json["version"].int == 4, "\(t)")
        }
    }

    @Test func patchNeedsTheCurrentETagAndRecordsAnUpdate() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let id = try await api.registerTechnologyID(as: lab, technologyBody("Perovskite tandem cell", description: "SECRET-RECIPE-V1", trl: 3, keywords: ["solar"]))
            let uri = "/v1/technologies/\(id)"
            let read = try await api.technology(id, key: lab.key)
            let etag = try #require(read.headers[.eTag])
            #expect(etag == "\"v1\"")

            expectProblem(try await api.call(.patch, uri, key: lab.key, json: ["title": "X"]), .preconditionRequired, "precondition_required")
            for stale in ["\"v2\"", "\"v0\"", "W/\"v1\"", "\"V1\""] {
                expectProblem(try await api.call(.patch, uri, key: lab.key, json: ["title": "X"], headers: [.ifMatch: stale]),
                              .preconditionFailed, "precondition_failed")
            }
            // Not an entity-tag at all: 400.
            expectProblem(try await api.call(.patch, uri, key: lab.key, json: ["title": "X"], headers: [.ifMatch: "v1"]),
                          .badRequest, "invalid_request", fields: ["If-Match"])
            // A body that fails validation changes nothing.
            expectInvalid(try await api.call(.patch, uri, key: lab.key, json: ["trl": 10], headers: [.ifMatch: etag]), "trl")
            expectInvalid(try await api.call(.patch, uri, key: lab.key, json: ["title": "  "], headers: [.ifMatch: etag]), "title")
            expectInvalid(try await api.call(.patch, uri, key: lab.key, json: ["keywords": [String(repeating: "k", count: 101)]], headers: [.ifMatch: etag]), "keywords[0]")
            expectInvalid(try await api.call(.patch, uri, key: lab.key, json: ["description": String(repeating: "d", count: 100_001)], headers: [.ifMatch: etag]), "description")
            expectInvalid(try await api.call(.patch, uri, key: lab.key, json: ["asking_terms": ["deal_kinds": ["swap"]]], headers: [.ifMatch: etag]),
                          "asking_terms.deal_kinds[0]")
            for field in ["field", "status", "inventors", "ip_rights", "owner_id", "version"] {
                expectProblem(try await api.call(.patch, uri, key: lab.key, json: [field: "x"], headers: [.ifMatch: etag]),
                              .unprocessableContent, "unknown_field", fields: [field])
            }
            expectProblem(try await api.call(.patch, uri, key: lab.key, raw: "{", headers: [.ifMatch: etag]), .badRequest, "invalid_request", fields: ["body"])
            #expect((try await api.technology(id, key: lab.key)).json == read.json, "a refused PATCH changed the technology")

            let patched = try await api.call(.patch, uri, key: lab.key, json: [
                "title": "  Perovskite–silicon tandem cell ", "description": "SECRET-RECIPE-V2", "trl": 5, "keywords": ["solar", "tandem"],
                "asking_terms": ["deal_kinds": ["non_exclusive_licence"], "price_max": 5_000_000, "currency": "CNY"],
            ], headers: [.ifMatch: etag])
            #expect(patched.status == .ok, "\(patched)")
            let newETag = try #require(patched.headers[.eTag])
            #expect(newETag == "\"v2\"" && newETag != etag)
            let t = patched.json
            #expect(t["version"].int == 2 && t["title"].string == "Perovskite–silicon tandem cell" && t["trl"].int == 5, "\(t)")
            #expect(t["description"].string == "SECRET-RECIPE-V2" && t["keywords"] == .array([.string("solar"), .string("tandem")]), "\(t)")
            #expect(t["asking_terms"]["deal_kinds"] == .array([.string("non_exclusive_licence")]) && t["asking_terms"]["price_max"].int == 5_000_000, "\(t)")
            #expect(t["summary"] == read.json["summary"] && t["field"] == read.json["field"] && t["inventors"] == read.json["inventors"], "untouched fields changed: \(t)")
            #expect(t["created_at"] == read.json["created_at"] && t["updated_at"].string != nil)

            // The old ETag is stale now; the new one works once.
            expectProblem(try await api.call(.patch, uri, key: lab.key, json: ["trl": 6], headers: [.ifMatch: etag]), .preconditionFailed, "precondition_failed")
            let summaryOnly = try await api.call(.patch, uri, key: lab.key, json: ["summary": "Over 30% efficient."], headers: [.ifMatch: newETag])
            #expect(summaryOnly.status == .ok && summaryOnly.headers[.eTag] == "\"v3\"" && summaryOnly.json["title"] == t["title"], "\(summaryOnly)")

            // The history grows by `updated` entries holding what was sent, the description only as a marker.
            let history = try await api.technologyHistory(id, key: lab.key)
            #expect(history.compactMap { $0["event"].string } == ["registered", "updated", "updated"], "\(history)")
            #expect(history.compactMap { $0["version"].int } == [1, 2, 3])
            let update = try #require(history.dropFirst().first)
            #expect(update["actor_id"].string == lab.id)
            #expect(update["changes"].keys == ["title", "description", "trl", "keywords", "asking_terms"], "\(update)")
            #expect(update["changes"]["title"].string == "Perovskite–silicon tandem cell" && update["changes"]["trl"].int == 5, "\(update)")
            #expect(update["changes"]["description"].string == "(confidential; changed)", "\(update)")
            #expect(history.last?["changes"] == .object(["summary": .string("Over 30% efficient.")]), "\(history)")
            let historyText = try await api.call(.get, "\(uri)/history", key: lab.key).text
            #expect(!historyText.contains("SECRET-RECIPE"), "the history exposes the confidential description: \(historyText)")

            // Listed, another institute reads the same history: still no description.
            try await api.moveAll(id, ["custody", "listing"], key: lab.key)
            let seen = try await api.call(.get, "\(uri)/history", key: rival.key)
            #expect(seen.status == .ok && seen.json["data"].array.count == 5 && !seen.text.contains("SECRET-RECIPE"), "\(seen)")

            // Search follows the new text.
            #expect(try await api.searchIDs([("q", "tandem")], key: lab.key) == [id])
            // A missing technology is 404 whatever the If-Match.
            expectProblem(try await api.call(.patch, "/v1/technologies/\(newID())", key: lab.key, json: ["trl": 2], headers: [.ifMatch: "\"v1\""]),
                          .notFound, "not_found")
        }
    }
}
