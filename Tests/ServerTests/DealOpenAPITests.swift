import Foundation
import HTTPTypes
@testable import Server
import Synchronization
import TechBank
import Testing

/// The deal and money part of `Sources/Server/openapi.json` (deals, escrow, milestones,
/// royalties, registrations, filings, deposits, withdrawals, balances) against the server: the
/// operations and their statuses are documented, the request schemas list exactly the fields the
/// server accepts and requires, the enums are the Swift enums, and real responses of a whole deal
/// flow have exactly the properties their schemas document.
@Suite("Deals and money: OpenAPI document")
struct DealOpenAPITests {
    /// The names of an operation's parameters (the path item's and its own), `$ref`s resolved.
    static func parameterNames(_ operation: [String: Any]?, pathItem: [String: Any]? = nil) -> Set<String> {
        let references = [
            "#/components/parameters/Limit": "limit", "#/components/parameters/Cursor": "cursor", "#/components/parameters/RequestId": "Request-Id",
            "#/components/parameters/IdempotencyKey": "Idempotency-Key", "#/components/parameters/DealIfMatch": "If-Match",
            "#/components/parameters/DealId": "id", "#/components/parameters/MilestoneNumber": "number", "#/components/parameters/OrganizationId": "id",
        ]
        let parameters = (pathItem?["parameters"] as? [[String: Any]] ?? []) + (operation?["parameters"] as? [[String: Any]] ?? [])
        return Set(parameters.compactMap { ($0["name"] as? String) ?? ($0["$ref"] as? String).map { references[$0] ?? $0 } })
    }

    /// The operations routed through `Idempotency.run` (see `DealController.register(on:)` and `MoneyController.register(on:)`).
    static let idempotent: Set<String> = [
        "POST /v1/deals", "POST /v1/deals/{id}/escrow", "POST /v1/deals/{id}/milestones/{number}/release", "POST /v1/deals/{id}/royalty-reports",
        "POST /v1/deposits", "POST /v1/withdrawals",
    ]

    @Test func theDealAndMoneyOperationsAreDocumented() throws {
        let document = try OpenAPITests.document()
        let operations = try OpenAPITests.operations(document)
        let paths = try #require(document["paths"] as? [String: Any])
        let expected: [String: (operationID: String, statuses: Set<String>)] = [
            "POST /v1/deals": ("createDeal", ["201", "400", "401", "403", "409", "413", "422"]),
            "GET /v1/deals": ("listDeals", ["200", "401", "422"]),
            "GET /v1/deals/{id}": ("getDeal", ["200", "401", "404"]),
            "PATCH /v1/deals/{id}": ("amendDeal", ["200", "400", "401", "403", "404", "409", "412", "413", "422", "428"]),
            "GET /v1/deals/{id}/versions": ("listDealVersions", ["200", "401", "404"]),
            "POST /v1/deals/{id}/propose": ("proposeDeal", ["200", "401", "403", "404", "409"]),
            "POST /v1/deals/{id}/approvals": ("decideDealApproval", ["200", "400", "401", "403", "404", "409", "413", "422"]),
            "POST /v1/deals/{id}/sign": ("signDeal", ["200", "401", "403", "404", "409"]),
            "POST /v1/deals/{id}/escrow": ("fundDealEscrow", ["200", "400", "401", "403", "404", "409", "422"]),
            "POST /v1/deals/{id}/cancel": ("cancelDeal", ["200", "401", "403", "404", "409"]),
            "POST /v1/deals/{id}/milestones/{number}/release": ("releaseMilestone", ["200", "400", "401", "403", "404", "409", "422"]),
            "POST /v1/deals/{id}/milestones/{number}/dispute": ("disputeMilestone", ["200", "400", "401", "403", "404", "409", "413", "422"]),
            "POST /v1/deals/{id}/milestones/{number}/resolve": ("resolveMilestoneDispute", ["200", "400", "401", "403", "404", "409", "413", "422"]),
            "POST /v1/deals/{id}/royalty-reports": ("reportRoyalties", ["201", "400", "401", "403", "404", "409", "413", "422"]),
            "GET /v1/deals/{id}/royalty-reports": ("listRoyaltyReports", ["200", "401", "404"]),
            "GET /v1/deals/{id}/registration": ("getDealRegistration", ["200", "401", "404"]),
            "GET /v1/filings/due": ("listFilingsDue", ["200", "401", "422"]),
            "POST /v1/deposits": ("recordDeposit", ["201", "400", "401", "403", "409", "413", "422"]),
            "POST /v1/withdrawals": ("recordWithdrawal", ["201", "400", "401", "403", "409", "413", "422"]),
            "GET /v1/organizations/{id}/balances": ("getOrganizationBalances", ["200", "401", "404"]),
        ]
        for (name, (operationID, statuses)) in expected {
            let operation = try #require(operations[name], "\(name) is not documented")
            let path = String(name.split(separator: " ")[1])
            let pathItem = paths[path] as? [String: Any]
            #expect(operation["operationId"] as? String == operationID, "\(name)")
            let tag = (operation["tags"] as? [String])?.first
            #expect(tag == (path.hasPrefix("/v1/deals") || path == "/v1/filings/due" ? "deals" : "money"), "\(name) is tagged \(tag ?? "-")")
            let responses = try #require(operation["responses"] as? [String: Any])
            let documented = Set(responses.keys)
            #expect(statuses.isSubset(of: documented), "\(name) lacks \(statuses.subtracting(documented).sorted())")
            #expect(documented.isSuperset(of: ["500", "503"]), "\(name) must document 500 and 503")
            let isIdempotent = Self.idempotent.contains(name)
            #expect(Self.parameterNames(operation).contains("Idempotency-Key") == isIdempotent, "\(name): Idempotency-Key iff routed through idempotency")
            for (status, response) in responses {
                guard let response = response as? [String: Any], let content = response["content"] as? [String: Any] else { continue }
                let headers = response["headers"] as? [String: Any] ?? [:]
                if status.hasPrefix("2") {
                    let schema = ((content["application/json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String
                    #expect(schema != nil, "\(name) \(status) must answer JSON")
                    // Every deal answer carries its ETag; the created deal its Location (royalty
                    // reports, deposits and withdrawals have no resource of their own to point at).
                    #expect((headers["ETag"] != nil) == (schema == "#/components/schemas/Deal"), "\(name) \(status): ETag iff a deal")
                    #expect((headers["Location"] != nil) == (name == "POST /v1/deals"), "\(name) \(status): Location only for a created deal")
                    #expect((headers["Idempotent-Replayed"] != nil) == isIdempotent, "\(name) \(status): Idempotent-Replayed iff idempotent")
                } else {
                    #expect(content["application/problem+json"] != nil, "\(name) \(status) must answer a problem")
                    if isIdempotent && ["403", "404", "409", "422"].contains(status) {
                        #expect(headers["Idempotent-Replayed"] != nil, "\(name) \(status) is stored and replayed: document Idempotent-Replayed")
                    }
                }
            }
            // Parameters: the path's ids, If-Match on PATCH, the documented filters, Request-Id everywhere.
            var names: Set<String> = ["Request-Id"]
            if path.contains("{id}") { names.insert("id") }
            if path.contains("{number}") { names.insert("number") }
            if isIdempotent { names.insert("Idempotency-Key") }
            switch name {
            case "PATCH /v1/deals/{id}": names.insert("If-Match")
            case "GET /v1/deals": names.formUnion(["status", "technology_id", "limit", "cursor"])
            case "GET /v1/filings/due": names.formUnion(["before", "limit"])
            default: break
            }
            #expect(Self.parameterNames(operation, pathItem: pathItem) == names, "\(name): \(Self.parameterNames(operation, pathItem: pathItem).sorted())")
            // Bodies: exactly the operations that decode one.
            let body = ((((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"]
                as? [String: Any])?["$ref"] as? String
            let bodies = [
                "POST /v1/deals": "CreateDeal", "PATCH /v1/deals/{id}": "AmendDeal", "POST /v1/deals/{id}/approvals": "DealApproval",
                "POST /v1/deals/{id}/milestones/{number}/dispute": "MilestoneDispute", "POST /v1/deals/{id}/milestones/{number}/resolve": "MilestoneResolution",
                "POST /v1/deals/{id}/milestones/{number}/release": "MilestoneRelease",
                "POST /v1/deals/{id}/royalty-reports": "RoyaltyReportInput", "POST /v1/deposits": "Payment", "POST /v1/withdrawals": "Payment",
            ]
            #expect(body == bodies[name].map { "#/components/schemas/\($0)" }, "\(name) body \(body ?? "none")")
        }
        let listed = operations.keys.filter { $0.contains(" /v1/deals") || $0.contains("/v1/filings") || $0.contains("/v1/deposits") || $0.contains("/v1/withdrawals") || $0.hasSuffix("/balances") }
        #expect(Set(listed) == Set(expected.keys), "undocumented here: \(Set(listed).symmetricDifference(expected.keys).sorted())")
        let status = (operations["GET /v1/deals"]?["parameters"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "status" }
        #expect((status?["schema"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/DealStatus")
        let tags = Set((document["tags"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(tags.isSuperset(of: ["deals", "money"]))
        let info = ((document["info"] as? [String: Any])?["description"] as? String) ?? ""
        for name in Self.idempotent.map({ String($0.dropFirst("POST ".count)) }) {
            #expect(info.contains("`\(name)`"), "info.description must list \(name) among the routes taking Idempotency-Key")
        }
    }

    /// Whether `T` decodes from `body`.
    static func decodes<T: Decodable>(_: T.Type, _ body: [String: Any]) -> T? {
        guard let data = try? JSONSerialization.data(withJSONObject: body) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }

    /// The fields of `body` without which `accepts` refuses it (`body` itself must be accepted).
    static func requiredFields(_ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation, _ accepts: ([String: Any]) -> Bool) -> Set<String> {
        #expect(accepts(body), "\(body) is refused", sourceLocation: sourceLocation)
        return Set(body.keys.filter { key in !accepts(body.filter { $0.key != key }) })
    }

    /// Whether the server takes `body` as a new deal: it decodes, and its terms are complete and valid.
    static func createsDeal(_ body: [String: Any]) -> Bool {
        guard let deal = decodes(DealController.CreateDeal.self, body) else { return false }
        return (try? DealController.terms(deal.terms, over: nil)) != nil
    }

    static let baseTerms = DealTerms(
        kind: .nonExclusiveLicence, fieldOfUse: "Wafer inspection", territories: ["CN"], startsOn: "2025-01-01", endsOn: "2030-12-31", currency: "CNY",
        upfront: 0, milestones: [], royaltyBP: 0, minimumAnnualRoyalty: 0, sublicensingAllowed: false, brokerFeeBP: 0, subParkFeeBP: 0, contractCategory: .licence)

    @Test func theSchemasListWhatTheServerAccepts() throws {
        let schemas = try OpenAPISchemas.schemas()
        // One value of the right type for every field a request body knows.
        let term: [String: Any] = ["starts_on": "2025-01-01", "ends_on": "2030-12-31"]
        let milestone: [String: Any] = ["name": "Prototype", "amount": 1_000, "due_on": "2025-06-30", "evidence_required": true]
        let terms: [String: Any] = [
            "kind": "exclusive_licence", "field_of_use": "Wafer inspection", "territories": ["CN", "HK"], "term": term, "currency": "CNY", "upfront": 500,
            "milestones": [milestone], "royalty_bp": 300, "minimum_annual_royalty": 0, "sublicensing_allowed": true, "broker_fee_bp": 100, "sub_park_fee_bp": 100,
            "contract_category": "licence",
        ]
        let deal = terms.merging(["id": newID(), "match_id": newID(), "technology_id": newID(), "seller_id": newID(), "buyer_id": newID(), "broker_id": newID()]) { $1 }
        let approval: [String: Any] = ["decision": "approve", "reason": "Reviewed."]
        let reason: [String: Any] = ["reason": "Failed the acceptance test."]
        let resolution: [String: Any] = ["decision": "refund", "reason": "Not met."]
        let period: [String: Any] = ["from": "2025-01-01", "to": "2025-03-31"]
        let royalty: [String: Any] = ["period": period, "net_sales": 1_000, "currency": "CNY"]
        let payment: [String: Any] = ["organization_id": newID(), "amount": 1_000, "currency": "CNY", "external_ref": "REF-1"]

        let cases: [(schema: String, known: Set<String>, required: Set<String>)] = [
            // Creating a deal: the decoder takes every field as optional; `DealController.terms(_:over:)`
            // requires the terms that have no default.
            ("CreateDeal", DealController.CreateDeal.knownFields, Self.requiredFields(deal, Self.createsDeal)),
            ("AmendDeal", DealController.AmendDeal.knownFields, Self.requiredFields(terms) { body in
                guard let amendment = Self.decodes(DealController.AmendDeal.self, body) else { return false }
                return (try? DealController.terms(amendment.terms, over: Self.baseTerms)) != nil
            }),
            ("DealTermInput", try #require(DealController.CreateDeal.nestedKnownFields["term"]),
             Self.requiredFields(term) { Self.decodes(DealController.TermBody.self, $0) != nil }),
            ("MilestoneInput", try #require(DealController.CreateDeal.nestedKnownFields["milestones"]),
             Self.requiredFields(milestone) { Self.decodes(DealController.MilestoneBody.self, $0) != nil }),
            ("DealApproval", DealController.Approval.knownFields, Self.requiredFields(approval) { Self.decodes(DealController.Approval.self, $0) != nil }),
            // A dispute needs a `reason`, and the route refuses a blank one (422 naming `reason`).
            ("MilestoneDispute", DealController.Reason.knownFields, Self.requiredFields(reason) { body in
                guard let dispute = Self.decodes(DealController.Reason.self, body) else { return false }
                return (try? ClientText.trimmed(dispute.reason, field: "reason", max: 2_000)) != nil
            }),
            ("MilestoneRelease", DealController.Release.knownFields, Self.requiredFields(["evidence": "Acceptance report"]) { Self.decodes(DealController.Release.self, $0) != nil }),
            ("MilestoneResolution", DealController.Resolution.knownFields, Self.requiredFields(resolution) { Self.decodes(DealController.Resolution.self, $0) != nil }),
            ("RoyaltyReportInput", DealController.RoyaltyInput.knownFields, Self.requiredFields(royalty) { Self.decodes(DealController.RoyaltyInput.self, $0) != nil }),
            ("RoyaltyPeriod", try #require(DealController.RoyaltyInput.nestedKnownFields["period"]),
             Self.requiredFields(period) { Self.decodes(DealController.RoyaltyInput.Period.self, $0) != nil }),
            ("Payment", MoneyController.Payment.knownFields, Self.requiredFields(payment) { Self.decodes(MoneyController.Payment.self, $0) != nil }),
        ]
        for (name, known, required) in cases {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(OpenAPISchemas.properties(schema) == known, "\(name) documents \(OpenAPISchemas.properties(schema).sorted()), the server knows \(known.sorted())")
            #expect(schema["additionalProperties"] as? Bool == false, "\(name) must refuse unknown fields")
            #expect(Set(schema["required"] as? [String] ?? []) == required, "\(name) must require exactly \(required.sorted()), documents \(schema["required"] ?? [])")
        }
        #expect(Set(["kind", "field_of_use", "territories", "term", "currency", "contract_category"]) == Set(schemas["CreateDeal"]?["required"] as? [String] ?? []))
        #expect(Set(deal.keys) == DealController.CreateDeal.knownFields)
        #expect(Set(terms.keys) == DealController.AmendDeal.knownFields)
        #expect(DealController.AmendDeal.nestedKnownFields == DealController.CreateDeal.nestedKnownFields)
        // Nested bodies are the documented nested schemas.
        for body in ["CreateDeal", "AmendDeal"] {
            let fields = schemas[body]?["properties"] as? [String: Any] ?? [:]
            #expect((fields["term"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/DealTermInput", "\(body).term")
            #expect(((fields["milestones"] as? [String: Any])?["items"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/MilestoneInput", "\(body).milestones")
        }
        #expect(((schemas["RoyaltyReportInput"]?["properties"] as? [String: Any])?["period"] as? [String: Any])?["$ref"] as? String == "#/components/schemas/RoyaltyPeriod")

        // The documented examples are bodies the server takes.
        let examples: [(String, ([String: Any]) -> Bool)] = [
            ("CreateDeal", Self.createsDeal),
            ("DealApproval", { Self.decodes(DealController.Approval.self, $0) != nil }),
            ("MilestoneDispute", { Self.decodes(DealController.Reason.self, $0)?.reason != nil }),
            ("MilestoneResolution", { Self.decodes(DealController.Resolution.self, $0) != nil }),
            ("RoyaltyReportInput", { Self.decodes(DealController.RoyaltyInput.self, $0) != nil }),
            ("Payment", { Self.decodes(MoneyController.Payment.self, $0) != nil }),
        ]
        for (name, accepts) in examples {
            let values = schemas[name]?["examples"] as? [[String: Any]] ?? []
            #expect(!values.isEmpty && values.allSatisfy(accepts), "\(name)'s examples must be accepted")
        }

        // The enums are the Swift enums; the decisions are what the routes accept.
        #expect(OpenAPISchemas.enumeration(schemas["DealKind"]) == Set(DealKind.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["DealStatus"]) == Set(DealStatus.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["ContractCategory"]) == Set(ContractCategory.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["MilestoneStatus"]) == Set(MilestoneStatus.allCases.map(\.rawValue)))
        #expect(OpenAPISchemas.enumeration(schemas["ApprovalRule"]) == ["amount_above_threshold", "assignment", "cross_border"])
        #expect(OpenAPISchemas.enumeration((schemas["DealApproval"]?["properties"] as? [String: Any])?["decision"]) == ["approve", "reject"])
        #expect(OpenAPISchemas.enumeration((schemas["MilestoneResolution"]?["properties"] as? [String: Any])?["decision"]) == ["release", "refund"])
        #expect(OpenAPISchemas.enumeration((schemas["RegistrationParty"]?["properties"] as? [String: Any])?["role"]) == ["seller", "buyer", "broker"])
        let lifecycle = (schemas["DealStatus"]?["description"] as? String) ?? ""
        #expect(lifecycle.contains("`draft` → `proposed` | `approval_required` → `approved` → `signed` → `active` → `completed`"))
        for status in DealStatus.allCases {
            #expect(lifecycle.contains("`\(status.rawValue)`"), "DealStatus must describe \(status.rawValue)")
        }
        let threshold = DealRules().approvalThreshold
        #expect(((schemas["ApprovalRule"]?["description"] as? String) ?? "").contains("\(threshold)"), "ApprovalRule must give the default threshold \(threshold)")
        #expect(((schemas["Deal"]?["description"] as? String) ?? "").contains("\(DealRules().instituteShareBP) basis points"), "Deal must give the institute's default share")
        let number = ((schemas["Registration"]?["properties"] as? [String: Any])?["number"] as? [String: Any])?["pattern"] as? String
        #expect(number == "^[0-9]{4}SH[0-9]{10}$")

        // Response schemas list every property as required: the server encodes absent values as null.
        for name in ["Deal", "DealPage", "DealTerm", "Milestone", "DealVersion", "DealVersionTerms", "DealVersionMilestone", "DealVersionPage", "RoyaltyPeriod",
                     "RoyaltyReport", "RoyaltyReportPage",
                     "Registration", "RegistrationParty", "RegistrationPage", "CurrencyBalances", "BalanceTotals", "BalancesPage"] {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(Set(schema["required"] as? [String] ?? []) == OpenAPISchemas.properties(schema), "\(name) must require every property")
        }
        // A deal is flat: the terms (but milestones with their state) next to the deal's own fields;
        // a version's terms are the terms as agreed, milestones included.
        let deal_ = OpenAPISchemas.properties(schemas["Deal"])
        let versionTerms = OpenAPISchemas.properties(schemas["DealVersionTerms"])
        #expect(versionTerms == DealController.termFields.union(["total_amount"]))
        #expect(OpenAPISchemas.properties(schemas["DealVersionMilestone"]) == DealController.nestedTermFields["milestones"])
        #expect(deal_ == versionTerms.union(["id", "technology_id", "seller_id", "buyer_id", "broker_id", "match_id", "created_by", "status",
                                            "version", "approval_rule", "seller_signed_at", "buyer_signed_at", "signed_at", "funded_at", "created_at", "updated_at"]))

        let problem = try #require(schemas["Problem"])
        #expect(OpenAPISchemas.properties(problem).contains("conflicting_deal_id"))
        let codes = problem["description"] as? String ?? ""
        for code in ["`exclusivity_conflict`", "`conflicting_deal_id`", "`exceeds_credits`", "deal"] {
            #expect(codes.contains(code), "the Problem description must mention \(code)")
        }
    }

    /// Real responses of every deal and money operation have exactly the properties the schemas
    /// document and validate against them (with Python's `jsonschema`, which `openapi-spec-validator` brings along).
    @Test func realResponsesMatchTheSchemas() async throws {
        let collected = Mutex<[(label: String, schema: String, body: Data)]>([])
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let lab = try await api.createOrganization("Fudan Lab", kind: "institute", subParkID: park.id)
            let factory = try await api.createOrganization("Shanghai Wafer Works", kind: "enterprise")
            let rival = try await api.createOrganization("Rival Works", kind: "enterprise")
            let broker = try await api.createOrganization("Tech Broker", kind: "broker")
            let committee = try await api.createOrganization("Transfer Committee", kind: "committee")
            let stranger = try await api.createOrganization("Other Works", kind: "enterprise")

            let technology = try await api.registerTechnologyID(as: lab, technologyBody(
                "晶圆缺陷检测", field: "integrated_circuits", trl: 6, inventors: [inventor("张三", 6_000), inventor("李四", 4_000)],
                ipRights: [ipRight("CN 2020 1 0123456.7")]))
            try await api.moveAll(technology, ["custody", "listing"], key: lab.key)

            var record: [(String, String, APIResponse)] = []
            func expectStatus(_ response: APIResponse, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
                try #require(response.status.code == status, "\(response)", sourceLocation: sourceLocation)
            }

            // Money in.
            let reference = "ICBC-" + newID()
            let depositBody: [String: Any] = ["organization_id": factory.id, "amount": 100_000_000, "currency": "CNY", "external_ref": reference]
            let depositKey = newID()
            let deposit = try await api.call(.post, "/v1/deposits", json: depositBody, headers: [.tbIdempotencyKey: depositKey])
            try expectStatus(deposit, 201)
            #expect(deposit.json["code"].string == "deposit" && deposit.json["metadata"]["external_ref"].string == reference, "\(deposit)")
            record.append(("deposit 201", "Transfer", deposit))
            let replay = try await api.call(.post, "/v1/deposits", json: depositBody, headers: [.tbIdempotencyKey: depositKey])
            #expect(replay.status == .created && replay.headers[.tbIdempotentReplayed] == "true" && replay.body == deposit.body, "\(replay)")
            record.append(("deposit replayed", "Transfer", replay))

            // A licence: created by the seller institute with a broker, amended, proposed, signed by both.
            let licence: [String: Any] = [
                "technology_id": technology, "buyer_id": factory.id, "broker_id": broker.id, "kind": "non_exclusive_licence",
                "field_of_use": "Wafer inspection equipment", "territories": ["CN"], "term": ["starts_on": "2025-01-01", "ends_on": "2030-12-31"],
                "currency": "CNY", "upfront": 1_000_000,
                "milestones": [["name": "Prototype accepted", "amount": 2_000_000, "due_on": "2025-06-30", "evidence_required": true],
                               ["name": "Volume production", "amount": 3_000_000, "due_on": "2026-06-30"]],
                "royalty_bp": 500, "minimum_annual_royalty": 1_000_000, "broker_fee_bp": 1_000, "sub_park_fee_bp": 200, "contract_category": "licence",
            ]
            let created = try await api.call(.post, "/v1/deals", key: lab.key, json: licence, headers: [.tbIdempotencyKey: newID()])
            try expectStatus(created, 201)
            record.append(("POST deal 201", "Deal", created))
            let deal = try #require(created.json["id"].string)
            #expect(created.headers[.location] == "/v1/deals/\(deal)" && created.headers[.eTag] == "\"v1\"", "\(created)")
            #expect(created.json["status"].string == "draft" && created.json["total_amount"].int == 6_000_000 && created.json["approval_rule"].isNull, "\(created)")

            record.append(("GET deal as the seller's sub-park", "Deal", try await api.call(.get, "/v1/deals/\(deal)", key: park.key)))
            let amended = try await api.call(.patch, "/v1/deals/\(deal)", key: factory.key, json: ["upfront": 1_500_000, "sublicensing_allowed": true],
                                             headers: [.ifMatch: "\"v1\""])
            try expectStatus(amended, 200)
            #expect(amended.headers[.eTag] == "\"v2\"" && amended.json["version"].int == 2, "\(amended)")
            record.append(("PATCH deal", "Deal", amended))
            record.append(("versions", "DealVersionPage", try await api.call(.get, "/v1/deals/\(deal)/versions", key: broker.key)))
            let proposed = try await api.call(.post, "/v1/deals/\(deal)/propose", key: broker.key)
            #expect(proposed.json["status"].string == "proposed", "\(proposed)")
            record.append(("propose", "Deal", proposed))
            record.append(("seller signs", "Deal", try await api.call(.post, "/v1/deals/\(deal)/sign", key: lab.key)))
            let signed = try await api.call(.post, "/v1/deals/\(deal)/sign", key: factory.key)
            #expect(signed.json["status"].string == "signed" && signed.json["signed_at"].string != nil, "\(signed)")
            record.append(("buyer signs", "Deal", signed))

            let registration = try await api.call(.get, "/v1/deals/\(deal)/registration", key: factory.key)
            try expectStatus(registration, 200)
            #expect(registration.json["filing_due_on"].string == "2025-04-01" && registration.json["certified_technology_income"].int == 6_500_000, "\(registration)")
            #expect(registration.json["number"].string?.count == 16 && registration.json["parties"].array.count == 3, "\(registration)")
            record.append(("registration", "Registration", registration))
            let due = try await api.call(.get, "/v1/filings/due", key: park.key)
            #expect(due.json["data"].array.count == 1, "\(due)")
            record.append(("filings due", "RegistrationPage", due))
            record.append(("filings due before", "RegistrationPage", try await api.call(.get, "/v1/filings/due?before=2025-03-31&limit=5", key: committee.key)))

            // Escrow, a release, a dispute and its resolution.
            let funded = try await api.call(.post, "/v1/deals/\(deal)/escrow", key: factory.key, headers: [.tbIdempotencyKey: newID()])
            #expect(funded.json["status"].string == "active" && funded.json["milestones"][0]["status"].string == "funded", "\(funded)")
            record.append(("escrow", "Deal", funded))
            let released = try await api.call(.post, "/v1/deals/\(deal)/milestones/1/release", key: factory.key, json: ["evidence": "Acceptance report AR-7"],
                                              headers: [.tbIdempotencyKey: newID()])
            #expect(released.json["milestones"][0]["status"].string == "released", "\(released)")
            record.append(("release", "Deal", released))
            let disputed = try await api.call(.post, "/v1/deals/\(deal)/milestones/2/dispute", key: lab.key, json: ["reason": "Volume production started."])
            #expect(disputed.json["status"].string == "disputed", "\(disputed)")
            record.append(("dispute", "Deal", disputed))
            let resolved = try await api.call(.post, "/v1/deals/\(deal)/milestones/2/resolve", key: committee.key,
                                              json: ["decision": "refund", "reason": "Production has not started."])
            #expect(resolved.json["status"].string == "active" && resolved.json["milestones"][1]["resolution_reason"].string == "Production has not started.", "\(resolved)")
            record.append(("resolve", "Deal", resolved))

            // Royalties: a quarter, then a year end topped up to the annual minimum.
            let quarter = try await api.call(.post, "/v1/deals/\(deal)/royalty-reports", key: factory.key, json: [
                "period": ["from": "2025-01-01", "to": "2025-03-31"], "net_sales": 10_000_000, "currency": "CNY",
            ], headers: [.tbIdempotencyKey: newID()])
            try expectStatus(quarter, 201)
            #expect(quarter.json["royalty"].int == 500_000 && quarter.json["minimum_top_up"].int == 0, "\(quarter)")
            record.append(("royalty report", "RoyaltyReport", quarter))
            let yearEnd = try await api.call(.post, "/v1/deals/\(deal)/royalty-reports", key: factory.key, json: [
                "period": ["from": "2025-10-01", "to": "2025-12-31"], "net_sales": 1_000_000, "currency": "CNY",
            ])
            #expect(yearEnd.json["royalty"].int == 50_000 && yearEnd.json["minimum_top_up"].int == 450_000 && yearEnd.json["amount_paid"].int == 500_000, "\(yearEnd)")
            record.append(("royalty report, year end", "RoyaltyReport", yearEnd))
            record.append(("royalty reports", "RoyaltyReportPage", try await api.call(.get, "/v1/deals/\(deal)/royalty-reports", key: committee.key)))

            // An assignment of the same technology: approval, rejection, approval, and a signature
            // the exclusion constraints refuse.
            let assignment = try await api.call(.post, "/v1/deals", key: lab.key, json: [
                "technology_id": technology, "buyer_id": rival.id, "kind": "assignment", "field_of_use": "All uses", "territories": ["CN"],
                "term": ["starts_on": "2026-01-01", "ends_on": "2027-01-01"], "currency": "CNY", "upfront": 9_000_000, "contract_category": "transfer",
            ])
            try expectStatus(assignment, 201)
            #expect(assignment.json["territories"] == .array([.string("WORLD")]) && assignment.json["term"]["ends_on"].isNull, "\(assignment)")
            record.append(("POST assignment 201", "Deal", assignment))
            let assigned = try #require(assignment.json["id"].string)
            let needsApproval = try await api.call(.post, "/v1/deals/\(assigned)/propose", key: rival.key)
            #expect(needsApproval.json["status"].string == "approval_required" && needsApproval.json["approval_rule"].string == "assignment", "\(needsApproval)")
            record.append(("propose assignment", "Deal", needsApproval))
            let rejected = try await api.call(.post, "/v1/deals/\(assigned)/approvals", key: committee.key, json: ["decision": "reject", "reason": "Price too low."])
            #expect(rejected.json["status"].string == "draft", "\(rejected)")
            record.append(("reject", "Deal", rejected))
            _ = try await api.call(.post, "/v1/deals/\(assigned)/propose", key: lab.key)
            let approved = try await api.call(.post, "/v1/deals/\(assigned)/approvals", key: committee.key, json: ["decision": "approve", "reason": "Reviewed."])
            #expect(approved.json["status"].string == "approved", "\(approved)")
            record.append(("approve", "Deal", approved))
            record.append(("buyer signs the assignment", "Deal", try await api.call(.post, "/v1/deals/\(assigned)/sign", key: rival.key)))
            let conflict = try await api.call(.post, "/v1/deals/\(assigned)/sign", key: lab.key)
            expectProblem(conflict, .conflict, "exclusivity_conflict", fields: ["territories"])
            #expect(conflict.json["conflicting_deal_id"].string == deal, "the seller may see the licence: \(conflict)")
            record.append(("409 exclusivity_conflict", "Problem", conflict))
            let cancelled = try await api.call(.post, "/v1/deals/\(assigned)/cancel", key: rival.key)
            #expect(cancelled.json["status"].string == "cancelled", "\(cancelled)")
            record.append(("cancel", "Deal", cancelled))

            // Listings and balances.
            let first = try await api.call(.get, "/v1/deals?limit=1", key: lab.key)
            let cursor = try #require(first.json["next_cursor"].string, "\(first)")
            record.append(("list deals, first page", "DealPage", first))
            record.append(("list deals, next page", "DealPage", try await api.call(.get, "/v1/deals?limit=1&cursor=\(cursor)", key: lab.key)))
            record.append(("list deals, filtered", "DealPage", try await api.call(.get, "/v1/deals?status=active&technology_id=\(technology)", key: park.key)))
            let withdrawal = try await api.call(.post, "/v1/withdrawals", json: ["organization_id": factory.id, "amount": 1_000, "currency": "CNY", "external_ref": "W-" + newID()],
                                                headers: [.tbIdempotencyKey: newID()])
            #expect(withdrawal.status == .created && withdrawal.json["code"].string == "withdrawal", "\(withdrawal)")
            record.append(("withdrawal 201", "Transfer", withdrawal))
            let labBalances = try await api.call(.get, "/v1/organizations/\(lab.id)/balances", key: park.key)
            #expect(labBalances.json["data"][0]["accounts"].array.count == 3, "operating and two inventors: \(labBalances)")
            record.append(("balances of the seller", "BalancesPage", labBalances))
            record.append(("balances of the buyer, as the committee", "BalancesPage", try await api.call(.get, "/v1/organizations/\(factory.id)/balances", key: committee.key)))
            record.append(("balances without accounts", "BalancesPage", try await api.call(.get, "/v1/organizations/\(stranger.id)/balances", key: stranger.key)))

            // Problems.
            var missing = licence
            missing["contract_category"] = nil
            let invalid = try await api.call(.post, "/v1/deals", key: lab.key, json: missing)
            expectInvalid(invalid, "contract_category")
            record.append(("422 missing term", "Problem", invalid))
            record.append(("422 unknown nested field", "Problem", try await api.call(.post, "/v1/deals", key: lab.key,
                                                                                   json: licence.merging(["term": ["starts_on": "2025-01-01", "until": "2026-01-01"]]) { $1 })))
            record.append(("403 enterprise creates", "Problem", try await api.call(.post, "/v1/deals", key: factory.key, json: licence)))
            record.append(("404 stranger", "Problem", try await api.call(.get, "/v1/deals/\(deal)", key: stranger.key)))
            record.append(("404 no milestone 9", "Problem", try await api.call(.post, "/v1/deals/\(deal)/milestones/9/release", key: factory.key)))
            record.append(("403 seller funds", "Problem", try await api.call(.post, "/v1/deals/\(deal)/escrow", key: lab.key)))
            record.append(("403 operator cancels", "Problem", try await api.call(.post, "/v1/deals/\(deal)/cancel")))
            record.append(("403 approval by a party", "Problem", try await api.call(.post, "/v1/deals/\(assigned)/approvals", key: lab.key,
                                                                                  json: ["decision": "approve", "reason": "x"])))
            let illegal = try await api.call(.post, "/v1/deals/\(deal)/propose", key: lab.key)
            expectProblem(illegal, .conflict, "illegal_transition", fields: ["status"])
            record.append(("409 illegal_transition", "Problem", illegal))
            record.append(("428 no If-Match", "Problem", try await api.call(.patch, "/v1/deals/\(assigned)", key: lab.key, json: ["upfront": 1])))
            record.append(("412 stale If-Match", "Problem", try await api.call(.patch, "/v1/deals/\(assigned)", key: lab.key, json: ["upfront": 1],
                                                                             headers: [.ifMatch: "\"v9\""])))
            let blank = try await api.call(.post, "/v1/deals/\(deal)/milestones/2/dispute", key: factory.key, json: [:])
            expectInvalid(blank, "reason")
            record.append(("422 dispute without reason", "Problem", blank))
            let overlap = try await api.call(.post, "/v1/deals/\(deal)/royalty-reports", key: factory.key, json: [
                "period": ["from": "2025-03-01", "to": "2025-04-30"], "net_sales": 1, "currency": "CNY",
            ])
            expectProblem(overlap, .conflict, "conflict", fields: ["period"])
            record.append(("409 overlapping royalty report", "Problem", overlap))
            record.append(("422 future period", "Problem", try await api.call(.post, "/v1/deals/\(deal)/royalty-reports", key: factory.key, json: [
                "period": ["from": "2025-01-01", "to": utcDate(1)], "net_sales": 1, "currency": "CNY",
            ])))
            let poor = try await api.call(.post, "/v1/withdrawals", json: ["organization_id": rival.id, "amount": 1_000, "currency": "CNY", "external_ref": "W-" + newID()])
            expectProblem(poor, .unprocessableContent, "exceeds_credits")
            record.append(("422 exceeds_credits", "Problem", poor))
            let reused = try await api.call(.post, "/v1/deposits", json: depositBody)
            expectProblem(reused, .conflict, "conflict", fields: ["external_ref"])
            record.append(("409 external_ref reused", "Problem", reused))
            record.append(("403 deposit by an institute", "Problem", try await api.call(.post, "/v1/deposits", key: lab.key, json: depositBody)))
            record.append(("404 balances of another", "Problem", try await api.call(.get, "/v1/organizations/\(lab.id)/balances", key: stranger.key)))
            record.append(("422 filings before", "Problem", try await api.call(.get, "/v1/filings/due?before=2025-02-30", key: lab.key)))
            record.append(("422 list status", "Problem", try await api.call(.get, "/v1/deals?status=bogus", key: lab.key)))
            let partyCancels = try await api.call(.post, "/v1/deals/\(deal)/cancel", key: factory.key)
            expectProblem(partyCancels, .conflict, "illegal_transition", fields: ["status"])
            record.append(("409 a party cancels a signed deal", "Problem", partyCancels))
            let terminated = try await api.call(.post, "/v1/deals/\(deal)/cancel", key: committee.key)
            #expect(terminated.json["status"].string == "terminated", "\(terminated)")
            record.append(("the committee terminates", "Deal", terminated))

            let schemas = try OpenAPISchemas.schemas()
            for (label, schema, response) in record {
                #expect(response.status.code < 500, "\(label): \(response)")
                if schema != "Problem" {
                    #expect((200..<300).contains(response.status.code), "\(label): \(response)")
                    #expect(response.json.keys == OpenAPISchemas.properties(schemas[schema]), "\(label): the response's properties differ from \(schema)'s: \(response)")
                } else {
                    #expect((400..<500).contains(response.status.code), "\(label): \(response)")
                }
                collected.withLock { $0.append((label, schema, response.body)) }
            }
        }
        let samples = collected.withLock { $0 }
        #expect(samples.count == 55)
        // The response schemas and problems are closed, so an undocumented property anywhere in a response fails.
        try expectResponsesMatchSchemas(samples, closing: [
            "Deal", "DealPage", "DealTerm", "Milestone", "DealVersion", "DealVersionTerms", "DealVersionMilestone", "DealVersionPage", "RoyaltyPeriod", "RoyaltyReport",
            "RoyaltyReportPage", "Registration", "RegistrationParty", "RegistrationPage", "CurrencyBalances", "BalanceTotals", "BalancesPage",
            "Account", "Transfer", "Problem", "FieldError",
        ])
    }
}
