import Foundation
import HTTPTypes
@testable import Server
import TechBankTestSupport
import TestSupport
import Testing

/// Where the OpenAPI document and the server once disagreed (found by `.ci/contract`): each rule
/// as the document states it, checked against the server.
@Suite("OpenAPI contract: the server refuses what the document forbids")
struct ContractTests {
    @Test func aFieldFilterIsAFieldCode() async throws {
        try await withAPI { api in
            for path in ["/v1/technologies", "/v1/demands"] {
                let known = try await api.call(.get, "\(path)?field=integrated_circuits")
                #expect(known.status == .ok, "\(known)")
                let unknownButWellFormed = try await api.call(.get, "\(path)?field=no_such_field")
                #expect(unknownButWellFormed.status == .ok && unknownButWellFormed.json["data"].array.isEmpty, "\(unknownButWellFormed)")
                for malformed in ["Biomedicine", "1st", "_x", "", "a-b", String(repeating: "a", count: 64)] {
                    let response = try await api.call(.get, "\(path)?field=\(malformed)")
                    expectProblem(response, .unprocessableContent, "validation_failed", fields: ["field"])
                }
            }
        }
    }

    @Test func aCursorIsBase64URLOfAtMost200Characters() async throws {
        try await withAPI { api in
            for path in ["/v1/organizations", "/v1/reports/deals", "/v1/reports/transfers"] {
                for malformed in ["a+b", "a%2Fb", "a=", String(repeating: "A", count: 201)] {
                    let response = try await api.call(.get, "\(path)?cursor=\(malformed)")
                    expectProblem(response, .unprocessableContent, "validation_failed", fields: ["cursor"])
                }
            }
        }
    }

    @Test func aReportChecksItsPageWithoutDrill() async throws {
        try await withAPI { api in
            for path in ["/v1/reports/deals", "/v1/reports/transfers"] {
                #expect(try await api.call(.get, "\(path)?limit=200").status == .ok)
                for limit in ["0", "201", "x"] {
                    expectProblem(try await api.call(.get, "\(path)?limit=\(limit)"), .unprocessableContent, "validation_failed", fields: ["limit"])
                }
            }
        }
    }

    /// `drill` is read scalar by scalar: a value starting with a combining mark or an emoji modifier
    /// (which joins the colon into one Character) is still a value, as the document's pattern says.
    @Test func aDrillValueMayStartWithACombiningMark() async throws {
        try await withAPI { api in
            for value in ["%CC%81x", "%F0%9F%8F%BB2"] {
                let response = try await api.call(.get, "/v1/reports/transfers?drill=code:\(value),year:2026")
                #expect(response.status == .ok, "\(response)")
            }
            let grouped = try await api.call(.get, "/v1/reports/transfers?group_by=code,%CC%81year")
            expectProblem(grouped, .unprocessableContent, "validation_failed", fields: ["group_by"])
        }
    }

    /// The server refuses `WORLD` beside countries (`DealLifecycleTests`); the document says so too.
    @Test func worldStandsAloneInTheDocument() throws {
        let schemas = try OpenAPISchemas.schemas()
        for name in ["CreateDeal", "AmendDeal"] {
            let territories = (schemas[name]?["properties"] as? [String: Any])?["territories"] as? [String: Any]
            #expect(((territories?["if"] as? [String: Any])?["contains"] as? [String: Any])?["const"] as? String == "WORLD", "\(name)")
            #expect((territories?["then"] as? [String: Any])?["maxItems"] as? Int == 1, "\(name)")
        }
    }

    /// `AskingTerms.dependentRequired`: a price without a currency is refused, as the document says.
    @Test func anAskedPriceNeedsACurrency() async throws {
        let schemas = try OpenAPISchemas.schemas()
        let dependent = schemas["AskingTerms"]?["dependentRequired"] as? [String: [String]]
        #expect(dependent == ["price_min": ["currency"], "price_max": ["currency"]])
        try await withAPI { api in
            let lab = try await api.createOrganization("Price Lab", kind: "institute")
            for price in ["price_min", "price_max"] {
                let body = technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], price: 1_000]])
                expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key, json: body), .unprocessableContent, "validation_failed",
                              fields: ["asking_terms.currency"])
            }
            let priced = technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": 1_000, "currency": "CNY"]])
            #expect(try await api.call(.post, "/v1/technologies", key: lab.key, json: priced).status == .created)
        }
    }

    @Test(arguments: [
        ("*", IfMatch.any),
        ("\"v1\"", .tags(["\"v1\""])),
        ("W/\"v1\" ,\t\"v2\"", .tags(["W/\"v1\"", "\"v2\""])),
        ("\"\"", .tags(["\"\""])),
        ("\"a,b\"", .tags(["\"a,b\""])),
    ])
    func ifMatchReadsStarOrEntityTags(_ text: String, _ expected: IfMatch) {
        #expect(IfMatch(text) == expected)
    }

    @Test(arguments: ["", "v1", "\"v1", "\"v1\",", ",\"v1\"", "\"v1\" \"v2\"", "\"v 1\"", "w/\"v1\"", "*, \"v1\"", "\"é\""])
    func ifMatchRefusesAnythingElse(_ text: String) {
        #expect(IfMatch(text) == nil)
    }

    @Test func weakTagsNeverMatch() {
        #expect(IfMatch("W/\"v1\"")?.matches("\"v1\"") == false)
        #expect(IfMatch("\"v0\", \"v1\"")?.matches("\"v1\"") == true)
        #expect(IfMatch("*")?.matches("\"v7\"") == true)
    }

    /// The stateful run follows the document's links (create → read → act); a link naming an
    /// operation, parameter or body field that does not exist would silently test nothing.
    @Test func everyLinkNamesAnOperationWithThoseParametersAndFields() throws {
        let document = try OpenAPITests.document()
        let components = try #require(document["components"] as? [String: Any])
        let parameterComponents = try #require(components["parameters"] as? [String: [String: Any]])
        let schemas = try #require(components["schemas"] as? [String: [String: Any]])
        func resolve(_ object: [String: Any], in table: [String: [String: Any]]) -> [String: Any] {
            (object["$ref"] as? String).flatMap { table[String($0.split(separator: "/").last ?? "")] } ?? object
        }
        var targets: [String: (parameters: Set<String>, fields: Set<String>)] = [:]
        var links: [(source: String, link: [String: Any])] = []
        for (_, item) in try #require(document["paths"] as? [String: [String: Any]]) {
            let shared = (item["parameters"] as? [[String: Any]]) ?? []
            for (method, value) in item where OpenAPITests.httpMethods.contains(method) {
                let operation = try #require(value as? [String: Any])
                let id = try #require(operation["operationId"] as? String)
                let parameters = (shared + ((operation["parameters"] as? [[String: Any]]) ?? []))
                    .map { resolve($0, in: parameterComponents) }
                    .compactMap { parameter in (parameter["name"] as? String).map { "\(parameter["in"] ?? "").\($0)" } }
                let body = ((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any]
                let fields = OpenAPISchemas.properties((body?["schema"] as? [String: Any]).map { resolve($0, in: schemas) })
                targets[id] = (Set(parameters), fields)
                for (_, response) in (operation["responses"] as? [String: [String: Any]]) ?? [:] {
                    for (_, link) in (response["links"] as? [String: [String: Any]]) ?? [:] { links.append((id, link)) }
                }
            }
        }
        #expect(links.count >= 50, "links: \(links.count)")
        for (source, link) in links {
            let target = try #require(link["operationId"] as? String)
            let known = try #require(targets[target], "\(source) links to \(target), which is no operation")
            for name in ((link["parameters"] as? [String: Any]) ?? [:]).keys {
                let qualified = name.contains(".") ? name : "path.\(name)"
                #expect(known.parameters.contains(qualified), "\(source) → \(target): no parameter \(qualified) in \(known.parameters.sorted())")
            }
            for field in ((link["requestBody"] as? [String: Any]) ?? [:]).keys {
                #expect(known.fields.contains(field), "\(source) → \(target): no body field \(field)")
            }
        }
        for creator in ["createOrganization", "createAccount", "createTransfer", "registerTechnology", "postDemand", "proposeMatch", "createDeal"] {
            #expect(links.contains { $0.source == creator }, "\(creator) links nowhere")
        }
    }

    /// `Currency` and `FieldCode` list exactly the codes the database holds, so a code the document
    /// allows is one the server takes, and one it refuses is outside the document.
    @Test(arguments: [("Currency", "SELECT code FROM ledger.currencies"), ("FieldCode", "SELECT code FROM techbank.fields")])
    func documentedCodesAreTheStoredOnes(schema: String, query: String) async throws {
        let documented = OpenAPISchemas.enumeration(try OpenAPISchemas.schemas()[schema])
        try await TestDatabase.withPool(template: .techbank) { pool in
            let rows = try await pool.withConnection { try await $0.query(query) }
            let held = Set(try rows.map { try $0.decode(String.self, at: 0) })
            #expect(!held.isEmpty && documented == held,
                    "only documented: \(documented.subtracting(held).sorted()); only held: \(held.subtracting(documented).sorted())")
        }
    }

    /// Free text (`ClientText`) is trimmed before its length is counted, so whitespace alone is
    /// refused; every such request field says so with the pattern `\S`, and the server agrees.
    @Test func blankTextIsRefusedAsTheDocumentSays() async throws {
        var missing: [String] = []
        for (name, schema) in try OpenAPISchemas.schemas() {
            for (property, value) in (schema["properties"] as? [String: [String: Any]]) ?? [:] {
                let text = (value["type"] as? String) == "array" ? (value["items"] as? [String: Any] ?? [:]) : value
                guard text["type"] as? String == "string", (text["minLength"] as? Int ?? 0) >= 1,
                      text["enum"] == nil, text["format"] == nil, text["const"] == nil else { continue }
                if text["pattern"] == nil { missing.append("\(name).\(property)") }
            }
        }
        #expect(missing.filter { !["AuditEvent.type", "AuditEvent.request_id", "RegistrationParty.name"].contains($0) }.isEmpty,
                "text fields without a pattern: \(missing.sorted())")
        try await withAPI { api in
            for blank in ["\t", " ", "\n\u{A0}", "\u{3000}"] {
                let withdrawal = try await api.call(.post, "/v1/withdrawals", json: [
                    "organization_id": UUID().uuidString.lowercased(), "amount": 1, "currency": "CNY", "external_ref": blank])
                expectProblem(withdrawal, .unprocessableContent, "validation_failed", fields: ["external_ref"])
                let organization = try await api.call(.post, "/v1/organizations", json: ["name": blank, "kind": "institute", "country": "CN"])
                expectProblem(organization, .unprocessableContent, "validation_failed", fields: ["name"])
            }
        }
    }
}
