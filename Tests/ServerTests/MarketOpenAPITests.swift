import Foundation
import HTTPTypes
@testable import Server
import Synchronization
import TechBank
import Testing

/// The market's part of `Sources/Server/openapi.json` (demands, candidates, matches, sub-park
/// activity) against the server: the operations and their statuses are documented, the request
/// schemas list exactly the fields the decoders accept and require, and real responses have
/// exactly the properties their schemas document.
@Suite("Market: OpenAPI document")
struct MarketOpenAPITests {
    /// The names of an operation's parameters, `$ref`s resolved to the names they stand for.
    static func parameterNames(_ operation: [String: Any]?) -> Set<String> {
        let references = [
            "#/components/parameters/Limit": "limit", "#/components/parameters/Cursor": "cursor", "#/components/parameters/RequestId": "Request-Id",
            "#/components/parameters/IdempotencyKey": "Idempotency-Key", "#/components/parameters/DemandIfMatch": "If-Match",
        ]
        let parameters = operation?["parameters"] as? [[String: Any]] ?? []
        return Set(parameters.compactMap { ($0["name"] as? String) ?? ($0["$ref"] as? String).map { references[$0] ?? $0 } })
    }

    /// `YYYY-MM-DD` (UTC) `days` from now.
    static func date(daysFromNow days: Int) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withFullDate, .withDashSeparatorInDate]
        return formatter.string(from: Date().addingTimeInterval(Double(days) * 86_400))
    }

    @Test func theMarketOperationsAreDocumented() throws {
        let operations = try OpenAPITests.operations(OpenAPITests.document())
        let expected: [String: (operationID: String, statuses: Set<String>)] = [
            "POST /v1/demands": ("postDemand", ["201", "400", "401", "403", "409", "413", "422"]),
            "GET /v1/demands": ("searchDemands", ["200", "401", "422"]),
            "GET /v1/demands/{id}": ("getDemand", ["200", "401", "404"]),
            "PATCH /v1/demands/{id}": ("updateDemand", ["200", "400", "401", "403", "404", "409", "412", "413", "422", "428"]),
            "POST /v1/demands/{id}/close": ("closeDemand", ["200", "401", "403", "404", "409"]),
            "GET /v1/demands/{id}/candidates": ("listDemandCandidates", ["200", "401", "404", "422"]),
            "POST /v1/matches": ("proposeMatch", ["201", "400", "401", "403", "409", "413", "422"]),
            "GET /v1/matches": ("listMatches", ["200", "401", "422"]),
            "GET /v1/matches/{id}": ("getMatch", ["200", "401", "404"]),
            "POST /v1/matches/{id}/accept": ("acceptMatch", ["200", "401", "403", "404", "409"]),
            "POST /v1/matches/{id}/decline": ("declineMatch", ["200", "401", "403", "404", "409"]),
            "GET /v1/sub-parks/{id}/activity": ("getSubParkActivity", ["200", "401", "404", "422"]),
        ]
        for (name, (operationID, statuses)) in expected {
            let operation = try #require(operations[name], "\(name) is not documented")
            #expect(operation["operationId"] as? String == operationID, "\(name)")
            let responses = try #require(operation["responses"] as? [String: Any])
            let documented = Set(responses.keys)
            #expect(statuses.isSubset(of: documented), "\(name) lacks \(statuses.subtracting(documented).sorted())")
            for (status, response) in responses {
                guard let response = response as? [String: Any], let content = response["content"] as? [String: Any] else { continue }
                let headers = response["headers"] as? [String: Any] ?? [:]
                if status.hasPrefix("2") {
                    let schema = ((content["application/json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String
                    #expect(schema != nil, "\(name) \(status) must answer JSON")
                    // Every demand answer carries its ETag; every creation its Location.
                    if schema == "#/components/schemas/Demand" { #expect(headers["ETag"] != nil, "\(name) \(status) must document ETag") }
                    if status == "201" { #expect(headers["Location"] != nil, "\(name) 201 must document Location") }
                } else {
                    #expect(content["application/problem+json"] != nil, "\(name) \(status) must answer a problem")
                }
            }
        }
        // Idempotent creations take Idempotency-Key and document replays.
        for name in ["POST /v1/demands", "POST /v1/matches"] {
            #expect(Self.parameterNames(operations[name]).contains("Idempotency-Key"), "\(name)")
            let created = (operations[name]?["responses"] as? [String: Any])?["201"] as? [String: Any]
            #expect((created?["headers"] as? [String: Any])?["Idempotent-Replayed"] != nil, "\(name)")
        }
        #expect(Self.parameterNames(operations["PATCH /v1/demands/{id}"]) == ["If-Match", "Request-Id"])
        let queries: [String: Set<String>] = [
            "GET /v1/demands": ["q", "field", "status", "owner_id", "sub_park_id", "limit", "cursor", "Request-Id"],
            "GET /v1/demands/{id}/candidates": ["limit", "cursor", "Request-Id"],
            "GET /v1/matches": ["status", "technology_id", "demand_id", "limit", "cursor", "Request-Id"],
            "GET /v1/sub-parks/{id}/activity": ["from", "to", "Request-Id"],
        ]
        for (name, names) in queries {
            #expect(Self.parameterNames(operations[name]) == names, "\(name): \(Self.parameterNames(operations[name]).sorted())")
        }
        let search = operations["GET /v1/demands"]?["parameters"] as? [[String: Any]] ?? []
        #expect((search.first { $0["name"] as? String == "q" }?["schema"] as? [String: Any])?["maxLength"] as? Int == 200)
    }

    /// Whether `T` decodes from `body`.
    static func decodes<T: Decodable>(_: T.Type, _ body: [String: Any]) -> Bool {
        guard let data = try? JSONSerialization.data(withJSONObject: body) else { return false }
        return (try? JSONDecoder().decode(T.self, from: data)) != nil
    }

    /// The fields of `body` without which `T` no longer decodes (`body` itself must decode).
    static func requiredFields<T: Decodable>(_ type: T.Type, _ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) -> Set<String> {
        #expect(decodes(type, body), "\(type) does not decode from \(body)", sourceLocation: sourceLocation)
        return Set(body.keys.filter { key in !decodes(type, body.filter { $0.key != key }) })
    }

    @Test func theSchemasListWhatTheServerAccepts() throws {
        let schemas = try OpenAPISchemas.schemas()
        let budget: [String: Any] = ["min": 1, "max": 2, "currency": "CNY"]
        // One value of the right type for every field a request body knows.
        let demand: [String: Any] = [
            "id": newID(), "owner_id": newID(), "title": "t", "description": "d", "field": "integrated_circuits", "keywords": ["k"],
            "trl_min": 5, "budget": budget, "region": "CN", "deadline": "2030-01-01",
        ]
        let match: [String: Any] = ["id": newID(), "technology_id": newID(), "demand_id": newID(), "note": "n"]

        let cases: [(schema: String, known: Set<String>, required: Set<String>)] = [
            ("CreateDemand", DemandController.CreateDemand.knownFields,
             Self.requiredFields(DemandController.CreateDemand.self, demand.filter { DemandController.CreateDemand.knownFields.contains($0.key) })),
            ("UpdateDemand", DemandController.UpdateDemand.knownFields,
             Self.requiredFields(DemandController.UpdateDemand.self, demand.filter { DemandController.UpdateDemand.knownFields.contains($0.key) })),
            ("Budget", try #require(DemandController.CreateDemand.nestedKnownFields["budget"]),
             Self.requiredFields(DemandController.BudgetBody.self, budget)),
            ("CreateMatch", MatchController.CreateMatch.knownFields, Self.requiredFields(MatchController.CreateMatch.self, match)),
        ]
        for (name, known, required) in cases {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(OpenAPISchemas.properties(schema) == known, "\(name) documents \(OpenAPISchemas.properties(schema).sorted()), the server knows \(known.sorted())")
            #expect(schema["additionalProperties"] as? Bool == false, "\(name) must refuse unknown fields")
            #expect(Set(schema["required"] as? [String] ?? []) == required, "\(name) must require exactly \(required.sorted())")
        }
        #expect(Set(demand.keys).isSuperset(of: DemandController.CreateDemand.knownFields.union(DemandController.UpdateDemand.knownFields)))
        #expect(Set(match.keys) == MatchController.CreateMatch.knownFields)
        #expect(DemandController.UpdateDemand.nestedKnownFields["budget"] == DemandController.CreateDemand.nestedKnownFields["budget"])
        #expect(OpenAPISchemas.properties(schemas["UpdateDemand"]).contains("budget"))
        // The documented examples are bodies the server decodes.
        for (name, accepts) in [("CreateDemand", { Self.decodes(DemandController.CreateDemand.self, $0) }),
                                ("CreateMatch", { Self.decodes(MatchController.CreateMatch.self, $0) })] as [(String, ([String: Any]) -> Bool)] {
            let examples = schemas[name]?["examples"] as? [[String: Any]] ?? []
            #expect(!examples.isEmpty && examples.allSatisfy(accepts), "\(name)'s examples must decode")
        }

        #expect(OpenAPISchemas.enumeration(schemas["DemandStatus"]) == Set(DemandStatus.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["MatchStatus"]) == Set(MatchStatus.allCases.map(\.rawValue)))
        let reason = (schemas["CandidateReason"]?["properties"] as? [String: Any]) ?? [:]
        #expect(OpenAPISchemas.enumeration(reason["factor"]) == Set(CandidateFactor.allCases.map(\.rawValue)))
        let decisions = ((schemas["Match"]?["properties"] as? [String: Any])?["seller_decision"] as? [String: Any])?["enum"] as? [Any] ?? []
        #expect(Set(decisions.compactMap { $0 as? String }) == Set(MatchDecision.allCases.map { $0 == .accept ? "accepted" : "declined" }))
        // The ranking weights are documented where the candidates are.
        let weights = ((reason["weight"] as? [String: Any])?["description"] as? String) ?? ""
        let candidate = (schemas["Candidate"]?["description"] as? String) ?? ""
        for factor in CandidateFactor.allCases {
            let weight = String(format: "%.2f", factor.weight)
            #expect(weights.contains("`\(factor.rawValue)` \(weight)"), "CandidateReason.weight must give \(factor.rawValue)'s weight \(weight)")
            #expect(candidate.contains("`\(factor.rawValue)` (weight \(weight))") || candidate.contains("`\(factor.rawValue)` (\(weight))"),
                    "Candidate must describe \(factor.rawValue) with weight \(weight)")
        }
        #expect(((schemas["DemandStatus"]?["description"] as? String) ?? "").contains("`open` → `matched`"))

        // Response schemas list every property as required: the server encodes absent values as null.
        for name in ["Demand", "Candidate", "CandidateReason", "Match", "ActivityCounts", "SubParkActivity", "DemandPage", "CandidatePage", "MatchPage"] {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(Set(schema["required"] as? [String] ?? []) == OpenAPISchemas.properties(schema), "\(name) must require every property")
        }
        let problem = (schemas["Problem"]?["description"] as? String) ?? ""
        #expect(problem.contains("demand") && problem.contains("match"), "the Problem code list must cover the market")
    }

    /// Real responses of every market operation have exactly the properties the schemas document
    /// and validate against them (with Python's `jsonschema`, which `openapi-spec-validator` brings along).
    @Test func realResponsesMatchTheSchemas() async throws {
        let collected = Mutex<[(label: String, schema: String, body: Data)]>([])
        let deadline = Self.date(daysFromNow: 365)
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let lab = try await api.createOrganization("Fudan Lab", kind: "institute", subParkID: park.id)
            let factory = try await api.createOrganization("Shanghai Wafer Works", kind: "enterprise", subParkID: park.id)
            let broker = try await api.createOrganization("Tech Broker", kind: "broker")
            let stranger = try await api.createOrganization("Other Works", kind: "enterprise")

            let technology = try await api.registerTechnologyID(as: lab, technologyBody(
                "晶圆缺陷检测", field: "integrated_circuits", trl: 6, keywords: ["缺陷检测", "wafer inspection"],
                extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": 1_000, "price_max": 2_000, "currency": "CNY"]]))
            try await api.moveAll(technology, ["custody", "listing"], key: lab.key)

            var record: [(String, String, APIResponse)] = []
            func demandJSON(_ extra: [String: Any] = [:]) -> [String: Any] {
                ["title": "Wafer defect inspection", "field": "integrated_circuits", "trl_min": 5, "region": "CN-SH", "deadline": deadline,
                 "keywords": ["wafer inspection"]].merging(extra) { $1 }
            }
            let posted = try await api.call(.post, "/v1/demands", key: factory.key, json: demandJSON([
                "description": "12-inch wafers", "budget": ["min": 500, "max": 1_500, "currency": "CNY"],
            ]), headers: [.tbIdempotencyKey: newID()])
            record.append(("POST demand 201", "Demand", posted))
            let demand = try #require(posted.json["id"].string, "\(posted)")
            #expect(posted.headers[.location] == "/v1/demands/\(demand)" && posted.headers[.eTag] == "\"v1\"", "\(posted)")
            let forFactory = try await api.call(.post, "/v1/demands", key: broker.key, json: demandJSON(["owner_id": factory.id, "field": "information_technology"]))
            record.append(("POST demand by broker 201 (no budget)", "Demand", forFactory))
            #expect(forFactory.json["budget"].isNull && forFactory.json["posted_by"].string == broker.id, "\(forFactory)")
            let other = try #require(forFactory.json["id"].string, "\(forFactory)")

            record.append(("GET demand", "Demand", try await api.call(.get, "/v1/demands/\(demand)", key: stranger.key)))
            record.append(("PATCH demand", "Demand", try await api.call(.patch, "/v1/demands/\(demand)", key: factory.key,
                                                                      json: ["trl_min": 6, "keywords": ["缺陷检测"]], headers: [.ifMatch: "\"v1\""])))
            record.append(("search demands", "DemandPage", try await api.call(.get, "/v1/demands?q=wafer&limit=1", key: stranger.key)))
            record.append(("search demands, filtered", "DemandPage",
                           try await api.call(.get, "/v1/demands?status=open&field=integrated_circuits&sub_park_id=\(park.id)&owner_id=\(factory.id)", key: park.key)))
            let candidates = try await api.call(.get, "/v1/demands/\(demand)/candidates", key: broker.key)
            record.append(("candidates", "CandidatePage", candidates))
            #expect(candidates.json["data"][0]["technology_id"].string == technology, "\(candidates)")
            record.append(("candidates, no budget", "CandidatePage", try await api.call(.get, "/v1/demands/\(other)/candidates?limit=1", key: factory.key)))

            let proposed = try await api.call(.post, "/v1/matches", key: broker.key, json: ["technology_id": technology, "demand_id": demand, "note": " Try them. "],
                                              headers: [.tbIdempotencyKey: newID()])
            record.append(("POST match 201", "Match", proposed))
            let match = try #require(proposed.json["id"].string, "\(proposed)")
            #expect(proposed.headers[.location] == "/v1/matches/\(match)", "\(proposed)")
            record.append(("GET match", "Match", try await api.call(.get, "/v1/matches/\(match)", key: park.key)))
            record.append(("seller accepts", "Match", try await api.call(.post, "/v1/matches/\(match)/accept", key: lab.key)))
            record.append(("list matches", "MatchPage", try await api.call(.get, "/v1/matches?status=proposed&technology_id=\(technology)&demand_id=\(demand)&limit=1",
                                                                          key: broker.key)))
            let accepted = try await api.call(.post, "/v1/matches/\(match)/accept", key: factory.key)
            record.append(("buyer accepts", "Match", accepted))
            #expect(accepted.json["status"].string == "accepted", "\(accepted)")
            record.append(("matched demand", "Demand", try await api.call(.get, "/v1/demands/\(demand)", key: factory.key)))
            record.append(("close", "Demand", try await api.call(.post, "/v1/demands/\(demand)/close", key: factory.key)))
            let declined = try await api.call(.post, "/v1/matches", key: broker.key, json: ["technology_id": technology, "demand_id": other])
            record.append(("POST match 201 (no note)", "Match", declined))
            let declinedID = try #require(declined.json["id"].string, "\(declined)")
            record.append(("buyer declines", "Match", try await api.call(.post, "/v1/matches/\(declinedID)/decline", key: factory.key)))

            let period = "from=\(Self.date(daysFromNow: -2))&to=\(Self.date(daysFromNow: 1))"
            let activity = try await api.call(.get, "/v1/sub-parks/\(park.id)/activity?\(period)", key: park.key)
            record.append(("activity", "SubParkActivity", activity))
            #expect(activity.json["demands"]["total"].int == 2 && activity.json["matches"]["total"].int == 2, "\(activity)")
            record.append(("activity, default period", "SubParkActivity", try await api.call(.get, "/v1/sub-parks/\(park.id)/activity")))

            // Problems.
            record.append(("403 institute posts", "Problem", try await api.call(.post, "/v1/demands", key: lab.key, json: demandJSON())))
            record.append(("422 unknown field", "Problem", try await api.call(.post, "/v1/demands", key: factory.key, json: demandJSON(["budget": ["min": 1, "max": 2, "currency": "CNY", "cap": 3]]))))
            record.append(("409 closed", "Problem", try await api.call(.post, "/v1/demands/\(demand)/close", key: factory.key)))
            record.append(("428", "Problem", try await api.call(.patch, "/v1/demands/\(other)", key: broker.key, json: ["title": "x"])))
            record.append(("412", "Problem", try await api.call(.patch, "/v1/demands/\(other)", key: broker.key, json: ["title": "x"], headers: [.ifMatch: "\"v9\""])))
            record.append(("403 match by enterprise", "Problem", try await api.call(.post, "/v1/matches", key: factory.key, json: ["technology_id": technology, "demand_id": other])))
            record.append(("409 decided", "Problem", try await api.call(.post, "/v1/matches/\(declinedID)/accept", key: lab.key)))
            record.append(("404 activity", "Problem", try await api.call(.get, "/v1/sub-parks/\(park.id)/activity", key: stranger.key)))
            record.append(("422 activity", "Problem", try await api.call(.get, "/v1/sub-parks/\(park.id)/activity?from=2026-02-30", key: park.key)))

            let schemas = try OpenAPISchemas.schemas()
            for (label, schema, response) in record {
                #expect(response.status.code < 500, "\(label): \(response)")
                if schema != "Problem" {
                    #expect((200..<300).contains(response.status.code), "\(label): \(response)")
                    #expect(response.json.keys == OpenAPISchemas.properties(schemas[schema]), "\(label): the response's properties differ from \(schema)'s: \(response)")
                }
                collected.withLock { $0.append((label, schema, response.body)) }
            }
        }
        let samples = collected.withLock { $0 }
        #expect(samples.count == 28)
        // The market's response schemas are closed, so an undocumented property anywhere in a response fails.
        try expectResponsesMatchSchemas(samples, closing: [
            "Demand", "DemandPage", "Budget", "Candidate", "CandidateReason", "CandidatePage", "Match", "MatchPage", "ActivityCounts", "SubParkActivity",
        ])
    }
}
