import Foundation
import HTTPTypes
@testable import Server
import Synchronization
import TechBank
import Testing

/// The registry's part of `Sources/Server/openapi.json` against the server: the schemas list the
/// fields and enums the code accepts, and real responses validate against the schemas.
@Suite("Technology registry: OpenAPI document")
struct TechnologyOpenAPITests {
    @Test func theRegistryOperationsAreDocumented() throws {
        let operations = try OpenAPITests.operations(OpenAPITests.document())
        let expected = [
            "GET /v1/fields": "listFields", "POST /v1/technologies": "registerTechnology", "GET /v1/technologies": "searchTechnologies",
            "GET /v1/technologies/{id}": "getTechnology", "PATCH /v1/technologies/{id}": "updateTechnology",
            "GET /v1/technologies/{id}/history": "getTechnologyHistory", "POST /v1/technologies/{id}/custody": "takeTechnologyIntoCustody",
            "POST /v1/technologies/{id}/listing": "listTechnologyOnMarket", "POST /v1/technologies/{id}/withdraw": "withdrawTechnology",
        ]
        for (name, operationID) in expected {
            let operation = try #require(operations[name], "\(name) is not documented")
            #expect(operation["operationId"] as? String == operationID, "\(name)")
            let responses = try #require(operation["responses"] as? [String: Any])
            #expect(responses["401"] != nil, "\(name) must document 401")
            if name.contains("{id}") { #expect(responses["404"] != nil, "\(name) must document 404") }
            // Every technology answer carries its ETag.
            for status in ["200", "201"] {
                guard let response = responses[status] as? [String: Any],
                      let content = response["content"] as? [String: Any], let json = content["application/json"] as? [String: Any],
                      (json["schema"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/Technology" else { continue }
                #expect((response["headers"] as? [String: Any])?["ETag"] != nil, "\(name) \(status) must document ETag")
            }
        }
        let codes: [String: Set<String>] = [
            "POST /v1/technologies": ["201", "400", "401", "403", "409", "413", "422"],
            "GET /v1/technologies": ["200", "401", "422"],
            "PATCH /v1/technologies/{id}": ["200", "400", "401", "403", "404", "412", "413", "422", "428"],
            "POST /v1/technologies/{id}/custody": ["200", "401", "403", "404", "409"],
            "POST /v1/technologies/{id}/listing": ["200", "401", "403", "404", "409"],
            "POST /v1/technologies/{id}/withdraw": ["200", "401", "403", "404", "409"],
        ]
        for (name, statuses) in codes {
            let documented = Set((operations[name]?["responses"] as? [String: Any])?.keys.map { $0 } ?? [])
            #expect(statuses.isSubset(of: documented), "\(name) lacks \(statuses.subtracting(documented).sorted())")
        }
        let search = try #require(operations["GET /v1/technologies"]?["parameters"] as? [[String: Any]])
        let names = Set(search.compactMap { ($0["name"] as? String) ?? ($0["$ref"] as? String).map { ["#/components/parameters/Limit": "limit", "#/components/parameters/Cursor": "cursor", "#/components/parameters/RequestId": "Request-Id"][$0] ?? $0 } })
        #expect(names == ["q", "field", "trl_min", "trl_max", "status", "sub_park_id", "owner_id", "limit", "cursor", "Request-Id"], "\(names.sorted())")
        let q = search.first { $0["name"] as? String == "q" }?["schema"] as? [String: Any]
        #expect(q?["maxLength"] as? Int == 200)
        for name in ["trl_min", "trl_max"] {
            let schema = search.first { $0["name"] as? String == name }?["schema"] as? [String: Any]
            #expect(schema?["minimum"] as? Int == 1 && schema?["maximum"] as? Int == 9, "\(name)")
        }
    }

    @Test func theSchemasListWhatTheServerAccepts() throws {
        let schemas = try OpenAPISchemas.schemas()
        #expect(OpenAPISchemas.properties(schemas["CreateTechnology"]) == TechnologyController.CreateTechnology.knownFields)
        #expect(OpenAPISchemas.properties(schemas["UpdateTechnology"]) == TechnologyController.UpdateTechnology.knownFields)
        #expect(OpenAPISchemas.properties(schemas["Inventor"]) == TechnologyController.CreateTechnology.nestedKnownFields["inventors"])
        #expect(OpenAPISchemas.properties(schemas["IPRightInput"]) == TechnologyController.CreateTechnology.nestedKnownFields["ip_rights"])
        #expect(OpenAPISchemas.properties(schemas["AskingTerms"]) == ["deal_kinds", "price_min", "price_max", "currency"])
        for name in ["CreateTechnology", "UpdateTechnology", "Inventor", "IPRightInput", "AskingTerms"] {
            #expect(schemas[name]?["additionalProperties"] as? Bool == false, "\(name) must refuse unknown fields")
        }
        #expect(Set(schemas["CreateTechnology"]?["required"] as? [String] ?? []) == ["title", "summary", "field", "trl", "inventors"])

        #expect(OpenAPISchemas.enumeration(schemas["TechnologyStatus"]) == Set(TechnologyStatus.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["IPRightType"]) == Set(IPRight.types))
        #expect(OpenAPISchemas.enumeration(schemas["IPRightStatus"]) == Set(IPRight.statuses))
        let dealKinds = ((schemas["AskingTerms"]?["properties"] as? [String: Any])?["deal_kinds"] as? [String: Any])?["items"]
        #expect(OpenAPISchemas.enumeration(dealKinds) == TechnologyController.dealKinds)
        let event = (schemas["TechnologyHistoryEntry"]?["properties"] as? [String: Any])?["event"]
        #expect(OpenAPISchemas.enumeration(event) == Set(["registered", "updated"] + TechnologyTransition.allCases.map(\.rawValue)))

        let problem = try #require(schemas["Problem"])
        #expect(OpenAPISchemas.properties(problem).contains("holder_technology_id"))
        let description = problem["description"] as? String ?? ""
        #expect(description.contains("`ip_right_taken`") && description.contains("`illegal_transition`"), "the Problem code list lacks the registry codes")
    }

    /// Real responses of every registry operation validate against the documented schemas
    /// (with Python's `jsonschema`, which `openapi-spec-validator` brings along).
    @Test func realResponsesMatchTheSchemas() async throws {
        let collected = Mutex<[(label: String, schema: String, body: Data)]>([])
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let rival = try await api.createOrganization("Rival Lab", kind: "institute")
            let body = technologyBody(
                "芯片缺陷检测", field: "integrated_circuits", trl: 6, keywords: ["缺陷检测"], inventors: [inventor("张三", 7_000), inventor("李四", 3_000)],
                ipRights: [ipRight("CN 2020 1 0123456.7", extra: ["kind_code": "B", "filed_on": "2020-03-31", "granted_on": "2022-01-04"]), ipRight("US 11,222,333", office: "US", status: "pending")],
                extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": 1_000, "price_max": 2_000, "currency": "CNY"]])
            var record: [(String, String, APIResponse)] = []
            let created = try await api.call(.post, "/v1/technologies", key: lab.key, json: body)
            record.append(("POST 201", "Technology", created))
            let id = try #require(created.json["id"].string)
            let plain = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody())
            record.append(("POST 201 plain", "Technology", plain))
            record.append(("GET fields", "FieldPage", try await api.call(.get, "/v1/fields", key: lab.key)))
            record.append(("ip_right_taken", "Problem", try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(ipRights: [ipRight("ZL202010123456.7")]))))
            record.append(("illegal_transition", "Problem", try await api.move(id, "listing", key: lab.key)))
            record.append(("PATCH 200", "Technology", try await api.call(.patch, "/v1/technologies/\(id)", key: lab.key,
                                                                     json: ["description": "new", "trl": 7], headers: [.ifMatch: "\"v1\""])))
            record.append(("custody 200", "Technology", try await api.move(id, "custody", key: lab.key)))
            record.append(("listing 200", "Technology", try await api.move(id, "listing", key: lab.key)))
            record.append(("GET as rival", "Technology", try await api.technology(id, key: rival.key)))
            record.append(("search", "TechnologyPage", try await api.call(.get, technologiesURI([("q", "缺陷"), ("limit", "1")]), key: rival.key)))
            record.append(("search page", "TechnologyPage", try await api.call(.get, technologiesURI([("limit", "1")]), key: lab.key)))
            record.append(("history", "TechnologyHistoryPage", try await api.call(.get, "/v1/technologies/\(id)/history", key: rival.key)))
            record.append(("withdraw 200", "Technology", try await api.move(id, "withdraw", key: lab.key)))
            record.append(("422", "Problem", try await api.call(.get, technologiesURI([("status", "bogus")]), key: lab.key)))
            for (label, schema, response) in record {
                #expect(response.status.code < 500, "\(label): \(response)")
                collected.withLock { $0.append((label, schema, response.body)) }
            }
        }
        let samples = collected.withLock { $0 }
        try expectResponsesMatchSchemas(samples)
        #expect(samples.count == 14)
    }
}
