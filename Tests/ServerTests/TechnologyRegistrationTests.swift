import Foundation
import HTTPTypes
import Testing

@Suite("Technology registry: registration")
struct TechnologyRegistrationTests {
    @Test func aRegistrationAnswers201WithLocationETagAndTheStoredTechnology() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Tsinghua Lab", kind: "institute")
            let id = newID()
            let body = technologyBody(
                "  Wafer defect inspection  ", summary: "Optical inspection of wafers.", description: "secret optics", field: "integrated_circuits", trl: 5,
                keywords: ["  wafer  ", "inspection"], inventors: [inventor(" Zhang San\n", 6_000), inventor("Li Si", 4_000)],
                ipRights: [ipRight("CN 2020 1 0123456.7", extra: ["kind_code": "A", "filed_on": "2020-03-31", "granted_on": "2022-06-10", "expires_on": "2040-03-31"])],
                extra: ["id": id, "asking_terms": ["deal_kinds": ["assignment", "exclusive_licence"], "price_min": 1_000_000, "price_max": 2_000_000, "currency": "CNY"]])
            let response = try await api.call(.post, "/v1/technologies", key: lab.key, json: body)
            #expect(response.status == .created, "\(response)")
            #expect(response.headers[.location] == "/v1/technologies/\(id)", "\(response.headers)")
            #expect(response.headers[.eTag] == "\"v1\"", "\(response.headers)")
            let t = response.json
            #expect(t.keys == ["id", "owner_id", "title", "summary", "description", "field", "keywords", "trl", "trl_verified", "inventors", "ip_rights",
                               "asking_terms", "status", "version", "created_at", "updated_at"], "\(t)")
            #expect(t["id"].string == id && t["owner_id"].string == lab.id)
            #expect(t["title"].string == "Wafer defect inspection", "stored trimmed: \(t)")
            #expect(t["keywords"] == .array([.string("wafer"), .string("inspection")]), "\(t)")
            #expect(t["description"].string == "secret optics", "the owner reads its description: \(t)")
            #expect(t["status"].string == "registered" && t["version"].int == 1 && t["trl"].int == 5 && t["trl_verified"].bool == false, "\(t)")
            #expect(t["inventors"].array.map { "\($0["name"].string ?? "")=\($0["share_bp"].int ?? -1)" } == ["Zhang San=6000", "Li Si=4000"], "\(t)")
            let right = t["ip_rights"][0]
            #expect(t["ip_rights"].array.count == 1)
            #expect(right["number"].string == "CN 2020 1 0123456.7" && right["normalized_number"].string == "202010123456.7", "\(right)")
            #expect(right["type"].string == "patent" && right["office"].string == "CN" && right["kind_code"].string == "A" && right["status"].string == "granted")
            #expect(right["filed_on"].string == "2020-03-31" && right["granted_on"].string == "2022-06-10" && right["expires_on"].string == "2040-03-31", "\(right)")
            #expect(t["asking_terms"]["deal_kinds"] == .array([.string("assignment"), .string("exclusive_licence")]), "\(t)")
            #expect(t["asking_terms"]["price_min"].int == 1_000_000 && t["asking_terms"]["price_max"].int == 2_000_000 && t["asking_terms"]["currency"].string == "CNY")

            let read = try await api.technology(id, key: lab.key)
            #expect(read.status == .ok && read.headers[.eTag] == "\"v1\"", "\(read)")
            #expect(read.json == t, "GET differs from the 201 body:\n\(read.json)\n\(t)")

            let history = try await api.technologyHistory(id, key: lab.key)
            #expect(history.count == 1, "\(history)")
            #expect(history.first?["version"].int == 1 && history.first?["event"].string == "registered" && history.first?["actor_id"].string == lab.id, "\(history)")
            #expect(history.first?["changes"] == .object([
                "title": .string("Wafer defect inspection"), "field": .string("integrated_circuits"), "trl": .int(5), "status": .string("registered"),
            ]), "\(history)")

            // Without asking terms they read null; the same id again is a 409 `conflict` naming `id`.
            let plain = try await api.registerTechnology(as: lab)
            #expect(plain["asking_terms"].isNull && plain["ip_rights"] == .array([]), "\(plain)")
            expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(extra: ["id": id])), .conflict, "conflict", fields: ["id"])
        }
    }

    @Test func inventorSharesAreWholeBasisPointsSummingTo10000() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("Fudan Lab", kind: "institute")
            func register(_ inventors: [[String: Any]]) async throws -> APIResponse {
                try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(inventors: inventors))
            }
            // Sums other than 10000.
            for shares in [[6_000, 3_000], [6_000, 5_000], [9_999], [1, 1], [5_000, 5_000, 1]] {
                let response = try await register(shares.enumerated().map { inventor("Inventor \($0)", $1) })
                expectInvalid(response, "inventors")
                let total = shares.reduce(0, +)
                #expect(response.json["detail"].string?.contains("\(total)") == true, "the detail names the sum \(total): \(response)")
            }
            // A share outside 1...10000 is named by index (before the sum is checked).
            expectInvalid(try await register([inventor("A", 0), inventor("B", 10_000)]), "inventors[0].share_bp")
            expectInvalid(try await register([inventor("A", 5_000), inventor("B", 10_001)]), "inventors[1].share_bp")
            expectInvalid(try await register([inventor("A", 10_001)]), "inventors[0].share_bp")
            expectInvalid(try await register([inventor("A", -5_000), inventor("B", 15_000)]), "inventors[0].share_bp")
            expectInvalid(try await register([inventor("A", 5_000), inventor("B", 2_500.5), inventor("C", 2_499.5)]), "inventors[1].share_bp")
            expectInvalid(try await register([inventor("A", 5_000), inventor("B", "5000")]), "inventors[1].share_bp")
            // A name is `ClientText`: whitespace alone, or over 200 code points once trimmed, is refused.
            expectInvalid(try await register([inventor("A", 5_000), inventor("\n\u{3000}", 5_000)]), "inventors[1].name")
            expectInvalid(try await register([inventor("e" + String(repeating: "\u{301}", count: 200), 10_000)]), "inventors[0].name")
            // No inventors, or none at all, or more than 100.
            expectInvalid(try await register([]), "inventors")
            var missing = technologyBody()
            missing["inventors"] = nil
            expectInvalid(try await api.call(.post, "/v1/technologies", key: lab.key, json: missing), "inventors")
            expectInvalid(try await register((0..<101).map { inventor("I\($0)", $0 == 0 ? 10_000 - 100 : 1) }), "inventors")
            // A blank name; an unknown inventor field.
            expectInvalid(try await register([inventor("   ", 10_000)]), "inventors[0].name")
            expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key,
                                             json: technologyBody(inventors: [["name": "A", "share_bp": 10_000, "email": "a@example.com"]])),
                          .unprocessableContent, "unknown_field", fields: ["inventors[0].email"])
            #expect(try await api.searchIDs(key: lab.key).isEmpty, "a refused registration left a technology behind")

            // Valid splits: one inventor, three uneven, one hundred.
            let one = try await api.registerTechnology(as: lab, technologyBody(inventors: [inventor("Solo", 10_000)]))
            #expect(one["inventors"].array.count == 1)
            let three = try await api.registerTechnology(as: lab, technologyBody(inventors: [inventor("A", 3_334), inventor("B", 3_333), inventor("C", 3_333)]))
            #expect(three["inventors"].array.compactMap { $0["share_bp"].int } == [3_334, 3_333, 3_333], "\(three)")
            let hundred = try await api.registerTechnology(as: lab, technologyBody(inventors: (0..<100).map { inventor("I\($0)", 100) }))
            #expect(hundred["inventors"].array.count == 100)
            #expect(try await api.searchIDs(key: lab.key).count == 3)
        }
    }

    @Test func onlyInstitutesOrTheOperatorForAnInstituteRegister() async throws {
        try await withAPI { api in
            let park = try await api.createOrganization("Zhangjiang Park", kind: "sub_park")
            let lab = try await api.createOrganization("SIMM Lab", kind: "institute", subParkID: park.id)
            let other = try await api.createOrganization("ECNU Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Acme Ltd", kind: "enterprise", subParkID: park.id)
            let broker = try await api.createOrganization("Broker Co", kind: "broker")
            let committee = try await api.createOrganization("Committee", kind: "committee")

            for org in [enterprise, broker, park, committee] {
                expectProblem(try await api.call(.post, "/v1/technologies", key: org.key, json: technologyBody()), .forbidden, "forbidden")
                expectProblem(try await api.call(.post, "/v1/technologies", key: org.key, json: technologyBody(ownerID: lab.id)), .forbidden, "forbidden")
            }
            // An institute registers only for itself.
            expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(ownerID: other.id)), .forbidden, "forbidden")
            let own = try await api.registerTechnology(as: lab, technologyBody(ownerID: lab.id))
            #expect(own["owner_id"].string == lab.id)
            let implicit = try await api.registerTechnology(as: lab)
            #expect(implicit["owner_id"].string == lab.id)

            // The operator must name an institute.
            expectInvalid(try await api.call(.post, "/v1/technologies", json: technologyBody()), "owner_id")
            for notAnInstitute in [enterprise.id, park.id, committee.id, try await api.operatorID(), newID()] {
                expectInvalid(try await api.call(.post, "/v1/technologies", json: technologyBody(ownerID: notAnInstitute)), "owner_id")
            }
            expectInvalid(try await api.call(.post, "/v1/technologies", json: technologyBody(ownerID: "not-a-uuid")), "owner_id")
            let forLab = try await api.registerTechnology(as: nil, technologyBody(description: "operator-entered secret", ownerID: lab.id))
            #expect(forLab["owner_id"].string == lab.id && forLab["description"].string == "operator-entered secret", "\(forLab)")
            let forLabID = try #require(forLab["id"].string)
            let history = try await api.technologyHistory(forLabID, key: lab.key)
            #expect(history.first?["actor_id"].string == (try await api.operatorID()), "the operator is the actor: \(history)")
            #expect((try await api.technology(forLabID, key: lab.key)).json["description"].string == "operator-entered secret")

            // No key: 401.
            expectProblem(try await api.call(.post, "/v1/technologies", key: nil, json: technologyBody()), .unauthorized, "unauthorized")
            #expect(Set(try await api.searchIDs([("owner_id", lab.id)])) == Set([own["id"].string, implicit["id"].string, forLabID].compactMap { $0 }))
            #expect(try await api.searchIDs([("owner_id", other.id)]).isEmpty)
        }
    }

    @Test func fieldsListTheTaxonomyAndRegistrationsMustUseIt() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("ZJU Lab", kind: "institute")
            let enterprise = try await api.createOrganization("Acme", kind: "enterprise")
            let response = try await api.call(.get, "/v1/fields", key: enterprise.key)
            #expect(response.status == .ok && response.contentType?.hasPrefix("application/json") == true, "\(response)")
            #expect(response.json.keys == ["data", "next_cursor"] && response.json["next_cursor"].isNull, "\(response)")
            let fields = response.json["data"].array
            let codes = fields.compactMap { $0["code"].string }
            #expect(codes == codes.sorted(), "fields are in code order: \(codes)")
            #expect(Set(codes).count == codes.count)
            let required = ["biomedicine", "integrated_circuits", "artificial_intelligence", "new_energy_vehicles", "advanced_materials",
                            "high_end_equipment", "information_technology", "environmental_technology"]
            #expect(Set(required).isSubset(of: Set(codes)), "missing: \(Set(required).subtracting(codes).sorted())")
            for field in fields {
                #expect(field.keys == ["code", "name_en", "name_zh"], "\(field)")
                #expect(field["name_en"].string?.isEmpty == false && field["name_zh"].string?.isEmpty == false, "\(field)")
                #expect(field["code"].string?.range(of: "^[a-z][a-z0-9_]{0,62}$", options: .regularExpression) != nil, "\(field)")
            }
            let ic = fields.first { $0["code"].string == "integrated_circuits" }
            #expect(ic?["name_en"].string == "Integrated circuits" && ic?["name_zh"].string == "集成电路", "\(String(describing: ic))")
            #expect(fields.first { $0["code"].string == "biomedicine" }?["name_zh"].string == "生物医药")
            expectProblem(try await api.call(.get, "/v1/fields", key: nil), .unauthorized, "unauthorized")

            // Every listed field registers; anything else is 422 naming `field`.
            for code in codes {
                let t = try await api.registerTechnology(as: lab, technologyBody(field: code))
                #expect(t["field"].string == code)
            }
            for bogus in ["quantum_woo", "Biomedicine", "", "biomedicine ", "生物医药"] {
                expectInvalid(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(field: bogus)), "field")
            }
            var missing = technologyBody()
            missing["field"] = nil
            expectInvalid(try await api.call(.post, "/v1/technologies", key: lab.key, json: missing), "field")
            #expect(try await api.searchIDs(key: lab.key).count == codes.count)
        }
    }

    @Test func registrationFieldsAreValidatedAndNamed() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("NJU Lab", kind: "institute")
            func post(_ body: [String: Any]) async throws -> APIResponse {
                try await api.call(.post, "/v1/technologies", key: lab.key, json: body)
            }
            let cases: [(String, [String: Any])] = [
                ("title", technologyBody("   ")),
                ("title", technologyBody(String(repeating: "题", count: 301))),
                ("summary", technologyBody(summary: "")),
                ("summary", technologyBody(summary: String(repeating: "s", count: 5_001))),
                ("description", technologyBody(description: String(repeating: "d", count: 100_001))),
                ("trl", technologyBody(trl: 0)),
                ("trl", technologyBody(trl: 10)),
                ("keywords", technologyBody(keywords: (0..<31).map { "k\($0)" })),
                ("keywords[1]", technologyBody(keywords: ["ok", String(repeating: "k", count: 101)])),
                ("keywords[0]", technologyBody(keywords: ["  "])),
                ("ip_rights[0].type", technologyBody(ipRights: [ipRight("ZL202010000001.1", type: "trademark")])),
                ("ip_rights[0].office", technologyBody(ipRights: [ipRight("ZL202010000001.1", office: "cn")])),
                ("ip_rights[0].office", technologyBody(ipRights: [ipRight("ZL202010000001.1", office: "CHN")])),
                ("ip_rights[1].number", technologyBody(ipRights: [ipRight("ZL202010000001.1"), ipRight(" - / ")])),
                ("ip_rights[0].number", technologyBody(ipRights: [ipRight("ZL 2020 №1")])),
                ("ip_rights[0].number", technologyBody(ipRights: [ipRight(String(repeating: "1", count: 65))])),
                ("ip_rights[0].kind_code", technologyBody(ipRights: [ipRight("ZL202010000001.1", extra: ["kind_code": "B12"])])),
                ("ip_rights[0].kind_code", technologyBody(ipRights: [ipRight("ZL202010000001.1", extra: ["kind_code": "b1"])])),
                ("ip_rights[0].status", technologyBody(ipRights: [ipRight("ZL202010000001.1", status: "alive")])),
                ("ip_rights[0].filed_on", technologyBody(ipRights: [ipRight("ZL202010000001.1", extra: ["filed_on": "2020-13-01"])])),
                ("ip_rights[0].granted_on", technologyBody(ipRights: [ipRight("ZL202010000001.1", extra: ["filed_on": "2020-03-01", "granted_on": "2020-02-28"])])),
                ("ip_rights[0].expires_on", technologyBody(ipRights: [ipRight("ZL202010000001.1", extra: ["filed_on": "2020-03-01", "expires_on": "2019-03-01"])])),
                ("ip_rights", technologyBody(ipRights: (0..<51).map { ipRight("ZL2020100000\(String(format: "%02d", $0)).1") })),
                ("asking_terms.deal_kinds[1]", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment", "barter"]]])),
                ("asking_terms.deal_kinds", technologyBody(extra: ["asking_terms": ["price_min": 1]])),
                ("asking_terms.currency", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": 100]])),
                ("asking_terms.currency", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_max": 100, "currency": "cny"]])),
                ("asking_terms.price_min", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": -1, "currency": "CNY"]])),
                ("asking_terms.price_max", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_max": 9_007_199_254_740_993, "currency": "CNY"]])),
                ("asking_terms.price_max", technologyBody(extra: ["asking_terms": ["deal_kinds": ["assignment"], "price_min": 200, "price_max": 100, "currency": "CNY"]])),
            ]
            for (field, body) in cases {
                expectInvalid(try await post(body), field)
            }
            // Limits hold exactly at the boundary.
            let edge = try await api.registerTechnology(as: lab, technologyBody(
                String(repeating: "题", count: 300), summary: String(repeating: "s", count: 5_000), description: String(repeating: "d", count: 100_000), trl: 9,
                keywords: (0..<30).map { "k\($0)" + String(repeating: "x", count: 97) },
                ipRights: (0..<50).map { ipRight("ZL2021100000\(String(format: "%02d", $0)).1") },
                extra: ["asking_terms": ["deal_kinds": ["assignment", "exclusive_licence", "sole_licence", "non_exclusive_licence"], "price_min": 0,
                                         "price_max": 9_007_199_254_740_992, "currency": "USD"]]))
            #expect(edge["ip_rights"].array.count == 50 && edge["keywords"].array.count == 30 && edge["trl"].int == 9, "\(edge["ip_rights"].array.count)")
            #expect(edge["asking_terms"]["price_max"].int == 9_007_199_254_740_992)

            // Fields the body does not define: 422 `unknown_field` naming them.
            expectProblem(try await post(technologyBody(extra: ["colour": "red"])), .unprocessableContent, "unknown_field", fields: ["colour"])
            expectProblem(try await post(technologyBody(extra: ["status": "listed"])), .unprocessableContent, "unknown_field", fields: ["status"])
            expectProblem(try await post(technologyBody(ipRights: [ipRight("ZL202210000001.1", extra: ["country": "CN"])])),
                          .unprocessableContent, "unknown_field", fields: ["ip_rights[0].country"])
            // Malformed JSON: 400.
            expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key, raw: "{\"title\": "), .badRequest, "invalid_request", fields: ["body"])
            #expect(try await api.searchIDs(key: lab.key).count == 1, "a refused registration left a technology behind")
        }
    }

    /// `asking_terms` is an object of the body: a misspelt key in it must not be dropped silently.
    @Test func unknownFieldsInsideAskingTermsAreRefused() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("USTC Lab", kind: "institute")
            let response = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(extra: [
                "asking_terms": ["deal_kinds": ["assignment"], "price_mn": 100, "currency": "CNY"],
            ]))
            expectProblem(response, .unprocessableContent, "unknown_field", fields: ["asking_terms.price_mn"])
        }
    }

    /// Lengths are limited in characters as the database (and JSON Schema's `maxLength`) count
    /// them, Unicode code points: a title of 200 flag emoji (400 code points) must be a 422 naming
    /// `title`, never a 500 from the table's CHECK constraint.
    @Test func lengthLimitsCountCodePoints() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("SJTU Lab", kind: "institute")
            let flags = String(repeating: "🇨🇳", count: 200)
            expectInvalid(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(flags)), "title")
            let combining = String(repeating: "e\u{301}", count: 3_000)
            expectInvalid(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(summary: combining)), "summary")
            // Within the limit in code points: accepted.
            let accepted = try await api.registerTechnology(as: lab, technologyBody(String(repeating: "🇨🇳", count: 150)))
            #expect(accepted["title"].string == String(repeating: "🇨🇳", count: 150))
        }
    }

    /// A right's number is stored as written (at most 64 characters in the table); one that
    /// normalizes short but is written long must be a 422 naming it, never a 500.
    @Test func rightNumbersLongerThan64CharactersAsWrittenAreRefused() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("HUST Lab", kind: "institute")
            let padded = "CN" + String(repeating: " ", count: 50) + "2020 - 1 - 0123456.7"
            #expect(padded.count > 64)
            let response = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(ipRights: [ipRight(padded)]))
            expectInvalid(response, "ip_rights[0].number")
            // 64 characters as written is fine.
            let exactly64 = "CN 2020 1 0123456.7" + String(repeating: " ", count: 64 - 19)
            let accepted = try await api.registerTechnology(as: lab, technologyBody(ipRights: [ipRight(exactly64)]))
            #expect(accepted["ip_rights"][0]["normalized_number"].string == "202010123456.7", "\(accepted)")
        }
    }

    @Test func registrationIsIdempotentWithAnIdempotencyKey() async throws {
        try await withAPI { api in
            let lab = try await api.createOrganization("PKU Lab", kind: "institute")
            let key = "register-\(newID())"
            let body = technologyBody("Idempotent technology")
            let first = try await api.call(.post, "/v1/technologies", key: lab.key, json: body, headers: [.tbIdempotencyKey: key])
            #expect(first.status == .created && first.headers[.tbIdempotentReplayed] == nil, "\(first)")
            let again = try await api.call(.post, "/v1/technologies", key: lab.key, json: body, headers: [.tbIdempotencyKey: key])
            #expect(again.status == .created && again.headers[.tbIdempotentReplayed] == "true", "\(again)")
            #expect(again.body == first.body && again.headers[.location] == first.headers[.location] && again.headers[.eTag] == "\"v1\"", "\(again)")
            expectProblem(try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody("Another"), headers: [.tbIdempotencyKey: key]),
                          .unprocessableContent, "idempotency_key_reused")
            #expect(try await api.searchIDs(key: lab.key) == [first.json["id"].string].compactMap { $0 })
        }
    }
}
